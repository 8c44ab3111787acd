// The one GraphQL client of the app: same-origin POSTs to /graphql with the cookies, the CSRF
// header attached here and nowhere else, and errors turned into `ApiError` (see errors.ts for
// the human messages).
import type { TypedDocumentString } from "@/gql/graphql";
import { ApiError } from "./errors";

/** The CSRF token Fafnir set in the readable `fafnir_csrf` cookie (double submit). */
export function csrfToken(): string {
  if (typeof document === "undefined") return "";
  for (const part of document.cookie.split("; ")) {
    const [name, ...value] = part.split("=");
    if (name === "fafnir_csrf" || name === "__Host-fafnir_csrf") return decodeURIComponent(value.join("="));
  }
  return "";
}

type GraphQLResponse<T> = {
  data?: T | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
};

export async function gql<TResult, TVariables>(
  document: TypedDocumentString<TResult, TVariables>,
  ...[variables]: TVariables extends Record<string, never> ? [] : [TVariables]
): Promise<TResult> {
  try {
    return await send(document, variables);
  } catch (e) {
    // The access cookie lives minutes; the refresh cookie (scoped to /auth) renews it once.
    if (e instanceof ApiError && e.code === "UNAUTHENTICATED" && (await refreshed())) {
      return send(document, variables);
    }
    throw e;
  }
}

let refreshing: Promise<boolean> | null = null;

/** Rotates the refresh token (one call at a time); `true` if a new access cookie came back.
 * Without the CSRF cookie nobody is signed in in this browser: nothing to refresh. */
function refreshed(): Promise<boolean> {
  if (!csrfToken()) return Promise.resolve(false);
  refreshing ??= fetch("/auth/refresh", {
    method: "POST",
    credentials: "same-origin",
    headers: { "x-csrf-token": csrfToken() },
  })
    .then((r) => r.ok)
    .catch(() => false)
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

async function send<TResult, TVariables>(
  document: TypedDocumentString<TResult, TVariables>,
  variables: TVariables | undefined,
): Promise<TResult> {
  let res: Response;
  try {
    res = await fetch("/graphql", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrfToken() },
      body: JSON.stringify({ query: document.toString(), variables }),
    });
  } catch {
    throw new ApiError("NETWORK", "The server cannot be reached. Check your connection and try again.");
  }
  let body: GraphQLResponse<TResult> & { error?: { code: string; message: string } };
  try {
    body = (await res.json()) as typeof body;
  } catch {
    throw new ApiError("INTERNAL", `The server answered ${res.status}.`);
  }
  // An answer of the proxy (Fafnir down, a body too large) rather than of GraphQL.
  if (body.error) throw new ApiError(body.error.code, body.error.message);
  const first = body.errors?.[0];
  if (first) throw ApiError.fromGraphQL(first.message, first.extensions ?? {});
  if (!body.data) throw new ApiError("INTERNAL", "The server answered no data.");
  return body.data;
}

/** A call to Fafnir's REST API (for what GraphQL does not carry: the session list, the
 * second step after a provider sign-in), renewing the access cookie once like `gql`. */
export async function rest<T>(method: string, path: string, body?: unknown): Promise<T> {
  try {
    return await restOnce<T>(method, path, body);
  } catch (e) {
    if (e instanceof ApiError && e.code === "UNAUTHORIZED" && (await refreshed())) {
      return restOnce<T>(method, path, body);
    }
    throw e;
  }
}

async function restOnce<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-csrf-token": csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return undefined as T;
  const json = (await res.json().catch(() => null)) as
    | (T & { error?: { code: string; message: string } })
    | null;
  if (!res.ok) {
    const retry = Number(res.headers.get("retry-after") ?? "") || undefined;
    throw new ApiError(json?.error?.code ?? "INTERNAL", json?.error?.message ?? `The server answered ${res.status}.`, {
      retryAfter: retry,
    });
  }
  return json as T;
}
