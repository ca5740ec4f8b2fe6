//! The server span and request metrics of the public listener.
//!
//! Every request starts a new trace: a provider's own `traceparent` is an outside
//! system's claim, so it becomes a span link, never the parent.

use std::net::IpAddr;
use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use shared::trace_context::{TRACEPARENT, TRACESTATE, TraceContext};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A root server span with the HTTP semantic-convention attributes known up front.
pub fn server_span(
    method: &Method,
    route: &'static str,
    client_ip: IpAddr,
    headers: &HeaderMap,
) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = route,
        http.response.status_code = Empty,
        client.address = %client_ip,
        request_id = Empty,
        trace_id = Empty,
        span_id = Empty,
        provider = Empty,
        event = Empty,
        provider_event_id = Empty,
    );
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(theirs) = text(TRACEPARENT).and_then(|tp| TraceContext::parse(tp, text(TRACESTATE)))
    {
        span.add_link(theirs.to_otel());
    }
    span
}

/// Records the request's trace ids as span fields, for log lines (with OpenTelemetry
/// installed they are the span's own ids; without, the minted ones).
pub fn record_trace(span: &tracing::Span, trace: &TraceContext) {
    span.record("trace_id", trace.trace_id().as_str());
    span.record("span_id", trace.span_id().as_str());
}

/// Records the outcome on the span and in the request metrics.
pub fn finish_server_span(
    span: &tracing::Span,
    provider: &'static str,
    route: &'static str,
    status: StatusCode,
    elapsed: Duration,
) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    metrics::counter!("hookwire_gateway_requests_total",
        "provider" => provider, "route" => route, "status" => status.as_str().to_owned())
    .increment(1);
    metrics::histogram!("hookwire_gateway_request_duration_seconds",
        "provider" => provider, "route" => route)
    .record(elapsed.as_secs_f64());
}
