//! Three `fafnir serve` instances on one Postgres database, as a scaled-out deployment runs
//! them (each with its own caches; only the database is shared). Each behaviour is compared with
//! what one instance does, and the lags are measured and printed (`cargo test … -- --nocapture`)
//! and checked against the bounds docs/operations.md promises:
//! - a session revoked on one instance is refused by the other two within 2 s (the session
//!   cache's lifetime), plus a poll's slack;
//! - the login throttle counts attempts made on all three together;
//! - a role granted through one instance is seen by the others' checks within 3 s (the policy
//!   watcher polls every second; `me` caches accounts for 2 s);
//! - one refresh token presented to two instances at once: both answers are grace-window
//!   siblings, as on one instance; once the window has passed, presenting it again is reuse,
//!   and the whole family ends;
//! - one e-mail registered on all three at once: one account.

use std::time::{Duration, Instant};

use axum::Router;
use fafnir_core::testing::TestDb;
use fafnir_core::Config;
use serde_json::{json, Value};

use crate::common::{addr, port, spawn, tokens, wait_until, Running};

const PW: &str = "correct horse battery staple";

struct Instances {
    urls: Vec<String>,
    running: Vec<Running>,
    http: reqwest::Client,
}

async fn three(db: &TestDb) -> Instances {
    let http = reqwest::Client::new();
    let mut urls = Vec::new();
    let mut running = Vec::new();
    for _ in 0..3 {
        let p = port();
        let cfg = Config {
            database_url: db.url.clone(),
            http_addr: addr(p),
            grpc_addr: addr(port()),
            cookie_secure: false,
            log: "warn".into(),
            ..Config::default()
        };
        running.push(spawn(|s| fafnir_server::run_all_in_one(cfg, Router::new(), s)));
        let url = format!("http://127.0.0.1:{p}");
        let ready = format!("{url}/readyz");
        wait_until(&ready, || async { http.get(&ready).send().await.is_ok_and(|r| r.status().is_success()) }).await;
        urls.push(url);
    }
    Instances { urls, running, http }
}

impl Instances {
    async fn post(&self, i: usize, path: &str, body: Value) -> (u16, Value) {
        let res = self.http.post(format!("{}{path}", self.urls[i])).json(&body).send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }

    async fn me(&self, i: usize, access: &str) -> (u16, Value) {
        let res = self.http.get(format!("{}/auth/me", self.urls[i])).bearer_auth(access).send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }

    async fn register(&self, i: usize, email: &str) -> u16 {
        self.post(i, "/auth/register", json!({"email": email, "password": PW})).await.0
    }

    async fn stop(self) {
        for r in self.running {
            r.stop().await;
        }
    }
}

