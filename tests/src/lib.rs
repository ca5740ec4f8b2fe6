//! Helpers for hookwire's end-to-end tests: real broker, real gateway, real sockets.
//!
//! Each test gets its own topology prefix (so its own exchange and queues on the
//! shared broker), removed again when the test ends, pass or fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

pub mod books;
pub mod broker;
pub mod browser;
pub mod database;
pub mod fake_pluggy;
pub mod gateway;
pub mod http_client;
pub mod livetip;
pub mod loopback;
pub mod otlp;
pub mod percentile;
pub mod process;
pub mod proxy;
pub mod schedule;
pub mod worker;

use std::future::Future;
use std::time::Duration;

/// Broker the tests use (`AMQP_URL`, else the local default).
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Test output on demand: `TEST_LOG=1` prints the product's logs.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        static TELEMETRY: std::sync::OnceLock<shared::telemetry::Telemetry> =
            std::sync::OnceLock::new();
        TELEMETRY.get_or_init(|| {
            shared::telemetry::init(shared::telemetry::LogFormat::Text, "hookwire-tests")
        });
    }
}

/// Polls `check` until it yields `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Prometheus text a `/metrics` listener serves.
pub async fn scrape(addr: std::net::SocketAddr) -> String {
    String::from_utf8_lossy(&http_client::get(addr, "/metrics").await.body).into_owned()
}

/// Sum of the samples of `name` whose labels contain each of `labels` (`k="v"`), in a
/// scrape; 0 when there is none.
pub fn metric_value(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
        .filter(|l| l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the gateway whose admin listener is `admin` holds `n` LiveTip requests
/// in flight (its in-flight gauge, read at scrape time).
pub async fn wait_livetip_in_flight(admin: std::net::SocketAddr, n: f64) {
    eventually("request in flight", Duration::from_secs(30), || async {
        let metrics = scrape(admin).await;
        (metric_value(
            &metrics,
            "hookwire_gateway_in_flight",
            &["provider=\"livetip\""],
        ) == n)
            .then_some(())
    })
    .await;
}

/// An envelope as the gateway would publish it, for messages a test sends past it.
pub fn envelope(
    provider: shared::Provider,
    event: &str,
    body: impl Into<bytes::Bytes>,
) -> shared::Envelope {
    shared::Envelope {
        provider,
        event: event.into(),
        provider_event_id: None,
        received_at: chrono::Utc::now(),
        request_id: uuid::Uuid::new_v4(),
        client_ip: None,
        http_headers: Vec::new(),
        trace: shared::trace_context::TraceContext::new_root(),
        body: body.into(),
    }
}

/// Hex HMAC-SHA256 of `body` under `secret`, as Pluggy's guide specifies.
pub fn pluggy_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}
