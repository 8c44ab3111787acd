"use client";

import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState } from "react";

import { Field } from "@/components/field";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardFooter, CardHeader, CardTitle } from "@/components/ui/card";
import { humanMessage } from "@/lib/errors";
import { gql } from "@/lib/graphql";
import { RegisterDocument } from "@/lib/operations";

export default function SignUp() {
  const router = useRouter();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function onSubmit(e: React.FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setBusy(true);
    setError(null);
    try {
      await gql(RegisterDocument, {
        input: {
          email: String(form.get("email")),
          password: String(form.get("password")),
          displayName: String(form.get("displayName") || "") || null,
        },
      });
      router.push(`/sign-in?registered=1&email=${encodeURIComponent(String(form.get("email")))}`);
    } catch (err) {
      setError(humanMessage(err));
      setBusy(false);
    }
  }

  return (
    <Card className="mx-auto max-w-md">
      <CardHeader>
        <CardTitle level={1}>Create an account</CardTitle>
        <CardDescription>Use a password of at least 12 characters that you use nowhere else.</CardDescription>
      </CardHeader>
      <form onSubmit={onSubmit} noValidate={false}>
        <CardContent className="grid gap-4">
          {error ? <Alert variant="destructive">{error}</Alert> : null}
          <Field id="email" label="E-mail" type="email" autoComplete="email" required />
          <Field
            id="password"
            label="Password"
            type="password"
            autoComplete="new-password"
            minLength={12}
            required
            hint="12 characters or more; a passphrase of several words works well."
          />
          <Field id="displayName" label="Display name (optional)" autoComplete="nickname" />
        </CardContent>
        <CardFooter className="flex flex-col items-stretch gap-3">
          <Button type="submit" disabled={busy}>
            {busy ? "Creating…" : "Create account"}
          </Button>
          <p className="text-sm text-muted-foreground">
            Have an account already?{" "}
            <Link href="/sign-in" className="underline underline-offset-4">
              Sign in
            </Link>
          </p>
        </CardFooter>
      </form>
    </Card>
  );
}
