//! Dead-letter inspection and replay: one implementation behind `worker dlq list|replay`
//! and the gateway's `/dead-letters` admin routes.
//!
//! Both read with `basic.get` and no auto-ack, so the broker keeps every message
//! until we acknowledge it: `list` acknowledges nothing (closing the channel returns
//! them all), `replay` acknowledges a dead letter only after its copy is confirmed on
//! the events exchange. An interrupted replay loses nothing; at worst an event is
//! replayed twice, which the inbox turns into a duplicate.

use super::dead_header::{self, ATTEMPTS_HEADER};
use super::{BrokerLink, PublishError, Topology};
use crate::Provider;
use chrono::{DateTime, SecondsFormat, Utc};
use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

/// A dead letter, as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Provider queue it came from.
    pub provider: Provider,
    /// Event name (AMQP `type`).
    pub event: String,
    /// Routing key it will be replayed under.
    pub routing_key: String,
    /// Failed rounds.
    pub attempts: u32,
    /// `transient` or `permanent`.
    pub class: String,
    /// Why.
    pub reason: String,
    /// When.
    pub dead_at: String,
    /// Body size in bytes.
    pub bytes: usize,
    /// The gateway's request id (the message id): `GET /events/{requestId}` finds the
    /// event and its row.
    pub request_id: String,
}

/// Which dead letters a replay takes, and whether it only counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayFilter {
    /// Only this provider's.
    pub provider: Option<Provider>,
    /// Only this event's (`item/updated`, `payment_confirmed`).
    pub event: Option<String>,
    /// Only the letter of this gateway request (its message id): one event.
    pub request_id: Option<String>,
    /// Everything: required to replay with no filter.
    pub all: bool,
    /// Count what would be replayed; change nothing.
    pub dry_run: bool,
}

impl ReplayFilter {
    /// Replaying every dead letter is asked for explicitly; a dry run changes nothing,
    /// so it lists everything without being asked twice.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.all
            || self.dry_run
            || self.provider.is_some()
            || self.event.is_some()
            || self.request_id.is_some()
        {
            Ok(())
        } else {
            Err(
                "refusing to replay every dead letter without `all` (or narrow it by provider, event or request id)",
            )
        }
    }
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    /// Sent back to their work queue (or, on a dry run, that would have been).
    pub replayed: usize,
    /// Left in the dead-letter queue (not matching the filter).
    pub kept: usize,
}

/// Dead-letter tooling failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// The broker could not be used.
    #[error("broker unavailable")]
    Broker(#[from] PublishError),
    /// An AMQP operation failed.
    #[error("AMQP operation failed")]
    Amqp(#[from] lapin::Error),
    /// The filter would replay everything without saying so ([`ReplayFilter::check`]).
    #[error("{0}")]
    Refused(&'static str),
}

fn providers(only: Option<Provider>) -> Vec<Provider> {
    only.map_or_else(|| Provider::ALL.to_vec(), |p| vec![p])
}

/// Lists up to `limit` dead letters (per provider), leaving them in place.
pub async fn list(
    link: &BrokerLink,
    topology: &Topology,
    provider: Option<Provider>,
    limit: usize,
) -> Result<Vec<DeadLetter>, DlqError> {
    let mut found = Vec::new();
    for provider in providers(provider) {
        let channel = link.open_channel().await?;
        let queue = topology.dead_letter_queue(provider);
        for _ in 0..limit {
            let Some(message) = channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
                .await?
            else {
                break;
            };
            found.push(describe(
                provider,
                &message.delivery.properties,
                message.delivery.data.len(),
            ));
        }
        // Unacknowledged: closing the channel returns every message to the queue.
        let _ = channel.close(200, "dlq list done".into()).await;
    }
    Ok(found)
}

/// Replays what `filter` takes; refused unless it passes [`ReplayFilter::check`].
pub async fn replay(
    link: &BrokerLink,
    topology: &Topology,
    filter: &ReplayFilter,
) -> Result<ReplayReport, DlqError> {
    filter.check().map_err(DlqError::Refused)?;
    // Dead-letter times are written to the millisecond, rounded down: a letter dead
    // before the start is never later than it.
    let started = Utc::now();
    let (provider, event, dry_run) = (filter.provider, filter.event.as_deref(), filter.dry_run);
    let request_id = filter.request_id.as_deref();
    let mut report = ReplayReport::default();
    let exchange = topology.events_exchange();
    for provider in providers(provider) {
        let channel = link.open_channel().await?;
        let queue = topology.dead_letter_queue(provider);
        // Every letter is taken once (held unacknowledged until the channel closes, so
        // the queue runs dry), and only those dead before the replay started are
        // replayed: one that fails again at once comes back while the replay runs and
        // must not be replayed in a loop.
        while let Some(message) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await?
        {
            let delivery = message.delivery;
            let letter = describe(provider, &delivery.properties, delivery.data.len());
            let dead_since_start = DateTime::parse_from_rfc3339(&letter.dead_at)
                .is_ok_and(|at| at.with_timezone(&Utc) > started);
            if dead_since_start {
                continue;
            }
            if event.is_some_and(|e| e != letter.event)
                || request_id.is_some_and(|r| r != letter.request_id)
            {
                report.kept += 1;
                continue;
            }
            report.replayed += 1;
            if dry_run {
                continue;
            }
            let properties = revived(&delivery.properties);
            link.publish(&exchange, &letter.routing_key, &delivery.data, properties)
                .await?;
            delivery.ack(BasicAckOptions::default()).await?;
            tracing::info!(provider = provider.as_str(), event = %letter.event, "dead letter replayed");
        }
        let _ = channel.close(200, "dlq replay done".into()).await;
    }
    Ok(report)
}

/// The message's properties with the attempt counter and failure headers removed.
fn revived(properties: &BasicProperties) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(old) = properties.headers() {
        for (name, value) in old.inner() {
            let name = name.as_str();
            let failure = name == ATTEMPTS_HEADER
                || name.starts_with("x-hookwire-dead-")
                || name == dead_header::CLASS
                || name == dead_header::ROUTING_KEY
                || name == dead_header::LAST_ERROR
                || name.starts_with("x-death")
                || name.starts_with("x-first-death")
                || name.starts_with("x-last-death");
            if !failure {
                headers.insert(ShortString::from(name), value.clone());
            }
        }
    }
    headers.insert(
        "x-hookwire-replayed-at".into(),
        AMQPValue::LongString(LongString::from(
            Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        )),
    );
    properties.clone().with_headers(headers)
}

fn describe(provider: Provider, properties: &BasicProperties, bytes: usize) -> DeadLetter {
    let header = |name: &str| -> String {
        properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(&ShortString::from(name)))
            .and_then(|v| match v {
                AMQPValue::LongString(s) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
                _ => None,
            })
            .unwrap_or_default()
    };
    let routing_key = Some(header(dead_header::ROUTING_KEY))
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| format!("{}.replayed", provider.as_str()));
    DeadLetter {
        provider,
        event: properties
            .kind()
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        routing_key,
        attempts: dead_header::attempts(properties),
        class: header(dead_header::CLASS),
        reason: header(dead_header::REASON),
        dead_at: header(dead_header::AT),
        bytes,
        request_id: properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default(),
    }
}
