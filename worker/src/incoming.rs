//! A delivery as the worker first reads it: attempt, envelope, consume span, labels.
//! Read once per delivery, whether the event is then handled in a batch or alone.

use std::time::Instant;

use bytes::Bytes;
use lapin::message::Delivery;
use shared::{Envelope, Provider};

use crate::context::WorkerContext;
use crate::error::WorkerError;
use crate::retry;
use crate::telemetry;

/// One delivery from a provider's work queue.
#[derive(Debug)]
pub struct Incoming {
    /// What the broker delivered, its body moved to `body`; settled exactly once.
    pub delivery: Delivery,
    /// The message body (shared with the envelope, republished as is on a retry or
    /// dead letter): one copy in memory per delivery.
    pub body: Bytes,
    /// The queue's provider.
    pub provider: Provider,
    /// This delivery's attempt (retry steps count; redeliveries do not).
    pub attempt: u32,
    /// The envelope, or why it cannot be read (a dead letter at once).
    pub envelope: Result<Envelope, WorkerError>,
    /// The consume span: a child of the gateway's publish span.
    pub span: tracing::Span,
    /// Metric labels.
    pub labels: telemetry::EventLabels,
    /// When the worker took it, for the handling-time histogram.
    pub started: Instant,
}

impl Incoming {
    /// Reads `delivery` and counts it.
    pub fn read(ctx: &WorkerContext, provider: Provider, mut delivery: Delivery) -> Self {
        let attempt = retry::attempts(&delivery.properties) + 1;
        let body = Bytes::from(std::mem::take(&mut delivery.data));
        let envelope =
            Envelope::from_amqp(&delivery.properties, body.clone()).map_err(WorkerError::from);
        let queue = ctx.topology.work_queue(provider);
        let span =
            telemetry::consume_span(&queue, provider, &delivery, envelope.as_ref().ok(), attempt);
        let labels = telemetry::EventLabels::new(
            provider,
            envelope.as_ref().map_or("", |e| e.event.as_str()),
        );
        labels.count("hookwire_worker_messages_consumed_total");
        if delivery.redelivered {
            ctx.stats.record_redelivery();
            labels.count("hookwire_worker_messages_redelivered_total");
        }
        if let Ok(envelope) = &envelope {
            crate::queue_monitor::record_work_age(&queue, envelope.received_at);
        }
        Self {
            delivery,
            body,
            provider,
            attempt,
            envelope,
            span,
            labels,
            started: Instant::now(),
        }
    }
}
