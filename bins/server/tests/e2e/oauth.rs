//! Social login end to end against a real OpenID Provider: `oidc-provider` (OpenID Certified)
//! from the npm registry, started on loopback from `tests/oidc-provider/`, its login and consent
//! pages driven by a cookie-keeping HTTP client. Behind `fafnir serve` and behind api-gateway +
//! auth-service (the gateway's `/auth` proxy), on SQLite and Postgres.
//!
//! The provider is configured twice in Fafnir: as `idp` (OpenID Connect, by discovery) and as
//! `plain` (plain OAuth 2.0 against the same server's endpoints, no discovery), plus `down`, an
//! issuer nobody answers at.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use axum::Router;
use fafnir_core::testing::TestDb;
use fafnir_core::{Config, OAuthProviderConfig};
use reqwest::cookie::Jar;
use reqwest::redirect::Policy;
use serde_json::{json, Value};

use crate::common::{addr, port, spawn, wait_until, Running};

const PW: &str = "correct horse battery staple";
const SECRET: &str = "a-client-secret-for-the-test-provider";

fn provider_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc-provider")
}

/// Whether these tests must run (CI): then a missing Node.js fails them instead of skipping.
fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("FAFNIR_REQUIRE_OIDC").is_some()
}

/// `npm ci` in the provider's directory once per test process, if its packages are missing.
fn install_provider() -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let dir = provider_dir();
        if dir.join("node_modules/oidc-provider/package.json").exists() {
            return Ok(());
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .map_err(|e| format!("npm: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("npm ci failed: {}", String::from_utf8_lossy(&out.stderr)))
        }
    })
    .clone()
}

/// The OpenID Provider, stopped on drop.
pub(crate) struct Idp {
    child: Child,
    issuer: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Idp {
    /// Starts the provider with a client per `(client_id, redirect_uri)`, or `None` (with a
    /// message) when Node.js is missing outside CI.
    pub(crate) async fn start(clients: &[(&str, String)]) -> Option<Idp> {
        let node = Command::new("node").arg("--version").output();
        if node.as_ref().map(|o| !o.status.success()).unwrap_or(true) {
            assert!(!required(), "Node.js is needed for the social login tests (CI installs it)");
            eprintln!("SKIP social login end to end: Node.js (`node`) is not installed");
            return None;
        }
        if let Err(e) = install_provider() {
            panic!("cannot install the test OpenID Provider in tests/oidc-provider: {e}");
        }
        let p = port();
        let clients: Vec<Value> = clients
            .iter()
            .map(|(id, uri)| json!({"client_id": id, "client_secret": SECRET, "redirect_uris": [uri]}))
            .collect();
        let child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(provider_dir())
            .env("PORT", p.to_string())
            .env("OIDC_CLIENTS", serde_json::to_string(&clients).unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node provider.mjs");
        let idp = Idp { child, issuer: format!("http://127.0.0.1:{p}") };
        let url = format!("{}/.well-known/openid-configuration", idp.issuer);
        wait_until("the OpenID Provider", || async { reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) })
            .await;
        Some(idp)
    }

    pub(crate) async fn mode(&self, mode: &str) {
        let r = reqwest::Client::new().post(format!("{}/__test/mode", self.issuer)).body(mode.to_owned()).send().await;
        assert!(r.unwrap().status().is_success());
    }
}

/// Fafnir's providers: `idp` (OIDC discovery), `plain` (OAuth 2.0 endpoints), `down`.
pub(crate) fn providers(cfg: &mut Config, idp: &Idp) {
    let client = |id: &str| OAuthProviderConfig {
        client_id: id.into(),
        client_secret: Some(SECRET.into()),
        ..OAuthProviderConfig::default()
    };
    cfg.oauth.insert(
        "idp".into(),
        OAuthProviderConfig {
            issuer: Some(idp.issuer.clone()),
            display_name: Some("Test IdP".into()),
            ..client("fafnir-oidc")
        },
    );
    cfg.oauth.insert(
        "plain".into(),
        OAuthProviderConfig {
            auth_url: Some(format!("{}/auth", idp.issuer)),
            token_url: Some(format!("{}/token", idp.issuer)),
            userinfo_url: Some(format!("{}/me", idp.issuer)),
            scopes: Some("openid email".into()),
            ..client("fafnir-plain")
        },
    );
    cfg.oauth.insert(
        "down".into(),
        OAuthProviderConfig { issuer: Some(format!("http://127.0.0.1:{}", port())), ..client("x") },
    );
}

pub(crate) fn clients(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("fafnir-oidc", format!("{url}/auth/oauth/idp/callback")),
        ("fafnir-plain", format!("{url}/auth/oauth/plain/callback")),
    ]
}

