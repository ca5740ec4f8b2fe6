//! LiveTip events: match the payment, move its status forward, write the spec's logs.
//!
//! Status changes are guarded updates (`... WHERE status IN (lower ranks)`), atomic in
//! the database, so concurrent deliveries on several replicas reach the same final
//! state as an in-order delivery would.

pub mod batch;
pub mod matching;
pub mod settlement;

pub use batch::{Created, LiveTipBatch};

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::json;
use shared::Envelope;
use shared::db::entities::payment::{self, Column, Entity as Payments, MatchedBy, PaymentStatus};
use shared::money;
use shared::payload::livetip::{LiveTipEvent, LiveTipEventKind, LiveTipPayment};
use shared::payment_id;
use uuid::Uuid;

use super::Applied;
use crate::error::WorkerError;
use crate::logs::{self, LogEntry};

/// Applies one LiveTip event.
pub async fn apply<C: ConnectionTrait>(
    txn: &C,
    envelope: &Envelope,
    event_row: Uuid,
    event: LiveTipEvent,
    scope: &super::Scope<'_>,
) -> Result<Applied, WorkerError> {
    let log = Logger {
        txn,
        written: scope.written,
        prefetched: scope.livetip,
        created: scope.created,
        event_row,
        event: &event.event,
        ip: envelope.client_ip.map(|ip| ip.to_string()),
        trace_id: envelope.trace.trace_id(),
    };
    log.write("webhook", "received", logs::body_as_data(&envelope.body));
    let applied = match LiveTipEventKind::from_name(&event.event) {
        None => {
            log.write(
                "event_ignored",
                "ignored",
                Some(json!({"reason": "event not handled"}).to_string()),
            );
            Applied::Ignored
        }
        Some(kind) => handle(&log, &event, kind).await?,
    };
    log.write(
        "response",
        "success",
        Some(json!({"httpStatus": 200, "requestId": envelope.request_id.to_string(), "queued": true}).to_string()),
    );
    Ok(applied)
}

/// The log type the specification gives each event's outcome.
fn log_type(kind: LiveTipEventKind) -> &'static str {
    match kind {
        LiveTipEventKind::Confirmed => "payment_update",
        LiveTipEventKind::Pending => "payment_pending",
        LiveTipEventKind::Failed => "payment_failed",
        LiveTipEventKind::Cancelled => "payment_cancelled",
    }
}

/// The status an event asks for; `None` when it asks for nothing (a confirmation that
/// says it is not paid).
fn target(kind: LiveTipEventKind, paid: bool) -> Option<PaymentStatus> {
    match kind {
        LiveTipEventKind::Confirmed if paid => Some(PaymentStatus::Completed),
        LiveTipEventKind::Confirmed => None,
        LiveTipEventKind::Pending => Some(PaymentStatus::Pending),
        LiveTipEventKind::Failed => Some(PaymentStatus::Failed),
        LiveTipEventKind::Cancelled => Some(PaymentStatus::Cancelled),
    }
}

