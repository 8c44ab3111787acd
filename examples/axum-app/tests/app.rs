//! The example, served for real: the current-user extractor and the permission guard.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::net::SocketAddr;
use std::sync::Arc;

use fafnir_auth::http::{AuthHttp, HttpSettings};
use fafnir_core::{Config, PermissionChecker};
use fafnir_server::Stack;
use serde_json::{json, Value};

async fn example_routes_are_protected(t: &fafnir_core::testing::TestDb) {
    let config = Config { database_url: t.url.clone(), cookie_secure: false, ..Config::default() };
    let stack = Stack::open(config).await.unwrap();
    let checker: Arc<dyn PermissionChecker> = stack.rbac.clone();
    let fafnir =
        AuthHttp::new(stack.auth.clone(), checker, HttpSettings::from_config(&stack.config), &stack.db).await.unwrap();
    let listener = fafnir_server::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(fafnir_server::serve(listener, axum_app::app(fafnir), std::future::pending()));
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

    assert_eq!(c.get(format!("{base}/hello")).send().await.unwrap().status(), 401);
    let hello = c.get(format!("{base}/hello")).bearer_auth(token).send().await.unwrap().text().await.unwrap();
    assert_eq!(hello, "Hello, ada@example.com — welcome to axum-app");

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

fn fafnir_rbac_role(name: &str) -> fafnir_rbac::RoleName {
    fafnir_rbac::RoleName::parse(name).unwrap()
}

fafnir_core::conformance_tests!(@testdb example_routes_are_protected);
