//! Per-provider effects. `prepare` does what needs no write (parsing, provider API
//! calls) after the event is claimed; `apply` writes inside the transaction that also
//! marks the event done.
//!
//! Exhaustive over [`Provider`]: a new provider does not compile until it has a handler.

pub mod livetip;
pub mod pluggy;
pub mod rejected;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use sha2::{Digest, Sha256};
use shared::db::entities::webhook_event::Status;
use shared::payload::bounds;
use shared::payload::livetip::LiveTipEvent;
use shared::payload::pluggy::parse_head;
use shared::{Envelope, Provider};
use uuid::Uuid;

use crate::error::WorkerError;
use crate::pluggy::PluggyClient;

/// What applying an event amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The event changed our state.
    Processed,
    /// An event we record but do not act on.
    Ignored,
    /// An event the provider's API contradicts: recorded, never applied.
    Rejected,
}

impl Applied {
    /// The inbox status the event ends in.
    pub const fn status(self) -> Status {
        match self {
            Self::Processed => Status::Processed,
            Self::Ignored => Status::Ignored,
            Self::Rejected => Status::Rejected,
        }
    }
}

/// A prepared event, ready to be written.
#[derive(Debug)]
pub enum Prepared {
    /// Pluggy: event name and what to write.
    Pluggy(String, pluggy::Plan),
    /// LiveTip: the parsed event.
    LiveTip(LiveTipEvent),
}

/// Identifies an event across copies: Pluggy keeps `eventId` across its retries (read
/// from the body, whatever the publisher put in the envelope; never the top-level `id`,
/// which names the entity); LiveTip has no event id, so identical bodies are one event.
pub fn dedupe_key(envelope: &Envelope) -> String {
    let event_id = match envelope.provider {
        Provider::Pluggy => parse_head(&envelope.body).ok().and_then(|h| h.event_id),
        Provider::LiveTip => None,
    };
    match event_id {
        // An id too long for the key column (`eventId` may take its whole bound) is
        // keyed by its hash: still one key per id.
        Some(id) if id.len() + "event:".len() > bounds::DEDUPE_KEY => {
            format!("event:{}", body_hash(id.as_bytes()))
        }
        Some(id) => format!("event:{id}"),
        None => body_hash(&envelope.body),
    }
}

/// The Pluggy item a sync event is about: such events are handled one at a time per
/// item, so a burst costs one sync (`pluggy::prepare`).
pub fn sync_key(envelope: &Envelope) -> Option<String> {
    if envelope.provider != Provider::Pluggy || !pluggy::prepare::syncs_item(&envelope.event) {
        return None;
    }
    parse_head(&envelope.body).ok().and_then(|h| h.item_id)
}

/// Whether handling the event calls a provider's API between claim and write (and so
/// cannot be one transaction).
pub fn calls_provider_api(envelope: &Envelope, pluggy_configured: bool) -> bool {
    envelope.provider == Provider::Pluggy
        && pluggy_configured
        && pluggy::prepare::calls_api(&envelope.event)
}

fn body_hash(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

/// Parses and fetches; no writes.
pub async fn prepare(
    db: &DatabaseConnection,
    pluggy: Option<&PluggyClient>,
    envelope: &Envelope,
) -> Result<Prepared, WorkerError> {
    match envelope.provider {
        Provider::Pluggy => {
            let (head, payload) = shared::payload::pluggy::parse(&envelope.body)?;
            let plan =
                pluggy::prepare::prepare(db, pluggy, &head.event, &payload, envelope.received_at)
                    .await?;
            Ok(Prepared::Pluggy(head.event, plan))
        }
        Provider::LiveTip => Ok(Prepared::LiveTip(shared::payload::livetip::parse(
            &envelope.body,
        )?)),
    }
}

/// What an effect shares with the transaction it runs in.
#[derive(Debug)]
pub struct Scope<'a> {
    /// The spec's log entries, inserted by the caller with the rest of the
    /// transaction's.
    pub written: &'a crate::logs::Buffer,
    /// What a batch shares among its LiveTip events (reads, deferred creations).
    pub livetip: Option<&'a livetip::LiveTipBatch>,
    /// Where this event's new payment waits for the batch's write.
    pub created: Option<&'a livetip::Created>,
}

/// Writes one prepared event.
pub async fn apply<C: ConnectionTrait>(
    txn: &C,
    envelope: &Envelope,
    event_row: Uuid,
    prepared: Prepared,
    scope: &Scope<'_>,
) -> Result<Applied, WorkerError> {
    match prepared {
        Prepared::Pluggy(event, plan) => {
            pluggy::apply(txn, envelope, event_row, &event, plan, scope.written).await
        }
        Prepared::LiveTip(event) => livetip::apply(txn, envelope, event_row, event, scope).await,
    }
}
