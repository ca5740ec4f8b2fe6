//! The gateway's rejected-request records: each stored as the spec's `validation` log
//! entry. An unreadable record is logged and dropped: it is not worth a dead letter.

use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use tokio_util::sync::CancellationToken;

use crate::context::WorkerContext;
use crate::error::ErrorClass;
use crate::retry;
use crate::settlement;

/// Stores one record, retrying in process; acknowledges it, or hands it back when the
/// database stays away or shutdown comes first.
pub async fn process(ctx: &WorkerContext, delivery: Delivery, shutdown: &CancellationToken) {
    use backoff::backoff::Backoff;
    let mut policy = retry::inline_policy(ctx.settings.worker_inline_retry);
    let stored = loop {
        match crate::handlers::rejected::store(&ctx.db, &delivery.data).await {
            Ok(()) => break true,
            Err(error) if error.class() == ErrorClass::Permanent => {
                tracing::warn!(error = %error.describe(), "unreadable rejected-request record dropped");
                break true;
            }
            Err(error) => match policy.next_backoff() {
                Some(delay) => tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => break false,
                },
                None => {
                    tracing::warn!(error = %error.describe(), "rejected-request record not stored yet");
                    break false;
                }
            },
        }
    };
    let settled = if stored {
        delivery.ack(BasicAckOptions::default()).await.map(drop)
    } else {
        settlement::requeue(&delivery).await
    };
    if let Err(error) = settled {
        tracing::warn!(%error, "could not settle an audit record");
    }
}
