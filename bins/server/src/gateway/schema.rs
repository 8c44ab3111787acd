//! The GraphQL schema: resolvers that parse their arguments, check the caller, call one service
//! trait (or auth-service's REST API) and map the answer. Nothing here knows whether a service
//! is in this process or across the network.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{
    ComplexObject, Context, EmptySubscription, Enum, InputObject, MaybeUndefined, Object, Schema, SimpleObject, ID,
};
use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use chrono::{DateTime, Utc};
use fafnir_core::token::AccessClaims;
use fafnir_core::{CheckCode, PermissionChecker, RoleDirectory, UserId, MAX_ROLES_BATCH};
use fafnir_users::{ProfileDirectory, ProfileUpdate, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use serde::Deserialize;

use super::errors::{self, Code, GqlError};
use super::upstream::{AuthUpstream, ClientAddr, UpstreamResponse};

/// Deepest selection nesting accepted. Fafnir's own types nest four deep at most and none is
/// recursive, so this bounds introspection: 15 admits the introspection query GraphiQL sends
/// (graphql-js unwraps type references nine `ofType`s deep) and nothing deeper.
pub const MAX_DEPTH: usize = 15;
/// Largest query cost accepted: one per field, [`COST_SERVICE`] for a field that calls a
/// service, [`COST_PASSWORD`] for one that hashes a password; `users(first: n)` multiplies its
/// selection by `n`. So one request can make at most a few dozen service calls and
/// [`MAX_COMPLEXITY`] / [`COST_PASSWORD`] password checks.
pub const MAX_COMPLEXITY: usize = 1000;
/// The cost of a field that calls a service.
pub const COST_SERVICE: usize = 25;
/// The cost of a field that checks or sets a password (Argon2id, tens of milliseconds of CPU).
pub const COST_PASSWORD: usize = 250;

pub type GatewaySchema = Schema<Query, Mutation, EmptySubscription>;

/// The services every resolver reaches through a trait, shared by all requests.
#[derive(Clone, Debug)]
pub struct Services {
    pub checker: Arc<dyn PermissionChecker>,
    pub roles: Arc<dyn RoleDirectory>,
    pub profiles: Arc<dyn ProfileDirectory>,
    pub auth: AuthUpstream,
}

/// What the HTTP layer learned about one request.
pub struct RequestInfo {
    /// The access token presented (bearer header first, else the access cookie).
    pub token: Option<String>,
    /// Its verified claims (signature, times, and an active session); `None` when absent or
    /// refused.
    pub claims: Option<AccessClaims>,
    /// The token could not be checked right now (auth-service does not answer): fields that
    /// need a caller answer UNAVAILABLE rather than UNAUTHENTICATED.
    pub unverifiable: bool,
    /// The token came from the cookie (mutations then need the CSRF checks).
    pub via_cookie: bool,
    /// The CSRF checks pass (meaningful only with `via_cookie`).
    pub csrf_ok: bool,
    /// The request headers worth handing to auth-service (cookies, CSRF, origin, agent).
    pub forward: HeaderMap,
    pub client: ClientAddr,
}

impl std::fmt::Debug for RequestInfo {
    // Never the token or the forwarded headers (cookies).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestInfo")
            .field("claims", &self.claims)
            .field("via_cookie", &self.via_cookie)
            .field("csrf_ok", &self.csrf_ok)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// Builds the schema with its limits; `introspection` false refuses `__schema` and `__type`.
pub fn build(services: Services, introspection: bool) -> GatewaySchema {
    let b = Schema::build(Query, Mutation, EmptySubscription)
        .data(services)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(32)
        .limit_directives(8)
        .extension(super::cache::DocumentCache::default());
    if introspection {
        b.finish()
    } else {
        b.disable_introspection().finish()
    }
}

/// The per-request batch loader of roles (it carries the caller's token).
pub fn roles_loader(services: &Services, info: &RequestInfo) -> DataLoader<RolesLoader> {
    DataLoader::new(RolesLoader { roles: services.roles.clone(), bearer: info.token.clone() }, tokio::spawn)
}

// ---- context helpers ----

fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    ctx.data_unchecked::<Services>()
}

fn info<'a>(ctx: &Context<'a>) -> &'a RequestInfo {
    ctx.data_unchecked::<RequestInfo>()
}

