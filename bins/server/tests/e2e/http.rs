//! The REST server over real HTTP on a random port, against SQLite and Postgres: the browser
//! cookie flow with CSRF, refresh rotation and reuse, logout, the bearer flow, throttling,
//! hostile input, the OpenAPI document, metrics, docs, CORS and graceful shutdown.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fafnir_auth::{Argon2Config, AuthConfig};
use fafnir_core::testing::TestDb;
use fafnir_core::token::AccessClaims;
use fafnir_core::{Config, SessionId, UserId};
use fafnir_server::{bind, http, serve_with, Limits, Stack};
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

const PW: &str = "correct horse battery staple";
const PW2: &str = "a different long passphrase";

struct Server {
    base: String,
    stack: Stack,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.task.await;
    }
}

fn test_auth_config() -> AuthConfig {
    AuthConfig {
        argon2: Argon2Config { memory_kib: 64, iterations: 1, parallelism: 1 },
        // A zero grace window lets the replay test run without waiting 10 seconds.
        refresh_grace: Duration::ZERO,
        ..AuthConfig::default()
    }
}

async fn start_with(t: &TestDb, tweak: impl FnOnce(&mut Config), extra: Router) -> Server {
    start_full(t, tweak, test_auth_config(), extra, Limits::current().clone()).await
}

/// A server with its own auth settings and connection limits.
async fn start_full(
    t: &TestDb,
    tweak: impl FnOnce(&mut Config),
    auth: AuthConfig,
    extra: Router,
    limits: Limits,
) -> Server {
    let mut config = Config {
        database_url: t.url.clone(),
        cookie_secure: false,
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        allowed_origins: vec!["https://app.example.com".into()],
        ..Config::default()
    };
    tweak(&mut config);
    let stack = Stack::open_with(config, || auth).await.unwrap();
    let (app, _) = http::app(&stack, extra).await.unwrap();
    let listener = bind(stack.config.http_addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve_with(
            listener,
            app,
            async move {
                let _ = rx.await;
            },
            &limits,
        )
        .await
        .unwrap();
    });
    Server { base: format!("http://{addr}"), stack, stop: Some(tx), task }
}

async fn start(t: &TestDb) -> Server {
    start_with(t, |_| {}, Router::new()).await
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).build().unwrap()
}

fn plain() -> reqwest::Client {
    reqwest::Client::new()
}

fn set_cookies(h: &HeaderMap) -> Vec<String> {
    h.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

fn cookie_value(cookies: &[String], name: &str) -> String {
    let line = cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {cookies:?}"));
    line.split(';').next().unwrap().split_once('=').unwrap().1.to_owned()
}

async fn error_code(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().unwrap_or("<no code>").to_owned())
}

async fn register(s: &Server, email: &str) {
    let res =
        plain().post(s.url("/auth/register")).json(&json!({"email": email, "password": PW})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "{:?}", res.text().await);
}

