//! Queue depth, consumers and dead-letter age, read from the broker periodically
//! (`shared::amqp::queue_depths`). The work queues' age is measured as messages are
//! consumed (see `event`, `batch`), because peeking there would compete with the
//! consumers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::amqp::PublishError;
use shared::amqp::queue_depths::{self, QueueKind};
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

async fn sample(ctx: &WorkerContext) -> Result<(), PublishError> {
    for reading in queue_depths::read(&ctx.link, &ctx.topology).await? {
        let (queue, kind) = (reading.queue, reading.kind.as_str());
        let Some(depth) = reading.messages.map(f64::from) else {
            continue;
        };
        metrics::gauge!("hookwire_queue_messages", "queue" => queue.clone(), "kind" => kind)
            .set(depth);
        metrics::gauge!("hookwire_queue_consumers", "queue" => queue.clone(), "kind" => kind)
            .set(f64::from(reading.consumers.unwrap_or(0)));
        let age = match reading.kind {
            // Measured as messages are consumed.
            QueueKind::Work if depth > 0.0 => continue,
            QueueKind::Dead => reading
                .oldest_dead_at
                .map_or(0.0, |at| (Utc::now() - at).as_seconds_f64().max(0.0)),
            _ => 0.0,
        };
        metrics::gauge!("hookwire_queue_oldest_message_age_seconds", "queue" => queue, "kind" => kind)
            .set(age);
    }
    Ok(())
}

/// Records the age of a message just taken off a work queue: in a FIFO queue with
/// active consumers, the message being delivered is the oldest one left.
pub fn record_work_age(queue: &str, received_at: DateTime<Utc>) {
    let age = (Utc::now() - received_at).as_seconds_f64().max(0.0);
    metrics::gauge!("hookwire_queue_oldest_message_age_seconds", "queue" => queue.to_owned(), "kind" => "work")
        .set(age);
}
