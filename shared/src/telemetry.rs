//! Logging and tracing setup. Logs are human-readable by default, JSON when
//! `LOG_FORMAT=json`, with colours only on a terminal, so files and
//! `docker-compose logs` stay clean.
//!
//! Spans are OpenTelemetry spans too (`tracing-opentelemetry`), so that the
//! api's request span carries the client's W3C trace context (or a new
//! one) and hands it to the worker in the command's headers
//! (`trace_context`). They leave the process only when an OTLP endpoint is
//! configured (`OTEL_EXPORTER_OTLP_ENDPOINT`, HTTP/protobuf, exported in
//! batches from a thread of the exporter's own); without one the spans are
//! dropped when they close.

use std::{
    io::IsTerminal,
    sync::atomic::{AtomicBool, Ordering},
};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{ExporterBuildError, WithExportConfig};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing::Level;
use tracing_subscriber::{
    EnvFilter, Layer, filter::Targets, layer::SubscriberExt, util::SubscriberInitExt,
};

/// Whether spans leave the process (an OTLP endpoint is configured).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: code that would build spans only for the
/// exporter (the worker's per-command `decide` spans) checks it first.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The process's tracer provider; [`Telemetry::shutdown`] sends what is
/// still buffered before the process exits.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// Starts logging (and tracing) for `service`; spans are exported to
/// `otlp_endpoint` (the base URL of a collector, `/v1/traces` appended as
/// the OTLP specification says) when it is set and not empty.
pub fn init(
    service: &'static str,
    otlp_endpoint: Option<&str>,
) -> Result<Telemetry, ExporterBuildError> {
    let mut provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build());
    let endpoint = otlp_endpoint.map(str::trim).filter(|e| !e.is_empty());
    if let Some(endpoint) = endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
            .build()?;
        provider = provider.with_batch_exporter(exporter);
        EXPORTING.store(true, Ordering::Relaxed);
    }
    let provider = provider.build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    // No busy/idle timing, thread or source-location attributes: fewer
    // clock reads and allocations per span.
    let traces = tracing_opentelemetry::layer()
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_tracer(provider.tracer(service));

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal());
    let logs = if std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json") {
        logs.json().boxed()
    } else {
        logs.boxed()
    };
    // Each layer has its own filter: `RUST_LOG` decides what is logged,
    // not which spans exist, so a quieter log (`warn`) still has the api's
    // request spans that carry the trace context on to the workers. Only
    // the project's own spans become OpenTelemetry spans.
    let spans = Targets::new()
        .with_target("api", Level::INFO)
        .with_target("worker", Level::INFO)
        .with_target("shared", Level::INFO);
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces.with_filter(spans))
        .init();
    if let Some(endpoint) = endpoint {
        tracing::info!(endpoint, "exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}

impl Telemetry {
    /// Sends the spans still buffered (bounded by the exporter's timeout).
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::debug!(%error, "trace exporter shutdown");
        }
    }
}
