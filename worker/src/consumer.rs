//! Competing consumers on one queue: any number of worker processes share it, the
//! broker spreads deliveries, prefetch bounds what each holds.
//!
//! The loop survives broker restarts: when the channel dies it waits for the link to
//! reconnect and consumes again. Deliveries that were in flight are redelivered by the
//! broker; the inbox turns the copies into duplicates.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use shared::Provider;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::WorkerContext;
use crate::pipeline;

/// What a queue carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueKind {
    /// A provider's webhook events.
    Events(Provider),
    /// The gateway's rejected-request records.
    Rejected,
}

/// Consumes `queue` until `shutdown`; handlers run on `tracker`, at most the queue's
/// own concurrency at once (its slots are its own: one queue's slow work never
/// starves another's).
pub async fn consume(
    ctx: Arc<WorkerContext>,
    queue: String,
    kind: QueueKind,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let limits = ctx.settings.queue_limits(match kind {
        QueueKind::Events(provider) => Some(provider),
        QueueKind::Rejected => None,
    });
    let slots = Arc::new(Semaphore::new(limits.concurrency));
    while !shutdown.is_cancelled() {
        if !ctx.link.wait_ready(Duration::from_secs(1)).await {
            continue;
        }
        let channel = match ctx.link.open_channel().await {
            Ok(channel) => channel,
            Err(error) => {
                tracing::debug!(%error, %queue, "no channel yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let started = async {
            channel
                .basic_qos(limits.prefetch, BasicQosOptions::default())
                .await?;
            channel
                .basic_consume(
                    queue.as_str().into(),
                    format!("{}-{}", ctx.worker_id, queue).into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
        }
        .await;
        let mut consumer = match started {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::warn!(%error, %queue, "cannot consume; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        ctx.consuming.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%queue, "consuming");
        loop {
            tokio::select! {
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let Ok(permit) = slots.clone().acquire_owned().await else { break };
                        let ctx = ctx.clone();
                        let shutdown = shutdown.clone();
                        tracker.spawn(async move {
                            match kind {
                                QueueKind::Events(provider) => {
                                    pipeline::process_event(&ctx, provider, delivery, &shutdown).await;
                                }
                                QueueKind::Rejected => pipeline::process_rejected(&ctx, delivery, &shutdown).await,
                            }
                            drop(permit);
                        });
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, %queue, "consumer failed; re-subscribing");
                        break;
                    }
                    None => {
                        tracing::warn!(%queue, "consumer cancelled by the broker; re-subscribing");
                        break;
                    }
                },
                () = shutdown.cancelled() => {
                    // Stop new deliveries; those in hand finish (or are requeued when the
                    // channel closes at the end).
                    let _ = channel
                        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                        .await;
                    break;
                }
            }
        }
        ctx.consuming.fetch_sub(1, Ordering::Relaxed);
        if shutdown.is_cancelled() {
            // Keep the channel open until in-flight handlers have settled their deliveries.
            tracker.close();
            tracker.wait().await;
            let _ = channel.close(200, "worker stopping".into()).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
