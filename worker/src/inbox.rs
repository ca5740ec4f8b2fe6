//! Claiming an event before any side effect, so each effect happens once.
//!
//! A copy first inserts its row, or finds one: a finished row means the copy is a
//! duplicate; a row under someone else's live lease means "later"; anything else (a
//! failed attempt, an expired lease after a crash) is taken over. Completing requires
//! the claim token, inside the transaction that applies the effect (a batch's new rows
//! are written final at the claim and known by their id instead: see [`claim_batch`]).
//!
//! Two ways to hold a claim (the batch or the one-event path picks one per event):
//! - inside the effect's own transaction, for events that are one transaction: the
//!   row is invisible until the commit, a concurrent copy waits on its key, and a
//!   worker that dies takes its claim with it (its connection closes, PostgreSQL rolls
//!   back), so the broker's redelivery is applied at once by whoever gets it;
//! - committed with a lease, for events that call the Pluggy API between claim and
//!   write (no transaction stays open across HTTP calls): a live worker renews the
//!   lease ([`renew`]), and another takes the event over once it has run out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryTrait,
};
use shared::db::entities::webhook_event::{self, Column, Entity as WebhookEvents, Status};
use shared::payload::bounds;
use shared::payload::pluggy;
use shared::{Envelope, Provider};
use uuid::Uuid;

/// The outcome of trying to claim an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This worker owns the event until the lease ends.
    Owned(Owner),
    /// The event (this inbox row) was already handled; this copy changes nothing.
    Duplicate(Uuid),
    /// Another worker holds a live lease on it until then.
    Busy(chrono::DateTime<Utc>),
}

/// Proof of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Inbox row.
    pub id: Uuid,
    /// Claim token written in the row.
    pub token: Uuid,
}

/// Claims `envelope` under `dedupe_key`, on a pooled connection (committed at once,
/// with a lease) or inside a transaction (see the module's notes). `None`: the row
/// vanished between two statements; try again.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    envelope: &Envelope,
    dedupe_key: &str,
    lease: Duration,
) -> Result<Option<Claim>, sea_orm::DbErr> {
    let now = Utc::now();
    let lease_until = lease_end(now, lease);
    let token = Uuid::new_v4();
    let id = Uuid::now_v7();
    let mut row = new_row(envelope, dedupe_key, now);
    row.id = Set(id);
    row.claim_token = Set(Some(token));
    row.lease_until = Set(Some(lease_until));
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
        return Ok(Some(Claim::Duplicate(existing.id)));
    }
    // Take over a failed attempt or an expired lease; a live lease stays with its owner.
    let taken = WebhookEvents::update_many()
        .col_expr(Column::Status, Expr::value(Status::Processing.as_str()))
        .col_expr(Column::ClaimToken, Expr::value(token))
        .col_expr(Column::LeaseUntil, Expr::value(lease_until))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(existing.id))
        .filter(Column::Status.is_not_in(Status::FINAL))
        .filter(
            Column::Status
                .ne(Status::Processing.as_str())
                .or(Column::LeaseUntil.is_null())
                .or(Column::LeaseUntil.lt(now)),
        )
        .exec(db)
        .await?;
    if taken.rows_affected == 1 {
        return Ok(Some(Claim::Owned(Owner {
            id: existing.id,
            token,
        })));
    }
    // Not taken: read again what won (on PostgreSQL the update waited for a concurrent
    // copy's transaction and saw its outcome).
    let Some(now_row) = WebhookEvents::find_by_id(existing.id).one(db).await? else {
        return Ok(None);
    };
    if Status::is_final(&now_row.status) {
        WebhookEvents::update_many()
            .col_expr(Column::Duplicates, Expr::col(Column::Duplicates).add(1))
            .filter(Column::Id.eq(now_row.id))
            .exec(db)
            .await?;
        return Ok(Some(Claim::Duplicate(now_row.id)));
    }
    Ok(match now_row.lease_until {
        Some(until) if now_row.status == Status::Processing.as_str() && until >= now => {
            Some(Claim::Busy(until))
        }
        _ => None,
    })
}

