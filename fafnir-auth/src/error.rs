use std::time::Duration;

use fafnir_core::CoreError;

/// Everything that can go wrong in authentication. `code()` is the contract's error code; the
/// messages are safe to show: none says whether an account exists.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{field}: {message}")]
    Validation { field: &'static str, message: String },
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("email or password is incorrect")]
    InvalidCredentials,
    #[error("too many attempts; try again in {}", seconds(*retry_after))]
    RateLimited { retry_after: Duration },
    #[error("authentication required: the access token is missing, invalid or expired, or its session has ended")]
    Unauthorized,
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidRefreshToken,
    #[error("the refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    #[error("session not found")]
    SessionNotFound,
    #[error("user not found")]
    UserNotFound,
    /// A link token that is unknown, used, expired or meant for something else (all alike).
    #[error("the link is invalid, expired or already used; ask for a new one")]
    TokenInvalid,
    /// `FAFNIR_REQUIRE_VERIFIED_EMAIL` is on and the account's address is not verified yet.
    #[error("the e-mail address of this account is not verified yet; open the link sent to it, or ask for a new one")]
    EmailNotVerified,
    /// An administrator disabled the account.
    #[error("this account is disabled; contact the administrator")]
    AccountDisabled,
    /// The caller lacks the permission an operation needs.
    #[error("this needs the permission {0}")]
    Forbidden(&'static str),
    /// Sign-up is off (`FAFNIR_ALLOW_SIGNUP=false`): only an administrator creates accounts.
    #[error("sign-up is disabled; ask an administrator for an account")]
    SignupDisabled,
    /// A social login that did not sign anyone in (its code is the refusal's).
    #[error("social login failed: {}", .0.code())]
    OAuth(crate::oauth::Refusal),
    #[error("no such sign-in provider")]
    ProviderNotFound,
    #[error("identity not found")]
    IdentityNotFound,
    /// Unlinking would leave the account with no way to sign in.
    #[error("this is the account's last way to sign in: set a password or link another provider first")]
    LastSignInMethod,
    /// The operation needs a recent sign-in (setting a first password without a current one).
    #[error("sign in again first: this needs a sign-in within the last 10 minutes")]
    ReauthenticationRequired,
    /// The password (or provider) was right, and the account has a second factor: no session
    /// yet. Answer the challenge `token` with [`crate::Auth::mfa_verify`]. Never shown as an
    /// error to people: the transports turn it into their "second factor needed" answer.
    #[error("a second factor is required")]
    MfaRequired { token: crate::SecretString, methods: Vec<&'static str> },
    #[error("the code is wrong, expired or already used")]
    InvalidMfaCode,
    /// An MFA challenge that is unknown, used, expired, or out of attempts.
    #[error("the sign-in expired or was already completed; sign in again")]
    MfaTokenInvalid,
    #[error("a second factor is already on")]
    MfaAlreadyEnabled,
    #[error("no second factor is on")]
    MfaNotEnabled,
    /// A passkey answer that does not verify: wrong origin or relying party, unknown
    /// credential, bad signature, no user verification, a counter that did not move forward.
    #[error("the passkey was not accepted")]
    PasskeyRejected,
    /// A passkey ceremony that is unknown, used, expired or someone else's.
    #[error("the passkey request expired or was already used; start again")]
    PasskeyCeremonyInvalid,
    #[error("passkey not found")]
    PasskeyNotFound,
    /// No relying party is configured (the public URL's host is an IP address, say).
    #[error("passkeys are not available on this server")]
    PasskeysUnavailable,
    #[error("the server is busy; try again")]
    Busy,
    #[error("configuration error: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] CoreError),
}

impl AuthError {
    /// The contract's `UPPER_SNAKE` code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Validation { .. } => "VALIDATION_FAILED",
            AuthError::EmailTaken => "EMAIL_TAKEN",
            AuthError::InvalidCredentials => "INVALID_CREDENTIALS",
            AuthError::RateLimited { .. } => "RATE_LIMITED",
            AuthError::Unauthorized => "UNAUTHORIZED",
            AuthError::InvalidRefreshToken => "INVALID_REFRESH_TOKEN",
            AuthError::RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            AuthError::SessionNotFound => "NOT_FOUND",
            AuthError::UserNotFound => "USER_NOT_FOUND",
            AuthError::TokenInvalid => "TOKEN_INVALID",
            AuthError::EmailNotVerified => "EMAIL_NOT_VERIFIED",
            AuthError::AccountDisabled => "ACCOUNT_DISABLED",
            AuthError::Forbidden(_) => "FORBIDDEN",
            AuthError::SignupDisabled => "SIGNUP_DISABLED",
            AuthError::OAuth(r) => r.code(),
            AuthError::ProviderNotFound | AuthError::IdentityNotFound => "NOT_FOUND",
            AuthError::LastSignInMethod => "LAST_SIGN_IN_METHOD",
            AuthError::ReauthenticationRequired => "REAUTHENTICATION_REQUIRED",
            AuthError::MfaRequired { .. } => "MFA_REQUIRED",
            AuthError::InvalidMfaCode => "INVALID_MFA_CODE",
            AuthError::MfaTokenInvalid => "MFA_TOKEN_INVALID",
            AuthError::MfaAlreadyEnabled => "MFA_ALREADY_ENABLED",
            AuthError::MfaNotEnabled => "MFA_NOT_ENABLED",
            AuthError::PasskeyRejected => "PASSKEY_REJECTED",
            AuthError::PasskeyCeremonyInvalid => "PASSKEY_CEREMONY_INVALID",
            AuthError::PasskeyNotFound => "NOT_FOUND",
            AuthError::PasskeysUnavailable => "PASSKEYS_UNAVAILABLE",
            AuthError::Busy => "SERVICE_UNAVAILABLE",
            AuthError::Store(e) if e.is_unavailable() => "SERVICE_UNAVAILABLE",
            AuthError::Config(_) | AuthError::Store(_) => "INTERNAL",
        }
    }

    pub(crate) fn validation(field: &'static str, message: impl Into<String>) -> Self {
        AuthError::Validation { field, message: message.into() }
    }
}

/// "1 second", "30 seconds": a wait as a person reads it (never below one second).
fn seconds(d: Duration) -> String {
    match d.as_secs().max(1) {
        1 => "1 second".into(),
        n => format!("{n} seconds"),
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        AuthError::Store(CoreError::Database(e))
    }
}
