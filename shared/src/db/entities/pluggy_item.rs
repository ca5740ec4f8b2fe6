//! `pluggy_items`: Pluggy's bank connections as last fetched.

use sea_orm::entity::prelude::*;

/// A row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pluggy_items")]
pub struct Model {
    /// Pluggy's item id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Pluggy `status` (UPDATED, LOGIN_ERROR, ...).
    pub status: Option<String>,
    /// Pluggy `executionStatus`.
    pub execution_status: Option<String>,
    /// Last error object, as Pluggy sent it.
    pub error: Option<Json>,
    /// Connector object.
    pub connector: Option<Json>,
    /// Our user id, as given to Pluggy.
    pub client_user_id: Option<String>,
    /// Latest webhook event seen for the item.
    pub last_event: Option<String>,
    /// Pluggy `createdAt`.
    pub pluggy_created_at: Option<DateTimeUtc>,
    /// Pluggy `updatedAt`.
    pub pluggy_updated_at: Option<DateTimeUtc>,
    /// Pluggy `lastUpdatedAt` (last successful bank sync).
    pub last_updated_at: Option<DateTimeUtc>,
    /// Set by `item/deleted`; history is kept.
    pub deleted_at: Option<DateTimeUtc>,
    /// When our last full sync began reading Pluggy (our clock): an event received
    /// before it was seen by that sync.
    pub synced_at: Option<DateTimeUtc>,
    /// Pluggy's `lastUpdatedAt` as our last sync (full or reconciliation) read it.
    pub synced_last_updated_at: Option<DateTimeUtc>,
    /// Row creation.
    pub created_at: DateTimeUtc,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
