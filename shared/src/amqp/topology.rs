//! Exchange and queue names, and their idempotent declaration.
//!
//! Every name derives from one prefix, so tests (and several environments sharing a
//! broker) get their own isolated set. Everything is durable; work queues are quorum
//! queues, replicated when the broker is a cluster.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ExchangeKind};

use crate::provider::Provider;

/// Routing-key prefix of rejected-request records (`rejected.<provider>`).
pub const REJECTED_ROUTING_PREFIX: &str = "rejected";

/// How many rejected-request records the audit queue keeps; older ones are dropped
/// first, so a flood of bad requests cannot fill the broker.
pub const REJECTED_QUEUE_MAX_LENGTH: i64 = 100_000;

/// The broker objects hookwire owns.
#[derive(Clone, Debug)]
pub struct Topology {
    prefix: String,
    retry_delays: Vec<Duration>,
    quorum_group_size: Option<u32>,
}

/// The prefix holds characters that would make confusing or invalid names.
#[derive(Debug, thiserror::Error)]
#[error("AMQP_PREFIX must be 1-64 characters of [A-Za-z0-9_.-], got {0:?}")]
pub struct InvalidPrefix(pub String);

impl Topology {
    /// Names under `prefix` (`hookwire` in production).
    pub fn new(prefix: &str) -> Result<Self, InvalidPrefix> {
        let ok = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if ok {
            Ok(Self {
                prefix: prefix.to_owned(),
                retry_delays: Vec::new(),
                quorum_group_size: None,
            })
        } else {
            Err(InvalidPrefix(prefix.to_owned()))
        }
    }

    /// The delayed-retry steps the worker uses (one queue per step: messages expire
    /// only at a queue's head, so mixing delays in one queue would stall short ones).
    pub fn with_retry_delays(mut self, delays: Vec<Duration>) -> Self {
        self.retry_delays = delays;
        self
    }

    /// Replicas of each quorum queue this process creates (`None`: the broker's
    /// default, every node). A queue that exists keeps the size it was created with:
    /// RabbitMQ refuses to redeclare it with another.
    pub fn with_quorum_group_size(mut self, size: Option<u32>) -> Self {
        self.quorum_group_size = size;
        self
    }

    /// The delayed-retry steps.
    pub fn retry_delays(&self) -> &[Duration] {
        &self.retry_delays
    }

    /// The prefix all names start with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Topic exchange of rejected-request records, delayed retries and dead-letter
    /// replays, routed by pattern (`<provider>.#`). Every retry step dead-letters here
    /// and every replay is published here, so the work queues' bindings on it are
    /// load-bearing, not a leftover of the releases that published first deliveries
    /// here too.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// Direct exchange the gateway publishes every accepted event to, under the
    /// event's own routing key (`livetip.payment_confirmed`) with the provider's
    /// [`Provider::ingest_key`] in a `BCC` header. A direct exchange matches exact
    /// keys only, which costs RabbitMQ 3.10 a quarter to a third less CPU per message
    /// than the topic exchange's patterns (BENCHMARKS.md, session 14); the work queue binds
    /// the provider's key, and a queue an operator binds to one event's key gets that
    /// event. The broker drops `BCC` before delivery, so no consumer routes on it.
    pub fn ingest_exchange(&self) -> String {
        format!("{}.ingest", self.prefix)
    }

    /// Work queue of one provider's events.
    pub fn work_queue(&self, provider: Provider) -> String {
        format!("{}.{}", self.prefix, provider.as_str())
    }

    /// Queue of rejected-request records (the spec's `validation` log entries).
    pub fn rejected_queue(&self) -> String {
        format!("{}.rejected", self.prefix)
    }

    /// Dead-letter queue of one provider's events.
    pub fn dead_letter_queue(&self, provider: Provider) -> String {
        format!("{}.{}.dead", self.prefix, provider.as_str())
    }

    /// Fanout exchange (and its queue, same name) of one retry step. A message
    /// published there with its original routing key waits `delay`, then dead-letters
    /// back to the events exchange under that key: the delay survives restarts.
    pub fn retry_exchange(&self, delay: Duration) -> String {
        let ms = delay.as_millis();
        if ms.is_multiple_of(1000) {
            format!("{}.retry.{}s", self.prefix, ms / 1000)
        } else {
            format!("{}.retry.{}ms", self.prefix, ms)
        }
    }

    /// Every queue name, for tooling and cleanup.
    pub fn all_queues(&self) -> Vec<String> {
        let mut queues: Vec<String> = Provider::ALL.iter().map(|p| self.work_queue(*p)).collect();
        queues.push(self.rejected_queue());
        queues.extend(Provider::ALL.iter().map(|p| self.dead_letter_queue(*p)));
        queues.extend(self.retry_delays.iter().map(|d| self.retry_exchange(*d)));
        queues
    }

    /// Every exchange name, for tooling and cleanup.
    pub fn all_exchanges(&self) -> Vec<String> {
        let mut exchanges = vec![self.events_exchange(), self.ingest_exchange()];
        exchanges.extend(self.retry_delays.iter().map(|d| self.retry_exchange(*d)));
        exchanges
    }

