//! Records of rejected requests, for the spec's `validation` log, kept off the request path.
//!
//! A handler hands a record to a bounded buffer and moves on; one background task
//! publishes them to the audit queue, which the worker stores. When the buffer is full
//! (a flood of bad requests, or the broker is away) records are dropped and counted:
//! the audit trail is best-effort by design, the ingest path is not.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lapin::BasicProperties;
use serde::Serialize;
use shared::amqp::BrokerLink;
use shared::amqp::topology::REJECTED_ROUTING_PREFIX;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One refused request. Holds no credential and no body.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedRequest {
    /// RFC 3339 UTC.
    pub timestamp: String,
    /// `pluggy`, `livetip`, or `unknown`.
    pub provider: &'static str,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Status we answered.
    pub status: u16,
    /// Why.
    pub reason: String,
    /// Peer address.
    pub client_ip: IpAddr,
    /// Our request id.
    pub request_id: String,
    /// Trace id.
    pub trace_id: String,
}

/// Sending side, held by the handlers.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<RejectedRequest>,
    dropped: Arc<AtomicU64>,
}

impl AuditSink {
    /// Starts the publishing task; it ends when every sink is dropped or on `shutdown`.
    pub fn start(
        link: BrokerLink,
        exchange: String,
        capacity: usize,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(publish_loop(link, exchange, rx, shutdown));
        (Self { tx, dropped }, task)
    }

    /// Queues a record without waiting; drops it when the buffer is full.
    pub fn record(&self, record: RejectedRequest) {
        if self.tx.try_send(record).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    "rejected-request audit buffer full; records dropped"
                );
            }
        }
    }

    /// Records dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn publish_loop(
    link: BrokerLink,
    exchange: String,
    mut rx: mpsc::Receiver<RejectedRequest>,
    shutdown: CancellationToken,
) {
    loop {
        let record = tokio::select! {
            record = rx.recv() => match record {
                Some(record) => record,
                None => break,
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(body) = serde_json::to_vec(&record) else {
            continue;
        };
        let routing_key = format!("{REJECTED_ROUTING_PREFIX}.{}", record.provider);
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_type("rejected_request".into())
            .with_message_id(record.request_id.as_str().into());
        if let Err(error) = link
            .publish(&exchange, &routing_key, &body, properties)
            .await
        {
            tracing::debug!(%error, "rejected-request record not stored");
        }
    }
}
