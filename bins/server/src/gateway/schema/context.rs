//! What every resolver shares: the services, what the HTTP layer learned about the request,
//! the caller and permission checks, and calls to auth-service's REST API.

use std::sync::Arc;

use async_graphql::{Context, ID};
use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use fafnir_core::token::AccessClaims;
use fafnir_core::{PermissionChecker, RoleDirectory, UserId};
use fafnir_users::ProfileDirectory;
use serde::{Deserialize, Serialize};

use crate::gateway::errors::{self, Code, GqlError};
use crate::gateway::upstream::{AuthUpstream, ClientAddr, UpstreamResponse};

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

// ---- context helpers ----

pub(super) fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    ctx.data_unchecked::<Services>()
}

pub(super) fn info<'a>(ctx: &Context<'a>) -> &'a RequestInfo {
    ctx.data_unchecked::<RequestInfo>()
}

/// The authenticated caller: the user and the token to forward.
pub(super) fn caller<'a>(ctx: &Context<'a>) -> Result<(UserId, &'a str), GqlError> {
    let i = info(ctx);
    match (&i.claims, &i.token) {
        (Some(c), Some(t)) => Ok((c.sub, t.as_str())),
        (None, Some(_)) if i.unverifiable => Err(GqlError::unavailable("the auth service")),
        (None, Some(_)) => Err(GqlError::new(Code::Unauthenticated, "the access token is invalid or expired")),
        _ => Err(GqlError::unauthenticated()),
    }
}

/// A mutation's caller: authenticated, and through the CSRF checks when by cookie.
pub(super) fn mutation_caller<'a>(ctx: &Context<'a>) -> Result<(UserId, &'a str), GqlError> {
    let who = caller(ctx)?;
    csrf_gate(ctx)?;
    Ok(who)
}

pub(super) fn csrf_gate(ctx: &Context<'_>) -> Result<(), GqlError> {
    let i = info(ctx);
    if i.via_cookie && !i.csrf_ok {
        return Err(GqlError::csrf());
    }
    Ok(())
}

pub(super) fn parse_user(field: &str, id: &ID) -> Result<UserId, GqlError> {
    UserId::parse(id.as_str()).map_err(|_| GqlError::bad_input(field, format!("{field} must be a user id (UUID)")))
}

/// The caller holds `permission` (asked of the permission checker).
pub(super) async fn require(ctx: &Context<'_>, user: UserId, token: &str, permission: &str) -> Result<(), GqlError> {
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
pub(super) async fn may_read(ctx: &Context<'_>, caller: UserId, token: &str, subject: UserId) -> Result<(), GqlError> {
    if caller == subject {
        return Ok(());
    }
    require(ctx, caller, token, "users:read").await
}

// ---- auth-service calls ----

/// A GET to auth-service's REST API, with the request's forwarded headers.
pub(super) async fn get_auth(
    ctx: &Context<'_>,
    path: &str,
    bearer: Option<&str>,
) -> Result<UpstreamResponse, GqlError> {
    send_auth(ctx, Method::GET, path, bearer, None).await
}

/// A request without a body to auth-service's REST API (`DELETE /admin/users/{id}`, the admin
/// POSTs), with `query` pairs encoded.
pub(super) async fn call_auth(
    ctx: &Context<'_>,
    method: Method,
    path: &str,
    query: &[(&str, Option<String>)],
    bearer: Option<&str>,
) -> Result<UpstreamResponse, GqlError> {
    let pairs: Vec<(&str, &str)> = query.iter().filter_map(|(k, v)| v.as_deref().map(|v| (*k, v))).collect();
    let path = if pairs.is_empty() {
        path.to_owned()
    } else {
        let mut q = reqwest::Url::parse("http://q/").map_err(|_| GqlError::new(Code::Internal, "internal error"))?;
        q.query_pairs_mut().extend_pairs(pairs);
        format!("{path}?{}", q.query().unwrap_or_default())
    };
    send_auth(ctx, method, &path, bearer, None).await
}

/// A request with a JSON body of auth-service's wire types, by any method.
pub(super) async fn send_auth_json<B: Serialize>(
    ctx: &Context<'_>,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: &B,
) -> Result<UpstreamResponse, GqlError> {
    let body = serde_json::to_vec(body).map_err(|_| GqlError::new(Code::Internal, "internal error"))?;
    send_auth(ctx, method, path, bearer, Some(body)).await
}

/// A POST to auth-service's REST API; `body` is one of its wire types
/// ([`fafnir_auth::http::dto`]), so a renamed field fails to compile.
pub(super) async fn post_auth<B: Serialize>(
    ctx: &Context<'_>,
    path: &str,
    bearer: Option<&str>,
    body: Option<&B>,
) -> Result<UpstreamResponse, GqlError> {
    let body = match body {
        Some(b) => Some(serde_json::to_vec(b).map_err(|_| GqlError::new(Code::Internal, "internal error"))?),
        None => None,
    };
    send_auth(ctx, Method::POST, path, bearer, body).await
}

async fn send_auth(
    ctx: &Context<'_>,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Vec<u8>>,
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
            Bytes::from(b)
        }
        None => Bytes::new(),
    };
    services(ctx).auth.send(method, path, &headers, body, i.client.clone()).await.map_err(errors::upstream_unavailable)
}

/// Hands auth-service's `Set-Cookie` headers to the browser.
pub(super) fn pass_cookies(ctx: &Context<'_>, res: &UpstreamResponse) {
    for v in res.headers.get_all(header::SET_COOKIE) {
        ctx.append_http_header(header::SET_COOKIE, v.clone());
    }
}

pub(super) fn json<T: for<'de> Deserialize<'de>>(res: &UpstreamResponse) -> Result<T, GqlError> {
    if !res.status.is_success() {
        return Err(errors::rest(res));
    }
    serde_json::from_slice(&res.body).map_err(|e| {
        tracing::error!(error = %e, "auth-service answered an unexpected body");
        GqlError::new(Code::Internal, "internal error")
    })
}

/// Checks, through auth-service, that the caller's session is still live (the gateway verifies
/// tokens locally; this refuses a logged-out token before a mutation acts on it).
pub(super) async fn live_session(ctx: &Context<'_>, token: &str) -> Result<(), GqlError> {
    let res = get_auth(ctx, "/auth/me?grants=false", Some(token)).await?;
    if res.status == StatusCode::OK {
        Ok(())
    } else {
        Err(errors::rest(&res))
    }
}
