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
        .layer(GrpcMetricsLayer)
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

/// Records `fafnir_grpc_requests_total{service, method, code}` and
/// `fafnir_grpc_request_duration_seconds{service, method}` for every call. The labels come from
/// the request path only when the method is one this server knows (the file descriptor set), so
/// made-up paths cannot grow the label set; they count as `unknown`. The code is the
/// `grpc-status` of the response head (tonic sends errors as trailers-only responses); a call
/// whose head carries none succeeded or failed later in its trailers and counts as `OK`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

/// See [`GrpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

/// `(service, method)` of a known path, interned for the life of the process.
fn grpc_labels(path: &str) -> (&'static str, &'static str) {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static KNOWN: OnceLock<HashMap<String, (&'static str, &'static str)>> = OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        use prost::Message;
        let mut m = HashMap::new();
        for set in [fafnir_proto::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET] {
            let Ok(files) = prost_types::FileDescriptorSet::decode(set) else { continue };
            for file in files.file {
                let package = file.package.unwrap_or_default();
                for svc in file.service {
                    let name = svc.name.unwrap_or_default();
                    let full: &'static str = Box::leak(format!("{package}.{name}").into_boxed_str());
                    for method in svc.method {
                        let method: &'static str = Box::leak(method.name.unwrap_or_default().into_boxed_str());
                        m.insert(format!("/{full}/{method}"), (full, method));
                    }
                }
            }
        }
        m
    });
    known.get(path).copied().unwrap_or(("unknown", "unknown"))
}

fn grpc_code_label(code: &str) -> &'static str {
    match code {
        "0" => "OK",
        "1" => "CANCELLED",
        "2" => "UNKNOWN",
        "3" => "INVALID_ARGUMENT",
        "4" => "DEADLINE_EXCEEDED",
        "5" => "NOT_FOUND",
        "6" => "ALREADY_EXISTS",
        "7" => "PERMISSION_DENIED",
        "8" => "RESOURCE_EXHAUSTED",
        "9" => "FAILED_PRECONDITION",
        "10" => "ABORTED",
        "11" => "OUT_OF_RANGE",
        "12" => "UNIMPLEMENTED",
        "13" => "INTERNAL",
        "14" => "UNAVAILABLE",
        "15" => "DATA_LOSS",
        "16" => "UNAUTHENTICATED",
        _ => "OTHER",
    }
}

impl<S, B, RB> tower::Service<axum::http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let (service, method) = grpc_labels(req.uri().path());
        let started = std::time::Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            let code = match &res {
                Ok(r) => r.headers().get("grpc-status").and_then(|v| v.to_str().ok()).map_or("OK", grpc_code_label),
                Err(_) => "UNAVAILABLE",
            };
            metrics::counter!("fafnir_grpc_requests_total", "service" => service, "method" => method, "code" => code)
                .increment(1);
            metrics::histogram!("fafnir_grpc_request_duration_seconds", "service" => service, "method" => method)
                .record(started.elapsed().as_secs_f64());
            res
        })
    }
}
