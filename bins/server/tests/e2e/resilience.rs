//! Faults the operator does not control: the database going away under load (on Postgres,
//! through a TCP proxy the test cuts and restores), and gRPC clients that hold connections
//! open across a shutdown.

use crate::common::{addr, port, spawn, tokens, wait_until};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use fafnir_core::testing::TestDb;
use fafnir_core::Config;
use fafnir_server::{bind, grpc, local_grpc, Limits, Stack};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

const PW: &str = "correct horse battery staple";

/// A TCP proxy in front of Postgres that the test can cut (every connection closed, new ones
/// refused at once, as when the database host goes away) and restore.
struct Proxy {
    port: u16,
    down: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (down, watch_down) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                if *watch_down.borrow() {
                    continue; // dropped: connection closed at once
                }
                let upstream = upstream.clone();
                let mut cut = watch_down.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|d| *d) => {}
                    }
                });
            }
        });
        Proxy { port, down }
    }

    fn cut(&self) {
        self.down.send_replace(true);
    }

    fn restore(&self) {
        self.down.send_replace(false);
    }
}

/// `postgres://user@host:port/db?…` with host:port replaced by the proxy's.
fn through(url: &str, port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, rest) = rest.rsplit_once('@').map(|(a, r)| (format!("{a}@"), r)).unwrap_or((String::new(), rest));
    let (hostport, path) = rest.split_once('/').unwrap();
    let hostport = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:5432") };
    (format!("{scheme}://{auth}127.0.0.1:{port}/{path}"), hostport)
}

/// An answer: status, error code, Retry-After, how long it took.
type Answer = (u16, String, Option<String>, Duration);

#[derive(Debug, Default)]
struct Seen {
    /// (request, answer) during the outage.
    outage: Vec<(&'static str, Answer)>,
    registered: Vec<String>,
}

async fn call(req: reqwest::RequestBuilder) -> Answer {
    let start = Instant::now();
    match req.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            let body: Value = res.json().await.unwrap_or(Value::Null);
            let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
            (status, code, retry, start.elapsed())
        }
        Err(e) => (0, e.to_string(), None, start.elapsed()),
    }
}

