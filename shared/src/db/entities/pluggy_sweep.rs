//! `pluggy_sweeps`: one row per finished Pluggy reconciliation sweep, its report.

use sea_orm::entity::prelude::*;

/// A row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pluggy_sweeps")]
pub struct Model {
    /// Our id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// When it began.
    pub started_at: DateTimeUtc,
    /// When it ended: the next sweep is due an interval after the latest.
    pub finished_at: DateTimeUtc,
    /// Items asked about.
    pub items_checked: i32,
    /// Items Pluggy changed after our last sync.
    pub items_behind: i32,
    /// Items Pluggy no longer has.
    pub items_deleted: i32,
    /// Items whose check failed (tried again next sweep).
    pub items_failed: i32,
    /// Rows no webhook had brought.
    pub rows_recovered: i64,
    /// API calls made.
    pub api_calls: i32,
}

/// No relations declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
