//! A batch of deliveries from one slot, handled in one database transaction.
//!
//! 1. Each delivery is read; those that cannot join the transaction are handled alone
//!    afterwards: unreadable envelopes, Pluggy events that call the API (no transaction
//!    may span HTTP calls; they keep their leased claim), and a second copy of an event
//!    already in the batch.
//! 2. One transaction: one statement claims every event (copies of finished events
//!    recognised and counted in the same round trip), one query reads which LiveTip ids
//!    are bound, then each effect in delivery order under its own savepoint, so that one
//!    event's failure undoes only its own writes; the spec's log rows and the inbox
//!    updates as multi-row statements; one commit.
//! 3. Every event without a committed outcome (its effect failed, or the transaction
//!    did) is handled alone, as [`crate::event`] does: in-process backoff, then a retry
//!    step or a dead letter, each settled on its own. Then one `multiple` ack covers the
//!    committed ones.
//!
//! A crash after the commit and before the ack: the broker redelivers the batch, and
//! the claim statement finds every event finished: acknowledged as duplicates.
//!
//! What a batch costs in isolation, knowingly:
//! - its row locks are held until the one commit, so two batches (two slots or two
//!   replicas) touching the same payments in opposite orders can deadlock; PostgreSQL
//!   aborts one statement after `deadlock_timeout`, that event is rolled back to its
//!   savepoint and handled alone;
//! - a statement of the batch as a whole (the created payments, the logs, the inbox
//!   updates) that fails undoes the batch: it is retried whole, or, refused for good,
//!   its events are handled one by one, which isolates the culprit.

use std::collections::HashSet;

use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use shared::db::entities::webhook_event::Status;
use shared::{Envelope, Provider};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::context::WorkerContext;
use crate::error::{ErrorClass, WorkerError};
use crate::event::{self, Handled};
use crate::handlers::livetip::{Created, LiveTipBatch};
use crate::handlers::{self, Prepared, Scope};
use crate::inbox::{self, Claimed};
use crate::incoming::Incoming;
use crate::logs;
use crate::retry;
use crate::savepoint::Effect;
use crate::settlement::{self, Disposition};
use crate::telemetry::db_span;

/// Handles and settles a batch of deliveries from `provider`'s work queue.
pub async fn run(
    ctx: &WorkerContext,
    provider: Provider,
    deliveries: Vec<lapin::message::Delivery>,
    shutdown: &CancellationToken,
) {
    metrics::histogram!("hookwire_worker_batch_size", "provider" => provider.as_str())
        .record(deliveries.len() as f64);
    let items: Vec<Incoming> = deliveries
        .into_iter()
        .map(|delivery| Incoming::read(ctx, provider, delivery))
        .collect();
    let keys: Vec<Option<String>> = items
        .iter()
        .map(|item| item.envelope.as_ref().ok().map(handlers::dedupe_key))
        .collect();
    let mut seen = HashSet::new();
    let members: Vec<usize> = (0..items.len())
        .filter(|&i| match (&items[i].envelope, &keys[i]) {
            (Ok(envelope), Some(key)) => {
                !handlers::calls_provider_api(envelope, ctx.pluggy.is_some())
                    && seen.insert(key.as_str())
            }
            _ => false,
        })
        .collect();
    let mut outcomes = vec![None; items.len()];
    if !members.is_empty() {
        match with_backoff(ctx, &items, &keys, &members, shutdown).await {
            Ok(committed) => {
                for (i, handled) in committed {
                    outcomes[i] = Some(handled);
                }
            }
            Err(Failed::Alone) => {}
            Err(Failed::Settle(settle)) => {
                for (i, item) in items.into_iter().enumerate() {
                    let disposition = match &settle {
                        _ if !members.contains(&i) => None,
                        None => Some(Disposition::Requeue),
                        Some(error) => Some(event::give_up(ctx, &item, error).await),
                    };
                    match disposition {
                        Some(disposition) => settlement::settle(ctx, item, disposition).await,
                        None => event::process(ctx, item, shutdown).await,
                    }
                }
                return;
            }
        }
    }
    let mut done = Vec::new();
    for ((item, key), outcome) in items.into_iter().zip(keys).zip(outcomes) {
        match (outcome, key) {
            (Some(handled), Some(key)) => {
                event::record(ctx, &item, &key, handled);
                item.labels.handled_in(item.started.elapsed().as_secs_f64());
                done.push(item);
            }
            // Settled alone before the batch's ack, which must not cover it unsettled.
            _ => event::process(ctx, item, shutdown).await,
        }
    }
    if let Some(last) = done.last() {
        settlement::ack_through(&last.delivery).await;
    }
}

