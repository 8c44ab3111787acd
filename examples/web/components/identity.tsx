"use client";

import { useState } from "react";

import { Field } from "@/components/field";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import type { MeQuery } from "@/gql/graphql";
import { humanMessage } from "@/lib/errors";
import { gql } from "@/lib/graphql";
import { ChangeEmailDocument, RequestVerificationDocument, UnlinkIdentityDocument } from "@/lib/operations";

type Me = NonNullable<MeQuery["me"]>;

/** The account's address (verify, change) and the sign-in providers linked to it. */
export function Identity({ me, reload }: { me: Me; reload: () => Promise<void> }) {
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const hasPassword = me.signInMethods.includes("password");

  async function act(action: () => Promise<void>, success: string) {
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      await action();
      setNotice(success);
      await reload();
    } catch (err) {
      setError(humanMessage(err));
    } finally {
      setBusy(false);
    }
  }

  function changeEmail(e: React.FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = e.currentTarget;
    const data = new FormData(form);
    const newEmail = String(data.get("new-email"));
    void act(async () => {
      await gql(ChangeEmailDocument, {
        input: { newEmail, currentPassword: hasPassword ? String(data.get("email-password")) : null },
      });
      form.reset();
    }, `We sent a link to ${newEmail}. Your address changes when you open it.`);
  }

  return (
    <Card>
      <CardHeader>
        <CardTitle>E-mail and linked accounts</CardTitle>
        <CardDescription>
          {me.user.email} {me.user.emailVerified ? "is verified." : "is not verified yet."}
        </CardDescription>
      </CardHeader>
      <CardContent className="grid gap-6">
        {error ? <Alert variant="destructive">{error}</Alert> : null}
        {notice ? <Alert variant="success">{notice}</Alert> : null}
        {me.user.emailVerified ? null : (
          <div>
            <Button
              variant="outline"
              disabled={busy}
              onClick={() =>
                act(async () => {
                  await gql(RequestVerificationDocument);
                }, "We sent a new verification link.")
              }
            >
              Send the verification link again
            </Button>
          </div>
        )}

        <form onSubmit={changeEmail} className="grid gap-3" aria-labelledby="email-heading">
          <h3 id="email-heading" className="font-medium">
            Change e-mail address
          </h3>
          <Field id="new-email" label="New e-mail address" type="email" autoComplete="email" required />
          {hasPassword ? (
            <Field id="email-password" label="Current password" type="password" autoComplete="current-password" required />
          ) : null}
          <div>
            <Button type="submit" variant="outline" disabled={busy}>
              Change address
            </Button>
          </div>
        </form>

        <section className="grid gap-3" aria-labelledby="identities-heading">
          <h3 id="identities-heading" className="font-medium">
            Linked sign-in providers
          </h3>
          {me.identities.length === 0 ? (
            <p className="text-sm text-muted-foreground">None. Signing in with a provider links it.</p>
          ) : (
            <ul className="grid gap-2" aria-label="Linked providers">
              {me.identities.map((i) => (
                <li key={i.id} className="flex items-center justify-between gap-2 rounded-md border p-3 text-sm">
                  <span>
                    {i.provider} {i.email ? <span className="text-muted-foreground">· {i.email}</span> : null}
                  </span>
                  <Button
                    size="sm"
                    variant="outline"
                    disabled={busy}
                    onClick={() =>
                      act(async () => {
                        await gql(UnlinkIdentityDocument, { id: i.id });
                      }, `Unlinked ${i.provider}.`)
                    }
                  >
                    Unlink
                  </Button>
                </li>
              ))}
            </ul>
          )}
        </section>
      </CardContent>
    </Card>
  );
}
