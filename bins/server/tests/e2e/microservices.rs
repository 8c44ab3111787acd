//! Microservice mode: auth-service, security-service and user-service as three servers with
//! three databases. A user registered while user-service is down gets the `member` role at
//! once and an empty profile once user-service is back (the outbox keeps retrying); deleting the
//! user reaches both services the same way.

use crate::common::{addr, port, spawn, tokens, wait_until};

use fafnir_core::testing::TestDb;
use fafnir_core::Config;
use fafnir_proto::security::v1 as sec;
use fafnir_proto::security::v1::security_service_client::SecurityServiceClient;
use fafnir_proto::users::v1 as usr;
use fafnir_proto::users::v1::user_service_client::UserServiceClient;
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic::{Code, Request};

const PW: &str = "correct horse battery staple";

fn req<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

async fn three_services(dbs: [&TestDb; 3]) {
    let (auth_p, sec_p, sec_http, usr_p, usr_http) = (port(), port(), port(), port(), port());
    let auth_url = format!("http://127.0.0.1:{auth_p}");
    let base = |db: &TestDb| Config {
        database_url: db.url.clone(),
        cookie_secure: false,
        auth_url: Some(auth_url.clone()),
        security_url: Some(format!("http://127.0.0.1:{sec_p}")),
        users_url: Some(format!("http://127.0.0.1:{usr_p}")),
        log: "warn".into(),
        ..Config::default()
    };
    let auth_cfg = Config { http_addr: addr(auth_p), ..base(dbs[0]) };
    let sec_cfg = Config { grpc_addr: addr(sec_p), http_addr: addr(sec_http), ..base(dbs[1]) };
    let usr_cfg = Config { grpc_addr: addr(usr_p), http_addr: addr(usr_http), ..base(dbs[2]) };

    let security = spawn(|s| fafnir_server::run_security_service(sec_cfg.clone(), s));
    let users = spawn(|s| fafnir_server::run_user_service(usr_cfg.clone(), s));
    let auth = spawn(|s| fafnir_server::run_auth_service(auth_cfg.clone(), s));
    let http = reqwest::Client::new();
    wait_until("auth-service", || async { http.get(format!("{auth_url}/healthz")).send().await.is_ok() }).await;
    wait_until("user-service", || async {
        http.get(format!("http://127.0.0.1:{usr_http}/readyz")).send().await.is_ok()
    })
    .await;

    // user-service goes down; a user registers.
    users.stop().await;
    let res = http
        .post(format!("{auth_url}/auth/register"))
        .json(&json!({"email": "ada@example.com", "password": PW, "display_name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let (token, _) = tokens(&auth_url, "ada@example.com", PW).await;

    // security-service got the event at once: the user is a member, and auth-service's /auth/me
    // asks security-service for the roles.
    let sec_ch = Channel::from_shared(format!("http://127.0.0.1:{sec_p}")).unwrap().connect_lazy();
    let mut s = SecurityServiceClient::new(sec_ch);
    let roles = s.get_user_roles(req(sec::GetUserRolesRequest::default(), &token)).await.unwrap().into_inner();
    assert_eq!(roles.roles, ["member"]);
    let me: Value =
        http.get(format!("{auth_url}/auth/me")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["roles"], json!(["member"]));

    // user-service comes back; the profile appears without anyone asking again.
    let users = spawn(|s| fafnir_server::run_user_service(usr_cfg.clone(), s));
    let usr_ch = Channel::from_shared(format!("http://127.0.0.1:{usr_p}")).unwrap().connect_lazy();
    let u = UserServiceClient::new(usr_ch);
    wait_until("the profile to reach the restarted user-service", || {
        let (mut u, token) = (u.clone(), token.clone());
        async move { u.get_profile(req(usr::GetProfileRequest::default(), &token)).await.is_ok() }
    })
    .await;
    let p = u
        .clone()
        .get_profile(req(usr::GetProfileRequest::default(), &token))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!(p.display_name, "Ada");

    // Deleting the account (from another auth instance on auth-service's database) reaches both.
    let mut cfg = auth_cfg.clone();
    cfg.http_addr = addr(0);
    let admin = fafnir_server::stack::open_auth_service(cfg).await.unwrap();
    let account = admin.auth.user_by_email("ada@example.com").await.unwrap();
    admin.auth.delete_user(account.id).await.unwrap();
    wait_until("the deletion to reach user-service", || {
        let mut u = u.clone();
        let id = account.id.to_string();
        let token = token.clone();
        async move {
            // The user's token still verifies (it is stateless) but their profile is gone.
            matches!(u.get_profile(req(usr::GetProfileRequest { user_id: id }, &token)).await, Err(st) if st.code() == Code::NotFound)
        }
    })
    .await;
    let r = s.get_user_roles(req(sec::GetUserRolesRequest::default(), &token)).await;
    assert_eq!(r.unwrap_err().code(), Code::NotFound, "security-service forgot the user");
    assert_eq!(admin.outbox.pending().await.unwrap(), 0);
    admin.db.close().await;

    users.stop().await;
    auth.stop().await;
    security.stop().await;
}

/// A service told a different issuer than auth-service's: refused at start with both values
/// named when auth-service answers; when auth-service was down at start, `/readyz` says not
/// ready (first why: auth-service not answering, then the mismatch with both values).
async fn a_disagreeing_issuer_is_named(dbs: [&TestDb; 3]) {
    let (auth_p, sec_p, sec_http, usr_p, usr_http) = (port(), port(), port(), port(), port());
    let auth_url = format!("http://127.0.0.1:{auth_p}");
    let base = |db: &TestDb| Config {
        database_url: db.url.clone(),
        cookie_secure: false,
        auth_url: Some(auth_url.clone()),
        security_url: Some(format!("http://127.0.0.1:{sec_p}")),
        users_url: Some(format!("http://127.0.0.1:{usr_p}")),
        log: "error".into(),
        ..Config::default()
    };
    let wrong = Some("https://wrong.example".to_owned());
    let http = reqwest::Client::new();

    // auth-service down: user-service starts anyway, not ready, saying why.
    let usr_cfg = Config { grpc_addr: addr(usr_p), http_addr: addr(usr_http), issuer: wrong.clone(), ..base(dbs[2]) };
    let users = spawn(|s| fafnir_server::run_user_service(usr_cfg, s));
    let ready = format!("http://127.0.0.1:{usr_http}/readyz");
    wait_until("user-service to listen", || async { http.get(&ready).send().await.is_ok() }).await;
    let res = http.get(&ready).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body = res.text().await.unwrap();
    assert!(body.contains("auth-service") && body.contains("metadata"), "{body}");

    // auth-service comes up with its public URL as issuer: the mismatch, with both values.
    let public = format!("http://127.0.0.1:{auth_p}");
    let auth_cfg = Config { http_addr: addr(auth_p), public_url: Some(public.clone()), ..base(dbs[0]) };
    let auth = spawn(|s| fafnir_server::run_auth_service(auth_cfg, s));
    wait_until("user-service to name the mismatch", || async {
        let body = http.get(&ready).send().await.unwrap().text().await.unwrap();
        body.contains("mismatch") && body.contains("https://wrong.example") && body.contains(&format!("`{public}`"))
    })
    .await;

    // auth-service's deliveries to it are refused, and the reason it records names both values.
    let auth_db = fafnir_core::Db::connect(&dbs[0].url).await.unwrap();
    wait_until("a delivery to be refused with the reason", || async {
        http.post(format!("{auth_url}/auth/register"))
            .json(&json!({"email": format!("x{}@example.com", port()), "password": PW}))
            .send()
            .await
            .unwrap();
        let errors: Vec<Option<String>> =
            sqlx::query_scalar("SELECT last_error FROM outbox WHERE subscriber = 'users' AND delivered_at IS NULL")
                .fetch_all(auth_db.pool())
                .await
                .unwrap();
        errors.iter().flatten().any(|e| e.contains("https://wrong.example") && e.contains(&format!("`{public}`")))
    })
    .await;
    auth_db.close().await;

    // With auth-service answering, a disagreeing service does not start at all.
    let sec_cfg = Config { grpc_addr: addr(sec_p), http_addr: addr(sec_http), issuer: wrong, ..base(dbs[1]) };
    let err = fafnir_server::run_security_service(sec_cfg, fafnir_server::Shutdown::on(std::future::pending()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("https://wrong.example") && err.contains(&public), "{err}");

    // Told nothing, security-service learns the issuer and is ready.
    let sec_cfg = Config { grpc_addr: addr(sec_p), http_addr: addr(sec_http), ..base(dbs[1]) };
    let security = spawn(|s| fafnir_server::run_security_service(sec_cfg, s));
    let sec_ready = format!("http://127.0.0.1:{sec_http}/readyz");
    wait_until("security-service to be ready", || async {
        http.get(&sec_ready).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;

    // A gateway whose browser settings differ from auth-service's (here: Secure cookies and no
    // public URL) is refused at start, with both sides named.
    let gw_cfg = Config { http_addr: addr(port()), cookie_secure: true, ..base(dbs[1]) };
    let err = fafnir_server::run_api_gateway(gw_cfg, fafnir_server::Shutdown::on(std::future::pending()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("browser settings differ") && err.contains(&public), "{err}");

    users.stop().await;
    security.stop().await;
    auth.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_disagreeing_issuer_is_named() {
    let dbs = [TestDb::sqlite().await, TestDb::sqlite().await, TestDb::sqlite().await];
    a_disagreeing_issuer_is_named([&dbs[0], &dbs[1], &dbs[2]]).await;
    for d in dbs {
        d.cleanup().await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_disagreeing_issuer_is_named() {
        let Some(a) = super::TestDb::postgres("a_disagreeing_issuer_is_named").await else { return };
        let b = super::TestDb::postgres("a_disagreeing_issuer_is_named").await.unwrap();
        let c = super::TestDb::postgres("a_disagreeing_issuer_is_named").await.unwrap();
        super::a_disagreeing_issuer_is_named([&a, &b, &c]).await;
        for d in [a, b, c] {
            d.cleanup().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_three_services_three_databases() {
    let dbs = [TestDb::sqlite().await, TestDb::sqlite().await, TestDb::sqlite().await];
    three_services([&dbs[0], &dbs[1], &dbs[2]]).await;
    for d in dbs {
        d.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_three_services_three_databases() {
    let Some(a) = TestDb::postgres("three_services").await else { return };
    let b = TestDb::postgres("three_services").await.unwrap();
    let c = TestDb::postgres("three_services").await.unwrap();
    three_services([&a, &b, &c]).await;
    for d in [a, b, c] {
        d.cleanup().await;
    }
}
