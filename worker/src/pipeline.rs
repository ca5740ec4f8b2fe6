//! One delivery, from arrival to its settlement: ack, retry later, or dead-letter.
//!
//! The message is acknowledged only after the transaction that applied its effect has
//! committed, or after a copy of it is safely in a retry or dead-letter queue
//! (confirmed by the broker). A crash anywhere in between leaves it unacknowledged, and
//! the broker redelivers it.

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use sea_orm::TransactionTrait;
use shared::db::entities::webhook_event::Status;
use shared::{Envelope, Provider};
use tokio_util::sync::CancellationToken;

use crate::context::WorkerContext;
use crate::error::{ErrorClass, WorkerError};
use crate::handlers::{self, Applied};
use crate::inbox::{self, Claim};
use crate::retry::{self, ATTEMPTS_HEADER};
use crate::telemetry;
use tracing::Instrument;

pub use crate::dead_header;

/// How one event's handling ended.
enum Handled {
    Applied(Applied),
    Duplicate,
}

/// What to do with the delivery.
enum Disposition {
    Ack,
    /// Shutdown interrupted the handling: give the message back untouched.
    Requeue,
    Retry {
        attempt: u32,
        error: WorkerError,
    },
    DeadLetter {
        attempt: u32,
        error: WorkerError,
    },
}

/// Handles one event delivery from `provider`'s work queue, inside its consume span.
pub async fn process_event(
    ctx: &WorkerContext,
    provider: Provider,
    delivery: Delivery,
    shutdown: &CancellationToken,
) {
    let attempt = retry::attempts(&delivery.properties) + 1;
    let envelope = Envelope::from_amqp(&delivery.properties, Bytes::from(delivery.data.clone()));
    let queue = ctx.topology.work_queue(provider);
    let span =
        telemetry::consume_span(&queue, provider, &delivery, envelope.as_ref().ok(), attempt);
    let labels =
        telemetry::EventLabels::new(provider, envelope.as_ref().map_or("", |e| e.event.as_str()));
    labels.count("hookwire_worker_messages_consumed_total");
    if delivery.redelivered {
        ctx.stats.record_redelivery();
        labels.count("hookwire_worker_messages_redelivered_total");
    }
    if let Ok(envelope) = &envelope {
        crate::queue_monitor::record_work_age(&queue, envelope.received_at);
    }
    let started = std::time::Instant::now();
    let disposition = decide(ctx, provider, envelope, attempt, labels, shutdown)
        .instrument(span.clone())
        .await;
    labels.handled_in(started.elapsed().as_secs_f64());
    if let Disposition::DeadLetter { error, .. } = &disposition {
        telemetry::record_error(&span, &error.describe());
    }
    settle(ctx, provider, delivery, disposition, labels)
        .instrument(span)
        .await;
}

async fn decide(
    ctx: &WorkerContext,
    provider: Provider,
    envelope: Result<Envelope, shared::envelope::EnvelopeError>,
    attempt: u32,
    labels: telemetry::EventLabels,
    shutdown: &CancellationToken,
) -> Disposition {
    match envelope {
        Err(error) => {
            let error = WorkerError::from(error);
            log_error(ctx, provider, None, &error).await;
            Disposition::DeadLetter { attempt, error }
        }
        Ok(envelope) => {
            let dedupe_key = handlers::dedupe_key(&envelope);
            match handle_with_backoff(ctx, &envelope, &dedupe_key, shutdown).await {
                Ok(Handled::Applied(applied)) => {
                    ctx.stats.record_applied(applied);
                    labels.count("hookwire_worker_messages_succeeded_total");
                    tracing::debug!(?applied, "event applied");
                    Disposition::Ack
                }
                Ok(Handled::Duplicate) => {
                    ctx.stats.record_duplicate();
                    labels.count("hookwire_worker_duplicates_skipped_total");
                    tracing::info!(
                        dedupe_key = %dedupe_key,
                        "duplicate event acknowledged without effect"
                    );
                    Disposition::Ack
                }
                Err(None) => Disposition::Requeue,
                Err(Some(error)) => {
                    let dead = error.class() == ErrorClass::Permanent
                        || attempt >= ctx.settings.worker_max_attempts;
                    if dead {
                        inbox_mark_dead(ctx, &envelope, &dedupe_key, &error).await;
                        log_error(ctx, provider, Some(&envelope), &error).await;
                        Disposition::DeadLetter { attempt, error }
                    } else {
                        Disposition::Retry { attempt, error }
                    }
                }
            }
        }
    }
}