/// The authenticated caller: the user and the token to forward.
fn caller<'a>(ctx: &Context<'a>) -> Result<(UserId, &'a str), GqlError> {
    let i = info(ctx);
    match (&i.claims, &i.token) {
        (Some(c), Some(t)) => Ok((c.sub, t.as_str())),
        (None, Some(_)) if i.unverifiable => Err(GqlError::unavailable("the auth service")),
        (None, Some(_)) => Err(GqlError::new(Code::Unauthenticated, "the access token is invalid or expired")),
        _ => Err(GqlError::unauthenticated()),
    }
}

/// A mutation's caller: authenticated, and through the CSRF checks when by cookie.
fn mutation_caller<'a>(ctx: &Context<'a>) -> Result<(UserId, &'a str), GqlError> {
    let who = caller(ctx)?;
    csrf_gate(ctx)?;
    Ok(who)
}

fn csrf_gate(ctx: &Context<'_>) -> Result<(), GqlError> {
    let i = info(ctx);
    if i.via_cookie && !i.csrf_ok {
        return Err(GqlError::csrf());
    }
    Ok(())
}

fn parse_user(field: &str, id: &ID) -> Result<UserId, GqlError> {
    UserId::parse(id.as_str()).map_err(|_| GqlError::bad_input(field, format!("{field} must be a user id (UUID)")))
}

/// The caller holds `permission` (asked of the permission checker).
async fn require(ctx: &Context<'_>, user: UserId, token: &str, permission: &str) -> Result<(), GqlError> {
    let d = services(ctx)
        .checker
        .check(Some(token), user, permission)
        .await
        .map_err(|e| errors::service("the security service", e))?;
    if d.allowed {
        Ok(())
    } else {
        Err(GqlError::forbidden(permission))
    }
}

/// Reading about `subject`: oneself needs nothing more, anyone else `users:read`.
async fn may_read(ctx: &Context<'_>, caller: UserId, token: &str, subject: UserId) -> Result<(), GqlError> {
    if caller == subject {
        return Ok(());
    }
    require(ctx, caller, token, "users:read").await
}

// ---- auth-service calls ----

async fn call_auth(
    ctx: &Context<'_>,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<serde_json::Value>,
) -> Result<UpstreamResponse, GqlError> {
    let i = info(ctx);
    let mut headers = i.forward.clone();
    if let Some(t) = bearer {
        // The gateway has already authenticated the caller (and done the CSRF checks).
        headers.remove(header::COOKIE);
        if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {t}")) {
            v.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, v);
        }
    }
    let body = match body {
        Some(b) => {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Bytes::from(serde_json::to_vec(&b).unwrap_or_default())
        }
        None => Bytes::new(),
    };
    services(ctx).auth.send(method, path, &headers, body, i.client.clone()).await.map_err(errors::upstream_unavailable)
}

/// Hands auth-service's `Set-Cookie` headers to the browser.
fn pass_cookies(ctx: &Context<'_>, res: &UpstreamResponse) {
    for v in res.headers.get_all(header::SET_COOKIE) {
        ctx.append_http_header(header::SET_COOKIE, v.clone());
    }
}

fn json<T: for<'de> Deserialize<'de>>(res: &UpstreamResponse) -> Result<T, GqlError> {
    if !res.status.is_success() {
        return Err(errors::rest(res));
    }
    serde_json::from_slice(&res.body).map_err(|e| {
        tracing::error!(error = %e, "auth-service answered an unexpected body");
        GqlError::new(Code::Internal, "internal error")
    })
}

