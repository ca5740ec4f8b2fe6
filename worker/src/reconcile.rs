//! Recovering what webhooks missed. Pluggy drops a notification after a few failed
//! deliveries, so a missed `transactions/created` would leave transactions out for
//! good; Pluggy's own advice is to fetch the items. For every known item not deleted,
//! `GET /items/{id}`: an item whose `lastUpdatedAt` moved past the one our last sync
//! read (both Pluggy's clock) is synced again: its accounts, and the transactions
//! created since our last full sync minus an overlap, through the same change-only
//! upserts as the webhooks, so whatever a webhook already brought is not written twice
//! and what it missed is counted as recovered. A change younger than [`GRACE`] is left
//! to its webhook, still on its way.
//!
//! Run by `worker pluggy reconcile`, and by the worker an interval after the last sweep
//! any replica finished (`pluggy_sweeps`). One sweep at a time across replicas on
//! PostgreSQL (an advisory lock held by an otherwise idle transaction); on SQLite there
//! is one worker process. Its API calls are spaced to a budget per minute and go
//! through the client's 429 handling; an item that fails is counted and tried again
//! next time, never stopping the others; webhook work never waits for it.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend,
    DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Statement, TransactionTrait,
};
use shared::db::entities::pluggy_item::{self, Entity as PluggyItems};
use shared::db::entities::pluggy_sweep::{self, Entity as PluggySweeps};
use tokio_util::sync::CancellationToken;

use crate::error::WorkerError;
use crate::handlers::pluggy::{prepare, store};
use crate::pluggy::{PluggyClient, PluggyError};

/// How far before our last sync transactions are asked for again: Pluggy may date a
/// transaction's creation a little before the moment it lists it.
pub const OVERLAP: Duration = Duration::from_secs(3600);

/// How old a change at Pluggy must be before the sweep takes it over from its webhook.
pub const GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// How often a waiting worker looks whether a sweep is due (another replica may have
/// swept meanwhile).
const POLL: Duration = Duration::from_secs(60);

/// The advisory lock's key: "hookwire-reconcile" folded into 64 bits, fixed forever.
const LOCK_KEY: i64 = 0x686f_6f6b_7265_636f;

/// What to sweep, and how.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Only this item (`--item`).
    pub item: Option<String>,
    /// Report without writing (the writes run and are rolled back).
    pub dry_run: bool,
    /// API calls per minute at most (a paginated list counts once).
    pub calls_per_minute: u32,
}

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Another replica was sweeping: this one did nothing.
    pub skipped: bool,
    /// Items asked about.
    pub items_checked: usize,
    /// Items Pluggy changed after our last completed sync.
    pub items_behind: usize,
    /// Items Pluggy no longer has (marked deleted, as `item/deleted` would).
    pub items_deleted: usize,
    /// Items whose check or sync failed (tried again next sweep).
    pub items_failed: usize,
    /// Accounts and transactions inserted or changed: what no webhook had brought.
    pub rows_recovered: u64,
    /// API calls made.
    pub api_calls: usize,
    /// How long it took.
    pub duration: Duration,
}

/// Spaces calls to the budget: never two closer than a minute over the budget.
struct Pacer {
    spacing: Duration,
    last: Option<tokio::time::Instant>,
    calls: usize,
}

impl Pacer {
    fn new(calls_per_minute: u32) -> Self {
        Self {
            spacing: Duration::from_secs(60) / calls_per_minute.max(1),
            last: None,
            calls: 0,
        }
    }

    async fn call(&mut self) {
        if let Some(last) = self.last {
            tokio::time::sleep_until(last + self.spacing).await;
        }
        self.last = Some(tokio::time::Instant::now());
        self.calls += 1;
    }
}

/// Sweeps once.
pub async fn run(
    db: &DatabaseConnection,
    client: &PluggyClient,
    sweep: &Sweep,
) -> Result<Report, WorkerError> {
    let started = Instant::now();
    // PostgreSQL: held until the end of the sweep by a transaction that writes nothing.
    // (SQLite has one worker process, and its pool may hold a single connection.)
    let lock = match db.get_database_backend() {
        DatabaseBackend::Postgres => Some(db.begin().await?),
        _ => None,
    };
    if let Some(lock) = &lock {
        // The pool ends sessions idle in a transaction after a minute; this one is
        // idle by design for the whole sweep.
        lock.execute_unprepared("SET LOCAL idle_in_transaction_session_timeout = 0")
            .await?;
        let row = lock
            .query_one_raw(Statement::from_string(
                DatabaseBackend::Postgres,
                format!("SELECT pg_try_advisory_xact_lock({LOCK_KEY}) AS held"),
            ))
            .await?;
        let held = row.map(|r| r.try_get::<bool>("", "held")).transpose()?;
        if held != Some(true) {
            return Ok(Report {
                skipped: true,
                ..Report::default()
            });
        }
    }
    let mut items = PluggyItems::find().filter(pluggy_item::Column::DeletedAt.is_null());
    if let Some(id) = &sweep.item {
        items = items.filter(pluggy_item::Column::Id.eq(id.clone()));
    }
    let items = items.order_by_asc(pluggy_item::Column::Id).all(db).await?;
    let mut pacer = Pacer::new(sweep.calls_per_minute);
    let mut report = Report::default();
    let began = Utc::now();
    for known in items {
        report.items_checked += 1;
        if let Err(error) = reconcile_item(db, client, sweep, &known, &mut pacer, &mut report).await
        {
            report.items_failed += 1;
            tracing::warn!(item = %known.id, error = %error, "Pluggy item not reconciled; next sweep tries again");
        }
    }
    report.api_calls = pacer.calls;
    report.duration = started.elapsed();
    if !sweep.dry_run {
        remember(db, began, &report).await?;
    }
    if let Some(lock) = lock {
        lock.rollback().await?;
    }
    Ok(report)
}

