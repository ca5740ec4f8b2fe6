//! One event handled on its own: events that call the Pluggy API (a leased claim, no
//! transaction across HTTP calls), copies of an event already in the same batch, and
//! every event whose part of a batch failed. Transient failures are retried in process
//! with backoff, then through a delayed-retry step; permanent ones are dead-lettered.
//!
//! The message is acknowledged only after the transaction that applied its effect has
//! committed, or after a copy of it is safely in a retry or dead-letter queue.

use chrono::Utc;
use sea_orm::TransactionTrait;
use shared::db::entities::webhook_event::Status;
use shared::{Envelope, Provider};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::context::WorkerContext;
use crate::error::{ErrorClass, WorkerError};
use crate::handlers::{self, Applied};
use crate::inbox::{self, Claim};
use crate::incoming::Incoming;
use crate::logs;
use crate::retry;
use crate::settled::{self, Outcome};
use crate::settlement::{self, Disposition, Failure};
use crate::telemetry::db_span;

/// How one event's handling ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Its effect is committed (in this inbox row).
    Applied(Applied, Uuid),
    /// A copy had already been handled (in this inbox row): no effect.
    Duplicate(Uuid),
}

/// Handles `incoming` alone and settles it.
pub async fn process(ctx: &WorkerContext, incoming: Incoming, shutdown: &CancellationToken) {
    let disposition = decide(ctx, &incoming, shutdown)
        .instrument(incoming.span.clone())
        .await;
    settlement::settle(ctx, incoming, disposition).await;
}

/// Counts a committed outcome; the delivery is then acknowledged.
pub fn record(ctx: &WorkerContext, incoming: &Incoming, dedupe_key: &str, handled: Handled) {
    match handled {
        Handled::Applied(applied, id) => {
            ctx.stats.record_applied(applied);
            incoming
                .labels
                .count("hookwire_worker_messages_succeeded_total");
            settled::record(incoming, Outcome::Applied(applied), Some(id));
        }
        Handled::Duplicate(id) => {
            ctx.stats.record_duplicate();
            incoming
                .labels
                .count("hookwire_worker_duplicates_skipped_total");
            tracing::debug!(parent: &incoming.span, dedupe_key = %dedupe_key, "duplicate event");
            settled::record(incoming, Outcome::Duplicate, Some(id));
        }
    }
}

async fn decide(
    ctx: &WorkerContext,
    incoming: &Incoming,
    shutdown: &CancellationToken,
) -> Disposition {
    let attempt = incoming.attempt;
    let envelope = match &incoming.envelope {
        Err(error) => {
            log_error(ctx, incoming.provider, None, error).await;
            return Disposition::DeadLetter {
                attempt,
                failure: Failure::from(error),
            };
        }
        Ok(envelope) => envelope,
    };
    let dedupe_key = handlers::dedupe_key(envelope);
    match handle_with_backoff(ctx, envelope, &dedupe_key, shutdown).await {
        Ok(handled) => {
            record(ctx, incoming, &dedupe_key, handled);
            Disposition::Ack
        }
        Err(None) => Disposition::Requeue,
        Err(Some(error)) => give_up(ctx, incoming, &error).await,
    }
}

/// After the in-process retries: a dead letter when the error is permanent or this
/// was the last attempt (the inbox row and the spec's log say so too), else the next
/// delayed-retry step.
pub async fn give_up(ctx: &WorkerContext, incoming: &Incoming, error: &WorkerError) -> Disposition {
    let attempt = incoming.attempt;
    let failure = Failure::from(error);
    let Ok(envelope) = &incoming.envelope else {
        return Disposition::DeadLetter { attempt, failure };
    };
    if failure.class == ErrorClass::Permanent || attempt >= ctx.settings.worker_max_attempts {
        // With the database away, the dead-letter headers tell the story alone: each
        // write would only wait out the pool's acquire timeout.
        if !error.is_database_unreachable() {
            let dedupe_key = handlers::dedupe_key(envelope);
            inbox::mark_dead(&ctx.db, envelope.provider, &dedupe_key, &failure.reason).await;
            log_error(ctx, envelope.provider, Some(envelope), error).await;
        }
        Disposition::DeadLetter { attempt, failure }
    } else {
        Disposition::Retry { attempt, failure }
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
        .instrument(db_span(&ctx.db, "claim", 1, &tracing::Span::current()))
        .await?;
        let (txn, owner) = match claimed {
            (txn, Some(Claim::Owned(owner))) => (txn, owner),
            (txn, Some(Claim::Duplicate(id))) => {
                txn.commit().await?;
                return Ok(Handled::Duplicate(id));
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
            .instrument(db_span(&ctx.db, "apply", 1, &tracing::Span::current()))
            .await
            .map(|applied| Handled::Applied(applied, owner.id))
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
    // Before the claim: a waiting event holds no lease, only its unacknowledged delivery.
    let item = handlers::sync_key(envelope);
    let _one_sync_per_item = match &item {
        Some(item) => Some(ctx.item_syncs.enter(item).await),
        None => None,
    };
    let owner = match inbox::claim(&ctx.db, envelope, dedupe_key, lease)
        .instrument(db_span(&ctx.db, "claim", 1, &tracing::Span::current()))
        .await?
    {
        None => return Err(WorkerError::ClaimedElsewhere(None)),
        Some(Claim::Busy(until)) => return Err(WorkerError::ClaimedElsewhere(Some(until))),
        Some(Claim::Duplicate(id)) => return Ok(Handled::Duplicate(id)),
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
        .instrument(db_span(&ctx.db, "apply", 1, &tracing::Span::current()))
        .await
    }
    .await;
    match outcome {
        Ok(applied) => Ok(Handled::Applied(applied, owner.id)),
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
        let written = logs::Buffer::default();
        let scope = handlers::Scope {
            written: &written,
            livetip: None,
            created: None,
        };
        let applied = handlers::apply(&txn, envelope, owner.id, prepared, &scope).await?;
        written.flush(&txn).await?;
        if !inbox::complete(&txn, owner, applied.status(), &ctx.worker_id).await? {
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
pub fn failed_status(error: &WorkerError) -> Status {
    match error.class() {
        ErrorClass::Transient => Status::Retrying,
        ErrorClass::Permanent => Status::Dead,
    }
}

/// The spec's `error` log entry for an event given up on (best effort: the database
/// may be the very reason).
async fn log_error(
    ctx: &WorkerContext,
    provider: Provider,
    envelope: Option<&Envelope>,
    error: &WorkerError,
) {
    let entry = logs::LogEntry {
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
        ..logs::LogEntry::default()
    };
    if let Err(e) = logs::write(&ctx.db, entry).await {
        tracing::debug!(error = %e, "error log not written");
    }
}
