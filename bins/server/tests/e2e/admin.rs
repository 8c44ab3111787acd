//! Account lifecycle, administration and the audit log over real HTTP, in `fafnir serve` and in
//! microservice mode (auth-service asking security-service for permissions, and deletions
//! reaching security-service's and user-service's databases), on both backends.

use std::time::Duration;

use axum::Router;
use fafnir_core::testing::TestDb;
use fafnir_core::{Config, Db, UserId};
use serde_json::{json, Value};

use crate::common::{addr, port, spawn, tokens, wait_until, Running};
use crate::graphql::make_admin;

const PW: &str = "correct horse battery staple";

struct Env {
    /// auth's REST base (fafnir serve, or auth-service).
    url: String,
    /// Where roles live, and where profiles live.
    rbac_db: String,
    users_db: String,
    /// auth's own database.
    auth_db: String,
    /// Where `/graphql` answers (fafnir serve, or api-gateway).
    graphql: String,
    /// Where SecurityService answers gRPC.
    grpc: String,
    services: Vec<Running>,
}

async fn ready(url: &str) {
    let http = reqwest::Client::new();
    wait_until(url, || async { http.get(url).send().await.is_ok_and(|r| r.status().is_success()) }).await;
}

async fn fafnir_serve(db: &TestDb) -> Env {
    let p = port();
    let cfg = Config {
        database_url: db.url.clone(),
        http_addr: addr(p),
        grpc_addr: addr(port()),
        cookie_secure: false,
        log: "warn".into(),
        ..Config::default()
    };
    let grpc = format!("http://{}", cfg.grpc_addr);
    let server = spawn(|s| fafnir_server::run_all_in_one(cfg, Router::new(), s));
    let url = format!("http://127.0.0.1:{p}");
    ready(&format!("{url}/readyz")).await;
    Env {
        graphql: url.clone(),
        grpc,
        url,
        rbac_db: db.url.clone(),
        users_db: db.url.clone(),
        auth_db: db.url.clone(),
        services: vec![server],
    }
}

async fn three_services(dbs: [&TestDb; 3]) -> Env {
    let (auth_p, sec_p, sec_http, usr_p, usr_http, gw_p) = (port(), port(), port(), port(), port(), port());
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
    let security = spawn(|s| fafnir_server::run_security_service(sec_cfg, s));
    let users = spawn(|s| fafnir_server::run_user_service(usr_cfg, s));
    let auth = spawn(|s| fafnir_server::run_auth_service(auth_cfg, s));
    ready(&format!("{auth_url}/readyz")).await;
    ready(&format!("http://127.0.0.1:{usr_http}/readyz")).await;
    let gw_cfg = Config { http_addr: addr(gw_p), ..base(dbs[0]) };
    let gateway = spawn(|s| fafnir_server::run_api_gateway(gw_cfg, s));
    let graphql = format!("http://127.0.0.1:{gw_p}");
    ready(&format!("{graphql}/readyz")).await;
    Env {
        graphql,
        grpc: format!("http://127.0.0.1:{sec_p}"),
        url: auth_url,
        rbac_db: dbs[1].url.clone(),
        users_db: dbs[2].url.clone(),
        auth_db: dbs[0].url.clone(),
        services: vec![gateway, auth, users, security],
    }
}

struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(token), None).await
    }

    async fn login(&self, email: &str, password: &str) -> (u16, Value) {
        self.call(reqwest::Method::POST, "/auth/login", None, Some(json!({"email": email, "password": password}))).await
    }

    async fn register(&self, email: &str) -> UserId {
        let (s, b) = self
            .call(reqwest::Method::POST, "/auth/register", None, Some(json!({"email": email, "password": PW})))
            .await;
        assert_eq!(s, 201, "{b}");
        UserId::parse(b["user"]["id"].as_str().unwrap()).unwrap()
    }
}

async fn count(db_url: &str, sql: &str, id: UserId) -> i64 {
    let db = Db::connect(db_url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).bind(id.to_string()).fetch_one(db.pool()).await.unwrap();
    db.close().await;
    n
}

/// Events of `kind` about `subject` in the audit log, as the admin API lists them, once there
/// are at least `n` (events are stored in the background, just after the request).
async fn events_n(api: &Api, admin: &str, kind: &str, subject: UserId, n: usize) -> Vec<Value> {
    let list = || async {
        let (s, b) = api.get(&format!("/admin/audit?type={kind}&subject={subject}&first=100"), admin).await;
        assert_eq!(s, 200, "{b}");
        b["events"].as_array().unwrap().clone()
    };
    wait_until(&format!("{n} {kind} events"), || async { list().await.len() >= n }).await;
    list().await
}

