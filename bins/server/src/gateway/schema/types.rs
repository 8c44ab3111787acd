//! The schema's object, input and enum types, and their conversions.

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, Enum, InputObject, MaybeUndefined, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use fafnir_auth::http::dto;
use fafnir_core::{CheckCode, UserId};
use fafnir_users::ProfileUpdate;

use crate::gateway::errors::{Code, GqlError};

use super::loaders::*;

// ---- types ----

/// An account.
#[derive(SimpleObject, Clone, Debug)]
pub struct User {
    pub id: ID,
    pub email: String,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
}

impl From<dto::UserDto> for User {
    fn from(u: dto::UserDto) -> Self {
        User { id: ID(u.id), email: u.email, email_verified: u.email_verified, created_at: u.created_at }
    }
}

impl From<dto::MeResponse> for User {
    fn from(u: dto::MeResponse) -> Self {
        User { id: ID(u.id), email: u.email, email_verified: u.email_verified, created_at: u.created_at }
    }
}

/// A new TOTP secret for the authenticator app.
#[derive(SimpleObject)]
pub struct TotpSetup {
    /// Base32, for typing in.
    pub secret: String,
    /// `otpauth://totp/…`, for a QR code.
    pub otpauth_url: String,
}

impl std::fmt::Debug for TotpSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSetup { *** }")
    }
}

/// The caller's second factors.
#[derive(SimpleObject, Clone, Debug)]
pub struct Mfa {
    /// TOTP is on.
    pub totp: bool,
    /// The registered passkeys, oldest first.
    pub passkeys: Vec<Passkey>,
    pub recovery_codes_left: u32,
}

/// A passkey of the caller's.
#[derive(SimpleObject, Clone, Debug)]
pub struct Passkey {
    pub id: ID,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The authenticator says it is backed up (synced to the person's other devices).
    pub backed_up: bool,
}

impl From<dto::PasskeyDto> for Passkey {
    fn from(p: dto::PasskeyDto) -> Self {
        Passkey {
            id: ID(p.id),
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            backed_up: p.backed_up,
        }
    }
}

/// A started passkey ceremony: `options` go to `navigator.credentials.create()` or `.get()`
/// (binary fields in base64url), and `ceremony` comes back with the browser's answer.
#[derive(SimpleObject, Clone, Debug)]
pub struct PasskeyCeremony {
    pub ceremony: String,
    pub options: async_graphql::Json<serde_json::Value>,
}

impl From<dto::PasskeyStartResponse> for PasskeyCeremony {
    fn from(s: dto::PasskeyStartResponse) -> Self {
        PasskeyCeremony { ceremony: s.ceremony, options: async_graphql::Json(s.options) }
    }
}

/// A registered passkey; `recoveryCodes` (shown once) when it is the account's first second
/// factor.
#[derive(SimpleObject, Clone, Debug)]
pub struct PasskeyRegistration {
    pub passkey: Passkey,
    pub recovery_codes: Option<Vec<String>>,
}

#[derive(InputObject)]
pub struct VerifyMfaInput {
    /// From the `login` error's `extensions.mfaToken`.
    pub mfa_token: String,
    /// A 6-digit TOTP code.
    pub code: Option<String>,
    pub recovery_code: Option<String>,
}

impl std::fmt::Debug for VerifyMfaInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyMfaInput { *** }")
    }
}

/// Re-authentication for a sensitive change: exactly one of these.
#[derive(InputObject)]
pub struct ReauthInput {
    pub code: Option<String>,
    pub recovery_code: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for ReauthInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReauthInput { *** }")
    }
}

impl ReauthInput {
    pub fn into_dto(self) -> dto::ReauthRequest {
        dto::ReauthRequest { code: self.code, recovery_code: self.recovery_code, password: self.password }
    }
}

/// A sign-in provider (social login).
#[derive(SimpleObject, Clone, Debug)]
pub struct AuthProvider {
    /// The name in `/auth/oauth/{name}/authorize`.
    pub name: String,
    pub display_name: String,
}

