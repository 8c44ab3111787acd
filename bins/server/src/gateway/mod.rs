//! The GraphQL gateway (`/graphql`), written once over the service traits: it runs inside
//! `fafnir serve` on the in-process services and as `api-gateway` in front of auth-service,
//! security-service and user-service.
//!
//! The HTTP layer here decides who is calling (bearer header, else the access cookie, verified
//! against the signing keys or auth-service's JWKS) and whether a cookie-authenticated mutation
//! passed the CSRF checks; [`schema`] does the rest. `GET /graphql` only ever serves GraphiQL:
//! operations run on `POST` with a JSON body, which a cross-site form cannot send.

pub mod cache;
pub mod errors;
pub mod schema;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::{ServerError, Value};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use fafnir_auth::http::{
    presented, read_cookie, AuthHttp, HttpSettings, Presented, CSRF_COOKIE, CSRF_HEADER, MAX_BODY,
};
use fafnir_core::token::{Authenticator, TokenError};

use schema::RequestInfo;
pub use schema::{GatewaySchema, Services, MAX_COMPLEXITY, MAX_DEPTH};
use upstream::{AuthUpstream, ClientAddr};

use crate::assets;

/// How the gateway checks the CSRF token of a cookie-authenticated mutation.
#[derive(Debug, Clone)]
pub enum CsrfCheck {
    /// With the CSRF key (in the process that issues the tokens): header equals cookie, the token
    /// is bound to the caller's session, and the Origin is allowed. Exactly the REST check.
    Bound(AuthHttp),
    /// Without it (api-gateway): header equals cookie, and the Origin is allowed. The binding
    /// is checked by auth-service for the mutations it serves.
    Unbound,
}

struct Inner {
    schema: GatewaySchema,
    services: Services,
    auth: Authenticator,
    persisted: cache::PersistedQueries,
    settings: HttpSettings,
    csrf: CsrfCheck,
}

/// The gateway: cheap to clone.
#[derive(Clone)]
pub struct Gateway(Arc<Inner>);

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("auth", &self.0.services.auth).finish_non_exhaustive()
    }
}

/// How long `me` and `profile` may answer a profile from memory (a change made elsewhere shows
/// within this time; one made through this gateway at once), like the accounts `me` shows.
pub const PROFILE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// The gateway's view of the profile directory: with the short cache that `me` needs.
pub fn cached_profiles(
    inner: Arc<dyn fafnir_users::ProfileDirectory>,
    clock: fafnir_core::SharedClock,
) -> Arc<dyn fafnir_users::ProfileDirectory> {
    Arc::new(fafnir_users::CachingProfiles::new(inner, clock, PROFILE_TTL, crate::VERIFIED_TOKENS))
}

/// The schema in SDL, as served (what `docs/schema.graphql` holds).
pub fn sdl() -> String {
    async_graphql::Schema::build(schema::Query, schema::Mutation, async_graphql::EmptySubscription).finish().sdl()
}

/// Request headers auth-service needs to apply its own rules (cookies, CSRF, origin, agent).
const FORWARDED: [HeaderName; 7] = [
    header::COOKIE,
    header::AUTHORIZATION,
    HeaderName::from_static(CSRF_HEADER),
    header::ORIGIN,
    header::REFERER,
    header::HOST,
    header::USER_AGENT,
];

impl Gateway {
    /// `auth` decides who calls (the token, and whether its session is still active);
    /// `introspection` allows `__schema` / `__type` queries.
    pub fn new(
        services: Services,
        auth: Authenticator,
        settings: HttpSettings,
        csrf: CsrfCheck,
        introspection: bool,
    ) -> Self {
        let schema = schema::build(services.clone(), introspection);
        Gateway(Arc::new(Inner { schema, services, auth, persisted: Default::default(), settings, csrf }))
    }

    pub fn schema(&self) -> &GatewaySchema {
        &self.0.schema
    }

    /// `/graphql` (POST operations, GET GraphiQL) and GraphiQL's assets.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/graphql", get(assets::graphiql).post(graphql).layer(assets::graphiql_csp()))
            .with_state(self.clone())
            .merge(assets::graphiql_assets())
    }

    /// Who is calling, and whether their mutations pass the CSRF checks.
    async fn request_info(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> RequestInfo {
        let (token, via_cookie) = match presented(headers) {
            Presented::Bearer(t) => (Some(t), false),
            Presented::Cookie(c) => (Some(c), true),
            Presented::None => (None, false),
        };
        let (claims, unverifiable) = match &token {
            Some(t) => match self.0.auth.user(t).await {
                Ok(c) => (Some(c), false),
                Err(e) => (None, e == TokenError::Unavailable),
            },
            None => (None, false),
        };
        let csrf_ok = via_cookie && {
            let s = &self.0.settings;
            let header_value = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            let cookie_value = read_cookie(headers, CSRF_COOKIE);
            let tokens = match (&self.0.csrf, &claims) {
                (CsrfCheck::Bound(h), Some(c)) => {
                    h.csrf_key().verify(Some(&c.sid), header_value, cookie_value.as_deref())
                }
                _ => fafnir_auth::http::double_submit_matches(header_value, cookie_value.as_deref()),
            };
            tokens && fafnir_auth::http::origin_allowed(headers, &s.allowed_origins, s.public_origin.as_deref())
        };
        let mut forward = HeaderMap::new();
        for name in FORWARDED {
            for v in headers.get_all(&name) {
                forward.append(name.clone(), v.clone());
            }
        }
        let client = ClientAddr {
            peer,
            forwarded_for: headers.get("x-forwarded-for").cloned(),
            trust_forwarded_for: self.0.settings.trust_forwarded_for,
        };
        RequestInfo { token, claims, unverifiable, via_cookie, csrf_ok, forward, client }
    }
}

