// One place where Fafnir's error codes become sentences for people. GraphQL errors carry
// `extensions.code` (UNAUTHENTICATED, BAD_USER_INPUT, RATE_LIMITED, …) and, from the REST
// layer, `extensions.reason` (INVALID_CREDENTIALS, EMAIL_TAKEN, …): the reason is more precise.

export class ApiError extends Error {
  readonly code: string;
  readonly retryAfter?: number;
  readonly field?: string;
  readonly extensions: Record<string, unknown>;

  constructor(
    code: string,
    message: string,
    extra: { retryAfter?: number; field?: string; extensions?: Record<string, unknown> } = {},
  ) {
    super(message);
    this.code = code;
    this.retryAfter = extra.retryAfter;
    this.field = extra.field;
    this.extensions = extra.extensions ?? {};
  }

  static fromGraphQL(message: string, ext: Record<string, unknown>): ApiError {
    const str = (k: string) => (typeof ext[k] === "string" ? (ext[k] as string) : undefined);
    const code = str("reason") ?? str("code") ?? "INTERNAL";
    const retryAfter = typeof ext.retryAfter === "number" ? ext.retryAfter : undefined;
    return new ApiError(code, message, { retryAfter, field: str("field"), extensions: ext });
  }
}

function seconds(n: number): string {
  return n === 1 ? "1 second" : `${n} seconds`;
}

const MESSAGES: Record<string, string> = {
  INVALID_CREDENTIALS: "The e-mail address or password is wrong.",
  EMAIL_TAKEN: "An account with this e-mail address exists already. Sign in instead.",
  UNAUTHENTICATED: "Please sign in.",
  UNAUTHORIZED: "Please sign in.",
  FORBIDDEN: "You do not have permission to do that.",
  ACCOUNT_DISABLED: "This account is disabled. Contact the administrator.",
  EMAIL_NOT_VERIFIED: "Verify your e-mail address first: open the link we sent you.",
  SIGNUP_DISABLED: "Sign-up is closed here. Ask an administrator for an account.",
  INVALID_MFA_CODE: "That code is wrong or already used. Try the next one.",
  MFA_TOKEN_INVALID: "The sign-in expired. Please sign in again.",
  REAUTHENTICATION_REQUIRED: "For your security, sign in again before this change.",
  PASSKEY_REJECTED: "The passkey was not accepted.",
  PASSKEY_CEREMONY_INVALID: "The passkey request expired. Try again.",
  PASSKEYS_UNAVAILABLE: "Passkeys are not available on this server.",
  TOKEN_INVALID: "This link is invalid, expired or already used. Ask for a new one.",
  CSRF_TOKEN_INVALID: "Your session is out of date. Reload the page and try again.",
  NETWORK: "The server cannot be reached. Check your connection and try again.",
  SERVICE_UNAVAILABLE: "The service is unavailable right now. Try again shortly.",
  UNAVAILABLE: "The service is unavailable right now. Try again shortly.",
  LAST_SIGN_IN_METHOD: "This is your last way to sign in. Add another one first.",
  PAYLOAD_TOO_LARGE: "That is too much data for one request.",
  OAUTH_FAILED: "Signing in with the provider did not work. Try again.",
  OAUTH_STATE_INVALID: "The sign-in with the provider expired or was started elsewhere. Try again.",
  OAUTH_DENIED: "The provider did not let you in.",
  OAUTH_EMAIL_UNVERIFIED: "The provider has not verified your e-mail address, so no account can be made from it.",
  ACCOUNT_NOT_LINKED: "An account with this e-mail exists already: sign in with it, then link the provider.",
  IDENTITY_ALREADY_LINKED: "This provider account is linked to another account.",
  PROVIDER_ERROR: "The provider did not answer properly. Try again later.",
  RATE_LIMITED: "Too many attempts. Wait a moment and try again.",
};

/** The sentence to show for an error thrown by `gql` or `rest`. */
export function humanMessage(e: unknown): string {
  if (!(e instanceof ApiError)) return "Something went wrong. Try again.";
  if (e.code === "RATE_LIMITED") {
    return e.retryAfter
      ? `Too many attempts. Try again in ${seconds(e.retryAfter)}.`
      : "Too many attempts. Wait a moment and try again.";
  }
  if (e.code === "VALIDATION_FAILED" || e.code === "BAD_USER_INPUT" || e.code === "WEAK_PASSWORD") {
    return e.message.replace(/^[a-z_]+: /, "").replace(/^./, (c) => c.toUpperCase());
  }
  return MESSAGES[e.code] ?? (e.message || "Something went wrong. Try again.");
}
