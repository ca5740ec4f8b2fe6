//! `livetip_bindings`: which of our payments each LiveTip payment is about.

use sea_orm::entity::prelude::*;

/// One LiveTip payment, bound once (primary key) to one of ours.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "livetip_bindings")]
pub struct Model {
    /// LiveTip's `paymentId`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub livetip_payment_id: String,
    /// Our payment (`HW-XXXXXXXX`).
    pub payment_id: String,
    /// When it was bound (UTC).
    pub created_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
