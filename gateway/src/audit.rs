//! Records of rejected requests, for the spec's `validation` log, kept off the request
//! path and aggregated: one client that sends thousands of bad requests a second must
//! not write thousands of log lines and rows.
//!
//! A handler adds its rejection to a count per (client address, provider, status,
//! reason) for the current window and moves on. Once per window one background task
//! writes one log line and publishes one audit record (with the count, the first
//! request's id and trace) per key to the audit queue, which the worker stores. The
//! number of keys per window is bounded: past it, rejections are counted per provider,
//! status and reason only, so a flood from many addresses costs bounded memory too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::BasicProperties;
use serde::Serialize;
use shared::amqp::BrokerLink;
use shared::amqp::topology::REJECTED_ROUTING_PREFIX;
use tokio_util::sync::CancellationToken;

/// One refused request, or the first of a window's refusals of one kind. Holds no
/// credential and no body.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedRequest {
    /// RFC 3339 UTC, of the first refusal in the window.
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
    /// The reason's bounded kind (`invalid_payload`, `rate_limited`, ...).
    pub kind: &'static str,
    /// Peer address; `None` in a record that aggregates many addresses.
    pub client_ip: Option<IpAddr>,
    /// Our id of the first request.
    pub request_id: String,
    /// Its trace id.
    pub trace_id: String,
    /// Refusals of this kind in the window.
    pub count: u64,
    /// Length of the window, in seconds.
    pub window_secs: u64,
}

type Key = (Option<IpAddr>, &'static str, u16, String);

/// Sending side, held by the handlers.
#[derive(Debug, Clone)]
pub struct AuditSink {
    /// This window's kinds, each with the order it was first seen in.
    window: Arc<Mutex<HashMap<Key, (usize, RejectedRequest)>>>,
    max_keys: usize,
}

impl AuditSink {
    /// Starts the flushing task (every `window`); it ends on `shutdown`, after a last
    /// flush.
    pub fn start(
        link: BrokerLink,
        exchange: String,
        max_keys: usize,
        window: Duration,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let sink = Self {
            window: Arc::new(Mutex::new(HashMap::new())),
            max_keys: max_keys.max(1),
        };
        let task = tokio::spawn(flush_loop(sink.clone(), link, exchange, window, shutdown));
        (sink, task)
    }

    /// Counts a refusal into the current window; never waits.
    pub fn record(&self, mut record: RejectedRequest) {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut key: Key = (
            record.client_ip,
            record.provider,
            record.status,
            record.reason.clone(),
        );
        if !window.contains_key(&key) && window.len() >= self.max_keys {
            // Too many kinds this window: counted without the address and with the
            // bounded kind for a reason, so the extra keys are few.
            record.client_ip = None;
            record.reason = record.kind.to_owned();
            key = (None, record.provider, record.status, record.reason.clone());
        }
        let order = window.len();
        window
            .entry(key)
            .and_modify(|(_, seen)| seen.count += 1)
            .or_insert((order, RejectedRequest { count: 1, ..record }));
    }

    /// Empties the window; its records in the order their kinds first appeared.
    fn take(&self) -> Vec<RejectedRequest> {
        let window = std::mem::take(
            &mut *self
                .window
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut records: Vec<(usize, RejectedRequest)> = window.into_values().collect();
        records.sort_by_key(|(order, _)| *order);
        records.into_iter().map(|(_, record)| record).collect()
    }
}

async fn flush_loop(
    sink: AuditSink,
    link: BrokerLink,
    exchange: String,
    window: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(window);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            () = shutdown.cancelled() => true,
        };
        for mut record in sink.take() {
            record.window_secs = window.as_secs().max(1);
            tracing::info!(
                count = record.count,
                window_secs = record.window_secs,
                provider = record.provider,
                status = record.status,
                reason = %record.reason,
                client_ip = record.client_ip.map(|ip| ip.to_string()),
                first_request_id = %record.request_id,
                "requests rejected"
            );
            publish(&link, &exchange, &record).await;
        }
        if stopping {
            break;
        }
    }
}

async fn publish(link: &BrokerLink, exchange: &str, record: &RejectedRequest) {
    let Ok(body) = serde_json::to_vec(record) else {
        return;
    };
    let routing_key = format!("{REJECTED_ROUTING_PREFIX}.{}", record.provider);
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_type("rejected_request".into())
        .with_message_id(record.request_id.as_str().into());
    if let Err(error) = link
        .publish(exchange, &routing_key, &body, properties)
        .await
    {
        // The line above is written; only the row is lost. Counted, so it shows.
        metrics::counter!("hookwire_gateway_audit_records_lost_total").increment(1);
        tracing::debug!(%error, "rejected-request record not stored");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(ip: [u8; 4], reason: &str) -> RejectedRequest {
        RejectedRequest {
            timestamp: String::new(),
            provider: "livetip",
            method: "POST".into(),
            path: "/webhook".into(),
            status: 401,
            reason: reason.into(),
            kind: "missing_credential",
            client_ip: Some(IpAddr::from(ip)),
            request_id: "r".into(),
            trace_id: "t".into(),
            count: 0,
            window_secs: 0,
        }
    }

    #[test]
    fn a_flood_is_one_record_per_client_and_reason_and_bounded_in_keys() {
        let sink = AuditSink {
            window: Arc::default(),
            max_keys: 3,
        };
        for _ in 0..10_000 {
            sink.record(refusal([10, 0, 0, 1], "no token"));
        }
        sink.record(refusal([10, 0, 0, 2], "no token"));
        for last in 3..200 {
            sink.record(refusal([10, 0, 0, last], &format!("reason {last}")));
        }
        let window = sink.take();
        let counts: Vec<(Option<IpAddr>, u64)> =
            window.iter().map(|r| (r.client_ip, r.count)).collect();
        // Three kinds with their address, then one for the overflow, in first-seen order.
        assert_eq!(
            counts,
            [
                (Some(IpAddr::from([10, 0, 0, 1])), 10_000),
                (Some(IpAddr::from([10, 0, 0, 2])), 1),
                (Some(IpAddr::from([10, 0, 0, 3])), 1),
                (None, 196),
            ]
        );
        assert_eq!(
            window[3].reason, "missing_credential",
            "the overflow keeps the kind only"
        );
        assert!(sink.take().is_empty(), "a window starts empty");
    }
}