/// What claiming one event of a batch found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// This transaction holds the event's row: `fresh` when this claim inserted it
    /// (already written as processed, see [`claim_batch`]), else a failed attempt or an
    /// expired lease taken over (still processing until [`complete_batch`]).
    Owned { id: Uuid, fresh: bool },
    /// The event (this inbox row) was already handled; this copy's `duplicates` is
    /// counted.
    Duplicate(Uuid),
    /// Someone else's live lease: the event is handled alone, which waits it out.
    Elsewhere,
}

/// Claims a batch's events inside its transaction, in one statement: new events are
/// inserted, failed attempts and expired leases taken over, and copies of finished
/// events recognised (and counted) in the same round trip. Rows are written in key
/// order, so two batches holding copies of the same events lock them in one order and
/// cannot deadlock. `events` must not repeat a key. Answers in `events`' order.
///
/// A new row is inserted as it will most often end, processed by `worker_id`: nobody
/// sees it before the commit, and an effect that ends otherwise (ignored, rejected,
/// failed) rewrites it. That spares the usual event a second version of its row (with
/// its payload, in every index) in the same transaction. The claim token then only
/// (one for the batch) marks rows taken over, which [`complete_batch`] finishes; a
/// fresh row is known by the id this claim gave it. `now` stamps the whole batch, as
/// one commit finishes it.
pub async fn claim_batch<C: ConnectionTrait>(
    db: &C,
    events: &[(&Envelope, &str)],
    lease: Duration,
    worker_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Claimed>, sea_orm::DbErr> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let lease_until = lease_end(now, lease);
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| events[i].1);
    let token = Uuid::new_v4();
    let ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
    let rows = order.iter().map(|&i| {
        let (envelope, key) = events[i];
        let mut row = new_row(envelope, key, now);
        row.id = Set(ids[i]);
        row.status = Set(Status::Processed.as_str().to_owned());
        row.processed_at = Set(Some(now));
        row.processed_by = Set(Some(worker_id.to_owned()));
        row
    });
    let old = |column: Column| Expr::col((WebhookEvents, column));
    let excluded = |column: Column| Expr::col((Alias::new("excluded"), column));
    // The existing row may be taken: not finished, and not under a live lease.
    let takeable = old(Column::Status).is_not_in(Status::FINAL).and(
        old(Column::Status)
            .ne(Status::Processing.as_str())
            .or(old(Column::LeaseUntil).is_null())
            .or(old(Column::LeaseUntil).lt(now)),
    );
    let finished = old(Column::Status).is_in(Status::FINAL);
    let when_taken = |column: Column, taken: Expr| {
        Into::<Expr>::into(Expr::case(takeable.clone(), taken).finally(old(column)))
    };
    let conflict = OnConflict::columns([Column::Provider, Column::DedupeKey])
        .value(
            Column::Status,
            when_taken(Column::Status, Expr::value(Status::Processing.as_str())),
        )
        .value(
            Column::ClaimToken,
            when_taken(Column::ClaimToken, Expr::value(token)),
        )
        .value(
            Column::LeaseUntil,
            when_taken(Column::LeaseUntil, Expr::value(lease_until)),
        )
        .value(
            Column::Attempts,
            when_taken(Column::Attempts, old(Column::Attempts).add(1)),
        )
        .value(
            Column::Duplicates,
            Into::<Expr>::into(
                Expr::case(finished, old(Column::Duplicates).add(1))
                    .finally(old(Column::Duplicates)),
            ),
        )
        .value(Column::UpdatedAt, excluded(Column::UpdatedAt))
        .to_owned();
    let mut statement = WebhookEvents::insert_many(rows)
        .on_conflict(conflict)
        .into_query();
    statement.returning(Query::returning().columns([
        Column::Id,
        Column::DedupeKey,
        Column::Status,
        Column::ClaimToken,
    ]));
    let mut found = std::collections::HashMap::new();
    for row in db.query_all(&statement).await? {
        let key: String = row.try_get("", "dedupe_key")?;
        let Some(i) = events.iter().position(|(_, k)| *k == key) else {
            continue;
        };
        let id: Uuid = row.try_get("", "id")?;
        let returned_token: Option<Uuid> = row.try_get("", "claim_token")?;
        let claimed = if id == ids[i] {
            Claimed::Owned { id, fresh: true }
        } else if returned_token == Some(token) {
            Claimed::Owned { id, fresh: false }
        } else if Status::is_final(&row.try_get::<String>("", "status")?) {
            Claimed::Duplicate(id)
        } else {
            Claimed::Elsewhere
        };
        found.insert(key, claimed);
    }
    Ok(events
        .iter()
        .map(|(_, key)| found.get(*key).copied().unwrap_or(Claimed::Elsewhere))
        .collect())
}

