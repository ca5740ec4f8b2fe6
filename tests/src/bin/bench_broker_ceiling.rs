//! Benchmark baseline: the broker's own ceiling for what the gateway does per event.
//!
//! Publishes persistent, mandatory messages with confirms to a durable quorum queue,
//! `--in-flight` at a time, and prints throughput and confirm latency. No HTTP, no
//! verification: whatever the gateway reaches is measured against this.
//!
//! With `--consume N`, it measures the other side instead: fills the queue with N
//! messages, then takes them with one consumer at `--prefetch`, acknowledging with one
//! `multiple` ack per `--ack-every` deliveries (what the worker's batches do), and
//! prints deliveries per second: the broker's ceiling for a worker doing no work.
//!
//! With `--rate`, it publishes open-loop instead (a message every 1/rate s whatever the
//! confirms do, latency counted from when each message went out), so the gateway's
//! latency at a fixed request rate has the broker's own latency at that rate beside it.

use std::time::{Duration, Instant};

use hookwire_tests::percentile::quantile_ms;
use hookwire_tests::schedule::Schedule;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties, options::QueueDeclareOptions};

#[derive(Debug, clap::Parser)]
struct Args {
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    url: String,
    /// Publishes awaiting their confirm at any moment.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Confirm channels (the gateway's default is 8).
    #[arg(long, default_value_t = 8)]
    channels: usize,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Open loop: publish this many messages per second instead of keeping
    /// `--in-flight` busy; prints p50/p99/p99.9 of the confirm latency.
    #[arg(long)]
    rate: Option<u32>,
    /// Message size in bytes.
    #[arg(long, default_value_t = 300)]
    size: usize,
    /// Route through a durable topic exchange (as the gateway does) instead of the
    /// default exchange.
    #[arg(long)]
    topic: bool,
    /// Route through a durable direct exchange, the queue bound to the one routing key
    /// (what exact per-event bindings would cost instead of the topic's patterns).
    #[arg(long, conflicts_with = "topic")]
    direct: bool,
    /// With `--direct`: the gateway's ingest shape. The queue binds a provider-like key
    /// (`bench0`) and every message, sent under its event key (`bench0.item.updated`),
    /// names that key in a `BCC` header.
    #[arg(long, requires = "direct")]
    bcc: bool,
    /// As `--bcc`, with a `CC` header instead: the broker leaves it on the message
    /// rather than rewriting the message's properties to remove it.
    #[arg(long, requires = "direct", conflicts_with = "bcc")]
    cc: bool,
    /// Spread the messages over this many queues, one routing key each, in turn (the
    /// gateway's load alternates its two providers' queues).
    #[arg(long, default_value_t = 1, conflicts_with = "consume")]
    queues: usize,
    /// Attach a gateway-sized set of envelope headers to every message.
    #[arg(long)]
    envelope_headers: bool,
    /// Publish without `mandatory` (what that flag costs the broker; the gateway
    /// always sets it, so an unroutable event is never answered 2xx).
    #[arg(long)]
    no_mandatory: bool,
    /// Consume ceiling: fill the queue with this many messages, then consume them.
    #[arg(long)]
    consume: Option<usize>,
    /// Consumer prefetch for `--consume`.
    #[arg(long, default_value_t = 64)]
    prefetch: u16,
    /// One `multiple` ack per this many deliveries for `--consume`.
    #[arg(long, default_value_t = 64)]
    ack_every: usize,
    /// Instead of measuring, delete the exchange and queues of this topology prefix
    /// (what a benchmark run of the gateway left behind) and exit.
    #[arg(long)]
    delete_topology: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let conn = Connection::connect(&args.url, ConnectionProperties::default()).await?;
    if let Some(prefix) = &args.delete_topology {
        // The worker's default retry steps too, when a benchmark ran workers.
        let delays = ["10s", "1m", "10m", "1h"]
            .iter()
            .filter_map(|d| worker::config::parse_duration(d).ok())
            .collect();
        let topology = shared::amqp::Topology::new(prefix)?.with_retry_delays(delays);
        let channel = conn.create_channel().await?;
        for queue in topology.all_queues() {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        for exchange in topology.all_exchanges() {
            channel
                .exchange_delete(exchange.as_str().into(), Default::default())
                .await?;
        }
        conn.close(200, "cleanup done".into()).await?;
        return Ok(());
    }
    let queue = format!("bench-ceiling-{}", uuid::Uuid::new_v4().simple());
    let setup = conn.create_channel().await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    // The first queue keeps the plain name (`--consume` reads it); others get a suffix.
    let queues: Vec<String> = (0..args.queues.max(1))
        .map(|i| {
            if i == 0 {
                queue.clone()
            } else {
                format!("{queue}-{i}")
            }
        })
        .collect();
    for name in &queues {
        setup
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments.clone(),
            )
            .await?;
    }
    let (exchange, routing_keys) = if args.topic || args.direct {
        let exchange = format!("{queue}.x");
        let kind = if args.direct {
            lapin::ExchangeKind::Direct
        } else {
            lapin::ExchangeKind::Topic
        };
        setup
            .exchange_declare(
                exchange.as_str().into(),
                kind,
                lapin::options::ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let mut keys = Vec::new();
        for (i, name) in queues.iter().enumerate() {
            let key = format!("bench{i}.item.updated");
            let pattern = if args.bcc || args.cc {
                format!("bench{i}")
            } else if args.direct {
                key.clone()
            } else {
                format!("bench{i}.#")
            };
            setup
                .queue_bind(
                    name.as_str().into(),
                    exchange.as_str().into(),
                    pattern.as_str().into(),
                    Default::default(),
                    FieldTable::default(),
                )
                .await?;
            keys.push(key);
        }
        (exchange, keys)
    } else {
        (String::new(), queues.clone())
    };
    let properties = if args.envelope_headers {
        sample_envelope(args.size).properties()
    } else {
        BasicProperties::default()
    };
    // One set of properties per routing key: with `--bcc` each names its own queue's key.
    let routes: Vec<(String, BasicProperties)> = routing_keys
        .into_iter()
        .enumerate()
        .map(|(i, key)| {
            let mut headers = properties.headers().clone().unwrap_or_default();
            if args.bcc || args.cc {
                headers.insert(
                    if args.cc {
                        "CC"
                    } else {
                        shared::envelope::BCC_HEADER
                    }
                    .into(),
                    AMQPValue::FieldArray(
                        vec![AMQPValue::LongString(format!("bench{i}").into())].into(),
                    ),
                );
            }
            if headers.inner().is_empty() {
                (key, BasicProperties::default())
            } else {
                (key, properties.clone().with_headers(headers))
            }
        })
        .collect();
    let mut channels = Vec::new();
    for _ in 0..args.channels.max(1) {
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channels.push(channel);
    }
    let payload = vec![b'x'; args.size];
    let target = Target {
        mandatory: !args.no_mandatory,
        exchange: exchange.clone(),
        routes: routes.into(),
        turn: Default::default(),
        payload,
    };
    let line = match (args.consume, args.rate) {
        (Some(n), _) => {
            fill(&channels, &target, n, args.in_flight).await?;
            consume(&conn, &queue, n, args.prefetch, args.ack_every).await?
        }
        (None, Some(rate)) => fixed_rate(&channels, target, rate, args.seconds).await?,
        (None, None) => saturation(&channels, target, args.in_flight, args.seconds).await?,
    };
    if args.topic || args.direct {
        setup
            .exchange_delete(exchange.as_str().into(), Default::default())
            .await?;
    }
    println!("{line}");
    for name in &queues {
        setup
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    conn.close(200, "bench done".into()).await?;
    Ok(())
}

/// Where and what every message of a run is.
#[derive(Clone)]
struct Target {
    mandatory: bool,
    exchange: String,
    /// Routing keys and their messages' properties, taken in turn, one per publish.
    routes: std::sync::Arc<[(String, BasicProperties)]>,
    turn: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    payload: Vec<u8>,
}

impl Target {
    /// One persistent publish (mandatory unless asked otherwise) and its confirm: `true` when acked unreturned.
    async fn publish(&self, channel: &lapin::Channel) -> bool {
        let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (routing_key, properties) = &self.routes[turn % self.routes.len()];
        let confirmed = async {
            channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    routing_key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: self.mandatory,
                        ..Default::default()
                    },
                    &self.payload,
                    properties.clone().with_delivery_mode(2),
                )
                .await?
                .await
        }
        .await;
        matches!(confirmed, Ok(lapin::Confirmation::Ack(None)))
    }
}

