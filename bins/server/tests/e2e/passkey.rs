//! Passkeys end to end through real HTTP on `fafnir serve` (REST and GraphQL), on SQLite and
//! Postgres. The authenticator is `fafnir_core::testing::passkey::SoftPasskey`, written from the
//! WebAuthn specification with `ring` (P-256, "none" attestation), not with webauthn-rs, so the
//! server is checked against an independent implementation. Covered: registration of a
//! discoverable credential with user verification, the exclusion list, sign-in without an
//! e-mail, the password alone refused once a passkey exists, a replayed answer, a wrong origin,
//! a wrong relying party id, no user verification, a cloned authenticator (the counter), a
//! synced passkey (counter 0, backup flags), rename, removal, and the same through GraphQL.

use axum::Router;
use fafnir_core::testing::passkey::SoftPasskey;
use fafnir_core::testing::TestDb;
use fafnir_core::Config;
use serde_json::{json, Value};

use crate::common::{addr, port, spawn, wait_until, Running};
use crate::oauth::Browser;

const PW: &str = "correct horse battery staple";

async fn serve(db: &TestDb, p: u16) -> Running {
    let cfg = Config {
        database_url: db.url.clone(),
        http_addr: addr(p),
        grpc_addr: addr(port()),
        // WebAuthn takes host names only: the relying party is `localhost`.
        public_url: Some(format!("http://localhost:{p}")),
        cookie_secure: false,
        log: "warn".into(),
        ..Config::default()
    };
    let server = spawn(|s| fafnir_server::run_all_in_one(cfg, Router::new(), s));
    let url = format!("http://127.0.0.1:{p}/readyz");
    let http = reqwest::Client::new();
    wait_until(&url, || async { http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) }).await;
    server
}

/// A registration through REST: (status, body of finish).
async fn register(b: &Browser, key: &mut SoftPasskey, origin: &str, name: &str) -> (u16, Value) {
    let (s, start) = b.post("/auth/passkeys/register/start", json!({})).await;
    assert_eq!(s, 200, "{start}");
    let credential = key.create(&start["options"], origin).unwrap();
    b.post(
        "/auth/passkeys/register/finish",
        json!({"ceremony": start["ceremony"], "credential": credential, "name": name}),
    )
    .await
}

