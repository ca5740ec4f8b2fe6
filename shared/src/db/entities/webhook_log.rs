//! `webhook_logs`: the LiveTip specification's structured log, for the monitoring routes.

use sea_orm::entity::prelude::*;

/// A log row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_logs")]
pub struct Model {
    /// Row id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// When it happened (UTC).
    pub timestamp: DateTimeUtc,
    /// `webhook`, `validation`, `payment_update`, ... (the spec's types).
    #[sea_orm(column_name = "type")]
    pub log_type: String,
    /// Provider's event name, when there is one.
    pub event: Option<String>,
    /// `received`, `success`, `error`, `ignored`, `processed`.
    pub status: String,
    /// JSON text, secrets removed.
    pub data: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Provider, when known.
    pub provider: Option<String>,
    /// Inbox row the entry is about.
    pub webhook_event_id: Option<Uuid>,
    /// Trace id.
    pub trace_id: Option<String>,
}

/// No relations yet.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
