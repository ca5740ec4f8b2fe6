//! Writes the LiveTip specification's log entries (`webhook_logs`).

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use shared::db::entities::webhook_log::{self, Column, Entity as WebhookLogs};
use uuid::Uuid;

/// One entry to write.
#[derive(Debug, Clone, Default)]
pub struct LogEntry {
    /// Fixed id makes the write idempotent (a redelivered record writes nothing new).
    pub id: Option<Uuid>,
    /// The spec's type: `webhook`, `validation`, `event_ignored`, ...
    pub log_type: &'static str,
    /// Provider's event name.
    pub event: Option<String>,
    /// The spec's status: `received`, `success`, `error`, `ignored`, `processed`.
    pub status: &'static str,
    /// JSON text, never holding a credential.
    pub data: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Provider name.
    pub provider: Option<&'static str>,
    /// Inbox row.
    pub webhook_event_id: Option<Uuid>,
    /// Trace id.
    pub trace_id: Option<String>,
}

/// Inserts the entry (once, when it carries an id).
pub async fn write<C: ConnectionTrait>(db: &C, entry: LogEntry) -> Result<(), DbErr> {
    match WebhookLogs::insert(row(entry))
        .on_conflict(OnConflict::column(Column::Id).do_nothing().to_owned())
        .exec_without_returning(db)
        .await
    {
        Ok(_) | Err(DbErr::RecordNotInserted) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Entries an effect writes, held until the transaction inserts them all in one
/// statement: fewer round trips, and an effect rolled back to its savepoint simply
/// drops its buffer. Their ids are fresh, so the insert needs no conflict check
/// (a speculative insertion costs PostgreSQL more than a plain one).
#[derive(Debug, Default)]
pub struct Buffer(std::sync::Mutex<Vec<webhook_log::ActiveModel>>);

impl Buffer {
    /// Adds an entry, stamped now.
    pub fn push(&self, mut entry: LogEntry) {
        entry.id = None;
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(row(entry));
    }

    /// Moves every entry of `other` here, in order.
    pub fn append(&self, other: Self) {
        let other = other
            .0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(other);
    }

    /// Inserts every held entry on `db` (the effect's transaction).
    pub async fn flush<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        let rows = std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        crate::bulk_insert::insert_all(db, rows).await
    }
}

fn row(entry: LogEntry) -> webhook_log::ActiveModel {
    webhook_log::ActiveModel {
        // Time-ordered: new entries land together at the end of the key's index.
        id: Set(entry.id.unwrap_or_else(Uuid::now_v7)),
        timestamp: Set(Utc::now()),
        log_type: Set(entry.log_type.to_owned()),
        event: Set(entry.event.map(|e| crate::inbox::truncate(&e, 255))),
        status: Set(entry.status.to_owned()),
        data: Set(entry.data),
        ip: Set(entry.ip),
        provider: Set(entry.provider.map(str::to_owned)),
        webhook_event_id: Set(entry.webhook_event_id),
        trace_id: Set(entry.trace_id),
    }
}

/// A body as log data: the JSON text as sent (trimmed, not normalised) when it is
/// JSON, else nothing. Checked, not rebuilt: a round trip through `serde_json::Value`
/// allocated a node per JSON value on every event.
pub fn body_as_data(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    Some(text.trim().to_owned())
}
