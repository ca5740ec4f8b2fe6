//! `GET /overview`: the console's first page in one request: events per minute by
//! outcome over the last hour, and every queue's depth with the age of its oldest
//! message. `/webhook-stats` stays the spec's figures; this adds what an operator
//! watches while something happens.

use bytes::Bytes;
use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};
use http::{Response, StatusCode};
use http_body_util::Full;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde_json::{Map, Value, json};
use shared::Provider;
use shared::amqp::queue_depths::{self, QueueDepth, QueueKind};
use shared::db::entities::webhook_event;

use super::AdminState;
use crate::error::{ApiError, json_response};

/// The chart's window, in minutes.
const WINDOW_MINUTES: i64 = 60;

/// `GET /overview`. Each half stands without the other's store: without the database
/// `eventsPerMinute` is `null` and `databaseReachable` false; without the broker
/// `queues` is `null` and `brokerReachable` false. An outage of either is what the
/// operator opens this page to see.
pub async fn get(state: &AdminState) -> Result<Response<Full<Bytes>>, ApiError> {
    let now = Utc::now();
    let db = &state.db;
    let minutes = match per_minute(db, now).await {
        Ok(minutes) => Some(minutes),
        Err(error) => {
            tracing::warn!(%error, "overview without the database");
            None
        }
    };
    let queues = match queue_depths::read(&state.app.link, state.app.link.topology()).await {
        Ok(readings) => {
            let mut listed = Vec::with_capacity(readings.len());
            for reading in &readings {
                listed.push(queue_json(db, reading, now).await);
            }
            Some(listed)
        }
        Err(error) => {
            tracing::warn!(%error, "overview without queue depths");
            None
        }
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "generatedAt": now.to_rfc3339_opts(SecondsFormat::Secs, true),
            "windowMinutes": WINDOW_MINUTES,
            "databaseReachable": minutes.is_some(),
            "eventsPerMinute": minutes,
            "brokerReachable": queues.is_some(),
            "queues": queues,
        }),
    ))
}

/// Events received in each minute of the window, by their status now; every minute
/// listed, oldest first, empty ones included so a chart needs no gap filling.
async fn per_minute(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<Vec<Value>, DbErr> {
    let end = now
        .duration_trunc(Duration::minutes(1))
        .unwrap_or(now)
        .checked_add_signed(Duration::minutes(1))
        .unwrap_or(now);
    let start = end - Duration::minutes(WINDOW_MINUTES);
    let backend = db.get_database_backend();
    // The two backends spell grouping by minute, and their placeholders, differently.
    let minute = match backend {
        DatabaseBackend::Postgres => {
            "to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI')"
        }
        _ => "strftime('%Y-%m-%dT%H:%M', received_at)",
    };
    let placeholder = match backend {
        DatabaseBackend::Postgres => "$1",
        _ => "?",
    };
    let sql = format!(
        "SELECT {minute} AS minute, status, COUNT(*) AS n FROM webhook_events \
         WHERE received_at >= {placeholder} GROUP BY 1, 2"
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, [start.into()]))
        .await?;
    let mut counts: Vec<(String, Map<String, Value>)> = (0..WINDOW_MINUTES)
        .map(|i| {
            let at = start + Duration::minutes(i);
            (at.format("%Y-%m-%dT%H:%M").to_string(), Map::new())
        })
        .collect();
    for row in rows {
        let minute: String = row.try_get("", "minute")?;
        let status: String = row.try_get("", "status")?;
        let n: i64 = row.try_get("", "n")?;
        if let Some((_, by_status)) = counts.iter_mut().find(|(m, _)| *m == minute) {
            by_status.insert(status, Value::from(n));
        }
    }
    Ok(counts
        .into_iter()
        .map(|(minute, by_status)| json!({"minute": format!("{minute}:00Z"), "counts": by_status}))
        .collect())
}

async fn queue_json(db: &DatabaseConnection, reading: &QueueDepth, now: DateTime<Utc>) -> Value {
    let seconds = |at: DateTime<Utc>| (now - at).num_milliseconds().max(0) as f64 / 1000.0;
    let (age, estimated) = match (reading.kind, reading.messages) {
        (_, None | Some(0)) => (None, false),
        (QueueKind::Dead, Some(_)) => (reading.oldest_dead_at.map(seconds), false),
        // A work queue is never peeked (see `queue_depths`). FIFO, its messages came
        // after the newest event the workers recorded, so the time since that event's
        // receipt bounds the wait from above (a retried event, older, may exceed it;
        // with sparse traffic the bound is loose).
        (QueueKind::Work, Some(_)) => match reading.provider {
            Some(provider) => (
                newest_recorded(db, provider)
                    .await
                    .ok()
                    .flatten()
                    .map(seconds),
                true,
            ),
            None => (None, false),
        },
        (QueueKind::Retry | QueueKind::Rejected, Some(_)) => (None, false),
    };
    json!({
        "queue": reading.queue,
        "kind": reading.kind.as_str(),
        "provider": reading.provider.map(Provider::as_str),
        "messages": reading.messages,
        "consumers": reading.consumers,
        "oldestAgeSeconds": age,
        "ageIsEstimate": estimated,
    })
}

/// Receipt time of the newest event of `provider` the workers recorded.
async fn newest_recorded(
    db: &DatabaseConnection,
    provider: Provider,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    webhook_event::Entity::find()
        .select_only()
        .column(webhook_event::Column::ReceivedAt)
        .filter(webhook_event::Column::Provider.eq(provider.as_str()))
        .order_by_desc(webhook_event::Column::ReceivedAt)
        .limit(1)
        .into_tuple::<DateTime<Utc>>()
        .one(db)
        .await
}
