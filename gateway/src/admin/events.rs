//! `GET /events/{key}`: one event, found by any id an operator is likely to hold, with
//! what became of it and what it touched, so nobody opens the tables by hand; and
//! `GET /events`: a filtered listing with a cursor.

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http::{Response, StatusCode};
use http_body_util::Full;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use shared::db::entities::{
    bank_account, bank_transaction, livetip_binding, payment, pluggy_item, webhook_event,
    webhook_log,
};
use shared::payload::bounds;
use uuid::Uuid;

use super::{AdminState, query};
use crate::error::{ApiError, json_response};

/// The event whose id, gateway request id (`X-Request-Id`) or trace id (`X-Trace-Id`)
/// is `key`. A request id or trace id may name several rows only if a provider sent
/// the same request twice through one trace, which the gateway never does; the newest
/// row wins.
pub async fn get(state: &AdminState, key: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    let db = &state.db;
    let unavailable = ApiError::DatabaseUnavailable;
    // A trace id is 32 hex digits, which also parses as a UUID written without hyphens:
    // such a key may be either.
    let mut matches = Condition::any();
    if let Ok(id) = Uuid::try_parse(key) {
        matches = matches
            .add(webhook_event::Column::Id.eq(id))
            .add(webhook_event::Column::RequestId.eq(id));
    }
    if is_trace_id(key) {
        matches = matches.add(webhook_event::Column::TraceId.eq(key.to_ascii_lowercase()));
    }
    if matches.is_empty() {
        return Err(not_found(key));
    }
    let event = webhook_event::Entity::find()
        .filter(matches)
        .order_by_desc(webhook_event::Column::CreatedAt)
        .one(db)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| not_found(key))?;
    let logs = webhook_log::Entity::find()
        .filter(webhook_log::Column::WebhookEventId.eq(event.id))
        .order_by_asc(webhook_log::Column::Timestamp)
        .order_by_asc(webhook_log::Column::Id)
        .all(db)
        .await
        .map_err(unavailable)?;
    let touched = touched(db, &event).await.map_err(unavailable)?;
    let mut body = event_json(state, &event);
    body["payload"] = payload_json(&event.payload);
    body["logs"] = logs
        .iter()
        .map(|l| {
            json!({
                "id": l.id.to_string(),
                "timestamp": time(l.timestamp),
                "type": l.log_type,
                "event": l.event,
                "status": l.status,
                "data": l.data,
            })
        })
        .collect();
    body["touched"] = touched;
    Ok(json_response(StatusCode::OK, &body))
}

fn not_found(key: &str) -> ApiError {
    ApiError::NoSuchRecord {
        kind: "event",
        key: key.chars().take(128).collect(),
    }
}