impl From<dto::ProviderDto> for AuthProvider {
    fn from(p: dto::ProviderDto) -> Self {
        AuthProvider { name: p.name, display_name: p.display_name }
    }
}

/// An identity at a sign-in provider, linked to the caller's account.
#[derive(SimpleObject, Clone, Debug)]
pub struct Identity {
    pub id: ID,
    pub provider: String,
    /// The address the provider gave at the last sign-in.
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
}

impl From<dto::IdentityDto> for Identity {
    fn from(i: dto::IdentityDto) -> Self {
        Identity {
            id: ID(i.id),
            provider: i.provider,
            email: i.email,
            created_at: i.created_at,
            last_used_at: i.last_used_at,
        }
    }
}

/// A user's profile.
#[derive(SimpleObject, Clone, Debug)]
pub struct Profile {
    pub user_id: ID,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    /// An http(s) URL.
    pub avatar_url: Option<String>,
    pub bio: Option<String>,
    /// A BCP 47 language tag such as `en` or `pt-BR`.
    pub locale: Option<String>,
    /// An IANA time zone name such as `Europe/Paris`.
    pub timezone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<fafnir_users::Profile> for Profile {
    fn from(p: fafnir_users::Profile) -> Self {
        Profile {
            user_id: ID(p.user_id.to_string()),
            first_name: p.first_name,
            last_name: p.last_name,
            display_name: p.display_name,
            avatar_url: p.avatar_url,
            bio: p.bio,
            locale: p.locale,
            timezone: p.timezone,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// The caller: account, roles, effective permissions and profile, fetched in parallel from the
/// three services. A field whose service is down is null with an `UNAVAILABLE` error.
#[derive(Debug)]
pub struct Me {
    pub(super) user: User,
    pub(super) sign_in_methods: Vec<String>,
    pub(super) grants: Option<Result<fafnir_core::Grants, GqlError>>,
    pub(super) profile: Option<Result<fafnir_users::Profile, GqlError>>,
}

#[Object]
impl Me {
    async fn user(&self) -> &User {
        &self.user
    }

    /// Directly granted role names.
    async fn roles(&self) -> Result<Option<Vec<String>>, GqlError> {
        match &self.grants {
            Some(Ok(g)) => Ok(Some(g.roles.clone())),
            Some(Err(e)) => Err(e.clone()),
            None => Ok(None),
        }
    }

    /// Effective permissions (inheritance resolved).
    async fn permissions(&self) -> Result<Option<Vec<String>>, GqlError> {
        match &self.grants {
            Some(Ok(g)) => Ok(Some(g.permissions.clone())),
            Some(Err(e)) => Err(e.clone()),
            None => Ok(None),
        }
    }

    /// How the account can sign in: `password` if it has one, then each linked provider.
    async fn sign_in_methods(&self) -> &[String] {
        &self.sign_in_methods
    }

    /// The account's second factors.
    async fn mfa(&self, ctx: &Context<'_>) -> Result<Mfa, GqlError> {
        let (_, token) = super::context::caller(ctx)?;
        let res = super::context::get_auth(ctx, "/auth/mfa", Some(token)).await?;
        let s: dto::MfaStatusResponse = super::context::json(&res)?;
        let passkeys: Vec<dto::PasskeyDto> = if s.passkeys == 0 {
            Vec::new()
        } else {
            super::context::json(&super::context::get_auth(ctx, "/auth/passkeys", Some(token)).await?)?
        };
        Ok(Mfa {
            totp: s.totp,
            passkeys: passkeys.into_iter().map(Passkey::from).collect(),
            recovery_codes_left: s.recovery_codes_left,
        })
    }

    /// The identities at sign-in providers linked to the account.
    async fn identities(&self, ctx: &Context<'_>) -> Result<Vec<Identity>, GqlError> {
        let (_, token) = super::context::caller(ctx)?;
        let res = super::context::get_auth(ctx, "/auth/identities", Some(token)).await?;
        let list: Vec<dto::IdentityDto> = super::context::json(&res)?;
        Ok(list.into_iter().map(Identity::from).collect())
    }

    async fn profile(&self) -> Result<Option<Profile>, GqlError> {
        match &self.profile {
            Some(Ok(p)) => Ok(Some(p.clone().into())),
            Some(Err(e)) if e.code == Code::NotFound => Ok(None),
            Some(Err(e)) => Err(e.clone()),
            None => Ok(None),
        }
    }
}

/// The outcome code of a permission check.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum PermissionCode {
    PermissionGranted,
    PermissionDenied,
    UserNotFound,
    InvalidPermission,
}

impl From<CheckCode> for PermissionCode {
    fn from(c: CheckCode) -> Self {
        match c {
            CheckCode::PermissionGranted => PermissionCode::PermissionGranted,
            CheckCode::PermissionDenied => PermissionCode::PermissionDenied,
            CheckCode::UserNotFound => PermissionCode::UserNotFound,
            CheckCode::InvalidPermission => PermissionCode::InvalidPermission,
        }
    }
}

/// Which permission to check, for whom (the caller when `userId` is absent; anyone else needs
/// `users:read`).
#[derive(InputObject, Debug)]
pub struct HasPermissionRequest {
    /// `resource:action`, e.g. `users:read`.
    pub permission: String,
    pub user_id: Option<ID>,
}

#[derive(SimpleObject, Debug)]
pub struct HasPermissionResponse {
    pub has_permission: bool,
    pub permission_code: PermissionCode,
}

/// A role.
#[derive(SimpleObject, Debug)]
pub struct Role {
    pub name: String,
    pub description: String,
    /// The role's own permissions (not inherited ones).
    pub permissions: Vec<String>,
    /// Roles it inherits every permission from.
    pub inherits: Vec<String>,
    /// Seeded roles (`admin`, `member`) cannot be deleted.
    pub builtin: bool,
}

/// A user in the directory (`users`).
#[derive(SimpleObject, Debug)]
#[graphql(complex)]
pub struct DirectoryUser {
    pub id: ID,
    pub profile: Profile,
    #[graphql(skip)]
    pub user_id: UserId,
}

#[ComplexObject]
impl DirectoryUser {
    /// Directly granted role names, loaded for the whole page in one call. Null with an
    /// `UNAVAILABLE` error when the security service is down.
    async fn roles(&self, ctx: &Context<'_>) -> Result<Option<Vec<String>>, GqlError> {
        let loader = ctx.data_unchecked::<DataLoader<RolesLoader>>();
        Ok(Some(loader.load_one(self.user_id).await?.unwrap_or_default()))
    }
}

#[derive(SimpleObject, Debug)]
pub struct PageInfo {
    /// Pass as `after` for the next page; null on the last page.
    pub end_cursor: Option<String>,
    pub has_next_page: bool,
}

#[derive(SimpleObject, Debug)]
pub struct UserConnection {
    pub nodes: Vec<DirectoryUser>,
    pub page_info: PageInfo,
}

#[derive(SimpleObject, Debug)]
pub struct Health {
    /// `ok` when the gateway serves.
    pub status: String,
    pub version: String,
}

/// After `login` or `refresh`: the cookies are set; the tokens are in the body only when the
/// refresh token was passed as an argument (API clients).
#[derive(SimpleObject)]
pub struct AuthPayload {
    pub user: User,
    pub access_expires_at: DateTime<Utc>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
}

// Never the passwords or tokens these carry.
impl std::fmt::Debug for RegisterInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterInput").field("email", &self.email).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LoginInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginInput").field("email", &self.email).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ResetPasswordInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetPasswordInput { .. }")
    }
}

