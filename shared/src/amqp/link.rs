//! A supervised connection to RabbitMQ with a pool of confirm-mode channels.
//!
//! One task owns the connection's life: it connects with backoff, declares the
//! topology, publishes readiness, watches for loss (connection errors, closed channels,
//! a broker that blocks publishers) and starts over. Publishers never wait for a
//! connection: without one they fail at once, and the caller answers 503.
//!
//! Many publishes are in flight at once: each picks a channel round-robin and waits
//! only for its own confirm, so no request queues behind another's confirm.
//!
//! A channel the broker closes (a channel-level error) is replaced alone: publishes on
//! the other channels go on. So is a channel whose publish was nacked: on RabbitMQ
//! before 3.12.5, a channel whose first publish to a quorum queue came while the
//! queue's record still named a dead leader nacks every later publish, long after a
//! new leader is elected (seen for 90 s in the cluster test); a fresh channel reads the
//! record again. While the broker blocks the connection (a memory or disk
//! alarm), publishes fail at once instead of each waiting out the confirm timeout: the
//! broker reads nothing from a blocked connection, so no confirm can come.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use backoff::ExponentialBackoff;
use backoff::backoff::Backoff;
use futures_util::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Event};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::topology::Topology;

/// How the link connects.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// `amqp://` or `amqps://` URL, or several separated by commas (the nodes of a
    /// cluster): a lost or refused connection moves on to the next one.
    pub url: String,
    /// Shown in the broker's connection list (`hookwire-gateway`, `hookwire-worker`).
    pub connection_name: String,
    /// Confirm-mode channels opened for publishing (at least 1).
    pub publish_channels: usize,
    /// How long a publish may wait for the broker's confirm.
    pub confirm_timeout: Duration,
    /// Heartbeat asked of the broker when the URL does not set one: it bounds how long
    /// a silently dead connection goes unnoticed.
    pub heartbeat: Duration,
    /// Objects declared on every (re)connection.
    pub topology: Topology,
    /// Which share of the topology this process declares.
    pub scope: TopologyScope,
}

/// Which objects a process declares when it connects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyScope {
    /// Exchanges, work queues, audit queue: what publishing needs.
    Ingest,
    /// Also dead-letter queues and retry steps.
    Worker,
}

/// Why a publish did not end with the broker owning the message.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No live connection right now.
    #[error("not connected to the broker")]
    NotConnected,
    /// The broker blocks publishing (memory or disk alarm) until it recovers.
    #[error("the broker blocks publishing: {0}")]
    Blocked(String),
    /// The broker returned the message: no queue is bound for its routing key.
    #[error("broker returned the message ({code}: {text})")]
    Returned {
        /// AMQP reply code (312 NO_ROUTE).
        code: u16,
        /// Broker's explanation.
        text: String,
    },
    /// The broker refused responsibility for the message.
    #[error("broker nacked the message")]
    Nacked,
    /// No confirm arrived in time; the message may or may not be stored.
    #[error("no publisher confirm within {0:?}")]
    ConfirmTimeout(Duration),
    /// The channel or connection failed during the publish.
    #[error("broker error during publish")]
    Broker(#[source] lapin::Error),
}

/// Handle on the supervised link; cheap to clone.
#[derive(Clone, Debug)]
pub struct BrokerLink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: LinkConfig,
    live: RwLock<Option<Arc<Live>>>,
    ready: watch::Sender<bool>,
    /// Why the broker blocks the current connection, while it does.
    blocked: watch::Sender<Option<String>>,
    /// Pokes the supervisor to re-check health after a failed publish.
    wake: Notify,
}

#[derive(Debug)]
struct Live {
    connection: Connection,
    /// Each slot is replaced on its own when its channel fails.
    channels: Vec<Slot>,
    next: AtomicUsize,
    /// Replaced channels still open for their last confirms: while as many wait as the
    /// pool holds, nacks replace nothing more, so a queue that keeps refusing cannot
    /// pile up channels past the broker's `channel_max`.
    retiring: Arc<AtomicUsize>,
}

