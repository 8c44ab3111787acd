"use client";

import { useState } from "react";

import { Field } from "@/components/field";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardFooter, CardHeader, CardTitle } from "@/components/ui/card";
import { humanMessage } from "@/lib/errors";
import { gql } from "@/lib/graphql";
import { ForgotPasswordDocument } from "@/lib/operations";

export default function ForgotPassword() {
  const [sent, setSent] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function onSubmit(e: React.FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await gql(ForgotPasswordDocument, { email: String(new FormData(e.currentTarget).get("email")) });
      setSent(true);
    } catch (err) {
      setError(humanMessage(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Card className="mx-auto max-w-md">
      <CardHeader>
        <CardTitle level={1}>Forgot your password?</CardTitle>
        <CardDescription>We will mail a link to set a new one.</CardDescription>
      </CardHeader>
      <form onSubmit={onSubmit}>
        <CardContent className="grid gap-4">
          {error ? <Alert variant="destructive">{error}</Alert> : null}
          {sent ? (
            <Alert variant="success">
              If an account has this address, a link is on its way. It works for a short time and once.
            </Alert>
          ) : null}
          <Field id="email" label="E-mail" type="email" autoComplete="email" required />
        </CardContent>
        <CardFooter>
          <Button type="submit" disabled={busy}>
            Send the link
          </Button>
        </CardFooter>
      </form>
    </Card>
  );
}
