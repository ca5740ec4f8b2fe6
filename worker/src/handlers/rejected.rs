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
}

/// Stores one record; the request id makes a redelivered record a no-op.
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