#[derive(Deserialize)]
struct RestUser {
    id: String,
    email: String,
    email_verified: bool,
    created_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct RestUserResponse {
    user: RestUser,
}

#[derive(Deserialize)]
struct RestLogin {
    user: RestUser,
    access_expires_at: DateTime<Utc>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

// ---- types ----

/// An account.
#[derive(SimpleObject, Clone, Debug)]
pub struct User {
    pub id: ID,
    pub email: String,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
}

impl From<RestUser> for User {
    fn from(u: RestUser) -> Self {
        User { id: ID(u.id), email: u.email, email_verified: u.email_verified, created_at: u.created_at }
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
    user: User,
    grants: Option<Result<fafnir_core::Grants, GqlError>>,
    profile: Option<Result<fafnir_users::Profile, GqlError>>,
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

/// Roles of many users in one call to the role directory.
pub struct RolesLoader {
    roles: Arc<dyn RoleDirectory>,
    bearer: Option<String>,
}

impl std::fmt::Debug for RolesLoader {
    // Never the caller's token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolesLoader").field("roles", &self.roles).finish_non_exhaustive()
    }
}

impl Loader<UserId> for RolesLoader {
    type Value = Vec<String>;
    type Error = GqlError;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, Vec<String>>, GqlError> {
        let mut out = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_ROLES_BATCH) {
            let part = self
                .roles
                .roles_of(self.bearer.as_deref(), chunk)
                .await
                .map_err(|e| errors::service("the security service", e))?;
            out.extend(part);
        }
        Ok(out)
    }
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

impl From<RestLogin> for AuthPayload {
    fn from(l: RestLogin) -> Self {
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

#[derive(InputObject)]
pub struct ChangePasswordInput {
    pub current_password: String,
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

// ---- roots ----

#[derive(Debug)]
pub struct Query;

#[Object]
impl Query {
    /// The gateway is up.
    async fn health(&self) -> Health {
        Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() }
    }

    /// The caller. Checks the session (a logged-out token is refused).
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<Me>, GqlError> {
        let (user, token) = caller(ctx)?;
        let look = ctx.look_ahead();
        let want_grants = look.field("roles").exists() || look.field("permissions").exists();
        let want_profile = look.field("profile").exists();
        let s = services(ctx);
        let account = call_auth(ctx, Method::GET, "/auth/me?grants=false", Some(token), None);
        let grants = async {
            if !want_grants {
                return None;
            }
            Some(match s.checker.grants(Some(token), user).await {
                Ok(g) => Ok(g.unwrap_or_default()),
                Err(e) => Err(errors::service("the security service", e)),
            })
        };
        let profile = async {
            if !want_profile {
                return None;
            }
            Some(s.profiles.get(Some(token), user).await.map_err(errors::users))
        };
        let (account, grants, profile) = tokio::join!(account, grants, profile);
        let account: RestUser = json(&account?)?;
        Ok(Some(Me { user: account.into(), grants, profile }))
    }

    /// Whether the caller (or, with `users:read`, another user) holds a permission.
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn check_permission(
        &self,
        ctx: &Context<'_>,
        request: HasPermissionRequest,
    ) -> Result<Option<HasPermissionResponse>, GqlError> {
        let (me, token) = caller(ctx)?;
        let subject = match &request.user_id {
            Some(id) => parse_user("userId", id)?,
            None => me,
        };
        may_read(ctx, me, token, subject).await?;
        let d = services(ctx)
            .checker
            .check(Some(token), subject, &request.permission)
            .await
            .map_err(|e| errors::service("the security service", e))?;
        Ok(Some(HasPermissionResponse { has_permission: d.allowed, permission_code: d.code.into() }))
    }

    /// A profile: the caller's when `userId` is absent; anyone else's needs `users:read`.
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn profile(&self, ctx: &Context<'_>, user_id: Option<ID>) -> Result<Option<Profile>, GqlError> {
        let (me, token) = caller(ctx)?;
        let subject = match &user_id {
            Some(id) => parse_user("userId", id)?,
            None => me,
        };
        may_read(ctx, me, token, subject).await?;
        match services(ctx).profiles.get(Some(token), subject).await {
            Ok(p) => Ok(Some(p.into())),
            Err(fafnir_users::UsersError::NotFound) => {
                Err(GqlError::new(Code::NotFound, "no profile for this user id"))
            }
            Err(e) => Err(errors::users(e)),
        }
    }

    /// The user directory, oldest first. Needs `users:read`.
    #[graphql(
        complexity = "COST_SERVICE + first.unwrap_or(DEFAULT_PAGE_SIZE as i32).clamp(1, MAX_PAGE_SIZE as i32) as usize * child_complexity"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "Page size, 1 to 100.")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> Result<Option<UserConnection>, GqlError> {
        let (me, token) = caller(ctx)?;
        let first = first.unwrap_or(DEFAULT_PAGE_SIZE as i32);
        if !(1..=MAX_PAGE_SIZE as i32).contains(&first) {
            return Err(GqlError::bad_input("first", format!("first must be between 1 and {MAX_PAGE_SIZE}")));
        }
        require(ctx, me, token, "users:read").await?;
        let page = services(ctx)
            .profiles
            .list(Some(token), Some(first as u32), after.as_deref())
            .await
            .map_err(errors::users)?;
        let nodes = page
            .items
            .into_iter()
            .map(|p| DirectoryUser { id: ID(p.user_id.to_string()), user_id: p.user_id, profile: p.into() })
            .collect();
        Ok(Some(UserConnection {
            nodes,
            page_info: PageInfo { has_next_page: page.next_cursor.is_some(), end_cursor: page.next_cursor },
        }))
    }

    /// Every role. Needs a logged-in caller.
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn roles(&self, ctx: &Context<'_>) -> Result<Option<Vec<Role>>, GqlError> {
        let (_, token) = caller(ctx)?;
        let roles =
            services(ctx).roles.roles(Some(token)).await.map_err(|e| errors::service("the security service", e))?;
        Ok(Some(
            roles
                .into_iter()
                .map(|r| Role {
                    name: r.name,
                    description: r.description,
                    permissions: r.permissions,
                    inherits: r.inherits,
                    builtin: r.builtin,
                })
                .collect(),
        ))
    }
}

#[derive(Debug)]
pub struct Mutation;

/// Checks, through auth-service, that the caller's session is still live (the gateway verifies
/// tokens locally; this refuses a logged-out token before a mutation acts on it).
async fn live_session(ctx: &Context<'_>, token: &str) -> Result<(), GqlError> {
    let res = call_auth(ctx, Method::GET, "/auth/me?grants=false", Some(token), None).await?;
    if res.status == StatusCode::OK {
        Ok(())
    } else {
        Err(errors::rest(&res))
    }
}

#[Object]
impl Mutation {
    /// Creates an account (no session: log in afterwards).
    #[graphql(complexity = "COST_PASSWORD + child_complexity")]
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> Result<Option<User>, GqlError> {
        let body = serde_json::json!({
            "email": input.email, "password": input.password, "display_name": input.display_name,
        });
        let res = call_auth(ctx, Method::POST, "/auth/register", None, Some(body)).await?;
        let r: RestUserResponse = json(&res)?;
        Ok(Some(r.user.into()))
    }

