//! The example, served for real: the current-user extractor and the permission guard.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::net::SocketAddr;

use fafnir::{Config, Fafnir};
use serde_json::{json, Value};

async fn example_routes_are_protected(t: &fafnir_core::testing::TestDb) {
    let config = Config { database_url: t.url.clone(), cookie_secure: false, ..Config::default() };
    let stack = Fafnir::open(config).await.unwrap();
    let app = axum_app::app(&stack).await.unwrap();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    let c = reqwest::Client::new();
    let pw = "correct horse battery staple";

    let res = c
        .post(format!("{base}/auth/register"))
        .json(&json!({"email": "ada@example.com", "password": pw}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let tok: Value = c
        .post(format!("{base}/auth/token"))
        .form(&[("grant_type", "password"), ("username", "ada@example.com"), ("password", pw)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap();

    let res = c.get(format!("{base}/hello")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="fafnir", error="invalid_token""#, "RFC 6750");
    // Optional authentication: anonymous and known callers both get an answer.
    let anon = c.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
    assert_eq!(anon, "Welcome, stranger");
    let garbage = c.get(format!("{base}/")).bearer_auth("not-a-token").send().await.unwrap().text().await.unwrap();
    assert_eq!(garbage, "Welcome, stranger", "an invalid token is anonymous, not an error");
    let hello = c.get(format!("{base}/hello")).bearer_auth(token).send().await.unwrap().text().await.unwrap();
    assert_eq!(hello, "Hello, ada@example.com — welcome to axum-app");
    // Mounted in someone else's app, Fafnir's answers are still never cached.
    let me = c.get(format!("{base}/auth/me")).bearer_auth(token).send().await.unwrap();
    assert_eq!(me.headers()["cache-control"], "no-store");
    let known = c.get(format!("{base}/")).bearer_auth(token).send().await.unwrap().text().await.unwrap();
    assert!(known.starts_with("Welcome back, "), "{known}");

    let res = c.get(format!("{base}/reports")).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PERMISSION_DENIED");

    let user = stack.auth.user_by_email("ada@example.com").await.unwrap();
    stack.rbac.grant(user.id, &fafnir_rbac_role("admin")).await.unwrap();
    let res = c.get(format!("{base}/reports")).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    server.abort();
}

fn fafnir_rbac_role(name: &str) -> fafnir::RoleName {
    fafnir::RoleName::parse(name).unwrap()
}

fafnir_core::conformance_tests!(@testdb example_routes_are_protected);