async fn events(api: &Api, admin: &str, kind: &str, subject: UserId) -> Vec<Value> {
    events_n(api, admin, kind, subject, 1).await
}

async fn lifecycle(env: &Env) {
    let api = Api { http: reqwest::Client::new(), url: env.url.clone() };
    let root = api.register("root@example.com").await;
    let bob = api.register("bob@example.com").await;
    let carol = api.register("carol@example.com").await;
    make_admin(&env.rbac_db, root).await;
    let (admin, _) = tokens(&env.url, "root@example.com", PW).await;
    let (bob_t, _) = tokens(&env.url, "bob@example.com", PW).await;
    wait_until("the admin grant to reach auth", || async { api.get("/admin/users", &admin).await.0 == 200 }).await;

    // Non-admins are refused every administration operation.
    for (m, path) in [
        ("GET", "/admin/users".to_owned()),
        ("GET", "/admin/audit".to_owned()),
        ("POST", format!("/admin/users/{carol}/disable")),
        ("POST", format!("/admin/users/{carol}/enable")),
        ("POST", format!("/admin/users/{carol}/unlock")),
        ("POST", format!("/admin/users/{carol}/revoke-sessions")),
        ("POST", format!("/admin/users/{carol}/send-password-reset")),
        ("DELETE", format!("/admin/users/{carol}")),
    ] {
        let (s, b) = api.call(m.parse().unwrap(), &path, Some(&bob_t), None).await;
        assert_eq!((s, b["error"]["code"].as_str()), (403, Some("FORBIDDEN")), "{m} {path}: {b}");
    }
    assert_eq!(api.get("/admin/users", "not-a-token").await.0, 401);

    // The list: by prefix, with roles, state and last sign-in.
    let (s, b) = api.get("/admin/users?query=bo", &admin).await;
    assert_eq!(s, 200, "{b}");
    let users = b["users"].as_array().unwrap();
    assert_eq!(users.len(), 1, "{b}");
    assert_eq!(users[0]["email"], "bob@example.com");
    assert_eq!(users[0]["state"], "active");
    assert_eq!(users[0]["roles"], json!(["member"]));
    wait_until("bob's sign-in time", || async {
        !api.get("/admin/users?query=bo", &admin).await.1["users"][0]["last_sign_in_at"].is_null()
    })
    .await;
    let (_, page) = api.get("/admin/users?first=2", &admin).await;
    assert_eq!(page["users"].as_array().unwrap().len(), 2);
    let next = page["next"].as_str().unwrap().to_owned();
    let (_, rest) = api.get(&format!("/admin/users?first=2&after={next}"), &admin).await;
    assert_eq!(rest["users"].as_array().unwrap().len(), 1, "three accounts in all: {rest}");
    assert_eq!(api.get("/admin/users?role=admin", &admin).await.1["users"][0]["email"], "root@example.com");
    assert_eq!(api.get("/admin/users?state=sleeping", &admin).await.0, 422);

    // Disable: the session ends at once, sign-in answers 403 (only after the right password).
    let (s, b) = api.post(&format!("/admin/users/{bob}/disable"), &admin).await;
    assert_eq!((s, &b["changed"]), (200, &json!(true)), "{b}");
    wait_until("bob's session to end", || async { api.get("/auth/me", &bob_t).await.0 == 401 }).await;
    // On gRPC too, within the session-check lag.
    let ch = tonic::transport::Channel::from_shared(env.grpc.clone()).unwrap().connect_lazy();
    let mut sec = fafnir_proto::security::v1::security_service_client::SecurityServiceClient::new(ch);
    wait_until("bob's token to be refused over gRPC", || {
        let (mut sec, t) = (sec.clone(), bob_t.clone());
        async move {
            let mut r = tonic::Request::new(fafnir_proto::security::v1::GetUserRolesRequest::default());
            r.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
            matches!(sec.get_user_roles(r).await, Err(st) if st.code() == tonic::Code::Unauthenticated)
        }
    })
    .await;
    let _ = &mut sec;
    let (s, b) = api.login("bob@example.com", PW).await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("ACCOUNT_DISABLED")), "{b}");
    assert_eq!(api.login("bob@example.com", "wrong password!").await.0, 401);
    assert_eq!(api.get("/admin/users?state=disabled", &admin).await.1["users"][0]["email"], "bob@example.com");
    assert_eq!(api.post(&format!("/admin/users/{bob}/disable"), &admin).await.1["changed"], false);
    assert_eq!(api.post(&format!("/admin/users/{root}/disable"), &admin).await.0, 409, "not oneself");
    assert_eq!(api.post(&format!("/admin/users/{bob}/enable"), &admin).await.1["changed"], true);
    let (s, _) = api.login("bob@example.com", PW).await;
    assert_eq!(s, 200);

    // A password change, a logout and a refresh-token replay are audited for the account.
    let (bob_t, _) = tokens(&env.url, "bob@example.com", PW).await;
    let body = json!({"current_password": PW, "new_password": "another long passphrase"});
    assert_eq!(api.call(reqwest::Method::POST, "/auth/password", Some(&bob_t), Some(body)).await.0, 204);
    let body = json!({"current_password": "another long passphrase", "new_password": PW});
    assert_eq!(api.call(reqwest::Method::POST, "/auth/password", Some(&bob_t), Some(body)).await.0, 204);
    let api_ref = &api;
    let refresh = |t: String| async move {
        let body = Some(json!({"refresh_token": t}));
        let (s, b) = api_ref.call(reqwest::Method::POST, "/auth/refresh", None, body).await;
        (s, b["refresh_token"].as_str().unwrap_or_default().to_owned())
    };
    let (_, r0) = tokens(&env.url, "bob@example.com", PW).await;
    let (_, r1) = refresh(r0.clone()).await;
    let (s, _) = refresh(r1).await;
    assert_eq!(s, 200);
    assert_eq!(refresh(r0).await.0, 401, "a replayed refresh token (outside the grace of the newest's parent)");
    assert_eq!(api.call(reqwest::Method::POST, "/auth/logout", Some(&bob_t), None).await.0, 204);

    // Unlock a throttle lock.
    for _ in 0..5 {
        assert_eq!(api.login("carol@example.com", "wrong password!").await.0, 401);
    }
    assert_eq!(api.login("carol@example.com", PW).await.0, 429);
    assert_eq!(api.post(&format!("/admin/users/{carol}/unlock"), &admin).await.1["changed"], true);
    assert_eq!(api.login("carol@example.com", PW).await.0, 200);

    // A reset link sent by an administrator (the owner chooses the password).
    let (s, b) = api.post(&format!("/admin/users/{carol}/send-password-reset"), &admin).await;
    assert_eq!(s, 202, "{b}");

    // Revoke sessions, then delete: gone from every store.
    let (carol_t, _) = tokens(&env.url, "carol@example.com", PW).await;
    assert_eq!(api.post(&format!("/admin/users/{carol}/revoke-sessions"), &admin).await.0, 200);
    wait_until("carol's session to end", || async { api.get("/auth/me", &carol_t).await.0 == 401 }).await;
    let (s, _) = api.call(reqwest::Method::DELETE, &format!("/admin/users/{carol}"), Some(&admin), None).await;
    assert_eq!(s, 204);
    assert_eq!(api.login("carol@example.com", PW).await.0, 401);
    assert_eq!(count(&env.auth_db, "SELECT COUNT(*) FROM users WHERE id = $1", carol).await, 0);
    wait_until("carol's roles and profile to go", || async {
        count(&env.rbac_db, "SELECT COUNT(*) FROM user_roles WHERE user_id = $1", carol).await == 0
            && count(&env.users_db, "SELECT COUNT(*) FROM profiles WHERE user_id = $1", carol).await == 0
    })
    .await;

    // Delete my account: the current password, then everything goes.
    let (bob_t, _) = tokens(&env.url, "bob@example.com", PW).await;
    let del = |pw: &str| {
        api.call(reqwest::Method::DELETE, "/auth/account", Some(&bob_t), Some(json!({"current_password": pw})))
    };
    assert_eq!(del("wrong password!").await.0, 401);
    assert_eq!(del(PW).await.0, 204);
    assert_eq!(api.get("/auth/me", &bob_t).await.0, 401);
    assert_eq!(api.login("bob@example.com", PW).await.0, 401);
    wait_until("bob's roles and profile to go", || async {
        count(&env.rbac_db, "SELECT COUNT(*) FROM user_roles WHERE user_id = $1", bob).await == 0
            && count(&env.users_db, "SELECT COUNT(*) FROM profiles WHERE user_id = $1", bob).await == 0
    })
    .await;

    // The audit log: each event once, with its actor and subject.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let once = |v: &[Value], what: &str| {
        assert_eq!(v.len(), 1, "{what}: {v:?}");
        v[0].clone()
    };
    let e = once(&events(&api, &admin, "account_disabled", bob).await, "account_disabled");
    assert_eq!(e["actor_id"], root.to_string());
    once(&events(&api, &admin, "account_enabled", bob).await, "account_enabled");
    let e = once(&events(&api, &admin, "account_unlocked", carol).await, "account_unlocked");
    assert_eq!(e["details"]["was_locked"], true);
    once(&events(&api, &admin, "account_locked", carol).await, "account_locked");
    once(&events(&api, &admin, "sessions_revoked", carol).await, "sessions_revoked");
    let e = once(&events(&api, &admin, "access_denied", bob).await, "access_denied (once a minute for eight refusals)");
    assert_eq!(
        (e["actor_id"].as_str(), e["details"]["permission"].as_str()),
        (Some(bob.to_string().as_str()), Some("users:manage"))
    );
    let e = once(&events(&api, &admin, "password_reset_link_sent", carol).await, "password_reset_link_sent");
    assert_eq!(e["actor_id"], root.to_string());
    let e = once(&events(&api, &admin, "account_deleted", carol).await, "account_deleted (admin)");
    assert_eq!(e["actor_id"], root.to_string());
    let e = once(&events(&api, &admin, "account_deleted", bob).await, "account_deleted (own)");
    assert_eq!(e["actor_id"], bob.to_string());
    assert_eq!(events_n(&api, &admin, "password_changed", bob, 2).await.len(), 2);
    once(&events(&api, &admin, "refresh_reuse_detected", bob).await, "refresh_reuse_detected");
    let e = once(&events(&api, &admin, "logout", bob).await, "logout");
    assert_eq!(e["actor_id"], bob.to_string());
    let failed = events(&api, &admin, "login_failed", bob).await;
    let reasons: Vec<&str> = failed.iter().filter_map(|e| e["details"]["reason"].as_str()).collect();
    assert!(reasons.contains(&"account_disabled") && reasons.contains(&"invalid_credentials"), "{reasons:?}");
    assert_eq!(
        events_n(&api, &admin, "login_failed", carol, 5).await.len(),
        5,
        "five wrong passwords, not the refusals"
    );
    assert!(!events(&api, &admin, "login_succeeded", root).await.is_empty());
    assert_eq!(api.get("/admin/audit?type=nonsense", &admin).await.0, 422);

    // A user sees their own sign-ins.
    let (s, b) = api.get("/auth/activity", &admin).await;
    assert_eq!(s, 200);
    assert!(b["events"].as_array().unwrap().iter().all(|e| e["subject_id"] == root.to_string()), "{b}");

    // GraphQL mirrors administration (through the same REST rules).
    let gql = |token: String, query: &str, variables: Value| {
        let http = api.http.clone();
        let url = format!("{}/graphql", env.graphql);
        let query = query.to_owned();
        async move {
            let res = http.post(url).bearer_auth(token).json(&json!({"query": query, "variables": variables})).send();
            res.await.unwrap().json::<Value>().await.unwrap()
        }
    };
    let dave = api.register("dave@example.com").await;
    let (dave_t, _) = tokens(&env.url, "dave@example.com", PW).await;
    let r =
        gql(admin.clone(), "{ adminUsers(query: \"da\") { users { id email state roles } next } }", json!({})).await;
    assert_eq!(r["data"]["adminUsers"]["users"][0]["email"], "dave@example.com", "{r}");
    let r = gql(dave_t.clone(), "{ adminUsers { users { id } } }", json!({})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN", "{r}");
    let r = gql(admin.clone(), "mutation($id: ID!) { disableUser(id: $id) }", json!({"id": dave.to_string()})).await;
    assert_eq!(r["data"]["disableUser"], true, "{r}");
    wait_until("dave's token to be refused by GraphQL", || async {
        let r = gql(dave_t.clone(), "{ me { user { id } } }", json!({})).await;
        r["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    })
    .await;
    let r = gql(admin.clone(), "mutation($id: ID!) { enableUser(id: $id) }", json!({"id": dave.to_string()})).await;
    assert_eq!(r["data"]["enableUser"], true, "{r}");
    events(&api, &admin, "account_enabled", dave).await;
    let r = gql(
        admin.clone(),
        "query($s: ID) { auditEvents(type: \"account_disabled,account_enabled\", subject: $s) { events { type actorId } } }",
        json!({"s": dave.to_string()}),
    )
    .await;
    assert_eq!(r["data"]["auditEvents"]["events"].as_array().map(Vec::len), Some(2), "{r}");
    assert_eq!(r["data"]["auditEvents"]["events"][0]["actorId"], root.to_string());
    // Role changes are audited where the roles live, with the administrator as the actor.
    for m in ["revokeRole", "assignRole"] {
        let q = format!("mutation($i: RoleAssignmentInput!) {{ {m}(input: $i) {{ changed }} }}");
        let r = gql(admin.clone(), &q, json!({"i": {"userId": dave.to_string(), "role": "member"}})).await;
        assert_eq!(r["data"][m]["changed"], true, "{r}");
    }
    let role_rows = || async {
        let db = Db::connect(&env.rbac_db).await.unwrap();
        let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
            "SELECT type, actor_id, details FROM audit_events WHERE subject_id = $1 AND type LIKE 'role_%' ORDER BY id",
        )
        .bind(dave.to_string())
        .fetch_all(db.pool())
        .await
        .unwrap();
        db.close().await;
        rows
    };
    wait_until("the role events", || async { role_rows().await.len() >= 2 }).await;
    let rows = role_rows().await;
    let kinds: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(kinds, ["role_revoked", "role_granted"], "{rows:?}");
    assert!(rows.iter().all(|r| r.1.as_deref() == Some(root.to_string().as_str()) && r.2.contains("member")));
    let (dave_t, _) = tokens(&env.url, "dave@example.com", PW).await;
    let r = gql(dave_t.clone(), "{ myActivity { events { type } } }", json!({})).await;
    assert!(!r["data"]["myActivity"]["events"].as_array().unwrap().is_empty(), "{r}");
    let r = gql(dave_t.clone(), "mutation { deleteAccount(currentPassword: \"wrong password!\") }", json!({})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{r}");
    let r = gql(dave_t.clone(), "mutation($p: String!) { deleteAccount(currentPassword: $p) }", json!({"p": PW})).await;
    assert_eq!(r["data"]["deleteAccount"], true, "{r}");
    assert_eq!(api.login("dave@example.com", PW).await.0, 401);

    // No secret ever reaches the audit log.
    let db = Db::connect(&env.auth_db).await.unwrap();
    let rows: Vec<(String, Option<String>, String)> =
        sqlx::query_as("SELECT type, user_agent, details FROM audit_events").fetch_all(db.pool()).await.unwrap();
    db.close().await;
    assert!(rows.len() > 10);
    let all = format!("{rows:?}");
    for secret in [PW, "wrong password!", admin.as_str(), bob_t.as_str(), carol_t.as_str(), dave_t.as_str()] {
        assert!(!all.contains(secret), "the audit log holds a secret");
    }
}

mod lifecycle {
    use super::*;

    mod sqlite {
        use super::*;

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn fafnir_serve() {
            let db = TestDb::sqlite().await;
            let env = super::super::fafnir_serve(&db).await;
            super::super::lifecycle(&env).await;
            for r in env.services {
                r.stop().await;
            }
            db.cleanup().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn three_services() {
            let dbs = [TestDb::sqlite().await, TestDb::sqlite().await, TestDb::sqlite().await];
            let env = super::super::three_services([&dbs[0], &dbs[1], &dbs[2]]).await;
            super::super::lifecycle(&env).await;
            for r in env.services {
                r.stop().await;
            }
            for d in dbs {
                d.cleanup().await;
            }
        }
    }

    mod postgres {
        use super::*;

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn fafnir_serve() {
            let Some(db) = TestDb::postgres("admin::fafnir_serve").await else { return };
            let env = super::super::fafnir_serve(&db).await;
            super::super::lifecycle(&env).await;
            for r in env.services {
                r.stop().await;
            }
            db.cleanup().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn three_services() {
            let Some(a) = TestDb::postgres("admin::three_services").await else { return };
            let b = TestDb::postgres("admin::three_services").await.unwrap();
            let c = TestDb::postgres("admin::three_services").await.unwrap();
            let env = super::super::three_services([&a, &b, &c]).await;
            super::super::lifecycle(&env).await;
            for r in env.services {
                r.stop().await;
            }
            for d in [a, b, c] {
                d.cleanup().await;
            }
        }
    }
}
