//! The wire types of the REST surface: every request and response body of `/auth/*`. They are
//! public, with public fields, and both serialise and deserialise where a client needs them, so
//! that a client in Rust (the GraphQL gateway is one) shares them instead of keeping copies: a
//! renamed field fails to compile rather than to parse.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Account;

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// ASCII only (IDN domains as `xn--…`); compared case-insensitively.
    #[schema(example = "ada@example.com", format = Email)]
    pub email: String,
    /// 8 to 128 characters (counted after NFKC normalisation), no NUL; a guessable password
    /// is refused with 422 `VALIDATION_FAILED`.
    #[schema(example = "correct horse battery staple", format = Password, min_length = 8, max_length = 128)]
    pub password: String,
    pub display_name: Option<String>,
}

/// The contract's `user`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserDto {
    #[schema(format = Uuid)]
    pub id: String,
    pub email: String,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
}

impl From<&Account> for UserDto {
    fn from(a: &Account) -> Self {
        UserDto {
            id: a.id.to_string(),
            email: a.email.to_string(),
            email_verified: a.email_verified,
            created_at: a.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    pub user: UserDto,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com", format = Email)]
    pub email: String,
    #[schema(example = "correct horse battery staple", format = Password)]
    pub password: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub user: UserDto,
    pub access_expires_at: DateTime<Utc>,
    /// Present only when the refresh token was sent in the body (API clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// The grants `/auth/token` knows (documentation only: the field is read as a string, and any
/// other value is answered 400 `unsupported_grant_type`).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum GrantType {
    Password,
    RefreshToken,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"grant_type": "password", "username": "ada@example.com", "password": "correct horse battery staple"}))]
pub struct TokenRequest {
    /// `password` or `refresh_token`.
    #[schema(value_type = GrantType)]
    pub grant_type: String,
    pub email: Option<String>,
    /// RFC 6749 §4.3 calls it `username`; either name is accepted.
    pub username: Option<String>,
    pub password: Option<String>,
    pub refresh_token: Option<String>,
    /// Ignored (scopes are not used).
    #[allow(dead_code)]
    pub scope: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// OAuth 2.0 error (RFC 6749 §5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthError {
    #[schema(example = "invalid_grant")]
    pub error: &'static str,
    pub error_description: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

// Written by `http/json.rs` (not through serde) on the REST answer: a change to a serde
// attribute here must be made there too (its tests compare the two). A plain comment: doc
// comments become the schema's description in the OpenAPI document.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MeResponse {
    #[schema(format = Uuid)]
    pub id: String,
    pub email: String,
    pub email_verified: bool,
    /// Left out with `?grants=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Effective permissions; left out with `?grants=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(serialize_with = "fafnir_core::clock::serialize_rfc3339")]
    pub created_at: DateTime<Utc>,
    /// How the account can sign in: `password` if it has one, then each linked provider.
    #[serde(default)]
    pub sign_in_methods: Vec<String>,
}

/// Query of `GET /auth/me`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MeQuery {
    /// Include roles and permissions (default true). `false` skips the permission service: the
    /// gateway asks it itself, so that one service down fails only the fields that need it.
    #[serde(default)]
    pub grants: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionDto {
    #[schema(format = Uuid)]
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The session this request is made with.
    pub current: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionsResponse {
    pub sessions: Vec<SessionDto>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    /// Required, except for an account without a password setting its first one.
    #[schema(format = Password)]
    #[serde(default)]
    pub current_password: Option<String>,
    /// 8 to 128 characters (counted after NFKC normalisation), no NUL; a guessable password
    /// is refused with 422 `VALIDATION_FAILED`.
    #[schema(format = Password, min_length = 8, max_length = 128)]
    pub new_password: String,
}

/// Optional body of `POST /auth/logout`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// A refresh token (API clients): its session ends too.
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for LogoutRequest {
    // Carries a token: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogoutRequest { *** }")
    }
}

#[derive(Deserialize, ToSchema)]
pub struct IntrospectRequest {
    /// The access token to check.
    pub token: String,
    /// Ignored: only access tokens are introspected.
    #[allow(dead_code)]
    pub token_type_hint: Option<String>,
}

/// RFC 7662 §2.2: `active`, and for an active token its claims.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct IntrospectResponse {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub sub: Option<String>,
    /// The session the token belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// Present on inactive answers: `true` when the token is genuine but its session has ended
    /// (for good), `false` when the token itself is refused (expired, forged, another issuer's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_ended: Option<bool>,
}

/// Body of `POST /auth/email/verify`, `/auth/email/change/confirm`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkTokenRequest {
    /// The `token` of the link's query.
    pub token: String,
}

impl std::fmt::Debug for LinkTokenRequest {
    // Carries a token: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkTokenRequest { *** }")
    }
}

/// Optional body of `POST /auth/email/verify/request`: without a session, the address to send
/// a new link to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    #[schema(format = Email)]
    pub email: Option<String>,
}

/// Body of `POST /auth/password/forgot`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPasswordRequest {
    #[schema(format = Email)]
    pub email: String,
}

/// Body of `POST /auth/password/reset`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    pub token: String,
    /// As at registration: 8 to 128 characters, not guessable.
    #[schema(format = Password, min_length = 8, max_length = 128)]
    pub new_password: String,
}

impl std::fmt::Debug for ResetPasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetPasswordRequest { *** }")
    }
}

/// Body of `POST /auth/email/change`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChangeRequest {
    #[schema(format = Email)]
    pub new_email: String,
    /// Required, except for an account without a password, which must have signed in within
    /// the last 10 minutes instead.
    #[schema(format = Password)]
    #[serde(default)]
    pub current_password: Option<String>,
}

