//! `GET /webhook-logs` and `GET /webhook-stats`, in the LiveTip specification's shapes.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use chrono::SecondsFormat;
use http::{Response, StatusCode};
use http_body_util::Full;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::{Value, json};
use shared::db::entities::payment::{self, PaymentStatus};
use shared::db::entities::webhook_event;
use shared::db::entities::webhook_log::{self, Column};
use uuid::Uuid;

use super::{AdminState, query};
use crate::error::{ApiError, json_response};

/// How much of an entry's `data` a listing shows. A `webhook` entry's data is the whole
/// body (up to 1 MB): 50 of them would be 50 MB. The full payload is one
/// `GET /events/{eventId}` away.
pub const DATA_PREVIEW_CHARS: usize = 1024;

/// Newest first, filtered by `event`, `status`, `type`, `traceId`, `eventId` (ours) and
/// `requestId` (the gateway's); `limit` 50 by default, 1000 at most.
pub async fn logs(
    state: &AdminState,
    raw_query: Option<&str>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let db = &state.db;
    let params = query::parse(raw_query)?;
    let limit = query::limit(&params, 50, 1000)?;
    let mut select = webhook_log::Entity::find();
    if let Some(trace_id) = query::text(&params, "traceId") {
        select = select.filter(Column::TraceId.eq(trace_id.to_ascii_lowercase()));
    }
    if let Some(event_id) = query::text(&params, "eventId") {
        select = select.filter(Column::WebhookEventId.eq(uuid_param("eventId", event_id)?));
    }
    if let Some(request_id) = query::text(&params, "requestId") {
        let events: Vec<Uuid> = webhook_event::Entity::find()
            .select_only()
            .column(webhook_event::Column::Id)
            .filter(webhook_event::Column::RequestId.eq(uuid_param("requestId", request_id)?))
            .into_tuple()
            .all(db)
            .await
            .map_err(ApiError::DatabaseUnavailable)?;
        select = select.filter(Column::WebhookEventId.is_in(events));
    }
    if let Some(event) = query::text(&params, "event") {
        select = select.filter(Column::Event.eq(event));
    }
    if let Some(status) = query::text(&params, "status") {
        select = select.filter(Column::Status.eq(status));
    }
    if let Some(log_type) = query::text(&params, "type") {
        select = select.filter(Column::LogType.eq(log_type));
    }
    let rows = select
        .order_by_desc(Column::Timestamp)
        .order_by_desc(Column::Id)
        .limit(limit)
        .all(db)
        .await
        .map_err(ApiError::DatabaseUnavailable)?;
    // The gateway's request ids of the page's events, in one query.
    let event_ids: Vec<Uuid> = rows.iter().filter_map(|r| r.webhook_event_id).collect();
    let request_ids: HashMap<Uuid, Option<Uuid>> = if event_ids.is_empty() {
        HashMap::new()
    } else {
        webhook_event::Entity::find()
            .select_only()
            .column(webhook_event::Column::Id)
            .column(webhook_event::Column::RequestId)
            .filter(webhook_event::Column::Id.is_in(event_ids))
            .into_tuple::<(Uuid, Option<Uuid>)>()
            .all(db)
            .await
            .map_err(ApiError::DatabaseUnavailable)?
            .into_iter()
            .collect()
    };
    let logs: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            let (data, truncated) = preview(row.data);
            let request_id = row
                .webhook_event_id
                .and_then(|id| request_ids.get(&id).copied().flatten());
            let mut entry = json!({
                "id": row.id.to_string(),
                "timestamp": row.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
                "type": row.log_type,
                "event": row.event,
                "status": row.status,
                "data": data,
                "dataTruncated": truncated,
                "ip": row.ip,
                "traceId": row.trace_id,
                "requestId": request_id.map(|r| r.to_string()),
                "eventId": row.webhook_event_id.map(|id| id.to_string()),
            });
            if let Some(url) = state.trace_url(row.trace_id.as_deref()) {
                entry["traceUrl"] = url.into();
            }
            entry
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"count": logs.len(), "logs": logs}),
    ))
}

fn uuid_param(name: &str, value: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(value).map_err(|_| ApiError::InvalidPayload(format!("{name} must be a UUID")))
}

/// `data` cut to [`DATA_PREVIEW_CHARS`] characters, and whether it was cut.
fn preview(data: Option<String>) -> (Option<String>, bool) {
    match data {
        Some(text) => match text.char_indices().nth(DATA_PREVIEW_CHARS) {
            Some((end, _)) => (Some(text[..end].to_owned()), true),
            None => (Some(text), false),
        },
        None => (None, false),
    }
}

/// Totals: webhooks received, payments, and counts by event, by log status and by
/// payment status. `totalWebhooks` counts the events in the inbox (`webhook_events`):
/// every distinct event the worker took, whatever became of it (processed, ignored,
/// rejected, failed or dead), copies counted once. The `webhook` log entries left out
/// events recorded without effect, so the two figures disagreed.
pub async fn stats(db: &DatabaseConnection) -> Result<Response<Full<Bytes>>, ApiError> {
    let unavailable = ApiError::DatabaseUnavailable;
    let total_webhooks = webhook_event::Entity::find()
        .count(db)
        .await
        .map_err(unavailable)?;
    let total_payments = payment::Entity::find()
        .count(db)
        .await
        .map_err(unavailable)?;
    let by_event: Vec<(Option<String>, i64)> = webhook_log::Entity::find()
        .select_only()
        .column(Column::Event)
        .column_as(Column::Id.count(), "n")
        .filter(Column::LogType.eq("webhook"))
        .group_by(Column::Event)
        .into_tuple()
        .all(db)
        .await
        .map_err(unavailable)?;
    let by_status: Vec<(String, i64)> = webhook_log::Entity::find()
        .select_only()
        .column(Column::Status)
        .column_as(Column::Id.count(), "n")
        .group_by(Column::Status)
        .into_tuple()
        .all(db)
        .await
        .map_err(unavailable)?;
    let by_payment: Vec<(String, i64)> = payment::Entity::find()
        .select_only()
        .column(payment::Column::Status)
        .column_as(payment::Column::Id.count(), "n")
        .group_by(payment::Column::Status)
        .into_tuple()
        .all(db)
        .await
        .map_err(unavailable)?;
    let event_counts: BTreeMap<String, i64> = by_event
        .into_iter()
        .filter_map(|(event, n)| Some((event?, n)))
        .collect();
    let status_counts: BTreeMap<String, i64> = by_status.into_iter().collect();
    // Every status appears, zero or not, so dashboards see a stable shape.
    let mut payment_stats: BTreeMap<String, i64> = PaymentStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), 0))
        .collect();
    payment_stats.extend(by_payment);
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "totalWebhooks": total_webhooks,
            "totalPayments": total_payments,
            "eventCounts": event_counts,
            "statusCounts": status_counts,
            "paymentStats": payment_stats,
        }),
    ))
}
