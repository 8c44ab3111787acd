//! Run the example: `cargo run -p axum-app` (SQLite in ./axum-app.db, http://127.0.0.1:3000).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use fafnir_auth::http::{AuthHttp, HttpSettings};
use fafnir_core::{Config, PermissionChecker};
use fafnir_server::Stack;

#[tokio::main]
async fn main() -> ExitCode {
    let mut config = Config {
        database_url: "sqlite://axum-app.db".into(),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
        cookie_secure: false, // plain HTTP on localhost
        ..Config::default()
    };
    if let Err(e) = config.apply_env(|k| std::env::var(k).ok()) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    let stack = Stack::open(config).await.map_err(|e| e.to_string())?;
    let _background = stack.spawn_background();
    let checker: Arc<dyn PermissionChecker> = stack.rbac.clone();
    let fafnir = AuthHttp::new(stack.auth.clone(), checker, HttpSettings::from_config(&stack.config), &stack.db)
        .await
        .map_err(|e| e.to_string())?;
    let listener = fafnir_server::bind(stack.config.http_addr).await.map_err(|e| e.to_string())?;
    println!("axum-app on http://{}", stack.config.http_addr);
    fafnir_server::serve(listener, axum_app::app(fafnir), fafnir_server::shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}
