//! `api-gateway`: the GraphQL entry point on :8080 in microservice mode.

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
    name = "api-gateway",
    version,
    about = "Fafnir's GraphQL gateway: /graphql (GraphiQL on GET) over auth-service, security-service and user-service",
    after_help = "Defaults: HTTP on 127.0.0.1:8080; FAFNIR_AUTH_URL http://127.0.0.1:8081 (also proxied at /auth/* and\n\
                  /.well-known/jwks.json, so the browser sees one origin), FAFNIR_SECURITY_URL http://127.0.0.1:8082,\n\
                  FAFNIR_USERS_URL http://127.0.0.1:8083. Keeps no database. Run auth-service with\n\
                  FAFNIR_TRUST_FORWARDED_FOR=true behind it, so that throttling sees the real client address."
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let defaults = Config { http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)), ..Config::default() };
    fafnir_server::main_with(&cli.config, defaults, fafnir_server::run_api_gateway).await
}