/// Why a batch did not commit, and what becomes of its members.
enum Failed {
    /// One of its events failed with nothing to isolate it (the only one claimed), or
    /// a statement was refused for good: each event is handled alone, which finds out.
    Alone,
    /// The batch as a whole kept failing (the database away) past the in-process
    /// budget, or shutdown came (`None`): every member settles with that, at once,
    /// instead of waiting the same outage out one event at a time.
    Settle(Option<WorkerError>),
}

/// The batch's transaction, retried whole with backoff while what fails is the batch
/// itself (a database away, a deadlock), within the in-process budget.
async fn with_backoff(
    ctx: &WorkerContext,
    items: &[Incoming],
    keys: &[Option<String>],
    members: &[usize],
    shutdown: &CancellationToken,
) -> Result<Vec<(usize, Handled)>, Failed> {
    use backoff::backoff::Backoff;
    let mut policy = retry::inline_policy(ctx.settings.worker_inline_retry);
    loop {
        let error = match transaction(ctx, items, keys, members).await {
            Ok(committed) => return Ok(committed),
            Err(Failure::Event) => return Err(Failed::Alone),
            Err(Failure::Batch(error)) if error.class() == ErrorClass::Permanent => {
                tracing::debug!(error = %error.describe(), "batch refused; its events are handled one by one");
                return Err(Failed::Alone);
            }
            Err(Failure::Batch(error)) => error,
        };
        for _ in members {
            ctx.stats.record_failed_attempt();
        }
        let Some(delay) = policy.next_backoff() else {
            return Err(Failed::Settle(Some(error)));
        };
        tracing::debug!(error = %error.describe(), ?delay, "batch failed; retrying it in process");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return Err(Failed::Settle(None)),
        }
    }
}

/// What ended one try of the transaction (rolled back).
enum Failure {
    /// A statement of the batch as a whole.
    Batch(WorkerError),
    /// The only claimed event's effect.
    Event,
}

impl From<sea_orm::DbErr> for Failure {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Batch(error.into())
    }
}

impl From<WorkerError> for Failure {
    fn from(error: WorkerError) -> Self {
        Self::Batch(error)
    }
}

/// The batch's transaction; answers the committed outcome of each member it settled.
async fn transaction(
    ctx: &WorkerContext,
    items: &[Incoming],
    keys: &[Option<String>],
    members: &[usize],
) -> Result<Vec<(usize, Handled)>, Failure> {
    let envelope = |i: usize| items[i].envelope.as_ref().ok();
    // Parsing (and any read a plan needs) before the transaction; an event that fails
    // here is handled alone, where its error is classified and settled.
    let mut prepared: Vec<(usize, &Envelope, &str, Prepared)> = Vec::with_capacity(members.len());
    for &i in members {
        let (Some(envelope), Some(key)) = (envelope(i), keys[i].as_deref()) else {
            continue;
        };
        if let Ok(plan) = handlers::prepare(&ctx.db, ctx.pluggy.as_ref(), envelope)
            .instrument(items[i].span.clone())
            .await
        {
            prepared.push((i, envelope, key, plan));
        }
    }
    if prepared.is_empty() {
        return Ok(Vec::new());
    }
    let txn = ctx.db.begin().await?;
    match effects(ctx, &txn, items, prepared).await {
        Ok(committed) => {
            let spans: Vec<_> = committed
                .iter()
                .map(|(i, _)| db_span(&ctx.db, "commit", committed.len(), &items[*i].span))
                .collect();
            txn.commit().await?;
            drop(spans);
            Ok(committed)
        }
        Err(error) => {
            if let Err(rollback) = txn.rollback().await {
                tracing::debug!(error = %rollback, "rollback failed; the connection is dropped");
            }
            Err(error)
        }
    }
}