/// How often one slot's channel may be replaced because of nacks: a queue that refuses
/// publishes for a reason a fresh channel does not cure (an operator's length limit with
/// `reject-publish`) costs one channel a second, not one per nack.
const NACK_REPLACEMENT_SPACING: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Slot {
    channel: RwLock<Channel>,
    /// The id of the channel a publish was last nacked on (0: none; AMQP channel ids
    /// start at 1). A late nack on a channel already replaced names the old id, so it
    /// does not condemn the new one.
    nacked_on: AtomicU16,
    spacing: NackSpacing,
}

/// Spaces one slot's replacements for nacks [`NACK_REPLACEMENT_SPACING`] apart.
#[derive(Debug, Default)]
struct NackSpacing {
    last: Mutex<Option<tokio::time::Instant>>,
}

impl NackSpacing {
    fn due(&self) -> bool {
        lock(&self.last).is_none_or(|at| at.elapsed() >= NACK_REPLACEMENT_SPACING)
    }

    fn replaced(&self) {
        *lock(&self.last) = Some(tokio::time::Instant::now());
    }
}

/// Why a slot's channel is replaced: the log line and the metric's `reason`.
#[derive(Clone, Copy)]
enum Failure {
    Closed,
    Nacked,
}

impl Failure {
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Self::Closed => ("the broker closed this publish channel", "closed"),
            Self::Nacked => ("the broker nacked a publish on this channel", "nacked"),
        }
    }
}

impl Slot {
    fn new(channel: Channel) -> Self {
        Self {
            channel: RwLock::new(channel),
            nacked_on: AtomicU16::new(0),
            spacing: NackSpacing::default(),
        }
    }

    /// Why this slot needs a new channel now, if it does (`may_retire`: whether a
    /// nacking channel may be set aside now).
    fn failure(&self, may_retire: bool) -> Option<(u16, Failure)> {
        let channel = read(&self.channel);
        if !channel.status().connected() {
            return Some((channel.id(), Failure::Closed));
        }
        if !may_retire || self.nacked_on.load(Ordering::Relaxed) != channel.id() {
            return None;
        }
        self.spacing.due().then(|| (channel.id(), Failure::Nacked))
    }
}

impl Live {
    fn pick(&self) -> &Slot {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        &self.channels[i]
    }

