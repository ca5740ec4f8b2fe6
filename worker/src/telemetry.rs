//! The consume span and the worker's metrics.
//!
//! Metric labels use the event name only when it is one we know: a provider may send
//! any string, and every distinct label value is a new time series.

use lapin::message::Delivery;
use shared::{Envelope, Provider};
use tracing::field::Empty;

/// An event name fit for a metric label.
pub fn event_label(provider: Provider, event: &str) -> &'static str {
    let known: &[&'static str] = match provider {
        Provider::Pluggy => crate::handlers::pluggy::KNOWN_EVENTS,
        Provider::LiveTip => &[
            "payment_confirmed",
            "payment_pending",
            "payment_failed",
            "payment_cancelled",
        ],
    };
    known
        .iter()
        .find(|k| **k == event)
        .copied()
        .unwrap_or("other")
}

/// The consumer span of one delivery: a child of the gateway's publish span when the
/// message carries its context, so one trace runs from the HTTP request to the row.
pub fn consume_span(
    queue: &str,
    provider: Provider,
    delivery: &Delivery,
    envelope: Option<&Envelope>,
    attempt: u32,
) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "consume",
        otel.name = format!("process {queue}"),
        otel.kind = "consumer",
        otel.status_code = Empty,
        otel.status_description = Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.destination.name = queue,
        messaging.rabbitmq.destination.routing_key = delivery.routing_key.as_str(),
        messaging.message.id = Empty,
        hookwire.attempt = attempt,
        hookwire.redelivered = delivery.redelivered,
        provider = provider.as_str(),
        event = Empty,
        provider_event_id = Empty,
        request_id = Empty,
        trace_id = Empty,
    );
    if let Some(envelope) = envelope {
        envelope.trace.adopt(&span);
        span.record("trace_id", envelope.trace.trace_id().as_str());
        span.record("event", envelope.event.as_str());
        span.record(
            "messaging.message.id",
            tracing::field::display(envelope.request_id),
        );
        span.record("request_id", tracing::field::display(envelope.request_id));
        if let Some(id) = &envelope.provider_event_id {
            span.record("provider_event_id", id.as_str());
        }
    }
    span
}

/// Marks a span failed (dead letter, unreadable message).
pub fn record_error(span: &tracing::Span, reason: &str) {
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", reason);
}

/// Labels every per-event worker metric carries.
#[derive(Clone, Copy, Debug)]
pub struct EventLabels {
    /// Provider.
    pub provider: &'static str,
    /// Known event name, or `other`.
    pub event: &'static str,
}

impl EventLabels {
    /// Labels for `event` from `provider`.
    pub fn new(provider: Provider, event: &str) -> Self {
        Self {
            provider: provider.as_str(),
            event: event_label(provider, event),
        }
    }

    /// Increments `hookwire_worker_<name>_total`.
    pub fn count(self, name: &'static str) {
        metrics::counter!(name, "provider" => self.provider, "event" => self.event).increment(1);
    }

    /// Records the handling time.
    pub fn handled_in(self, seconds: f64) {
        metrics::histogram!("hookwire_worker_handler_duration_seconds",
            "provider" => self.provider, "event" => self.event)
        .record(seconds);
    }
}

/// A database client span inside an event's consume span. `batch` is how many events
/// share the statement: a batch's claim and commit appear in every event's trace.
pub fn db_span(
    db: &sea_orm::DatabaseConnection,
    operation: &'static str,
    batch: usize,
    parent: &tracing::Span,
) -> tracing::Span {
    let db_system = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => "postgresql",
        sea_orm::DatabaseBackend::Sqlite => "sqlite",
        _ => "other_sql",
    };
    tracing::info_span!(
        parent: parent,
        "db",
        otel.name = format!("{operation} webhook_events"),
        otel.kind = "client",
        db.system.name = db_system,
        db.operation.name = operation,
        db.collection.name = "webhook_events",
        db.operation.batch.size = batch,
    )
}
