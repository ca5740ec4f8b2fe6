//! The gateway's rejected-request records, stored as the spec's `validation` log.

use sea_orm::DatabaseConnection;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::WorkerError;
use crate::logs::{self, LogEntry};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    provider: String,
    path: String,
    method: String,
    status: u16,
    reason: String,
    client_ip: Option<String>,
    request_id: Option<String>,
    trace_id: Option<String>,
    timestamp: Option<String>,
    /// Refusals of this kind in the gateway's window (1 for records of older gateways).
    #[serde(default = "one")]
    count: u64,
    #[serde(default)]
    window_secs: u64,
}

fn one() -> u64 {
    1
}

/// Stores one record (one kind of refusal in one window, with its count); the first
/// request's id makes a redelivered record a no-op.
pub async fn store(db: &DatabaseConnection, body: &[u8]) -> Result<(), WorkerError> {
    let record: Record = serde_json::from_slice(body)
        .map_err(|e| shared::payload::PayloadError(format!("rejected-request record: {e}")))?;
    let data = serde_json::json!({
        "path": record.path,
        "method": record.method,
        "httpStatus": record.status,
        "reason": record.reason,
        "requestId": record.request_id,
        "receivedAt": record.timestamp,
        "count": record.count,
        "windowSecs": record.window_secs,
    });
    logs::write(
        db,
        LogEntry {
            id: record
                .request_id
                .as_deref()
                .and_then(|id| Uuid::parse_str(id).ok()),
            log_type: "validation",
            event: None,
            status: "error",
            data: Some(data.to_string()),
            ip: record.client_ip,
            provider: match record.provider.as_str() {
                "pluggy" => Some("pluggy"),
                "livetip" => Some("livetip"),
                _ => None,
            },
            webhook_event_id: None,
            trace_id: record.trace_id,
        },
    )
    .await?;
    Ok(())
}