    /// Replaces every failed channel (closed, or nacking) with a new confirm channel.
    /// `Err`: the connection itself cannot open one, and must be replaced.
    async fn replace_failed_channels(&self, confirm_timeout: Duration) -> Result<(), lapin::Error> {
        for slot in &self.channels {
            let may_retire = self.retiring.load(Ordering::Relaxed) < self.channels.len();
            let Some((id, failure)) = slot.failure(may_retire) else {
                continue;
            };
            let fresh = confirm_channel(&self.connection).await?;
            let (why, reason) = failure.describe();
            tracing::warn!(
                channel = id,
                replacement = fresh.id(),
                "{why}; replaced it alone"
            );
            metrics::counter!("hookwire_broker_channels_replaced_total", "reason" => reason)
                .increment(1);
            let old = std::mem::replace(&mut *write(&slot.channel), fresh);
            if let Failure::Nacked = failure {
                slot.spacing.replaced();
                // Publishes still waiting on the old channel get their own answers first.
                let retiring = self.retiring.clone();
                retiring.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    tokio::time::sleep(confirm_timeout).await;
                    let _ = old.close(200, "replaced".into()).await;
                    retiring.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
        Ok(())
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    match lock.read() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    match lock.write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn replace<T>(lock: &RwLock<T>, value: T) {
    *write(lock) = value;
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

async fn confirm_channel(connection: &Connection) -> Result<Channel, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

impl BrokerLink {
    /// Starts the supervisor; it runs until `shutdown` is cancelled, then closes the
    /// connection. The returned handle ends when it has.
    pub fn start(
        config: LinkConfig,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (ready, _) = watch::channel(false);
        let (blocked, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            config,
            live: RwLock::new(None),
            ready,
            blocked,
            wake: Notify::new(),
        });
        let task = tokio::spawn(supervise(inner.clone(), shutdown));
        (Self { inner }, task)
    }

    /// Whether a connection and its confirm channels are up right now.
    pub fn is_ready(&self) -> bool {
        *self.inner.ready.borrow()
    }

    /// Follows readiness changes.
    pub fn ready_watch(&self) -> watch::Receiver<bool> {
        self.inner.ready.subscribe()
    }

    /// The topology this link declares.
    pub fn topology(&self) -> &Topology {
        &self.inner.config.topology
    }

    /// Publishes a persistent, mandatory message and waits for the broker's confirm.
    ///
    /// `Ok` means the broker acknowledged the message and routed it to at least one
    /// queue; anything else is an error the caller must not report as success.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let live = self.current().ok_or(PublishError::NotConnected)?;
        let mut blocked = self.inner.blocked.subscribe();
        if let Some(reason) = blocked.borrow_and_update().clone() {
            return Err(PublishError::Blocked(reason));
        }
        let timeout = self.inner.config.confirm_timeout;
        let slot = live.pick();
        let channel = read(&slot.channel).clone();
        let channel_id = channel.id();
        let confirmed = tokio::time::timeout(timeout, async {
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    body,
                    properties.with_delivery_mode(2),
                )
                .await?;
            confirm.await
        });
        // A publish already waiting when the broker blocks the connection gets no
        // confirm until the alarm clears: answer now (the message may still be stored
        // later; a provider's retry of it is a duplicate the worker recognises).
        let outcome = tokio::select! {
            outcome = confirmed => outcome,
            Ok(reason) = blocked.wait_for(Option::is_some) => {
                return Err(PublishError::Blocked(reason.clone().unwrap_or_default()));
            }
        };
        let result = match outcome {
            Err(_) => Err(PublishError::ConfirmTimeout(timeout)),
            Ok(Err(e)) => Err(PublishError::Broker(e)),
            Ok(Ok(Confirmation::Ack(None))) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(returned)))) => Err(PublishError::Returned {
                code: returned.reply_code,
                text: returned.reply_text.as_str().to_owned(),
            }),
            Ok(Ok(Confirmation::Nack(_) | Confirmation::NotRequested)) => {
                slot.nacked_on.store(channel_id, Ordering::Relaxed);
                Err(PublishError::Nacked)
            }
        };
        if matches!(
            result,
            Err(PublishError::Broker(_) | PublishError::ConfirmTimeout(_) | PublishError::Nacked)
        ) {
            self.inner.wake.notify_one();
        }
        result
    }

    /// Opens a fresh channel on the current connection (for consumers, which must be
    /// re-created after every reconnection).
    pub async fn open_channel(&self) -> Result<Channel, PublishError> {
        let live = self.current().ok_or(PublishError::NotConnected)?;
        live.connection
            .create_channel()
            .await
            .map_err(PublishError::Broker)
    }

    /// Waits until the link is ready, at most `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut ready = self.ready_watch();
        tokio::time::timeout(timeout, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn current(&self) -> Option<Arc<Live>> {
        read(&self.inner.live).clone()
    }
}

impl Inner {
    fn set_live(&self, live: Option<Arc<Live>>) {
        let ready = live.is_some();
        metrics::gauge!("hookwire_broker_connected", "connection" => self.config.connection_name.clone())
            .set(if ready { 1.0 } else { 0.0 });
        replace(&self.live, live);
        // A new connection starts unblocked; the broker says so again if it is not.
        self.blocked.send_replace(None);
        self.ready.send_replace(ready);
    }
}

