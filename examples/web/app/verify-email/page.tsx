"use client";

import Link from "next/link";
import { useSearchParams } from "next/navigation";
import { Suspense, useEffect, useRef, useState } from "react";

import { Alert } from "@/components/ui/alert";
import { humanMessage } from "@/lib/errors";
import { gql } from "@/lib/graphql";
import { VerifyEmailDocument } from "@/lib/operations";

function Verify() {
  const token = useSearchParams().get("token") ?? "";
  const [state, setState] = useState<{ ok: boolean; message: string } | null>(null);
  // A link's token works once: never send it twice (React runs effects twice in development).
  const sent = useRef(false);

  useEffect(() => {
    if (!token || sent.current) return;
    sent.current = true;
    // Out of the address bar and history once used.
    window.history.replaceState(null, "", window.location.pathname);
    gql(VerifyEmailDocument, { token })
      .then(() => setState({ ok: true, message: "Your e-mail address is verified." }))
      .catch((err: unknown) => setState({ ok: false, message: humanMessage(err) }));
  }, [token]);

  return (
    <section className="mx-auto grid max-w-md gap-4">
      <h1 className="text-2xl font-semibold">Verify your e-mail address</h1>
      {!token ? <Alert variant="destructive">This link has no token. Ask for a new one.</Alert> : null}
      {token && !state ? <p aria-busy="true">Checking the link…</p> : null}
      {state ? <Alert variant={state.ok ? "success" : "destructive"}>{state.message}</Alert> : null}
      <Link href="/account" className="underline underline-offset-4">
        Go to your account
      </Link>
    </section>
  );
}

export default function VerifyEmail() {
  return (
    <Suspense>
      <Verify />
    </Suspense>
  );
}
