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
<li><a href="/sign-in">Sign in with a provider</a> (social login, when providers are configured)</li>
</ul></body></html>"#;

// ---- a minimal sign-in page for social login (the web app in examples/web is the real UI) ----

const SIGN_IN_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer"><title>Sign in</title><link rel="stylesheet" href="/pages/link.css"></head>
<body><main><h1>Sign in</h1>
<p id="result" role="status" aria-live="polite"></p>
<ul id="providers"></ul></main>
<script src="/pages/sign-in.js"></script></body></html>"#;

/// Lists the providers as links to their `authorize` (returning here), says who is signed in,
/// and turns `?error=CODE` into words. Text only: nothing from the query becomes markup.
const SIGN_IN_JS: &str = r#"(function () {
  var out = document.getElementById("result"), list = document.getElementById("providers");
  var messages = {
    OAUTH_STATE_INVALID: "That sign-in expired or was not started here. Please try again.",
    OAUTH_PROVIDER_ERROR: "The provider could not sign you in. Please try again later.",
    ACCOUNT_NOT_LINKED: "An account with this e-mail already exists. Sign in to it with your password, then link the provider from your account.",
    SIGNUP_DISABLED: "New accounts cannot be created here. Ask an administrator.",
    OAUTH_EMAIL_UNVERIFIED: "The provider did not confirm your e-mail address, so no account was created.",
    IDENTITY_ALREADY_LINKED: "That provider account is already linked to another account.",
    ACCOUNT_DISABLED: "This account is disabled.",
    EMAIL_NOT_VERIFIED: "Confirm your e-mail address first: open the link we sent you.",
    RATE_LIMITED: "Too many attempts. Please wait a few minutes.",
    UNAUTHORIZED: "Sign in first, then link the provider.",
    REAUTHENTICATION_REQUIRED: "For your security, sign in again, then link the provider within 10 minutes."
  };
  var error = new URLSearchParams(location.search).get("error");
  if (error) {
    var known = Object.prototype.hasOwnProperty.call(messages, error);
    out.textContent = known ? messages[error] : "The sign-in did not succeed.";
    history.replaceState(null, "", location.pathname);
  }
  fetch("/auth/me?grants=false", { credentials: "same-origin" }).then(function (r) {
    return r.ok ? r.json() : null;
  }).then(function (me) {
    if (me && !error) { out.textContent = "You are signed in as " + me.email + "."; }
  }).catch(function () {});
  fetch("/auth/oauth/providers").then(function (r) { return r.json(); }).then(function (providers) {
    if (!providers.length) { out.textContent = out.textContent || "No sign-in provider is configured."; return; }
    providers.forEach(function (p) {
      var a = document.createElement("a"), li = document.createElement("li");
      a.href = "/auth/oauth/" + encodeURIComponent(p.name) + "/authorize?return_to=" + encodeURIComponent("/sign-in");
      a.textContent = "Sign in with " + p.display_name;
      li.appendChild(a);
      list.appendChild(li);
    });
  }).catch(function () { out.textContent = "The providers could not be loaded."; });
})();
"#;

// ---- the pages behind mailed links (until a web app serves them: FAFNIR_PUBLIC_URL) ----
//
// Opening one never redeems its token (mail scanners open links): the page shows a button, and
// only pressing it POSTs the token. The token stays in the page's address; the page loads
// nothing from elsewhere and sends no Referer.

fn link_page(title: &str, intro: &str, fields: &str, button: &str, action: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer"><title>{title}</title><link rel="stylesheet" href="/pages/link.css"></head>
<body><main><h1>{title}</h1><p>{intro}</p>
<form id="link-form" data-action="{action}">{fields}<button type="submit">{button}</button></form>
<p id="result" role="status" aria-live="polite"></p></main>
<script src="/pages/link.js"></script></body></html>"#
    )
}

