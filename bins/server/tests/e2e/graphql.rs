//! End-to-end tests of the GraphQL gateway, run unchanged against two topologies: `fafnir serve`
//! (everything in one server) and api-gateway + auth-service + security-service + user-service
//! (four servers on their own sockets, three databases). Each on SQLite and on Postgres.
//!
//! Every query and mutation of the schema, the cookie flow with CSRF, unauthenticated and
//! forbidden paths, the depth and complexity limits, batched role loading, services stopped
//! mid-test, and `docs/schema.graphql` equal to the served schema.

use crate::common::{addr, port, spawn, tokens, wait_until, Running};

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use fafnir_core::testing::TestDb;
use fafnir_core::{Config, Db, SystemClock, UserId};
use fafnir_rbac::{Rbac, RoleName, SqlRbacStore};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

const PW: &str = "correct horse battery staple";
const NEW_PW: &str = "a brand new passphrase, quite long";

/// One deployment under test.
struct Env {
    /// The gateway's origin (the one URL a browser would know).
    url: String,
    /// The database RBAC lives in (to make the first admin, as `fafnir role grant` does).
    rbac_db: String,
    /// The other servers, by name, to stop mid-test (four-process topology only).
    services: Vec<(&'static str, Running)>,
    /// security-service's health/metrics port (four-process topology only).
    security_metrics: Option<String>,
    /// Where SecurityService and UserService answer gRPC.
    grpc: (String, String),
}

impl Env {
    async fn stop(&mut self, name: &str) {
        let i = self.services.iter().position(|(n, _)| *n == name).unwrap();
        let (_, r) = self.services.remove(i);
        r.stop().await;
    }

    async fn shutdown(self) {
        for (_, r) in self.services {
            r.stop().await;
        }
    }
}

async fn wait_http(url: &str) {
    let http = reqwest::Client::new();
    wait_until(url, || async { http.get(url).send().await.is_ok_and(|r| r.status().is_success()) }).await;
}

/// `fafnir serve`: HTTP and gRPC in one server.
async fn all_in_one(db: &TestDb) -> Env {
    let (p, g) = (port(), port());
    let cfg = Config {
        database_url: db.url.clone(),
        http_addr: addr(p),
        grpc_addr: addr(g),
        cookie_secure: false,
        log: "warn".into(),
        ..Config::default()
    };
    let server = spawn(|s| fafnir_server::run_all_in_one(cfg, Router::new(), s));
    let url = format!("http://127.0.0.1:{p}");
    wait_http(&format!("{url}/readyz")).await;
    let grpc = format!("http://127.0.0.1:{g}");
    Env {
        url,
        rbac_db: db.url.clone(),
        services: vec![("fafnir", server)],
        security_metrics: None,
        grpc: (grpc.clone(), grpc),
    }
}

/// api-gateway in front of auth-service, security-service and user-service.
async fn four_services(dbs: [&TestDb; 3]) -> Env {
    let (gw_p, auth_p, sec_p, sec_http, usr_p, usr_http) = (port(), port(), port(), port(), port(), port());
    let auth_url = format!("http://127.0.0.1:{auth_p}");
    let base = |db: &str| Config {
        database_url: db.to_owned(),
        cookie_secure: false,
        auth_url: Some(auth_url.clone()),
        security_url: Some(format!("http://127.0.0.1:{sec_p}")),
        users_url: Some(format!("http://127.0.0.1:{usr_p}")),
        log: "warn".into(),
        ..Config::default()
    };
    // As an operator deploys it (docs/operations.md): browsers know only the gateway, so its URL
    // is the public URL of auth-service (cookies, CSRF origin, token issuer) and of the gateway;
    // security-service and user-service are told nothing and learn the issuer from
    // auth-service. auth-service sits behind the gateway: the client address is the one the
    // gateway forwards.
    let public = Some(format!("http://127.0.0.1:{gw_p}"));
    let auth_cfg =
        Config { http_addr: addr(auth_p), trust_forwarded_for: true, public_url: public.clone(), ..base(&dbs[0].url) };
    let sec_cfg = Config { grpc_addr: addr(sec_p), http_addr: addr(sec_http), ..base(&dbs[1].url) };
    let usr_cfg = Config { grpc_addr: addr(usr_p), http_addr: addr(usr_http), ..base(&dbs[2].url) };
    let gw_cfg = Config { http_addr: addr(gw_p), public_url: public, ..base("sqlite::memory:") };
    let security = spawn(|s| fafnir_server::run_security_service(sec_cfg, s));
    let users = spawn(|s| fafnir_server::run_user_service(usr_cfg, s));
    let auth = spawn(|s| fafnir_server::run_auth_service(auth_cfg, s));
    wait_http(&format!("{auth_url}/readyz")).await;
    let gateway = spawn(|s| fafnir_server::run_api_gateway(gw_cfg, s));
    let url = format!("http://127.0.0.1:{gw_p}");
    wait_http(&format!("{url}/readyz")).await;
    wait_http(&format!("http://127.0.0.1:{sec_http}/readyz")).await;
    wait_http(&format!("http://127.0.0.1:{usr_http}/readyz")).await;
    Env {
        url,
        rbac_db: dbs[1].url.clone(),
        services: vec![("gateway", gateway), ("auth", auth), ("security", security), ("users", users)],
        security_metrics: Some(format!("http://127.0.0.1:{sec_http}/metrics")),
        grpc: (format!("http://127.0.0.1:{sec_p}"), format!("http://127.0.0.1:{usr_p}")),
    }
}

/// A browser: keeps cookies, sends an Origin like a page on the gateway's origin would.
struct Browser {
    http: reqwest::Client,
    jar: Arc<Jar>,
    url: String,
}

impl Browser {
    fn new(url: &str) -> Self {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder().cookie_provider(jar.clone()).build().unwrap();
        Browser { http, jar, url: url.to_owned() }
    }

    fn cookie(&self, name: &str) -> Option<String> {
        let all = self.jar.cookies(&self.url.parse().unwrap())?;
        all.to_str().unwrap().split("; ").find_map(|c| c.strip_prefix(&format!("{name}=")).map(str::to_owned))
    }

