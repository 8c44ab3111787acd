"use client";

import { useRouter } from "next/navigation";
import { useCallback, useEffect, useState } from "react";

import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import type { AdminUsersQuery } from "@/gql/graphql";
import { ApiError, humanMessage } from "@/lib/errors";
import { gql } from "@/lib/graphql";
import { AdminUsersDocument, AssignRoleDocument, CanAdministerDocument, RevokeRoleDocument } from "@/lib/operations";

const PAGE = 20;

type User = NonNullable<AdminUsersQuery["adminUsers"]>["users"][number];

export default function Admin() {
  const router = useRouter();
  const [allowed, setAllowed] = useState<{ users: boolean; roles: boolean } | null>(null);
  const [users, setUsers] = useState<User[]>([]);
  const [roles, setRoles] = useState<string[]>([]);
  const [query, setQuery] = useState("");
  // The search the list shows (the box may have changed since).
  const [shown, setShown] = useState("");
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(async (q: string, after: string | null) => {
    const d = await gql(AdminUsersDocument, { query: q || null, first: PAGE, after });
    setUsers(d.adminUsers?.users ?? []);
    setNext(d.adminUsers?.next ?? null);
    setRoles((d.roles ?? []).map((r) => r.name));
  }, []);

  useEffect(() => {
    gql(CanAdministerDocument)
      .then(async (d) => {
        const can = { users: !!d.users?.hasPermission, roles: !!d.roles?.hasPermission };
        setAllowed(can);
        if (can.users) await load("", null);
      })
      .catch((err: unknown) => {
        if (err instanceof ApiError && err.code === "UNAUTHENTICATED") router.replace("/sign-in?next=/admin");
        else setError(humanMessage(err));
      });
  }, [load, router]);

  async function act(action: () => Promise<void>, success?: string) {
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      await action();
      if (success) setNotice(success);
    } catch (err) {
      setError(humanMessage(err));
    } finally {
      setBusy(false);
    }
  }

  function onSearch(e: React.FormEvent<HTMLFormElement>) {
    e.preventDefault();
    void act(async () => {
      await load(query, null);
      setShown(query);
      setCursors([null]);
    });
  }

  const page = (dir: 1 | -1) =>
    act(async () => {
      const stack = dir === 1 ? [...cursors, next] : cursors.slice(0, -1);
      await load(shown, stack[stack.length - 1] ?? null);
      setCursors(stack);
    });

  const setRole = (u: User, role: string, grant: boolean) =>
    act(async () => {
      const input = { userId: u.id, role };
      if (grant) await gql(AssignRoleDocument, { input });
      else await gql(RevokeRoleDocument, { input });
      await load(shown, cursors[cursors.length - 1] ?? null);
    }, grant ? `Granted ${role} to ${u.email}.` : `Revoked ${role} from ${u.email}.`);

  if (!allowed) {
    return error ? <Alert variant="destructive">{error}</Alert> : <p aria-busy="true">Loading…</p>;
  }
  if (!allowed.users) {
    return <Alert variant="destructive">This page needs the permission users:manage.</Alert>;
  }

  return (
    <div className="grid gap-6">
      <h1 className="text-3xl font-semibold tracking-tight">Administration</h1>
      {error ? <Alert variant="destructive">{error}</Alert> : null}
      {notice ? <Alert variant="success">{notice}</Alert> : null}
      <Card>
        <CardHeader>
          <CardTitle>Users</CardTitle>
          <CardDescription>Search by the start of an e-mail address.</CardDescription>
        </CardHeader>
        <CardContent className="grid gap-4">
          <form onSubmit={onSearch} className="flex items-end gap-2" role="search">
            <div className="grid flex-1 gap-2">
              <Label htmlFor="query">E-mail</Label>
              <Input id="query" value={query} onChange={(e) => setQuery(e.target.value)} />
            </div>
            <Button type="submit" disabled={busy}>
              Search
            </Button>
          </form>
          <ul className="grid gap-3" aria-label="Users">
            {users.map((u) => (
              <li key={u.id} className="grid gap-2 rounded-md border p-3 text-sm">
                <div className="flex flex-wrap items-center justify-between gap-2">
                  <span className="font-medium">{u.email}</span>
                  <span className="text-muted-foreground">
                    {u.state}
                    {u.lastSignInAt ? ` · last sign-in ${new Date(u.lastSignInAt).toLocaleString()}` : ""}
                  </span>
                </div>
                {allowed.roles ? (
                  <fieldset className="flex flex-wrap gap-3">
                    <legend className="sr-only">Roles of {u.email}</legend>
                    {roles.map((r) => (
                      <label key={r} className="flex items-center gap-1">
                        <input
                          type="checkbox"
                          checked={u.roles.includes(r)}
                          disabled={busy}
                          onChange={(e) => void setRole(u, r, e.target.checked)}
                          aria-label={`${r} for ${u.email}`}
                        />
                        {r}
                      </label>
                    ))}
                  </fieldset>
                ) : (
                  <p>Roles: {u.roles.join(", ") || "none"}</p>
                )}
              </li>
            ))}
          </ul>
          <div className="flex gap-2">
            <Button variant="outline" onClick={() => page(-1)} disabled={busy || cursors.length <= 1}>
              Previous
            </Button>
            <Button variant="outline" onClick={() => page(1)} disabled={busy || !next}>
              Next
            </Button>
          </div>
        </CardContent>
      </Card>
    </div>
  );
}
