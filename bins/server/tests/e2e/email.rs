//! E-mail end to end: a real SMTP conversation (fafnir_core::testing::smtp on loopback) behind
//! `fafnir serve`, and behind five services (api-gateway, auth-service handing its outbox to
//! notification-service, security-service, user-service). A person's path through each flow:
//! the mail arrives, its link's page opens without using the token, the POST uses it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use fafnir_core::testing::smtp::SmtpServer;
use fafnir_core::testing::TestDb;
use fafnir_core::Config;
use reqwest::cookie::Jar;
use serde_json::{json, Value};

use crate::common::{addr, port, spawn, wait_until, Running};

const PW: &str = "correct horse battery staple";
const PW2: &str = "a brand new passphrase for ada";

struct Env {
    /// The one URL people know (fafnir serve, or the gateway).
    url: String,
    smtp: SmtpServer,
    services: Vec<Running>,
    /// notification-service and auth-service's configuration (five services only).
    notification: Option<(String, Config)>,
    /// auth's database (its audit log).
    auth_db: String,
}

impl Env {
    async fn shutdown(mut self) {
        for r in self.services.drain(..) {
            r.stop().await;
        }
        self.smtp.stopped().await;
    }
}

async fn wait_ready(url: &str) {
    let http = reqwest::Client::new();
    wait_until(url, || async { http.get(url).send().await.is_ok_and(|r| r.status().is_success()) }).await;
}

fn smtp_url(smtp: &SmtpServer) -> Option<String> {
    Some(format!("smtp://127.0.0.1:{}", smtp.port))
}

async fn fafnir_serve(db: &TestDb, tweak: impl FnOnce(&mut Config)) -> Env {
    let smtp = SmtpServer::start().await;
    let p = port();
    let mut cfg = Config {
        database_url: db.url.clone(),
        http_addr: addr(p),
        grpc_addr: addr(port()),
        cookie_secure: false,
        smtp_url: smtp_url(&smtp),
        log: "warn".into(),
        ..Config::default()
    };
    tweak(&mut cfg);
    let server = spawn(|s| fafnir_server::run_all_in_one(cfg, Router::new(), s));
    let url = format!("http://127.0.0.1:{p}");
    wait_ready(&format!("{url}/readyz")).await;
    Env { url, smtp, services: vec![server], notification: None, auth_db: db.url.clone() }
}

async fn five_services(dbs: [&TestDb; 3]) -> Env {
    let smtp = SmtpServer::start().await;
    let (gw_p, auth_p, sec_p, sec_http, usr_p, usr_http, mail_p) =
        (port(), port(), port(), port(), port(), port(), port());
    let auth_url = format!("http://127.0.0.1:{auth_p}");
    let public = Some(format!("http://127.0.0.1:{gw_p}"));
    let base = |db: &str| Config {
        database_url: db.to_owned(),
        cookie_secure: false,
        auth_url: Some(auth_url.clone()),
        security_url: Some(format!("http://127.0.0.1:{sec_p}")),
        users_url: Some(format!("http://127.0.0.1:{usr_p}")),
        log: "warn".into(),
        ..Config::default()
    };
    // auth-service has no SMTP settings: its mail goes to notification-service, which has them.
    let auth_cfg = Config {
        http_addr: addr(auth_p),
        trust_forwarded_for: true,
        public_url: public.clone(),
        notification_url: Some(format!("http://127.0.0.1:{mail_p}")),
        ..base(&dbs[0].url)
    };
    let mail_cfg = Config { http_addr: addr(mail_p), smtp_url: smtp_url(&smtp), ..base("sqlite::memory:") };
    let sec_cfg = Config { grpc_addr: addr(sec_p), http_addr: addr(sec_http), ..base(&dbs[1].url) };
    let usr_cfg = Config { grpc_addr: addr(usr_p), http_addr: addr(usr_http), ..base(&dbs[2].url) };
    let gw_cfg = Config { http_addr: addr(gw_p), public_url: public, ..base("sqlite::memory:") };
    let security = spawn(|s| fafnir_server::run_security_service(sec_cfg, s));
    let users = spawn(|s| fafnir_server::run_user_service(usr_cfg, s));
    let auth = spawn(|s| fafnir_server::run_auth_service(auth_cfg.clone(), s));
    wait_ready(&format!("{auth_url}/readyz")).await;
    let notification = spawn(|s| fafnir_server::run_notification_service(mail_cfg, s));
    wait_ready(&format!("http://127.0.0.1:{mail_p}/readyz")).await;
    let gateway = spawn(|s| fafnir_server::run_api_gateway(gw_cfg, s));
    let url = format!("http://127.0.0.1:{gw_p}");
    wait_ready(&format!("{url}/readyz")).await;
    Env {
        url,
        smtp,
        services: vec![gateway, notification, auth, users, security],
        auth_db: auth_cfg.database_url.clone(),
        notification: Some((format!("http://127.0.0.1:{mail_p}"), auth_cfg)),
    }
}

