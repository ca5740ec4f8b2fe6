//! `bank_accounts`: accounts of Pluggy items.

use sea_orm::entity::prelude::*;

/// A row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bank_accounts")]
pub struct Model {
    /// Pluggy's account id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Item it belongs to.
    pub item_id: String,
    /// BANK or CREDIT.
    #[sea_orm(column_name = "type")]
    pub account_type: Option<String>,
    /// Pluggy subtype.
    pub subtype: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Account number (personal data: never logged).
    pub number: Option<String>,
    /// Exact decimal text.
    pub balance: Option<String>,
    /// ISO code.
    pub currency: Option<String>,
    /// Only active accounts are synced; `item/deleted` deactivates.
    pub is_active: bool,
    /// `ok`, `error` (see `sync_error`).
    pub sync_status: String,
    /// Why the last sync failed (spec: "Marca contas como erro").
    pub sync_error: Option<String>,
    /// Last transaction sync.
    pub last_synced_at: Option<DateTimeUtc>,
    /// The account as Pluggy sent it.
    pub raw: Option<Json>,
    /// Row creation.
    pub created_at: DateTimeUtc,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