    /// Logs in: sets the three cookies, exactly as `POST /auth/login`.
    #[graphql(complexity = "COST_PASSWORD + child_complexity")]
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<Option<AuthPayload>, GqlError> {
        let body = serde_json::json!({ "email": input.email, "password": input.password });
        let res = call_auth(ctx, Method::POST, "/auth/login", None, Some(body)).await?;
        let login: RestLogin = json(&res)?;
        pass_cookies(ctx, &res);
        Ok(Some(login.into()))
    }

    /// Ends the session and clears the cookies; with `refreshToken` (API clients), the session
    /// that refresh token belongs to ends too (as REST's `POST /auth/logout {refresh_token}`).
    #[graphql(complexity = "COST_SERVICE")]
    async fn logout(&self, ctx: &Context<'_>, refresh_token: Option<String>) -> Result<Option<bool>, GqlError> {
        csrf_gate(ctx)?;
        let body = refresh_token.map(|t| serde_json::json!({ "refresh_token": t }));
        let res = call_auth(ctx, Method::POST, "/auth/logout", None, body).await?;
        if !res.status.is_success() {
            return Err(errors::rest(&res));
        }
        pass_cookies(ctx, &res);
        Ok(Some(true))
    }

    /// Rotates the refresh token: the one given (API clients: new tokens come back in the
    /// payload), else the `fafnir_refresh` cookie (it is scoped to `/auth`, so browsers send it
    /// only through `POST /auth/refresh`, which the gateway serves too).
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn refresh(&self, ctx: &Context<'_>, refresh_token: Option<String>) -> Result<Option<AuthPayload>, GqlError> {
        let body = refresh_token.map(|t| serde_json::json!({ "refresh_token": t }));
        if body.is_none() {
            csrf_gate(ctx)?;
        }
        let res = call_auth(ctx, Method::POST, "/auth/refresh", None, body).await?;
        pass_cookies(ctx, &res);
        let login: RestLogin = json(&res)?;
        Ok(Some(login.into()))
    }