/// A browser on `url`'s origin: cookies kept, CSRF header sent from the cookie.
struct Browser {
    http: reqwest::Client,
    jar: Arc<Jar>,
    url: String,
}

impl Browser {
    fn new(url: &str) -> Self {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder().cookie_provider(jar.clone()).build().unwrap();
        Self { http, jar, url: url.to_owned() }
    }

    fn csrf(&self) -> String {
        use reqwest::cookie::CookieStore;
        let u: reqwest::Url = self.url.parse().unwrap();
        let cookies = self.jar.cookies(&u).map(|c| c.to_str().unwrap().to_owned()).unwrap_or_default();
        cookies.split("; ").find_map(|c| c.strip_prefix("fafnir_csrf=")).map(str::to_owned).unwrap_or_default()
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.url))
            .header("origin", &self.url)
            .header("x-csrf-token", self.csrf())
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let res = self.http.get(format!("{}{path}", self.url)).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.post("/graphql", json!({"query": query, "variables": variables})).await.1
    }
}

/// Waits for the `n`-th message to `to` and returns the token of its link to `path`.
async fn token(smtp: &SmtpServer, to: &str, path: &str, n: usize) -> String {
    wait_until(&format!("mail #{n} to {to}"), || async { smtp.messages_to(to).len() >= n }).await;
    smtp.last_token(to, path)
        .unwrap_or_else(|| panic!("no {path} link in the mail to {to}: {:?}", smtp.messages_to(to)))
}

async fn wait_mail(smtp: &SmtpServer, to: &str, n: usize, containing: &str) {
    wait_until(&format!("mail #{n} to {to}"), || async { smtp.messages_to(to).len() >= n }).await;
    let m = &smtp.messages_to(to)[n - 1];
    assert!(m.contains(containing), "mail #{n} to {to} should say {containing:?}: {m}");
}

