//! Queue depth, consumers and dead-letter age, read from the broker periodically.
//!
//! Depth and consumer counts come from passive declarations (cheap, exact). The age of
//! the oldest dead letter is read by peeking at the head of each dead-letter queue and
//! handing it straight back: those queues have no consumers and no expiry, so a peek
//! changes nothing. The work queues' age is measured as messages are consumed (see
//! `event`, `batch`), because peeking there would compete with the consumers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lapin::options::{BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use shared::Provider;
use tokio_util::sync::CancellationToken;

use crate::context::WorkerContext;

/// How often the broker is asked.
pub const INTERVAL: Duration = Duration::from_secs(15);

/// Samples until `shutdown`.
pub async fn run(ctx: std::sync::Arc<WorkerContext>, shutdown: CancellationToken) {
    // The first sample as soon as the broker is there, so a fresh worker shows depths.
    tokio::select! {
        _ = ctx.link.wait_ready(INTERVAL) => {}
        () = shutdown.cancelled() => return,
    }
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(error) = sample(&ctx).await {
            tracing::debug!(%error, "queue sample skipped");
        }
    }
}

async fn sample(ctx: &WorkerContext) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let channel = ctx.link.open_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let mut queues: Vec<(String, &'static str)> = Vec::new();
    for provider in Provider::ALL {
        queues.push((ctx.topology.work_queue(provider), "work"));
        queues.push((ctx.topology.dead_letter_queue(provider), "dead"));
    }
    for delay in ctx.topology.retry_delays() {
        queues.push((ctx.topology.retry_exchange(*delay), "retry"));
    }
    for (queue, kind) in &queues {
        let declared = channel
            .queue_declare(queue.as_str().into(), passive, FieldTable::default())
            .await?;
        let depth = f64::from(declared.message_count());
        metrics::gauge!("hookwire_queue_messages", "queue" => queue.clone(), "kind" => *kind)
            .set(depth);
        metrics::gauge!("hookwire_queue_consumers", "queue" => queue.clone(), "kind" => *kind)
            .set(f64::from(declared.consumer_count()));
        let age = match *kind {
            "dead" if depth > 0.0 => peek_dead_at(&channel, queue)
                .await?
                .map_or(0.0, |at| (Utc::now() - at).as_seconds_f64().max(0.0)),
            "work" if depth > 0.0 => continue,
            _ => 0.0,
        };
        metrics::gauge!("hookwire_queue_oldest_message_age_seconds", "queue" => queue.clone(), "kind" => *kind)
            .set(age);
    }
    let _ = channel.close(200, "sampled".into()).await;
    Ok(())
}

/// When the dead letter at the head was dead-lettered; the message goes back unchanged.
async fn peek_dead_at(
    channel: &lapin::Channel,
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
        .and_then(|h| {
            h.inner()
                .get(&lapin::types::ShortString::from(crate::dead_header::AT))
                .cloned()
        })
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

/// Records the age of a message just taken off a work queue: in a FIFO queue with
/// active consumers, the message being delivered is the oldest one left.
pub fn record_work_age(queue: &str, received_at: DateTime<Utc>) {
    let age = (Utc::now() - received_at).as_seconds_f64().max(0.0);
    metrics::gauge!("hookwire_queue_oldest_message_age_seconds", "queue" => queue.to_owned(), "kind" => "work")
        .set(age);
}
