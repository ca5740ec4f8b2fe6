//! Claiming an event before any side effect, so each effect happens once.
//!
//! A copy first inserts its row, or finds one: a finished row means the copy is a
//! duplicate; a row under someone else's live lease means "later"; anything else (a
//! failed attempt, an expired lease after a crash) is taken over. Completing requires
//! the claim token, inside the transaction that applies the effect.

use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
};
use shared::Envelope;
use shared::db::entities::webhook_event::{self, Column, Entity as WebhookEvents, Status};
use uuid::Uuid;

/// The outcome of trying to claim an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This worker owns the event until the lease ends.
    Owned(Owner),
    /// The event was already handled; this copy changes nothing.
    Duplicate,
}

/// Proof of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Inbox row.
    pub id: Uuid,
    /// Claim token written in the row.
    pub token: Uuid,
}

/// Claims `envelope` under `dedupe_key`; `Err(ClaimedElsewhere)` is reported by the
/// caller when the row is held by a live lease.
pub async fn claim(
    db: &DatabaseConnection,
    envelope: &Envelope,
    dedupe_key: &str,
    lease: Duration,
) -> Result<Option<Claim>, sea_orm::DbErr> {
    let now = Utc::now();
    let lease_until =
        now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(2));
    let token = Uuid::new_v4();
    let id = Uuid::new_v4();
    let row = webhook_event::ActiveModel {
        id: Set(id),
        provider: Set(envelope.provider.as_str().to_owned()),
        event: Set(truncate(&envelope.event, 255)),
        dedupe_key: Set(dedupe_key.to_owned()),
        provider_event_id: Set(envelope
            .provider_event_id
            .as_deref()
            .map(|i| truncate(i, 255))),
        payload: Set(envelope.body.to_vec()),
        received_at: Set(envelope.received_at),
        processed_at: Set(None),
        status: Set(Status::Processing.as_str().to_owned()),
        attempts: Set(1),
        duplicates: Set(0),
        last_error: Set(None),
        trace_id: Set(Some(envelope.trace.trace_id())),
        request_id: Set(Some(envelope.request_id)),
        claim_token: Set(Some(token)),
        lease_until: Set(Some(lease_until)),
        processed_by: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let inserted = WebhookEvents::insert(row)
        .on_conflict(
            OnConflict::columns([Column::Provider, Column::DedupeKey])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await;
    match inserted {
        Ok(n) if n > 0 => return Ok(Some(Claim::Owned(Owner { id, token }))),
        Ok(_) | Err(sea_orm::DbErr::RecordNotInserted) => {}
        Err(e) => return Err(e),
    }

    let Some(existing) = WebhookEvents::find()
        .filter(Column::Provider.eq(envelope.provider.as_str()))
        .filter(Column::DedupeKey.eq(dedupe_key))
        .one(db)
        .await?
    else {
        // Inserted and deleted in between: nothing sensible to do but try again later.
        return Ok(None);
    };
    if Status::is_final(&existing.status) {
        WebhookEvents::update_many()
            .col_expr(Column::Duplicates, Expr::col(Column::Duplicates).add(1))
            .filter(Column::Id.eq(existing.id))
            .exec(db)
            .await?;
        return Ok(Some(Claim::Duplicate));
    }
    // Take over a failed attempt or an expired lease; a live lease stays with its owner.
    let taken = WebhookEvents::update_many()
        .col_expr(Column::Status, Expr::value(Status::Processing.as_str()))
        .col_expr(Column::ClaimToken, Expr::value(token))
        .col_expr(Column::LeaseUntil, Expr::value(lease_until))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(existing.id))
        .filter(Column::Status.is_not_in([Status::Processed.as_str(), Status::Ignored.as_str()]))
        .filter(
            Column::Status
                .ne(Status::Processing.as_str())
                .or(Column::LeaseUntil.is_null())
                .or(Column::LeaseUntil.lt(now)),
        )
        .exec(db)
        .await?;
    if taken.rows_affected == 1 {
        Ok(Some(Claim::Owned(Owner {
            id: existing.id,
            token,
        })))
    } else {
        Ok(None)
    }
}

/// Marks the event done, inside the transaction that applied its effect. `false` when
/// the claim was lost (lease expired and taken over): the caller must roll back.
pub async fn complete<C: ConnectionTrait>(
    txn: &C,
    owner: Owner,
    status: Status,
    worker_id: &str,
) -> Result<bool, sea_orm::DbErr> {
    let now = Utc::now();
    let done = WebhookEvents::update_many()
        .col_expr(Column::Status, Expr::value(status.as_str()))
        .col_expr(Column::ProcessedAt, Expr::value(now))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .col_expr(Column::ProcessedBy, Expr::value(worker_id.to_owned()))
        .col_expr(Column::ClaimToken, Expr::value(Option::<Uuid>::None))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<chrono::DateTime<Utc>>::None),
        )
        .col_expr(Column::LastError, Expr::value(Option::<String>::None))
        .filter(Column::Id.eq(owner.id))
        .filter(Column::ClaimToken.eq(owner.token))
        .exec(txn)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Gives the claim up after a failure, so that the next copy (a retry, a replay) may
/// take it at once. Best effort: when the database is the problem, the lease expires.
pub async fn release(db: &DatabaseConnection, owner: Owner, status: Status, error: &str) {
    let now = Utc::now();
    let released = WebhookEvents::update_many()
        .col_expr(Column::Status, Expr::value(status.as_str()))
        .col_expr(Column::LastError, Expr::value(truncate(error, 4000)))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .col_expr(Column::ClaimToken, Expr::value(Option::<Uuid>::None))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<chrono::DateTime<Utc>>::None),
        )
        .filter(Column::Id.eq(owner.id))
        .filter(Column::ClaimToken.eq(owner.token))
        .exec(db)
        .await;
    if let Err(error) = released {
        tracing::debug!(%error, "could not release the claim; its lease will expire");
    }
}

/// Cuts to at most `max` bytes on a character boundary, owned.
pub fn truncate(s: &str, max: usize) -> String {
    shared::envelope::truncate(s, max).to_owned()
}

/// Marks an unfinished event dead (attempts exhausted). Best effort.
pub async fn mark_dead(
    db: &DatabaseConnection,
    provider: shared::Provider,
    dedupe_key: &str,
    error: &str,
) {
    let now = Utc::now();
    let marked = WebhookEvents::update_many()
        .col_expr(Column::Status, Expr::value(Status::Dead.as_str()))
        .col_expr(Column::LastError, Expr::value(truncate(error, 4000)))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Provider.eq(provider.as_str()))
        .filter(Column::DedupeKey.eq(dedupe_key))
        .filter(Column::Status.is_not_in([Status::Processed.as_str(), Status::Ignored.as_str()]))
        .exec(db)
        .await;
    if let Err(error) = marked {
        tracing::debug!(%error, "could not mark the event dead in the inbox");
    }
}
