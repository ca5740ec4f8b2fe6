//! Accepting one webhook: verify, validate, publish, answer.
//!
//! Handlers touch no database: the only I/O on the ingest path is the publish and
//! its confirm.

pub mod livetip;
pub mod pluggy;

use bytes::Bytes;
use chrono::Utc;
use http::HeaderMap;
use shared::envelope::{Envelope, KEPT_HTTP_HEADERS};
use shared::provider::Provider;
use shared::trace_context::TraceContext;
use tracing::Instrument;

use crate::error::ApiError;
use crate::state::{AppState, RequestContext};

/// Publishes an accepted event and returns once the broker has confirmed it.
async fn enqueue(
    state: &AppState,
    ctx: &RequestContext,
    provider: Provider,
    event: String,
    provider_event_id: Option<String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(), ApiError> {
    let request_span = tracing::Span::current();
    request_span.record("provider", provider.as_str());
    request_span.record("event", event.as_str());
    if let Some(id) = &provider_event_id {
        request_span.record("provider_event_id", id.as_str());
    }
    let mut envelope = Envelope {
        provider,
        event,
        provider_event_id,
        received_at: Utc::now(),
        request_id: ctx.request_id,
        client_ip: Some(ctx.client_ip),
        http_headers: kept_headers(headers),
        trace: ctx.trace.clone(),
        body,
    };
    let routing_key = envelope.routing_key();
    let span = tracing::info_span!(
        "publish",
        otel.name = format!("publish {}", state.ingest_exchange),
        otel.kind = "producer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.destination.name = %state.ingest_exchange,
        messaging.rabbitmq.destination.routing_key = %routing_key,
        messaging.message.id = %ctx.request_id,
        provider = provider.as_str(),
        event = %envelope.event,
    );
    // The consumer's span becomes a child of this one, across the broker.
    if let Some(trace) = TraceContext::of_span(&span) {
        envelope.trace = trace;
    }
    let started = std::time::Instant::now();
    let published = state
        .link
        .publish(
            &state.ingest_exchange,
            &routing_key,
            &envelope.body,
            envelope.ingest_properties(),
        )
        .instrument(span.clone())
        .await;
    metrics::histogram!("hookwire_gateway_publish_confirm_seconds",
        "provider" => provider.as_str(), "outcome" => if published.is_ok() { "confirmed" } else { "failed" })
    .record(started.elapsed().as_secs_f64());
    published.map_err(|error| {
        span.record("otel.status_code", "ERROR");
        tracing::warn!(
            request_id = %ctx.request_id,
            provider = provider.as_str(),
            error = %error,
            "event not queued; answering 503"
        );
        ApiError::Unavailable(error)
    })
}

/// The span of a provider's credential check (header comparison, HMAC over the body).
fn verify_span(provider: Provider) -> tracing::Span {
    tracing::info_span!("verify", provider = provider.as_str())
}

/// The allow-listed request headers, valid UTF-8 only, bounded in size.
fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    KEPT_HTTP_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            (value.len() <= 1024).then(|| ((*name).to_owned(), value.to_owned()))
        })
        .collect()
}
