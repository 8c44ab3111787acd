//! The account lifecycle and administration endpoints: `DELETE /auth/account` (and the original
//! system's `DELETE /auth/delete`), `GET /auth/activity`, and `/admin/*` (permission
//! `users:manage`, held by `admin`; others get 403 `FORBIDDEN`).

use axum::extract::{FromRef, FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use fafnir_core::UserId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::JsonBody;
use super::error::{ApiError, ErrorBody};
use super::extract::{Client, CurrentUser};
use super::AuthHttp;
use crate::{AccountState, AdminUser, AuthError, Principal};
use fafnir_core::audit::{AuditKind, AuditQuery, AuditRecord};

crate::permission!(pub UsersManage = "users:manage");

/// An administrator: the caller holds `users:manage`. Refused like [`CurrentUser`], and with
/// 403 `FORBIDDEN` without the permission.
#[derive(Debug)]
pub struct Admin(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Admin
where
    AuthHttp: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let http = AuthHttp::from_ref(state);
        let who = http.authenticate_parts(parts).await?;
        if http.holds(&who, <UsersManage as super::RequiredPermission>::PERMISSION).await? {
            return Ok(Admin(who));
        }
        // Probing by a non-administrator is audited, at most once a minute per caller.
        if http.note_denied(who.user_id) {
            let Ok(Client(client)) = Client::from_request_parts(parts, state).await;
            http.auth().audit(
                fafnir_core::AuditEvent::new(AuditKind::AccessDenied)
                    .own(who.user_id)
                    .client(&client)
                    .detail("permission", "users:manage")
                    .detail("path", parts.uri.path().chars().take(200).collect::<String>()),
            );
        }
        Err(ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", "this needs the permission users:manage"))
    }
}

pub(super) fn routes() -> OpenApiRouter<AuthHttp> {
    OpenApiRouter::new()
        .routes(routes!(delete_account))
        .routes(routes!(delete_account_original))
        .routes(routes!(activity))
        .routes(routes!(list_users))
        .routes(routes!(disable))
        .routes(routes!(enable))
        .routes(routes!(unlock))
        .routes(routes!(revoke_sessions))
        .routes(routes!(send_reset))
        .routes(routes!(delete_user))
        .routes(routes!(audit))
}

/// Body of `DELETE /auth/account`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    /// Required, except for an account without a password (made by a provider sign-in), which
    /// must have signed in within the last 10 minutes instead.
    #[schema(format = Password)]
    #[serde(default)]
    pub current_password: Option<String>,
}

impl std::fmt::Debug for DeleteAccountRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeleteAccountRequest { *** }")
    }
}

/// An account as administrators see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminUserDto {
    #[schema(format = Uuid)]
    pub id: String,
    pub email: String,
    pub email_verified: bool,
    /// `active` or `disabled`.
    pub state: String,
    /// Empty when the permission service could not say.
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsersResponse {
    pub users: Vec<AdminUserDto>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Accounts whose e-mail starts with this.
    pub query: Option<String>,
    /// `active` or `disabled`.
    pub state: Option<String>,
    /// Accounts holding this role (directly).
    pub role: Option<String>,
    /// Page size, 1–100 (default 20).
    pub first: Option<usize>,
    pub after: Option<String>,
}

/// The answer of the admin actions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminActionResponse {
    #[schema(format = Uuid)]
    pub user_id: String,
    /// Whether anything changed (disabling a disabled account changes nothing).
    pub changed: bool,
}

