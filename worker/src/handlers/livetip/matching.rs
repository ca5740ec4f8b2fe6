//! Finding the payment a LiveTip event is about, in the specification's order, safely
//! under concurrency.
//!
//! Reading candidates and taking one are two steps: between them a concurrent event
//! (in this process or another replica) may take the same payment. So a candidate is
//! only a match once [`take`] has bound it with a guarded update that re-checks, under
//! the row lock, what made it a candidate; a candidate taken meanwhile is skipped and
//! the next one tried. PostgreSQL re-evaluates the guard after the concurrent
//! transaction commits; SQLite runs one writer at a time.

use chrono::Utc;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder,
};
use shared::db::entities::livetip_binding::{self, Entity as Bindings};
use shared::db::entities::payment::{self, Column, Entity as Payments, MatchedBy, PaymentStatus};
use shared::money::{self, Decimal};
use shared::payload::livetip::LiveTipPayment;
use shared::payment_id;

use super::settlement;
use crate::error::WorkerError;

/// The fallback's window: the specification's `Math.abs(stored - amount) < 0.01`.
fn tolerance() -> Decimal {
    Decimal::new(1, 2)
}

/// A payment the event may be about, and how it was found.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The payment as read.
    pub payment: payment::Model,
    /// Which method found it.
    pub matched_by: MatchedBy,
    /// Open payments the fallback chose among (1 for the other methods).
    pub candidates: usize,
}

/// Method 1: the payment this LiveTip payment is already bound to.
pub async fn bound<C: ConnectionTrait>(
    db: &C,
    livetip_id: &str,
) -> Result<Option<Candidate>, DbErr> {
    let Some(binding) = Bindings::find_by_id(livetip_id.to_owned()).one(db).await? else {
        return Ok(None);
    };
    Ok(Payments::find_by_id(binding.payment_id)
        .one(db)
        .await?
        .map(|payment| Candidate {
            payment,
            matched_by: MatchedBy::LivetipId,
            candidates: 1,
        }))
}

/// Which of `livetip_ids` are bound already (method 1 for a whole batch, one query).
pub async fn bound_among<C: ConnectionTrait>(
    db: &C,
    livetip_ids: &std::collections::HashSet<String>,
) -> Result<std::collections::HashSet<String>, DbErr> {
    if livetip_ids.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    Ok(Bindings::find()
        .filter(livetip_binding::Column::LivetipPaymentId.is_in(livetip_ids.iter().cloned()))
        .all(db)
        .await?
        .into_iter()
        .map(|b| b.livetip_payment_id)
        .collect())
}

/// Methods 2 and 3, in order: our ids in the payer's message, then same payer,
/// currency and amount among unbound pending payments, oldest first. `completes`: the
/// event is a paid confirmation; then an `underpaid` payment it would settle in full is
/// open to it too (by either method), so a later correct payment still completes it.
/// `open`: the sender's pending and underpaid payments (any currency, oldest first)
/// when a batch read them up front and they still hold; else they are queried.
pub async fn candidates<C: ConnectionTrait>(
    db: &C,
    incoming: &LiveTipPayment,
    completes: bool,
    open: Option<Vec<payment::Model>>,
) -> Result<Vec<Candidate>, DbErr> {
    let mut found = Vec::new();
    if let Some(content) = &incoming.content {
        for id in payment_id::find_all(content) {
            if let Some(payment) = Payments::find_by_id(id).one(db).await?
                && open_to(
                    &payment,
                    &incoming.payment_id,
                    settles(completes, &payment, incoming),
                )
            {
                found.push(Candidate {
                    payment,
                    matched_by: MatchedBy::ExternalId,
                    candidates: 1,
                });
            }
        }
    }
    // One query per status, each an equality, so the (user_name, status, created_at)
    // index answers it whatever the planner knows: a sender's completed payments,
    // however many, are never read here (an IN list let it scan them all).
    let mut rows = match open {
        Some(open) => open
            .into_iter()
            .filter(|p| {
                p.currency == incoming.currency
                    && (p.status == PaymentStatus::Pending.as_str()
                        || (completes && p.status == PaymentStatus::Underpaid.as_str()))
            })
            .collect(),
        None => {
            let mut rows = open_payments(db, incoming, PaymentStatus::Pending).await?;
            if completes {
                rows.extend(open_payments(db, incoming, PaymentStatus::Underpaid).await?);
            }
            rows
        }
    };
    if completes {
        rows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        // A payment that changed status between the two reads appears once.
        rows.dedup_by(|a, b| a.id == b.id);
    }
    let close: Vec<payment::Model> = rows
        .into_iter()
        .filter(|p| {
            money::from_text(&p.amount)
                .is_some_and(|amount| (amount - incoming.amount).abs() < tolerance())
        })
        .filter(|p| {
            if p.status == PaymentStatus::Pending.as_str() {
                p.livetip_payment_id.is_none()
            } else {
                settles(completes, p, incoming)
            }
        })
        .collect();
    let count = close.len();
    found.extend(close.into_iter().map(|payment| Candidate {
        payment,
        matched_by: MatchedBy::AmountUser,
        candidates: count,
    }));
    Ok(found)
}

