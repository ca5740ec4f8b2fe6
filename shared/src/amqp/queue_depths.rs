//! How many messages wait in each of our queues and since when the oldest dead letter
//! waits: one reading behind the worker's queue gauges and the admin console's overview.
//!
//! Depths come from passive declarations (cheap, exact, no side effect). The oldest
//! dead letter is read by peeking at the head of its queue and handing it straight
//! back: dead-letter queues have no consumers and no expiry, so a peek changes nothing.
//! Work queues are never peeked: a message handed back there would compete with the
//! consumers and count as a delivery.

use chrono::{DateTime, Utc};
use lapin::Channel;
use lapin::options::{BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};

use super::{BrokerLink, PublishError, Topology, dead_header};
use crate::Provider;

/// What a queue holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueKind {
    /// A provider's events waiting for a worker.
    Work,
    /// Events waiting out a retry step.
    Retry,
    /// Events that no retry can help, waiting for an operator.
    Dead,
    /// Requests the gateway refused, kept for inspection.
    Rejected,
}

impl QueueKind {
    /// Label value (`kind`) of the queue gauges and the overview.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Work => "work",
            Self::Retry => "retry",
            Self::Dead => "dead",
            Self::Rejected => "rejected",
        }
    }
}

/// One queue's reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueDepth {
    /// Queue name.
    pub queue: String,
    /// What it holds.
    pub kind: QueueKind,
    /// Whose events (work and dead-letter queues).
    pub provider: Option<Provider>,
    /// Messages ready; `None` when the queue does not exist (a retry step this
    /// process does not know, a worker never started).
    pub messages: Option<u32>,
    /// Consumers attached.
    pub consumers: Option<u32>,
    /// Dead-letter queues: when the letter at the head was dead-lettered.
    pub oldest_dead_at: Option<DateTime<Utc>>,
}

/// Every queue of `topology`, in a stable order: work, retry steps, dead letters,
/// rejected.
fn queues(topology: &Topology) -> Vec<(String, QueueKind, Option<Provider>)> {
    let mut all = Vec::new();
    for provider in Provider::ALL {
        all.push((
            topology.work_queue(provider),
            QueueKind::Work,
            Some(provider),
        ));
    }
    for delay in topology.retry_delays() {
        all.push((topology.retry_exchange(*delay), QueueKind::Retry, None));
    }
    for provider in Provider::ALL {
        all.push((
            topology.dead_letter_queue(provider),
            QueueKind::Dead,
            Some(provider),
        ));
    }
    all.push((topology.rejected_queue(), QueueKind::Rejected, None));
    all
}

/// Reads every queue of `topology`.
pub async fn read(link: &BrokerLink, topology: &Topology) -> Result<Vec<QueueDepth>, PublishError> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let mut channel = link.open_channel().await?;
    let mut readings = Vec::new();
    for (queue, kind, provider) in queues(topology) {
        let mut reading = QueueDepth {
            queue,
            kind,
            provider,
            messages: None,
            consumers: None,
            oldest_dead_at: None,
        };
        match channel
            .queue_declare(
                reading.queue.as_str().into(),
                passive,
                FieldTable::default(),
            )
            .await
        {
            Ok(declared) => {
                reading.messages = Some(declared.message_count());
                reading.consumers = Some(declared.consumer_count());
                if kind == QueueKind::Dead && declared.message_count() > 0 {
                    // The depth stands without the age; a failed peek closed the
                    // channel, so the next queue gets a new one.
                    match peek_dead_at(&channel, &reading.queue).await {
                        Ok(at) => reading.oldest_dead_at = at,
                        Err(error) => {
                            tracing::warn!(%error, queue = %reading.queue, "dead-letter age not read");
                            channel = link.open_channel().await?;
                        }
                    }
                }
            }
            // The broker closes a channel on a missing queue: go on with a new one.
            Err(_) => channel = link.open_channel().await?,
        }
        readings.push(reading);
    }
    let _ = channel.close(200, "queues read".into()).await;
    Ok(readings)
}

/// When the dead letter at the head was dead-lettered; the message goes back unchanged.
async fn peek_dead_at(
    channel: &Channel,
    queue: &str,
) -> Result<Option<DateTime<Utc>>, lapin::Error> {
    let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await?
    else {
        return Ok(None);
    };
    let at = message
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(&ShortString::from(dead_header::AT)).cloned())
        .and_then(|v| match v {
            AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            _ => None,
        })
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc));
    message
        .delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        })
        .await?;
    Ok(at)
}