/// One audit event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEventDto {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `login_succeeded`, `login_failed`, `account_disabled`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub actor_id: Option<String>,
    pub subject_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<AuditRecord> for AuditEventDto {
    fn from(r: AuditRecord) -> Self {
        AuditEventDto {
            id: r.id,
            at: r.at,
            kind: r.kind,
            actor_id: r.actor_id,
            subject_id: r.subject_id,
            ip: r.ip,
            user_agent: r.user_agent,
            details: r.details,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditResponse {
    pub events: Vec<AuditEventDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// An event type, or several separated by commas.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[param(format = Uuid)]
    pub actor: Option<String>,
    #[param(format = Uuid)]
    pub subject: Option<String>,
    /// Page size, 1–100 (default 50).
    pub first: Option<usize>,
    pub after: Option<String>,
}

/// The query string as `T`; a malformed one is 422 `VALIDATION_FAILED` (JSON, like every
/// other error of this API), not axum's plain-text 400.
fn query<T: serde::de::DeserializeOwned>(raw: Option<String>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).map_err(|e| bad("query", format!("the query string: {e}")))
}

fn bad(field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::from(AuthError::Validation { field, message: message.into() })
}

fn user_id(id: &str) -> Result<UserId, ApiError> {
    UserId::parse(id).map_err(|_| ApiError::from(AuthError::UserNotFound))
}

fn audit_log(h: &AuthHttp) -> Result<&crate::AuditLog, ApiError> {
    h.auth()
        .audit_log()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_IMPLEMENTED, "NOT_IMPLEMENTED", "this server keeps no audit log"))
}

/// Deletes the caller's account and clears the session cookies.
async fn delete_own(
    h: &AuthHttp,
    who: &Principal,
    client: &crate::ClientInfo,
    req: DeleteAccountRequest,
) -> Result<(StatusCode, axum::http::HeaderMap), ApiError> {
    h.auth().delete_account(who, req.current_password.as_deref().unwrap_or(""), client).await?;
    let mut headers = axum::http::HeaderMap::new();
    super::cookies::clear_session(&mut headers, h.settings().cookie_secure);
    Ok((StatusCode::NO_CONTENT, headers))
}