impl std::fmt::Debug for EmailChangeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChangeRequest").field("new_email", &self.new_email).finish_non_exhaustive()
    }
}

/// The answer of the requests that send a link: the same whether or not a mail was sent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AcceptedResponse {
    /// `accepted`.
    pub status: String,
    /// What happens next, for people.
    pub message: String,
}

impl AcceptedResponse {
    pub fn new(message: &str) -> Self {
        Self { status: "accepted".into(), message: message.into() }
    }
}

/// A sign-in provider.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderDto {
    pub name: String,
    pub display_name: String,
}

impl From<crate::oauth::ProviderInfo> for ProviderDto {
    fn from(p: crate::oauth::ProviderInfo) -> Self {
        ProviderDto { name: p.name, display_name: p.display_name }
    }
}

/// An identity at a provider, linked to the caller's account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IdentityDto {
    #[schema(format = Uuid)]
    pub id: String,
    pub provider: String,
    /// The address the provider gave at the last sign-in.
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
}

impl From<crate::oauth::Identity> for IdentityDto {
    fn from(i: crate::oauth::Identity) -> Self {
        IdentityDto {
            id: i.id.to_string(),
            provider: i.provider,
            email: i.email,
            created_at: i.created_at,
            last_used_at: i.last_used_at,
        }
    }
}

/// `POST /auth/login` (and GraphQL `login`) for an account with a second factor: no session
/// yet; answer with `POST /auth/mfa/verify`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct MfaRequiredResponse {
    /// Always true.
    pub mfa_required: bool,
    /// Single use, valid five minutes.
    pub mfa_token: String,
    /// `totp`, `recovery_code`.
    pub methods: Vec<String>,
}

/// What `POST /auth/login` answers: a session, or the second-factor step.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum LoginAnswer {
    Session(LoginResponse),
    MfaRequired(MfaRequiredResponse),
}

/// `/auth/token`'s password grant for an account with a second factor (401, with the body shape
/// Auth0 uses for the same case).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct OAuthMfaRequired {
    #[schema(example = "mfa_required")]
    pub error: String,
    pub error_description: String,
    pub mfa_token: String,
    pub methods: Vec<String>,
}

/// Body of `POST /auth/mfa/verify`: the challenge (or the `fafnir_mfa` cookie after a provider
/// sign-in) and one factor.
#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct MfaVerifyRequest {
    pub mfa_token: Option<String>,
    /// A 6-digit TOTP code.
    pub code: Option<String>,
    /// One of the recovery codes (used up).
    pub recovery_code: Option<String>,
}

impl std::fmt::Debug for MfaVerifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaVerifyRequest { *** }")
    }
}

/// `POST /auth/mfa/totp/setup`: the secret for the authenticator app (not in force until
/// confirmed).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TotpSetupResponse {
    /// Base32, for typing in.
    pub secret: String,
    /// `otpauth://totp/…`, for a QR code.
    pub otpauth_url: String,
}

/// A TOTP code.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCodeRequest {
    pub code: String,
}

/// Re-authentication for a sensitive change: one of a TOTP code, a recovery code or the
/// current password.
#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ReauthRequest {
    pub code: Option<String>,
    pub recovery_code: Option<String>,
    #[schema(format = Password)]
    pub password: Option<String>,
}

impl std::fmt::Debug for ReauthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReauthRequest { *** }")
    }
}

/// A new set of recovery codes: shown once.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodesResponse {
    pub recovery_codes: Vec<String>,
}

/// The caller's second factors.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MfaStatusResponse {
    pub totp: bool,
    /// Passkeys registered.
    #[serde(default)]
    pub passkeys: u32,
    pub recovery_codes_left: u32,
}

/// A started passkey ceremony: hand `options` to `navigator.credentials.create()` (registration)
/// or `.get()` (sign-in), and send `ceremony` back with the browser's answer within 5 minutes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PasskeyStartResponse {
    pub ceremony: String,
    /// `{publicKey: …}`, binary fields in base64url (decode them before calling the browser, or
    /// use `PublicKeyCredential.parseCreationOptionsFromJSON` / `parseRequestOptionsFromJSON`).
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

/// `POST /auth/passkeys/register/finish`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PasskeyRegisterFinishRequest {
    pub ceremony: String,
    /// The `PublicKeyCredential` from `navigator.credentials.create()` as JSON (`toJSON()`).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
    /// 1–64 characters; "Passkey" when absent.
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /auth/passkeys/login/finish`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PasskeyLoginFinishRequest {
    pub ceremony: String,
    /// The `PublicKeyCredential` from `navigator.credentials.get()` as JSON (`toJSON()`).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// `PATCH /auth/passkeys/{id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PasskeyRenameRequest {
    /// 1–64 characters.
    pub name: String,
}

/// A passkey of the caller's.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PasskeyDto {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The authenticator says it is backed up (synced to the person's other devices).
    pub backed_up: bool,
}

impl From<crate::passkey::PasskeyInfo> for PasskeyDto {
    fn from(p: crate::passkey::PasskeyInfo) -> Self {
        PasskeyDto {
            id: p.id.to_string(),
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            backed_up: p.backed_up,
        }
    }
}

/// A registered passkey; `recovery_codes` (shown once) when it is the account's first second
/// factor.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PasskeyRegisteredResponse {
    pub passkey: PasskeyDto,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
}

macro_rules! redacted_debug {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($t), " { *** }"))
            }
        }
    )*};
}

// Secrets (a TOTP secret, codes, tokens): never printed.
redacted_debug!(
    LoginAnswer,
    TotpSetupResponse,
    TotpCodeRequest,
    RecoveryCodesResponse,
    PasskeyRegisterFinishRequest,
    PasskeyLoginFinishRequest,
    MfaRequiredResponse,
    OAuthMfaRequired
);