async fn handle<C: ConnectionTrait>(
    log: &Logger<'_, C>,
    event: &LiveTipEvent,
    kind: LiveTipEventKind,
) -> Result<Applied, WorkerError> {
    let incoming = &event.payment;
    let kind_log = log_type(kind);
    let completes = target(kind, incoming.paid) == Some(PaymentStatus::Completed);
    let Some(found) = find(log.txn, incoming, completes, log.prefetched).await? else {
        if completes {
            let created = match (log.prefetched, log.created) {
                // In a batch: written with the batch's other creations, after the last
                // effect; visible to its later events meanwhile.
                (Some(_), Some(deferred)) => {
                    let payment = new_payment(event);
                    deferred.set(&incoming.payment_id, payment.clone());
                    payment
                }
                _ => create(log.txn, event).await?,
            };
            log.write(
                "payment_create",
                "success",
                Some(json!({"paymentId": incoming.payment_id, "localId": created.id, "matchedBy": MatchedBy::Created.as_str(), "amount": created.amount, "currency": created.currency, "status": created.status}).to_string()),
            );
            return Ok(Applied::Processed);
        }
        log.write(
            kind_log,
            "ignored",
            Some(
                json!({"paymentId": incoming.payment_id, "reason": "no matching payment"})
                    .to_string(),
            ),
        );
        return Ok(Applied::Ignored);
    };
    let payment = found.payment;
    let matched_by = found.matched_by;
    let previous = payment.status.clone();
    let base = json!({
        "paymentId": incoming.payment_id,
        "localId": payment.id,
        "matchedBy": matched_by.as_str(),
        "candidates": found.candidates,
        "from": previous,
    });
    let Some(mut to) = target(kind, incoming.paid) else {
        log.write(
            kind_log,
            "ignored",
            Some(with(base, json!({"reason": "paid is false"}))),
        );
        return Ok(Applied::Ignored);
    };
    if to == PaymentStatus::Pending {
        let status = if previous == PaymentStatus::Pending.as_str() {
            "processed"
        } else {
            "ignored"
        };
        log.write(kind_log, status, Some(with(base, json!({"to": previous}))));
        return Ok(if status == "processed" {
            Applied::Processed
        } else {
            Applied::Ignored
        });
    }
    let mut mismatch = None;
    if to == PaymentStatus::Completed {
        mismatch = settlement::check(&payment, incoming);
        if let Some(reason) = mismatch {
            to = PaymentStatus::Underpaid;
            tracing::warn!(
                payment = %payment.id,
                livetip_payment = %incoming.payment_id,
                expected = %format!("{} {}", payment.amount, payment.currency),
                received = %format!("{} {}", money::to_text(incoming.amount), incoming.currency),
                reason = reason.as_str(),
                "LiveTip payment does not settle the payment"
            );
        }
    }
    let received =
        matches!(to, PaymentStatus::Completed | PaymentStatus::Underpaid).then_some(incoming);
    let moved = advance(log.txn, &payment.id, to, received).await?;
    let mut extra = json!({"to": to.as_str()});
    if let Some(reason) = mismatch {
        extra = json!({
            "to": to.as_str(),
            "reason": reason.as_str(),
            "expected": {"amount": payment.amount, "currency": payment.currency},
            "received": {"amount": money::to_text(incoming.amount), "currency": incoming.currency},
        });
    }
    if moved {
        let status = match mismatch {
            Some(reason) => {
                // Counted when it changed the payment: copies and replays are not new
                // mismatches.
                metrics::counter!("hookwire_worker_payment_mismatches_total", "reason" => reason.as_str())
                    .increment(1);
                "error"
            }
            None => "success",
        };
        log.write(kind_log, status, Some(with(base, extra)));
        Ok(Applied::Processed)
    } else {
        let current = Payments::find_by_id(payment.id.clone())
            .one(log.txn)
            .await?
            .map_or(previous, |p| p.status);
        let mut extra = extra;
        if let Some(object) = extra.as_object_mut() {
            object.insert("to".into(), json!(current));
            object
                .entry("reason")
                .or_insert(json!("status only moves forward"));
        }
        log.write(kind_log, "ignored", Some(with(base, extra)));
        Ok(Applied::Ignored)
    }
}

/// The specification's matching order; a candidate taken by a concurrent event is
/// skipped for the next one. What a batch read up front answers instead of a query
/// when it still holds (see [`prefetch`]); a binding made since by another replica is
/// still caught, by `bind`'s key, and a payment taken since by the guard in `take`.
async fn find<C: ConnectionTrait>(
    txn: &C,
    incoming: &LiveTipPayment,
    completes: bool,
    prefetched: Option<&LiveTipBatch>,
) -> Result<Option<matching::Candidate>, WorkerError> {
    let found = find_uncached(txn, incoming, completes, prefetched).await?;
    if found.is_some()
        && let Some(prefetched) = prefetched
    {
        // The event is about an existing payment and may move it: what the batch read
        // about open payments no longer holds.
        prefetched.forget_open();
    }
    Ok(found)
}

