//! `bank_transactions`: transactions of synced accounts.

use sea_orm::entity::prelude::*;

/// A row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bank_transactions")]
pub struct Model {
    /// Pluggy's transaction id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Account it belongs to.
    pub account_id: String,
    /// Transaction date (UTC).
    pub date: Option<DateTimeUtc>,
    /// Description.
    pub description: Option<String>,
    /// Exact decimal text.
    pub amount: String,
    /// ISO code.
    pub currency: Option<String>,
    /// DEBIT or CREDIT.
    #[sea_orm(column_name = "type")]
    pub transaction_type: Option<String>,
    /// POSTED or PENDING.
    pub status: Option<String>,
    /// Pluggy category.
    pub category: Option<String>,
    /// Set by `transactions/deleted`; the row is kept.
    pub deleted: bool,
    /// The transaction as Pluggy sent it.
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