    /// An operation with the CSRF header taken from the cookie, as a page script would send it.
    async fn gql(&self, query: &str, vars: Value) -> Reply {
        let mut extra = vec![("origin".to_owned(), self.url.clone())];
        if let Some(c) = self.cookie("fafnir_csrf") {
            extra.push(("x-csrf-token".to_owned(), c));
        }
        post(&self.http, &self.url, query, vars, &extra).await
    }

    /// The same, without the CSRF header (what a cross-site page could make a browser send).
    async fn gql_no_csrf(&self, query: &str, vars: Value) -> Reply {
        post(&self.http, &self.url, query, vars, &[]).await
    }
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn data(&self, field: &str) -> &Value {
        assert!(self.body.get("errors").is_none(), "unexpected errors: {}", self.body);
        &self.body["data"][field]
    }

    fn code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {}", self.body))
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }
}

async fn post(http: &reqwest::Client, url: &str, query: &str, vars: Value, headers: &[(String, String)]) -> Reply {
    let mut req = http
        .post(format!("{url}/graphql"))
        .timeout(Duration::from_secs(20))
        .json(&json!({ "query": query, "variables": vars }));
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.json().await.unwrap();
    Reply { status, headers, body }
}

async fn bearer(http: &reqwest::Client, url: &str, token: &str, query: &str, vars: Value) -> Reply {
    post(http, url, query, vars, &[("authorization".into(), format!("Bearer {token}"))]).await
}

/// The status of `GET path` sent verbatim over a socket.
async fn raw_status(url: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf);
    head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Grants `admin` the way `fafnir role grant` does: on the database RBAC lives in.
pub(crate) async fn make_admin(db_url: &str, user: UserId) {
    let db = Db::connect(db_url).await.unwrap();
    let rbac = Rbac::new(Arc::new(SqlRbacStore::new(db.clone(), Arc::new(SystemClock)))).await.unwrap();
    wait_until("the user to reach RBAC", || async {
        rbac.refresh().await.unwrap();
        rbac.user_roles(&user).is_some()
    })
    .await;
    rbac.grant(user, &RoleName::parse("admin").unwrap()).await.unwrap();
    db.close().await;
}