async fn database_outage_under_load() {
    let Some(t) = TestDb::postgres("database_outage_under_load_answers_503_promptly_and_recovers").await else {
        return;
    };
    let (proxied, upstream) = through(&t.url, 0);
    let proxy = Proxy::start(upstream).await;
    let (proxied, _) = through(&proxied, proxy.port);
    let (p, g) = (port(), port());
    let cfg = Config {
        database_url: proxied,
        http_addr: addr(p),
        grpc_addr: addr(g),
        cookie_secure: false,
        log: "error".into(),
        ..Config::default()
    };
    let server = spawn(|s| fafnir_server::run_all_in_one(cfg, Router::new(), s));
    let url = format!("http://127.0.0.1:{p}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    wait_until("the server", || async { http.get(format!("{url}/readyz")).send().await.is_ok() }).await;
    let res = http
        .post(format!("{url}/auth/register"))
        .json(&json!({"email": "ann@example.com", "password": PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let (token, _) = tokens(&url, "ann@example.com", PW).await;

    // Load: four workers reading `me`, logging in and registering, until told to stop.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (phase, phase_rx) = watch::channel(0u8); // 0 up, 1 outage, 2 stop
    let mut workers = Vec::new();
    for w in 0..4 {
        let (http, url, token, seen, phase) =
            (http.clone(), url.clone(), token.clone(), seen.clone(), phase_rx.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0;
            while *phase.borrow() < 2 {
                i += 1;
                let during = *phase.borrow() == 1;
                let (what, req) = match i % 3 {
                    0 => ("me", http.get(format!("{url}/auth/me")).bearer_auth(&token)),
                    1 => (
                        "login",
                        http.post(format!("{url}/auth/login"))
                            .json(&json!({"email": "ann@example.com", "password": PW})),
                    ),
                    _ => (
                        "register",
                        http.post(format!("{url}/auth/register"))
                            .json(&json!({"email": format!("w{w}n{i}@example.com"), "password": PW})),
                    ),
                };
                let r = call(req).await;
                // An answer that was started while up and finished during the cut is fine either
                // way; judge only requests sent well inside the outage.
                let still = *phase.borrow() == 1;
                {
                    let mut s = seen.lock().unwrap();
                    if r.0 == 201 {
                        s.registered.push(format!("w{w}n{i}@example.com"));
                    }
                    if during && still {
                        s.outage.push((what, r));
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await; // let in-flight requests settle
    phase.send_replace(1);
    // The other surfaces, during the outage.
    let gql: Value = http
        .post(format!("{url}/graphql"))
        .bearer_auth(&token)
        .json(&json!({"query": "{ me { user { email } } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await; // past every session cache
    let gql_later: Value = http
        .post(format!("{url}/graphql"))
        .bearer_auth(&token)
        .json(&json!({"query": "{ me { user { email } } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grpc_started = Instant::now();
    let ch = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{g}")).unwrap().connect_lazy();
    let mut req = tonic::Request::new(fafnir_proto::users::v1::GetProfileRequest::default());
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let grpc = fafnir_proto::users::v1::user_service_client::UserServiceClient::new(ch).get_profile(req).await;
    let grpc_took = grpc_started.elapsed();
    let ready = http.get(format!("{url}/readyz")).send().await.unwrap().status();
    tokio::time::sleep(Duration::from_secs(1)).await;
    phase.send_replace(0);

    proxy.restore();
    wait_until("recovery without a restart", || async {
        let r = call(http.get(format!("{url}/auth/me")).bearer_auth(&token)).await;
        r.0 == 200
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    phase.send_replace(2);
    for w in workers {
        w.await.unwrap();
    }

    // During the outage: prompt 503 SERVICE_UNAVAILABLE with Retry-After, never a 500 or a hang.
    // (`me` may still answer 200 from the session cache for its first two seconds.)
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let unavailable = seen.outage.iter().filter(|(_, r)| r.0 == 503).count();
    assert!(unavailable >= 8, "load ran during the outage: {unavailable} answers 503");
    for (what, (status, code, retry, took)) in &seen.outage {
        let cached = *what == "me" && *status == 200;
        if !cached {
            assert_eq!((*status, code.as_str()), (503, "SERVICE_UNAVAILABLE"), "{what}");
            assert!(retry.is_some(), "Retry-After on every 503");
        }
        assert!(*took < Duration::from_secs(3), "answered promptly, not after a long pool wait: {what} {took:?}");
    }
    let logins = seen.outage.iter().filter(|(w, r)| *w == "login" && r.0 == 503).count();
    assert!(logins >= 2, "logins (which always need the database) were refused: {logins}");
    let code = |v: &Value| v["errors"][0]["extensions"]["code"].as_str().map(str::to_owned);
    assert_eq!(code(&gql_later), Some("UNAVAILABLE".into()), "GraphQL: {gql_later} (first: {gql})");
    assert_eq!(grpc.unwrap_err().code(), tonic::Code::Unavailable, "gRPC");
    assert!(grpc_took < Duration::from_secs(3), "gRPC answered promptly: {grpc_took:?}");
    assert_eq!(ready, 503, "/readyz says so");

    // Nothing lost or duplicated: every registration answered 201 exists once, with its role
    // and profile (delivered through the outbox after the outage).
    let stack = Stack::open(Config { database_url: t.url.clone(), ..Config::default() }).await.unwrap();
    assert!(!seen.registered.is_empty());
    for email in &seen.registered {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email = $1")
            .bind(email)
            .fetch_one(stack.db.pool())
            .await
            .unwrap();
        assert_eq!(n, 1, "{email}");
    }
    wait_until("the outbox to drain", || async { stack.outbox.pending().await.unwrap() == 0 }).await;
    let orphans: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM profiles p WHERE p.user_id = u.id) \
         OR (SELECT COUNT(*) FROM user_roles r WHERE r.user_id = u.id) <> 1",
    )
    .fetch_one(stack.db.pool())
    .await
    .unwrap();
    assert_eq!(orphans, 0, "every account has exactly its member role and a profile");
    stack.db.close().await;
    server.stop().await;
    t.cleanup().await;
}

async fn grpc_clients_cannot_hold_up_shutdown(t: &TestDb) {
    let stack = Stack::open(Config { database_url: t.url.clone(), ..Config::default() }).await.unwrap();
    let limits = Limits::new(8, Duration::from_secs(1), Duration::from_secs(1));
    let listener = bind(addr(0)).await.unwrap();
    let at = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let limits = limits.clone();
        async move {
            grpc::serve_grpc_with(
                listener,
                local_grpc(&stack),
                async move {
                    let _ = stopped.await;
                },
                &limits,
            )
            .await
        }
    });
    // A client that never speaks is closed after the header-read timeout (it would otherwise
    // hold a place of the process's connection budget forever).
    let mut silent = tokio::net::TcpStream::connect(at).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match tokio::io::AsyncReadExt::read(&mut silent, &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a silent gRPC connection is closed");
    // One that sent the whole preface and then stalls stays open (it passed the check)…
    let mut stalled = tokio::net::TcpStream::connect(at).await.unwrap();
    stalled.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(limits.open_connections() >= 1, "{}", limits.open_connections());
    // … and cannot hold up the shutdown.
    let started = Instant::now();
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("shutdown is bounded").unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

/// Instances on one database: a user registered through one is served at once by the gRPC
/// services of another (no wait for its policy watcher).
async fn a_user_registered_elsewhere_works_at_once_over_grpc(t: &TestDb) {
    use fafnir_proto::security::v1 as sec;
    let cfg = || Config { database_url: t.url.clone(), ..Config::default() };
    let a = Stack::open(cfg()).await.unwrap();
    let b = Stack::open(cfg()).await.unwrap();
    let listener = bind(addr(0)).await.unwrap();
    let at = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(grpc::serve_grpc(listener, local_grpc(&b), async move {
        let _ = stopped.await;
    }));
    a.auth.register("new@example.com", PW, None).await.unwrap();
    let token = a.auth.login("new@example.com", PW, &Default::default()).await.unwrap().access_token;
    let with = |m| {
        let mut r = tonic::Request::new(m);
        r.metadata_mut().insert("authorization", format!("Bearer {}", token.expose()).parse().unwrap());
        r
    };
    let ch = tonic::transport::Channel::from_shared(format!("http://{at}")).unwrap().connect().await.unwrap();
    let mut s = sec::security_service_client::SecurityServiceClient::new(ch);
    let roles = s.get_user_roles(with(sec::GetUserRolesRequest::default())).await.unwrap().into_inner();
    assert_eq!(roles.roles, ["member"]);
    let check = sec::CheckPermissionRequest { user_id: String::new(), permission: "profile:write".into() };
    let mut r = tonic::Request::new(check);
    r.metadata_mut().insert("authorization", format!("Bearer {}", token.expose()).parse().unwrap());
    assert!(s.check_permission(r).await.unwrap().into_inner().has_permission);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_user_registered_elsewhere_works_at_once_over_grpc() {
        let t = super::TestDb::sqlite().await;
        super::a_user_registered_elsewhere_works_at_once_over_grpc(&t).await;
        t.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn grpc_clients_cannot_hold_up_shutdown() {
        let t = super::TestDb::sqlite().await;
        super::grpc_clients_cannot_hold_up_shutdown(&t).await;
        t.cleanup().await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_user_registered_elsewhere_works_at_once_over_grpc() {
        let Some(t) = super::TestDb::postgres("a_user_registered_elsewhere_works_at_once_over_grpc").await else {
            return;
        };
        super::a_user_registered_elsewhere_works_at_once_over_grpc(&t).await;
        t.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn grpc_clients_cannot_hold_up_shutdown() {
        let Some(t) = super::TestDb::postgres("grpc_clients_cannot_hold_up_shutdown").await else { return };
        super::grpc_clients_cannot_hold_up_shutdown(&t).await;
        t.cleanup().await;
    }

    /// Postgres only: an outage of an embedded SQLite file is not a thing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn database_outage_under_load_answers_503_promptly_and_recovers() {
        super::database_outage_under_load().await;
    }
}
