//! How a delivery leaves the worker: acknowledged, handed back, moved to a delayed
//! retry step, or dead-lettered. A copy is confirmed by the broker before its original
//! is acknowledged, so a message is never lost in between, at worst kept twice (and the
//! inbox makes the second copy a duplicate).
//!
//! A batch whose effects committed is acknowledged with one `multiple` ack up to its
//! last delivery ([`ack_through`]). That is safe because a slot handles one batch at a
//! time, in delivery order: deliveries of its next batch, already in the prefetch, have
//! higher tags, and every delivery of this one that did not commit with the batch was
//! settled alone before. The ack covers nothing unsettled.

use chrono::{SecondsFormat, Utc};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};

use crate::context::WorkerContext;
use crate::dead_header;
use crate::error::{ErrorClass, WorkerError};
use crate::incoming::Incoming;
use crate::retry::{self, ATTEMPTS_HEADER};
use crate::settled::{self, Outcome};
use crate::telemetry;
use tracing::Instrument;

/// What to do with a delivery.
#[derive(Debug)]
pub enum Disposition {
    /// The effect (or the finding that a copy had it) is committed: acknowledge.
    Ack,
    /// Shutdown interrupted the handling: give the message back untouched.
    Requeue,
    /// A transient failure: to the delayed-retry step for this attempt.
    Retry {
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        failure: Failure,
    },
    /// A permanent failure or the last attempt: to the dead-letter queue.
    DeadLetter {
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        failure: Failure,
    },
}

/// What the headers and logs say about a failure.
#[derive(Clone, Debug)]
pub struct Failure {
    /// [`WorkerError::describe`].
    pub reason: String,
    /// Transient or permanent.
    pub class: ErrorClass,
}

impl From<&WorkerError> for Failure {
    fn from(error: &WorkerError) -> Self {
        Self {
            reason: error.describe(),
            class: error.class(),
        }
    }
}

/// Records the handling time, then settles `incoming` on its own.
pub async fn settle(ctx: &WorkerContext, incoming: Incoming, disposition: Disposition) {
    // Written once the copy is confirmed and the original acknowledged: a settlement
    // that fails leaves the delivery to the broker, whose redelivery gets the line.
    let line = match &disposition {
        Disposition::Retry { .. } => Some(settled::Line::of(&incoming, Outcome::RetryStep, None)),
        Disposition::DeadLetter { .. } => {
            Some(settled::Line::of(&incoming, Outcome::DeadLetter, None))
        }
        // Acknowledged after its outcome was recorded; requeued: not settled.
        Disposition::Ack | Disposition::Requeue => None,
    };
    let Incoming {
        delivery,
        body,
        provider,
        span,
        labels,
        started,
        ..
    } = incoming;
    labels.handled_in(started.elapsed().as_secs_f64());
    if let Disposition::DeadLetter { failure, .. } = &disposition {
        telemetry::record_error(&span, &failure.reason);
    }
    let settled = async move {
        match disposition {
            Disposition::Ack => delivery.ack(BasicAckOptions::default()).await.map(|_| true),
            Disposition::Requeue => requeue(&delivery).await.map(|()| false),
            Disposition::Retry { attempt, failure } => {
                let delay = retry::delay_after(attempt, ctx.topology.retry_delays());
                let exchange = ctx.topology.retry_exchange(delay);
                let mut headers = headers_of(&delivery);
                headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongUInt(attempt));
                headers.insert(dead_header::LAST_ERROR.into(), text(&failure.reason));
                let properties = delivery.properties.clone().with_headers(headers);
                tracing::warn!(
                    provider = provider.as_str(),
                    attempt,
                    ?delay,
                    error = %failure.reason,
                    "event failed; scheduled for a delayed retry"
                );
                ctx.stats.record_retry();
                labels.count("hookwire_worker_messages_retried_total");
                move_then_ack(ctx, delivery, &body, &exchange, None, properties).await
            }
            Disposition::DeadLetter { attempt, failure } => {
                let queue = ctx.topology.dead_letter_queue(provider);
                let mut headers = headers_of(&delivery);
                headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongUInt(attempt));
                headers.insert(dead_header::REASON.into(), text(&failure.reason));
                headers.insert(dead_header::CLASS.into(), text(failure.class.as_str()));
                headers.insert(
                    dead_header::AT.into(),
                    text(&Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
                );
                headers.insert(
                    dead_header::ROUTING_KEY.into(),
                    text(delivery.routing_key.as_str()),
                );
                let properties = delivery.properties.clone().with_headers(headers);
                tracing::error!(
                    provider = provider.as_str(),
                    attempt,
                    class = failure.class.as_str(),
                    error = %failure.reason,
                    "event dead-lettered"
                );
                ctx.stats.record_dead_letter();
                labels.count("hookwire_worker_messages_dead_lettered_total");
                move_then_ack(ctx, delivery, &body, "", Some(&queue), properties).await
            }
        }
    }
    .instrument(span)
    .await;
    match settled {
        Ok(moved) => {
            if let Some(line) = line.filter(|_| moved) {
                line.write();
            }
        }
        // The channel is gone; the broker redelivers the message to someone.
        Err(error) => {
            tracing::warn!(%error, "could not settle a delivery; the broker will redeliver it");
        }
    }
}

/// Acknowledges every unsettled delivery of this channel up to and including `last`
/// in one frame. The caller guarantees that each of them is done.
pub async fn ack_through(last: &Delivery) {
    if let Err(error) = last.ack(BasicAckOptions { multiple: true }).await {
        tracing::warn!(%error, "could not acknowledge a batch; the broker will redeliver it");
    }
}

/// Publishes a copy (confirmed), then acknowledges the original. If the copy is not
/// confirmed the original goes back to the queue: never both lost, at worst both kept.
/// `true` when the copy moved.
async fn move_then_ack(
    ctx: &WorkerContext,
    delivery: Delivery,
    body: &[u8],
    exchange: &str,
    queue: Option<&str>,
    properties: lapin::BasicProperties,
) -> Result<bool, lapin::Error> {
    let routing_key = queue.unwrap_or(delivery.routing_key.as_str()).to_owned();
    match ctx
        .link
        .publish(exchange, &routing_key, body, properties)
        .await
    {
        Ok(()) => delivery.ack(BasicAckOptions::default()).await.map(|_| true),
        Err(error) => {
            tracing::warn!(%error, exchange, "could not move the message; handing it back");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            requeue(&delivery).await.map(|()| false)
        }
    }
}

/// Hands a delivery back to its queue.
pub async fn requeue(delivery: &Delivery) -> Result<(), lapin::Error> {
    delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        })
        .await
        .map(drop)
}

fn headers_of(delivery: &Delivery) -> FieldTable {
    delivery.properties.headers().clone().unwrap_or_default()
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(
        crate::inbox::truncate(value, 2000).into_bytes(),
    ))
}