/// Polls `done` every 20 ms until it holds; the time since `start` (the change it waits for).
async fn lag<F, Fut>(what: &str, start: Instant, bound: Duration, mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if done().await {
            let took = start.elapsed();
            eprintln!("scale-out figure: {what}: {} ms", took.as_millis());
            return took;
        }
        assert!(start.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_revoked_session_is_refused_everywhere(s: &Instances) {
    assert_eq!(s.register(0, "rev@example.com").await, 201);
    let (access, refresh) = tokens(&s.urls[0], "rev@example.com", PW).await;
    for i in 0..3 {
        assert_eq!(s.me(i, &access).await.0, 200, "instance {i} accepts the session (and caches it)");
    }
    assert_eq!(s.post(0, "/auth/logout", json!({"refresh_token": refresh})).await.0, 204);
    let logged_out = Instant::now();
    let bound = Duration::from_millis(2000 + 1000);
    for i in [1, 2] {
        lag(&format!("a logout on instance 0 refused by instance {i}"), logged_out, bound, || async {
            s.me(i, &access).await.0 == 401
        })
        .await;
    }
}

async fn the_throttle_counts_attempts_on_all_three(s: &Instances) {
    let wrong = |email: &str| json!({"email": email, "password": "not the password at all"});
    // The same account on one instance: how many wrong passwords until 429.
    assert_eq!(s.register(0, "one@example.com").await, 201);
    let mut alone = 0;
    while s.post(0, "/auth/login", wrong("one@example.com")).await.0 != 429 {
        alone += 1;
        assert!(alone < 50, "one instance never throttled");
    }
    // Spread over three instances in turn: the same count.
    assert_eq!(s.register(1, "three@example.com").await, 201);
    let mut spread = 0;
    while s.post(spread % 3, "/auth/login", wrong("three@example.com")).await.0 != 429 {
        spread += 1;
        assert!(spread < 50, "three instances never throttled");
    }
    eprintln!("scale-out figure: wrong passwords before 429: {alone} on one instance, {spread} spread over three");
    assert_eq!(spread, alone, "the throttle counts the three instances' attempts together");
    // And the lock holds on every instance, even with the right password.
    for i in 0..3 {
        assert_eq!(s.post(i, "/auth/login", json!({"email": "three@example.com", "password": PW})).await.0, 429);
    }
    // At once on all three: no more wrong passwords are checked than one instance allows (each
    // attempt is claimed in the database before the password is looked at).
    assert_eq!(s.register(2, "burst@example.com").await, 201);
    let burst = (0..12).map(|n| s.post(n % 3, "/auth/login", wrong("burst@example.com")));
    let answers = futures_util::future::join_all(burst).await;
    let checked = answers.iter().filter(|(st, _)| *st == 401).count();
    let refused = answers.iter().filter(|(st, _)| *st == 429).count();
    eprintln!("scale-out figure: 12 wrong passwords at once over three instances: {checked} checked (401), {refused} refused (429)");
    assert_eq!(checked + refused, 12, "{answers:?}");
    assert!(checked <= alone, "at most {alone} checked, got {checked}");
}

async fn a_role_granted_on_one_is_seen_by_the_others(s: &Instances, db: &TestDb) {
    assert_eq!(s.register(2, "role@example.com").await, 201);
    let (access, _) = tokens(&s.urls[2], "role@example.com", PW).await;
    let perms = |v: &Value| v["permissions"].as_array().cloned().unwrap_or_default();
    for i in 0..3 {
        let (st, me) = s.me(i, &access).await;
        assert_eq!(st, 200);
        assert!(!perms(&me).contains(&json!("*:*")), "{me}");
    }
    // Granted through another process's library stack, as the CLI does (`fafnir role grant`).
    let stack = fafnir_server::Stack::open(Config { database_url: db.url.clone(), ..Config::default() }).await.unwrap();
    let user = stack.auth.user_by_email("role@example.com").await.unwrap();
    stack.rbac.grant(user.id, &fafnir_rbac::RoleName::parse("admin").unwrap()).await.unwrap();
    let granted = Instant::now();
    let bound = Duration::from_millis(3000);
    for i in 0..3 {
        lag(&format!("a role granted elsewhere seen by instance {i}"), granted, bound, || async {
            perms(&s.me(i, &access).await.1).contains(&json!("*:*"))
        })
        .await;
    }
    stack.db.close().await;
}

async fn one_refresh_token_on_two_instances(s: &Instances) {
    assert_eq!(s.register(0, "twin@example.com").await, 201);
    let (_, refresh) = tokens(&s.urls[0], "twin@example.com", PW).await;
    let body = json!({"refresh_token": refresh});
    let (a, b) = tokio::join!(s.post(1, "/auth/refresh", body.clone()), s.post(2, "/auth/refresh", body.clone()));
    assert_eq!((a.0, b.0), (200, 200), "both within the grace window, as on one instance: {a:?} {b:?}");
    let (sibling_a, sibling_b) = (a.1["refresh_token"].clone(), b.1["refresh_token"].clone());
    assert_ne!(sibling_a, sibling_b, "two siblings, not one token twice");
    // After the window (10 s), the same token again is reuse: refused, and the family ends.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let (st, reused) = s.post(0, "/auth/refresh", body).await;
    assert_eq!((st, reused["error"]["code"].as_str()), (401, Some("REFRESH_TOKEN_REUSED")), "{reused}");
    for (i, sibling) in [(1, sibling_a), (2, sibling_b)] {
        let (st, _) = s.post(i, "/auth/refresh", json!({"refresh_token": sibling})).await;
        assert_eq!(st, 401, "the sibling from instance {i} died with its family");
    }
}

async fn one_email_registered_on_three_at_once(s: &Instances) {
    for round in 0..5 {
        let email = format!("race{round}@example.com");
        let (a, b, c) = tokio::join!(s.register(0, &email), s.register(1, &email), s.register(2, &email));
        let mut got = [a, b, c];
        got.sort_unstable();
        assert_eq!(got, [201, 409, 409], "round {round}: one account");
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn three_instances_on_one_postgres() {
        let Some(db) = TestDb::postgres("scale_out").await else { return };
        let s = three(&db).await;
        a_revoked_session_is_refused_everywhere(&s).await;
        the_throttle_counts_attempts_on_all_three(&s).await;
        a_role_granted_on_one_is_seen_by_the_others(&s, &db).await;
        one_email_registered_on_three_at_once(&s).await;
        one_refresh_token_on_two_instances(&s).await;
        s.stop().await;
        db.cleanup().await;
    }
}