async fn find_uncached<C: ConnectionTrait>(
    txn: &C,
    incoming: &LiveTipPayment,
    completes: bool,
    prefetched: Option<&LiveTipBatch>,
) -> Result<Option<matching::Candidate>, WorkerError> {
    if let Some(payment) = prefetched.and_then(|p| p.created_for(&incoming.payment_id)) {
        return Ok(Some(matching::Candidate {
            payment,
            matched_by: MatchedBy::LivetipId,
            candidates: 1,
        }));
    }
    let known_unbound = prefetched.is_some_and(|p| p.take_unbound(&incoming.payment_id));
    if !known_unbound && let Some(found) = matching::bound(txn, &incoming.payment_id).await? {
        return Ok(Some(found));
    }
    let open = prefetched.and_then(|p| p.open_of(&incoming.sender));
    for candidate in matching::candidates(txn, incoming, completes, open).await? {
        if matching::take(txn, &candidate, incoming, completes).await? {
            if candidate.candidates > 1 {
                tracing::debug!(
                    chosen = %candidate.payment.id,
                    candidates = candidate.candidates,
                    "several pending payments match by amount and payer; the oldest free one wins"
                );
            }
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// Moves the status to `to` if, and only if, the current one ranks lower; records
/// what was received when money arrived.
async fn advance<C: ConnectionTrait>(
    txn: &C,
    id: &str,
    to: PaymentStatus,
    received: Option<&LiveTipPayment>,
) -> Result<bool, WorkerError> {
    let now = Utc::now();
    let mut update = Payments::update_many()
        .col_expr(Column::Status, Expr::value(to.as_str()))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.is_in(to.replaces()));
    if to == PaymentStatus::Completed {
        update = update.col_expr(Column::PaidAt, Expr::value(now));
    }
    if let Some(received) = received {
        update = update
            .col_expr(
                Column::ReceivedAmount,
                Expr::value(money::to_text(received.amount)),
            )
            .col_expr(
                Column::ReceivedCurrency,
                Expr::value(received.currency.clone()),
            );
    }
    Ok(update.exec(txn).await?.rows_affected == 1)
}

/// A completed payment for a confirmation nobody expected.
async fn create<C: ConnectionTrait>(
    txn: &C,
    event: &LiveTipEvent,
) -> Result<payment::Model, WorkerError> {
    let row = payment::ActiveModel::from(new_payment(event)).reset_all();
    // The payment row first, then the binding: the order `matching::take` locks them in,
    // so two events about one LiveTip payment cannot deadlock.
    let created = Payments::insert(row).exec_with_returning(txn).await?;
    matching::bind(txn, &event.payment.payment_id, &created.id).await?;
    Ok(created)
}

/// The completed payment a confirmation nobody expected creates.
fn new_payment(event: &LiveTipEvent) -> payment::Model {
    let now = Utc::now();
    let amount = money::to_text(event.payment.amount);
    payment::Model {
        id: payment_id::generate(),
        user_name: event.payment.sender.clone(),
        amount: amount.clone(),
        currency: event.payment.currency.clone(),
        status: PaymentStatus::Completed.as_str().to_owned(),
        livetip_payment_id: Some(event.payment.payment_id.clone()),
        content: event.payment.content.clone(),
        matched_by: Some(MatchedBy::Created.as_str().to_owned()),
        created_at: now,
        updated_at: now,
        paid_at: Some(event.payment.timestamp.unwrap_or(now)),
        received_amount: Some(amount),
        received_currency: Some(event.payment.currency.clone()),
    }
}

fn with(mut base: serde_json::Value, extra: serde_json::Value) -> String {
    if let (Some(base), serde_json::Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base.to_string()
}

/// Writes this event's log entries with the shared fields filled in.
struct Logger<'a, C> {
    txn: &'a C,
    written: &'a logs::Buffer,
    prefetched: Option<&'a LiveTipBatch>,
    created: Option<&'a Created>,
    event_row: Uuid,
    event: &'a str,
    /// Formatted once for the event's several entries.
    ip: Option<String>,
    trace_id: String,
}

impl<C> Logger<'_, C> {
    fn write(&self, log_type: &'static str, status: &'static str, data: Option<String>) {
        self.written.push(LogEntry {
            id: None,
            log_type,
            event: Some(self.event.to_owned()),
            status,
            data,
            ip: self.ip.clone(),
            provider: Some("livetip"),
            webhook_event_id: Some(self.event_row),
            trace_id: Some(self.trace_id.clone()),
        });
    }
}
