//! Competing consumers on one queue: any number of worker processes share it, the
//! broker spreads deliveries, prefetch bounds what each holds.
//!
//! A queue gets `concurrency` slots. A slot is one consumer on its own channel taking
//! one batch at a time ([`crate::collect`]) and handing it to [`crate::batch`]. Its
//! prefetch may hold the next batch already; those deliveries came later, so their tags
//! are higher than any of the batch in hand, and one `multiple` ack up to the batch's
//! last delivery settles the batch and nothing after it.
//!
//! A slot survives broker restarts: when its channel dies it waits for the link to
//! reconnect and consumes again. Deliveries that were in flight are redelivered by the
//! broker; the inbox turns the copies into duplicates.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use shared::Provider;
use tokio_util::sync::CancellationToken;

use crate::config::QueueLimits;
use crate::context::WorkerContext;
use crate::{audit, batch, collect};

/// What a queue carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueKind {
    /// A provider's webhook events.
    Events(Provider),
    /// The gateway's rejected-request records.
    Rejected,
}

/// Consumes `queue` with its slots until `shutdown`; returns once every slot has
/// settled its batch in hand (or handed it back).
pub async fn consume(
    ctx: Arc<WorkerContext>,
    queue: String,
    kind: QueueKind,
    shutdown: CancellationToken,
) {
    let limits = ctx.settings.queue_limits(match kind {
        QueueKind::Events(provider) => Some(provider),
        QueueKind::Rejected => None,
    });
    let subscribed = Arc::new(AtomicUsize::new(0));
    let slots = (0..limits.concurrency).map(|slot| {
        let slot = Slot {
            ctx: ctx.clone(),
            queue: queue.clone(),
            tag: format!("{}-{}-{slot}", ctx.worker_id, queue),
            kind,
            limits,
            batch: collect::Limits {
                items: limits.batch,
                bytes: usize::try_from(ctx.settings.worker_batch_bytes).unwrap_or(usize::MAX),
                wait: ctx.settings.worker_batch_wait,
            },
            subscribed: subscribed.clone(),
        };
        tokio::spawn(slot.run(shutdown.clone()))
    });
    for slot in slots.collect::<Vec<_>>() {
        if let Err(error) = slot.await {
            tracing::error!(%error, %queue, "a consumer slot ended abnormally");
        }
    }
}

/// One consumer of a queue.
struct Slot {
    ctx: Arc<WorkerContext>,
    queue: String,
    tag: String,
    kind: QueueKind,
    limits: QueueLimits,
    batch: collect::Limits,
    /// The queue's slots currently subscribed; the queue counts as consumed from the
    /// first.
    subscribed: Arc<AtomicUsize>,
}

impl Slot {
    async fn run(self, shutdown: CancellationToken) {
        let ctx = &self.ctx;
        while !shutdown.is_cancelled() {
            if !ctx.link.wait_ready(Duration::from_secs(1)).await {
                continue;
            }
            let channel = match ctx.link.open_channel().await {
                Ok(channel) => channel,
                Err(error) => {
                    tracing::debug!(%error, queue = %self.queue, "no channel yet");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let started = async {
                channel
                    .basic_qos(self.limits.prefetch, BasicQosOptions::default())
                    .await?;
                channel
                    .basic_consume(
                        self.queue.as_str().into(),
                        self.tag.as_str().into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
            }
            .await;
            let mut consumer = match started {
                Ok(consumer) => consumer,
                Err(error) => {
                    tracing::warn!(%error, queue = %self.queue, "cannot consume; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if self.subscribed.fetch_add(1, Ordering::Relaxed) == 0 {
                ctx.consuming.fetch_add(1, Ordering::Relaxed);
            }
            tracing::info!(queue = %self.queue, slot = %self.tag, "consuming");
            loop {
                let next = tokio::select! {
                    // Shutdown first: with the next batch already in the prefetch, an
                    // unbiased choice could keep taking batches after SIGTERM.
                    biased;
                    () = shutdown.cancelled() => {
                        // Stop new deliveries; what the broker sent ahead goes back when
                        // the channel closes.
                        let _ = channel
                            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                            .await;
                        break;
                    }
                    next = collect::next_batch(&mut consumer, self.batch, |d| d.data.len()) => next,
                };
                let Some(deliveries) = next else {
                    tracing::warn!(queue = %self.queue, "consumer cancelled by the broker; re-subscribing");
                    break;
                };
                let mut failed = None;
                let deliveries: Vec<_> = deliveries
                    .into_iter()
                    .filter_map(|d| d.map_err(|e| failed = Some(e)).ok())
                    .collect();
                self.handle(deliveries, &shutdown).await;
                if let Some(error) = failed {
                    tracing::warn!(%error, queue = %self.queue, "consumer failed; re-subscribing");
                    break;
                }
            }
            if self.subscribed.fetch_sub(1, Ordering::Relaxed) == 1 {
                ctx.consuming.fetch_sub(1, Ordering::Relaxed);
            }
            if shutdown.is_cancelled() {
                let _ = channel.close(200, "worker stopping".into()).await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn handle(
        &self,
        deliveries: Vec<lapin::message::Delivery>,
        shutdown: &CancellationToken,
    ) {
        if deliveries.is_empty() {
            return;
        }
        match self.kind {
            QueueKind::Events(provider) => {
                batch::run(&self.ctx, provider, deliveries, shutdown).await;
            }
            QueueKind::Rejected => {
                for delivery in deliveries {
                    audit::process(&self.ctx, delivery, shutdown).await;
                }
            }
        }
    }
}