/// Marks a batch's applied events done, inside its transaction: one statement per
/// final status, for the rows [`claim_batch`] did not already write as they end
/// (rows taken over, and fresh rows whose effect ended other than processed).
/// Returns whether every such row changed (it must: the transaction holds every
/// claimed row from the claim to the commit).
pub async fn complete_batch<C: ConnectionTrait>(
    txn: &C,
    done: &[(Claimed, Status)],
    worker_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let mut changed = 0;
    let mut expected = 0;
    for status in [Status::Processed, Status::Ignored, Status::Rejected] {
        let ids: Vec<Uuid> = done
            .iter()
            .filter_map(|(claim, s)| match claim {
                Claimed::Owned { id, fresh } if *s == status => {
                    (!fresh || status != Status::Processed).then_some(*id)
                }
                _ => None,
            })
            .collect();
        expected += ids.len() as u64;
        if ids.is_empty() {
            continue;
        }
        changed += mark_done(status, now, worker_id)
            .filter(Column::Id.is_in(ids))
            .exec(txn)
            .await?
            .rows_affected;
    }
    Ok(changed == expected)
}

/// Gives up a batch's claim on one event whose effect was rolled back to its
/// savepoint (the claim itself stands: it came before the savepoint), inside the
/// batch's transaction: the row records the failed attempt and is free at once for the
/// event's handling alone, instead of waiting out a lease nobody renews.
pub async fn release_in<C: ConnectionTrait>(
    txn: &C,
    id: Uuid,
    status: Status,
    error: &str,
) -> Result<(), sea_orm::DbErr> {
    mark_released(status, error)
        .filter(Column::Id.eq(id))
        .exec(txn)
        .await
        .map(drop)
}

/// A fresh inbox row for `envelope`: processing, first attempt, no claim yet.
fn new_row(
    envelope: &Envelope,
    dedupe_key: &str,
    now: DateTime<Utc>,
) -> webhook_event::ActiveModel {
    // A body the gateway's parser refuses reaches no column; its effect will fail
    // permanently on the same parse.
    let subjects = match envelope.provider {
        Provider::Pluggy => pluggy::parse_head(&envelope.body).ok(),
        Provider::LiveTip => None,
    };
    webhook_event::ActiveModel {
        // Time-ordered: new rows land together at the end of the key's index.
        id: Set(Uuid::now_v7()),
        provider: Set(envelope.provider.as_str().to_owned()),
        event: Set(truncate(&envelope.event, bounds::EVENT_NAME)),
        dedupe_key: Set(dedupe_key.to_owned()),
        provider_event_id: Set(envelope
            .provider_event_id
            .as_deref()
            .map(|i| truncate(i, bounds::PROVIDER_EVENT_ID))),
        pluggy_item_id: Set(subjects.as_ref().and_then(|h| h.item_id.clone())),
        pluggy_account_id: Set(subjects.and_then(|h| h.account_id)),
        payload: Set(envelope.body.to_vec()),
        received_at: Set(envelope.received_at),
        processed_at: Set(None),
        status: Set(Status::Processing.as_str().to_owned()),
        attempts: Set(1),
        duplicates: Set(0),
        last_error: Set(None),
        trace_id: Set(Some(envelope.trace.trace_id())),
        request_id: Set(Some(envelope.request_id)),
        claim_token: Set(None),
        lease_until: Set(None),
        processed_by: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

fn lease_end(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(30))
}

/// Extends a leased claim while its owner still works on the event. `false`: the
/// claim is no longer ours (taken over after the lease ran out).
pub async fn renew(
    db: &DatabaseConnection,
    owner: Owner,
    lease: Duration,
) -> Result<bool, sea_orm::DbErr> {
    let now = Utc::now();
    let renewed = WebhookEvents::update_many()
        .col_expr(Column::LeaseUntil, Expr::value(lease_end(now, lease)))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(owner.id))
        .filter(Column::ClaimToken.eq(owner.token))
        .exec(db)
        .await?;
    Ok(renewed.rows_affected == 1)
}

