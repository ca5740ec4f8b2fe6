//! LiveTip events: match the payment, move its status forward, write the spec's logs.
//!
//! Status changes are guarded updates (`... WHERE status IN (lower ranks)`), atomic in
//! the database, so concurrent deliveries on several replicas reach the same final
//! state as an in-order delivery would.

pub mod matching;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use serde_json::json;
use shared::Envelope;
use shared::db::entities::payment::{self, Column, Entity as Payments, MatchedBy, PaymentStatus};
use shared::money;
use shared::payload::livetip::{LiveTipEvent, LiveTipEventKind};
use shared::payment_id;
use uuid::Uuid;

use super::Applied;
use crate::error::WorkerError;
use crate::logs::{self, LogEntry};

/// Applies one LiveTip event.
pub async fn apply(
    txn: &DatabaseTransaction,
    envelope: &Envelope,
    event_row: Uuid,
    event: LiveTipEvent,
) -> Result<Applied, WorkerError> {
    let log = Logger {
        txn,
        envelope,
        event_row,
        event: &event.event,
    };
    log.write("webhook", "received", logs::body_as_data(&envelope.body))
        .await?;
    let applied = match LiveTipEventKind::from_name(&event.event) {
        None => {
            log.write(
                "event_ignored",
                "ignored",
                Some(json!({"reason": "event not handled"}).to_string()),
            )
            .await?;
            Applied::Ignored
        }
        Some(kind) => handle(&log, &event, kind).await?,
    };
    log.write(
        "response",
        "success",
        Some(json!({"httpStatus": 200, "requestId": envelope.request_id.to_string(), "queued": true}).to_string()),
    )
    .await?;
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

async fn handle(
    log: &Logger<'_>,
    event: &LiveTipEvent,
    kind: LiveTipEventKind,
) -> Result<Applied, WorkerError> {
    let incoming = &event.payment;
    let kind_log = log_type(kind);
    let Some(found) = matching::find(log.txn, incoming).await? else {
        if target(kind, incoming.paid) == Some(PaymentStatus::Completed) {
            let created = create(log.txn, event).await?;
            log.write(
                "payment_create",
                "success",
                Some(json!({"paymentId": incoming.payment_id, "localId": created.id, "matchedBy": MatchedBy::Created.as_str(), "amount": created.amount, "currency": created.currency, "status": created.status}).to_string()),
            )
            .await?;
            return Ok(Applied::Processed);
        }
        log.write(
            kind_log,
            "ignored",
            Some(
                json!({"paymentId": incoming.payment_id, "reason": "no matching payment"})
                    .to_string(),
            ),
        )
        .await?;
        return Ok(Applied::Ignored);
    };
    let payment = found.payment;
    let matched_by = found.matched_by;
    bind(
        log.txn,
        &payment.id,
        &incoming.payment_id,
        matched_by,
        incoming.content.as_deref(),
    )
    .await?;
    let previous = payment.status.clone();
    let base = json!({
        "paymentId": incoming.payment_id,
        "localId": payment.id,
        "matchedBy": matched_by.as_str(),
        "candidates": found.candidates,
        "from": previous,
    });
    let Some(to) = target(kind, incoming.paid) else {
        log.write(
            kind_log,
            "ignored",
            Some(with(base, json!({"reason": "paid is false"}))),
        )
        .await?;
        return Ok(Applied::Ignored);
    };
    if to == PaymentStatus::Pending {
        let status = if previous == PaymentStatus::Pending.as_str() {
            "processed"
        } else {
            "ignored"
        };
        log.write(kind_log, status, Some(with(base, json!({"to": previous}))))
            .await?;
        return Ok(if status == "processed" {
            Applied::Processed
        } else {
            Applied::Ignored
        });
    }
    if advance(log.txn, &payment.id, to).await? {
        log.write(
            kind_log,
            "success",
            Some(with(base, json!({"to": to.as_str()}))),
        )
        .await?;
        Ok(Applied::Processed)
    } else {
        let current = Payments::find_by_id(payment.id.clone())
            .one(log.txn)
            .await?
            .map_or(previous, |p| p.status);
        log.write(
            kind_log,
            "ignored",
            Some(with(
                base,
                json!({"to": current, "reason": "status only moves forward"}),
            )),
        )
        .await?;
        Ok(Applied::Ignored)
    }
}

/// Moves the status to `to` if, and only if, the current one ranks lower.
async fn advance(
    txn: &DatabaseTransaction,
    id: &str,
    to: PaymentStatus,
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
    Ok(update.exec(txn).await?.rows_affected == 1)
}

/// Binds LiveTip's id (and how it was found) to the payment, first binding wins.
async fn bind(
    txn: &DatabaseTransaction,
    id: &str,
    livetip_id: &str,
    matched_by: MatchedBy,
    content: Option<&str>,
) -> Result<(), WorkerError> {
    Payments::update_many()
        .col_expr(Column::LivetipPaymentId, Expr::value(livetip_id))
        .col_expr(Column::MatchedBy, Expr::value(matched_by.as_str()))
        .col_expr(Column::Content, Expr::value(content.map(str::to_owned)))
        .col_expr(Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(Column::Id.eq(id))
        .filter(Column::LivetipPaymentId.is_null())
        .exec(txn)
        .await?;
    Ok(())
}

/// A completed payment for a confirmation nobody expected.
async fn create(
    txn: &DatabaseTransaction,
    event: &LiveTipEvent,
) -> Result<payment::Model, WorkerError> {
    let now = Utc::now();
    let row = payment::ActiveModel {
        id: Set(payment_id::generate()),
        user_name: Set(event.payment.sender.clone()),
        amount: Set(money::to_text(event.payment.amount)),
        currency: Set(event.payment.currency.clone()),
        status: Set(PaymentStatus::Completed.as_str().to_owned()),
        livetip_payment_id: Set(Some(event.payment.payment_id.clone())),
        content: Set(event.payment.content.clone()),
        matched_by: Set(Some(MatchedBy::Created.as_str().to_owned())),
        created_at: Set(now),
        updated_at: Set(now),
        paid_at: Set(Some(event.payment.timestamp.unwrap_or(now))),
    };
    Ok(Payments::insert(row).exec_with_returning(txn).await?)
}

fn with(mut base: serde_json::Value, extra: serde_json::Value) -> String {
    if let (Some(base), serde_json::Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base.to_string()
}

/// Writes this event's log entries with the shared fields filled in.
struct Logger<'a> {
    txn: &'a DatabaseTransaction,
    envelope: &'a Envelope,
    event_row: Uuid,
    event: &'a str,
}

impl Logger<'_> {
    async fn write(
        &self,
        log_type: &'static str,
        status: &'static str,
        data: Option<String>,
    ) -> Result<(), WorkerError> {
        logs::write(
            self.txn,
            LogEntry {
                id: None,
                log_type,
                event: Some(self.event.to_owned()),
                status,
                data,
                ip: self.envelope.client_ip.map(|ip| ip.to_string()),
                provider: Some("livetip"),
                webhook_event_id: Some(self.event_row),
                trace_id: Some(self.envelope.trace.trace_id()),
            },
        )
        .await?;
        Ok(())
    }
}
