//! The handlers: parse, call [`Auth`](crate::Auth), shape the response.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::Modify;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::{JsonBody, JsonOrForm, OptionalJson};
use super::dto::*;
use super::error::{ApiError, ErrorBody};
use super::extract::{presented, Client, CurrentUser, Presented};
use super::{cookies, csrf, AuthHttp};
use crate::{AuthError, Login};

pub(super) fn routes() -> OpenApiRouter<AuthHttp> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(token))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(me))
        .routes(routes!(sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(change_password))
        .routes(routes!(request_verification))
        .routes(routes!(confirm_email))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(request_email_change))
        .routes(routes!(confirm_email_change))
        .routes(routes!(jwks))
        .routes(routes!(introspect))
        .routes(routes!(metadata))
}

pub(super) struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        c.add_security_scheme("cookie", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(cookies::ACCESS))));
    }
}

// ---- helpers ----

pub(super) fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

pub(super) fn set_session_cookies(h: &AuthHttp, headers: &mut HeaderMap, login: &Login, current_csrf: Option<&str>) {
    // A CSRF token still valid for this session is kept: requests in flight, and pages that
    // read the cookie earlier, keep working across a refresh.
    let csrf = match current_csrf {
        Some(c) if h.csrf_key().verify(Some(&login.session_id), Some(c), Some(c)) => c.to_owned(),
        _ => h.csrf_key().issue(&login.session_id),
    };
    let cfg = h.auth().config();
    cookies::set_session(
        headers,
        login.access_token.expose(),
        cfg.access_ttl,
        login.refresh_token.expose(),
        cfg.refresh_ttl,
        &csrf,
        h.settings().cookie_secure,
    );
    no_store(headers);
}

/// A login's answer to a browser: `{user, access_expires_at}` and the three cookies.
pub(super) fn session_response(h: &AuthHttp, login: &Login) -> Response {
    let body = LoginResponse {
        user: UserDto::from(&login.user),
        access_expires_at: login.access_expires_at,
        access_token: None,
        refresh_token: None,
    };
    let mut res = Json(body).into_response();
    set_session_cookies(h, res.headers_mut(), login, None);
    res
}

/// A login's answer to an API client: the token endpoint's body, no cookies.
pub(super) fn token_response(l: &Login) -> Response {
    let expires_in = (l.access_expires_at - Utc::now()).num_seconds().max(0);
    let mut res = Json(TokenResponse {
        access_token: l.access_token.expose().to_owned(),
        refresh_token: l.refresh_token.expose().to_owned(),
        token_type: "Bearer".into(),
        expires_in,
    })
    .into_response();
    no_store(res.headers_mut());
    res
}

pub(super) fn origin_check(h: &AuthHttp, headers: &HeaderMap) -> Result<(), ApiError> {
    let s = h.settings();
    if csrf::origin_allowed(headers, &s.allowed_origins, s.public_origin.as_deref()) {
        Ok(())
    } else {
        Err(ApiError::csrf())
    }
}

fn outcome(r: &Result<Login, AuthError>) -> &'static str {
    match r {
        Ok(_) => "success",
        Err(AuthError::InvalidCredentials) => "invalid_credentials",
        Err(AuthError::RateLimited { .. }) => "rate_limited",
        Err(AuthError::InvalidRefreshToken) => "invalid_refresh_token",
        Err(AuthError::RefreshTokenReused) => "refresh_token_reused",
        Err(AuthError::MfaRequired { .. }) => "mfa_required",
        Err(_) => "error",
    }
}

// ---- handlers ----

/// Create an account. Sets no cookies: log in afterwards.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = UserResponse),
        (status = 400, description = "MALFORMED_JSON, or INVALID_REQUEST when the body cannot be read", body = ErrorBody),
        (status = 409, description = "EMAIL_TAKEN", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: a field is invalid (details.field names it) or the JSON has the wrong shape", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED: too many registrations from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "SERVICE_UNAVAILABLE: the server is overloaded or its database does not answer", body = ErrorBody),
    ))]