    /// Declares the worker's share: dead-letter queues and the retry steps, on top of
    /// what [`Topology::declare`] creates.
    pub async fn declare_worker(
        &self,
        connection: &Connection,
        channel: &Channel,
    ) -> Result<(), lapin::Error> {
        self.declare(connection, channel).await?;
        for provider in Provider::ALL {
            self.declare_quorum(
                connection,
                channel,
                &self.dead_letter_queue(provider),
                FieldTable::default(),
            )
            .await?;
        }
        for delay in &self.retry_delays {
            let name = self.retry_exchange(*delay);
            declare_exchange(channel, &name, ExchangeKind::Fanout).await?;
            let mut arguments = FieldTable::default();
            arguments.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
            );
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(LongString::from(self.events_exchange())),
            );
            // Quorum queues dead-letter at most once by default: a message expiring
            // while the target cannot take it would be dropped. At-least-once keeps it
            // (and requires reject-publish overflow).
            arguments.insert(
                "x-dead-letter-strategy".into(),
                AMQPValue::LongString(LongString::from("at-least-once")),
            );
            arguments.insert(
                "x-overflow".into(),
                AMQPValue::LongString(LongString::from("reject-publish")),
            );
            self.declare_quorum(connection, channel, &name, arguments)
                .await?;
            bind(channel, &name, &name, "").await?;
        }
        Ok(())
    }

    /// Declares the exchanges, queues and bindings; safe to repeat, from any process.
    pub async fn declare(
        &self,
        connection: &Connection,
        channel: &Channel,
    ) -> Result<(), lapin::Error> {
        let exchange = self.events_exchange();
        declare_exchange(channel, &exchange, ExchangeKind::Topic).await?;
        let ingest = self.ingest_exchange();
        declare_exchange(channel, &ingest, ExchangeKind::Direct).await?;
        for provider in Provider::ALL {
            let queue = self.work_queue(provider);
            self.declare_quorum(connection, channel, &queue, FieldTable::default())
                .await?;
            bind(
                channel,
                &queue,
                &exchange,
                &format!("{}.#", provider.as_str()),
            )
            .await?;
            bind(channel, &queue, &ingest, provider.ingest_key()).await?;
        }
        let mut capped = FieldTable::default();
        capped.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(REJECTED_QUEUE_MAX_LENGTH),
        );
        capped.insert(
            "x-overflow".into(),
            AMQPValue::LongString(LongString::from("drop-head")),
        );
        let rejected = self.rejected_queue();
        self.declare_quorum(connection, channel, &rejected, capped)
            .await?;
        bind(
            channel,
            &rejected,
            &exchange,
            &format!("{REJECTED_ROUTING_PREFIX}.#"),
        )
        .await
    }
}

impl Topology {
    /// Declares a quorum queue that does not exist yet; one that exists is left as it
    /// is. Its group size was fixed when it was created, and RabbitMQ refuses to
    /// redeclare a queue whose arguments differ in any way, size included (present or
    /// absent): processes set differently, or a rollout between settings, would
    /// otherwise fail to connect for good. The other arguments are fixed by this code,
    /// so nothing is lost by not repeating them (a release that changes them must
    /// recreate the queue, and says so). Asked on a channel of its own: the broker
    /// closes the channel that asks about a missing queue.
    async fn declare_quorum(
        &self,
        connection: &Connection,
        channel: &Channel,
        queue: &str,
        mut arguments: FieldTable,
    ) -> Result<(), lapin::Error> {
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let probe = connection.create_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..options
        };
        match probe
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
        {
            Ok(_) => {
                let _ = probe.close(200, "probed".into()).await;
                return Ok(());
            }
            // Only "not found" says the queue is missing; any other failure (a node
            // without its majority, a timeout) is the broker's, and is passed on.
            Err(error) if matches!(error.kind(), lapin::ErrorKind::ProtocolError(e) if e.get_id() == 404) =>
                {}
            Err(error) => return Err(error),
        }
        if let Some(size) = self.quorum_group_size {
            arguments.insert(
                "x-quorum-initial-group-size".into(),
                AMQPValue::LongInt(i32::try_from(size).unwrap_or(i32::MAX)),
            );
        }
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from("quorum")),
        );
        channel
            .queue_declare(queue.into(), options, arguments)
            .await
            .map(|_| ())
    }
}

async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(name.into(), kind, durable, FieldTable::default())
        .await
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    pattern: &str,
) -> Result<(), lapin::Error> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            pattern.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_the_prefix() {
        let t = Topology::new("hookwire").map_err(|e| e.to_string());
        let t = t
            .as_ref()
            .map(|t| (t.events_exchange(), t.work_queue(Provider::Pluggy)));
        assert_eq!(
            t,
            Ok(("hookwire.events".to_owned(), "hookwire.pluggy".to_owned()))
        );
        assert_eq!(
            Topology::new("hookwire").map(|t| t.ingest_exchange()).ok(),
            Some("hookwire.ingest".to_owned())
        );
        assert!(Topology::new("").is_err());
        assert!(Topology::new("a b").is_err());
    }
}