/// Records a finished sweep: the next is due an interval after it.
async fn remember(
    db: &DatabaseConnection,
    began: DateTime<Utc>,
    report: &Report,
) -> Result<(), sea_orm::DbErr> {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    pluggy_sweep::ActiveModel {
        id: Set(uuid::Uuid::now_v7()),
        started_at: Set(began),
        finished_at: Set(Utc::now()),
        items_checked: Set(count(report.items_checked)),
        items_behind: Set(count(report.items_behind)),
        items_deleted: Set(count(report.items_deleted)),
        items_failed: Set(count(report.items_failed)),
        rows_recovered: Set(i64::try_from(report.rows_recovered).unwrap_or(i64::MAX)),
        api_calls: Set(count(report.api_calls)),
    }
    .insert(db)
    .await
    .map(drop)
}

/// When the last sweep (of any replica) finished.
async fn last_finished(db: &DatabaseConnection) -> Result<Option<DateTime<Utc>>, sea_orm::DbErr> {
    Ok(PluggySweeps::find()
        .order_by_desc(pluggy_sweep::Column::FinishedAt)
        .one(db)
        .await?
        .map(|s| s.finished_at))
}

async fn reconcile_item(
    db: &DatabaseConnection,
    client: &PluggyClient,
    sweep: &Sweep,
    known: &pluggy_item::Model,
    pacer: &mut Pacer,
    report: &mut Report,
) -> Result<(), WorkerError> {
    pacer.call().await;
    let fetched_at = Utc::now();
    let item = match client.item(&known.id).await {
        Ok(item) => item,
        Err(PluggyError::Status {
            status: 404,
            endpoint,
        }) if endpoint.starts_with("/items/") => {
            report.items_deleted += 1;
            let txn = db.begin().await?;
            store::item_deleted(&txn, &known.id).await?;
            finish(txn, sweep.dry_run).await?;
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    let changed_at = item
        .last_updated_at
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let moved = match (changed_at, known.synced_last_updated_at) {
        (Some(changed), Some(read)) => changed > read,
        (Some(_), None) => true,
        (None, _) => known.synced_at.is_none(),
    };
    let settled = changed_at.is_none_or(|changed| changed < Utc::now() - GRACE);
    if !moved || !settled || !item.is_ready() {
        return Ok(());
    }
    report.items_behind += 1;
    let from = known.synced_at.map(|synced| {
        (synced - chrono::Duration::from_std(OVERLAP).unwrap_or_default())
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    });
    pacer.call().await;
    let accounts = client.accounts(&known.id).await?;
    let mut transactions = Vec::new();
    for account in &accounts {
        let Some(id) = account.get("id").and_then(|v| v.as_str()) else {
            continue;
        };
        if prepare::is_inactive(db, id, false).await? {
            continue;
        }
        pacer.call().await;
        transactions.push((
            id.to_owned(),
            client.transactions(id, from.as_deref()).await?,
        ));
    }
    let txn = db.begin().await?;
    store::undo_deletion_before(&txn, &item.id, fetched_at).await?;
    let event = known.last_event.as_deref().unwrap_or("item/updated");
    store::upsert_item(&txn, &item, event, store::Synced::Reconciled).await?;
    let mut recovered = store::upsert_accounts(&txn, &accounts, true).await?;
    for (account_id, list) in &transactions {
        recovered += store::upsert_transactions(&txn, account_id, list).await?;
        store::mark_synced(&txn, account_id).await?;
    }
    finish(txn, sweep.dry_run).await?;
    report.rows_recovered += recovered as u64;
    if recovered > 0 {
        tracing::warn!(
            item = %item.id,
            rows = recovered,
            dry_run = sweep.dry_run,
            "Pluggy reconciliation found rows no webhook had brought"
        );
    }
    Ok(())
}

async fn finish(txn: sea_orm::DatabaseTransaction, dry_run: bool) -> Result<(), sea_orm::DbErr> {
    if dry_run {
        txn.rollback().await
    } else {
        txn.commit().await
    }
}

/// Sweeps an `interval` after the last sweep any replica finished (at once when none
/// ever did; zero: never) until `shutdown`, recording each run in metrics. With
/// `registration` (our webhook URL), checks Pluggy's registration at start-up and after
/// each sweep.
pub async fn every(
    db: DatabaseConnection,
    client: PluggyClient,
    sweep: Sweep,
    interval: Duration,
    registration: Option<String>,
    shutdown: CancellationToken,
) {
    // Series an alert's `increase()` needs to exist before their first event.
    for outcome in ["done", "partial", "failed"] {
        metrics::counter!("hookwire_pluggy_reconcile_runs_total", "outcome" => outcome)
            .increment(0);
    }
    metrics::counter!("hookwire_pluggy_reconcile_rows_recovered_total").increment(0);
    // A restarted worker may wait hours for its turn: it reports the last clean sweep
    // any replica finished, so the staleness alert reads the truth meanwhile.
    if let Ok(Some(last)) = PluggySweeps::find()
        .filter(pluggy_sweep::Column::ItemsFailed.eq(0))
        .order_by_desc(pluggy_sweep::Column::FinishedAt)
        .one(&db)
        .await
    {
        metrics::gauge!("hookwire_pluggy_reconcile_last_success_timestamp_seconds")
            .set(last.finished_at.timestamp() as f64);
    }
    let check = || async {
        if let Some(url) = &registration {
            let _ = crate::pluggy::registration::check(&client, url).await;
        }
    };
    tokio::select! {
        () = check() => {}
        () = shutdown.cancelled() => return,
    }
    if interval.is_zero() {
        return;
    }
    loop {
        let wait = match last_finished(&db).await {
            Ok(Some(at)) => (at + chrono::Duration::from_std(interval).unwrap_or_default()
                - Utc::now())
            .to_std()
            .unwrap_or_default(),
            Ok(None) => Duration::ZERO,
            Err(error) => {
                tracing::debug!(%error, "last sweep not read");
                POLL
            }
        };
        if !wait.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(wait.min(POLL)) => continue,
                () = shutdown.cancelled() => return,
            }
        }
        let outcome = tokio::select! {
            outcome = run(&db, &client, &sweep) => outcome,
            () = shutdown.cancelled() => return,
        };
        record(&outcome);
        if outcome.is_err() {
            // Not recorded as finished: wait a poll, not a whole interval.
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = shutdown.cancelled() => return,
            }
        }
        tokio::select! {
            () = check() => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Metrics and a log line for one sweep.
pub fn record(outcome: &Result<Report, WorkerError>) {
    match outcome {
        Ok(report) if report.skipped => {
            metrics::counter!("hookwire_pluggy_reconcile_runs_total", "outcome" => "skipped")
                .increment(1);
            tracing::info!("Pluggy reconciliation skipped: another replica is sweeping");
        }
        Ok(report) => {
            let outcome = if report.items_failed == 0 {
                "done"
            } else {
                "partial"
            };
            metrics::gauge!("hookwire_pluggy_reconcile_items_behind")
                .set(report.items_behind as f64);
            metrics::gauge!("hookwire_pluggy_reconcile_items_failed")
                .set(report.items_failed as f64);
            metrics::counter!("hookwire_pluggy_reconcile_rows_recovered_total")
                .increment(report.rows_recovered);
            metrics::counter!("hookwire_pluggy_reconcile_api_calls_total")
                .increment(report.api_calls as u64);
            if report.items_failed == 0 {
                metrics::gauge!("hookwire_pluggy_reconcile_last_success_timestamp_seconds")
                    .set(Utc::now().timestamp() as f64);
            }
            metrics::counter!("hookwire_pluggy_reconcile_runs_total", "outcome" => outcome)
                .increment(1);
            tracing::info!(
                items_checked = report.items_checked,
                items_behind = report.items_behind,
                items_deleted = report.items_deleted,
                items_failed = report.items_failed,
                rows_recovered = report.rows_recovered,
                api_calls = report.api_calls,
                duration_ms = report.duration.as_millis() as u64,
                "Pluggy reconciliation done"
            );
        }
        Err(error) => {
            metrics::counter!("hookwire_pluggy_reconcile_runs_total", "outcome" => "failed")
                .increment(1);
            tracing::warn!(error = %error, "Pluggy reconciliation failed; the next sweep tries again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_to_the_budget() {
        let mut pacer = Pacer::new(60);
        let start = tokio::time::Instant::now();
        for _ in 0..4 {
            pacer.call().await;
        }
        assert_eq!(pacer.calls, 4);
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(3),
            "one a second, the first at once"
        );
    }
}