async fn register(
    State(h): State<AuthHttp>,
    Client(client): Client,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<(StatusCode, Json<UserResponse>), ApiError> {
    let acct = h.auth().register_from(&req.email, &req.password, req.display_name.as_deref(), &client).await?;
    metrics::counter!("fafnir_registrations_total").increment(1);
    Ok((StatusCode::CREATED, Json(UserResponse { user: UserDto::from(&acct) })))
}

/// Log in with e-mail and password: sets `fafnir_access`, `fafnir_refresh` and `fafnir_csrf`.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; three cookies set. For an account with a second factor: no cookies, `{mfa_required: true, mfa_token, methods}`; finish with POST /auth/mfa/verify", body = LoginAnswer),
        (status = 400, description = "MALFORMED_JSON, or INVALID_REQUEST when the body cannot be read", body = ErrorBody),
        (status = 401, description = "INVALID_CREDENTIALS", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID: Origin not allowed", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the JSON has the wrong shape", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED: too many failed logins for this account or address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "SERVICE_UNAVAILABLE: the server is overloaded or its database does not answer", body = ErrorBody),
    ))]
async fn login(
    State(h): State<AuthHttp>,
    Client(client): Client,
    headers: HeaderMap,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    // Login CSRF (logging a victim into the attacker's account): JSON bodies cannot come from
    // a cross-site form, and a cross-site fetch carries an Origin we check.
    origin_check(&h, &headers)?;
    let r = h.auth().login(&req.email, &req.password, &client).await;
    metrics::counter!("fafnir_logins_total", "outcome" => outcome(&r)).increment(1);
    let login = match r {
        Err(AuthError::MfaRequired { token, methods }) => {
            let body = MfaRequiredResponse {
                mfa_required: true,
                mfa_token: token.expose().to_owned(),
                methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            };
            let mut res = Json(body).into_response();
            no_store(res.headers_mut());
            return Ok(res);
        }
        other => other?,
    };
    Ok(session_response(&h, &login))
}

fn oauth_error(status: StatusCode, error: &'static str, description: impl Into<String>) -> Response {
    let mut res = (status, Json(OAuthError { error, error_description: description.into() })).into_response();
    no_store(res.headers_mut());
    res
}

fn unavailable_oauth(description: String) -> Response {
    let mut res = oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", description);
    res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(super::error::UNAVAILABLE_RETRY_SECS));
    res
}

fn oauth_from(e: AuthError) -> Response {
    match e {
        // Auth0's shape: finish with POST /auth/mfa/verify (which answers with the tokens).
        AuthError::MfaRequired { token, methods } => {
            let body = OAuthMfaRequired {
                error: "mfa_required".into(),
                error_description: "a second factor is required: POST /auth/mfa/verify with mfa_token and a code"
                    .into(),
                mfa_token: token.expose().to_owned(),
                methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            };
            let mut res = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
            no_store(res.headers_mut());
            res
        }
        AuthError::InvalidCredentials | AuthError::InvalidRefreshToken | AuthError::RefreshTokenReused => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", e.to_string())
        }
        AuthError::RateLimited { retry_after } => {
            let mut res = oauth_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", e.to_string());
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
            res
        }
        AuthError::Validation { .. } => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
        // The grant is refused (RFC 6749 §5.2); the description says why.
        AuthError::EmailNotVerified | AuthError::AccountDisabled => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", e.to_string())
        }
        // The database or the hashing pool is unavailable: nothing was done; retry shortly.
        AuthError::Busy => unavailable_oauth(e.to_string()),
        AuthError::Store(inner) if inner.is_unavailable() => {
            tracing::warn!(error = %inner, "database unavailable");
            unavailable_oauth("the database is unavailable; try again shortly".into())
        }
        other => {
            tracing::error!(error = %other, "token request failed");
            oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
        }
    }
}

/// OAuth 2.0 token endpoint for API clients (no cookies): the `password` and `refresh_token`
/// grants, as a form (RFC 6749) or JSON. Errors follow RFC 6749 §5.2.
#[utoipa::path(post, path = "/auth/token", tag = "auth",
    request_body(content(
        (TokenRequest = "application/x-www-form-urlencoded"),
        (TokenRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "Tokens", body = TokenResponse),
        (status = 400, description = "invalid_request (also a malformed form or JSON body), invalid_grant or unsupported_grant_type", body = OAuthError),
        (status = 401, description = "mfa_required: the account has a second factor; POST /auth/mfa/verify with mfa_token and a code answers the tokens", body = OAuthMfaRequired),
        (status = 413, description = "invalid_request: the body is over 64 KiB", body = OAuthError),
        (status = 415, description = "invalid_request: the body is neither a form nor JSON", body = OAuthError),
        (status = 429, description = "rate_limited: too many failed logins for this account or address", body = OAuthError,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "temporarily_unavailable: the database does not answer", body = OAuthError,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    ))]
