//! Logs (tracing) and metrics (Prometheus text format).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs the log subscriber: `filter` is a tracing filter such as `info`. Set
/// `FAFNIR_LOG_FORMAT=json` for one JSON object per line. With the `otlp` feature and
/// `FAFNIR_OTLP_ENDPOINT` (e.g. `http://collector:4317`), the spans are also exported over
/// OTLP/gRPC, as service `OTEL_SERVICE_NAME` (default: the binary's name). Call it inside the
/// Tokio runtime. Safe to call more than once (the first call wins).
pub fn init_logging(filter: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("FAFNIR_LOG_FORMAT").is_ok_and(|v| v == "json");
    let fmt = tracing_subscriber::fmt::layer().with_target(true).with_ansi(std::io::stdout().is_terminal());
    let fmt = if json { fmt.json().boxed() } else { fmt.boxed() };
    let registry = tracing_subscriber::registry().with(filter).with(fmt);
    // The OTLP layer only when it is configured: an absent `Option` layer would say "always
    // interested" for every callsite and cost every request a filter evaluation.
    #[cfg(feature = "otlp")]
    let installed = match otlp::layer() {
        Some(otlp) => registry.with(otlp).try_init().is_ok(),
        None => registry.try_init().is_ok(),
    };
    #[cfg(not(feature = "otlp"))]
    let installed = registry.try_init().is_ok();
    if installed && std::env::var("FAFNIR_OTLP_ENDPOINT").is_ok_and(|e| !e.trim().is_empty()) {
        if cfg!(feature = "otlp") {
            tracing::info!("exporting traces over OTLP");
        } else {
            tracing::warn!("FAFNIR_OTLP_ENDPOINT is set, but this build has no `otlp` feature: no traces are exported");
        }
    }
}

/// Sends the spans still buffered for OTLP (call once, as the process ends). Without the `otlp`
/// feature or an endpoint, does nothing.
pub async fn shutdown_tracing() {
    #[cfg(feature = "otlp")]
    otlp::shutdown().await;
}

#[cfg(feature = "otlp")]
mod otlp {
    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
    use tracing_subscriber::registry::LookupSpan;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The OTLP layer, when `FAFNIR_OTLP_ENDPOINT` is set and the exporter can be built.
    pub(super) fn layer<S>() -> Option<tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        let endpoint = std::env::var("FAFNIR_OTLP_ENDPOINT").ok().filter(|e| !e.trim().is_empty())?;
        let service = std::env::var("OTEL_SERVICE_NAME").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "fafnir".into())
        });
        let exporter = match opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build() {
            Ok(e) => e,
            Err(e) => {
                eprintln!(
                    "warning: FAFNIR_OTLP_ENDPOINT: the OTLP exporter cannot be built ({e}); no traces are exported"
                );
                return None;
            }
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(service).build())
            .build();
        let tracer = provider.tracer("fafnir");
        let _ = PROVIDER.set(provider);
        Some(tracing_opentelemetry::layer().with_tracer(tracer))
    }

    pub(super) async fn shutdown() {
        if let Some(p) = PROVIDER.get() {
            let p = p.clone();
            // Flushing blocks on the export: off the async workers.
            let _ = tokio::task::spawn_blocking(move || p.shutdown()).await;
        }
    }
}

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Whether Fafnir's recorder is installed (metric handles taken before would be no-ops).
pub(crate) fn installed() -> bool {
    PROMETHEUS.get().is_some_and(Option::is_some)
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
                )
                .ok()?;
            match builder.install_recorder() {
                Ok(h) => {
                    spawn_upkeep(h.clone());
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// How often histogram samples are folded into their buckets.
pub const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The recorder keeps every histogram sample until upkeep folds it into the buckets; without
/// this, a server that is never scraped grows by a few bytes per request, without bound
/// (`install_recorder` leaves upkeep to the caller). A plain thread: it must run whatever
/// runtime, if any, is current.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
        std::thread::sleep(UPKEEP_INTERVAL);
        handle.run_upkeep();
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started; histograms are drained only when scraped");
    }
}