async fn grpc_calls(metrics: &str, method: &str) -> f64 {
    let text = reqwest::get(metrics).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("fafnir_grpc_requests_total{") && l.contains(&format!("method=\"{method}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The batch-counting part must not overlap another test's (the metrics registry is shared).
static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ME: &str =
    "{ me { user { id email emailVerified createdAt } roles permissions profile { displayName locale } } }";
const UPDATE: &str =
    "mutation($i: ProfileInput!, $u: ID) { updateProfile(input: $i, userId: $u) { userId displayName avatarUrl } }";
const CHECK: &str = "query($p: String!, $u: ID) { checkPermission(request: {permission: $p, userId: $u}) { hasPermission permissionCode } }";
const ROLE: &str =
    "mutation($u: ID!, $r: String!) { assignRole(input: {userId: $u, role: $r}) { userId role changed } }";
const UNROLE: &str =
    "mutation($u: ID!, $r: String!) { revokeRole(input: {userId: $u, role: $r}) { userId role changed } }";
const LOGIN: &str = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { user { id email } accessExpiresAt accessToken } }";
const REGISTER: &str = "mutation($e: String!, $p: String!, $n: String) { register(input: {email: $e, password: $p, displayName: $n}) { id email emailVerified } }";

async fn register(url: &str, email: &str, name: &str) -> UserId {
    let r = post(&reqwest::Client::new(), url, REGISTER, json!({"e": email, "p": PW, "n": name}), &[]).await;
    UserId::parse(r.data("register")["id"].as_str().unwrap()).unwrap()
}

/// A member signed in through GraphQL in a browser (cookies and the CSRF header).
async fn member(env: &Env, email: &str, name: &str) -> (UserId, Browser) {
    let id = register(&env.url, email, name).await;
    let browser = Browser::new(&env.url);
    let r = browser.gql(LOGIN, json!({"e": email, "p": PW})).await;
    assert_eq!(r.data("login")["user"]["id"], id.to_string());
    wait_until("the member's profile", || async {
        browser.gql(ME, json!({})).await.body["data"]["me"]["profile"]["displayName"] == name
    })
    .await;
    (id, browser)
}

/// An administrator (`root@example.com`, granted as `fafnir role grant` does) and its API token.
async fn admin(env: &Env) -> (UserId, String) {
    let url = env.url.as_str();
    let root = register(url, "root@example.com", "Root").await;
    make_admin(&env.rbac_db, root).await;
    let (token, _) = tokens(url, "root@example.com", PW).await;
    wait_until("the admin grant to reach the server", || async {
        bearer(&reqwest::Client::new(), url, &token, CHECK, json!({"p": "users:read"})).await.body["data"]
            ["checkPermission"]["hasPermission"]
            == true
    })
    .await;
    (root, token)
}

/// `health` needs no one and `me` someone; registration refuses a taken address, a weak
/// password and a malformed address as the caller's fault.
async fn anonymous_access_and_registration(env: &Env) {
    let url = env.url.as_str();
    let anon = reqwest::Client::new();
    // health needs no one; me needs someone.
    let r = post(&anon, url, "{ health { status version } }", json!({}), &[]).await;
    assert_eq!(r.data("health")["status"], "ok");
    let r = post(&anon, url, ME, json!({}), &[]).await;
    assert_eq!((r.status, r.code()), (200, "UNAUTHENTICATED"));
    assert_eq!(r.body["data"]["me"], Value::Null);
    let r = bearer(&anon, url, "not.a.jwt", ME, json!({})).await;
    assert_eq!(r.code(), "UNAUTHENTICATED");

    // register: created once; taken, weak password and bad e-mail are the caller's fault.
    let r = post(&anon, url, REGISTER, json!({"e": "ada@example.com", "p": PW, "n": "Ada"}), &[]).await;
    assert_eq!(r.data("register")["email"], "ada@example.com");
    assert_eq!(r.data("register")["emailVerified"], false);
    UserId::parse(r.data("register")["id"].as_str().unwrap()).unwrap();
    let r = post(&anon, url, REGISTER, json!({"e": "ADA@example.com", "p": PW}), &[]).await;
    assert_eq!(
        (r.code(), r.body["errors"][0]["extensions"]["reason"].as_str()),
        ("BAD_USER_INPUT", Some("EMAIL_TAKEN"))
    );
    let r = post(&anon, url, REGISTER, json!({"e": "bob@example.com", "p": "password"}), &[]).await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    assert_eq!(r.body["errors"][0]["extensions"]["field"], "password");
    let r = post(&anon, url, REGISTER, json!({"e": "not-an-email", "p": PW}), &[]).await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
}

/// A browser login sets the three cookies with their flags; `me` answers account, roles,
/// permissions and profile in one round trip.
async fn browser_login_sets_the_cookies(env: &Env) {
    let url = env.url.as_str();
    // login: wrong password refused; right one sets the REST cookies.
    let ada = register(url, "ada@example.com", "Ada").await;
    let browser = Browser::new(url);
    let r = browser.gql(LOGIN, json!({"e": "ada@example.com", "p": "wrong password entirely"})).await;
    assert_eq!(
        (r.code(), r.body["errors"][0]["extensions"]["reason"].as_str()),
        ("UNAUTHENTICATED", Some("INVALID_CREDENTIALS"))
    );
    let r = browser.gql(LOGIN, json!({"e": "ada@example.com", "p": PW})).await;
    assert_eq!(r.data("login")["user"]["id"], ada.to_string());
    assert_eq!(r.data("login")["accessToken"], Value::Null, "browser logins keep tokens in cookies");
    let cookies = r.set_cookies();
    let find = |name: &str| cookies.iter().find(|c| c.starts_with(&format!("{name}="))).unwrap().clone();
    let access = find("fafnir_access");
    assert!(access.contains("HttpOnly") && access.contains("SameSite=Lax") && access.contains("Path=/;"), "{access}");
    assert!(access.contains("Max-Age=900"), "{access}");
    let refresh = find("fafnir_refresh");
    assert!(refresh.contains("HttpOnly") && refresh.contains("SameSite=Strict") && refresh.contains("Path=/auth"));
    let csrf = find("fafnir_csrf");
    assert!(!csrf.contains("HttpOnly") && csrf.contains("SameSite=Lax"));

    // me: account, roles, permissions and profile in one round trip.
    let r = browser.gql(ME, json!({})).await;
    let me = r.data("me");
    assert_eq!(me["user"]["email"], "ada@example.com");
    assert_eq!(me["roles"], json!(["member"]));
    assert_eq!(me["permissions"], json!(["profile:read", "profile:write"]));
    wait_until("Ada's profile", || async {
        browser.gql(ME, json!({})).await.body["data"]["me"]["profile"]["displayName"] == "Ada"
    })
    .await;
}

/// A cookie-authenticated mutation without the CSRF header, from a foreign origin, with a forged
/// token or a simple content type is refused whole and changes nothing; GET never runs one.
async fn csrf_refuses_cross_site_mutations(env: &Env) {
    let url = env.url.as_str();
    let (_, browser) = member(env, "ada@example.com", "Ada").await;
    // CSRF: a cookie-authenticated mutation without the header is refused and changes nothing.
    let r = browser.gql_no_csrf(UPDATE, json!({"i": {"displayName": "Mallory"}})).await;
    assert_eq!((r.status, r.code()), (403, "CSRF_TOKEN_INVALID"));
    // The whole operation is refused, including fields that need no session on their own.
    let both = "mutation { register(input: {email: \"eve@example.com\", password: \"correct horse battery staple\"}) { id } logout }";
    let r = browser.gql_no_csrf(both, json!({})).await;
    assert_eq!((r.status, r.code()), (403, "CSRF_TOKEN_INVALID"));
    let named = "query Q { health { status } } mutation M { logout }";
    let r = post(&browser.http, url, named, json!({}), &[]).await;
    assert_eq!(r.code(), "CSRF_TOKEN_INVALID", "two operations, no operationName, one a mutation: refused");
    let res = browser
        .http
        .post(format!("{url}/graphql"))
        .json(&json!({"query": named, "operationName": "M"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "the named mutation is refused");
    let res = browser
        .http
        .post(format!("{url}/graphql"))
        .json(&json!({"query": named, "operationName": "Q"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the named query runs");
    let mut evil = vec![("origin".to_owned(), "https://evil.example".to_owned())];
    evil.push(("x-csrf-token".to_owned(), browser.cookie("fafnir_csrf").unwrap()));
    let r = post(&browser.http, url, UPDATE, json!({"i": {"displayName": "Mallory"}}), &evil).await;
    assert_eq!((r.status, r.code()), (403, "CSRF_TOKEN_INVALID"), "a foreign Origin fails even with the token");
    let wrong = vec![("x-csrf-token".to_owned(), "forged.value".to_owned())];
    let r = post(&browser.http, url, UPDATE, json!({"i": {"displayName": "Mallory"}}), &wrong).await;
    assert_eq!(r.code(), "CSRF_TOKEN_INVALID");
    // A simple content type (what a cross-site form can send) is refused outright.
    let res = browser
        .http
        .post(format!("{url}/graphql"))
        .header("content-type", "text/plain")
        .body(json!({"query": "mutation { logout }"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let res = browser
        .http
        .post(format!("{url}/graphql"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("query=mutation%20%7B%20logout%20%7D")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    // GET serves GraphiQL and never runs an operation.
    let res = browser.http.get(format!("{url}/graphql?query=mutation%20%7B%20logout%20%7D")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(res.text().await.unwrap().contains("/graphql/assets/graphiql.min.js"));
    let res = browser.http.get(format!("{url}/graphql/assets/graphiql.min.js")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let r = browser.gql(ME, json!({})).await;
    assert_eq!(r.data("me")["profile"]["displayName"], "Ada", "nothing above changed the profile or the session");
}

/// Profile updates (partial, null clears, invalid refused with its field) and permission checks
/// about oneself.
async fn own_profile_and_permission_checks(env: &Env) {
    let (_, browser) = member(env, "ada@example.com", "Ada").await;
    // With the header: allowed; a partial update leaves other fields; null clears.
    let r =
        browser.gql(UPDATE, json!({"i": {"displayName": "Ada L.", "avatarUrl": "https://example.com/a.png"}})).await;
    assert_eq!(r.data("updateProfile")["displayName"], "Ada L.");
    let r = browser.gql(UPDATE, json!({"i": {"avatarUrl": null}})).await;
    assert_eq!(
        (&r.data("updateProfile")["displayName"], &r.data("updateProfile")["avatarUrl"]),
        (&json!("Ada L."), &Value::Null)
    );
    let r = browser.gql(UPDATE, json!({"i": {"avatarUrl": "javascript:alert(1)"}})).await;
    assert_eq!((r.code(), r.body["errors"][0]["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("avatarUrl")));
    let r = browser.gql("{ profile { displayName avatarUrl } }", json!({})).await;
    assert_eq!(r.data("profile")["displayName"], "Ada L.");

    // checkPermission for oneself; anyone else needs users:read.
    let r = browser.gql(CHECK, json!({"p": "profile:read"})).await;
    assert_eq!(r.data("checkPermission"), &json!({"hasPermission": true, "permissionCode": "PERMISSION_GRANTED"}));
    let r = browser.gql(CHECK, json!({"p": "users:read"})).await;
    assert_eq!(r.data("checkPermission"), &json!({"hasPermission": false, "permissionCode": "PERMISSION_DENIED"}));
    let r = browser.gql(CHECK, json!({"p": "no colon"})).await;
    assert_eq!(r.data("checkPermission")["permissionCode"], "INVALID_PERMISSION");
}

/// A member may not read others' data, list the directory or change roles; the roles list is
/// public to members.
async fn a_member_is_forbidden_what_needs_a_permission(env: &Env) {
    let url = env.url.as_str();
    let (ada, browser) = member(env, "ada@example.com", "Ada").await;
    // Forbidden for a member: others' data, the directory, role changes.
    let bob = register(url, "bob@example.com", "Bob").await;
    let r = browser.gql(CHECK, json!({"p": "profile:read", "u": bob.to_string()})).await;
    assert_eq!(r.code(), "FORBIDDEN");
    let r = browser.gql("query($u: ID) { profile(userId: $u) { displayName } }", json!({"u": bob.to_string()})).await;
    assert_eq!(r.code(), "FORBIDDEN");
    let r = browser.gql("{ users { nodes { id } } }", json!({})).await;
    assert_eq!(r.code(), "FORBIDDEN");
    let r = browser.gql(ROLE, json!({"u": ada.to_string(), "r": "admin"})).await;
    assert_eq!(r.code(), "FORBIDDEN");
    let r = browser.gql(UPDATE, json!({"i": {"displayName": "B"}, "u": bob.to_string()})).await;
    assert_eq!(r.code(), "FORBIDDEN");
    let r = browser.gql("{ roles { name builtin permissions inherits description } }", json!({})).await;
    let names: Vec<&str> = r.data("roles").as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "member"]);
}

/// An administrator pages through the directory with a bearer token (no CSRF needed), with
/// roles loaded in one batch per page.
async fn an_admin_pages_the_directory(env: &Env) {
    let url = env.url.as_str();
    let anon = reqwest::Client::new();
    // An administrator, with a bearer token (API client: no CSRF needed).
    let (_, token) = admin(env).await;
    register(url, "ada@example.com", "Ada").await;
    register(url, "bob@example.com", "Bob").await;
    for i in 0..5 {
        register(url, &format!("user{i}@example.com"), &format!("User {i}")).await;
    }
    let list = "query($f: Int, $a: String) { users(first: $f, after: $a) { nodes { id roles profile { displayName } } pageInfo { endCursor hasNextPage } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let r = bearer(&anon, url, &token, list, json!({"f": 3, "a": after})).await;
        let page = r.data("users");
        for n in page["nodes"].as_array().unwrap() {
            seen.push((n["profile"]["displayName"].as_str().unwrap_or("").to_owned(), n["roles"].clone()));
        }
        if page["pageInfo"]["hasNextPage"] == false {
            assert_eq!(page["pageInfo"]["endCursor"], Value::Null);
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    wait_until("every profile", || async {
        let r = bearer(&anon, url, &token, list, json!({"f": 100})).await;
        r.body["data"]["users"]["nodes"].as_array().is_some_and(|n| n.len() == 8)
    })
    .await;
    let r = bearer(&anon, url, &token, list, json!({"f": 100})).await;
    let nodes = r.data("users")["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 8, "ada, bob, root and five more");
    assert!(nodes.iter().any(|n| n["roles"] == json!(["admin", "member"])));
    assert_eq!(nodes.iter().filter(|n| n["roles"] == json!(["member"])).count(), 7);
    let r = bearer(&anon, url, &token, list, json!({"f": 0})).await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    let r = bearer(&anon, url, &token, list, json!({"f": 5, "a": "garbage"})).await;
    assert_eq!((r.code(), r.body["errors"][0]["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("after")));

    // Batched: one page of users costs one role lookup, not one per user.
    if let Some(metrics) = &env.security_metrics {
        let _serial = COUNTING.lock().await;
        let (batch, single) =
            (grpc_calls(metrics, "BatchGetUserRoles").await, grpc_calls(metrics, "GetUserRoles").await);
        let r = bearer(&anon, url, &token, list, json!({"f": 8})).await;
        assert_eq!(r.data("users")["nodes"].as_array().unwrap().len(), 8);
        assert_eq!(grpc_calls(metrics, "BatchGetUserRoles").await - batch, 1.0);
        assert_eq!(grpc_calls(metrics, "GetUserRoles").await - single, 0.0);
    }
}

/// Role grants and revocations by an administrator take effect at once; an admin reads and
/// writes others' profiles.
async fn role_changes_take_effect_at_once(env: &Env) {
    let url = env.url.as_str();
    let anon = reqwest::Client::new();
    let (_, token) = admin(env).await;
    let (ada, browser) = member(env, "ada@example.com", "Ada").await;
    let bob = register(url, "bob@example.com", "Bob").await;
    // Role changes by the admin take effect at once.
    let r = bearer(&anon, url, &token, ROLE, json!({"u": ada.to_string(), "r": "admin"})).await;
    assert_eq!(r.data("assignRole"), &json!({"userId": ada.to_string(), "role": "admin", "changed": true}));
    let r = browser.gql(CHECK, json!({"p": "users:read"})).await;
    assert_eq!(r.data("checkPermission")["hasPermission"], true);
    let r = bearer(&anon, url, &token, UNROLE, json!({"u": ada.to_string(), "r": "admin"})).await;
    assert_eq!(r.data("revokeRole")["changed"], true);
    let r = bearer(&anon, url, &token, UNROLE, json!({"u": ada.to_string(), "r": "admin"})).await;
    assert_eq!(r.data("revokeRole")["changed"], false);
    let r = browser.gql(CHECK, json!({"p": "users:read"})).await;
    assert_eq!(r.data("checkPermission")["hasPermission"], false);
    let r = bearer(&anon, url, &token, ROLE, json!({"u": ada.to_string(), "r": "no-such-role"})).await;
    assert_eq!(r.code(), "NOT_FOUND");
    let r = bearer(&anon, url, &token, ROLE, json!({"u": "not-a-uuid", "r": "admin"})).await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    let r = bearer(&anon, url, &token, CHECK, json!({"p": "profile:read", "u": bob.to_string()})).await;
    assert_eq!(r.data("checkPermission")["permissionCode"], "PERMISSION_GRANTED");
    let r = bearer(
        &anon,
        url,
        &token,
        "query($u: ID) { profile(userId: $u) { displayName } }",
        json!({"u": bob.to_string()}),
    )
    .await;
    assert_eq!(r.data("profile")["displayName"], "Bob");
    let r = bearer(
        &anon,
        url,
        &token,
        "query($u: ID) { profile(userId: $u) { displayName } }",
        json!({"u": UserId::new().to_string()}),
    )
    .await;
    assert_eq!(r.code(), "NOT_FOUND");
    let r = bearer(&anon, url, &token, UPDATE, json!({"i": {"bio": "set by an admin"}, "u": bob.to_string()})).await;
    assert_eq!(r.data("updateProfile")["userId"], bob.to_string());
}

/// GraphiQL's introspection runs; deeper, costlier, malformed and batched operations are
/// refused; dot segments never leave the `/auth/` prefix.
async fn limits_refuse_deep_costly_and_malformed_operations(env: &Env) {
    let url = env.url.as_str();
    let anon = reqwest::Client::new();
    let (_, token) = admin(env).await;
    // Limits: too deep, too costly, malformed.
    // GraphiQL's introspection query (graphql-js 16: type references nine `ofType`s deep) runs…
    let type_ref = (0..9).fold("kind name".to_owned(), |inner, _| format!("kind name ofType {{ {inner} }}"));
    let introspection = format!(
        "query IntrospectionQuery {{ __schema {{ queryType {{ name }} mutationType {{ name }} \
         types {{ ...FullType }} directives {{ name description locations args {{ ...InputValue }} }} }} }} \
         fragment FullType on __Type {{ kind name description \
           fields(includeDeprecated: true) {{ name description args {{ ...InputValue }} type {{ ...TypeRef }} isDeprecated deprecationReason }} \
           inputFields {{ ...InputValue }} interfaces {{ ...TypeRef }} \
           enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }} possibleTypes {{ ...TypeRef }} }} \
         fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }} defaultValue }} \
         fragment TypeRef on __Type {{ {type_ref} }}"
    );
    let r = post(&anon, url, &introspection, json!({}), &[]).await;
    assert!(r.data("__schema")["types"].as_array().unwrap().len() > 20);
    // …and one level deeper is refused.
    let too_deep = (0..10).fold("name".to_owned(), |inner, _| format!("ofType {{ {inner} }}"));
    let deep = format!("{{ __schema {{ types {{ fields {{ args {{ type {{ {too_deep} }} }} }} }} }} }}");
    let r = bearer(&anon, url, &token, &deep, json!({})).await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("nested too deep"), "{}", r.body);
    let costly = "{ users(first: 100) { nodes { id roles profile { userId firstName lastName displayName avatarUrl bio locale timezone createdAt updatedAt } } } }";
    let r = bearer(&anon, url, &token, costly, json!({})).await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("complex"), "{}", r.body);
    let aliases: String = (0..50).map(|i| format!("p{i}: profile {{ bio }} ")).collect();
    let r = bearer(&anon, url, &token, &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(r.code(), "BAD_USER_INPUT", "50 service calls in one request: too complex");
    let logins: String = (0..5)
        .map(|i| format!("l{i}: login(input: {{email: \"root@example.com\", password: \"x\"}}) {{ accessExpiresAt }} "))
        .collect();
    let r = bearer(&anon, url, &token, &format!("mutation {{ {logins} }}"), json!({})).await;
    assert_eq!(r.code(), "BAD_USER_INPUT", "5 password checks in one request: too complex");
    let r = bearer(&anon, url, &token, "{ me { nope } }", json!({})).await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    let r = bearer(&anon, url, &token, "{ me ", json!({})).await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    let res = anon
        .post(format!("{url}/graphql"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res =
        anon.post(format!("{url}/graphql")).json(&json!([{"query": "{ health { status } }"}])).send().await.unwrap();
    assert_eq!(res.status(), 400, "no batches");

    // Dot segments never leave the /auth/ prefix (raw request: HTTP clients normalise them).
    for path in ["/auth/../openapi.json", "/auth/%2e%2e/metrics", "/auth/x/../../readyz"] {
        assert_eq!(raw_status(url, path).await, 404, "{path}");
    }
}

/// `refresh` with a token argument (API clients) and through `/auth/refresh` with the cookie
/// (browsers); `changePassword` and `logout` need the CSRF header by cookie, and a logged-out
/// token is refused everywhere.
async fn refresh_change_password_and_logout(env: &Env) {
    let url = env.url.as_str();
    let anon = reqwest::Client::new();
    let (_, browser) = member(env, "ada@example.com", "Ada").await;
    let (_, refresh_token) = tokens(url, "ada@example.com", PW).await;
    // refresh with a token argument (API client): new tokens in the payload; the old one is spent.
    let q = "mutation($t: String) { refresh(refreshToken: $t) { user { email } accessToken refreshToken } }";
    let r = post(&anon, url, q, json!({"t": refresh_token}), &[]).await;
    let new_refresh = r.data("refresh")["refreshToken"].as_str().unwrap().to_owned();
    assert!(r.data("refresh")["accessToken"].as_str().unwrap().len() > 20);
    assert_ne!(new_refresh, refresh_token);
    let r = post(&anon, url, q, json!({"t": "not a token"}), &[]).await;
    assert_eq!(r.code(), "UNAUTHENTICATED");
    let r = post(&anon, url, q, json!({}), &[]).await;
    assert_eq!(r.code(), "UNAUTHENTICATED", "no refresh cookie reaches /graphql, none given");

    // The browser refreshes through /auth/refresh on the same origin (its refresh cookie's path).
    let old_access = browser.cookie("fafnir_access").unwrap();
    let res = browser
        .http
        .post(format!("{url}/auth/refresh"))
        .header("x-csrf-token", browser.cookie("fafnir_csrf").unwrap())
        .header("origin", url)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_ne!(
        browser.cookie("fafnir_access").unwrap(),
        old_access,
        "rotated cookies set through the gateway's origin"
    );

    // changePassword: needs CSRF by cookie; a wrong current password changes nothing.
    let cp = "mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) }";
    let r = browser.gql_no_csrf(cp, json!({"c": PW, "n": NEW_PW})).await;
    assert_eq!(r.code(), "CSRF_TOKEN_INVALID");
    let r = browser.gql(cp, json!({"c": "not my password at all", "n": NEW_PW})).await;
    assert_eq!(r.code(), "UNAUTHENTICATED");
    let r = browser.gql(cp, json!({"c": PW, "n": "short"})).await;
    assert_eq!(r.code(), "BAD_USER_INPUT");
    let r = browser.gql(cp, json!({"c": PW, "n": NEW_PW})).await;
    assert_eq!(r.data("changePassword"), true);
    let r = post(&anon, url, LOGIN, json!({"e": "ada@example.com", "p": PW}), &[]).await;
    assert_eq!(r.code(), "UNAUTHENTICATED", "the old password is gone");

    // logout: needs CSRF by cookie; clears the cookies; the old token is then refused.
    let token_before = browser.cookie("fafnir_access").unwrap();
    let r = browser.gql_no_csrf("mutation { logout }", json!({})).await;
    assert_eq!(r.code(), "CSRF_TOKEN_INVALID");
    let r = browser.gql("mutation { logout }", json!({})).await;
    assert_eq!(r.data("logout"), true);
    let cleared = r.set_cookies();
    for name in ["fafnir_access", "fafnir_refresh", "fafnir_csrf"] {
        assert!(cleared.iter().any(|c| c.starts_with(&format!("{name}=")) && c.contains("Max-Age=0")), "{cleared:?}");
    }
    let r = bearer(&anon, url, &token_before, ME, json!({})).await;
    assert_eq!(r.code(), "UNAUTHENTICATED", "a logged-out session's token is refused by me");
    let r = bearer(&anon, url, &token_before, UPDATE, json!({"i": {"bio": "after logout"}})).await;
    assert_eq!(r.code(), "UNAUTHENTICATED", "and by every mutation");
}

/// Whether `token` is still accepted by each surface that reads with it: SecurityService and
/// UserService over gRPC, and a GraphQL read (`profile`).
async fn accepted(env: &Env, token: &str) -> [bool; 3] {
    // CheckPermission, not GetUserRoles: the batching test counts GetUserRoles calls, and the
    // metrics registry is shared by the tests running at the same time.
    use fafnir_proto::security::v1::{security_service_client::SecurityServiceClient, CheckPermissionRequest};
    use fafnir_proto::users::v1::{user_service_client::UserServiceClient, GetProfileRequest};
    fn with<T>(msg: T, token: &str) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        r
    }
    let sec = tonic::transport::Channel::from_shared(env.grpc.0.clone()).unwrap().connect_lazy();
    let usr = tonic::transport::Channel::from_shared(env.grpc.1.clone()).unwrap().connect_lazy();
    let check = CheckPermissionRequest { user_id: String::new(), permission: "profile:read".into() };
    let s = SecurityServiceClient::new(sec).check_permission(with(check, token)).await;
    let u = UserServiceClient::new(usr).get_profile(with(GetProfileRequest::default(), token)).await;
    for r in [s.as_ref().err(), u.as_ref().err()].into_iter().flatten() {
        assert_eq!(r.code(), tonic::Code::Unauthenticated, "refused as unauthenticated: {r:?}");
    }
    let g = bearer(&reqwest::Client::new(), &env.url, token, "{ profile { userId } }", json!({})).await;
    let g_ok = g.body.get("errors").is_none();
    if !g_ok {
        assert_eq!(g.code(), "UNAUTHENTICATED");
    }
    [s.is_ok(), u.is_ok(), g_ok]
}

/// Waits until no surface accepts `token` any more: the contract allows a few seconds of cache.
async fn refused_everywhere(env: &Env, token: &str, after: &str) {
    let start = Instant::now();
    loop {
        let a = accepted(env, token).await;
        if a == [false; 3] {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "after {after}, still accepted by [gRPC security, gRPC users, GraphQL]: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn rest(url: &str, path: &str, token: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new().post(format!("{url}{path}")).bearer_auth(token).json(&body).send().await.unwrap()
}

/// A session that ends — by logout, logout everywhere, a password change or refresh-token reuse
/// — ends on every surface and in every service, not only on REST.
async fn revocation(env: &Env) {
    let url = env.url.as_str();
    register(url, "rev1@example.com", "Rev").await;
    register(url, "rev2@example.com", "Rev").await;
    register(url, "rev3@example.com", "Rev").await;

    let (a, _) = tokens(url, "rev1@example.com", PW).await;
    assert_eq!(accepted(env, &a).await, [true; 3], "a live session works everywhere");
    assert_eq!(rest(url, "/auth/logout", &a, json!({})).await.status(), 204);
    refused_everywhere(env, &a, "logout").await;

    let (b1, _) = tokens(url, "rev1@example.com", PW).await;
    let (b2, _) = tokens(url, "rev1@example.com", PW).await;
    assert_eq!(accepted(env, &b1).await, [true; 3]);
    assert_eq!(rest(url, "/auth/logout-all", &b2, json!({})).await.status(), 204);
    refused_everywhere(env, &b1, "logout-all").await;
    refused_everywhere(env, &b2, "logout-all").await;

    let (c1, _) = tokens(url, "rev2@example.com", PW).await;
    let (c2, _) = tokens(url, "rev2@example.com", PW).await;
    assert_eq!(accepted(env, &c1).await, [true; 3]);
    let res = rest(url, "/auth/password", &c2, json!({"current_password": PW, "new_password": NEW_PW})).await;
    assert_eq!(res.status(), 204);
    refused_everywhere(env, &c1, "a password change").await;
    assert_eq!(accepted(env, &c2).await, [true; 3], "the session that changed it stays");

    // Refresh twice, then replay the first token (outside the parent's grace): theft is assumed
    // and the whole family ends, including the newest access token.
    let (_, r0) = tokens(url, "rev3@example.com", PW).await;
    let refresh = |r: String| async move {
        let t: Value = reqwest::Client::new()
            .post(format!("{url}/auth/token"))
            .json(&json!({"grant_type": "refresh_token", "refresh_token": r}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (t["access_token"].as_str().map(str::to_owned), t["refresh_token"].as_str().map(str::to_owned))
    };
    let (_, r1) = refresh(r0.clone()).await;
    let (d, _) = refresh(r1.unwrap()).await;
    let d = d.unwrap();
    assert_eq!(accepted(env, &d).await, [true; 3]);
    let (replayed, _) = refresh(r0).await;
    assert!(replayed.is_none(), "the replay is refused");
    refused_everywhere(env, &d, "refresh-token reuse").await;

    // GraphQL logout with a refresh token (API clients, no cookie): that session ends.
    let (e, r) = tokens(url, "rev3@example.com", PW).await;
    let out =
        post(&reqwest::Client::new(), url, "mutation($r: String) { logout(refreshToken: $r) }", json!({"r": r}), &[])
            .await;
    assert_eq!(out.data("logout"), &json!(true));
    refused_everywhere(env, &e, "GraphQL logout with a refresh token").await;
    let (again, _) = refresh(r).await;
    assert!(again.is_none(), "its refresh token is dead too");
}

/// Four-process only: services stopped one by one mid-test fail the fields that need them,
/// promptly, and nothing else.
async fn outages(mut env: Env) {
    let url = env.url.clone();
    let anon = reqwest::Client::new();
    let (_, token) = admin(&env).await;

    env.stop("users").await;
    let started = Instant::now();
    let r = bearer(&anon, &url, &token, ME, json!({})).await;
    assert_eq!(r.status, 200);
    let me = &r.body["data"]["me"];
    assert_eq!(me["user"]["email"], "root@example.com", "the account still answers");
    assert_eq!(me["roles"], json!(["admin", "member"]), "so do the roles");
    assert_eq!(me["profile"], Value::Null);
    let err = &r.body["errors"][0];
    assert_eq!((err["extensions"]["code"].as_str(), &err["path"]), (Some("UNAVAILABLE"), &json!(["me", "profile"])));
    assert!(started.elapsed() < Duration::from_secs(15), "no hang: {:?}", started.elapsed());
    let r = bearer(&anon, &url, &token, "{ users { nodes { id } } }", json!({})).await;
    assert_eq!(r.code(), "UNAVAILABLE");

    env.stop("security").await;
    let r = bearer(&anon, &url, &token, "{ me { user { email } roles } health { status } }", json!({})).await;
    assert_eq!(r.body["data"]["health"]["status"], "ok");
    assert_eq!(r.body["data"]["me"]["user"]["email"], "root@example.com");
    assert_eq!(r.body["data"]["me"]["roles"], Value::Null);
    assert_eq!(r.code(), "UNAVAILABLE");
    let r = bearer(&anon, &url, &token, "{ roles { name } }", json!({})).await;
    assert_eq!(r.code(), "UNAVAILABLE");

    env.stop("auth").await;
    let r = post(&anon, &url, LOGIN, json!({"e": "root@example.com", "p": PW}), &[]).await;
    assert_eq!(r.code(), "UNAVAILABLE");
    let r = bearer(&anon, &url, &token, "{ me { user { email } } health { status } }", json!({})).await;
    assert_eq!((r.code(), &r.body["data"]["health"]["status"]), ("UNAVAILABLE", &json!("ok")));
    let res = anon.get(format!("{url}/auth/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 503, "the proxy says so too");
    let res = anon.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    env.shutdown().await;
}

/// Runs `part` against a fresh deployment of each topology, on each backend: tests named
/// `graphql::<part>::{sqlite,postgres}::{fafnir_serve,four_services}`, so a failure names the
/// behaviour and the deployment that broke.
macro_rules! in_every_topology {
    ($($part:ident),* $(,)?) => {$(
        mod $part {
            use super::*;

            pub(super) async fn serve(db: &TestDb) {
                let env = all_in_one(db).await;
                super::$part(&env).await;
                env.shutdown().await;
            }

            pub(super) async fn four(dbs: [&TestDb; 3]) {
                let env = four_services(dbs).await;
                super::$part(&env).await;
                env.shutdown().await;
            }

            mod sqlite {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn fafnir_serve() {
                    let db = TestDb::sqlite().await;
                    serve(&db).await;
                    db.cleanup().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn four_services() {
                    let dbs = [TestDb::sqlite().await, TestDb::sqlite().await, TestDb::sqlite().await];
                    four([&dbs[0], &dbs[1], &dbs[2]]).await;
                    for d in dbs {
                        d.cleanup().await;
                    }
                }
            }

            mod postgres {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn fafnir_serve() {
                    let Some(db) = TestDb::postgres(concat!(stringify!($part), "::fafnir_serve")).await else { return };
                    serve(&db).await;
                    db.cleanup().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn four_services() {
                    let name = concat!(stringify!($part), "::four_services");
                    let Some(a) = TestDb::postgres(name).await else { return };
                    let b = TestDb::postgres(name).await.unwrap();
                    let c = TestDb::postgres(name).await.unwrap();
                    four([&a, &b, &c]).await;
                    for d in [a, b, c] {
                        d.cleanup().await;
                    }
                }
            }
        }
    )*};
}

in_every_topology!(
    anonymous_access_and_registration,
    browser_login_sets_the_cookies,
    csrf_refuses_cross_site_mutations,
    own_profile_and_permission_checks,
    a_member_is_forbidden_what_needs_a_permission,
    an_admin_pages_the_directory,
    role_changes_take_effect_at_once,
    limits_refuse_deep_costly_and_malformed_operations,
    refresh_change_password_and_logout,
    revocation,
);

/// Four-process only: the outage test stops services one by one.
mod outages_four_services {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        let dbs = [TestDb::sqlite().await, TestDb::sqlite().await, TestDb::sqlite().await];
        outages(four_services([&dbs[0], &dbs[1], &dbs[2]]).await).await;
        for d in dbs {
            d.cleanup().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        let Some(a) = TestDb::postgres("outages").await else { return };
        let b = TestDb::postgres("outages").await.unwrap();
        let c = TestDb::postgres("outages").await.unwrap();
        outages(four_services([&a, &b, &c]).await).await;
        for d in [a, b, c] {
            d.cleanup().await;
        }
    }
}

/// `FAFNIR_GRAPHQL_INTROSPECTION=false`: `__schema` and `__type` disclose nothing (they answer
/// null, as async-graphql does); ordinary queries work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn introspection_can_be_turned_off() {
    let db = TestDb::sqlite().await;
    let p = port();
    let cfg = Config {
        database_url: db.url.clone(),
        http_addr: addr(p),
        grpc_addr: addr(port()),
        graphql_introspection: false,
        log: "warn".into(),
        ..Config::default()
    };
    let server = spawn(|s| fafnir_server::run_all_in_one(cfg, Router::new(), s));
    let url = format!("http://127.0.0.1:{p}");
    wait_http(&format!("{url}/readyz")).await;
    let anon = reqwest::Client::new();
    // The introspection fields answer null: nothing of the schema is disclosed.
    let r = post(&anon, &url, "{ __schema { queryType { name } } }", json!({}), &[]).await;
    assert_eq!(r.body["data"]["__schema"], Value::Null, "{}", r.body);
    let r = post(&anon, &url, "{ __type(name: \"Query\") { fields { name } } }", json!({}), &[]).await;
    assert_eq!(r.body["data"]["__type"], Value::Null, "{}", r.body);
    let r = post(&anon, &url, "{ health { status } }", json!({}), &[]).await;
    assert_eq!(r.data("health")["status"], "ok");
    server.stop().await;
    db.cleanup().await;
}

/// Automatic persisted queries: the hash alone runs a query the gateway has seen; an unknown
/// hash asks for the query; a hash that does not match is refused; and a persisted mutation sent
/// with the cookie but without the CSRF header is still refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn persisted_queries() {
    let db = TestDb::sqlite().await;
    let env = all_in_one(&db).await;
    let url = env.url.clone();
    let http = reqwest::Client::new();
    let sha = fafnir_auth::sha256_hex;
    let send = |body: Value, http: reqwest::Client| {
        let url = url.clone();
        async move {
            let res = http.post(format!("{url}/graphql")).header("origin", &url).json(&body).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let q = "{ health { status } }";
    let ext = |h: &str| json!({"persistedQuery": {"version": 1, "sha256Hash": h}});
    let (_, r) = send(json!({"extensions": ext(&sha(q))}), http.clone()).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND", "{r}");
    let (_, r) = send(json!({"query": q, "extensions": ext(&sha(q))}), http.clone()).await;
    assert_eq!(r["data"]["health"]["status"], "ok", "{r}");
    let (_, r) = send(json!({"extensions": ext(&sha(q))}), http.clone()).await;
    assert_eq!(r["data"]["health"]["status"], "ok", "the hash alone now: {r}");
    let (status, r) = send(json!({"query": q, "extensions": ext(&sha("{ other }"))}), http.clone()).await;
    assert_eq!((status, r["errors"][0]["extensions"]["code"].as_str()), (400, Some("BAD_USER_INPUT")), "{r}");

    // A persisted mutation by cookie, without the CSRF header: refused before it runs.
    register(&url, "apq@example.com", "Apq").await;
    let browser = Browser::new(&url);
    let r = browser.gql(LOGIN, json!({"e": "apq@example.com", "p": PW})).await;
    assert_eq!(r.status, 200);
    // (`register` checks no CSRF token itself: only the operation-level gate can stop it.)
    let m =
        r#"mutation { register(input: {email: "apq2@example.com", password: "correct horse battery staple"}) { id } }"#;
    let with_csrf = browser.cookie("fafnir_csrf").unwrap();
    // Seen once (with the CSRF header, from another client: its hash is now known)…
    let (_, r) = send(json!({"query": m, "extensions": ext(&sha(m))}), http.clone()).await;
    assert!(r["errors"].is_array() || r["data"].is_object(), "{r}");
    // …then replayed by hash with the victim's cookies and no CSRF header.
    let (status, r) = send(json!({"extensions": ext(&sha(m))}), browser.http.clone()).await;
    assert_eq!((status, r["errors"][0]["extensions"]["code"].as_str()), (403, Some("CSRF_TOKEN_INVALID")), "{r}");
    assert!(!with_csrf.is_empty());
    let r = browser.gql("{ me { user { email } } }", json!({})).await;
    assert_eq!(r.data("me")["user"]["email"], "apq@example.com", "the session survived");
    env.shutdown().await;
    db.cleanup().await;
}

/// The document cache never skips the complexity limit: a query validated once with a small
/// page size is validated again when the same text comes with a large one (variables can change
/// the complexity).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_documents_keep_the_complexity_limit() {
    let db = TestDb::sqlite().await;
    let env = all_in_one(&db).await;
    let anon = reqwest::Client::new();
    let q = "query($n: Int) { users(first: $n) { nodes { id roles profile { userId firstName lastName displayName avatarUrl bio locale timezone createdAt updatedAt } } } }";
    let small = post(&anon, &env.url, q, json!({"n": 1}), &[]).await;
    assert_eq!(small.code(), "UNAUTHENTICATED", "valid, and refused only for want of a caller");
    let large = post(&anon, &env.url, q, json!({"n": 100}), &[]).await;
    assert_eq!(large.code(), "BAD_USER_INPUT", "too complex: {}", large.body);
    assert!(large.body["errors"][0]["message"].as_str().unwrap().contains("complex"), "{}", large.body);
    env.shutdown().await;
    db.cleanup().await;
}

/// `docs/schema.graphql` is the served schema. After changing the schema, regenerate it with
/// `FAFNIR_UPDATE_SCHEMA=1 cargo test -p fafnir-server --test graphql schema_file`.
#[test]
fn schema_file_matches_the_served_schema() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/schema.graphql");
    let served = fafnir_server::gateway::sdl();
    if std::env::var_os("FAFNIR_UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &served).unwrap();
    }
    let file = std::fs::read_to_string(path).unwrap_or_default();
    assert!(file == served, "docs/schema.graphql differs from the served schema; regenerate it (see this test's doc)");
}