async fn flows(env: &mut Env) {
    let url = env.url.clone();
    let anon = Browser::new(&url);

    // Registration mails a verification link. Opening the page does not use the token.
    let (s, _) = anon.post("/auth/register", json!({"email": "ada@example.com", "password": PW})).await;
    assert_eq!(s, 201);
    let verify = token(&env.smtp, "ada@example.com", "/verify-email", 1).await;
    assert!(env.smtp.messages_to("ada@example.com")[0].contains(&format!("{url}/verify-email?token=")));
    let page = reqwest::get(format!("{url}/verify-email?token={verify}")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Confirm my address"));
    let ada = Browser::new(&url);
    assert_eq!(ada.post("/auth/login", json!({"email": "ada@example.com", "password": PW})).await.0, 200);
    assert_eq!(ada.get("/auth/me").await.1["email_verified"], false);
    assert_eq!(anon.post("/auth/email/verify", json!({"token": verify})).await.0, 204);
    wait_until("me to show the verified address", || async { ada.get("/auth/me").await.1["email_verified"] == true })
        .await;
    let (s, b) = anon.post("/auth/email/verify", json!({"token": verify})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (400, Some("TOKEN_INVALID")), "a token works once");

    // Forgot password: the same answer for an address with and without an account.
    let (s1, b1) = anon.post("/auth/password/forgot", json!({"email": "ada@example.com"})).await;
    let (s2, b2) = anon.post("/auth/password/forgot", json!({"email": "nobody@example.com"})).await;
    assert_eq!((s1, &b1), (s2, &b2));
    assert_eq!(s1, 202);
    let reset = token(&env.smtp, "ada@example.com", "/reset-password", 2).await;
    assert!(env.smtp.messages_to("nobody@example.com").is_empty());
    let (s, b) = anon.post("/auth/password/reset", json!({"token": reset, "new_password": "short"})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("VALIDATION_FAILED")));
    // The refused password left the token usable; the reset ends ada's session.
    assert_eq!(anon.post("/auth/password/reset", json!({"token": reset, "new_password": PW2})).await.0, 204);
    wait_until("the old session to end", || async { ada.get("/auth/me").await.0 == 401 }).await;
    assert_eq!(anon.post("/auth/password/reset", json!({"token": reset, "new_password": PW})).await.0, 400);
    assert_eq!(anon.post("/auth/login", json!({"email": "ada@example.com", "password": PW})).await.0, 401);
    wait_mail(&env.smtp, "ada@example.com", 3, "reset from a link").await;

    // The mail server is down while a reset is asked for: the link arrives once it is back, once.
    env.smtp.stopped().await;
    assert_eq!(anon.post("/auth/password/forgot", json!({"email": "ada@example.com"})).await.0, 202);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(env.smtp.messages_to("ada@example.com").len(), 3, "nothing sent while the server is down");
    env.smtp.restart().await;
    let late = token(&env.smtp, "ada@example.com", "/reset-password", 4).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.smtp.messages_to("ada@example.com").len(), 4, "the late link arrived exactly once");
    assert_ne!(late, reset);

    // Change of address, signed in: a link to the new address, a notice to the old one.
    let ada = Browser::new(&url);
    assert_eq!(ada.post("/auth/login", json!({"email": "ada@example.com", "password": PW2})).await.0, 200);
    let (s, b) = ada.post("/auth/email/change", json!({"new_email": "ada@new.example", "current_password": PW})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("INVALID_CREDENTIALS")));
    let (s, _) = ada.post("/auth/email/change", json!({"new_email": "ada@new.example", "current_password": PW2})).await;
    assert_eq!(s, 202);
    let change = token(&env.smtp, "ada@new.example", "/confirm-email", 1).await;
    wait_mail(&env.smtp, "ada@example.com", 5, "a***@new.example").await;
    // A reset link cannot confirm a change, and a change link cannot reset.
    assert_eq!(anon.post("/auth/email/change/confirm", json!({"token": late})).await.0, 400);
    assert_eq!(anon.post("/auth/password/reset", json!({"token": change, "new_password": PW})).await.0, 400);
    assert_eq!(anon.post("/auth/email/change/confirm", json!({"token": change})).await.0, 204);
    wait_mail(&env.smtp, "ada@example.com", 6, "is now").await;
    // The address moved: the reset link sent to the old one is void, sign-in is by the new one.
    assert_eq!(anon.post("/auth/password/reset", json!({"token": late, "new_password": PW})).await.0, 400);
    assert_eq!(anon.post("/auth/login", json!({"email": "ada@example.com", "password": PW2})).await.0, 401);
    assert_eq!(anon.post("/auth/login", json!({"email": "ada@new.example", "password": PW2})).await.0, 200);
    wait_until("me to show the new address", || async { ada.get("/auth/me").await.1["email"] == "ada@new.example" })
        .await;

    // Each step is in the audit log once, as ada's own.
    let db = fafnir_core::Db::connect(&env.auth_db).await.unwrap();
    let ada_id: String =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'ada@new.example'").fetch_one(db.pool()).await.unwrap();
    for (kind, n) in [("email_verified", 1), ("password_reset", 1), ("email_changed", 1)] {
        wait_until(&format!("{kind} in the audit log"), || async {
            let c: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM audit_events WHERE type = $1 AND subject_id = $2 AND actor_id = $2",
            )
            .bind(kind)
            .bind(&ada_id)
            .fetch_one(db.pool())
            .await
            .unwrap();
            c == n
        })
        .await;
    }
    db.close().await;

    // GraphQL mirrors the flows (through the same REST rules).
    let r = anon.graphql("mutation($e: String!) { forgotPassword(email: $e) }", json!({"e": "ada@new.example"})).await;
    assert_eq!(r["data"]["forgotPassword"], true, "{r}");
    let t = token(&env.smtp, "ada@new.example", "/reset-password", 2).await;
    let r = anon
        .graphql(
            "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) }",
            json!({"i": {"token": t, "newPassword": PW}}),
        )
        .await;
    assert_eq!(r["data"]["resetPassword"], true, "{r}");
    let r = anon.graphql("mutation($t: String!) { verifyEmail(token: $t) }", json!({"t": t})).await;
    assert_eq!(r["errors"][0]["extensions"]["reason"], "TOKEN_INVALID", "{r}");

    // A display name trying to add a header is refused before anything is created or mailed
    // (and no user-typed value reaches a header: recipients are parsed addresses, subjects come
    // from the templates, display names never appear in mail).
    let (s, b) = anon
        .post(
            "/auth/register",
            json!({"email": "eve@example.com", "password": PW, "display_name": "Eve\r\nBcc: victim@example.com"}),
        )
        .await;
    assert_eq!((s, b["error"]["details"]["field"].as_str()), (422, Some("display_name")), "{b}");
    assert_eq!(anon.post("/auth/password/forgot", json!({"email": "eve@example.com"})).await.0, 202);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        env.smtp.messages_to("eve@example.com").is_empty() && env.smtp.messages_to("victim@example.com").is_empty()
    );

    // Asking again and again for one address is throttled: no flooding an inbox.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(anon.post("/auth/password/forgot", json!({"email": "flood@example.com"})).await.0);
    }
    assert_eq!(statuses, [202, 202, 202, 202, 202, 429]);
}

