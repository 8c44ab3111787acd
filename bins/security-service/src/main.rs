//! `security-service`: roles and permissions (fafnir.security.v1.SecurityService) over gRPC on :8082, with its own database.

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
    name = "security-service",
    version,
    about = "Fafnir's roles and permissions (fafnir.security.v1.SecurityService) over gRPC, with the standard health service and reflection",
    after_help = "Defaults: gRPC on 127.0.0.1:8082, health and Prometheus metrics over HTTP on 127.0.0.1:9082\n\
                  (--http-addr), database sqlite://security.db. Tokens are verified against FAFNIR_AUTH_URL's JWKS\n\
                  (default http://127.0.0.1:8081)."
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let defaults = Config {
        grpc_addr: SocketAddr::from(([127, 0, 0, 1], 8082)),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 9082)),
        database_url: "sqlite://security.db".into(),
        ..Config::default()
    };
    fafnir_server::main_with(&cli.config, defaults, fafnir_server::run_security_service).await
}