/// A W3C trace id: 32 hex digits.
fn is_trace_id(key: &str) -> bool {
    key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An event's own fields, as every events surface shows them.
pub fn event_json(state: &AdminState, e: &webhook_event::Model) -> Value {
    json!({
        "id": e.id.to_string(),
        "provider": e.provider,
        "event": e.event,
        "status": e.status,
        "attempts": e.attempts,
        "duplicates": e.duplicates,
        "providerEventId": e.provider_event_id,
        "itemId": e.pluggy_item_id,
        "accountId": e.pluggy_account_id,
        "receivedAt": time(e.received_at),
        "processedAt": e.processed_at.map(time),
        "lastError": e.last_error,
        "traceId": e.trace_id,
        "requestId": e.request_id.map(|r| r.to_string()),
        "traceUrl": state.trace_url(e.trace_id.as_deref()),
    })
}

/// The raw body as received: text when it is UTF-8 (providers send JSON), else base64.
fn payload_json(payload: &[u8]) -> Value {
    match std::str::from_utf8(payload) {
        Ok(text) => json!({"encoding": "text", "body": text}),
        Err(_) => json!({
            "encoding": "base64",
            "body": base64::engine::general_purpose::STANDARD.encode(payload),
        }),
    }
}

/// What the event's effect reached: the LiveTip payment bound to its `paymentId`; the
/// Pluggy item, its accounts and their transactions.
async fn touched(
    db: &DatabaseConnection,
    event: &webhook_event::Model,
) -> Result<Value, sea_orm::DbErr> {
    let body: Value = serde_json::from_slice(&event.payload).unwrap_or(Value::Null);
    let text = |v: &Value| {
        v.as_str()
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .map(str::to_owned)
    };
    match event.provider.as_str() {
        "livetip" => {
            let Some(livetip_id) = text(&body["payment"]["paymentId"]) else {
                return Ok(json!({}));
            };
            let bound = livetip_binding::Entity::find_by_id(livetip_id.clone())
                .one(db)
                .await?;
            let payment = match bound {
                Some(binding) => {
                    payment::Entity::find_by_id(binding.payment_id)
                        .one(db)
                        .await?
                }
                None => None,
            };
            Ok(json!({
                "livetipPaymentId": livetip_id,
                "payment": payment.as_ref().map(super::payments::to_json),
            }))
        }
        "pluggy" => {
            let Some(item_id) = text(&body["itemId"]) else {
                return Ok(json!({}));
            };
            let item = pluggy_item::Entity::find_by_id(item_id.clone())
                .one(db)
                .await?;
            let accounts = bank_account::Entity::find()
                .filter(bank_account::Column::ItemId.eq(item_id.clone()))
                .all(db)
                .await?;
            let mut listed = Vec::with_capacity(accounts.len());
            for account in &accounts {
                let transactions = bank_transaction::Entity::find()
                    .filter(bank_transaction::Column::AccountId.eq(account.id.clone()))
                    .count(db)
                    .await?;
                listed.push(json!({
                    "id": account.id,
                    "name": account.name,
                    "syncStatus": account.sync_status,
                    "lastSyncedAt": account.last_synced_at.map(time),
                    "transactions": transactions,
                }));
            }
            Ok(json!({
                "itemId": item_id,
                "item": item.map(|i| json!({
                    "id": i.id,
                    "status": i.status,
                    "executionStatus": i.execution_status,
                    "lastEvent": i.last_event,
                    "syncedAt": i.synced_at.map(time),
                    "deletedAt": i.deleted_at.map(time),
                })),
                "accounts": listed,
            }))
        }
        _ => Ok(json!({})),
    }
}

/// `GET /events?provider=&event=&status=&since=&until=&q=&limit=&cursor=`: newest first
/// by the gateway's receipt. The cursor names the last row of a page (its receipt time
/// and id, neither of which ever changes): paging on never repeats or skips a row that
/// existed, whatever is inserted meanwhile. `q` is a provider's id (LiveTip `paymentId`;
/// Pluggy `eventId`, `itemId` or `accountId`) or one of our payment ids (its LiveTip
/// payments' events).
pub async fn list(
    state: &AdminState,
    raw_query: Option<&str>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let db = &state.db;
    let unavailable = ApiError::DatabaseUnavailable;
    let params = query::parse(raw_query)?;
    let limit = query::limit(&params, 50, 200)?;
    let mut select = webhook_event::Entity::find();
    for (name, column) in [
        ("provider", webhook_event::Column::Provider),
        ("event", webhook_event::Column::Event),
        ("status", webhook_event::Column::Status),
    ] {
        if let Some(value) = query::text(&params, name) {
            select = select.filter(column.eq(value));
        }
    }
    if let Some(since) = query::text(&params, "since") {
        select = select.filter(webhook_event::Column::ReceivedAt.gte(instant("since", since)?));
    }
    if let Some(until) = query::text(&params, "until") {
        select = select.filter(webhook_event::Column::ReceivedAt.lt(instant("until", until)?));
    }
    if let Some(q) = query::text(&params, "q") {
        let mut ids = vec![q.to_owned()];
        // One of our payment ids: the LiveTip payments bound to it.
        if q.len() <= 32 {
            ids.extend(
                livetip_binding::Entity::find()
                    .filter(livetip_binding::Column::PaymentId.eq(q.to_ascii_uppercase()))
                    .all(db)
                    .await
                    .map_err(unavailable)?
                    .into_iter()
                    .map(|b| b.livetip_payment_id),
            );
        }
        // A Pluggy item's or account's events; a `q` longer than any Pluggy id cannot be one.
        let mut matches = Condition::any().add(webhook_event::Column::ProviderEventId.is_in(ids));
        if q.chars().count() <= bounds::PLUGGY_ID {
            matches = matches
                .add(webhook_event::Column::PluggyItemId.eq(q))
                .add(webhook_event::Column::PluggyAccountId.eq(q));
        }
        select = select.filter(matches);
    }
    if let Some(cursor) = query::text(&params, "cursor") {
        let (at, id) = Cursor::parse(cursor)?;
        // A row comparison, which the (received_at, id) index answers as one range; the
        // equivalent `a < x OR (a = x AND b < y)` is not: 408 ms halfway down a million
        // events instead of a fraction of one (BENCHMARKS.md).
        select = select.filter(
            Expr::tuple([
                Expr::col(webhook_event::Column::ReceivedAt),
                Expr::col(webhook_event::Column::Id),
            ])
            .lt(Expr::tuple([Expr::value(at), Expr::value(id)])),
        );
    }
    let rows = select
        .order_by_desc(webhook_event::Column::ReceivedAt)
        .order_by_desc(webhook_event::Column::Id)
        .limit(limit)
        .all(db)
        .await
        .map_err(unavailable)?;
    let next = (rows.len() as u64 == limit)
        .then(|| rows.last().map(|r| Cursor::format(r.received_at, r.id)))
        .flatten();
    let events: Vec<Value> = rows.iter().map(|e| event_json(state, e)).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"count": events.len(), "events": events, "nextCursor": next}),
    ))
}

fn instant(name: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::InvalidPayload(format!("{name} must be an RFC 3339 time")))
}

/// The position after a page: the last row's receipt time, to the nanosecond (SQLite
/// keeps them; PostgreSQL microseconds), and id.
struct Cursor;

impl Cursor {
    fn format(at: DateTime<Utc>, id: Uuid) -> String {
        let nanos = at
            .timestamp_nanos_opt()
            .unwrap_or_else(|| at.timestamp_micros().saturating_mul(1000));
        format!("{nanos}_{}", id.simple())
    }

    fn parse(raw: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
        let invalid = || ApiError::InvalidPayload("cursor is not one this API gave".to_owned());
        let (nanos, id) = raw.split_once('_').ok_or_else(invalid)?;
        let at = DateTime::from_timestamp_nanos(nanos.parse::<i64>().map_err(|_| invalid())?);
        Ok((at, Uuid::try_parse(id).map_err(|_| invalid())?))
    }
}