macro_rules! both_backends {
    ($name:ident, $serve:expr, $five:expr) => {
        mod $name {
            use super::*;

            mod sqlite {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn fafnir_serve() {
                    let db = TestDb::sqlite().await;
                    let mut env = super::super::fafnir_serve(&db, |_| {}).await;
                    $serve(&mut env).await;
                    env.shutdown().await;
                    db.cleanup().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn five_services() {
                    let dbs = [TestDb::sqlite().await, TestDb::sqlite().await, TestDb::sqlite().await];
                    let mut env = super::super::five_services([&dbs[0], &dbs[1], &dbs[2]]).await;
                    $five(&mut env).await;
                    env.shutdown().await;
                    for d in dbs {
                        d.cleanup().await;
                    }
                }
            }

            mod postgres {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn fafnir_serve() {
                    let Some(db) = TestDb::postgres(concat!(stringify!($name), "::fafnir_serve")).await else { return };
                    let mut env = super::super::fafnir_serve(&db, |_| {}).await;
                    $serve(&mut env).await;
                    env.shutdown().await;
                    db.cleanup().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn five_services() {
                    let name = concat!(stringify!($name), "::five_services");
                    let Some(a) = TestDb::postgres(name).await else { return };
                    let b = TestDb::postgres(name).await.unwrap();
                    let c = TestDb::postgres(name).await.unwrap();
                    let mut env = super::super::five_services([&a, &b, &c]).await;
                    $five(&mut env).await;
                    env.shutdown().await;
                    for d in [a, b, c] {
                        d.cleanup().await;
                    }
                }
            }
        }
    };
}

/// notification-service takes mail only with an internal token minted for it: not the internal
/// token the other services accept, not a user's token.
async fn notification_service_takes_only_its_own_tokens(env: &mut Env) {
    use fafnir_proto::events::{internal_token, internal_token_to};
    let (mail_url, mut auth_cfg) = env.notification.clone().unwrap();
    auth_cfg.http_addr = addr(0);
    let auth = fafnir_server::stack::open_auth_service(auth_cfg).await.unwrap();
    let aud = auth.auth.config().token_audience();
    let generic = internal_token(&auth.keys, auth.clock.as_ref(), &aud).unwrap();
    let own = internal_token_to(&auth.keys, auth.clock.as_ref(), &aud.internal_for("notification")).unwrap();
    let http = reqwest::Client::new();
    let msg = json!({"to": "ops@example.com", "subject": "hi", "text": "hello", "html": "<p>hello</p>"});
    let send = |token: String| http.post(format!("{mail_url}/internal/mail")).bearer_auth(token).json(&msg).send();
    assert_eq!(send(generic).await.unwrap().status(), 401);
    assert_eq!(http.post(format!("{mail_url}/internal/mail")).json(&msg).send().await.unwrap().status(), 401);
    // Refused before the body is read: an anonymous caller learns nothing from it.
    let r = http.post(format!("{mail_url}/internal/mail")).body("not json").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(send(own).await.unwrap().status(), 204);
    wait_until("the mail", || async { env.smtp.messages_to("ops@example.com").len() == 1 }).await;
    auth.db.close().await;
}

both_backends!(verify_reset_and_change_of_address, flows, flows);

mod notification_tokens {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        let dbs = [TestDb::sqlite().await, TestDb::sqlite().await, TestDb::sqlite().await];
        let mut env = five_services([&dbs[0], &dbs[1], &dbs[2]]).await;
        notification_service_takes_only_its_own_tokens(&mut env).await;
        env.shutdown().await;
        for d in dbs {
            d.cleanup().await;
        }
    }
}

/// `FAFNIR_REQUIRE_VERIFIED_EMAIL`: an unverified account cannot sign in (403 only after the
/// right password), asks for a new link without a session, and signs in once verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unverified_accounts_cannot_sign_in_when_required() {
    let db = TestDb::sqlite().await;
    let env = fafnir_serve(&db, |c| c.require_verified_email = true).await;
    let anon = Browser::new(&env.url);
    assert_eq!(anon.post("/auth/register", json!({"email": "bob@example.com", "password": PW})).await.0, 201);
    let (s, b) = anon.post("/auth/login", json!({"email": "bob@example.com", "password": PW})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("EMAIL_NOT_VERIFIED")), "{b}");
    let (s, b) = anon.post("/auth/login", json!({"email": "bob@example.com", "password": "wrong password!"})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("INVALID_CREDENTIALS")), "a wrong password tells nothing");
    token(&env.smtp, "bob@example.com", "/verify-email", 1).await;
    // A new link without a session; unknown addresses get the same answer.
    let (s1, b1) = anon.post("/auth/email/verify/request", json!({"email": "bob@example.com"})).await;
    let (s2, b2) = anon.post("/auth/email/verify/request", json!({"email": "nobody@example.com"})).await;
    assert_eq!((s1, &b1), (s2, &b2));
    assert_eq!(s1, 202);
    assert_eq!(anon.post("/auth/email/verify/request", json!({})).await.0, 401);
    let fresh = token(&env.smtp, "bob@example.com", "/verify-email", 2).await;
    assert_eq!(anon.post("/auth/email/verify", json!({"token": fresh})).await.0, 204);
    assert_eq!(anon.post("/auth/login", json!({"email": "bob@example.com", "password": PW})).await.0, 200);
    let form = [("grant_type", "password"), ("username", "bob@example.com"), ("password", PW)];
    let res = reqwest::Client::new().post(format!("{}/auth/token", env.url)).form(&form).send().await.unwrap();
    assert_eq!(res.status(), 200);
    env.shutdown().await;
    db.cleanup().await;
}