/// A passkey sign-in through REST: (status, body of finish) and what was sent to finish.
async fn sign_in(b: &Browser, key: &mut SoftPasskey, origin: &str) -> ((u16, Value), Value) {
    let (s, start) = b.post("/auth/passkeys/login/start", json!({})).await;
    assert_eq!(s, 200, "{start}");
    let credential = key.get(&start["options"], origin).unwrap();
    let body = json!({"ceremony": start["ceremony"], "credential": credential});
    (b.post("/auth/passkeys/login/finish", body.clone()).await, body)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

async fn rest_journeys(url: &str) {
    let anon = Browser::new(url);
    assert_eq!(anon.post("/auth/register", json!({"email": "ada@example.com", "password": PW})).await.0, 201);
    let ada = Browser::new(url);
    assert_eq!(ada.post("/auth/login", json!({"email": "ada@example.com", "password": PW})).await.0, 200);
    assert_eq!(ada.get("/auth/passkeys").await, (200, json!([])));

    // Registration: a discoverable credential, user verification required, for `localhost`.
    let (s, start) = ada.post("/auth/passkeys/register/start", json!({})).await;
    assert_eq!(s, 200, "{start}");
    let pk = &start["options"]["publicKey"];
    assert_eq!(pk["rp"]["id"], "localhost");
    assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
    let mut key = SoftPasskey::new();
    let credential = key.create(&start["options"], url).unwrap();
    let finish = json!({"ceremony": start["ceremony"], "credential": credential, "name": "Laptop"});
    let (s, reg) = ada.post("/auth/passkeys/register/finish", finish.clone()).await;
    assert_eq!(s, 200, "{reg}");
    assert_eq!(reg["passkey"]["name"], "Laptop");
    assert_eq!(reg["recovery_codes"].as_array().map(Vec::len), Some(10), "the first second factor brings codes");
    let laptop = reg["passkey"]["id"].as_str().unwrap().to_owned();
    // The ceremony is used up.
    let (s, again) = ada.post("/auth/passkeys/register/finish", finish).await;
    assert_eq!((s, code(&again)), (400, "PASSKEY_CEREMONY_INVALID"));
    // The same authenticator is told it holds a credential for this account already.
    let (_, start) = ada.post("/auth/passkeys/register/start", json!({})).await;
    assert!(key.create(&start["options"], url).unwrap_err().contains("excluded"));
    // A registration made at another origin is refused.
    let (s, r) = register(&ada, &mut SoftPasskey::new(), "http://evil.example", "Evil").await;
    assert_eq!((s, code(&r)), (400, "PASSKEY_REJECTED"), "{r}");
    assert_eq!(ada.get("/auth/mfa").await.1, json!({"totp": false, "passkeys": 1, "recovery_codes_left": 10}));

    // From now on the password alone does not sign Ada in, on either password surface.
    let (s, login) = anon.post("/auth/login", json!({"email": "ada@example.com", "password": PW})).await;
    assert_eq!(s, 200);
    assert_eq!(login["mfa_required"], true, "{login}");
    assert_eq!(login["methods"], json!(["passkey", "recovery_code"]));
    let form = [("grant_type", "password"), ("username", "ada@example.com"), ("password", PW)];
    let (s, grant) = anon.send(anon.http.post(format!("{url}/auth/token")).form(&form)).await;
    assert_eq!((s, grant["error"].as_str()), (401, Some("mfa_required")), "{grant}");
    // A passkey sign-in opens a browser session: it is not offered to the token endpoint.
    assert_eq!(grant["methods"], json!(["recovery_code"]), "{grant}");

    // Sign-in without an e-mail: no credential list, user verification required.
    let phone = Browser::new(url);
    let (s, start) = phone.post("/auth/passkeys/login/start", json!({})).await;
    assert_eq!(s, 200);
    assert!(start["options"]["publicKey"]["allowCredentials"].as_array().is_none_or(Vec::is_empty), "{start}");
    assert_eq!(start["options"]["publicKey"]["userVerification"], "required");
    let credential = key.get(&start["options"], url).unwrap();
    let body = json!({"ceremony": start["ceremony"], "credential": credential});
    let (s, signed) = phone.post("/auth/passkeys/login/finish", body.clone()).await;
    assert_eq!(s, 200, "{signed}");
    assert_eq!(signed["user"]["email"], "ada@example.com");
    let (s, me) = phone.get("/auth/me").await;
    assert_eq!(s, 200);
    assert!(me["sign_in_methods"].as_array().unwrap().contains(&json!("passkey")), "{me}");

    // A registration's ceremony does not finish a sign-in.
    let (_, reg_start) = ada.post("/auth/passkeys/register/start", json!({})).await;
    let wrong_kind = json!({"ceremony": reg_start["ceremony"], "credential": body["credential"]});
    let (s, r) = phone.post("/auth/passkeys/login/finish", wrong_kind).await;
    assert_eq!((s, code(&r)), (400, "PASSKEY_CEREMONY_INVALID"));
    // An answer naming another account as its user: refused.
    let mut liar = key.clone();
    liar.user_handle = Some(uuid::Uuid::new_v4().as_bytes().to_vec());
    let ((s, r), _) = sign_in(&Browser::new(url), &mut liar, url).await;
    assert_eq!((s, code(&r)), (400, "PASSKEY_REJECTED"), "a user handle not the credential's owner");

    // A replayed answer: its ceremony is used up; under a new ceremony its challenge is wrong.
    let (s, r) = phone.post("/auth/passkeys/login/finish", body.clone()).await;
    assert_eq!((s, code(&r)), (400, "PASSKEY_CEREMONY_INVALID"));
    let (_, fresh) = phone.post("/auth/passkeys/login/start", json!({})).await;
    let replay = json!({"ceremony": fresh["ceremony"], "credential": body["credential"]});
    let (s, r) = phone.post("/auth/passkeys/login/finish", replay).await;
    assert_eq!((s, code(&r)), (400, "PASSKEY_REJECTED"));

    // Another origin, another relying party id, no user verification: refused, no session.
    let evil = Browser::new(url);
    let ((s, r), _) = sign_in(&evil, &mut key, "http://evil.example").await;
    assert_eq!((s, code(&r)), (400, "PASSKEY_REJECTED"), "wrong origin");
    let ((s, r), _) = sign_in(&evil, &mut key, &format!("http://localhost.evil.example:{}", &url[17..])).await;
    assert_eq!((s, code(&r)), (400, "PASSKEY_REJECTED"), "a look-alike origin");
    key.rp_id = Some("evil.example".into());
    let ((s, r), _) = sign_in(&evil, &mut key, url).await;
    assert_eq!((s, code(&r)), (400, "PASSKEY_REJECTED"), "wrong relying party id");
    key.rp_id = None;
    key.user_verified = false;
    let ((s, r), _) = sign_in(&evil, &mut key, url).await;
    assert_eq!((s, code(&r)), (400, "PASSKEY_REJECTED"), "no user verification");
    key.user_verified = true;
    assert_eq!(evil.get("/auth/me").await.0, 401);

    // A cloned authenticator: the counter must move forward, so the copy that lags is refused.
    let mut copy = key.clone();
    assert_eq!(sign_in(&Browser::new(url), &mut key, url).await.0 .0, 200);
    let ((s, r), _) = sign_in(&Browser::new(url), &mut copy, url).await;
    assert_eq!((s, code(&r)), (400, "PASSKEY_REJECTED"), "the clone's counter did not move forward");
    assert_eq!(sign_in(&Browser::new(url), &mut key, url).await.0 .0, 200, "the original still works");

    // A synced passkey keeps no counter (0) and says it is backed up: signs in every time.
    let mut synced = SoftPasskey::new();
    synced.counter_step = 0;
    synced.backup = (true, true);
    let (s, r) = register(&phone, &mut synced, url, "Phone").await;
    assert_eq!(s, 200, "{r}");
    assert!(r.get("recovery_codes").is_none(), "not the first second factor: {r}");
    let phone_id = r["passkey"]["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        assert_eq!(sign_in(&Browser::new(url), &mut synced, url).await.0 .0, 200);
    }
    let (_, list) = phone.get("/auth/passkeys").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["backed_up"], true, "{list}");
    assert!(list[1]["last_used_at"].is_string());

    // Rename; a bad name and someone else's id are refused.
    let patch = |id: &str, name: &str| {
        let csrf = phone.cookie("fafnir_csrf").unwrap_or_default();
        phone
            .http
            .patch(format!("{url}/auth/passkeys/{id}"))
            .header("origin", url)
            .header("x-csrf-token", csrf)
            .json(&json!({"name": name}))
    };
    let (s, r) = phone.send(patch(&laptop, "Work laptop")).await;
    assert_eq!((s, r["name"].as_str()), (200, Some("Work laptop")));
    assert_eq!(phone.send(patch(&laptop, " ")).await.0, 200, "blank: back to the default name");
    assert_eq!(phone.send(patch(&laptop, &"x".repeat(65))).await.0, 422);
    assert_eq!(phone.send(patch(&uuid::Uuid::new_v4().to_string(), "x")).await.0, 404);

    // Removal: the last second factor takes the recovery codes, and the password alone works again.
    assert_eq!(phone.delete(&format!("/auth/passkeys/{laptop}")).await.0, 204);
    assert_eq!(phone.delete(&format!("/auth/passkeys/{laptop}")).await.0, 404);
    assert_eq!(phone.get("/auth/mfa").await.1["recovery_codes_left"], 10, "a passkey is left");
    let ((s, r), _) = sign_in(&Browser::new(url), &mut key, url).await;
    assert_eq!((s, code(&r)), (400, "PASSKEY_REJECTED"), "a removed passkey no longer signs in");
    // The last second factor needs a proof besides the recent sign-in.
    let (s, r) = phone.delete(&format!("/auth/passkeys/{phone_id}")).await;
    assert_eq!((s, code(&r)), (401, "REAUTHENTICATION_REQUIRED"));
    let csrf = phone.cookie("fafnir_csrf").unwrap_or_default();
    let with_password = |pw: &str| {
        phone
            .http
            .delete(format!("{url}/auth/passkeys/{phone_id}"))
            .header("origin", url)
            .header("x-csrf-token", &csrf)
            .json(&json!({"password": pw}))
    };
    assert_eq!(phone.send(with_password("wrong password")).await.0, 401);
    assert_eq!(phone.send(with_password(PW)).await.0, 204);
    assert_eq!(phone.get("/auth/mfa").await.1, json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0}));
    let (s, login) = anon.post("/auth/login", json!({"email": "ada@example.com", "password": PW})).await;
    assert_eq!((s, login["user"]["email"].as_str()), (200, Some("ada@example.com")), "{login}");
}

