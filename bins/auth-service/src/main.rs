//! `auth-service`: the REST authentication service on :8081 (microservice mode).

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
    name = "auth-service",
    version,
    about = "Fafnir's REST authentication service: /auth/*, JWKS, OpenAPI, /docs, health, metrics",
    after_help = "Microservice mode: set FAFNIR_SECURITY_URL and FAFNIR_USERS_URL (e.g. http://127.0.0.1:8082 and :8083);\n\
                  new and deleted accounts then reach those services through a durable outbox."
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let defaults = Config { http_addr: SocketAddr::from(([127, 0, 0, 1], 8081)), ..Config::default() };
    fafnir_server::main_with(&cli.config, defaults, fafnir_server::run_auth_service).await
}