    /// Changes the caller's password; every other session is revoked.
    #[graphql(complexity = "COST_PASSWORD")]
    async fn change_password(&self, ctx: &Context<'_>, input: ChangePasswordInput) -> Result<Option<bool>, GqlError> {
        let (_, token) = mutation_caller(ctx)?;
        let body =
            serde_json::json!({ "current_password": input.current_password, "new_password": input.new_password });
        // By cookie, the cookie and CSRF header go as they came, so that auth-service applies its
        // own full CSRF check (bound to the session) as well.
        let bearer = (!info(ctx).via_cookie).then_some(token);
        let res = call_auth(ctx, Method::POST, "/auth/password", bearer, Some(body)).await?;
        if !res.status.is_success() {
            return Err(errors::rest(&res));
        }
        Ok(Some(true))
    }

    /// Updates a profile: the caller's (needs `profile:write`) or, with `userId`, anyone's
    /// (needs `users:write`).
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        input: ProfileInput,
        user_id: Option<ID>,
    ) -> Result<Option<Profile>, GqlError> {
        let (me, token) = mutation_caller(ctx)?;
        let subject = match &user_id {
            Some(id) => parse_user("userId", id)?,
            None => me,
        };
        live_session(ctx, token).await?;
        require(ctx, me, token, if subject == me { "profile:write" } else { "users:write" }).await?;
        let p = services(ctx)
            .profiles
            .update(Some(token), subject, &ProfileUpdate::from(input))
            .await
            .map_err(errors::users)?;
        Ok(Some(p.into()))
    }

    /// Grants a role. Needs `roles:manage`.
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn assign_role(
        &self,
        ctx: &Context<'_>,
        input: RoleAssignmentInput,
    ) -> Result<Option<RoleAssignment>, GqlError> {
        role_change(ctx, input, true).await.map(Some)
    }

    /// Revokes a role. Needs `roles:manage`.
    #[graphql(complexity = "COST_SERVICE + child_complexity")]
    async fn revoke_role(
        &self,
        ctx: &Context<'_>,
        input: RoleAssignmentInput,
    ) -> Result<Option<RoleAssignment>, GqlError> {
        role_change(ctx, input, false).await.map(Some)
    }
}

async fn role_change(ctx: &Context<'_>, input: RoleAssignmentInput, grant: bool) -> Result<RoleAssignment, GqlError> {
    let (me, token) = mutation_caller(ctx)?;
    let user = parse_user("userId", &input.user_id)?;
    live_session(ctx, token).await?;
    require(ctx, me, token, "roles:manage").await?;
    let dir = &services(ctx).roles;
    let r = if grant {
        dir.assign(Some(token), user, &input.role).await
    } else {
        dir.revoke(Some(token), user, &input.role).await
    };
    let changed = r.map_err(|e| errors::service("the security service", e))?;
    Ok(RoleAssignment { user_id: input.user_id, role: input.role, changed })
}
