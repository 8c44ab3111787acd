//! `notification-service`: sends the mail auth-service's outbox delivers to it, over SMTP, on :8084.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use fafnir_core::Config;
use fafnir_server::ConfigArgs;

/// mimalloc instead of glibc's malloc, whose arena locks the worker threads contend on under load
/// (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "notification-service",
    version,
    about = "Fafnir's mail sender (microservice mode): receives the messages of auth-service's durable outbox and sends them through FAFNIR_SMTP_URL",
    after_help = "Defaults: HTTP on 127.0.0.1:8084 (POST /internal/mail, /healthz, /readyz, /metrics). Deliveries must carry\n\
                  an internal token of auth-service, verified against FAFNIR_AUTH_URL's JWKS (default http://127.0.0.1:8081).\n\
                  Point auth-service at it with FAFNIR_NOTIFICATION_URL. Keeps no database."
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let defaults = Config { http_addr: SocketAddr::from(([127, 0, 0, 1], 8084)), ..Config::default() };
    fafnir_server::main_with(&cli.config, defaults, fafnir_server::run_notification_service).await
}
