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
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::StartError;

/// No call runs longer than this, whatever deadline the client sent.
pub const MAX_CALL: Duration = Duration::from_secs(30);

/// Which services one gRPC listener serves.
#[derive(Debug, Default)]
pub struct GrpcServices {
    pub security: Option<SecurityGrpc>,
    pub users: Option<UsersGrpc>,
}

/// Serves `services` on `listener` until `shutdown` resolves, then finishes calls in flight.
pub async fn serve_grpc(
    listener: TcpListener,
    services: GrpcServices,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    if services.security.is_some() {
        reporter.set_serving::<SecurityServiceServer<SecurityGrpc>>().await;
    }
    if services.users.is_some() {
        reporter.set_serving::<UserServiceServer<UsersGrpc>>().await;
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(fafnir_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| StartError::Io(format!("gRPC reflection: {e}")))?;
    Server::builder()
        .timeout(MAX_CALL)
        .add_service(health)
        .add_service(reflection)
        .add_optional_service(services.security.map(SecurityGrpc::into_server))
        .add_optional_service(services.users.map(UsersGrpc::into_server))
        // TCP_NODELAY: small responses must not wait for Nagle's algorithm (a 40 ms tail otherwise).
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown)
        .await
        .map_err(|e| StartError::Io(format!("gRPC server error: {e}")))
}

/// Health and metrics over HTTP for a process that otherwise only speaks gRPC.
pub fn side_app(db: fafnir_core::Db) -> axum::Router {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::get;
    let _ = crate::telemetry::prometheus();
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let db = db.clone();
                async move {
                    match tokio::time::timeout(Duration::from_secs(2), db.ping()).await {
                        Ok(Ok(())) => "ready".into_response(),
                        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response(),
                    }
                }
            }),
        )
        .route("/metrics", get(crate::http::render_metrics))
}