impl std::fmt::Debug for ChangeEmailInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeEmailInput").field("new_email", &self.new_email).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ChangePasswordInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangePasswordInput { .. }")
    }
}

impl std::fmt::Debug for AuthPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthPayload")
            .field("user", &self.user)
            .field("access_expires_at", &self.access_expires_at)
            .finish_non_exhaustive()
    }
}

impl From<dto::LoginResponse> for AuthPayload {
    fn from(l: dto::LoginResponse) -> Self {
        AuthPayload {
            user: l.user.into(),
            access_expires_at: l.access_expires_at,
            access_token: l.access_token,
            refresh_token: l.refresh_token,
        }
    }
}

#[derive(InputObject)]
pub struct RegisterInput {
    pub email: String,
    pub password: String,
    pub display_name: Option<String>,
}

#[derive(InputObject)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
}

/// An account as administrators see it.
#[derive(SimpleObject, Debug)]
pub struct AdminUser {
    pub id: ID,
    pub email: String,
    pub email_verified: bool,
    /// `active` or `disabled`.
    pub state: String,
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

impl From<fafnir_auth::http::AdminUserDto> for AdminUser {
    fn from(u: fafnir_auth::http::AdminUserDto) -> Self {
        AdminUser {
            id: ID(u.id),
            email: u.email,
            email_verified: u.email_verified,
            state: u.state,
            roles: u.roles,
            created_at: u.created_at,
            last_sign_in_at: u.last_sign_in_at,
        }
    }
}

/// A page of accounts; pass `next` as `after` for the following one.
#[derive(SimpleObject, Debug)]
pub struct AdminUserPage {
    pub users: Vec<AdminUser>,
    pub next: Option<String>,
}

/// A security event of the audit log.
#[derive(SimpleObject, Debug)]
pub struct AuditEvent {
    pub id: ID,
    pub at: DateTime<Utc>,
    /// `login_succeeded`, `login_failed`, `account_disabled`, …
    #[graphql(name = "type")]
    pub kind: String,
    pub actor_id: Option<ID>,
    pub subject_id: Option<ID>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: async_graphql::Json<serde_json::Value>,
}

impl From<fafnir_auth::http::AuditEventDto> for AuditEvent {
    fn from(e: fafnir_auth::http::AuditEventDto) -> Self {
        AuditEvent {
            id: ID(e.id.to_string()),
            at: e.at,
            kind: e.kind,
            actor_id: e.actor_id.map(ID),
            subject_id: e.subject_id.map(ID),
            ip: e.ip,
            user_agent: e.user_agent,
            details: async_graphql::Json(e.details),
        }
    }
}

/// A page of audit events, newest first.
#[derive(SimpleObject, Debug)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub next: Option<String>,
}