/// Closed loop: `in_flight` publishers, each sending its next message when the last
/// is confirmed.
async fn saturation(
    channels: &[lapin::Channel],
    target: Target,
    in_flight: usize,
    seconds: u64,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for i in 0..in_flight {
        let channel = channels[i % channels.len()].clone();
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            while Instant::now() < deadline {
                let started = Instant::now();
                if target.publish(&channel).await {
                    latencies.push(started.elapsed());
                } else {
                    failures += 1;
                }
            }
            (latencies, failures)
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (l, f) = task.await?;
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Ok(format!(
        "broker-ceiling in_flight={in_flight} confirmed={} failed={failures} rate={:.0}/s p50={:.2}ms p99={:.2}ms",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        quantile_ms(&latencies, 0.50),
        quantile_ms(&latencies, 0.99)
    ))
}

/// Open loop: one message due every 1/`rate` s, each on its own task, so a stalled
/// broker shows as latency, not as fewer samples. Latency starts when a message went
/// out, forgiving the timer's tick and no more (`Schedule::next`), as in
/// `bench-open-loop`, whose figures these are compared with.
async fn fixed_rate(
    channels: &[lapin::Channel],
    target: Target,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<String> {
    let total = u64::from(rate) * seconds;
    let mut tasks = tokio::task::JoinSet::new();
    let mut schedule = Schedule::new(rate);
    for i in 0..total {
        let origin = schedule.next(i).await?;
        let channel = channels[usize::try_from(i)? % channels.len()].clone();
        let target = target.clone();
        tasks.spawn(async move { target.publish(&channel).await.then(|| origin.elapsed()) });
    }
    let mut latencies = Vec::new();
    let mut failures = 0u64;
    while let Some(outcome) = tasks.join_next().await {
        match outcome? {
            Some(latency) => latencies.push(latency),
            None => failures += 1,
        }
    }
    latencies.sort_unstable();
    Ok(format!(
        "broker-fixed-rate rate={rate}/s confirmed={} failed={failures} late={} p50={:.2}ms p99={:.2}ms p99.9={:.2}ms",
        latencies.len(),
        schedule.late(),
        quantile_ms(&latencies, 0.50),
        quantile_ms(&latencies, 0.99),
        quantile_ms(&latencies, 0.999)
    ))
}

/// Publishes `n` messages, `in_flight` at a time.
async fn fill(
    channels: &[lapin::Channel],
    target: &Target,
    n: usize,
    in_flight: usize,
) -> anyhow::Result<()> {
    let left = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(n));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..in_flight.max(1) {
        let channel = channels[i % channels.len()].clone();
        let target = target.clone();
        let left = left.clone();
        tasks.spawn(async move {
            while left
                .fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |l| l.checked_sub(1),
                )
                .is_ok()
            {
                target.publish(&channel).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done?;
    }
    Ok(())
}

/// Takes `n` messages off `queue` with `prefetch`, one `multiple` ack per `ack_every`.
async fn consume(
    conn: &Connection,
    queue: &str,
    n: usize,
    prefetch: u16,
    ack_every: usize,
) -> anyhow::Result<String> {
    use futures_util::StreamExt;
    let channel = conn.create_channel().await?;
    channel
        .basic_qos(prefetch, lapin::options::BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "bench-consumer".into(),
            lapin::options::BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut taken = 0;
    let mut started = None;
    while taken < n {
        let Some(delivery) = consumer.next().await else {
            break;
        };
        let delivery = delivery?;
        started.get_or_insert_with(Instant::now);
        taken += 1;
        if taken % ack_every.max(1) == 0 || taken == n {
            delivery
                .acker
                .ack(lapin::options::BasicAckOptions { multiple: true })
                .await?;
        }
    }
    let elapsed = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    Ok(format!(
        "broker-consume prefetch={prefetch} ack_every={ack_every} consumed={taken} rate={:.0}/s",
        taken as f64 / elapsed.max(f64::EPSILON)
    ))
}

/// Headers as the gateway attaches them to a Pluggy event.
fn sample_envelope(size: usize) -> shared::Envelope {
    shared::Envelope {
        provider: shared::Provider::Pluggy,
        event: "item/updated".into(),
        provider_event_id: Some("d876fd7c-0000-4000-8000-000000000001".into()),
        received_at: chrono::Utc::now(),
        request_id: uuid::Uuid::new_v4(),
        client_ip: "127.0.0.1".parse().ok(),
        http_headers: vec![("content-type".into(), "application/json".into())],
        trace: shared::trace_context::TraceContext::new_root(),
        body: bytes::Bytes::from(vec![b'x'; size]),
    }
}
