"use client";

import { KeyRound } from "lucide-react";
import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { Suspense, useEffect, useState, useSyncExternalStore } from "react";

import { Field } from "@/components/field";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardFooter, CardHeader, CardTitle } from "@/components/ui/card";
import { ApiError, humanMessage } from "@/lib/errors";
import { gql, rest } from "@/lib/graphql";
import {
  FinishPasskeyLoginDocument,
  LoginDocument,
  MeDocument,
  ProvidersDocument,
  StartPasskeyLoginDocument,
  VerifyMfaDocument,
} from "@/lib/operations";
import { getPasskey, passkeysSupported } from "@/lib/passkey";

const noSubscription = () => () => {};

/** `next` as a path of this app, or `null`: parsed as the browser will, so `//host`, `/\host`
 * and tab- or newline-laden tricks that land elsewhere are refused. */
function sameOrigin(next: string | null): string | null {
  if (!next) return null;
  try {
    const u = new URL(next, window.location.origin);
    return u.origin === window.location.origin ? `${u.pathname}${u.search}${u.hash}` : null;
  } catch {
    return null;
  }
}

type Step = { kind: "password" } | { kind: "mfa"; token: string | null; methods: string[] };

function SignInForm() {
  const router = useRouter();
  const params = useSearchParams();
  const [step, setStep] = useState<Step>(
    params.get("mfa_required") === "true"
      ? { kind: "mfa", token: null, methods: ["totp", "recovery_code"] }
      : { kind: "password" },
  );
  const [error, setError] = useState<string | null>(() => {
    // From a provider sign-in's return: only codes we know are shown, never the text itself.
    const code = params.get("error");
    return code ? humanMessage(new ApiError(/^[A-Z_]{1,40}$/.test(code) ? code : "OAUTH_FAILED", "")) : null;
  });
  const [busy, setBusy] = useState(false);
  const [recovery, setRecovery] = useState(false);
  const [providers, setProviders] = useState<{ name: string; displayName: string }[]>([]);
  // Known in the browser only: false while rendering on the server.
  const passkeys = useSyncExternalStore(noSubscription, passkeysSupported, () => false);

  useEffect(() => {
    // Back from a provider with a session (no error, no second step): straight on.
    if (params.get("oauth") === "1" && !params.get("error") && !params.get("mfa_required")) {
      gql(MeDocument)
        .then((d) => (d.me ? router.replace("/account") : undefined))
        .catch(() => undefined);
    }
    gql(ProvidersDocument)
      .then((d) => setProviders(d.authProviders))
      .catch(() => setProviders([]));
    // Once, on arrival.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const done = () => router.push(sameOrigin(params.get("next")) ?? "/account");

  async function run(action: () => Promise<void>) {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (err) {
      if (err instanceof ApiError && err.code === "MFA_TOKEN_INVALID") {
        // The second step expired or was used up: start again from the password.
        setStep({ kind: "password" });
        setError(humanMessage(err));
        router.replace("/sign-in");
      } else if (err instanceof ApiError && err.code === "MFA_REQUIRED") {
        const methods = Array.isArray(err.extensions.methods) ? (err.extensions.methods as string[]) : ["totp"];
        setStep({ kind: "mfa", token: String(err.extensions.mfaToken ?? ""), methods });
      } else {
        setError(humanMessage(err));
      }
    } finally {
      setBusy(false);
    }
  }

  function onPassword(e: React.FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    void run(async () => {
      await gql(LoginDocument, { input: { email: String(form.get("email")), password: String(form.get("password")) } });
      done();
    });
  }

  function onCode(e: React.FormEvent<HTMLFormElement>) {
    e.preventDefault();
    if (step.kind !== "mfa") return;
    const value = String(new FormData(e.currentTarget).get("code")).trim();
    void run(async () => {
      if (step.token) {
        await gql(VerifyMfaDocument, {
          input: recovery
            ? { mfaToken: step.token, recoveryCode: value }
            : { mfaToken: step.token, code: value },
        });
      } else {
        // After a provider sign-in the challenge is in an HttpOnly cookie: REST reads it.
        await rest("POST", "/auth/mfa/verify", recovery ? { recovery_code: value } : { code: value });
      }
      done();
    });
  }

  function onPasskey() {
    void run(async () => {
      const start = await gql(StartPasskeyLoginDocument);
      if (!start.startPasskeyLogin) throw new ApiError("INTERNAL", "No passkey request came back.");
      const credential = await getPasskey(start.startPasskeyLogin.options).catch(() => {
        throw new ApiError("PASSKEY_CANCELLED", "No passkey was used.");
      });
      await gql(FinishPasskeyLoginDocument, { ceremony: start.startPasskeyLogin.ceremony, credential });
      done();
    });
  }

  if (step.kind === "mfa") {
    return (
      <Card className="mx-auto max-w-md">
        <CardHeader>
          <CardTitle level={1}>Second step</CardTitle>
          <CardDescription>
            {recovery
              ? "Enter one of your recovery codes. Each works once."
              : "Enter the 6-digit code from your authenticator app."}
          </CardDescription>
        </CardHeader>
        <form onSubmit={onCode}>
          <CardContent className="grid gap-4">
            {error ? <Alert variant="destructive">{error}</Alert> : null}
            <Field
              key={recovery ? "recovery" : "code"}
              id="code"
              label={recovery ? "Recovery code" : "Authentication code"}
              autoComplete="one-time-code"
              inputMode={recovery ? "text" : "numeric"}
              pattern={recovery ? undefined : "[0-9]{6}"}
              required
              autoFocus
            />
          </CardContent>
          <CardFooter className="flex flex-col items-stretch gap-3">
            <Button type="submit" disabled={busy}>
              Verify
            </Button>
            <Button type="button" variant="link" onClick={() => setRecovery(!recovery)}>
              {recovery ? "Use an authenticator code" : "Use a recovery code"}
            </Button>
            {step.methods.includes("passkey") && passkeys ? (
              <Button type="button" variant="outline" onClick={onPasskey} disabled={busy}>
                <KeyRound aria-hidden /> Use your passkey
              </Button>
            ) : null}
          </CardFooter>
        </form>
      </Card>
    );
  }

  return (
    <Card className="mx-auto max-w-md">
      <CardHeader>
        <CardTitle level={1}>Sign in</CardTitle>
        {params.get("registered") ? (
          <Alert variant="success">Your account is ready. Sign in with it.</Alert>
        ) : null}
      </CardHeader>
      <form onSubmit={onPassword}>
        <CardContent className="grid gap-4">
          {error ? <Alert variant="destructive">{error}</Alert> : null}
          <Field
            id="email"
            label="E-mail"
            type="email"
            autoComplete="username webauthn"
            defaultValue={params.get("email") ?? ""}
            required
          />
          <Field id="password" label="Password" type="password" autoComplete="current-password" required />
          <Link href="/forgot-password" className="text-sm underline underline-offset-4">
            Forgot your password?
          </Link>
        </CardContent>
        <CardFooter className="flex flex-col items-stretch gap-3">
          <Button type="submit" disabled={busy}>
            {busy ? "Signing in…" : "Sign in"}
          </Button>
          {passkeys ? (
            <Button type="button" variant="outline" onClick={onPasskey} disabled={busy}>
              <KeyRound aria-hidden /> Sign in with a passkey
            </Button>
          ) : null}
          {providers.map((p) => (
            <Button key={p.name} asChild variant="outline">
              <a href={`/auth/oauth/${encodeURIComponent(p.name)}/authorize?return_to=${encodeURIComponent("/sign-in?oauth=1")}`}>
                Continue with {p.displayName}
              </a>
            </Button>
          ))}
          <p className="text-sm text-muted-foreground">
            New here?{" "}
            <Link href="/sign-up" className="underline underline-offset-4">
              Create an account
            </Link>
          </p>
        </CardFooter>
      </form>
    </Card>
  );
}

export default function SignIn() {
  return (
    <Suspense>
      <SignInForm />
    </Suspense>
  );
}
