// The same-origin door to Fafnir: the browser talks to this app only, and the app passes
// `/graphql` and `/auth/*` on to FAFNIR_URL (read per request, so `next start` picks it up
// at run time). Cookies stay first-party on the app's origin; Fafnir's CSRF and Origin checks
// apply unchanged (set FAFNIR_PUBLIC_URL or FAFNIR_ALLOWED_ORIGINS to this app's origin).

/** Headers that belong to one connection, not to the request, or that this hop rewrites. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "expect",
  "proxy-authorization",
  "proxy-authenticate",
  "proxy-connection",
  "host",
  "content-length",
  "accept-encoding",
  "content-encoding",
]);

/** Client-address headers: a browser can send any value, so they pass only when trusted. */
const FORWARDED = new Set(["x-forwarded-for", "forwarded", "x-real-ip"]);

/** Fafnir takes at most 64 KiB per body; a little more is allowed here for GraphQL documents. */
const MAX_BODY = 256 * 1024;
const TIMEOUT_MS = 15_000;

export function fafnirUrl(): string {
  return (process.env.FAFNIR_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
}

function problem(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}

export async function proxy(req: Request): Promise<Response> {
  const incoming = new URL(req.url);
  const target = `${fafnirUrl()}${incoming.pathname}${incoming.search}`;
  // Only behind a front proxy that overwrites X-Forwarded-For (WEB_TRUST_FORWARDED_FOR=1) is
  // the browser's address known; otherwise Fafnir sees this app's.
  const trustForwarded = process.env.WEB_TRUST_FORWARDED_FOR === "1";
  const dropped = new Set(
    (req.headers.get("connection") ?? "")
      .split(",")
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );
  const headers = new Headers();
  req.headers.forEach((value, key) => {
    if (HOP_BY_HOP.has(key) || dropped.has(key)) return;
    if (FORWARDED.has(key) && !trustForwarded) return;
    headers.set(key, value);
  });
  const init: RequestInit = {
    method: req.method,
    headers,
    redirect: "manual",
    cache: "no-store",
    signal: AbortSignal.any([req.signal, AbortSignal.timeout(TIMEOUT_MS)]),
  };
  if (req.method !== "GET" && req.method !== "HEAD") {
    if (Number(req.headers.get("content-length") ?? 0) > MAX_BODY) {
      return problem(413, "PAYLOAD_TOO_LARGE", "The request body is too large.");
    }
    const body = await readLimited(req);
    if (body === null) return problem(413, "PAYLOAD_TOO_LARGE", "The request body is too large.");
    init.body = body;
  }
  let res: Response;
  try {
    res = await fetch(target, init);
  } catch {
    return problem(503, "SERVICE_UNAVAILABLE", "Fafnir does not answer; try again shortly");
  }
  const out = new Headers();
  res.headers.forEach((value, key) => {
    if (key !== "set-cookie" && !HOP_BY_HOP.has(key)) out.set(key, value);
  });
  for (const cookie of res.headers.getSetCookie()) out.append("set-cookie", cookie);
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers: out });
}

/** The body, or `null` when it is over MAX_BODY (read no further than that). */
async function readLimited(req: Request): Promise<ArrayBuffer | null> {
  if (!req.body) return new ArrayBuffer(0);
  const reader = req.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY) {
      await reader.cancel();
      return null;
    }
    parts.push(value);
  }
  const body = new Uint8Array(new ArrayBuffer(size));
  let at = 0;
  for (const p of parts) {
    body.set(p, at);
    at += p.byteLength;
  }
  return body.buffer;
}
