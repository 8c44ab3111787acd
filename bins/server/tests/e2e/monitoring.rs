//! The dashboards and alert rules in deploy/monitoring name only metrics that Fafnir exports:
//! a real `fafnir serve` gets a little traffic of every kind (REST, GraphQL, gRPC, a second
//! factor, a failed and a throttled login), its `/metrics` is scraped, and every `fafnir_*`
//! name used in deploy/monitoring must appear there. A renamed metric fails here, not on an
//! operator's empty dashboard.

use std::collections::BTreeSet;
use std::path::Path;

use axum::Router;
use fafnir_core::testing::TestDb;
use fafnir_core::Config;
use serde_json::json;

use crate::common::{addr, port, spawn, wait_until};
use crate::oauth::Browser;

const PW: &str = "correct horse battery staple";

/// Every `fafnir_…` name in the files under `dir` (recursively) with one of `exts`.
fn names_in(dir: &Path, exts: &[&str], out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            names_in(&path, exts, out);
        } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e)) {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut rest = text.as_str();
            while let Some(at) = rest.find("fafnir_") {
                let tail = &rest[at..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(tail.len());
                out.insert(tail[..end].to_owned());
                rest = &tail[end..];
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_in_the_dashboards_and_alerts_is_exported() {
    let db = TestDb::sqlite().await;
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
    let http = reqwest::Client::new();
    let ready = format!("{url}/readyz");
    wait_until(&ready, || async { http.get(&ready).send().await.is_ok_and(|r| r.status().is_success()) }).await;

    // A little of everything the dashboards show.
    let b = Browser::new(&url);
    assert_eq!(b.post("/auth/register", json!({"email": "ada@example.com", "password": PW})).await.0, 201);
    assert_eq!(b.post("/auth/login", json!({"email": "ada@example.com", "password": PW})).await.0, 200);
    let (access, refresh) = crate::common::tokens(&url, "ada@example.com", PW).await;
    let rotated =
        http.post(format!("{url}/auth/refresh")).json(&json!({"refresh_token": refresh})).send().await.unwrap();
    assert_eq!(rotated.status().as_u16(), 200);
    assert_eq!(b.post("/auth/mfa/verify", json!({"mfa_token": "nope", "code": "123456"})).await.0, 401);
    assert_eq!(b.graphql("{ me { user { email } } }").await["data"]["me"]["user"]["email"], "ada@example.com");
    for _ in 0..12 {
        let bad = json!({"email": "ada@example.com", "password": "not the password at all"});
        if b.post("/auth/login", bad).await.0 == 429 {
            break;
        }
    }
    // A permission check over gRPC (every RPC is counted by its service, method and code).
    let ch = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{g}")).unwrap().connect().await.unwrap();
    let mut security = fafnir_proto::security::v1::security_service_client::SecurityServiceClient::new(ch);
    let mut req = tonic::Request::new(fafnir_proto::security::v1::CheckPermissionRequest {
        user_id: String::new(),
        permission: "profile:read".into(),
    });
    req.metadata_mut().insert("authorization", format!("Bearer {access}").parse().unwrap());
    security.check_permission(req).await.unwrap();

    let text = http.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    let exported: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    assert!(text.contains("outcome=\"rate_limited\""), "the throttle answered: {text}");

    let monitoring = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/monitoring");
    let mut used = BTreeSet::new();
    names_in(&monitoring, &["json", "yml", "yaml"], &mut used);
    assert!(used.len() >= 10, "the dashboards and rules name metrics: {used:?}");
    let missing: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(missing.is_empty(), "named in deploy/monitoring but not exported: {missing:?}\nexported: {exported:?}");
    server.stop().await;
}