/// Delete the caller's account, after the current password: every session ends at once, and
/// roles and profile go with it.
#[utoipa::path(delete, path = "/auth/account", tag = "account", request_body = DeleteAccountRequest,
    responses(
        (status = 204, description = "Deleted; the session cookies are cleared"),
        (status = 400, description = "MALFORMED_JSON", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED; INVALID_CREDENTIALS for a wrong current password; REAUTHENTICATION_REQUIRED for an account without a password whose sign-in is over 10 minutes old", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID (cookie authentication)", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the JSON has the wrong shape", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED: too many wrong passwords", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn delete_account(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
    Client(client): Client,
    JsonBody(req): JsonBody<DeleteAccountRequest>,
) -> Result<(StatusCode, axum::http::HeaderMap), ApiError> {
    delete_own(&h, &who, &client, req).await
}

/// `DELETE /auth/account` under the original system's path.
#[utoipa::path(delete, path = "/auth/delete", tag = "account", request_body = DeleteAccountRequest,
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "MALFORMED_JSON", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED, or INVALID_CREDENTIALS", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID (cookie authentication)", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn delete_account_original(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
    Client(client): Client,
    JsonBody(req): JsonBody<DeleteAccountRequest>,
) -> Result<(StatusCode, axum::http::HeaderMap), ApiError> {
    delete_own(&h, &who, &client, req).await
}

/// The caller's own recent sign-ins and sign-in failures (newest first, at most 50).
#[utoipa::path(get, path = "/auth/activity", tag = "account",
    responses(
        (status = 200, description = "Recent sign-in events of the caller's account", body = AuditResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn activity(State(h): State<AuthHttp>, CurrentUser(who): CurrentUser) -> Result<Json<AuditResponse>, ApiError> {
    let q = AuditQuery {
        kinds: vec![AuditKind::LoginSucceeded, AuditKind::LoginFailed, AuditKind::AccountLocked],
        subject: Some(who.user_id),
        first: 50,
        ..AuditQuery::default()
    };
    let (events, _) = audit_log(&h)?.list(&q).await.map_err(AuthError::from)?;
    Ok(Json(AuditResponse { events: events.into_iter().map(AuditEventDto::from).collect(), next: None }))
}

/// List and search accounts (by e-mail prefix, state, role), by e-mail, with the last sign-in.
#[utoipa::path(get, path = "/admin/users", tag = "admin", params(UsersQuery),
    responses(
        (status = 200, description = "A page of accounts", body = UsersResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: needs users:manage", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: a bad state or page size, or a malformed query string", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn list_users(
    State(h): State<AuthHttp>,
    Admin(who): Admin,
    RawQuery(raw): RawQuery,
) -> Result<Json<UsersResponse>, ApiError> {
    let q: UsersQuery = query(raw)?;
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(AccountState::parse(s).ok_or_else(|| bad("state", "state is active or disabled"))?),
    };
    let first = q.first.unwrap_or(20);
    if !(1..=crate::MAX_USERS_PAGE).contains(&first) {
        return Err(bad("first", "first is 1 to 100"));
    }
    let page = h.auth().list_users(q.query.as_deref(), state, first, q.after.as_deref()).await?;
    let mut users = Vec::with_capacity(page.users.len());
    for u in page.users {
        let roles = match h.checker().grants(Some(who.token.expose()), u.id).await {
            Ok(Some(g)) => g.roles,
            Ok(None) => Vec::new(),
            // Filtering by role without the roles would silently leave accounts out.
            Err(e) if q.role.is_some() => {
                tracing::warn!(error = %e, "roles of a listed user unavailable");
                return Err(ApiError::unavailable("the permission service"));
            }
            Err(e) => {
                tracing::warn!(error = %e, "roles of a listed user unavailable");
                Vec::new()
            }
        };
        if q.role.as_deref().is_some_and(|r| !roles.iter().any(|x| x == r)) {
            continue;
        }
        users.push(dto(u, roles));
    }
    Ok(Json(UsersResponse { users, next: page.next }))
}

fn dto(u: AdminUser, roles: Vec<String>) -> AdminUserDto {
    AdminUserDto {
        id: u.id.to_string(),
        email: u.email,
        email_verified: u.email_verified,
        state: u.state.to_owned(),
        roles,
        created_at: u.created_at,
        last_sign_in_at: u.last_sign_in_at,
    }
}

fn changed(id: UserId, changed: bool) -> Json<AdminActionResponse> {
    Json(AdminActionResponse { user_id: id.to_string(), changed })
}

/// Disable an account: it cannot sign in (403 `ACCOUNT_DISABLED`), and its sessions end now.
#[utoipa::path(post, path = "/admin/users/{id}/disable", tag = "admin", params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "Disabled (changed false: it already was)", body = AdminActionResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN, or CSRF_TOKEN_INVALID", body = ErrorBody),
        (status = 404, description = "USER_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "CANNOT_DISABLE_SELF: an administrator cannot disable their own account", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn disable(
    State(h): State<AuthHttp>,
    Admin(who): Admin,
    Client(client): Client,
    Path(id): Path<String>,
) -> Result<Json<AdminActionResponse>, ApiError> {
    let id = user_id(&id)?;
    if id == who.user_id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "CANNOT_DISABLE_SELF",
            "an administrator cannot disable their own account",
        ));
    }
    Ok(changed(id, h.auth().disable_user(Some(who.user_id), id, &client).await?))
}

/// Enable a disabled account.
#[utoipa::path(post, path = "/admin/users/{id}/enable", tag = "admin", params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "Enabled (changed false: it was not disabled)", body = AdminActionResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN, or CSRF_TOKEN_INVALID", body = ErrorBody),
        (status = 404, description = "USER_NOT_FOUND", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn enable(
    State(h): State<AuthHttp>,
    Admin(who): Admin,
    Client(client): Client,
    Path(id): Path<String>,
) -> Result<Json<AdminActionResponse>, ApiError> {
    let id = user_id(&id)?;
    Ok(changed(id, h.auth().enable_user(Some(who.user_id), id, &client).await?))
}

/// Lift the failed-login lock of an account.
#[utoipa::path(post, path = "/admin/users/{id}/unlock", tag = "admin", params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "Unlocked (changed false: it was not locked)", body = AdminActionResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN, or CSRF_TOKEN_INVALID", body = ErrorBody),
        (status = 404, description = "USER_NOT_FOUND", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn unlock(
    State(h): State<AuthHttp>,
    Admin(who): Admin,
    Client(client): Client,
    Path(id): Path<String>,
) -> Result<Json<AdminActionResponse>, ApiError> {
    let id = user_id(&id)?;
    Ok(changed(id, h.auth().unlock_user(Some(who.user_id), id, &client).await?))
}

/// End every session of an account now.
#[utoipa::path(post, path = "/admin/users/{id}/revoke-sessions", tag = "admin", params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "Revoked (changed false: there were none)", body = AdminActionResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN, or CSRF_TOKEN_INVALID", body = ErrorBody),
        (status = 404, description = "USER_NOT_FOUND", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn revoke_sessions(
    State(h): State<AuthHttp>,
    Admin(who): Admin,
    Client(client): Client,
    Path(id): Path<String>,
) -> Result<Json<AdminActionResponse>, ApiError> {
    let id = user_id(&id)?;
    Ok(changed(id, h.auth().revoke_user_sessions(Some(who.user_id), id, &client).await? > 0))
}

/// Mail the account a password reset link (its owner chooses the new password).
#[utoipa::path(post, path = "/admin/users/{id}/send-password-reset", tag = "admin", params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 202, description = "The link is on its way", body = AdminActionResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN, or CSRF_TOKEN_INVALID", body = ErrorBody),
        (status = 404, description = "USER_NOT_FOUND", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn send_reset(
    State(h): State<AuthHttp>,
    Admin(who): Admin,
    Client(client): Client,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<AdminActionResponse>), ApiError> {
    let id = user_id(&id)?;
    h.auth().send_password_reset(Some(who.user_id), id, &client).await?;
    Ok((StatusCode::ACCEPTED, changed(id, true)))
}

/// Delete an account: every session ends, and the deletion reaches every store.
#[utoipa::path(delete, path = "/admin/users/{id}", tag = "admin", params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN, or CSRF_TOKEN_INVALID", body = ErrorBody),
        (status = 404, description = "USER_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "CANNOT_DISABLE_SELF: use DELETE /auth/account for your own account", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn delete_user(
    State(h): State<AuthHttp>,
    Admin(who): Admin,
    Client(client): Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = user_id(&id)?;
    if id == who.user_id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "CANNOT_DISABLE_SELF",
            "delete your own account with DELETE /auth/account",
        ));
    }
    h.auth().admin_delete_user(Some(who.user_id), id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The audit log, newest first, filtered by type, actor and subject.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", params(AuditParams),
    responses(
        (status = 200, description = "A page of events", body = AuditResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: needs users:manage", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: an unknown type, a bad id or page size, or a malformed query string", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn audit(
    State(h): State<AuthHttp>,
    Admin(_admin): Admin,
    RawQuery(raw): RawQuery,
) -> Result<Json<AuditResponse>, ApiError> {
    let p: AuditParams = query(raw)?;
    let mut q = AuditQuery { first: p.first.unwrap_or(50), ..AuditQuery::default() };
    if !(1..=crate::audit::MAX_PAGE).contains(&q.first) {
        return Err(bad("first", "first is 1 to 100"));
    }
    for t in p.kind.as_deref().unwrap_or_default().split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let k = AuditKind::parse(t).ok_or_else(|| bad("type", format!("unknown event type {t:?}")))?;
        if !q.kinds.contains(&k) {
            q.kinds.push(k);
        }
    }
    let id = |field: &'static str, v: &Option<String>| -> Result<Option<UserId>, ApiError> {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| UserId::parse(s).map_err(|_| bad(field, "not a user id")))
            .transpose()
    };
    q.actor = id("actor", &p.actor)?;
    q.subject = id("subject", &p.subject)?;
    q.after = match p.after.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(a) => Some(a.parse::<i64>().map_err(|_| bad("after", "not a cursor of this list"))?),
    };
    let (events, next) = audit_log(&h)?.list(&q).await.map_err(AuthError::from)?;
    Ok(Json(AuditResponse {
        events: events.into_iter().map(AuditEventDto::from).collect(),
        next: next.map(|n| n.to_string()),
    }))
}
