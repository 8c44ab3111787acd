//! The example against a real `fafnir serve` (in this process, on a fresh SQLite database).

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

use std::net::{SocketAddr, TcpListener};

use fafnir_core::testing::TestDb;
use fafnir_core::Config;
use fafnir_server::Shutdown;
use graphql_client::{Client, Error};

fn port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_in_and_queries_me() {
    let db = TestDb::sqlite().await;
    let p = port();
    let config = Config {
        database_url: db.url.clone(),
        http_addr: SocketAddr::from(([127, 0, 0, 1], p)),
        grpc_addr: SocketAddr::from(([127, 0, 0, 1], port())),
        cookie_secure: false,
        log: "warn".into(),
        ..Config::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(fafnir_server::run_all_in_one(
        config,
        axum::Router::new(),
        Shutdown::on(async move {
            let _ = stopped.await;
        }),
    ));
    let base = format!("http://127.0.0.1:{p}");
    let client = Client::new(&base).unwrap();
    for _ in 0..100 {
        if client.run("{ health { status } }", serde_json::json!({})).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let pw = "correct horse battery staple";
    let q = "mutation($e: String!, $p: String!) { register(input: {email: $e, password: $p, displayName: \"Ada\"}) { id } }";
    client.run(q, serde_json::json!({"e": "ada@example.com", "p": pw})).await.unwrap();

    assert!(matches!(client.me().await, Err(Error::GraphQL { code, .. }) if code == "UNAUTHENTICATED"));
    let login = client.login("ada@example.com", pw).await.unwrap();
    assert_eq!(login["user"]["email"], "ada@example.com");
    let me = client.me().await.unwrap();
    assert_eq!(me["user"]["email"], "ada@example.com");
    assert_eq!(me["roles"], serde_json::json!(["member"]));
    assert_eq!(client.set_display_name("Ada L.").await.unwrap()["displayName"], "Ada L.");
    client.logout().await.unwrap();
    assert!(matches!(client.me().await, Err(Error::GraphQL { code, .. }) if code == "UNAUTHENTICATED"));

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    db.cleanup().await;
}
