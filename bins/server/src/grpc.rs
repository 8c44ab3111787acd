//! Serving gRPC: Fafnir's services with the standard health service and server reflection,
//! client deadlines honoured (tonic applies `grpc-timeout`), a server-side ceiling per call,
//! and graceful shutdown.

use std::future::Future;
use std::time::Duration;

use fafnir_proto::security::v1::security_service_server::SecurityServiceServer;
use fafnir_proto::users::v1::user_service_server::UserServiceServer;
use fafnir_rbac::grpc::SecurityGrpc;
use fafnir_users::grpc::UsersGrpc;
use tokio::net::TcpListener;
use tonic::transport::Server;

use crate::serve::{admitted, bounded, Limits};
use crate::StartError;

/// No call runs longer than this, whatever deadline the client sent.
pub const MAX_CALL: Duration = Duration::from_secs(30);

/// Which services one gRPC listener serves.
#[derive(Debug, Default)]
pub struct GrpcServices {
    pub security: Option<SecurityGrpc>,
    pub users: Option<UsersGrpc>,
}

/// HTTP/2 pings on idle connections, to find peers that vanished.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `services` on `listener` until `shutdown` resolves, then finishes calls in flight,
/// within the process-wide [`Limits`].
pub async fn serve_grpc(
    listener: TcpListener,
    services: GrpcServices,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    serve_grpc_with(listener, services, shutdown, Limits::current()).await
}

/// [`serve_grpc`] within `limits`: at most `limits.max_connections` (shared with the process's
/// other listeners), and at most `limits.shutdown_grace` of waiting for open connections after
/// `shutdown`.
pub async fn serve_grpc_with(
    listener: TcpListener,
    services: GrpcServices,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: &Limits,
) -> Result<(), StartError> {
    use futures_util::FutureExt;
    let shutdown = shutdown.shared();
    let (reporter, health) = tonic_health::server::health_reporter();
    if services.security.is_some() {
        reporter.set_serving::<SecurityServiceServer<SecurityGrpc>>().await;
    }
    if services.users.is_some() {
        reporter.set_serving::<UserServiceServer<UsersGrpc>>().await;
    }
    // Both reflection versions: v1 is current, but many tools (grpcurl's older releases,
    // grpcio-reflection's Python client) still ask v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(fafnir_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(|e| StartError::Io(format!("gRPC reflection: {e}")))?;
    let reflection_v1alpha =
        reflection().build_v1alpha().map_err(|e| StartError::Io(format!("gRPC reflection: {e}")))?;
    let server = Server::builder()
        .timeout(MAX_CALL)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_connection_age(crate::serve::MAX_CONNECTION_AGE)
        .max_connection_age_grace(MAX_CALL)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_optional_service(services.security.map(SecurityGrpc::into_server))
        .add_optional_service(services.users.map(UsersGrpc::into_server))
        // Connections are admitted within the process's limit, with TCP_NODELAY (small responses
        // must not wait for Nagle's algorithm: a 40 ms tail otherwise).
        .serve_with_incoming_shutdown(admitted(listener, limits.clone()), shutdown.clone());
    match bounded(server, shutdown, limits.shutdown_grace, "gRPC").await {
        Some(r) => r.map_err(|e| StartError::Io(format!("gRPC server error: {e}"))),
        None => Ok(()),
    }
}

/// Health, readiness (each of `checks`) and metrics over HTTP for a process that otherwise only
/// speaks gRPC.
pub fn side_app(checks: Vec<crate::remote::Check>) -> axum::Router {
    use axum::routing::get;
    let _ = crate::telemetry::prometheus();
    let checks = std::sync::Arc::new(checks);
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let checks = checks.clone();
                async move { crate::remote::readiness(&checks, false).await }
            }),
        )
        .route("/metrics", get(crate::http::render_metrics))
}