fn graphql_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, [(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

/// `application/json` (any parameters), the only body type accepted: the "simple" types a
/// cross-site form can send (`text/plain`, form encodings) are refused.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

fn code_of(e: &ServerError) -> Option<&str> {
    match e.extensions.as_ref().and_then(|x| x.get("code")) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

/// Whether the operation that would run is a mutation (a document that does not parse is left
/// to the executor, which reports it).
fn is_mutation(req: &async_graphql::Request) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Ok(doc) = async_graphql::parser::parse_query(&req.query) else {
        return false;
    };
    let mutation = |op: &async_graphql::Positioned<async_graphql::parser::types::OperationDefinition>| {
        op.node.ty == OperationType::Mutation
    };
    match &doc.operations {
        DocumentOperations::Single(op) => mutation(op),
        DocumentOperations::Multiple(ops) => match &req.operation_name {
            Some(name) => ops.get(name.as_str()).is_some_and(mutation),
            None => ops.values().any(mutation),
        },
    }
}

/// `POST /graphql`.
async fn graphql(State(gw): State<Gateway>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if !is_json(&parts.headers) {
        return graphql_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "send the operation as JSON (Content-Type: application/json)",
        );
    }
    let body: Bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return graphql_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BAD_USER_INPUT",
                &format!("the request body exceeds {MAX_BODY} bytes"),
            )
        }
    };
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return graphql_error(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", "batched operations are not supported");
    }
    let mut request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("the body is not a GraphQL request ({{\"query\": …, \"variables\": …}}): {e}");
            return graphql_error(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", &msg);
        }
    };
    // Automatic persisted queries: the query comes from its hash before anything looks at it.
    match gw.0.persisted.resolve(&mut request) {
        Ok(()) => {}
        // Apollo's protocol: a 200 with this error makes the client send the query with its hash.
        Err(cache::ApqError::NotFound) => {
            return graphql_error(StatusCode::OK, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
        }
        Err(cache::ApqError::Invalid(why)) => return graphql_error(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", why),
    }
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let info = gw.request_info(&parts.headers, peer).await;
    // A mutation operation sent with the access cookie and failing the CSRF checks is refused
    // whole, before anything runs (the resolvers check again, field by field).
    if info.via_cookie && !info.csrf_ok && is_mutation(&request) {
        return graphql_error(StatusCode::FORBIDDEN, "CSRF_TOKEN_INVALID", &errors::GqlError::csrf().message);
    }
    let loader = schema::roles_loader(&gw.0.services, &info);
    let mut response = gw.0.schema.execute(request.data(info).data(loader)).await;
    let mut status = StatusCode::OK;
    for e in response.errors.iter_mut() {
        match code_of(e) {
            Some("CSRF_TOKEN_INVALID") => status = StatusCode::FORBIDDEN,
            Some(_) => {}
            // Parse and validation failures (depth, complexity, unknown fields, bad variables).
            None => e.extensions.get_or_insert_with(Default::default).set("code", "BAD_USER_INPUT"),
        }
    }
    let headers = std::mem::take(&mut response.http_headers);
    let body = match serde_json::to_vec(&response) {
        Ok(b) => b,
        Err(_) => return graphql_error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal error"),
    };
    let mut res = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (k, v) in headers.iter() {
        res.headers_mut().append(k, v.clone());
    }
    res
}

// ---- the /auth/* proxy (api-gateway) ----

/// `/auth/*` and `/.well-known/jwks.json` forwarded to auth-service, so that a browser sees
/// one origin and the cookies (the refresh cookie is scoped to `/auth`) just work.
pub fn proxy_router(upstream: AuthUpstream, trust_forwarded_for: bool) -> Router {
    let state = (upstream, trust_forwarded_for);
    Router::new()
        .route("/auth/{*path}", any(proxy))
        .route("/.well-known/jwks.json", get(proxy))
        // The issuer is the gateway's URL: discovery from it must find auth-service's metadata.
        .route("/.well-known/oauth-authorization-server", get(proxy))
        .with_state(state)
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| {
        let seg = seg.to_ascii_lowercase().replace("%2e", ".");
        seg == "." || seg == ".."
    }) || path.to_ascii_lowercase().contains("%2f")
}

async fn proxy(State((upstream, trust)): State<(AuthUpstream, bool)>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            let e = serde_json::json!({"error": {"code": "PAYLOAD_TOO_LARGE", "message": format!("the request body exceeds {MAX_BODY} bytes")}});
            return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(e)).into_response();
        }
    };
    let client = ClientAddr {
        peer: parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0),
        forwarded_for: parts.headers.get("x-forwarded-for").cloned(),
        trust_forwarded_for: trust,
    };
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    // `/auth/../metrics` matches `/auth/{*path}` here but would reach `/metrics` upstream once the
    // URL is normalised: only paths without dot segments are forwarded.
    if has_dot_segment(parts.uri.path()) {
        let e = serde_json::json!({"error": {"code": "NOT_FOUND", "message": "no such path"}});
        return (StatusCode::NOT_FOUND, axum::Json(e)).into_response();
    }
    match upstream.send(parts.method.clone(), path, &parts.headers, body, client).await {
        Ok(r) => {
            let mut res = (r.status, r.body).into_response();
            for (k, v) in r.headers.iter() {
                if !matches!(k.as_str(), "connection" | "keep-alive" | "transfer-encoding" | "content-length") {
                    res.headers_mut().append(k, v.clone());
                }
            }
            res
        }
        Err(e) => {
            tracing::warn!(error = %e, "auth-service unavailable");
            fafnir_auth::http::ApiError::unavailable("the auth service").into_response()
        }
    }
}