pub(crate) struct Env {
    pub(crate) url: String,
    services: Vec<Running>,
}

impl Env {
    pub(crate) async fn shutdown(mut self) {
        for r in self.services.drain(..) {
            r.stop().await;
        }
    }
}

async fn wait_ready(url: &str) {
    let http = reqwest::Client::new();
    wait_until(url, || async { http.get(url).send().await.is_ok_and(|r| r.status().is_success()) }).await;
}

pub(crate) async fn fafnir_serve(db: &TestDb, p: u16, idp: &Idp, tweak: impl FnOnce(&mut Config)) -> Env {
    let url = format!("http://127.0.0.1:{p}");
    let mut cfg = Config {
        database_url: db.url.clone(),
        http_addr: addr(p),
        grpc_addr: addr(port()),
        public_url: Some(url.clone()),
        cookie_secure: false,
        log: "warn".into(),
        ..Config::default()
    };
    providers(&mut cfg, idp);
    tweak(&mut cfg);
    let server = spawn(|s| fafnir_server::run_all_in_one(cfg, Router::new(), s));
    wait_ready(&format!("{url}/readyz")).await;
    Env { url, services: vec![server] }
}

/// api-gateway (the URL people know) + auth-service + security-service + user-service.
pub(crate) async fn gateway_and_services(dbs: [&TestDb; 3], gw_p: u16, idp: &Idp) -> Env {
    let (auth_p, sec_p, sec_http, usr_p, usr_http) = (port(), port(), port(), port(), port());
    let auth_url = format!("http://127.0.0.1:{auth_p}");
    let public = format!("http://127.0.0.1:{gw_p}");
    let base = |db: &str| Config {
        database_url: db.to_owned(),
        cookie_secure: false,
        auth_url: Some(auth_url.clone()),
        security_url: Some(format!("http://127.0.0.1:{sec_p}")),
        users_url: Some(format!("http://127.0.0.1:{usr_p}")),
        log: "warn".into(),
        ..Config::default()
    };
    let mut auth_cfg = Config {
        http_addr: addr(auth_p),
        trust_forwarded_for: true,
        public_url: Some(public.clone()),
        ..base(&dbs[0].url)
    };
    providers(&mut auth_cfg, idp);
    let sec_cfg = Config { grpc_addr: addr(sec_p), http_addr: addr(sec_http), ..base(&dbs[1].url) };
    let usr_cfg = Config { grpc_addr: addr(usr_p), http_addr: addr(usr_http), ..base(&dbs[2].url) };
    let gw_cfg = Config { http_addr: addr(gw_p), public_url: Some(public.clone()), ..base("sqlite::memory:") };
    let security = spawn(|s| fafnir_server::run_security_service(sec_cfg, s));
    let users = spawn(|s| fafnir_server::run_user_service(usr_cfg, s));
    let auth = spawn(|s| fafnir_server::run_auth_service(auth_cfg, s));
    wait_ready(&format!("{auth_url}/readyz")).await;
    let gateway = spawn(|s| fafnir_server::run_api_gateway(gw_cfg, s));
    wait_ready(&format!("{public}/readyz")).await;
    Env { url: public, services: vec![gateway, auth, users, security] }
}