async fn token(
    State(h): State<AuthHttp>,
    Client(client): Client,
    body: Result<JsonOrForm<TokenRequest>, ApiError>,
) -> Response {
    let req = match body {
        Ok(JsonOrForm(r)) => r,
        // RFC 6749 §5.2: a request that cannot be read is 400 invalid_request, whatever the
        // reason (only an oversized body or a foreign media type keep their own status).
        Err(e) => {
            let status = match e.status {
                StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => e.status,
                _ => StatusCode::BAD_REQUEST,
            };
            return oauth_error(status, "invalid_request", e.message);
        }
    };
    let r = match req.grant_type.as_str() {
        "password" => {
            let email = req.email.or(req.username);
            let (Some(email), Some(password)) = (email, req.password) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the password grant needs email (or username) and password",
                );
            };
            let r = h.auth().login_via(&email, &password, &client, crate::mfa::Via::Token).await;
            metrics::counter!("fafnir_logins_total", "outcome" => outcome(&r)).increment(1);
            r
        }
        "refresh_token" => {
            let Some(t) = req.refresh_token else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the refresh_token grant needs refresh_token",
                );
            };
            h.auth().refresh(&t, &client).await
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be password or refresh_token",
            )
        }
    };
    match r {
        Ok(l) => token_response(&l),
        Err(e) => oauth_from(e),
    }
}

/// Rotate the refresh token: from the `fafnir_refresh` cookie (needs `X-CSRF-Token`), or from
/// the body (then the new tokens are in the body too). The presented token is used up; replaying
/// it later revokes the session.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body(content = Option<RefreshRequest>),
    responses(
        (status = 200, description = "Rotated; cookies set", body = LoginResponse),
        (status = 400, description = "MALFORMED_JSON, or INVALID_REQUEST when the body cannot be read", body = ErrorBody),
        (status = 401, description = "INVALID_REFRESH_TOKEN or REFRESH_TOKEN_REUSED; cookies cleared", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: a non-empty body that is not application/json", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the JSON has the wrong shape", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the database does not answer", body = ErrorBody),
    ))]
async fn refresh(
    State(h): State<AuthHttp>,
    Client(client): Client,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let (token, from_body) = match body {
        Some(b) => (b.refresh_token, true),
        None => {
            let Some(t) = cookies::read(&headers, cookies::REFRESH).filter(|t| !t.is_empty()) else {
                return Err(AuthError::InvalidRefreshToken.into());
            };
            // The CSRF token must be the one bound to the refresh token's session.
            let sid = h.auth().session_of_refresh(&t).await?;
            h.check_csrf_session(&headers, sid.as_ref())?;
            (t, false)
        }
    };
    let r = h.auth().refresh(&token, &client).await;
    metrics::counter!("fafnir_refreshes_total", "outcome" => outcome(&r)).increment(1);
    match r {
        Ok(login) => {
            let body = LoginResponse {
                user: UserDto::from(&login.user),
                access_expires_at: login.access_expires_at,
                access_token: from_body.then(|| login.access_token.expose().to_owned()),
                refresh_token: from_body.then(|| login.refresh_token.expose().to_owned()),
            };
            let mut res = Json(body).into_response();
            let current = cookies::read(&headers, cookies::CSRF);
            set_session_cookies(&h, res.headers_mut(), &login, current.as_deref());
            Ok(res)
        }
        Err(e) => {
            // Only a dead session logs the browser out; a passing failure (503, 500) must not.
            let dead = matches!(e, AuthError::InvalidRefreshToken | AuthError::RefreshTokenReused);
            let mut res = ApiError::from(e).into_response();
            if dead && !from_body {
                cookies::clear_session(res.headers_mut(), h.settings().cookie_secure);
            }
            Ok(res)
        }
    }
}

/// Logout by refresh cookie: the CSRF token must be bound to that refresh token's session.
async fn logout_by_refresh_cookie(h: &AuthHttp, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(t) = cookies::read(headers, cookies::REFRESH).filter(|t| !t.is_empty()) {
        let sid = h.auth().session_of_refresh(&t).await?;
        h.check_csrf_session(headers, sid.as_ref())?;
        h.auth().logout_with_refresh(&t).await?;
    }
    Ok(())
}

