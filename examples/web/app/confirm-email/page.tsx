"use client";

import Link from "next/link";
import { useSearchParams } from "next/navigation";
import { Suspense, useEffect, useRef, useState } from "react";

import { Alert } from "@/components/ui/alert";
import { humanMessage } from "@/lib/errors";
import { gql } from "@/lib/graphql";
import { ConfirmEmailChangeDocument } from "@/lib/operations";

function Confirm() {
  const token = useSearchParams().get("token") ?? "";
  const [state, setState] = useState<{ ok: boolean; message: string } | null>(null);
  // A link's token works once: never send it twice (React runs effects twice in development).
  const sent = useRef(false);

  useEffect(() => {
    if (!token || sent.current) return;
    sent.current = true;
    // Out of the address bar and history once used.
    window.history.replaceState(null, "", window.location.pathname);
    gql(ConfirmEmailChangeDocument, { token })
      .then(() => setState({ ok: true, message: "Your e-mail address is changed." }))
      .catch((err: unknown) => setState({ ok: false, message: humanMessage(err) }));
  }, [token]);

  return (
    <section className="mx-auto grid max-w-md gap-4">
      <h1 className="text-2xl font-semibold">Confirm your new e-mail address</h1>
      {!token ? <Alert variant="destructive">This link has no token. Ask for a new one.</Alert> : null}
      {token && !state ? <p aria-busy="true">Checking the link…</p> : null}
      {state ? <Alert variant={state.ok ? "success" : "destructive"}>{state.message}</Alert> : null}
      <Link href="/account" className="underline underline-offset-4">
        Go to your account
      </Link>
    </section>
  );
}

export default function ConfirmEmail() {
  return (
    <Suspense>
      <Confirm />
    </Suspense>
  );
}