async fn graphql_journeys(url: &str) {
    let anon = Browser::new(url);
    assert_eq!(anon.post("/auth/register", json!({"email": "bo@example.com", "password": PW})).await.0, 201);
    let bo = Browser::new(url);
    let login = "mutation { login(input: {email: \"bo@example.com\", password: \"correct horse battery staple\"}) { user { email } } }";
    assert_eq!(bo.graphql(login).await["data"]["login"]["user"]["email"], "bo@example.com");

    let r = bo.graphql("mutation { startPasskeyRegistration { ceremony options } }").await;
    let start = &r["data"]["startPasskeyRegistration"];
    let mut key = SoftPasskey::new();
    let credential = key.create(&start["options"], url).unwrap();
    let q = "mutation($c: String!, $cred: JSON!) { finishPasskeyRegistration(ceremony: $c, credential: $cred, name: \"Key\") { passkey { id name } recoveryCodes } }";
    let (_, r) =
        bo.post("/graphql", json!({"query": q, "variables": {"c": start["ceremony"], "cred": credential}})).await;
    let done = &r["data"]["finishPasskeyRegistration"];
    assert_eq!(done["passkey"]["name"], "Key", "{r}");
    assert_eq!(done["recoveryCodes"].as_array().map(Vec::len), Some(10));
    let id = done["passkey"]["id"].as_str().unwrap().to_owned();

    let me = bo.graphql("{ me { mfa { totp passkeys { id name createdAt lastUsedAt } recoveryCodesLeft } } }").await;
    let mfa = &me["data"]["me"]["mfa"];
    assert_eq!(mfa["passkeys"][0]["id"], id.as_str(), "{me}");
    assert_eq!(mfa["passkeys"][0]["lastUsedAt"], Value::Null);
    assert_eq!(mfa["recoveryCodesLeft"], 10);

    // The password alone: the step-up, with the passkey among its methods.
    let r = anon.graphql(login).await;
    assert_eq!(r["errors"][0]["extensions"]["reason"], "MFA_REQUIRED", "{r}");
    assert!(r["errors"][0]["extensions"]["methods"].as_array().unwrap().contains(&json!("passkey")));

    // The passkey alone signs in.
    let fresh = Browser::new(url);
    let r = fresh.graphql("mutation { startPasskeyLogin { ceremony options } }").await;
    let start = &r["data"]["startPasskeyLogin"];
    let credential = key.get(&start["options"], url).unwrap();
    let q = "mutation($c: String!, $cred: JSON!) { finishPasskeyLogin(ceremony: $c, credential: $cred) { user { email } } }";
    let vars = json!({"c": start["ceremony"], "cred": credential});
    let (_, r) = fresh.post("/graphql", json!({"query": q, "variables": vars.clone()})).await;
    assert_eq!(r["data"]["finishPasskeyLogin"]["user"]["email"], "bo@example.com", "{r}");
    assert_eq!(fresh.get("/auth/me").await.0, 200, "the cookies were set");
    // Replayed: refused.
    let (_, r) = Browser::new(url).post("/graphql", json!({"query": q, "variables": vars})).await;
    assert_eq!(r["errors"][0]["extensions"]["reason"], "PASSKEY_CEREMONY_INVALID", "{r}");

    let r = fresh.graphql(&format!("mutation {{ renamePasskey(id: \"{id}\", name: \"Blue key\") {{ name }} }}")).await;
    assert_eq!(r["data"]["renamePasskey"]["name"], "Blue key", "{r}");
    let r = fresh.graphql(&format!("mutation {{ deletePasskey(id: \"{id}\") }}")).await;
    assert_eq!(r["errors"][0]["extensions"]["reason"], "REAUTHENTICATION_REQUIRED", "the last factor: {r}");
    let q = format!("mutation {{ deletePasskey(id: \"{id}\", input: {{password: \"{PW}\"}}) }}");
    let r = fresh.graphql(&q).await;
    assert_eq!(r["data"]["deletePasskey"], true, "{r}");
    let me = fresh.graphql("{ me { mfa { passkeys { id } recoveryCodesLeft } } }").await;
    assert_eq!(me["data"]["me"]["mfa"], json!({"passkeys": [], "recoveryCodesLeft": 0}));
}

async fn run(db: &TestDb) {
    let p = port();
    let server = serve(db, p).await;
    let url = format!("http://localhost:{p}");
    rest_journeys(&url).await;
    graphql_journeys(&url).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passkeys_sqlite() {
    run(&TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passkeys_postgres() {
    let Some(db) = TestDb::postgres("passkeys").await else { return };
    run(&db).await;
    db.cleanup().await;
}
