"use client";

import QRCode from "qrcode";
import { useState } from "react";

import { Field } from "@/components/field";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardFooter, CardHeader, CardTitle } from "@/components/ui/card";
import type { MeQuery } from "@/gql/graphql";
import { ApiError, humanMessage } from "@/lib/errors";
import { gql } from "@/lib/graphql";
import {
  ChangePasswordDocument,
  ConfirmTotpDocument,
  DeletePasskeyDocument,
  DisableTotpDocument,
  FinishPasskeyRegistrationDocument,
  SetupTotpDocument,
  StartPasskeyRegistrationDocument,
} from "@/lib/operations";
import { createPasskey } from "@/lib/passkey";

type Me = NonNullable<MeQuery["me"]>;

/** Recovery codes, shown once. */
function Codes({ codes }: { codes: string[] }) {
  return (
    <Alert variant="success">
      <p className="mb-2 font-medium">Your recovery codes. Keep them somewhere safe: each works once, and they are not shown again.</p>
      <ul data-testid="recovery-codes" className="grid grid-cols-2 gap-1 font-mono">
        {codes.map((c) => (
          <li key={c}>{c}</li>
        ))}
      </ul>
    </Alert>
  );
}

export function Security({ me, reload }: { me: Me; reload: () => Promise<void> }) {
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [totp, setTotp] = useState<{ secret: string; qr: string } | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  // The passkey whose removal waits for a proof (the account's last second factor).
  const [confirming, setConfirming] = useState<string | null>(null);
  const hasPassword = me.signInMethods.includes("password");

  async function act(action: () => Promise<void>, success?: string) {
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      await action();
      if (success) setNotice(success);
      await reload();
    } catch (err) {
      setError(humanMessage(err));
    } finally {
      setBusy(false);
    }
  }

  const startTotp = () =>
    act(async () => {
      const d = await gql(SetupTotpDocument);
      if (!d.setupTotp) throw new ApiError("INTERNAL", "No secret came back.");
      setTotp({ secret: d.setupTotp.secret, qr: await QRCode.toDataURL(d.setupTotp.otpauthUrl, { margin: 1 }) });
    });

  function confirmTotp(e: React.FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const code = String(new FormData(e.currentTarget).get("totp-code")).trim();
    void act(async () => {
      const d = await gql(ConfirmTotpDocument, { code });
      setTotp(null);
      setCodes(d.confirmTotp ?? null);
    }, "The authenticator app is on.");
  }

  function disableTotp(e: React.FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const password = String(new FormData(e.currentTarget).get("totp-password"));
    void act(async () => {
      await gql(DisableTotpDocument, { input: { password } });
    }, "The authenticator app is off.");
  }

  const addPasskey = () =>
    act(async () => {
      const start = await gql(StartPasskeyRegistrationDocument);
      if (!start.startPasskeyRegistration) throw new ApiError("INTERNAL", "No passkey request came back.");
      const credential = await createPasskey(start.startPasskeyRegistration.options).catch(() => {
        throw new ApiError("PASSKEY_CANCELLED", "No passkey was created.");
      });
      const d = await gql(FinishPasskeyRegistrationDocument, {
        ceremony: start.startPasskeyRegistration.ceremony,
        credential,
        name: navigator.platform ? `Passkey on ${navigator.platform}` : "Passkey",
      });
      setCodes(d.finishPasskeyRegistration?.recoveryCodes ?? null);
    }, "Passkey added.");

  function removePasskey(id: string) {
    if (!me.mfa.totp && me.mfa.passkeys.length === 1) {
      setConfirming(id);
      return;
    }
    void act(async () => {
      await gql(DeletePasskeyDocument, { id });
    }, "Passkey removed.");
  }

  function removeLastPasskey(e: React.FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const id = confirming;
    if (!id) return;
    const proof = String(new FormData(e.currentTarget).get("passkey-proof"));
    void act(async () => {
      await gql(DeletePasskeyDocument, {
        id,
        input: hasPassword ? { password: proof } : { recoveryCode: proof },
      });
      setConfirming(null);
    }, "Passkey removed.");
  }

  function changePassword(e: React.FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const form = e.currentTarget;
    const data = new FormData(form);
    void act(async () => {
      await gql(ChangePasswordDocument, {
        input: {
          currentPassword: hasPassword ? String(data.get("current-password")) : null,
          newPassword: String(data.get("new-password")),
        },
      });
      form.reset();
    }, "Password changed. Your other sessions were signed out.");
  }

  return (
    <Card>
      <CardHeader>
        <CardTitle>Security</CardTitle>
        <CardDescription>Your password and second factors.</CardDescription>
      </CardHeader>
      <CardContent className="grid gap-6">
        {error ? <Alert variant="destructive">{error}</Alert> : null}
        {notice ? <Alert variant="success">{notice}</Alert> : null}
        {codes ? <Codes codes={codes} /> : null}

        <form onSubmit={changePassword} className="grid gap-3" aria-labelledby="pw-heading">
          <h3 id="pw-heading" className="font-medium">
            {hasPassword ? "Change password" : "Set a password"}
          </h3>
          {hasPassword ? (
            <Field id="current-password" label="Current password" type="password" autoComplete="current-password" required />
          ) : null}
          <Field id="new-password" label="New password" type="password" autoComplete="new-password" minLength={12} required />
          <div>
            <Button type="submit" variant="outline" disabled={busy}>
              {hasPassword ? "Change password" : "Set password"}
            </Button>
          </div>
        </form>

        <section className="grid gap-3" aria-labelledby="totp-heading">
          <h3 id="totp-heading" className="font-medium">
            Authenticator app {me.mfa.totp ? <span data-testid="totp-on">(on)</span> : "(off)"}
          </h3>
          {me.mfa.totp ? (
            <form onSubmit={disableTotp} className="grid gap-3">
              <p className="text-sm text-muted-foreground">Recovery codes left: {me.mfa.recoveryCodesLeft}</p>
              <Field id="totp-password" label="Password, to turn it off" type="password" autoComplete="current-password" required />
              <div>
                <Button type="submit" variant="outline" disabled={busy}>
                  Turn off
                </Button>
              </div>
            </form>
          ) : totp ? (
            <form onSubmit={confirmTotp} className="grid gap-3">
              {/* eslint-disable-next-line @next/next/no-img-element -- a data: URL, nothing to optimise */}
              <img src={totp.qr} alt="QR code to scan with your authenticator app" width={180} height={180} />
              <p className="text-sm">
                Or type this key: <code data-testid="totp-secret" className="font-mono">{totp.secret}</code>
              </p>
              <Field id="totp-code" label="Code from the app" inputMode="numeric" autoComplete="one-time-code" required />
              <div>
                <Button type="submit" disabled={busy}>
                  Turn on
                </Button>
              </div>
            </form>
          ) : (
            <div>
              <Button variant="outline" onClick={startTotp} disabled={busy}>
                Set up an authenticator app
              </Button>
            </div>
          )}
        </section>

        <section className="grid gap-3" aria-labelledby="passkeys-heading">
          <h3 id="passkeys-heading" className="font-medium">
            Passkeys
          </h3>
          <ul className="grid gap-2" aria-label="Passkeys">
            {me.mfa.passkeys.map((p) => (
              <li key={p.id} className="flex items-center justify-between gap-2 rounded-md border p-3 text-sm">
                <span>
                  {p.name}{" "}
                  <span className="text-muted-foreground">
                    · added {new Date(p.createdAt).toLocaleDateString()}
                    {p.lastUsedAt ? ` · last used ${new Date(p.lastUsedAt).toLocaleString()}` : ""}
                  </span>
                </span>
                <Button size="sm" variant="outline" onClick={() => removePasskey(p.id)} disabled={busy}>
                  Remove
                </Button>
              </li>
            ))}
          </ul>
          {confirming ? (
            <form onSubmit={removeLastPasskey} className="grid gap-3 rounded-md border p-3">
              <p className="text-sm">
                This is your last second factor. {hasPassword ? "Enter your password" : "Enter a recovery code"} to
                remove it.
              </p>
              <Field
                id="passkey-proof"
                label={hasPassword ? "Password" : "Recovery code"}
                type={hasPassword ? "password" : "text"}
                autoComplete={hasPassword ? "current-password" : "one-time-code"}
                required
                autoFocus
              />
              <div className="flex gap-2">
                <Button type="submit" variant="destructive" disabled={busy}>
                  Remove passkey
                </Button>
                <Button type="button" variant="ghost" onClick={() => setConfirming(null)}>
                  Cancel
                </Button>
              </div>
            </form>
          ) : null}
          <div>
            <Button variant="outline" onClick={addPasskey} disabled={busy}>
              Add a passkey
            </Button>
          </div>
        </section>
      </CardContent>
      <CardFooter />
    </Card>
  );
}
