//! `webhook_events`: the inbox. Its unique (provider, dedupe_key) is what makes an
//! event's effect happen once however often the event arrives.

use sea_orm::entity::prelude::*;

/// Lifecycle of an inbox row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Claimed by a worker until `lease_until`.
    Processing,
    /// Effect applied.
    Processed,
    /// Nothing to apply (an event we do not act on); recorded and done.
    Ignored,
    /// Failed transiently; waiting in a delayed-retry queue.
    Retrying,
    /// Dead-lettered; a replay may claim it again.
    Dead,
    /// Contradicted by the provider's API (a forged or stale event): recorded, never
    /// applied; a copy is a duplicate.
    Rejected,
}

impl Status {
    /// Stored value (see also [`Status::FINAL`]).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Processed => "processed",
            Self::Ignored => "ignored",
            Self::Retrying => "retrying",
            Self::Dead => "dead",
            Self::Rejected => "rejected",
        }
    }

    /// The statuses that end an event's handling, as stored.
    pub const FINAL: [&'static str; 3] = ["processed", "ignored", "rejected"];

    /// Whether the event's handling is over: a new copy is a duplicate.
    pub fn is_final(value: &str) -> bool {
        Self::FINAL.contains(&value)
    }
}

/// A row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    /// Our id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `pluggy` or `livetip`.
    pub provider: String,
    /// Provider's event name.
    pub event: String,
    /// What identifies the event across copies (Pluggy `eventId`, else a body hash).
    pub dedupe_key: String,
    /// Provider's own id for the event or payment.
    pub provider_event_id: Option<String>,
    /// Pluggy's `itemId`, so an operator finds an item's events (`GET /events?q=`).
    pub pluggy_item_id: Option<String>,
    /// Pluggy's `accountId` (account and transaction events), for the same search.
    pub pluggy_account_id: Option<String>,
    /// The request body, byte for byte.
    pub payload: Vec<u8>,
    /// When the gateway received the first copy.
    pub received_at: DateTimeUtc,
    /// When the effect committed.
    pub processed_at: Option<DateTimeUtc>,
    /// See [`Status`].
    pub status: String,
    /// Processing attempts so far.
    pub attempts: i32,
    /// Copies that arrived after the event was done.
    pub duplicates: i32,
    /// Latest failure.
    pub last_error: Option<String>,
    /// Trace the event belongs to.
    pub trace_id: Option<String>,
    /// Gateway request id of the copy that created the row.
    pub request_id: Option<Uuid>,
    /// Identifies the current claim; completing requires it.
    pub claim_token: Option<Uuid>,
    /// A claim older than this may be taken over.
    pub lease_until: Option<DateTimeUtc>,
    /// Worker (host and pid) that applied the effect.
    pub processed_by: Option<String>,
    /// Row creation.
    pub created_at: DateTimeUtc,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations yet.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