/// The addresses of `AMQP_URL`: one URL, or several separated by commas.
fn addresses(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// `host:port` of an address, for logs (never the credentials).
fn node_of(url: &str) -> String {
    url.parse::<AMQPUri>()
        .map(|u| format!("{}:{}", u.authority.host, u.authority.port))
        .unwrap_or_else(|_| "?".to_owned())
}

async fn supervise(inner: Arc<Inner>, shutdown: CancellationToken) {
    let nodes = addresses(&inner.config.url);
    // Replicas start on different nodes, so a cluster's connections spread out (a
    // random start: in containers every process is pid 1).
    let mut turn = {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish() as usize
            % nodes.len().max(1)
    };
    let mut backoff = ExponentialBackoff {
        // The crate starts from `current_interval`, not `initial_interval`.
        current_interval: Duration::from_millis(100),
        initial_interval: Duration::from_millis(100),
        max_interval: Duration::from_secs(5),
        max_elapsed_time: None,
        ..ExponentialBackoff::default()
    };
    let mut failures = 0u32;
    loop {
        let url = nodes
            .get(turn % nodes.len().max(1))
            .copied()
            .unwrap_or_default();
        let attempt = tokio::select! {
            attempt = connect(&inner.config, url) => attempt,
            () = shutdown.cancelled() => break,
        };
        match attempt {
            Ok(live) => {
                backoff.reset();
                failures = 0;
                let live = Arc::new(live);
                metrics::counter!("hookwire_broker_connections_total",
                    "connection" => inner.config.connection_name.clone())
                .increment(1);
                inner.set_live(Some(live.clone()));
                tracing::info!(
                    node = %node_of(url),
                    channels = live.channels.len(),
                    "connected to the broker; topology declared"
                );
                let lost = watch_until_lost(&inner, &live, &shutdown).await;
                inner.set_live(None);
                let _ = live.connection.close(200, "hookwire closing".into()).await;
                match lost {
                    Some(reason) => {
                        tracing::warn!(%reason, node = %node_of(url), "broker connection lost; reconnecting");
                        // The node that failed is tried last.
                        turn = turn.wrapping_add(1);
                    }
                    None => break,
                }
            }
            Err(error) => {
                failures += 1;
                // The first failure is news; the hundredth in a row is noise.
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(error = %error, node = %node_of(url), failures, "cannot reach the broker; retrying");
                }
                turn = turn.wrapping_add(1);
                // A round of every node without success waits; the next node of a
                // round is tried at once.
                if nodes.len() > 1 && !(failures as usize).is_multiple_of(nodes.len()) {
                    continue;
                }
                let delay = backoff.next_backoff().unwrap_or(Duration::from_secs(5));
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => break,
                }
            }
        }
    }
    inner.set_live(None);
    tracing::info!("broker link closed");
}

/// Waits until the connection is lost (`Some(reason)`) or shutdown is asked (`None`).
async fn watch_until_lost(
    inner: &Inner,
    live: &Live,
    shutdown: &CancellationToken,
) -> Option<String> {
    let mut events = live.connection.events_listener();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = events.next() => match event {
                // A channel's error arrives here too: only a dead connection is lost.
                Some(Event::Error(e)) if !live.connection.status().connected() => {
                    return Some(e.to_string());
                }
                Some(Event::ConnectionBlocked(reason)) => {
                    tracing::warn!(%reason, "broker blocked publishing; answering 503 until unblocked");
                    inner.blocked.send_replace(Some(reason.to_string()));
                    inner.ready.send_replace(false);
                }
                Some(Event::ConnectionUnblocked) => {
                    tracing::info!("broker unblocked publishing");
                    inner.blocked.send_replace(None);
                    inner.ready.send_replace(true);
                }
                Some(_) => {}
                None => return Some("connection event stream ended".to_owned()),
            },
            () = inner.wake.notified() => {}
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return None,
        }
        if !live.connection.status().connected() {
            return Some("connection closed".to_owned());
        }
        // Not while the broker blocks the connection (it reads nothing, so opening a
        // channel would wait for the alarm to clear); and never longer than a few
        // seconds, so the watch keeps noticing loss and shutdown.
        if inner.blocked.borrow().is_none() {
            let replaced = tokio::select! {
                replaced = tokio::time::timeout(
                    Duration::from_secs(5),
                    live.replace_failed_channels(inner.config.confirm_timeout),
                ) => replaced,
                () = shutdown.cancelled() => return None,
            };
            match replaced {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Some(format!("cannot replace a failed channel: {error}")),
                Err(_) => return Some("replacing a failed channel timed out".to_owned()),
            }
        }
    }
}

