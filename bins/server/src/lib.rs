//! # fafnir-server
//!
//! What every Fafnir binary shares: configuration layering ([`ConfigArgs`]), wiring
//! ([`Stack`]), the HTTP application with its hardening ([`http::app`]), telemetry, and graceful
//! serving. The binaries in `bins/` are thin `main`s over this crate.

pub mod config;
pub mod http;
pub mod stack;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
pub use config::ConfigArgs;
pub use stack::{Stack, StartError};
use tokio::net::TcpListener;

/// Binds `addr` (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|e| StartError::Io(format!("cannot listen on {addr}: {e}")))
}

/// Serves `app` until `shutdown` resolves, then stops accepting and lets in-flight requests
/// finish (each is bounded by the request timeout).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| StartError::Io(format!("server error: {e}")))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Runs a REST server for `config` until Ctrl-C / SIGTERM: opens the stack, starts its
/// background work, serves the HTTP app (plus `extra` routes) on `config.http_addr`.
pub async fn run_http(config: fafnir_core::Config, extra: Router) -> Result<(), StartError> {
    telemetry::init_logging(&config.log);
    let stack = Stack::open(config).await?;
    let _background = stack.spawn_background();
    let (app, _) = http::app(&stack, extra).await?;
    let listener = bind(stack.config.http_addr).await?;
    let addr = listener.local_addr().map_err(|e| StartError::Io(e.to_string()))?;
    tracing::info!(%addr, database = ?stack.db.backend(), "listening on http://{addr}");
    serve(listener, app, shutdown_signal()).await?;
    stack.db.close().await;
    Ok(())
}