#[derive(InputObject)]
pub struct ResetPasswordInput {
    /// The `token` of the reset link.
    pub token: String,
    pub new_password: String,
}

#[derive(InputObject)]
pub struct ChangeEmailInput {
    pub new_email: String,
    /// Required, except for an account without a password (within 10 minutes of signing in).
    pub current_password: Option<String>,
}

#[derive(InputObject)]
pub struct ChangePasswordInput {
    /// Required, except for an account without a password setting its first one (within 10
    /// minutes of signing in).
    pub current_password: Option<String>,
    pub new_password: String,
}

/// A partial update: an absent field is left alone, `null` clears it, a value sets it.
#[derive(InputObject, Debug, Default)]
pub struct ProfileInput {
    pub first_name: MaybeUndefined<String>,
    pub last_name: MaybeUndefined<String>,
    pub display_name: MaybeUndefined<String>,
    pub avatar_url: MaybeUndefined<String>,
    pub bio: MaybeUndefined<String>,
    pub locale: MaybeUndefined<String>,
    pub timezone: MaybeUndefined<String>,
}

fn patch(v: MaybeUndefined<String>) -> Option<Option<String>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(s) => Some(Some(s)),
    }
}

impl From<ProfileInput> for ProfileUpdate {
    fn from(i: ProfileInput) -> Self {
        ProfileUpdate {
            first_name: patch(i.first_name),
            last_name: patch(i.last_name),
            display_name: patch(i.display_name),
            avatar_url: patch(i.avatar_url),
            bio: patch(i.bio),
            locale: patch(i.locale),
            timezone: patch(i.timezone),
        }
    }
}

#[derive(InputObject, Debug)]
pub struct RoleAssignmentInput {
    pub user_id: ID,
    /// A role name, e.g. `admin`.
    pub role: String,
}

#[derive(SimpleObject, Debug)]
pub struct RoleAssignment {
    pub user_id: ID,
    pub role: String,
    /// False when nothing changed (already granted, or not held).
    pub changed: bool,
}
