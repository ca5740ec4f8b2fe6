//! Logs and traces for both binaries: one call at start-up, one guard that flushes.
//!
//! Export happens only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the standard `OTEL_*` variables choose
//! protocol, service name, resource attributes and sampler. Only then is the
//! OpenTelemetry layer installed, so that tracing costs nothing when it is off. Either
//! way every event has a W3C trace id (from its span, or minted), recorded as the
//! `trace_id` field of the request and consume spans: it reaches log lines, the
//! `X-Trace-Id` header and the inbox row.

mod json;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "pretty" | "" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("expected `text` or `json`, got {other:?}")),
        }
    }
}

/// Filter used when `RUST_LOG` is unset: our crates at info, chatty dependencies quieter.
/// The OpenTelemetry crates stay at warn so an unreachable collector is reported but
/// does not flood the log. lapin's channel module logs, at ERROR, every channel the
/// broker closes, including the expected "not found" that answers our lookup of each
/// queue before declaring it; the link reports the closures that matter itself.
pub const DEFAULT_FILTER: &str = "info,lapin=warn,lapin::channel=off,amq_protocol=warn,sqlx=warn,\
                                  hyper=warn,opentelemetry=warn,opentelemetry_sdk=warn,\
                                  opentelemetry_otlp=warn";

/// Flushes and stops span export when dropped (keep it alive for the process).
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    exporting: bool,
}

impl Telemetry {
    /// Whether spans leave the process.
    pub fn is_exporting(&self) -> bool {
        self.exporting
    }

    /// Sends the spans still buffered; called on shutdown (drop does it too).
    pub fn shutdown(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.force_flush();
            let _ = provider.shutdown();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Where spans go, from the standard variables; `None` when export is off.
fn sdk_disabled() -> bool {
    std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

fn otlp_endpoint() -> Option<String> {
    if sdk_disabled() {
        return None;
    }
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .filter_map(|name| std::env::var(name).ok())
    .find(|v| !v.trim().is_empty())
}

/// Installs the global subscriber (logs + OpenTelemetry layer) and the W3C propagator.
///
/// Call inside a Tokio runtime (the gRPC exporter needs one). Safe to call more than
/// once (tests): later calls leave the first subscriber in place.
pub fn init(format: LogFormat, service_name: &'static str) -> Telemetry {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service_name);
    }
    let mut builder = SdkTracerProvider::builder().with_resource(resource.build());
    let mut exporting = false;
    let mut export_error = None;
    if let Some(endpoint) = otlp_endpoint() {
        // The HTTP exporter's TLS uses the process's rustls provider (ring, as lapin).
        let _ = rustls::crypto::ring::default_provider().install_default();
        match opentelemetry_otlp::SpanExporter::builder().build() {
            Ok(exporter) => {
                builder = builder.with_batch_exporter(exporter);
                exporting = true;
            }
            Err(error) => export_error = Some((endpoint, error.to_string())),
        }
    }
    let provider = builder.build();
    let tracer = provider.tracer(service_name);
    // Without export the layer is left out: it cost about 4% throughput and 4 ms of
    // p99 on the gateway (BENCHMARKS.md). Trace ids are then minted per request and
    // carried in span fields, so logs, headers and rows still have them.
    let otel = exporting.then(|| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_error_records_to_exceptions(true)
    });
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    // Logs go to stderr, so a subcommand's results on stdout can be piped; colour only
    // when a person reads them (a terminal), never into files or collectors.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let installed = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(colour),
            )
            .try_init(),
        LogFormat::Json => {
            let (fields, lines) = json::layers();
            registry
                .with(fields)
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .fmt_fields(json::NoText)
                        .event_format(lines),
                )
                .try_init()
        }
    };
    if installed.is_err() {
        // Another subscriber owns the process (a test harness): keep it.
        return Telemetry::default();
    }
    opentelemetry::global::set_tracer_provider(provider.clone());
    if let Some((endpoint, error)) = export_error {
        tracing::error!(%endpoint, %error, "OTLP exporter not built; spans are not exported");
    } else if exporting {
        tracing::info!(service = service_name, "exporting spans over OTLP");
    }
    Telemetry {
        provider: Some(provider),
        exporting,
    }
}

/// The trace id of the current span (32 hex digits), for headers and database rows.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}