/// The pending and underpaid payments of `senders`, oldest first, in one query (a
/// batch's read for all its events). Per sender and status an equality, like
/// `open_payments`, so the (user_name, status, created_at) index answers it.
pub async fn open_payments_of<C: ConnectionTrait>(
    db: &C,
    senders: &std::collections::HashSet<String>,
) -> Result<Vec<payment::Model>, DbErr> {
    if senders.is_empty() {
        return Ok(Vec::new());
    }
    let mut any = Condition::any();
    for sender in senders {
        for status in [PaymentStatus::Pending, PaymentStatus::Underpaid] {
            any = any.add(
                Condition::all()
                    .add(Column::UserName.eq(sender.as_str()))
                    .add(Column::Status.eq(status.as_str())),
            );
        }
    }
    Payments::find()
        .filter(any)
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .all(db)
        .await
}

/// The sender's payments in `status` and the event's currency, oldest first.
async fn open_payments<C: ConnectionTrait>(
    db: &C,
    incoming: &LiveTipPayment,
    status: PaymentStatus,
) -> Result<Vec<payment::Model>, DbErr> {
    Payments::find()
        .filter(Column::UserName.eq(incoming.sender.as_str()))
        .filter(Column::Status.eq(status.as_str()))
        .filter(Column::Currency.eq(incoming.currency.as_str()))
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .all(db)
        .await
}

/// Whether the event is a paid confirmation that settles `payment` in full.
pub fn settles(completes: bool, payment: &payment::Model, incoming: &LiveTipPayment) -> bool {
    completes && settlement::check(payment, incoming).is_none()
}

/// Whether a payment named in the message may take this LiveTip payment: unbound,
/// already bound to it, or underpaid and settled in full by it. One bound to another
/// LiveTip payment is merely quoted.
fn open_to(payment: &payment::Model, livetip_id: &str, settles: bool) -> bool {
    match payment.livetip_payment_id.as_deref() {
        None => true,
        Some(bound) => {
            bound == livetip_id || (settles && payment.status == PaymentStatus::Underpaid.as_str())
        }
    }
}

/// Binds the LiveTip payment to `candidate` if it is still what made it a candidate,
/// re-checked under the row lock. `false`: a concurrent event took it first; try the
/// next candidate.
pub async fn take<C: ConnectionTrait>(
    db: &C,
    candidate: &Candidate,
    incoming: &LiveTipPayment,
    completes: bool,
) -> Result<bool, WorkerError> {
    let livetip_id = incoming.payment_id.as_str();
    let mut open = Condition::any()
        .add(Column::LivetipPaymentId.is_null())
        .add(Column::LivetipPaymentId.eq(livetip_id));
    if candidate.matched_by == MatchedBy::AmountUser {
        open = Condition::all()
            .add(open)
            .add(Column::Status.eq(PaymentStatus::Pending.as_str()));
    }
    if settles(completes, &candidate.payment, incoming) {
        open = Condition::any()
            .add(open)
            .add(Column::Status.eq(PaymentStatus::Underpaid.as_str()));
    }
    let taken = Payments::update_many()
        .col_expr(Column::LivetipPaymentId, Expr::value(livetip_id))
        .col_expr(
            Column::MatchedBy,
            Expr::value(candidate.matched_by.as_str()),
        )
        .col_expr(Column::Content, Expr::value(incoming.content.clone()))
        .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(Column::Id.eq(candidate.payment.id.as_str()))
        .filter(open)
        .exec(db)
        .await?;
    if taken.rows_affected != 1 {
        return Ok(false);
    }
    bind(db, livetip_id, &candidate.payment.id).await?;
    Ok(true)
}

/// Records that `livetip_id` is about `payment`. A LiveTip payment is bound once: if a
/// concurrent event bound it to another payment first, this attempt is contended and
/// starts over (and then finds that binding by method 1).
pub async fn bind<C: ConnectionTrait>(
    db: &C,
    livetip_id: &str,
    payment: &str,
) -> Result<(), WorkerError> {
    let row = livetip_binding::ActiveModel {
        livetip_payment_id: Set(livetip_id.to_owned()),
        payment_id: Set(payment.to_owned()),
        created_at: Set(Utc::now()),
    };
    let inserted = Bindings::insert(row)
        .on_conflict(
            OnConflict::column(livetip_binding::Column::LivetipPaymentId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await;
    match inserted {
        Ok(n) if n > 0 => return Ok(()),
        Ok(_) | Err(DbErr::RecordNotInserted) => {}
        Err(e) => return Err(e.into()),
    }
    let existing = Bindings::find_by_id(livetip_id.to_owned()).one(db).await?;
    if existing.is_some_and(|b| b.payment_id == payment) {
        Ok(())
    } else {
        Err(WorkerError::Contended(
            "the LiveTip payment was bound to another payment meanwhile",
        ))
    }
}
