//! Second factors end to end through real HTTP, on `fafnir serve` and behind the gateway, on
//! SQLite and Postgres. The TOTP codes are computed from the secret with the tests' own RFC 6238
//! (`fafnir_core::testing::otp`, HMAC-SHA1 from `ring`), not with Fafnir's code; the Python
//! interop suite does the same with `pyotp`. Covered: setup and confirmation, the step-up on
//! `/auth/login`, `/auth/token`, GraphQL and a provider sign-in, a code accepted once, skew at
//! the edges, wrong codes throttled, recovery codes single use, regeneration and removal after
//! re-authentication, and the administrator's reset.

use axum::Router;
use fafnir_core::testing::otp::{totp, unbase32};
use fafnir_core::testing::TestDb;
use fafnir_core::Config;
use serde_json::{json, Value};

use crate::common::{addr, port, spawn, wait_until, Running};
use crate::oauth::{clients, gateway_and_services, providers, Browser, Idp};

const PW: &str = "correct horse battery staple";

fn now_step() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 30
}

/// Waits until the current step has at least `margin` seconds left, so that a code computed now
/// is still current when the server checks it.
async fn fresh_step(margin: u64) -> u64 {
    loop {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        if 30 - secs % 30 >= margin {
            return secs / 30;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn serve(db: &TestDb, p: u16, idp: Option<&Idp>) -> Running {
    let mut cfg = Config {
        database_url: db.url.clone(),
        http_addr: addr(p),
        grpc_addr: addr(port()),
        public_url: Some(format!("http://127.0.0.1:{p}")),
        cookie_secure: false,
        log: "warn".into(),
        ..Config::default()
    };
    if let Some(idp) = idp {
        providers(&mut cfg, idp);
    }
    let server = spawn(|s| fafnir_server::run_all_in_one(cfg, Router::new(), s));
    let url = format!("http://127.0.0.1:{p}/readyz");
    let http = reqwest::Client::new();
    wait_until(&url, || async { http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) }).await;
    server
}

/// The token endpoint's password grant: (status, body).
async fn password_grant(b: &Browser, email: &str) -> (u16, Value) {
    let form = [("grant_type", "password"), ("username", email), ("password", PW)];
    b.send(b.http.post(format!("{}/auth/token", b.url)).form(&form)).await
}

async fn delete_json(b: &Browser, path: &str, body: Value) -> (u16, Value) {
    let csrf = b.cookie("fafnir_csrf").unwrap_or_default();
    b.send(b.http.delete(format!("{}{path}", b.url)).header("origin", &b.url).header("x-csrf-token", csrf).json(&body))
        .await
}

async fn journeys(url: &str, idp: Option<&Idp>) {
    let anon = Browser::new(url);
    assert_eq!(anon.post("/auth/register", json!({"email": "ada@example.com", "password": PW})).await.0, 201);
    let ada = Browser::new(url);
    assert_eq!(ada.post("/auth/login", json!({"email": "ada@example.com", "password": PW})).await.0, 200);
    assert_eq!(ada.get("/auth/mfa").await.1, json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0}));
    // The public URL here is an IP address, which WebAuthn does not take: no passkeys, said clearly.
    let (s, r) = ada.post("/auth/passkeys/login/start", json!({})).await;
    assert_eq!((s, r["error"]["code"].as_str()), (503, Some("PASSKEYS_UNAVAILABLE")));

    // Setup: a secret and an otpauth URL; not in force until a code confirms it.
    let (s, setup) = ada.post("/auth/mfa/totp/setup", json!({})).await;
    assert_eq!(s, 200, "{setup}");
    let secret = unbase32(setup["secret"].as_str().unwrap());
    assert_eq!(secret.len(), 20);
    let url_ = setup["otpauth_url"].as_str().unwrap();
    assert!(
        url_.starts_with("otpauth://totp/") && url_.contains("secret=") && url_.contains("ada%40example.com"),
        "{url_}"
    );
    assert_eq!(ada.get("/auth/mfa").await.1["totp"], false);
    let (s, b) = ada.post("/auth/mfa/totp/confirm", json!({"code": "000000"})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("INVALID_MFA_CODE")));
    let step = fresh_step(5).await;
    let (s, codes) = ada.post("/auth/mfa/totp/confirm", json!({"code": totp(&secret, step)})).await;
    assert_eq!(s, 200, "{codes}");
    let recovery: Vec<String> =
        codes["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(recovery.len(), 10);
    assert_eq!(ada.get("/auth/mfa").await.1, json!({"totp": true, "passkeys": 0, "recovery_codes_left": 10}));
    assert_eq!(ada.post("/auth/mfa/totp/setup", json!({})).await.1["error"]["code"], "MFA_ALREADY_ENABLED");

    // From now on the password alone opens no session.
    let b = Browser::new(url);
    let (s, held) = b.post("/auth/login", json!({"email": "ada@example.com", "password": PW})).await;
    assert_eq!(s, 200);
    assert_eq!(held["mfa_required"], true, "{held}");
    assert_eq!(held["methods"], json!(["totp", "recovery_code"]));
    assert!(b.cookie("fafnir_access").is_none(), "no session cookies");
    let token = held["mfa_token"].as_str().unwrap().to_owned();
    // The confirming code's step is used: the same code (and anything older) is refused.
    let (s, r) = b.post("/auth/mfa/verify", json!({"mfa_token": token, "code": totp(&secret, step)})).await;
    assert_eq!((s, r["error"]["code"].as_str()), (401, Some("INVALID_MFA_CODE")), "a code works once");
    // The next step's code (one step of skew ahead) is accepted, once.
    let next = totp(&secret, now_step() + 1);
    let (s, r) = b.post("/auth/mfa/verify", json!({"mfa_token": token, "code": next})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["user"]["email"], "ada@example.com");
    assert!(b.cookie("fafnir_access").is_some());
    assert_eq!(b.get("/auth/me").await.0, 200);
    let (s, r) = b.post("/auth/mfa/verify", json!({"mfa_token": token, "code": next})).await;
    assert_eq!((s, r["error"]["code"].as_str()), (401, Some("MFA_TOKEN_INVALID")), "the challenge is single use");
    // Two steps away is outside the skew.
    let c = Browser::new(url);
    let held = c.post("/auth/login", json!({"email": "ada@example.com", "password": PW})).await.1;
    let token = held["mfa_token"].as_str().unwrap();
    let far = totp(&secret, now_step() + 3);
    let (s, _) = c.post("/auth/mfa/verify", json!({"mfa_token": token, "code": far})).await;
    assert_eq!(s, 401);

    // A recovery code works once (any case, with or without its dash).
    let (s, r) = c
        .post(
            "/auth/mfa/verify",
            json!({"mfa_token": token, "recovery_code": recovery[0].to_uppercase().replace('-', "")}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let d = Browser::new(url);
    let held = d.post("/auth/login", json!({"email": "ada@example.com", "password": PW})).await.1;
    let (s, r) =
        d.post("/auth/mfa/verify", json!({"mfa_token": held["mfa_token"], "recovery_code": recovery[0]})).await;
    assert_eq!((s, r["error"]["code"].as_str()), (401, Some("INVALID_MFA_CODE")), "used up");
    assert_eq!(ada.get("/auth/mfa").await.1["recovery_codes_left"], 9);

    // The token endpoint: 401 mfa_required with the challenge; verify answers the tokens.
    let (s, body) = password_grant(&anon, "ada@example.com").await;
    assert_eq!(s, 401);
    assert_eq!(body["error"], "mfa_required", "{body}");
    // (A TOTP code of a step already used is refused, and the next step's was used above: a
    // recovery code answers here.)
    let r: Value = anon
        .http
        .post(format!("{url}/auth/mfa/verify"))
        .json(&json!({"mfa_token": body["mfa_token"], "recovery_code": recovery[4]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["token_type"], "Bearer", "{r}");
    let me: Value = anon
        .http
        .get(format!("{url}/auth/me"))
        .bearer_auth(r["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ada@example.com");

    // A challenge begun at the token endpoint, finished through GraphQL: the tokens come in the
    // payload.
    let (_, body) = password_grant(&anon, "ada@example.com").await;
    let api = Browser::new(url);
    let v = api
        .graphql(&format!(
            "mutation {{ verifyMfa(input: {{mfaToken: \"{}\", recoveryCode: \"{}\"}}) {{ user {{ email }} accessToken refreshToken }} }}",
            body["mfa_token"].as_str().unwrap(),
            recovery[5]
        ))
        .await;
    assert_eq!(v["data"]["verifyMfa"]["user"]["email"], "ada@example.com", "{v}");
    assert!(v["data"]["verifyMfa"]["accessToken"].is_string() && v["data"]["verifyMfa"]["refreshToken"].is_string());
    assert!(api.cookie("fafnir_access").is_none(), "tokens, not cookies");

    // GraphQL: login answers MFA_REQUIRED with the challenge; verifyMfa signs in.
    let g = Browser::new(url);
    let v = g
        .graphql(&format!(
            "mutation {{ login(input: {{email: \"ada@example.com\", password: \"{PW}\"}}) {{ user {{ email }} }} }}"
        ))
        .await;
    let ext = &v["errors"][0]["extensions"];
    assert_eq!(ext["reason"], "MFA_REQUIRED", "{v}");
    assert!(g.cookie("fafnir_access").is_none());
    let mfa_token = ext["mfaToken"].as_str().unwrap();
    let v = g
        .graphql(&format!(
            "mutation {{ verifyMfa(input: {{mfaToken: \"{mfa_token}\", recoveryCode: \"{}\"}}) {{ user {{ email }} }} }}",
            recovery[1]
        ))
        .await;
    assert_eq!(v["data"]["verifyMfa"]["user"]["email"], "ada@example.com", "{v}");
    let v = g.graphql("{ me { mfa { totp recoveryCodesLeft } } }").await;
    assert_eq!(v["data"]["me"]["mfa"], json!({"totp": true, "recoveryCodesLeft": 6}), "{v}");

    // New recovery codes and removal need re-authentication; removal turns the step-up off.
    let (s, b) = ada.post("/auth/mfa/recovery-codes", json!({"password": "wrong password!"})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("INVALID_CREDENTIALS")));
    let (s, fresh) = ada.post("/auth/mfa/recovery-codes", json!({"recovery_code": recovery[2]})).await;
    assert_eq!(s, 200, "{fresh}");
    assert_eq!(ada.get("/auth/mfa").await.1["recovery_codes_left"], 10);
    // (Four wrong codes so far from this address: a fifth would lock it; the old set's death is
    // checked in fafnir-auth's tests.)
    let (s, b) = delete_json(&ada, "/auth/mfa/totp", json!({"recovery_code": fresh["recovery_codes"][0]})).await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(ada.get("/auth/mfa").await.1, json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0}));

    // A provider sign-in of an account with a second factor must pass it too.
    if let Some(_idp) = idp {
        let grace = Browser::new(url);
        assert_eq!(grace.sign_in("/auth/oauth/idp/authorize", "grace@example.com").await.location, "/");
        let setup = grace.post("/auth/mfa/totp/setup", json!({})).await.1;
        let gs = unbase32(setup["secret"].as_str().unwrap());
        let step = fresh_step(5).await;
        assert_eq!(grace.post("/auth/mfa/totp/confirm", json!({"code": totp(&gs, step)})).await.0, 200);
        // Without a password and with TOTP on, a session cannot set a first password (it could
        // then remove the factor): "forgot password" is the way.
        let (s, b) = grace.post("/auth/password", json!({"new_password": "grace's own new passphrase"})).await;
        assert_eq!((s, b["error"]["code"].as_str()), (422, Some("VALIDATION_FAILED")), "{b}");
        let other = Browser::new(url);
        let landing = other.sign_in("/auth/oauth/idp/authorize?return_to=/in", "grace@example.com").await;
        assert_eq!(landing.location, "/in?mfa_required=true");
        assert!(other.cookie("fafnir_access").is_none(), "no session before the second factor");
        let (s, r) = other.post("/auth/mfa/verify", json!({"code": totp(&gs, now_step() + 1)})).await;
        assert_eq!(s, 200, "the challenge comes from the fafnir_mfa cookie: {r}");
        assert_eq!(other.get("/auth/me").await.1["email"], "grace@example.com");
    }
    // Wrong codes are throttled like passwords: the account locks (bob, who has TOTP on).
    assert_eq!(anon.post("/auth/register", json!({"email": "bob@example.com", "password": PW})).await.0, 201);
    let bob = Browser::new(url);
    assert_eq!(bob.post("/auth/login", json!({"email": "bob@example.com", "password": PW})).await.0, 200);
    let bs = unbase32(bob.post("/auth/mfa/totp/setup", json!({})).await.1["secret"].as_str().unwrap());
    let step = fresh_step(5).await;
    assert_eq!(bob.post("/auth/mfa/totp/confirm", json!({"code": totp(&bs, step)})).await.0, 200);
    let e = Browser::new(url);
    let mut last = 0;
    for _ in 0..12 {
        let held = e.post("/auth/login", json!({"email": "bob@example.com", "password": PW})).await;
        if held.0 != 200 {
            last = held.0;
            break;
        }
        let (s, _) = e.post("/auth/mfa/verify", json!({"mfa_token": held.1["mfa_token"], "code": "000000"})).await;
        last = s;
        if s == 429 {
            break;
        }
    }
    assert_eq!(last, 429, "wrong codes lock the account");
}

async fn admin_reset(db: &TestDb) {
    // The administrator's reset (what `fafnir user mfa reset` calls), audited.
    let stack = fafnir_server::Stack::open(Config { database_url: db.url.clone(), ..Config::default() }).await.unwrap();
    let ada = stack.auth.user_by_email("ada@example.com").await.unwrap();
    assert!(!stack.auth.reset_second_factors(ada.id, "test").await.unwrap(), "ada turned hers off");
    stack.audit.flush().await;
    let q = fafnir_core::AuditQuery {
        kinds: vec![fafnir_core::AuditKind::SecondFactorRemoved],
        first: 100,
        ..Default::default()
    };
    let (removed, _) = stack.audit.list(&q).await.unwrap();
    assert!(removed.iter().any(|e| e.details.get("by").and_then(Value::as_str) == Some("test")), "{removed:?}");
    // Ada's own removal was recorded too, as hers.
    assert!(removed.iter().any(|e| e.actor_id.as_deref() == Some(ada.id.to_string().as_str())));
    stack.db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn second_factors_sqlite() {
    let db = TestDb::sqlite().await;
    let p = port();
    let idp = Idp::start(&clients(&format!("http://127.0.0.1:{p}"))).await;
    let server = serve(&db, p, idp.as_ref()).await;
    journeys(&format!("http://127.0.0.1:{p}"), idp.as_ref()).await;
    server.stop().await;
    admin_reset(&db).await;
}

/// The same journeys behind api-gateway (its `/auth` proxy and GraphQL) with auth-service,
/// security-service and user-service.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn second_factors_behind_the_gateway_sqlite() {
    let dbs = [TestDb::sqlite().await, TestDb::sqlite().await, TestDb::sqlite().await];
    let p = port();
    let Some(idp) = Idp::start(&clients(&format!("http://127.0.0.1:{p}"))).await else { return };
    let env = gateway_and_services([&dbs[0], &dbs[1], &dbs[2]], p, &idp).await;
    journeys(&env.url, Some(&idp)).await;
    env.shutdown().await;
    admin_reset(&dbs[0]).await;
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn second_factors_behind_the_gateway_postgres() {
        let Some(auth) = TestDb::postgres("mfa_gw_auth").await else { return };
        let Some(sec) = TestDb::postgres("mfa_gw_sec").await else { return };
        let Some(usr) = TestDb::postgres("mfa_gw_usr").await else { return };
        let p = port();
        let Some(idp) = Idp::start(&clients(&format!("http://127.0.0.1:{p}"))).await else { return };
        let env = gateway_and_services([&auth, &sec, &usr], p, &idp).await;
        journeys(&env.url, Some(&idp)).await;
        env.shutdown().await;
        admin_reset(&auth).await;
        for db in [auth, sec, usr] {
            db.cleanup().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn second_factors_postgres() {
        let Some(db) = TestDb::postgres("mfa_serve").await else { return };
        let p = port();
        let idp = Idp::start(&clients(&format!("http://127.0.0.1:{p}"))).await;
        let server = serve(&db, p, idp.as_ref()).await;
        journeys(&format!("http://127.0.0.1:{p}"), idp.as_ref()).await;
        server.stop().await;
        admin_reset(&db).await;
        db.cleanup().await;
    }
}
