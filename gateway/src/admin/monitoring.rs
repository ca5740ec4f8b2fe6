//! `GET /webhook-logs` and `GET /webhook-stats`, in the LiveTip specification's shapes.

use std::collections::BTreeMap;

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
use shared::db::entities::webhook_log::{self, Column};

use super::query;
use crate::error::{ApiError, json_response};

/// Newest first, filtered by `event`, `status` and `type`; `limit` 50 by default, 1000 at most.
pub async fn logs(
    db: &DatabaseConnection,
    raw_query: Option<&str>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let params = query::parse(raw_query)?;
    let limit = query::limit(&params, 50, 1000)?;
    let mut select = webhook_log::Entity::find();
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
    let logs: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            json!({
                "id": row.id.to_string(),
                "timestamp": row.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
                "type": row.log_type,
                "event": row.event,
                "status": row.status,
                "data": row.data,
                "ip": row.ip,
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"count": logs.len(), "logs": logs}),
    ))
}

/// Totals: webhooks received (the `webhook` log entries), payments, and counts by event,
/// by log status and by payment status.
pub async fn stats(db: &DatabaseConnection) -> Result<Response<Full<Bytes>>, ApiError> {
    let unavailable = ApiError::DatabaseUnavailable;
    let total_webhooks = webhook_log::Entity::find()
        .filter(Column::LogType.eq("webhook"))
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