/// Retries transient failures in process, with backoff, within the inline budget.
/// A claim held under another worker's live lease is waited out instead (until the
/// lease ends, within two leases): the wait is the lease's, not a failure's.
/// `Err(None)` means shutdown interrupted the waiting.
async fn handle_with_backoff(
    ctx: &WorkerContext,
    envelope: &Envelope,
    dedupe_key: &str,
    shutdown: &CancellationToken,
) -> Result<Handled, Option<WorkerError>> {
    use backoff::backoff::Backoff;
    let mut policy = retry::inline_policy(ctx.settings.worker_inline_retry);
    // A live owner renews its lease: past two leases of waiting it is still working,
    // and the event goes the way of other transient failures.
    let lease_budget = ctx.settings.worker_lease.saturating_mul(2);
    let mut lease_waited = std::time::Duration::ZERO;
    loop {
        let delay = match handle_once(ctx, envelope, dedupe_key).await {
            Ok(handled) => return Ok(handled),
            Err(error) if error.class() == ErrorClass::Permanent => return Err(Some(error)),
            Err(WorkerError::ClaimedElsewhere(Some(until))) if lease_waited < lease_budget => {
                let delay = retry::until_lease_ends(until, Utc::now());
                lease_waited += delay;
                tracing::debug!(
                    ?delay,
                    "event held under another worker's lease; waiting it out"
                );
                delay
            }
            Err(error) => {
                ctx.stats.record_failed_attempt();
                let Some(delay) = policy.next_backoff() else {
                    return Err(Some(error));
                };
                tracing::debug!(error = %error.describe(), ?delay, "transient failure; retrying in process");
                delay
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return Err(None),
        }
    }
}

/// Claim, apply, mark done, commit: one attempt.
async fn handle_once(
    ctx: &WorkerContext,
    envelope: &Envelope,
    dedupe_key: &str,
) -> Result<Handled, WorkerError> {
    if handlers::calls_provider_api(envelope, ctx.pluggy.is_some()) {
        handle_leased(ctx, envelope, dedupe_key).await
    } else {
        handle_in_transaction(ctx, envelope, dedupe_key).await
    }
}

fn db_span(ctx: &WorkerContext, operation: &'static str) -> tracing::Span {
    let db_system = match ctx.db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => "postgresql",
        sea_orm::DatabaseBackend::Sqlite => "sqlite",
        _ => "other_sql",
    };
    tracing::info_span!(
        "db",
        otel.name = format!("{operation} webhook_events"),
        otel.kind = "client",
        db.system.name = db_system,
        db.operation.name = operation,
        db.collection.name = "webhook_events",
    )
}

/// An event whose effect is one transaction: the claim is part of it, so a worker that
/// dies mid-way leaves nothing behind and the redelivered copy is applied at once.
async fn handle_in_transaction(
    ctx: &WorkerContext,
    envelope: &Envelope,
    dedupe_key: &str,
) -> Result<Handled, WorkerError> {
    let outcome = async {
        let prepared = handlers::prepare(&ctx.db, ctx.pluggy.as_ref(), envelope)
            .instrument(tracing::info_span!("prepare", event = %envelope.event))
            .await?;
        let claimed = async {
            let txn = ctx.db.begin().await?;
            let claim = inbox::claim(&txn, envelope, dedupe_key, ctx.settings.worker_lease).await?;
            Ok::<_, WorkerError>((txn, claim))
        }
        .instrument(db_span(ctx, "claim"))
        .await?;
        let (txn, owner) = match claimed {
            (txn, Some(Claim::Owned(owner))) => (txn, owner),
            (txn, Some(Claim::Duplicate)) => {
                txn.commit().await?;
                return Ok(Handled::Duplicate);
            }
            (txn, busy) => {
                txn.rollback().await?;
                return Err(WorkerError::ClaimedElsewhere(match busy {
                    Some(Claim::Busy(until)) => Some(until),
                    _ => None,
                }));
            }
        };
        apply_and_commit(ctx, txn, envelope, owner, prepared)
            .instrument(db_span(ctx, "apply"))
            .await
            .map(Handled::Applied)
    }
    .await;
    if let Err(error) = &outcome
        && !matches!(error, WorkerError::ClaimedElsewhere(_))
        && !error.is_database_unreachable()
    {
        inbox::record_failure(
            &ctx.db,
            envelope,
            dedupe_key,
            failed_status(error),
            &error.describe(),
        )
        .await;
    }
    outcome
}