/// Checks `AMQP_URL` at start-up: a URL that cannot parse would otherwise be retried
/// forever, the process up and never ready. (An unreachable broker at a valid URL is
/// different: the process starts, answers 503 and reconnects.) The message names the
/// variable, never the value, which holds the password.
pub fn check_url(url: &str) -> Result<(), String> {
    let nodes = addresses(url);
    if nodes.is_empty() {
        return Err("AMQP_URL (--amqp-url) is empty".to_owned());
    }
    for (i, node) in nodes.iter().enumerate() {
        node.parse::<AMQPUri>().map_err(|_| {
            format!(
                "AMQP_URL (--amqp-url) address {} of {} is not a valid AMQP URL; expected \
                 amqp://user:password@host:port/vhost or amqps://..., several separated by commas",
                i + 1,
                nodes.len()
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{NACK_REPLACEMENT_SPACING, NackSpacing, check_url};

    #[tokio::test(start_paused = true)]
    async fn a_nacking_slot_is_replaced_at_most_once_a_second() {
        let spacing = NackSpacing::default();
        assert!(spacing.due(), "the first nack replaces at once");
        spacing.replaced();
        assert!(!spacing.due());
        tokio::time::advance(NACK_REPLACEMENT_SPACING - Duration::from_millis(1)).await;
        assert!(!spacing.due());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(spacing.due());
    }

    #[test]
    fn a_url_that_cannot_parse_is_named_never_shown() {
        assert!(check_url("amqp://guest:guest@127.0.0.1:5672/%2f").is_ok());
        assert!(check_url("amqps://u:p@broker.internal/vhost?heartbeat=10").is_ok());
        assert!(check_url("amqp://u:p@rabbit-0:5672/%2f, amqp://u:p@rabbit-1:5672/%2f").is_ok());
        for bad in [
            "nonsense",
            "http://u:s3cret@host/",
            "amqp://u:s3cret@host:port/",
            "amqp://u:s3cret@rabbit-0/,nonsense",
            " , ",
        ] {
            let error = check_url(bad).err().unwrap_or_default();
            assert!(
                error.contains("AMQP_URL") && !error.contains("s3cret"),
                "{bad}: {error}"
            );
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("invalid AMQP_URL: {0}")]
    Url(String),
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    #[error("connection attempt timed out")]
    Timeout,
}

async fn connect(config: &LinkConfig, url: &str) -> Result<Live, ConnectError> {
    let mut uri: AMQPUri = url.parse().map_err(ConnectError::Url)?;
    if uri.query.heartbeat.is_none() {
        uri.query.heartbeat = u16::try_from(config.heartbeat.as_secs()).ok();
    }
    let properties =
        ConnectionProperties::default().with_connection_name(config.connection_name.clone().into());
    let attempt = async {
        let connection = Connection::connect_uri(uri, properties).await?;
        let setup = connection.create_channel().await?;
        match config.scope {
            TopologyScope::Ingest => config.topology.declare(&connection, &setup).await?,
            TopologyScope::Worker => config.topology.declare_worker(&connection, &setup).await?,
        }
        let _ = setup.close(200, "topology declared".into()).await;
        let mut channels = Vec::with_capacity(config.publish_channels.max(1));
        for _ in 0..config.publish_channels.max(1) {
            channels.push(Slot::new(confirm_channel(&connection).await?));
        }
        Ok::<_, ConnectError>(Live {
            connection,
            channels,
            next: AtomicUsize::new(0),
            retiring: Arc::new(AtomicUsize::new(0)),
        })
    };
    tokio::time::timeout(Duration::from_secs(15), attempt)
        .await
        .map_err(|_| ConnectError::Timeout)?
}
