//! `payments`: what our users expect to be paid, and what LiveTip says was paid.

use sea_orm::entity::prelude::*;

/// Payment status. Only forward: `pending` to a terminal state; `underpaid` (money came,
/// but less than expected or in another currency) overrides `failed`/`cancelled`, and
/// `completed` (paid in full) overrides everything, so the outcome does not depend on
/// the order in which LiveTip's events arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Expected, not settled.
    Pending,
    /// Paid.
    Completed,
    /// Failed at LiveTip.
    Failed,
    /// Cancelled by the payer.
    Cancelled,
    /// A LiveTip payment arrived for it, short of the amount or in another currency;
    /// still open to a payment in full.
    Underpaid,
}

impl PaymentStatus {
    /// Every status.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
        Self::Underpaid,
    ];

    /// Stored value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Underpaid => "underpaid",
        }
    }

    /// Parses a stored value.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Precedence: a status may only be replaced by a higher one.
    pub const fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Failed | Self::Cancelled => 1,
            Self::Underpaid => 2,
            Self::Completed => 3,
        }
    }

    /// The statuses this one may replace.
    pub fn replaces(self) -> Vec<&'static str> {
        Self::ALL
            .into_iter()
            .filter(|s| s.rank() < self.rank())
            .map(Self::as_str)
            .collect()
    }
}

/// How a LiveTip event found its payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchedBy {
    /// LiveTip's `paymentId` was already bound to it.
    LivetipId,
    /// Our id appeared in the payer's message.
    ExternalId,
    /// Same payer and amount (less than 0.01 apart), oldest first among pending
    /// payments (and underpaid ones the payment settles in full).
    AmountUser,
    /// No payment matched; a confirmed payment created it.
    Created,
}

impl MatchedBy {
    /// Stored value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::LivetipId => "livetip_id",
            Self::ExternalId => "external_id",
            Self::AmountUser => "amount_user",
            Self::Created => "created",
        }
    }
}

/// A row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    /// Our id, `HW-XXXXXXXX` (see `shared::payment_id`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Who is expected to pay (LiveTip `sender`).
    pub user_name: String,
    /// Exact decimal text (see `shared::money`).
    pub amount: String,
    /// ISO code.
    pub currency: String,
    /// See [`PaymentStatus`].
    pub status: String,
    /// LiveTip's id, once an event bound it.
    pub livetip_payment_id: Option<String>,
    /// The payer's message.
    pub content: Option<String>,
    /// See [`MatchedBy`].
    pub matched_by: Option<String>,
    /// Creation (UTC).
    pub created_at: DateTimeUtc,
    /// Last change (UTC).
    pub updated_at: DateTimeUtc,
    /// When it was completed (UTC).
    pub paid_at: Option<DateTimeUtc>,
    /// What the LiveTip payment that settled (or underpaid) it carried, exact text.
    pub received_amount: Option<String>,
    /// Its currency.
    pub received_currency: Option<String>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
