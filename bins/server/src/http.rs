//! The HTTP application: the auth routes, health, metrics, the OpenAPI document and its UI,
//! behind the hardening layers.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use fafnir_auth::http::{AuthHttp, HttpSettings};
use fafnir_core::PermissionChecker;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::assets::docs_routes;
use crate::gateway::upstream::AuthUpstream;
use crate::gateway::{CsrfCheck, Gateway, Services};
use crate::harden::{BodyLimitLayer, HardenLayer, TrackLayer};
use crate::serve::HttpApp;
use crate::stack::{Stack, StartError};
use crate::telemetry;

/// The transport's hard cap on request bodies. Fafnir's endpoints refuse anything above 64 KiB
/// (every Fafnir body is a small JSON object) once read; beyond this cap the connection is cut.
pub const BODY_LIMIT: usize = 1024 * 1024;
pub use crate::harden::REQUEST_TIMEOUT;

#[derive(Clone)]
struct System {
    stack: Stack,
    openapi: Arc<String>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "ok", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, description = "ready", body = String), (status = 503, description = "the database does not answer", body = String)))]
async fn readyz(State(s): State<System>) -> Response {
    crate::remote::readiness(&[crate::remote::Check::database(s.stack.db.clone())], false).await
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format", body = String)))]
async fn metrics_handler(State(s): State<System>) -> Response {
    let Some(handle) = telemetry::prometheus() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics are not enabled").into_response();
    };
    // Sampled per scrape. The session count is a query: it doubles as "the database answers".
    let sessions = s.stack.auth.active_sessions().await;
    metrics::gauge!("fafnir_database_up").set(if sessions.is_ok() { 1.0 } else { 0.0 });
    if let Ok(n) = sessions {
        metrics::gauge!("fafnir_active_sessions").set(n as f64);
    }
    metrics::gauge!("fafnir_signing_key_age_seconds").set(s.stack.keys.active_key_age().as_secs_f64());
    if let Ok(n) = s.stack.outbox.pending().await {
        metrics::gauge!("fafnir_outbox_pending").set(n as f64);
    }
    if let Ok((backlog, dead)) = s.stack.mail.counts().await {
        metrics::gauge!("fafnir_mail_backlog").set(backlog as f64);
        metrics::gauge!("fafnir_mail_dead").set(dead as f64);
    }
    metrics::gauge!("fafnir_password_hash_queue_depth").set(s.stack.auth.hash_queue_depth() as f64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}

async fn openapi_json(State(s): State<System>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], s.openapi.as_str().to_owned()).into_response()
}

fn cors(settings: &HttpSettings) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> =
        settings.allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, HeaderName::from_static("x-csrf-token")])
            .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(600)),
    )
}

/// The full document: the auth routes and the system routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, system) = system_routes().split_for_parts();
    let mut doc = fafnir_auth::http::openapi();
    doc.merge(system);
    doc
}

/// The document of `fafnir serve`: [`openapi`] and `/graphql`, the GraphQL gateway it also serves.
pub fn all_in_one_openapi() -> utoipa::openapi::OpenApi {
    let mut doc = openapi();
    doc.merge(<GraphqlDoc as utoipa::OpenApi>::openapi());
    doc
}

fn system_routes() -> OpenApiRouter<System> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz)).routes(routes!(metrics_handler))
}

/// The HTTP app of auth-service: the auth routes, system routes and docs, with `extra` routes
/// merged in, behind the hardening layers.
pub async fn app(stack: &Stack, extra: Router) -> Result<(impl HttpApp, AuthHttp), StartError> {
    build(stack, extra, false).await
}

/// The HTTP app of `fafnir serve`: [`app`] plus the GraphQL gateway on the in-process services.
pub async fn all_in_one_app(stack: &Stack, extra: Router) -> Result<(impl HttpApp, AuthHttp), StartError> {
    build(stack, extra, true).await
}

/// The gateway over this process's services: auth through its own router (no socket), roles
/// and permissions from `stack.checker` / `stack.rbac`, profiles from `stack.profiles`.
pub fn local_gateway(stack: &Stack, auth_http: &AuthHttp, auth_router: Router) -> Gateway {
    let services = Services {
        checker: stack.checker.clone(),
        roles: stack.rbac.clone(),
        profiles: crate::gateway::cached_profiles(Arc::new(stack.profiles.clone()), stack.clock.clone()),
        auth: AuthUpstream::Local(auth_router),
    };
    Gateway::new(
        services,
        stack.authn.clone(),
        auth_http.settings().clone(),
        CsrfCheck::Bound(auth_http.clone()),
        stack.config.graphql_introspection,
    )
}

async fn build(stack: &Stack, extra: Router, graphql: bool) -> Result<(impl HttpApp, AuthHttp), StartError> {
    // Install the recorder before anything is counted (metrics recorded earlier are dropped).
    let _ = telemetry::prometheus();
    let settings = HttpSettings::from_config(&stack.config);
    let checker: Arc<dyn PermissionChecker> = stack.checker.clone();
    let auth_http = AuthHttp::new(stack.auth.clone(), checker, settings.clone(), &stack.db).await?;
    let doc = if graphql { all_in_one_openapi() } else { openapi() };
    let doc = doc.to_pretty_json().map_err(|e| StartError::Io(e.to_string()))?;
    let system = System { stack: stack.clone(), openapi: Arc::new(doc) };
    let (system_router, _) = system_routes().split_for_parts();
    let system_router = system_router.route("/openapi.json", get(openapi_json)).with_state(system);
    // `harden` below puts `Cache-Control: no-store` on every answer that sets no policy itself.
    let auth_router = fafnir_auth::http::router_for_no_store_server(auth_http.clone());

    let mut router = Router::new().merge(auth_router.clone()).merge(system_router).merge(docs_routes()).merge(extra);
    if graphql {
        router = router.merge(local_gateway(stack, &auth_http, auth_router).router());
    }
    let https = stack.config.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
    Ok((harden(router, &settings, https), auth_http))
}