const LINK_JS: &str = r#"(function () {
  var form = document.getElementById("link-form"), out = document.getElementById("result");
  var token = new URLSearchParams(location.search).get("token") || "";
  // Out of the address bar and the history: the token lives in this page only.
  if (token) { history.replaceState(null, "", location.pathname); }
  if (!token) { out.textContent = "This link has no token: open the whole link from the mail."; form.hidden = true; return; }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var body = { token: token };
    var pw = form.querySelector("input[name=new_password]");
    if (pw) {
      var again = form.querySelector("input[name=again]");
      if (pw.value !== again.value) { out.textContent = "The two passwords differ."; return; }
      body.new_password = pw.value;
    }
    var button = form.querySelector("button"); button.disabled = true; out.textContent = "…";
    fetch(form.dataset.action, { method: "POST", credentials: "same-origin",
        headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) {
        if (r.status === 204) { out.textContent = form.dataset.done || "Done."; form.hidden = true; return; }
        return r.json().then(function (e) { out.textContent = (e.error && e.error.message) || ("Error " + r.status); button.disabled = false; });
      })
      .catch(function () { out.textContent = "The server could not be reached; try again."; button.disabled = false; });
  });
})();
"#;

const LINK_CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;padding:2rem;color:#18181b;background:#fafafa}\
main{max-width:28rem;margin:auto;background:#fff;border:1px solid #e4e4e7;border-radius:.5rem;padding:1.5rem}\
label{display:block;margin:.75rem 0 .25rem}input{width:100%;padding:.5rem;box-sizing:border-box}\
button{margin-top:1rem;padding:.5rem 1rem;background:#18181b;color:#fff;border:0;border-radius:.375rem;cursor:pointer}\
@media (prefers-color-scheme: dark){body{background:#09090b;color:#fafafa}main{background:#18181b;border-color:#27272a}button{background:#fafafa;color:#18181b}}";

fn verify_page() -> String {
    link_page(
        "Confirm your e-mail address",
        "Press the button to confirm that this address is yours.",
        "",
        "Confirm my address",
        "/auth/email/verify",
    )
    .replace("<form ", r#"<form data-done="Your address is confirmed. You can close this page." "#)
}

fn reset_page() -> String {
    link_page(
        "Choose a new password",
        "Setting a new password signs you out everywhere; sign in again afterwards.",
        r#"<label for="pw">New password</label><input id="pw" name="new_password" type="password" autocomplete="new-password" required minlength="8" maxlength="128">
<label for="again">The same again</label><input id="again" name="again" type="password" autocomplete="new-password" required minlength="8" maxlength="128">"#,
        "Set the new password",
        "/auth/password/reset",
    )
    .replace("<form ", r#"<form data-done="Your password is set. Sign in with it." "#)
}

fn confirm_change_page() -> String {
    link_page(
        "Confirm your new e-mail address",
        "Press the button to use this address for your account from now on.",
        "",
        "Confirm the new address",
        "/auth/email/change/confirm",
    )
    .replace("<form ", r#"<form data-done="Your account now uses this address." "#)
}

/// The built-in pages behind mailed links, at the default paths, with their CSP (for a server
/// without the docs pages: the gateway).
pub(crate) fn link_pages() -> Router {
    link_routes()
        .layer(SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP)))
}

fn link_routes() -> Router {
    let no_store = SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let pages = Router::new()
        .route("/verify-email", get(|| async { Html(verify_page()) }))
        .route("/reset-password", get(|| async { Html(reset_page()) }))
        .route("/confirm-email", get(|| async { Html(confirm_change_page()) }))
        .route("/sign-in", get(|| async { Html(SIGN_IN_HTML) }))
        .layer(no_store);
    pages
        .route("/pages/link.js", get(|| async { asset("text/javascript", LINK_JS.as_bytes()) }))
        .route("/pages/link.css", get(|| async { asset("text/css", LINK_CSS.as_bytes()) }))
        .route("/pages/sign-in.js", get(|| async { asset("text/javascript", SIGN_IN_JS.as_bytes()) }))
}

pub(crate) fn docs_routes() -> Router {
    let csp = SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CSP));
    Router::new()
        .route("/docs", get(|| async { Html(DOCS_HTML) }))
        .route("/docs/", get(|| async { Html(DOCS_HTML) }))
        .route("/docs/init.js", get(|| async { asset("text/javascript", DOCS_INIT.as_bytes()) }))
        .route("/docs/swagger-ui-bundle.js", get(|| async { asset("text/javascript", SWAGGER_JS) }))
        .route("/docs/swagger-ui.css", get(|| async { asset("text/css", SWAGGER_CSS) }))
        .route("/", get(|| async { Html(LANDING_HTML) }))
        .merge(link_routes())
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
