"use client";

import Link from "next/link";
import { useSearchParams } from "next/navigation";
import { Suspense, useState } from "react";

import { Field } from "@/components/field";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardFooter, CardHeader, CardTitle } from "@/components/ui/card";
import { humanMessage } from "@/lib/errors";
import { gql } from "@/lib/graphql";
import { ResetPasswordDocument } from "@/lib/operations";

function ResetForm() {
  const token = useSearchParams().get("token") ?? "";
  const [done, setDone] = useState(false);
  const [error, setError] = useState<string | null>(token ? null : "This link has no token. Ask for a new one.");
  const [busy, setBusy] = useState(false);

  async function onSubmit(e: React.FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const password = String(new FormData(e.currentTarget).get("password"));
      await gql(ResetPasswordDocument, { input: { token, newPassword: password } });
      setDone(true);
    } catch (err) {
      setError(humanMessage(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Card className="mx-auto max-w-md">
      <CardHeader>
        <CardTitle level={1}>Set a new password</CardTitle>
      </CardHeader>
      <form onSubmit={onSubmit}>
        <CardContent className="grid gap-4">
          {error ? <Alert variant="destructive">{error}</Alert> : null}
          {done ? (
            <Alert variant="success">
              Your password is changed and every session was signed out.{" "}
              <Link href="/sign-in" className="underline">
                Sign in
              </Link>
            </Alert>
          ) : (
            <Field
              id="password"
              label="New password"
              type="password"
              autoComplete="new-password"
              minLength={12}
              required
            />
          )}
        </CardContent>
        {done ? null : (
          <CardFooter>
            <Button type="submit" disabled={busy || !token}>
              Set password
            </Button>
          </CardFooter>
        )}
      </form>
    </Card>
  );
}

export default function ResetPassword() {
  return (
    <Suspense>
      <ResetForm />
    </Suspense>
  );
}
