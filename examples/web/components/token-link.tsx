"use client";

import Link from "next/link";
import { useSearchParams } from "next/navigation";
import { Suspense, useEffect, useRef, useState } from "react";

import { Alert } from "@/components/ui/alert";
import { humanMessage } from "@/lib/errors";

type Props = {
  title: string;
  /** Redeems the link's token (once). */
  redeem: (token: string) => Promise<unknown>;
  success: string;
};

function Redeem({ title, redeem, success }: Props) {
  const token = useSearchParams().get("token") ?? "";
  const [state, setState] = useState<{ ok: boolean; message: string } | null>(null);
  // A link's token works once: never send it twice (React runs effects twice in development).
  const sent = useRef(false);

  useEffect(() => {
    if (!token || sent.current) return;
    sent.current = true;
    // Out of the address bar and history once used.
    window.history.replaceState(null, "", window.location.pathname);
    redeem(token)
      .then(() => setState({ ok: true, message: success }))
      .catch((err: unknown) => setState({ ok: false, message: humanMessage(err) }));
  }, [token, redeem, success]);

  return (
    <section className="mx-auto grid max-w-md gap-4">
      <h1 className="text-2xl font-semibold">{title}</h1>
      {!token ? <Alert variant="destructive">This link has no token. Ask for a new one.</Alert> : null}
      {token && !state ? <p aria-busy="true">Checking the link…</p> : null}
      {state ? <Alert variant={state.ok ? "success" : "destructive"}>{state.message}</Alert> : null}
      <Link href="/account" className="underline underline-offset-4">
        Go to your account
      </Link>
    </section>
  );
}

/** The page a mailed link opens: redeems `?token=` once and says how it went. */
export function TokenLinkPage(props: Props) {
  return (
    <Suspense>
      <Redeem {...props} />
    </Suspense>
  );
}