// ---- the OpenAPI entry of `/graphql` (the gateway serves it: see `crate::gateway`) ----
// Documentation only: the types describe the wire format and are never built.

/// A GraphQL operation, as `application/json`. Batches (a JSON array) are refused.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct GraphqlRequest {
    /// The GraphQL document. The schema is `docs/schema.graphql`.
    #[schema(example = "{ me { user { email } roles permissions } }")]
    query: String,
    /// Which operation of the document to run, when it holds several.
    #[schema(rename = "operationName")]
    operation_name: Option<String>,
    /// The values of the operation's variables.
    #[schema(value_type = Option<Object>)]
    variables: Option<serde_json::Value>,
}

/// A GraphQL response. `errors` is absent when there are none.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct GraphqlResponse {
    /// The result; null when the operation could not run.
    #[schema(value_type = Option<Object>)]
    data: Option<serde_json::Value>,
    errors: Option<Vec<GraphqlError>>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct GraphqlError {
    message: String,
    #[schema(value_type = Option<Vec<Object>>)]
    locations: Option<Vec<serde_json::Value>>,
    /// Field names and list indexes leading to the field that failed.
    #[schema(value_type = Option<Vec<serde_json::Value>>)]
    path: Option<Vec<serde_json::Value>>,
    extensions: Option<GraphqlErrorExtensions>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct GraphqlErrorExtensions {
    /// `UNAUTHENTICATED`, `FORBIDDEN`, `BAD_USER_INPUT`, `NOT_FOUND`, `UNAVAILABLE`, `INTERNAL`,
    /// `CSRF_TOKEN_INVALID`, …
    #[schema(example = "UNAUTHENTICATED")]
    code: String,
}

/// Run a GraphQL query or mutation. Authenticated by `Authorization: Bearer` or by the access
/// cookie; a mutation sent with the cookie needs the CSRF header and an allowed origin. Errors
/// are in `errors[].extensions.code`, with status 200 unless the request itself is refused.
#[utoipa::path(post, path = "/graphql", tag = "graphql",
    request_body(content = GraphqlRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The operation ran (errors, if any, are in `errors`)", body = GraphqlResponse),
        (status = 400, description = "BAD_USER_INPUT: the body is not a GraphQL request, or is a batch", body = GraphqlResponse),
        (status = 403, description = "CSRF_TOKEN_INVALID: a cookie-authenticated mutation failed the CSRF checks", body = GraphqlResponse),
        (status = 413, description = "BAD_USER_INPUT: the body is over 64 KiB", body = GraphqlResponse),
        (status = 415, description = "BAD_USER_INPUT: the body is not application/json", body = GraphqlResponse),
    ),
    security((), ("bearer" = []), ("cookie" = [])))]
#[allow(dead_code)]
fn graphql_post_doc() {}

/// GraphiQL, the in-browser GraphQL IDE (its assets are served locally). Never runs an operation.
#[utoipa::path(get, path = "/graphql", tag = "graphql",
    responses((status = 200, description = "The GraphiQL page", content_type = "text/html", body = String)))]
#[allow(dead_code)]
fn graphql_get_doc() {}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(graphql_post_doc, graphql_get_doc),
    tags((name = "graphql", description = "The GraphQL API: the schema is docs/schema.graphql"))
)]
struct GraphqlDoc;

/// The layers every Fafnir HTTP server runs behind: body cap, per-route metrics, CORS, and
/// [`HardenLayer`] (security headers, request ids, tracing, panic catching and the request
/// timeout, in one layer: see `harden.rs`).
///
/// Only the metrics layer needs the matched route, so only it is a route layer. The others wrap
/// the router once, as one service: `Router::layer` would wrap every route in each of them, and
/// every request would then clone each boxed route level below the one it enters (five levels
/// of boxed clones per request instead of two, measured in docs/performance.md).
///
/// The result is what the accept loops serve ([`crate::serve::HttpApp`]): the layers around the
/// router as one service, not wrapped in another `Router` (whose routing every request would
/// pay a second time).
pub fn harden(router: Router, settings: &HttpSettings, https: bool) -> impl HttpApp {
    layers(router, settings, HardenLayer::new(https))
}

/// [`harden`] for a server that forwards requests to another (api-gateway): the request id is
/// also put on the request, so that the service behind it logs and echoes the same id
/// ([`HardenLayer::forwarding_request_id`]).
pub fn harden_forwarding(router: Router, settings: &HttpSettings, https: bool) -> impl HttpApp {
    layers(router, settings, HardenLayer::new(https).forwarding_request_id())
}

fn layers(router: Router, settings: &HttpSettings, harden: HardenLayer) -> impl HttpApp {
    let routed = router.route_layer(TrackLayer);
    tower::ServiceBuilder::new()
        .layer(harden)
        .option_layer(cors(settings))
        .layer(BodyLimitLayer::max(BODY_LIMIT))
        .service(routed)
}

/// `/metrics` for processes without a [`Stack`] (api-gateway).
pub async fn render_metrics() -> Response {
    match telemetry::prometheus() {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics are not enabled").into_response(),
    }
}