/// Records a failed attempt of an event claimed inside its transaction (rolled back,
/// so nothing of the attempt remains): the row shows the attempt and its error, and
/// the next copy takes it over at once. Best effort, like [`release`].
pub async fn record_failure(
    db: &DatabaseConnection,
    envelope: &Envelope,
    dedupe_key: &str,
    status: Status,
    error: &str,
) {
    let now = Utc::now();
    let mut row = new_row(envelope, dedupe_key, now);
    row.status = Set(status.as_str().to_owned());
    row.last_error = Set(Some(truncate(error, 4000)));
    let recorded = WebhookEvents::insert(row)
        .on_conflict(
            OnConflict::columns([Column::Provider, Column::DedupeKey])
                .value(Column::Status, Expr::value(status.as_str()))
                // Qualified: in an upsert, a bare column is ambiguous with `excluded`.
                .value(
                    Column::Attempts,
                    Expr::col((WebhookEvents, Column::Attempts)).add(1),
                )
                .value(Column::LastError, Expr::value(truncate(error, 4000)))
                .value(Column::UpdatedAt, Expr::value(now))
                .action_and_where(
                    Expr::col((WebhookEvents, Column::Status)).is_not_in(Status::FINAL),
                )
                .to_owned(),
        )
        .exec_without_returning(db)
        .await;
    match recorded {
        Ok(_) | Err(sea_orm::DbErr::RecordNotInserted) => {}
        Err(error) => tracing::debug!(%error, "could not record the failed attempt"),
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
    let done = mark_done(status, Utc::now(), worker_id)
        .filter(Column::Id.eq(owner.id))
        .filter(Column::ClaimToken.eq(owner.token))
        .exec(txn)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Gives the claim up after a failure, so that the next copy (a retry, a replay) may
/// take it at once. Best effort: when the database is the problem, the lease expires.
pub async fn release(db: &DatabaseConnection, owner: Owner, status: Status, error: &str) {
    let released = mark_released(status, error)
        .filter(Column::Id.eq(owner.id))
        .filter(Column::ClaimToken.eq(owner.token))
        .exec(db)
        .await;
    if let Err(error) = released {
        tracing::debug!(%error, "could not release the claim; its lease will expire");
    }
}

/// The update that finishes an event: its final status, who finished it and when, the
/// claim and any earlier error cleared.
fn mark_done(
    status: Status,
    now: DateTime<Utc>,
    worker_id: &str,
) -> sea_orm::UpdateMany<WebhookEvents> {
    WebhookEvents::update_many()
        .col_expr(Column::Status, Expr::value(status.as_str()))
        .col_expr(Column::ProcessedAt, Expr::value(now))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .col_expr(Column::ProcessedBy, Expr::value(worker_id.to_owned()))
        .col_expr(Column::ClaimToken, Expr::value(Option::<Uuid>::None))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::LastError, Expr::value(Option::<String>::None))
}

/// The update that gives a claim up after a failed attempt: the status it leaves, the
/// error, and the claim cleared so the next copy takes the event at once (with what a
/// batch's claim wrote ahead: a released row was not processed).
fn mark_released(status: Status, error: &str) -> sea_orm::UpdateMany<WebhookEvents> {
    WebhookEvents::update_many()
        .col_expr(Column::Status, Expr::value(status.as_str()))
        .col_expr(
            Column::ProcessedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::ProcessedBy, Expr::value(Option::<String>::None))
        .col_expr(Column::LastError, Expr::value(truncate(error, 4000)))
        .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
        .col_expr(Column::ClaimToken, Expr::value(Option::<Uuid>::None))
        .col_expr(
            Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
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
        .filter(Column::Status.is_not_in(Status::FINAL))
        .exec(db)
        .await;
    if let Err(error) = marked {
        tracing::debug!(%error, "could not mark the event dead in the inbox");
    }
}