/// A browser: cookies kept for every site, redirects followed by hand (so that a test can stop
/// at Fafnir's callback and tamper with it).
pub(crate) struct Browser {
    pub(crate) http: reqwest::Client,
    jar: Arc<Jar>,
    pub(crate) url: String,
}

/// Where a provider sign-in ended.
#[derive(Debug)]
pub(crate) struct Landing {
    /// The `Location` Fafnir's callback answered.
    pub(crate) location: String,
}

impl Landing {
    pub(crate) fn error(&self) -> Option<String> {
        let u = reqwest::Url::parse(&format!("http://x{}", self.location)).ok()?;
        u.query_pairs().find(|(k, _)| k == "error").map(|(_, v)| v.into_owned())
    }
}

fn form_action(html: &str) -> String {
    let start = html.find("action=\"").expect("a form on the provider's page") + 8;
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].replace("&#x2F;", "/").replace("&amp;", "&")
}

impl Browser {
    pub(crate) fn new(url: &str) -> Self {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder().cookie_provider(jar.clone()).redirect(Policy::none()).build().unwrap();
        Self { http, jar, url: url.to_owned() }
    }

    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let u: reqwest::Url = self.url.parse().unwrap();
        let cookies = self.jar.cookies(&u).map(|c| c.to_str().unwrap().to_owned()).unwrap_or_default();
        cookies.split("; ").find_map(|c| c.strip_prefix(&format!("{name}="))).map(str::to_owned)
    }

    pub(crate) async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.url))).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let csrf = self.cookie("fafnir_csrf").unwrap_or_default();
        self.send(
            self.http
                .post(format!("{}{path}", self.url))
                .header("origin", &self.url)
                .header("x-csrf-token", csrf)
                .json(&body),
        )
        .await
    }

    pub(crate) async fn delete(&self, path: &str) -> (u16, Value) {
        let csrf = self.cookie("fafnir_csrf").unwrap_or_default();
        let req = self.http.delete(format!("{}{path}", self.url)).header("origin", &self.url);
        self.send(req.header("x-csrf-token", csrf).json(&json!({}))).await
    }

    pub(crate) async fn graphql(&self, query: &str) -> Value {
        self.post("/graphql", json!({"query": query})).await.1
    }

    /// Starts a sign-in at `start` (a Fafnir path), signs in at the provider as `login` (login
    /// and consent pages), and returns the callback URL the provider sends the browser to,
    /// without opening it.
    pub(crate) async fn at_provider(&self, start: &str, login: &str) -> String {
        let res = self.http.get(format!("{}{start}", self.url)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 302, "{start} should redirect to the provider");
        let mut next = location(&res);
        for _ in 0..20 {
            if next.starts_with(&self.url) {
                return next;
            }
            let res = self.http.get(&next).send().await.unwrap();
            let status = res.status().as_u16();
            if (300..400).contains(&status) {
                next = absolute(&next, &location(&res));
                continue;
            }
            assert_eq!(status, 200, "the provider's page {next}");
            let html = res.text().await.unwrap();
            let action = absolute(&next, &form_action(&html));
            let form: Vec<(&str, &str)> = if html.contains("name=\"login\"") {
                vec![("prompt", "login"), ("login", login), ("password", "any")]
            } else {
                vec![("prompt", "consent")]
            };
            let res = self.http.post(&action).form(&form).send().await.unwrap();
            assert!(res.status().is_redirection(), "posting the provider's form at {action}: {}", res.status());
            next = absolute(&action, &location(&res));
        }
        panic!("the provider never sent the browser back");
    }

    /// Opens Fafnir's callback URL.
    pub(crate) async fn land(&self, callback: &str) -> Landing {
        let res = self.http.get(callback).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 302, "the callback redirects");
        Landing { location: location(&res) }
    }

    /// A whole provider sign-in (or link) through `start`.
    pub(crate) async fn sign_in(&self, start: &str, login: &str) -> Landing {
        let cb = self.at_provider(start, login).await;
        self.land(&cb).await
    }
}

fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").expect("a Location header").to_str().unwrap().to_owned()
}

fn absolute(base: &str, loc: &str) -> String {
    reqwest::Url::parse(base).unwrap().join(loc).unwrap().to_string()
}

async fn count(db: &TestDb, sql: &str, bind: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sql).bind(bind).fetch_one(db.db.pool()).await.unwrap().try_get::<i64, _>(0).unwrap()
}

/// Every row of the contract's "Social login" section, and the attacks on it.
async fn journeys(env: &Env, idp: &Idp, auth_db: &TestDb) {
    let url = env.url.clone();
    let anon = Browser::new(&url);

    // The providers, public.
    let (s, list) = anon.get("/auth/oauth/providers").await;
    assert_eq!(s, 200);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["down", "idp", "plain"]);
    assert_eq!(list[1]["display_name"], "Test IdP");
    // The built-in sign-in page lists them (by script, from the same endpoint).
    let page = anon.http.get(format!("{url}/sign-in")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/pages/sign-in.js"));
    let js = anon.http.get(format!("{url}/pages/sign-in.js")).send().await.unwrap().text().await.unwrap();
    assert!(js.contains("/auth/oauth/providers") && js.contains("/authorize?return_to="));

    // First sign-in creates the account (no password, address verified by the provider) and
    // sets the three cookies; the browser lands on return_to.
    let grace = Browser::new(&url);
    let landing = grace.sign_in("/auth/oauth/idp/authorize?return_to=/welcome", "grace@example.com").await;
    assert_eq!(landing.location, "/welcome");
    // (fafnir_refresh is scoped to /auth, where the refresh endpoint is.)
    assert!(grace.cookie("fafnir_access").is_some() && grace.cookie("fafnir_csrf").is_some());
    let (s, me) = grace.get("/auth/me").await;
    assert_eq!(s, 200, "{me}");
    assert_eq!((me["email"].as_str(), me["email_verified"].as_bool()), (Some("grace@example.com"), Some(true)));
    assert_eq!(me["sign_in_methods"], json!(["idp"]));
    let grace_id = me["id"].as_str().unwrap().to_owned();

    // The next sign-in, from another browser, reaches the same account.
    let again = Browser::new(&url);
    assert_eq!(again.sign_in("/auth/oauth/idp/authorize", "grace@example.com").await.location, "/");
    assert_eq!(again.get("/auth/me").await.1["id"], grace_id.as_str());

    // The plain OAuth 2.0 provider (no discovery; user info endpoint).
    let hopper = Browser::new(&url);
    assert_eq!(hopper.sign_in("/auth/oauth/plain/authorize", "hopper@example.com").await.location, "/");
    let (_, me) = hopper.get("/auth/me").await;
    assert_eq!(me["email"], "hopper@example.com");
    assert_eq!(me["sign_in_methods"], json!(["plain"]));

    // The e-mail of an existing password account: not linked, nothing signed in.
    assert_eq!(anon.post("/auth/register", json!({"email": "ada@example.com", "password": PW})).await.0, 201);
    let stranger = Browser::new(&url);
    let landing = stranger.sign_in("/auth/oauth/idp/authorize?return_to=/signin", "ada@example.com").await;
    assert_eq!(landing.location, "/signin?error=ACCOUNT_NOT_LINKED");
    assert!(stranger.cookie("fafnir_access").is_none());
    assert_eq!(stranger.get("/auth/me").await.0, 401);

    // Linking while signed in; then that identity signs in the account.
    let ada = Browser::new(&url);
    assert_eq!(ada.post("/auth/login", json!({"email": "ada@example.com", "password": PW})).await.0, 200);
    let landing = ada.sign_in("/auth/oauth/idp/link?return_to=/account", "ada@example.com").await;
    assert_eq!(landing.location, "/account");
    let (s, ids) = ada.get("/auth/identities").await;
    assert_eq!(s, 200);
    assert_eq!(ids.as_array().unwrap().len(), 1);
    assert_eq!((ids[0]["provider"].as_str(), ids[0]["email"].as_str()), (Some("idp"), Some("ada@example.com")));
    let ada_identity = ids[0]["id"].as_str().unwrap().to_owned();
    let ada_id = ada.get("/auth/me").await.1["id"].as_str().unwrap().to_owned();
    assert_eq!(ada.get("/auth/me").await.1["sign_in_methods"], json!(["password", "idp"]));
    let ada2 = Browser::new(&url);
    assert_eq!(ada2.sign_in("/auth/oauth/idp/authorize", "ada@example.com").await.location, "/");
    assert_eq!(ada2.get("/auth/me").await.1["id"], ada_id.as_str());
    // Linking needs a session, and a recent sign-in: an older session (a stolen one, say) cannot
    // add a way in that would outlive a password change.
    assert_eq!(anon.get("/auth/oauth/idp/link").await.0, 401);
    let old = Browser::new(&url);
    assert_eq!(old.post("/auth/login", json!({"email": "ada@example.com", "password": PW})).await.0, 200);
    sqlx::query("UPDATE sessions SET created_at = created_at - 660000 WHERE user_id = $1")
        .bind(&ada_id)
        .execute(auth_db.db.pool())
        .await
        .unwrap();
    let res = old.http.get(format!("{url}/auth/oauth/plain/link?return_to=/account")).send().await.unwrap();
    assert_eq!((res.status().as_u16(), location(&res).as_str()), (302, "/account?error=REAUTHENTICATION_REQUIRED"));
    let ada3 = Browser::new(&url);
    assert_eq!(ada3.post("/auth/login", json!({"email": "ada@example.com", "password": PW})).await.0, 200);
    // An identity already linked elsewhere is not moved (a browser of ada's that has not signed
    // in at the provider yet).
    let landing = ada3.sign_in("/auth/oauth/idp/link?return_to=/account", "grace@example.com").await;
    assert_eq!(landing.location, "/account?error=IDENTITY_ALREADY_LINKED");

    // Unlinking: the last way to sign in is refused; with a password left it works.
    let (_, ids) = grace.get("/auth/identities").await;
    let grace_identity = ids[0]["id"].as_str().unwrap().to_owned();
    let (s, b) = grace.delete(&format!("/auth/identities/{grace_identity}")).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("LAST_SIGN_IN_METHOD")));
    assert_eq!(grace.delete(&format!("/auth/identities/{ada_identity}")).await.0, 404, "not hers");
    assert_eq!(ada.delete(&format!("/auth/identities/{ada_identity}")).await.0, 204);
    assert_eq!(ada.get("/auth/identities").await.1, json!([]));

    // A first password for a provider-made account: no current password, a fresh sign-in.
    let (s, b) = grace.post("/auth/password", json!({"new_password": "grace's own new passphrase"})).await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(grace.get("/auth/me").await.1["sign_in_methods"], json!(["password", "idp"]));
    let pw = Browser::new(&url);
    let (s, _) =
        pw.post("/auth/login", json!({"email": "grace@example.com", "password": "grace's own new passphrase"})).await;
    assert_eq!(s, 200);

    // ...but only within 10 minutes of signing in (hopper's session is made older here).
    let hopper_id = hopper.get("/auth/me").await.1["id"].as_str().unwrap().to_owned();
    sqlx::query("UPDATE sessions SET created_at = created_at - 660000 WHERE user_id = $1")
        .bind(&hopper_id)
        .execute(auth_db.db.pool())
        .await
        .unwrap();
    let (s, b) = hopper.post("/auth/password", json!({"new_password": "hopper's own new passphrase"})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("REAUTHENTICATION_REQUIRED")));
    assert_eq!(hopper.get("/auth/me").await.1["sign_in_methods"], json!(["plain"]));

    // GraphQL: providers, identities and sign-in methods, unlinking.
    let v =
        grace.graphql("{ authProviders { name displayName } me { signInMethods identities { id provider } } }").await;
    assert_eq!(v["data"]["authProviders"][1], json!({"name": "idp", "displayName": "Test IdP"}), "{v}");
    assert_eq!(v["data"]["me"]["signInMethods"], json!(["password", "idp"]), "{v}");
    assert_eq!(v["data"]["me"]["identities"][0]["provider"], "idp");
    let v = grace.graphql(&format!("mutation {{ unlinkIdentity(id: \"{grace_identity}\") }}")).await;
    assert_eq!(v["data"]["unlinkIdentity"], true, "{v}");

    // An account without a password is deleted after a fresh sign-in, not a password.
    let (s, b) = hopper.delete("/auth/account").await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("REAUTHENTICATION_REQUIRED")), "hopper's sign-in is old");
    let fresh = Browser::new(&url);
    assert_eq!(fresh.sign_in("/auth/oauth/plain/authorize", "hopper@example.com").await.location, "/");
    assert_eq!(fresh.delete("/auth/account").await.0, 204);
    assert_eq!(count(auth_db, "SELECT COUNT(*) FROM oauth_identities WHERE email = $1", "hopper@example.com").await, 0);

    // ---- attacks ----

    // A replayed state: the second delivery of the same callback is refused.
    let eve = Browser::new(&url);
    let cb = eve.at_provider("/auth/oauth/idp/authorize?return_to=/in", "eve@example.com").await;
    assert_eq!(eve.land(&cb).await.location, "/in");
    assert_eq!(eve.land(&cb).await.error().as_deref(), Some("OAUTH_STATE_INVALID"));
    // A forged state.
    let forged = Browser::new(&url);
    let landing = forged.land(&format!("{url}/auth/oauth/idp/callback?code=abc&state=forged-state")).await;
    assert_eq!(landing.location, "/?error=OAUTH_STATE_INVALID");
    // Another browser's sign-in (login CSRF: the attacker's callback URL opened by a victim).
    let attacker = Browser::new(&url);
    let cb = attacker.at_provider("/auth/oauth/idp/authorize", "mallory@example.com").await;
    let victim = Browser::new(&url);
    assert_eq!(victim.land(&cb).await.error().as_deref(), Some("OAUTH_STATE_INVALID"));
    assert!(victim.cookie("fafnir_access").is_none());
    // ...and that used it up for the attacker too.
    assert_eq!(attacker.land(&cb).await.error().as_deref(), Some("OAUTH_STATE_INVALID"));
    // An expired state.
    let late = Browser::new(&url);
    let cb = late.at_provider("/auth/oauth/idp/authorize", "late@example.com").await;
    sqlx::query("UPDATE oauth_pending SET expires_at = 0").execute(auth_db.db.pool()).await.unwrap();
    assert_eq!(late.land(&cb).await.error().as_deref(), Some("OAUTH_STATE_INVALID"));
    // A mix-up: the response names another issuer (RFC 9207).
    let mixed = Browser::new(&url);
    let cb = mixed.at_provider("/auth/oauth/idp/authorize", "mixed@example.com").await;
    let mut u = reqwest::Url::parse(&cb).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "iss" { "https://other.example".to_owned() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    assert_eq!(mixed.land(u.as_str()).await.error().as_deref(), Some("OAUTH_STATE_INVALID"));
    // ID tokens that do not verify: a wrong nonce, a wrong issuer, another key's signature.
    for (mode, login) in [("nonce", "n@example.com"), ("issuer", "i@example.com"), ("foreign-key", "k@example.com")] {
        idp.mode(mode).await;
        let b = Browser::new(&url);
        let landing = b.sign_in("/auth/oauth/idp/authorize", login).await;
        assert_eq!(landing.error().as_deref(), Some("OAUTH_PROVIDER_ERROR"), "{mode}");
        assert_eq!(count(auth_db, "SELECT COUNT(*) FROM users WHERE email = $1", login).await, 0, "{mode}");
    }
    // The provider's token endpoint down: a clear error, nothing written.
    idp.mode("down").await;
    let b = Browser::new(&url);
    let landing = b.sign_in("/auth/oauth/idp/authorize?return_to=/in", "d@example.com").await;
    assert_eq!(landing.location, "/in?error=OAUTH_PROVIDER_ERROR");
    assert_eq!(count(auth_db, "SELECT COUNT(*) FROM users WHERE email = $1", "d@example.com").await, 0);
    idp.mode("ok").await;
    // A provider that cannot be reached at all: back to return_to with the error, nothing stored.
    let res = anon.http.get(format!("{url}/auth/oauth/down/authorize?return_to=/signin")).send().await.unwrap();
    assert_eq!((res.status().as_u16(), location(&res).as_str()), (302, "/signin?error=OAUTH_PROVIDER_ERROR"));
    assert_eq!(count(auth_db, "SELECT COUNT(*) FROM oauth_pending WHERE provider = $1", "down").await, 0);
    // Open redirects are refused before anything is stored.
    for bad in ["https://evil.example/", "//evil.example/", "/\\evil.example"] {
        let u =
            reqwest::Url::parse_with_params(&format!("{url}/auth/oauth/idp/authorize"), [("return_to", bad)]).unwrap();
        let (s, b) = anon.send(anon.http.get(u)).await;
        assert_eq!((s, b["error"]["code"].as_str()), (422, Some("VALIDATION_FAILED")), "{bad}");
    }
    // An unverified provider address does not make an account.
    let b = Browser::new(&url);
    let landing = b.sign_in("/auth/oauth/idp/authorize", "unverified-zed@example.com").await;
    assert_eq!(landing.error().as_deref(), Some("OAUTH_EMAIL_UNVERIFIED"));
    // An unknown provider.
    assert_eq!(anon.get("/auth/oauth/nope/authorize").await.0, 404);

    // The pending logins were all used up or refused.
    let left = count(auth_db, "SELECT COUNT(*) FROM oauth_pending WHERE provider <> $1", "none").await;
    assert_eq!(left, 0, "every pending login is single use");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn social_login_on_fafnir_serve_sqlite() {
    let db = TestDb::sqlite().await;
    let p = port();
    let Some(idp) = Idp::start(&clients(&format!("http://127.0.0.1:{p}"))).await else { return };
    let env = fafnir_serve(&db, p, &idp, |_| {}).await;
    journeys(&env, &idp, &db).await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn social_login_behind_the_gateway_sqlite() {
    let dbs = [TestDb::sqlite().await, TestDb::sqlite().await, TestDb::sqlite().await];
    let p = port();
    let Some(idp) = Idp::start(&clients(&format!("http://127.0.0.1:{p}"))).await else { return };
    let env = gateway_and_services([&dbs[0], &dbs[1], &dbs[2]], p, &idp).await;
    journeys(&env, &idp, &dbs[0]).await;
    env.shutdown().await;
}

/// Sign-up off: a new person is refused at the callback, and `/auth/register` too; a known
/// identity still signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn social_login_with_signup_disabled() {
    let db = TestDb::sqlite().await;
    let p = port();
    let Some(idp) = Idp::start(&clients(&format!("http://127.0.0.1:{p}"))).await else { return };
    let env = fafnir_serve(&db, p, &idp, |c| c.allow_signup = false).await;
    let b = Browser::new(&env.url);
    let landing = b.sign_in("/auth/oauth/idp/authorize?return_to=/join", "new@example.com").await;
    assert_eq!(landing.location, "/join?error=SIGNUP_DISABLED");
    let (s, body) = b.post("/auth/register", json!({"email": "new@example.com", "password": PW})).await;
    assert_eq!((s, body["error"]["code"].as_str()), (403, Some("SIGNUP_DISABLED")));
    env.shutdown().await;
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn social_login_on_fafnir_serve_postgres() {
        let Some(db) = TestDb::postgres("oauth_serve").await else { return };
        let p = port();
        let Some(idp) = Idp::start(&clients(&format!("http://127.0.0.1:{p}"))).await else { return };
        let env = fafnir_serve(&db, p, &idp, |_| {}).await;
        journeys(&env, &idp, &db).await;
        env.shutdown().await;
        db.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn social_login_behind_the_gateway_postgres() {
        let Some(auth) = TestDb::postgres("oauth_gw_auth").await else { return };
        let Some(sec) = TestDb::postgres("oauth_gw_sec").await else { return };
        let Some(usr) = TestDb::postgres("oauth_gw_usr").await else { return };
        let p = port();
        let Some(idp) = Idp::start(&clients(&format!("http://127.0.0.1:{p}"))).await else { return };
        let env = gateway_and_services([&auth, &sec, &usr], p, &idp).await;
        journeys(&env, &idp, &auth).await;
        env.shutdown().await;
        for db in [auth, sec, usr] {
            db.cleanup().await;
        }
    }
}

/// The server's share of a provider sign-in, for docs/performance.md (prints figures, asserts
/// none): `cargo test --release -p fafnir-server --test e2e oauth_timing -- --ignored --nocapture`.
/// Client-observed durations of `authorize` (no provider call: discovery is cached) and of the
/// callback, minus the time the callback waited for the provider (Fafnir's own histogram).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn oauth_timing() {
    use std::time::Instant;
    let db = TestDb::sqlite().await;
    let p = port();
    let Some(idp) = Idp::start(&clients(&format!("http://127.0.0.1:{p}"))).await else { return };
    let env = fafnir_serve(&db, p, &idp, |_| {}).await;
    let provider_wait = || async {
        let text = reqwest::get(format!("{}/metrics", env.url)).await.unwrap().text().await.unwrap();
        let get = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name) && l.contains("provider=\"idp\""))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (get("fafnir_oauth_provider_seconds_sum"), get("fafnir_oauth_provider_seconds_count"))
    };
    for (label, fresh) in [("first sign-in (creates the account)", true), ("known identity", false)] {
        let n = 40;
        let (mut authorize, mut callback) = (Vec::new(), Vec::new());
        let (sum0, count0) = provider_wait().await;
        for i in 0..n {
            let login = if fresh { format!("t{i}@example.com") } else { "known@example.com".to_owned() };
            let b = Browser::new(&env.url);
            let t = Instant::now();
            let res = b.http.get(format!("{}/auth/oauth/idp/authorize", env.url)).send().await.unwrap();
            authorize.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(res.status().as_u16(), 302);
            let cb = b.at_provider("/auth/oauth/idp/authorize", &login).await;
            let t = Instant::now();
            let landing = b.land(&cb).await;
            callback.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(landing.error(), None);
        }
        let (sum1, count1) = provider_wait().await;
        let wait_ms = (sum1 - sum0) / (count1 - count0).max(1.0) * 1000.0;
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (a, c) = (median(&mut authorize), median(&mut callback));
        let mean_cb = callback.iter().sum::<f64>() / callback.len() as f64;
        println!(
            "{label}: authorize median {a:.2} ms; callback median {c:.2} ms (mean {mean_cb:.2}), of which the provider {wait_ms:.2} ms on average: Fafnir's own ≈ {:.2} ms",
            mean_cb - wait_ms
        );
    }
    env.shutdown().await;
}