/// Claims, applies and marks done, up to (not including) the commit.
async fn effects(
    ctx: &WorkerContext,
    txn: &DatabaseTransaction,
    items: &[Incoming],
    prepared: Vec<(usize, &Envelope, &str, Prepared)>,
) -> Result<Vec<(usize, Handled)>, Failure> {
    let size = prepared.len();
    let now = chrono::Utc::now();
    let wanted: Vec<(&Envelope, &str)> = prepared.iter().map(|(_, e, k, _)| (*e, *k)).collect();
    let spans: Vec<_> = prepared
        .iter()
        .map(|(i, ..)| db_span(&ctx.db, "claim", size, &items[*i].span))
        .collect();
    let claims =
        inbox::claim_batch(txn, &wanted, ctx.settings.worker_lease, &ctx.worker_id, now).await?;
    let mut livetip_ids = HashSet::new();
    let mut senders = HashSet::new();
    for ((.., plan), claim) in prepared.iter().zip(&claims) {
        if let (Prepared::LiveTip(event), Claimed::Owned { .. }) = (plan, claim) {
            livetip_ids.insert(event.payment.payment_id.clone());
            senders.insert(event.payment.sender.clone());
        }
    }
    // The set reads pay off from two LiveTip events on; a lone one (the usual case at
    // low rates) reads and writes as it would alone, for the fewest round trips.
    let livetip = if livetip_ids.len() > 1 {
        Some(custom_plans(txn, LiveTipBatch::read(txn, livetip_ids, senders)).await?)
    } else {
        None
    };
    drop(spans);

    let owned = claims
        .iter()
        .filter(|c| matches!(c, Claimed::Owned { .. }))
        .count();
    let written = logs::Buffer::default();
    let mut done: Vec<(Claimed, Status)> = Vec::with_capacity(owned);
    let mut committed = Vec::with_capacity(size);
    let mut effect = Effect::new(txn, owned > 1);
    for ((i, envelope, _, plan), claim) in prepared.into_iter().zip(claims) {
        let row = match claim {
            Claimed::Owned { id, .. } => id,
            Claimed::Duplicate(id) => {
                committed.push((i, Handled::Duplicate(id)));
                continue;
            }
            Claimed::Elsewhere => continue,
        };
        effect.next();
        let own = logs::Buffer::default();
        let created = Created::default();
        let scope = Scope {
            written: &own,
            livetip: livetip.as_ref(),
            created: livetip.as_ref().map(|_| &created),
        };
        let applied = handlers::apply(&effect, envelope, row, plan, &scope)
            .instrument(db_span(&ctx.db, "apply", 1, &items[i].span))
            .await;
        match applied {
            Ok(applied) => {
                written.append(own);
                if let Some(livetip) = &livetip {
                    livetip.keep(created);
                }
                done.push((claim, applied.status()));
                committed.push((i, Handled::Applied(applied, row)));
            }
            // Alone in the transaction: rolling it all back is the same thing.
            Err(_) if !effect.active() => return Err(Failure::Event),
            Err(error) => {
                tracing::debug!(parent: &items[i].span, error = %error.describe(),
                    "event failed inside its batch; rolled back to its savepoint");
                effect.undo().await?;
                // Retrying, whatever the class: handled alone next, which decides.
                inbox::release_in(txn, row, Status::Retrying, &error.describe()).await?;
            }
        }
    }
    if let Some(livetip) = &livetip {
        livetip.write(txn).await?;
    }
    written.flush(txn).await?;
    if !inbox::complete_batch(txn, &done, &ctx.worker_id, now).await? {
        return Err(Failure::Batch(WorkerError::Contended(
            "a batch's claimed inbox row changed before its commit",
        )));
    }
    Ok(committed)
}

/// Runs `reads`, lookups by key, with index plans made for their parameters.
/// - A connection caches a generic plan for each statement after a few runs; for the
///   batch's set-based reads (lists of ids and senders) one made while the tables
///   were nearly empty, as on a fresh deployment, scans them whole and keeps scanning
///   as they grow (measured: 43 ms a batch at 20,000 payments instead of 1). Planning
///   them each time costs far less.
/// - Even planned each time, on a table not yet analysed (a fresh deployment's first
///   minute, until autovacuum's analyze comes round) the planner guesses wide rows and
///   scans the whole table for 64 ids: measured 2.1 ms a batch at 27,000 bindings
///   against 0.1 ms by the index. These reads are always by key, so a sequential scan
///   is never the right plan for them.
async fn custom_plans<T>(
    txn: &DatabaseTransaction,
    reads: impl std::future::Future<Output = Result<T, sea_orm::DbErr>>,
) -> Result<T, sea_orm::DbErr> {
    let postgres = txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres;
    if postgres {
        txn.execute_unprepared(
            "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL enable_seqscan = off",
        )
        .await?;
    }
    let read = reads.await;
    if postgres {
        // Back to what the server, database or role set, for the rest of the batch.
        txn.execute_unprepared(
            "SET LOCAL plan_cache_mode TO DEFAULT; SET LOCAL enable_seqscan TO DEFAULT",
        )
        .await?;
    }
    read
}
