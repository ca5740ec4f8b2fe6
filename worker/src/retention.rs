//! Deleting what is old enough: the spec's log after `WORKER_LOG_RETENTION`, finished
//! inbox rows after `WORKER_INBOX_RETENTION`.
//!
//! The inbox is what turns a late copy of an event into a duplicate, so a finished row
//! must outlive every copy a provider may still send: Pluggy retries a delivery for
//! about three hours, LiveTip documents no horizon, and an operator may replay an event
//! from the provider's dashboard days later. Hence a default of 30 days and a floor of
//! 7 (start-up refuses less). Rows not finished (retrying, dead) are never deleted: a
//! dead letter may still be replayed.
//!
//! Deletes run in batches of [`BATCH`] rows, each its own short statement, so neither
//! table is locked for long; several workers running it at once only share the work.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use shared::db::entities::webhook_event::{self, Entity as WebhookEvents, Status};
use shared::db::entities::webhook_log::{self, Entity as WebhookLogs};
use tokio_util::sync::CancellationToken;

/// Rows deleted per statement.
pub const BATCH: u64 = 1_000;

/// What one pass deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    /// `webhook_logs` rows.
    pub logs: u64,
    /// `webhook_events` rows.
    pub events: u64,
}

/// Deletes log entries older than `logs_before` and finished inbox rows received
/// before `events_before`.
pub async fn run_once(
    db: &DatabaseConnection,
    logs_before: DateTime<Utc>,
    events_before: DateTime<Utc>,
) -> Result<Deleted, DbErr> {
    let mut deleted = Deleted::default();
    loop {
        let batch = Query::select()
            .column(webhook_log::Column::Id)
            .from(WebhookLogs)
            .and_where(webhook_log::Column::Timestamp.lt(logs_before))
            .limit(BATCH)
            .to_owned();
        let n = WebhookLogs::delete_many()
            .filter(webhook_log::Column::Id.in_subquery(batch))
            .exec(db)
            .await?
            .rows_affected;
        deleted.logs += n;
        if n < BATCH {
            break;
        }
        tokio::task::yield_now().await;
    }
    let finished = Status::FINAL;
    loop {
        let batch = Query::select()
            .column(webhook_event::Column::Id)
            .from(WebhookEvents)
            .and_where(webhook_event::Column::Status.is_in(finished))
            .and_where(webhook_event::Column::ReceivedAt.lt(events_before))
            .limit(BATCH)
            .to_owned();
        let n = WebhookEvents::delete_many()
            .filter(webhook_event::Column::Id.in_subquery(batch))
            .exec(db)
            .await?
            .rows_affected;
        deleted.events += n;
        if n < BATCH {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(deleted)
}

/// Runs a pass every `interval` (the first one soon after start) until `shutdown`.
pub async fn run(
    db: DatabaseConnection,
    logs: Duration,
    events: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(60).min(interval),
        interval,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let now = Utc::now();
        let ago =
            |d: Duration| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(30));
        match run_once(&db, ago(logs), ago(events)).await {
            Ok(deleted) if deleted != Deleted::default() => tracing::info!(
                logs = deleted.logs,
                events = deleted.events,
                "retention: old rows deleted"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "retention pass failed; the next one retries"),
        }
    }
}
