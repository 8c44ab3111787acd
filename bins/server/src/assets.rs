//! The pages and static assets the servers carry, all vendored (nothing is fetched from the
//! internet): the landing page, Swagger UI at `/docs`, GraphiQL at `/graphql`.

use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

// ---- the landing page and Swagger UI ----

const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fafnir API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script><script src="/docs/init.js"></script></body></html>"#;
const DOCS_INIT: &str =
    r##"window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", withCredentials: true });"##;
static SWAGGER_JS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js");
static SWAGGER_CSS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui.css");
// The docs page loads only its own assets; scripts run from this origin only.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// A built-in static asset, cacheable for a day.
pub(crate) fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=86400")], body).into_response()
}

/// `GET /`: where things are, for a person who opened the server's address in a browser.
const LANDING_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fafnir</title></head>
<body><h1>Fafnir is running</h1>
<ul>
<li><a href="/docs">API documentation</a> (Swagger UI) and the <a href="/openapi.json">OpenAPI document</a></li>
<li><a href="/graphql">GraphQL</a> (GraphiQL in the browser; POST for operations)</li>
<li><a href="/.well-known/jwks.json">JWKS</a> and <a href="/.well-known/oauth-authorization-server">metadata</a></li>
<li><a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a>, <a href="/metrics">/metrics</a></li>
</ul></body></html>"#;

pub(crate) fn docs_routes() -> Router {
    let csp = SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP));
    Router::new()
        .route("/docs", get(|| async { Html(DOCS_HTML) }))
        .route("/docs/", get(|| async { Html(DOCS_HTML) }))
        .route("/docs/init.js", get(|| async { asset("text/javascript", DOCS_INIT.as_bytes()) }))
        .route("/docs/swagger-ui-bundle.js", get(|| async { asset("text/javascript", SWAGGER_JS) }))
        .route("/docs/swagger-ui.css", get(|| async { asset("text/css", SWAGGER_CSS) }))
        .route("/", get(|| async { Html(LANDING_HTML) }))
        .layer(csp)
}

// ---- GraphiQL, from vendored assets (npm graphiql 3.8.3, react 18.3.1) ----

const GRAPHIQL_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fafnir GraphQL</title>
<link rel="stylesheet" href="/graphql/assets/graphiql.min.css">
<style>html, body, #graphiql { height: 100%; margin: 0; }</style></head>
<body><div id="graphiql">Loading…</div>
<script src="/graphql/assets/react.min.js"></script>
<script src="/graphql/assets/react-dom.min.js"></script>
<script src="/graphql/assets/graphiql.min.js"></script>
<script src="/graphql/assets/init.js"></script></body></html>"#;

/// Sends the session cookie and, for mutations, the CSRF header read from `fafnir_csrf`.
const GRAPHIQL_INIT: &str = r#"function fetcher(params) {
  var m = document.cookie.match(/(?:^|; )fafnir_csrf=([^;]*)/);
  var headers = { "content-type": "application/json", "accept": "application/json" };
  if (m) { headers["x-csrf-token"] = decodeURIComponent(m[1]); }
  return fetch("/graphql", { method: "POST", credentials: "same-origin", headers: headers, body: JSON.stringify(params) })
    .then(function (r) { return r.json(); });
}
ReactDOM.createRoot(document.getElementById("graphiql"))
  .render(React.createElement(GraphiQL, { fetcher: fetcher, defaultEditorToolsVisibility: true }));
"#;

static GRAPHIQL_JS: &[u8] = include_bytes!("../assets/graphiql/graphiql.min.js");
static GRAPHIQL_CSS: &[u8] = include_bytes!("../assets/graphiql/graphiql.min.css");
static REACT_JS: &[u8] = include_bytes!("../assets/graphiql/react.production.min.js");
static REACT_DOM_JS: &[u8] = include_bytes!("../assets/graphiql/react-dom.production.min.js");
// Own scripts only; GraphiQL styles inline and embeds fonts and icons as data URLs.
const GRAPHIQL_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// `GET /graphql`: the GraphiQL IDE. Never runs an operation.
pub(crate) async fn graphiql() -> Html<&'static str> {
    Html(GRAPHIQL_HTML)
}

/// The Content-Security-Policy of GraphiQL's page and assets.
pub(crate) fn graphiql_csp() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(GRAPHIQL_CSP))
}

/// `/graphql/assets/*`: GraphiQL's scripts and styles.
pub(crate) fn graphiql_assets() -> Router {
    Router::new()
        .route("/graphql/assets/init.js", get(|| async { asset("text/javascript", GRAPHIQL_INIT.as_bytes()) }))
        .route("/graphql/assets/graphiql.min.js", get(|| async { asset("text/javascript", GRAPHIQL_JS) }))
        .route("/graphql/assets/graphiql.min.css", get(|| async { asset("text/css", GRAPHIQL_CSS) }))
        .route("/graphql/assets/react.min.js", get(|| async { asset("text/javascript", REACT_JS) }))
        .route("/graphql/assets/react-dom.min.js", get(|| async { asset("text/javascript", REACT_DOM_JS) }))
        .layer(graphiql_csp())
}
