// The same-origin door to Fafnir: the browser talks to this app only, and the app passes
// `/graphql` and `/auth/*` on to FAFNIR_URL (read per request, so `next start` picks it up
// at run time). Cookies stay first-party on the app's origin; Fafnir's CSRF and Origin checks
// apply unchanged (set FAFNIR_PUBLIC_URL or FAFNIR_ALLOWED_ORIGINS to this app's origin).

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
  "accept-encoding",
  "content-encoding",
]);

export function fafnirUrl(): string {
  return (process.env.FAFNIR_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
}

export async function proxy(req: Request): Promise<Response> {
  const incoming = new URL(req.url);
  const target = `${fafnirUrl()}${incoming.pathname}${incoming.search}`;
  const headers = new Headers();
  req.headers.forEach((value, key) => {
    if (!HOP_BY_HOP.has(key)) headers.set(key, value);
  });
  const init: RequestInit = { method: req.method, headers, redirect: "manual", cache: "no-store" };
  if (req.method !== "GET" && req.method !== "HEAD") {
    init.body = await req.arrayBuffer();
  }
  let res: Response;
  try {
    res = await fetch(target, init);
  } catch {
    return Response.json(
      { error: { code: "SERVICE_UNAVAILABLE", message: "Fafnir does not answer; try again shortly" } },
      { status: 503 },
    );
  }
  const out = new Headers();
  res.headers.forEach((value, key) => {
    if (key !== "set-cookie" && !HOP_BY_HOP.has(key)) out.set(key, value);
  });
  for (const cookie of res.headers.getSetCookie()) out.append("set-cookie", cookie);
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers: out });
}
