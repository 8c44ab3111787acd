//! Run the example: `cargo run -p axum-app` (SQLite in ./axum-app.db, http://127.0.0.1:3000).

use std::net::SocketAddr;
use std::process::ExitCode;

use fafnir::{Config, Fafnir};

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

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let fafnir = Fafnir::open(config).await?;
    let _background = fafnir.spawn_background();
    let app = axum_app::app(&fafnir).await?;
    let listener = tokio::net::TcpListener::bind(fafnir.config.http_addr).await?;
    println!("axum-app on http://{}", fafnir.config.http_addr);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
