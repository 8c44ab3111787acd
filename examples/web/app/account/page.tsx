"use client";

import { useRouter } from "next/navigation";
import { useCallback, useEffect, useState } from "react";

import { Field } from "@/components/field";
import { Identity } from "@/components/identity";
import { Security } from "@/components/security";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardFooter, CardHeader, CardTitle } from "@/components/ui/card";
import type { MeQuery } from "@/gql/graphql";
import { ApiError, humanMessage } from "@/lib/errors";
import { gql, rest } from "@/lib/graphql";
import { LogoutDocument, MeDocument, UpdateProfileDocument } from "@/lib/operations";

type Session = {
  id: string;
  created_at: string;
  last_used_at: string;
  user_agent: string | null;
  ip: string | null;
  current: boolean;
};

function when(iso: string): string {
  return new Date(iso).toLocaleString();
}

export default function Account() {
  const router = useRouter();
  const [me, setMe] = useState<NonNullable<MeQuery["me"]> | null>(null);
  const [sessions, setSessions] = useState<Session[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    try {
      const d = await gql(MeDocument);
      if (!d.me) {
        router.replace("/sign-in?next=/account");
        return;
      }
      setMe(d.me);
      const s = await rest<{ sessions: Session[] }>("GET", "/auth/sessions");
      setSessions(s.sessions);
    } catch (err) {
      if (err instanceof ApiError && (err.code === "UNAUTHENTICATED" || err.code === "UNAUTHORIZED")) {
        router.replace("/sign-in?next=/account");
      } else {
        setError(humanMessage(err));
      }
    }
  }, [router]);

  useEffect(() => {
    // Loading on arrival: the state updates happen after the awaited requests.
    // eslint-disable-next-line react-hooks/set-state-in-effect
    void load();
  }, [load]);

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

  function onProfile(e: React.FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    void act(async () => {
      await gql(UpdateProfileDocument, {
        input: { displayName: String(form.get("displayName")), bio: String(form.get("bio")) },
      });
      await load();
    }, "Profile saved.");
  }

  const signOut = () =>
    act(async () => {
      await gql(LogoutDocument);
      router.push("/sign-in");
    });

  const signOutEverywhere = () =>
    act(async () => {
      await rest("POST", "/auth/logout-all");
      router.push("/sign-in");
    });

  const endSession = (id: string) =>
    act(async () => {
      await rest("DELETE", `/auth/sessions/${id}`);
      await load();
    }, "The session was signed out.");

  if (!me) {
    return error ? <Alert variant="destructive">{error}</Alert> : <p aria-busy="true">Loading…</p>;
  }

  return (
    <div className="grid gap-6">
      <div className="flex flex-wrap items-center justify-between gap-3">
        <h1 className="text-3xl font-semibold tracking-tight">Your account</h1>
        <Button variant="outline" onClick={signOut} disabled={busy}>
          Sign out
        </Button>
      </div>
      {error ? <Alert variant="destructive">{error}</Alert> : null}
      {notice ? <Alert variant="success">{notice}</Alert> : null}

      <Card>
        <CardHeader>
          <CardTitle>Profile</CardTitle>
          <CardDescription>
            Signed in as <strong data-testid="email">{me.user.email}</strong>
            {me.user.emailVerified ? " (verified)" : " (not verified yet)"}
          </CardDescription>
        </CardHeader>
        <form onSubmit={onProfile}>
          <CardContent className="grid gap-4">
            <Field id="displayName" label="Display name" defaultValue={me.profile?.displayName ?? ""} maxLength={100} />
            <Field id="bio" label="About you" defaultValue={me.profile?.bio ?? ""} maxLength={500} />
          </CardContent>
          <CardFooter>
            <Button type="submit" disabled={busy}>
              Save profile
            </Button>
          </CardFooter>
        </form>
      </Card>

      <Security me={me} reload={load} />

      <Identity me={me} reload={load} />

      <Card>
        <CardHeader>
          <CardTitle>Roles and permissions</CardTitle>
        </CardHeader>
        <CardContent className="grid gap-2 text-sm">
          <p>
            Roles: <span data-testid="roles">{me.roles?.length ? me.roles.join(", ") : "none"}</span>
          </p>
          <p>
            Permissions:{" "}
            <span data-testid="permissions">{me.permissions?.length ? me.permissions.join(", ") : "none"}</span>
          </p>
        </CardContent>
      </Card>

      <Card>
        <CardHeader>
          <CardTitle>Sessions</CardTitle>
          <CardDescription>Where your account is signed in.</CardDescription>
        </CardHeader>
        <CardContent>
          <ul className="grid gap-3" aria-label="Sessions">
            {sessions.map((s) => (
              <li key={s.id} className="flex flex-wrap items-center justify-between gap-2 rounded-md border p-3 text-sm">
                <div>
                  <p className="font-medium">
                    {s.user_agent ?? "Unknown device"} {s.current ? <span>(this session)</span> : null}
                  </p>
                  <p className="text-muted-foreground">
                    {s.ip ?? "unknown address"} · since {when(s.created_at)} · last used {when(s.last_used_at)}
                  </p>
                </div>
                {s.current ? null : (
                  <Button size="sm" variant="outline" onClick={() => endSession(s.id)} disabled={busy}>
                    Sign out this one
                  </Button>
                )}
              </li>
            ))}
          </ul>
        </CardContent>
        <CardFooter>
          <Button variant="destructive" onClick={signOutEverywhere} disabled={busy}>
            Sign out everywhere
          </Button>
        </CardFooter>
      </Card>
    </div>
  );
}