async fn browser_flow_with_cookies_csrf_refresh_replay_and_logout(t: &TestDb) {
    let s = start(t).await;
    let b = browser();

    // register: 201, the user, no cookies
    let res = b
        .post(s.url("/auth/register"))
        .json(&json!({"email": "Ada@Example.com", "password": PW, "display_name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(set_cookies(res.headers()).is_empty());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert_eq!(body["user"]["email_verified"], false);
    let user_id = body["user"]["id"].as_str().unwrap().to_owned();

    // login: 200 and three cookies with the contract's attributes
    let res =
        b.post(s.url("/auth/login")).json(&json!({"email": "ada@example.com", "password": PW})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let cookies = set_cookies(res.headers());
    let find = |name: &str| cookies.iter().find(|c| c.starts_with(&format!("{name}="))).unwrap().clone();
    let access = find("fafnir_access");
    assert!(
        access.contains("HttpOnly")
            && access.contains("SameSite=Lax")
            && access.contains("Path=/;")
            && access.contains("Max-Age=900"),
        "{access}"
    );
    let refresh = find("fafnir_refresh");
    assert!(
        refresh.contains("HttpOnly")
            && refresh.contains("SameSite=Strict")
            && refresh.contains("Path=/auth")
            && refresh.contains("Max-Age=2592000"),
        "{refresh}"
    );
    let csrf_line = find("fafnir_csrf");
    assert!(
        !csrf_line.contains("HttpOnly") && csrf_line.contains("SameSite=Lax") && csrf_line.contains("Path=/"),
        "{csrf_line}"
    );
    assert!(cookies.iter().all(|c| !c.contains("Secure")), "FAFNIR_COOKIE_SECURE=false");
    let csrf = cookie_value(&cookies, "fafnir_csrf");
    let old_access = cookie_value(&cookies, "fafnir_access");
    let old_refresh = cookie_value(&cookies, "fafnir_refresh");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["id"], user_id.as_str());
    assert!(body["access_expires_at"].is_string());

    // me: user, roles and permissions
    let me: Value = b.get(s.url("/auth/me")).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["id"], user_id.as_str());
    assert_eq!(me["roles"], json!(["member"]));
    assert_eq!(me["permissions"], json!(["profile:read", "profile:write"]));

    // An unsafe cookie-authenticated request without the CSRF header: 403, and nothing changes.
    let change = json!({"current_password": PW, "new_password": PW2});
    let res = b.post(s.url("/auth/password")).json(&change).send().await.unwrap();
    assert_eq!(error_code(res).await, (StatusCode::FORBIDDEN, "CSRF_TOKEN_INVALID".into()));
    // With a wrong token, or from a foreign origin: 403 too.
    let res =
        b.post(s.url("/auth/password")).header("x-csrf-token", "forged.token").json(&change).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = b
        .post(s.url("/auth/password"))
        .header("x-csrf-token", &csrf)
        .header("origin", "https://evil.example")
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = plain()
        .post(s.url("/auth/login"))
        .json(&json!({"email": "ada@example.com", "password": PW2}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the password did not change");
    // With the header (and an allowed origin): it works.
    let res = b
        .post(s.url("/auth/password"))
        .header("x-csrf-token", &csrf)
        .header("origin", "https://app.example.com")
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    // refresh: rotated cookies
    let res = b.post(s.url("/auth/refresh")).header("x-csrf-token", &csrf).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookies = set_cookies(res.headers());
    let new_refresh = cookie_value(&cookies, "fafnir_refresh");
    let new_csrf = cookie_value(&cookies, "fafnir_csrf");
    assert_ne!(new_refresh, old_refresh);
    assert_ne!(cookie_value(&cookies, "fafnir_access"), old_access);
    // Refresh without the CSRF header is refused.
    let res = b.post(s.url("/auth/refresh")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Replaying the old refresh token (after the grace window): 401, and the family is revoked.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let res = plain()
        .post(s.url("/auth/refresh"))
        .header("cookie", format!("fafnir_refresh={old_refresh}; fafnir_csrf={csrf}"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    let cleared = set_cookies(res.headers());
    assert_eq!(error_code(res).await, (StatusCode::UNAUTHORIZED, "REFRESH_TOKEN_REUSED".into()));
    assert!(cleared.iter().any(|c| c.starts_with("fafnir_refresh=;") && c.contains("Max-Age=0")), "{cleared:?}");
    let res = b.post(s.url("/auth/refresh")).header("x-csrf-token", &new_csrf).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the newest token of the family died too");
    let res = plain().get(s.url("/auth/me")).bearer_auth(&old_access).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "and so did the session's access token");

    // login again, then logout: 204, cookies cleared, old access token refused.
    let b = browser();
    let res =
        b.post(s.url("/auth/login")).json(&json!({"email": "ada@example.com", "password": PW2})).send().await.unwrap();
    let cookies = set_cookies(res.headers());
    let access = cookie_value(&cookies, "fafnir_access");
    let csrf = cookie_value(&cookies, "fafnir_csrf");
    let res = b.post(s.url("/auth/logout")).header("x-csrf-token", &csrf).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookies(res.headers());
    for name in ["fafnir_access", "fafnir_refresh", "fafnir_csrf"] {
        assert!(
            cleared.iter().any(|c| c.starts_with(&format!("{name}=;")) && c.contains("Max-Age=0")),
            "{name}: {cleared:?}"
        );
    }
    assert_eq!(b.get(s.url("/auth/me")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let res = plain().get(s.url("/auth/me")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(error_code(res).await, (StatusCode::UNAUTHORIZED, "UNAUTHORIZED".into()));
    s.stop().await;
}

async fn bearer_flow_through_the_token_endpoint(t: &TestDb) {
    let s = start(t).await;
    register(&s, "bob@example.com").await;
    let c = plain();
    // Form-encoded, as RFC 6749 has it.
    let res = c
        .post(s.url("/auth/token"))
        .form(&[("grant_type", "password"), ("username", "bob@example.com"), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(res.headers()).is_empty(), "no cookies for API clients");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let tok: Value = res.json().await.unwrap();
    assert_eq!(tok["token_type"], "Bearer");
    assert!(tok["expires_in"].as_i64().unwrap() > 890);
    let access = tok["access_token"].as_str().unwrap().to_owned();
    let refresh = tok["refresh_token"].as_str().unwrap().to_owned();

    let me = c.get(s.url("/auth/me")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.headers()["cache-control"], "no-store", "personal data is never cached");
    let me: Value = me.json().await.unwrap();
    assert!(me["roles"].is_array() && me["permissions"].is_array(), "{me}");
    assert_eq!(me["sign_in_methods"], json!(["password"]));
    // The query string: `grants=false` leaves the grants out; anything but true or false is a 400.
    let get_me = |q: &'static str| c.get(s.url(&format!("/auth/me{q}"))).bearer_auth(&access).send();
    let lean: Value = get_me("?grants=false").await.unwrap().json().await.unwrap();
    assert!(lean.get("roles").is_none() && lean.get("permissions").is_none() && lean["id"] == me["id"], "{lean}");
    let full: Value = get_me("?grants=true").await.unwrap().json().await.unwrap();
    assert_eq!(full, me);
    for bad in ["?grants=maybe", "?grants="] {
        let res = get_me(bad).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "INVALID_REQUEST", "{bad}");
    }
    assert_eq!(get_me("?").await.unwrap().status(), StatusCode::OK, "an empty query string is no query");
    let sessions: Value =
        c.get(s.url("/auth/sessions")).bearer_auth(&access).send().await.unwrap().json().await.unwrap();
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(sessions["sessions"][0]["current"], true);

    // JSON works too; the refresh grant rotates.
    let res = c
        .post(s.url("/auth/token"))
        .json(&json!({"grant_type": "refresh_token", "refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let tok2: Value = res.json().await.unwrap();
    assert_ne!(tok2["refresh_token"], tok["refresh_token"]);

    // OAuth errors.
    for (body, status, error) in [
        (
            json!({"grant_type": "password", "email": "bob@example.com", "password": "wrong password!!"}),
            400,
            "invalid_grant",
        ),
        (json!({"grant_type": "password", "email": "bob@example.com"}), 400, "invalid_request"),
        (json!({"grant_type": "client_credentials"}), 400, "unsupported_grant_type"),
        (json!({"grant_type": "refresh_token", "refresh_token": "nope"}), 400, "invalid_grant"),
    ] {
        let res = c.post(s.url("/auth/token")).json(&body).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{body}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"], error, "{body}");
    }

    // Bearer requests need no CSRF token: logout-all works, and then the tokens are dead.
    let access2 = tok2["access_token"].as_str().unwrap();
    let res = c.post(s.url("/auth/logout-all")).bearer_auth(access2).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(c.get(s.url("/auth/me")).bearer_auth(access2).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let res = c
        .post(s.url("/auth/token"))
        .json(&json!({"grant_type": "refresh_token", "refresh_token": tok2["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Revoking an unknown session is 404; a garbage id too.
    let tok3: Value = c
        .post(s.url("/auth/token"))
        .json(&json!({"grant_type": "password", "email": "bob@example.com", "password": PW}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let a3 = tok3["access_token"].as_str().unwrap();
    for id in [SessionId::new().to_string(), "not-a-uuid".into()] {
        let res = c.delete(s.url(&format!("/auth/sessions/{id}"))).bearer_auth(a3).send().await.unwrap();
        assert_eq!(error_code(res).await, (StatusCode::NOT_FOUND, "NOT_FOUND".into()));
    }
    s.stop().await;
}

async fn failed_logins_get_429_with_retry_after(t: &TestDb) {
    let s = start(t).await;
    register(&s, "carol@example.com").await;
    let c = plain();
    for i in 0..5 {
        let res = c
            .post(s.url("/auth/login"))
            .json(&json!({"email": "carol@example.com", "password": "not the password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(res).await, (StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS".into()), "attempt {i}");
    }
    let res =
        c.post(s.url("/auth/login")).json(&json!({"email": "carol@example.com", "password": PW})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    // The first lock lasts 30 s: the answer says so, in the header and in the message.
    assert!((29..=30).contains(&retry), "{retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    assert_eq!(body["error"]["message"], format!("too many attempts; try again in {retry} seconds"));
    // The token endpoint shares the limit.
    let res = c
        .post(s.url("/auth/token"))
        .json(&json!({"grant_type": "password", "email": "carol@example.com", "password": PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    s.stop().await;
}

fn forge(header: &str, claims: &Value, sig: &str) -> String {
    format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims.to_string()), sig)
}

async fn hostile_requests_get_clear_4xx_and_change_nothing(t: &TestDb) {
    let s = start(t).await;
    register(&s, "dave@example.com").await;
    let c = plain();
    let users_before: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(s.stack.db.pool()).await.unwrap();

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "malformed JSON",
            c.post(s.url("/auth/register")).header("content-type", "application/json").body("{\"email\": "),
            400,
            "MALFORMED_JSON",
        ),
        (
            "bad UTF-8",
            c.post(s.url("/auth/register"))
                .header("content-type", "application/json")
                .body(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}']),
            400,
            "MALFORMED_JSON",
        ),
        (
            "wrong content type",
            c.post(s.url("/auth/register")).header("content-type", "text/plain").body("{}"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "form post to a JSON endpoint",
            c.post(s.url("/auth/login")).form(&[("email", "dave@example.com"), ("password", PW)]),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "wrong shape",
            c.post(s.url("/auth/register")).json(&json!({"email": 42, "password": []})),
            422,
            "VALIDATION_FAILED",
        ),
        (
            "unknown field",
            c.post(s.url("/auth/register")).json(&json!({"email": "x@example.com", "password": PW, "admin": true})),
            422,
            "VALIDATION_FAILED",
        ),
        (
            "oversize body",
            c.post(s.url("/auth/register"))
                .header("content-type", "application/json")
                .body(format!("{{\"email\":\"{}\"}}", "a".repeat(200_000))),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "NUL in email",
            c.post(s.url("/auth/register")).json(&json!({"email": "a\u{0}b@example.com", "password": PW})),
            422,
            "VALIDATION_FAILED",
        ),
        (
            "weak password",
            c.post(s.url("/auth/register")).json(&json!({"email": "e@example.com", "password": "password1"})),
            422,
            "VALIDATION_FAILED",
        ),
        (
            "taken email",
            c.post(s.url("/auth/register")).json(&json!({"email": "DAVE@example.com", "password": PW})),
            409,
            "EMAIL_TAKEN",
        ),
    ];
    for (what, req, status, code) in cases {
        let res = req.send().await.unwrap();
        assert_eq!(error_code(res).await, (StatusCode::from_u16(status).unwrap(), code.to_owned()), "{what}");
    }

    // Tokens: garbage, expired, signed by a stranger, alg none, HS256.
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64| AccessClaims {
        iss: s.stack.auth.config().issuer.clone(),
        aud: s.stack.auth.config().audience.clone(),
        sub: UserId::new(),
        sid: SessionId::new(),
        iat: now - 1000,
        exp,
        jti: "x".into(),
        nbf: None,
    };
    let expired = s.stack.keys.sign(&claims(now - 10)).unwrap();
    let stranger_db = TestDb::sqlite().await;
    let stranger = fafnir_core::keys::KeyManager::load_or_create(
        stranger_db.db.clone(),
        s.stack.clock.clone(),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let foreign = stranger.sign(&claims(now + 600)).unwrap();
    let body = serde_json::to_value(claims(now + 600)).unwrap();
    let none = forge(r#"{"alg":"none","typ":"at+jwt"}"#, &body, "");
    let hs = forge(r#"{"alg":"HS256","typ":"at+jwt"}"#, &body, "c2lnbmF0dXJl");
    for (what, token) in [
        ("garbage", "garbage".to_owned()),
        ("three dots", "a.b.c".to_owned()),
        ("expired", expired),
        ("wrongly signed", foreign),
        ("alg none", none),
        ("hs256", hs),
        ("huge", "x".repeat(6000)),
    ] {
        let res = c.get(s.url("/auth/me")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(error_code(res).await, (StatusCode::UNAUTHORIZED, "UNAUTHORIZED".into()), "{what}");
        let res =
            c.post(s.url("/auth/logout-all")).header("cookie", format!("fafnir_access={token}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what} as cookie");
    }
    let res = c.get(s.url("/auth/me")).header("authorization", "Basic Zm9vOmJhcg==").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = c.get(s.url("/no/such/route")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = c.get(s.url("/auth/login")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);

    let users_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(s.stack.db.pool()).await.unwrap();
    assert_eq!(users_before, users_after, "no hostile request created anything");
    stranger_db.cleanup().await;
    s.stop().await;
}

/// Every (method, path) the server serves, as the contract lists them.
const SERVED: &[(&str, &str)] = &[
    ("post", "/auth/register"),
    ("post", "/auth/login"),
    ("post", "/auth/token"),
    ("post", "/auth/refresh"),
    ("post", "/auth/logout"),
    ("delete", "/auth/logout"),
    ("post", "/auth/logout-all"),
    ("get", "/auth/me"),
    ("get", "/auth/sessions"),
    ("delete", "/auth/sessions/{id}"),
    ("post", "/auth/password"),
    ("post", "/auth/email/verify/request"),
    ("post", "/auth/email/verify"),
    ("post", "/auth/password/forgot"),
    ("post", "/auth/password/reset"),
    ("post", "/auth/email/change"),
    ("post", "/auth/email/change/confirm"),
    ("delete", "/auth/account"),
    ("delete", "/auth/delete"),
    ("get", "/auth/activity"),
    ("get", "/auth/oauth/providers"),
    ("get", "/auth/oauth/{provider}/authorize"),
    ("get", "/auth/oauth/{provider}/link"),
    ("get", "/auth/oauth/{provider}/callback"),
    ("post", "/auth/oauth/{provider}/callback"),
    ("get", "/auth/identities"),
    ("delete", "/auth/identities/{id}"),
    ("get", "/auth/mfa"),
    ("post", "/auth/mfa/totp/setup"),
    ("post", "/auth/mfa/totp/confirm"),
    ("delete", "/auth/mfa/totp"),
    ("post", "/auth/mfa/recovery-codes"),
    ("post", "/auth/mfa/verify"),
    ("get", "/auth/passkeys"),
    ("post", "/auth/passkeys/register/start"),
    ("post", "/auth/passkeys/register/finish"),
    ("post", "/auth/passkeys/login/start"),
    ("post", "/auth/passkeys/login/finish"),
    ("patch", "/auth/passkeys/{id}"),
    ("delete", "/auth/passkeys/{id}"),
    ("get", "/admin/users"),
    ("post", "/admin/users/{id}/disable"),
    ("post", "/admin/users/{id}/enable"),
    ("post", "/admin/users/{id}/unlock"),
    ("post", "/admin/users/{id}/revoke-sessions"),
    ("post", "/admin/users/{id}/send-password-reset"),
    ("delete", "/admin/users/{id}"),
    ("get", "/admin/audit"),
    ("post", "/auth/introspect"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/.well-known/oauth-authorization-server"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

async fn the_openapi_document_lists_every_route(t: &TestDb) {
    let s = start(t).await;
    let doc: Value = plain().get(s.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.insert((method.to_owned(), path.clone()));
            }
        }
    }
    let served: BTreeSet<(String, String)> = SERVED.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, served);
    // And every documented route is really served (neither 404 nor 405).
    for (method, path) in &documented {
        let url = s.url(&path.replace("{id}", &SessionId::new().to_string()));
        let req = match method.as_str() {
            "get" => plain().get(url),
            "post" => plain().post(url),
            "delete" => plain().delete(url),
            "patch" => plain().patch(url),
            _ => unreachable!(),
        };
        let status = req.send().await.unwrap().status();
        assert!(status != StatusCode::NOT_FOUND || path.contains('{'), "{method} {path}: {status}");
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(!status.is_server_error(), "{method} {path}: {status}");
    }
    s.stop().await;
}

async fn health_metrics_docs_and_jwks(t: &TestDb) {
    let s = start(t).await;
    let c = plain();
    assert_eq!(c.get(s.url("/healthz")).send().await.unwrap().text().await.unwrap(), "ok");
    assert_eq!(c.get(s.url("/readyz")).send().await.unwrap().status(), StatusCode::OK);
    let jwks: Value = c.get(s.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    register(&s, "eve@example.com").await;
    let _ =
        c.post(s.url("/auth/login")).json(&json!({"email": "eve@example.com", "password": PW})).send().await.unwrap();
    let _ = c
        .post(s.url("/auth/login"))
        .json(&json!({"email": "eve@example.com", "password": "wrong wrong wrong"}))
        .send()
        .await
        .unwrap();
    let m = c.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for needle in [
        "fafnir_http_requests_total{method=\"POST\",route=\"/auth/login\",status=\"200\"}",
        "fafnir_http_request_duration_seconds_bucket",
        "fafnir_logins_total{outcome=\"success\"}",
        "fafnir_logins_total{outcome=\"invalid_credentials\"}",
        "fafnir_active_sessions",
        "fafnir_password_hash_queue_depth",
        "fafnir_mail_backlog",
        "fafnir_mail_dead",
    ] {
        assert!(m.contains(needle), "missing {needle} in\n{m}");
    }
    assert!(!m.contains(PW), "metrics never carry secrets");
    // The docs UI is served from this server, with no third-party host.
    let html = c.get(s.url("/docs")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("/docs/swagger-ui-bundle.js") && !html.contains("://"), "{html}");
    for asset in ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/init.js"] {
        let res = c.get(s.url(asset)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{asset}");
        assert!(res.bytes().await.unwrap().len() > 50, "{asset}");
    }
    s.stop().await;
}

async fn secure_cookies_by_default_and_cors_for_allowed_origins(t: &TestDb) {
    let s = start_with(t, |c| c.cookie_secure = true, Router::new()).await;
    register(&s, "fay@example.com").await;
    let res = plain()
        .post(s.url("/auth/login"))
        .json(&json!({"email": "fay@example.com", "password": PW}))
        .send()
        .await
        .unwrap();
    let cookies = set_cookies(res.headers());
    assert_eq!(cookies.len(), 3);
    assert!(cookies.iter().all(|c| c.contains("; Secure")), "{cookies:?}");
    let pre = |origin: &str| {
        plain()
            .request(reqwest::Method::OPTIONS, s.url("/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-csrf-token")
            .send()
    };
    let ok = pre("https://app.example.com").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let bad = pre("https://evil.example").await.unwrap();
    assert!(!bad.headers().contains_key("access-control-allow-origin"));
    s.stop().await;
}

async fn graceful_shutdown_finishes_in_flight_requests(t: &TestDb) {
    let slow = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            "finished"
        }),
    );
    let s = start_with(t, |_| {}, slow).await;
    let url = s.url("/slow");
    let in_flight = tokio::spawn(async move { plain().get(url).send().await.unwrap().text().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let base = s.base.clone();
    s.stop().await;
    assert_eq!(in_flight.await.unwrap(), "finished");
    assert!(plain().get(format!("{base}/healthz")).send().await.is_err(), "no longer accepting");
}

async fn logout_with_a_refresh_token_in_the_body_ends_its_session(t: &TestDb) {
    let s = start(t).await;
    register(&s, "erin@example.com").await;
    let (access, refresh) = crate::common::tokens(&s.url(""), "erin@example.com", PW).await;
    let res = plain().post(s.url("/auth/logout")).json(&json!({"refresh_token": refresh})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // The session is over: its refresh token and its access token are refused.
    let res = plain()
        .post(s.url("/auth/token"))
        .json(&json!({"grant_type": "refresh_token", "refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let me = plain().get(s.url("/auth/me")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    s.stop().await;
}

/// A browser's cookies after logging in: (refresh, csrf).
async fn browser_login(s: &Server, email: &str) -> (String, String) {
    let res = plain().post(s.url("/auth/login")).json(&json!({"email": email, "password": PW})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookies = set_cookies(res.headers());
    (cookie_value(&cookies, "fafnir_refresh"), cookie_value(&cookies, "fafnir_csrf"))
}

async fn refresh_by_cookie_needs_the_csrf_token_of_its_own_session(t: &TestDb) {
    let s = start(t).await;
    register(&s, "frank@example.com").await;
    let (refresh_a, csrf_a) = browser_login(&s, "frank@example.com").await;
    let (refresh_b, csrf_b) = browser_login(&s, "frank@example.com").await;
    let refresh = |refresh: &str, csrf: &str| {
        plain()
            .post(s.url("/auth/refresh"))
            .header("cookie", format!("fafnir_refresh={refresh}; fafnir_csrf={csrf}"))
            .header("x-csrf-token", csrf)
            .send()
    };
    // Session B's CSRF token, submitted twice (header = cookie), does not refresh session A,
    // nor log it out.
    assert_eq!(error_code(refresh(&refresh_a, &csrf_b).await.unwrap()).await.1, "CSRF_TOKEN_INVALID");
    let res = plain()
        .post(s.url("/auth/logout"))
        .header("cookie", format!("fafnir_refresh={refresh_a}; fafnir_csrf={csrf_b}"))
        .header("x-csrf-token", &csrf_b)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res).await.1, "CSRF_TOKEN_INVALID");
    // Each with its own token works (A was neither refreshed nor revoked above).
    assert_eq!(refresh(&refresh_a, &csrf_a).await.unwrap().status(), StatusCode::OK);
    assert_eq!(refresh(&refresh_b, &csrf_b).await.unwrap().status(), StatusCode::OK);
    s.stop().await;
}

/// A login or registration sent over a raw socket, abandoned after `after`: the server is mid-hash when the
/// client goes away.
async fn abandoned(addr: &str, path: &str, email: &str, password: &str, after: Duration) {
    let body = json!({"email": email, "password": password}).to_string();
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(after).await;
    drop(sock);
}

async fn logins_abandoned_mid_hash_do_not_lock_the_account(t: &TestDb) {
    // Hashing slow enough (a few hundred ms) that the client is gone long before the verdict.
    let auth = AuthConfig {
        argon2: Argon2Config { memory_kib: 8 * 1024, iterations: 40, parallelism: 1 },
        ..test_auth_config()
    };
    let s = start_full(t, |_| {}, auth, Router::new(), Limits::current().clone()).await;
    register(&s, "gina@example.com").await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    // More abandoned attempts than the account allows in flight (5), right and wrong passwords.
    let mut clients = Vec::new();
    for i in 0..8 {
        let pw = if i % 2 == 0 { "not the password" } else { PW };
        // Long enough for the claim to be made (an attempt dropped before that never hashed
        // and counts nothing), far shorter than the hash.
        clients.push(abandoned(&addr, "/auth/login", "gina@example.com", pw, Duration::from_millis(80)));
    }
    futures_util::future::join_all(clients).await;
    // The right password gets in within moments: the server notices each disconnect and
    // releases its claim (until then an attempt may hear "in flight, try again in 1 second";
    // before the fix the account stayed blocked for a minute).
    let started = std::time::Instant::now();
    loop {
        let res = plain()
            .post(s.url("/auth/login"))
            .json(&json!({"email": "gina@example.com", "password": PW}))
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::OK {
            break;
        }
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{:?}", res.text().await);
        assert_eq!(res.headers()["retry-after"], "1", "only the brief in-flight wait, never a lock");
        assert!(started.elapsed() < Duration::from_secs(5), "the claims were never released");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let db = s.stack.db.clone();
    let failures = |key: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT failures FROM login_throttle WHERE key = $1")
                .bind(key)
                .fetch_one(db.pool())
                .await
                .unwrap()
        }
    };
    assert_eq!(failures("acct:gina@example.com").await, 0, "an abandoned attempt never counts against the account");
    // But against the address that abandoned them: the hashes still ran. (At most five of the
    // eight were in flight at once for the account; the others may have been refused at once.)
    let mut n = 0;
    for _ in 0..50 {
        n = failures("ip:127.0.0.1").await;
        if n >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!((5..=8).contains(&n), "abandoned attempts count against their address: {n}");

    // An abandoned registration counts against the registration limits too.
    abandoned(&addr, "/auth/register", "hank@example.com", PW, Duration::from_millis(80)).await;
    let mut counted = 0;
    for _ in 0..50 {
        counted = failures("reg:ip:127.0.0.1").await;
        if counted >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counted, 2, "gina's registration and the abandoned one");
    s.stop().await;
}

/// Reads until the server closes the connection (true) or `within` passes (false).
async fn closed_within(sock: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // e.g. a 408 answer before the close
            Err(_) => return false,
        }
    }
}

async fn slow_and_idle_clients_are_cut_and_cannot_hold_up_shutdown(t: &TestDb) {
    let limits = Limits::new(4, Duration::from_secs(1), Duration::from_secs(1));
    let s = start_full(t, |_| {}, test_auth_config(), Router::new(), limits.clone()).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    // Headers never finished, and a connection that never sends a byte: both closed after the
    // header-read timeout.
    let mut partial = tokio::net::TcpStream::connect(&addr).await.unwrap();
    partial.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(closed_within(&mut partial, Duration::from_secs(5)).await, "partial headers: closed");
    assert!(closed_within(&mut idle, Duration::from_secs(5)).await, "idle connection: closed");

    // At most 4 connections: with 4 held open, a fifth is not served until one goes away.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(limits.open_connections(), 4);
    let quick = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    assert!(quick.get(s.url("/healthz")).send().await.is_err(), "a fifth connection waits");
    drop(held);
    wait_for_ok(&s.url("/healthz")).await;

    // Shutdown with slow clients still attached ends within the grace period.
    let mut stuck = Vec::new();
    for _ in 0..3 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        stuck.push(c);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    s.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
}

/// The header-read timer of a keep-alive connection is one timer moved along from request to
/// request: each request head gets the full timeout again (a client that keeps sending on time
/// is never cut), and a client that stops half-way through a later head, or goes silent after
/// a request, is still cut.
async fn every_request_head_of_a_kept_alive_connection_gets_its_own_deadline(t: &TestDb) {
    let limits = Limits::new(8, Duration::from_millis(600), Duration::from_secs(1));
    let s = start_full(t, |_| {}, test_auth_config(), Router::new(), limits).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let request = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    // Reads one whole answer to GET /healthz (its body is `ok`).
    async fn answer(sock: &mut tokio::net::TcpStream) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while !got.ends_with(b"\r\n\r\nok") {
            let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "closed before the answer: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    // Five requests 400 ms apart: two seconds in all, each head on time.
    let mut steady = tokio::net::TcpStream::connect(&addr).await.unwrap();
    for i in 0..5 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        steady.write_all(request).await.unwrap();
        assert!(answer(&mut steady).await.starts_with("HTTP/1.1 200"), "request {i}");
    }
    // Then silence: cut after the timeout.
    assert!(closed_within(&mut steady, Duration::from_secs(5)).await, "silent after requests: closed");

    // A head left half-way after two answered requests: cut.
    let mut partial = tokio::net::TcpStream::connect(&addr).await.unwrap();
    for _ in 0..2 {
        partial.write_all(request).await.unwrap();
        assert!(answer(&mut partial).await.starts_with("HTTP/1.1 200"));
    }
    partial.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let started = std::time::Instant::now();
    assert!(closed_within(&mut partial, Duration::from_secs(5)).await, "partial later head: closed");
    assert!(started.elapsed() >= Duration::from_millis(300), "not before its deadline: {:?}", started.elapsed());
    s.stop().await;
}

async fn wait_for_ok(url: &str) {
    for _ in 0..50 {
        if plain().get(url).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered");
}

fafnir_core::conformance_tests!(@testdb
    logout_with_a_refresh_token_in_the_body_ends_its_session,
    refresh_by_cookie_needs_the_csrf_token_of_its_own_session,
    logins_abandoned_mid_hash_do_not_lock_the_account,
    slow_and_idle_clients_are_cut_and_cannot_hold_up_shutdown,
    every_request_head_of_a_kept_alive_connection_gets_its_own_deadline,
    browser_flow_with_cookies_csrf_refresh_replay_and_logout,
    bearer_flow_through_the_token_endpoint,
    failed_logins_get_429_with_retry_after,
    hostile_requests_get_clear_4xx_and_change_nothing,
    the_openapi_document_lists_every_route,
    health_metrics_docs_and_jwks,
    secure_cookies_by_default_and_cors_for_allowed_origins,
    graceful_shutdown_finishes_in_flight_requests,
);

/// `docs/openapi.json` is the served OpenAPI document (what `GET /openapi.json` answers), for
/// client generators and reviews. After changing a route, regenerate it with
/// `FAFNIR_UPDATE_SCHEMA=1 cargo test -p fafnir-server --test e2e openapi_file` (or `make codegen`).
#[test]
fn openapi_file_matches_the_served_document() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let served = fafnir_server::http::all_in_one_openapi().to_pretty_json().unwrap() + "\n";
    if std::env::var_os("FAFNIR_UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &served).unwrap();
    }
    let file = std::fs::read_to_string(path).unwrap_or_default();
    assert!(file == served, "docs/openapi.json differs from the served document; regenerate it (see this test's doc)");
}