/// An event that calls the Pluggy API between claim and write: the claim is committed
/// with a lease, renewed while the calls run, so no transaction spans HTTP requests.
async fn handle_leased(
    ctx: &WorkerContext,
    envelope: &Envelope,
    dedupe_key: &str,
) -> Result<Handled, WorkerError> {
    let lease = ctx.settings.worker_lease;
    let owner = match inbox::claim(&ctx.db, envelope, dedupe_key, lease)
        .instrument(db_span(ctx, "claim"))
        .await?
    {
        None => return Err(WorkerError::ClaimedElsewhere(None)),
        Some(Claim::Busy(until)) => return Err(WorkerError::ClaimedElsewhere(Some(until))),
        Some(Claim::Duplicate) => return Ok(Handled::Duplicate),
        Some(Claim::Owned(owner)) => owner,
    };
    let outcome = async {
        let prepare = handlers::prepare(&ctx.db, ctx.pluggy.as_ref(), envelope)
            .instrument(tracing::info_span!("prepare", event = %envelope.event));
        let prepared = tokio::select! {
            prepared = prepare => prepared?,
            () = retry::keep_alive(lease, || inbox::renew(&ctx.db, owner, lease)) => {
                return Err(WorkerError::ClaimedElsewhere(None));
            }
        };
        async {
            let txn = ctx.db.begin().await?;
            apply_and_commit(ctx, txn, envelope, owner, prepared).await
        }
        .instrument(db_span(ctx, "apply"))
        .await
    }
    .await;
    match outcome {
        Ok(applied) => Ok(Handled::Applied(applied)),
        Err(error) => {
            inbox::release(&ctx.db, owner, failed_status(&error), &error.describe()).await;
            Err(error)
        }
    }
}

/// Applies the effect, marks the event done and commits; on any failure the
/// transaction is rolled back at once (not when the connection is next used), so the
/// claim's key is free for the failure record and the next copy.
async fn apply_and_commit(
    ctx: &WorkerContext,
    txn: sea_orm::DatabaseTransaction,
    envelope: &Envelope,
    owner: inbox::Owner,
    prepared: handlers::Prepared,
) -> Result<Applied, WorkerError> {
    let applied = async {
        let applied = handlers::apply(&txn, envelope, owner.id, prepared).await?;
        let status = match applied {
            Applied::Processed => Status::Processed,
            Applied::Ignored => Status::Ignored,
            Applied::Rejected => Status::Rejected,
        };
        if !inbox::complete(&txn, owner, status, &ctx.worker_id).await? {
            // Our lease expired and another copy took the event over: it will finish it.
            return Err(WorkerError::ClaimedElsewhere(None));
        }
        Ok(applied)
    }
    .await;
    match applied {
        Ok(applied) => {
            txn.commit().await?;
            Ok(applied)
        }
        Err(error) => {
            if let Err(rollback) = txn.rollback().await {
                tracing::debug!(error = %rollback, "rollback failed; the connection is dropped");
            }
            Err(error)
        }
    }
}

/// The inbox status a failed attempt leaves.
fn failed_status(error: &WorkerError) -> Status {
    match error.class() {
        ErrorClass::Transient => Status::Retrying,
        ErrorClass::Permanent => Status::Dead,
    }
}

/// Marks the event dead in the inbox so the row tells the same story as the queue.
async fn inbox_mark_dead(
    ctx: &WorkerContext,
    envelope: &Envelope,
    dedupe_key: &str,
    error: &WorkerError,
) {
    inbox::mark_dead(&ctx.db, envelope.provider, dedupe_key, &error.describe()).await;
}

/// The spec's `error` log entry for an event given up on (best effort: the database
/// may be the very reason).
async fn log_error(
    ctx: &WorkerContext,
    provider: Provider,
    envelope: Option<&Envelope>,
    error: &WorkerError,
) {
    let entry = crate::logs::LogEntry {
        log_type: "error",
        event: envelope.map(|e| e.event.clone()),
        status: "error",
        data: Some(
            serde_json::json!({
                "reason": error.describe(),
                "class": error.class().as_str(),
                "requestId": envelope.map(|e| e.request_id.to_string()),
            })
            .to_string(),
        ),
        ip: envelope.and_then(|e| e.client_ip).map(|ip| ip.to_string()),
        provider: Some(provider.as_str()),
        trace_id: envelope.map(|e| e.trace.trace_id()),
        ..crate::logs::LogEntry::default()
    };
    if let Err(e) = crate::logs::write(&ctx.db, entry).await {
        tracing::debug!(error = %e, "error log not written");
    }
}