async fn do_logout(
    h: &AuthHttp,
    parts: &axum::http::request::Parts,
    body: Option<LogoutRequest>,
) -> Result<Response, ApiError> {
    // A refresh token in the body (API clients) ends its session: it is a credential the caller
    // holds, not an ambient cookie, so it needs no CSRF token.
    if let Some(t) = body.and_then(|b| b.refresh_token) {
        h.auth().logout_with_refresh(&t).await?;
    }
    match presented(&parts.headers) {
        // No access token (or it expired): end the session the refresh cookie belongs to.
        Presented::None => logout_by_refresh_cookie(h, &parts.headers).await?,
        _ => match h.authenticate_parts(parts).await {
            Ok(who) => h.auth().logout(&who).await?,
            Err(e) if e.status == StatusCode::UNAUTHORIZED => logout_by_refresh_cookie(h, &parts.headers).await?,
            Err(e) => return Err(e),
        },
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    cookies::clear_session(res.headers_mut(), h.settings().cookie_secure);
    Ok(res)
}

/// End the current session and clear the cookies: the session of the access token (Bearer or
/// cookie), else of the refresh cookie, and the session of a `refresh_token` sent in the body.
/// `POST` and `DELETE` alike. 204 unless a cookie-authenticated request fails the CSRF checks,
/// the body cannot be read, or the session store does not answer.
#[utoipa::path(method(post, delete), path = "/auth/logout", tag = "auth", request_body(content = Option<LogoutRequest>),
    responses(
        (status = 204, description = "Logged out; cookies cleared"),
        (status = 400, description = "MALFORMED_JSON, or INVALID_REQUEST when the body cannot be read", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: a non-empty body that is not application/json", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the JSON has the wrong shape", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the session store does not answer", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("cookie" = [])))]
async fn logout(
    State(h): State<AuthHttp>,
    parts: axum::http::request::Parts,
    OptionalJson(body): OptionalJson<LogoutRequest>,
) -> Result<Response, ApiError> {
    do_logout(&h, &parts, body).await
}

/// End every session of the caller (all devices) and clear the cookies.
#[utoipa::path(post, path = "/auth/logout-all", tag = "auth",
    responses(
        (status = 204, description = "Every session revoked"),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the session store does not answer", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn logout_all(State(h): State<AuthHttp>, CurrentUser(who): CurrentUser) -> Result<Response, ApiError> {
    h.auth().logout_all(who.user_id).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    cookies::clear_session(res.headers_mut(), h.settings().cookie_secure);
    Ok(res)
}

/// The caller, with roles and effective permissions.
#[utoipa::path(get, path = "/auth/me", tag = "auth", params(MeQuery),
    responses(
        (status = 200, body = MeResponse),
        (status = 400, description = "INVALID_REQUEST: grants is not true or false", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the permission service or the database did not answer", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn me(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    // Most calls have no query string: nothing to parse then.
    let q: MeQuery = match q.as_deref() {
        None | Some("") => MeQuery::default(),
        Some(q) => serde_urlencoded::from_str(q)
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "grants must be true or false"))?,
    };
    let acct = h.auth().me(&who).await?;
    let grants = if q.grants.unwrap_or(true) {
        let grants = h.checker().grants(Some(who.token.expose()), who.user_id).await.map_err(|e| match e {
            // The permission service refused a token this server issued: their configurations
            // disagree (issuer, audience or keys). Say so instead of a bare "unavailable".
            fafnir_core::ServiceError::Unauthenticated => {
                tracing::warn!("the permission service refused a token this server accepted: its session may have just ended, or the services disagree on the token issuer or audience (their /readyz names both values)");
                ApiError::unavailable_because(
                    "the permission service",
                    "it refused this access token (the session may have just ended elsewhere, or the services disagree on the token issuer; see their /readyz)",
                )
            }
            other => {
                tracing::warn!(error = %other, "permission checker unavailable");
                ApiError::unavailable("the permission service")
            }
        })?;
        Some(grants.unwrap_or_default())
    } else {
        None
    };
    let (roles, permissions) = match grants {
        Some(g) => (Some(g.roles), Some(g.permissions)),
        None => (None, None),
    };
    let sign_in_methods = h.auth().sign_in_methods(who.user_id).await?;
    let body = super::json::me(&MeResponse {
        id: acct.id.to_string(),
        email: acct.email.as_str().to_owned(),
        email_verified: acct.email_verified,
        roles,
        permissions,
        created_at: acct.created_at,
        sign_in_methods,
    });
    // As `Json` answers: `application/json`, no charset.
    let mut res = axum::body::Body::from(body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(res)
}

/// The caller's active sessions.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth",
    responses(
        (status = 200, body = SessionsResponse),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the session store does not answer", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn sessions(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
) -> Result<Json<SessionsResponse>, ApiError> {
    let list = h.auth().sessions(&who).await?;
    Ok(Json(SessionsResponse {
        sessions: list
            .into_iter()
            .map(|s| SessionDto {
                id: s.id.to_string(),
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
                user_agent: s.user_agent,
                ip: s.ip,
                current: s.current,
            })
            .collect(),
    }))
}

/// Revoke one of the caller's sessions (sign out a device).
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth",
    params(("id" = String, Path, description = "Session id", format = Uuid)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID (cookie authentication)", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such session of the caller", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the session store does not answer", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn revoke_session(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let sid = fafnir_core::SessionId::parse(&id).map_err(|_| ApiError::from(AuthError::SessionNotFound))?;
    h.auth().revoke_session(&who, sid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change the password. Every other session is revoked; this one stays. An account made by a
/// provider sign-in sets its first password without `current_password`, within 10 minutes of
/// signing in.
#[utoipa::path(post, path = "/auth/password", tag = "auth", request_body = PasswordChangeRequest,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "MALFORMED_JSON, or INVALID_REQUEST when the body cannot be read", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED; INVALID_CREDENTIALS for a wrong current password; REAUTHENTICATION_REQUIRED when an account without a password sets its first one more than 10 minutes after signing in", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID (cookie authentication)", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the new password is refused, or the JSON has the wrong shape", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED: too many wrong current passwords", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "SERVICE_UNAVAILABLE: the server is overloaded or its database does not answer", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn change_password(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
    Client(client): Client,
    JsonBody(req): JsonBody<PasswordChangeRequest>,
) -> Result<StatusCode, ApiError> {
    h.auth().change_password(&who, req.current_password.as_deref().unwrap_or(""), &req.new_password, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- e-mail: verification, reset, change of address ----

fn accepted(message: &str) -> (StatusCode, Json<AcceptedResponse>) {
    (StatusCode::ACCEPTED, Json(AcceptedResponse::new(message)))
}

/// The answer of every request that may send a reset link.
pub const FORGOT_ANSWER: &str = "If an account has this address, a link to reset its password is on its way.";
/// The answer of every request that may send a verification link.
pub const VERIFY_ANSWER: &str = "If this address has an account that is not verified yet, a new link is on its way.";

/// Send a new verification link: signed in, to the caller's address; without a session (an
/// account that may not sign in before it is verified), to `email`, answered alike whether or
/// not it has an account.
#[utoipa::path(post, path = "/auth/email/verify/request", tag = "email", request_body(content = Option<VerifyRequest>),
    responses(
        (status = 202, description = "Accepted: a link is mailed if the address needs one", body = AcceptedResponse),
        (status = 400, description = "MALFORMED_JSON, or INVALID_REQUEST when the body cannot be read", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED: no session and no email in the body", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID (cookie authentication)", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the address is malformed", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED: too many links asked for this address or from this client", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ),
    security((), ("bearer" = []), ("cookie" = [])))]
async fn request_verification(
    State(h): State<AuthHttp>,
    who: Option<CurrentUser>,
    Client(client): Client,
    OptionalJson(body): OptionalJson<VerifyRequest>,
) -> Result<(StatusCode, Json<AcceptedResponse>), ApiError> {
    match (who, body.and_then(|b| b.email)) {
        (Some(CurrentUser(who)), _) => h.auth().request_verification(&who, &client).await?,
        (None, Some(email)) => h.auth().request_verification_for(&email, &client).await?,
        (None, None) => return Err(ApiError::unauthorized()),
    }
    Ok(accepted(VERIFY_ANSWER))
}

/// Verify the address a link was mailed to. The page behind the link calls this when its
/// button is pressed: opening the link does not.
#[utoipa::path(post, path = "/auth/email/verify", tag = "email", request_body = LinkTokenRequest,
    responses(
        (status = 204, description = "Verified"),
        (status = 400, description = "TOKEN_INVALID: unknown, used, expired, or for another purpose; or MALFORMED_JSON", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the JSON has the wrong shape", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ))]
async fn confirm_email(
    State(h): State<AuthHttp>,
    Client(client): Client,
    JsonBody(req): JsonBody<LinkTokenRequest>,
) -> Result<StatusCode, ApiError> {
    h.auth().confirm_email_from(&req.token, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask for a password reset link. The answer is the same, in body and in time, whether or not
/// an account has the address.
#[utoipa::path(post, path = "/auth/password/forgot", tag = "email", request_body = ForgotPasswordRequest,
    responses(
        (status = 202, description = "Accepted (whether or not the address has an account)", body = AcceptedResponse),
        (status = 400, description = "MALFORMED_JSON, or INVALID_REQUEST when the body cannot be read", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the address is malformed", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED: too many links asked for this address or from this client", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ))]
async fn forgot_password(
    State(h): State<AuthHttp>,
    Client(client): Client,
    JsonBody(req): JsonBody<ForgotPasswordRequest>,
) -> Result<(StatusCode, Json<AcceptedResponse>), ApiError> {
    h.auth().forgot_password(&req.email, &client).await?;
    Ok(accepted(FORGOT_ANSWER))
}

/// Set a new password with the token of a reset link. Every session of the account ends; no
/// new one starts (sign in with the new password).
#[utoipa::path(post, path = "/auth/password/reset", tag = "email", request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "Password set; every session revoked"),
        (status = 400, description = "TOKEN_INVALID: unknown, used, expired, or for another purpose; or MALFORMED_JSON", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the new password is refused (the token stays usable)", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ))]
async fn reset_password(
    State(h): State<AuthHttp>,
    Client(client): Client,
    JsonBody(req): JsonBody<ResetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    h.auth().reset_password_from(&req.token, &req.new_password, &client).await?;
    metrics::counter!("fafnir_password_resets_total").increment(1);
    Ok(StatusCode::NO_CONTENT)
}

/// Start a change of address: after the current password, a link goes to the new address
/// (which must confirm) and a notice to the current one.
#[utoipa::path(post, path = "/auth/email/change", tag = "email", request_body = EmailChangeRequest,
    responses(
        (status = 202, description = "Accepted: the new address must confirm", body = AcceptedResponse),
        (status = 400, description = "MALFORMED_JSON, or INVALID_REQUEST when the body cannot be read", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED, or INVALID_CREDENTIALS for a wrong current password", body = ErrorBody),
        (status = 403, description = "CSRF_TOKEN_INVALID (cookie authentication)", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the new address is malformed or the current one", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED: too many wrong passwords, or too many links for this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = [])))]
async fn request_email_change(
    State(h): State<AuthHttp>,
    CurrentUser(who): CurrentUser,
    Client(client): Client,
    JsonBody(req): JsonBody<EmailChangeRequest>,
) -> Result<(StatusCode, Json<AcceptedResponse>), ApiError> {
    let current = req.current_password.as_deref().unwrap_or("");
    h.auth().request_email_change(&who, &req.new_email, current, &client).await?;
    Ok(accepted("A link to confirm the change is on its way to the new address."))
}

/// Confirm a change of address with the token of the link mailed to the new address.
#[utoipa::path(post, path = "/auth/email/change/confirm", tag = "email", request_body = LinkTokenRequest,
    responses(
        (status = 204, description = "The account's address is now the new one (verified)"),
        (status = 400, description = "TOKEN_INVALID: unknown, used, expired, or for another purpose; or MALFORMED_JSON", body = ErrorBody),
        (status = 409, description = "EMAIL_TAKEN: another account took the address meanwhile", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is not application/json", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: the JSON has the wrong shape", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody),
    ))]
async fn confirm_email_change(
    State(h): State<AuthHttp>,
    Client(client): Client,
    JsonBody(req): JsonBody<LinkTokenRequest>,
) -> Result<StatusCode, ApiError> {
    h.auth().confirm_email_change_from(&req.token, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The public keys that verify access tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys",
    responses((status = 200, description = "JSON Web Key Set", body = Object)))]
async fn jwks(State(h): State<AuthHttp>) -> Response {
    let mut res = Json(h.auth().jwks()).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    res
}

/// Whether an access token is active: genuine, unexpired, and its session not ended (RFC 7662
/// shape). The other services ask this to honour revocations. No client authentication: the
/// answer tells the holder of a token only what the token itself already proves, and a forged
/// token is simply `{"active": false}`.
#[utoipa::path(post, path = "/auth/introspect", tag = "auth",
    request_body(content(
        (IntrospectRequest = "application/x-www-form-urlencoded"),
        (IntrospectRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "The token's state", body = IntrospectResponse),
        (status = 400, description = "INVALID_REQUEST: no token, or a form or JSON body that cannot be read (MALFORMED_JSON)", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body is over 64 KiB", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: the body is neither a form nor JSON", body = ErrorBody),
        (status = 422, description = "VALIDATION_FAILED: a JSON body of the wrong shape", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: the session store does not answer", body = ErrorBody),
    ))]
async fn introspect(
    State(h): State<AuthHttp>,
    JsonOrForm(req): JsonOrForm<IntrospectRequest>,
) -> Result<Response, ApiError> {
    use crate::Introspection;
    let answer = match h.auth().introspect(&req.token).await? {
        Introspection::Active(c) => IntrospectResponse {
            active: true,
            sub: Some(c.sub.to_string()),
            sid: Some(c.sid.to_string()),
            iss: Some(c.iss),
            aud: Some(c.aud),
            iat: Some(c.iat),
            exp: Some(c.exp),
            token_type: Some("Bearer"),
            session_ended: None,
        },
        Introspection::SessionEnded => IntrospectResponse { session_ended: Some(true), ..Default::default() },
        Introspection::TokenRefused => IntrospectResponse { session_ended: Some(false), ..Default::default() },
    };
    let mut res = Json(answer).into_response();
    no_store(res.headers_mut());
    Ok(res)
}

/// Authorization server metadata (RFC 8414): the issuer and audience of access tokens, their
/// lifetime, and where the keys, the token endpoint and introspection are. The other services
/// read it to verify tokens exactly as they are issued.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "keys",
    responses((status = 200, description = "Metadata document", body = Object)))]
async fn metadata(State(h): State<AuthHttp>, headers: HeaderMap) -> Response {
    use fafnir_core::issuer::IssuerMetadata;
    // Without a configured public URL the URLs come from the Host header: then the answer must
    // not be cached (a poisoned Host would be served to others).
    let (base, cacheable) = match &h.settings().public_origin {
        Some(o) => (o.clone(), true),
        None => {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
            (format!("http://{}", host.chars().take(255).collect::<String>()), false)
        }
    };
    let cfg = h.auth().config();
    let doc = IssuerMetadata {
        issuer: cfg.issuer.clone(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        token_endpoint: format!("{base}/auth/token"),
        introspection_endpoint: format!("{base}{}", fafnir_core::issuer::INTROSPECTION_PATH),
        grant_types_supported: vec!["password".into(), "refresh_token".into()],
        response_types_supported: Vec::new(),
        token_endpoint_auth_methods_supported: vec!["none".into()],
        fafnir_access_token_audience: cfg.audience.clone(),
        fafnir_access_token_ttl: cfg.access_ttl.as_secs(),
        fafnir_browser: Some(fafnir_core::issuer::BrowserSettings {
            public_origin: h.settings().public_origin.clone(),
            allowed_origins: h.settings().allowed_origins.clone(),
            cookie_secure: h.settings().cookie_secure,
        }),
    };
    let mut res = Json(doc).into_response();
    if cacheable {
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    } else {
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res.headers_mut().insert(header::VARY, HeaderValue::from_static("Host"));
    }
    res
}

impl std::fmt::Debug for IntrospectRequest {
    // Carries a token: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IntrospectRequest { *** }")
    }
}

impl std::fmt::Debug for RegisterRequest {
    // Carries a password or a token: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RegisterRequest { *** }")
    }
}

impl std::fmt::Debug for LoginRequest {
    // Carries a password or a token: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginRequest { *** }")
    }
}

impl std::fmt::Debug for TokenRequest {
    // Carries a password or a token: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenRequest { *** }")
    }
}

impl std::fmt::Debug for RefreshRequest {
    // Carries a password or a token: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshRequest { *** }")
    }
}

impl std::fmt::Debug for PasswordChangeRequest {
    // Carries a password or a token: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordChangeRequest { *** }")
    }
}

impl std::fmt::Debug for LoginResponse {
    // Carries a password or a token: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginResponse { *** }")
    }
}

impl std::fmt::Debug for TokenResponse {
    // Carries a password or a token: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenResponse { *** }")
    }
}