async fn settle(
    ctx: &WorkerContext,
    provider: Provider,
    delivery: Delivery,
    disposition: Disposition,
    labels: telemetry::EventLabels,
) {
    let settled = match disposition {
        Disposition::Ack => delivery.ack(BasicAckOptions::default()).await.map(drop),
        Disposition::Requeue => requeue(&delivery).await,
        Disposition::Retry { attempt, error } => {
            let delay = retry::delay_after(attempt, ctx.topology.retry_delays());
            let exchange = ctx.topology.retry_exchange(delay);
            let mut headers = headers_of(&delivery);
            headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongUInt(attempt));
            headers.insert("x-hookwire-last-error".into(), text(&error.describe()));
            let properties = delivery.properties.clone().with_headers(headers);
            tracing::warn!(
                provider = provider.as_str(),
                attempt,
                ?delay,
                error = %error.describe(),
                "event failed; scheduled for a delayed retry"
            );
            ctx.stats.record_retry();
            labels.count("hookwire_worker_messages_retried_total");
            move_then_ack(ctx, delivery, &exchange, None, properties).await
        }
        Disposition::DeadLetter { attempt, error } => {
            let queue = ctx.topology.dead_letter_queue(provider);
            let mut headers = headers_of(&delivery);
            headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongUInt(attempt));
            headers.insert(dead_header::REASON.into(), text(&error.describe()));
            headers.insert(dead_header::CLASS.into(), text(error.class().as_str()));
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
                class = error.class().as_str(),
                error = %error.describe(),
                "event dead-lettered"
            );
            ctx.stats.record_dead_letter();
            labels.count("hookwire_worker_messages_dead_lettered_total");
            move_then_ack(ctx, delivery, "", Some(&queue), properties).await
        }
    };
    if let Err(error) = settled {
        // The channel is gone; the broker redelivers the message to someone.
        tracing::warn!(%error, "could not settle a delivery; the broker will redeliver it");
    }
}

/// Publishes a copy (confirmed), then acknowledges the original. If the copy is not
/// confirmed the original goes back to the queue: never both lost, at worst both kept.
async fn move_then_ack(
    ctx: &WorkerContext,
    delivery: Delivery,
    exchange: &str,
    queue: Option<&str>,
    properties: lapin::BasicProperties,
) -> Result<(), lapin::Error> {
    let routing_key = queue.unwrap_or(delivery.routing_key.as_str()).to_owned();
    match ctx
        .link
        .publish(exchange, &routing_key, &delivery.data, properties)
        .await
    {
        Ok(()) => delivery.ack(BasicAckOptions::default()).await.map(drop),
        Err(error) => {
            tracing::warn!(%error, exchange, "could not move the message; handing it back");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            requeue(&delivery).await
        }
    }
}

async fn requeue(delivery: &Delivery) -> Result<(), lapin::Error> {
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
    AMQPValue::LongString(LongString::from(inbox::truncate(value, 2000).into_bytes()))
}

/// Handles one record from the rejected-request audit queue.
pub async fn process_rejected(
    ctx: &WorkerContext,
    delivery: Delivery,
    shutdown: &CancellationToken,
) {
    use backoff::backoff::Backoff;
    let mut policy = retry::inline_policy(ctx.settings.worker_inline_retry);
    let disposition = loop {
        match crate::handlers::rejected::store(&ctx.db, &delivery.data).await {
            Ok(()) => break Disposition::Ack,
            Err(error) if error.class() == ErrorClass::Permanent => {
                // An unreadable audit record is not worth a dead letter: log and drop.
                tracing::warn!(error = %error.describe(), "unreadable rejected-request record dropped");
                break Disposition::Ack;
            }
            Err(error) => match policy.next_backoff() {
                Some(delay) => tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => break Disposition::Requeue,
                },
                None => {
                    tracing::warn!(error = %error.describe(), "rejected-request record not stored yet");
                    break Disposition::Requeue;
                }
            },
        }
    };
    let settled = match disposition {
        Disposition::Ack => delivery.ack(BasicAckOptions::default()).await.map(drop),
        _ => requeue(&delivery).await,
    };
    if let Err(error) = settled {
        tracing::warn!(%error, "could not settle an audit record");
    }
}
