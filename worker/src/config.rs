//! Worker settings and subcommands, from the environment (and `.env`) or flags.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use shared::Provider;
use shared::amqp::Topology;
use shared::telemetry::LogFormat;

/// hookwire worker: consumes the provider queues and applies each event's effect once.
#[derive(Clone, Debug, Parser)]
#[command(name = "worker", version, about, long_about = None)]
pub struct Cli {
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub settings: WorkerSettings,
}

/// Subcommands.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Consume events until SIGTERM (the default).
    Run {
        /// Do not apply migrations at start-up (when a release job does it).
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Inspect or replay dead letters.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Pluggy administration.
    #[command(subcommand)]
    Pluggy(PluggyCommand),
}

/// `worker pluggy ...`
#[derive(Clone, Debug, Subcommand)]
pub enum PluggyCommand {
    /// Registers `$BACKEND_URL/api/banking/pluggy/webhook/` with Pluggy, with the
    /// secret header the gateway checks; leaves an existing registration alone.
    SetupWebhook {
        /// Public https base URL of the gateway, as Pluggy will call it.
        #[arg(long, env = "BACKEND_URL")]
        backend_url: String,
        /// Secret sent back by Pluggy in `X-Pluggy-Webhook-Secret`; of a
        /// comma-separated list (a rotation), the first is registered.
        #[arg(long, env = "PLUGGY_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: String,
        /// Pluggy event to subscribe: `all`, `item/all`, or one event
        /// (`item/updated`, `transactions/created`, `payment_intent/created`, ...).
        #[arg(long, default_value = "all", value_parser = parse_subscription)]
        event: String,
        /// Re-send URL, event and secret to an existing registration (`PATCH`).
        #[arg(long)]
        force: bool,
    },
    /// Sweeps Pluggy's items once for what webhooks missed, and reports.
    Reconcile {
        /// Only this item.
        #[arg(long)]
        item: Option<String>,
        /// Report what would be recovered; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `worker dlq ...`
#[derive(Clone, Debug, Subcommand)]
pub enum DlqCommand {
    /// Show dead letters without removing them.
    List {
        /// Only this provider's dead letters.
        #[arg(long)]
        provider: Option<Provider>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Send dead letters back to their work queue with the attempt counter reset.
    Replay {
        /// Only this provider's dead letters.
        #[arg(long)]
        provider: Option<Provider>,
        /// Only dead letters of this event (`item/updated`, `payment_confirmed`).
        #[arg(long)]
        event: Option<String>,
        /// Only the dead letter of this gateway request id (`dlq list` shows it): one
        /// event.
        #[arg(long)]
        request_id: Option<String>,
        /// Replay everything (required when no filter is given).
        #[arg(long)]
        all: bool,
        /// Show what would be replayed; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Settings every subcommand reads.
#[derive(Clone, Debug, Args)]
pub struct WorkerSettings {
    /// Database URL (`postgres://...` in production). Unset: an SQLite file in the
    /// working directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// RabbitMQ URL.
    #[arg(
        long,
        env = "AMQP_URL",
        // The default is the local broker's well-known guest login, no secret: shown.
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    pub amqp_url: String,

    /// Prefix of every exchange and queue name; must match the gateway's.
    #[arg(long, env = "AMQP_PREFIX", default_value = "hookwire", value_parser = parse_topology)]
    pub amqp_prefix: Topology,

    /// Replicas of each quorum queue this process creates (unset: the broker's default,
    /// every node of the cluster). Queues that exist keep theirs.
    #[arg(long, env = "AMQP_QUORUM_INITIAL_GROUP_SIZE",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub amqp_quorum_initial_group_size: Option<u32>,

    /// LiveTip slots of this process: each is a consumer on its own channel handling
    /// one batch at a time, so this many transactions run at once. Each queue has its
    /// own slots, so slow Pluggy syncs never hold up payments. Three kept a 2-core
    /// host's database as busy as four did (each with its next batch prefetched), with
    /// a quarter fewer messages held.
    #[arg(long, env = "WORKER_LIVETIP_CONCURRENCY", default_value_t = 3,
          value_parser = clap::value_parser!(u16).range(1..=1_000))]
    pub worker_livetip_concurrency: u16,

    /// Unacknowledged LiveTip deliveries the broker sends ahead to each slot: a batch
    /// is at most this many. Twice the batch size: while a slot writes one batch, its
    /// next is already here. Equal to it, a slot's next batch waited for the broker to
    /// refill after each ack and often closed short (53 events on average instead of
    /// 64; about a fifth fewer events/s, BENCHMARKS.md).
    #[arg(long, env = "WORKER_LIVETIP_PREFETCH", default_value_t = 128,
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub worker_livetip_prefetch: u16,

    /// Pluggy slots of this process. An event that calls Pluggy's API is handled alone
    /// (for seconds, maybe), so at most this many syncs run at once.
    #[arg(long, env = "WORKER_PLUGGY_CONCURRENCY", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=1_000))]
    pub worker_pluggy_concurrency: u16,

    /// Unacknowledged Pluggy deliveries sent ahead to each slot: small, since a sync
    /// takes seconds and an event held here is one another replica could run.
    #[arg(long, env = "WORKER_PLUGGY_PREFETCH", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub worker_pluggy_prefetch: u16,

    /// Deliveries one slot handles in one database transaction (also bounded by the
    /// queue's prefetch). At most 64: an effect that sends a statement runs under its
    /// own savepoint, and PostgreSQL keeps 64 subtransactions per transaction in memory.
    #[arg(long, env = "WORKER_BATCH_SIZE", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_BATCH_SIZE)))]
    pub worker_batch_size: u16,

    /// Message bytes one batch takes at most (it always takes one message, however
    /// big): bounds the transaction's statements and what a slot holds while it
    /// writes them, whatever the bodies are.
    #[arg(long, env = "WORKER_BATCH_BYTES", default_value_t = 4 * 1_048_576,
          value_parser = clap::value_parser!(u32).range(1..=256 * 1_048_576))]
    pub worker_batch_bytes: u32,

    /// How long a forming batch (two or more deliveries already in hand) waits for
    /// more. A lone delivery never waits: at low rates each event is handled as it
    /// arrives.
    #[arg(long, env = "WORKER_BATCH_WAIT", default_value = "2ms", value_parser = parse_duration)]
    pub worker_batch_wait: Duration,

    /// Retired (one prefetch for every queue); refused with the names that replace it.
    #[arg(long, env = "WORKER_PREFETCH", hide = true, value_parser = retired_prefetch)]
    pub worker_prefetch: Option<String>,

    /// Retired (one pool of slots for every queue); refused likewise.
    #[arg(long, env = "WORKER_CONCURRENCY", hide = true, value_parser = retired_concurrency)]
    pub worker_concurrency: Option<String>,

    /// Processing attempts before an event that keeps failing transiently is
    /// dead-lettered.
    #[arg(long, env = "WORKER_MAX_ATTEMPTS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub worker_max_attempts: u32,

    /// Delays of the durable retry steps, comma-separated (`500ms`, `10s`, `1m`, `1h`);
    /// attempt n waits step n, the last step repeats.
    #[arg(long, env = "WORKER_RETRY_DELAYS", default_value = "10s,1m,10m,1h", value_parser = parse_delays)]
    pub worker_retry_delays: Delays,

    /// In-process retry budget (exponential backoff with jitter) before an event goes
    /// to a durable retry step.
    #[arg(long, env = "WORKER_INLINE_RETRY", default_value = "30s", value_parser = parse_duration)]
    pub worker_inline_retry: Duration,

    /// Lease of a claim on an event that calls the Pluggy API (renewed every third of it
    /// while the worker still works on it); a crashed worker's claim is taken over
    /// after it. Events that are one transaction need no lease.
    #[arg(long, env = "WORKER_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub worker_lease: Duration,

    /// `/healthz`, `/readyz`, `/metrics` listener, unauthenticated: loopback unless set
    /// (compose and Kubernetes set `0.0.0.0:9100` behind their network policy).
    #[arg(long, env = "WORKER_METRICS_ADDR", default_value = "127.0.0.1:9100")]
    pub worker_metrics_addr: SocketAddr,

    /// Age after which the spec's log entries are deleted (`720h` = 30 days).
    #[arg(long, env = "WORKER_LOG_RETENTION", default_value = "720h", value_parser = parse_duration)]
    pub worker_log_retention: Duration,

    /// Age after which finished inbox rows are deleted; at least 7 days, since the
    /// inbox is what makes a provider's late copy a duplicate (see `retention.rs`).
    #[arg(long, env = "WORKER_INBOX_RETENTION", default_value = "720h", value_parser = parse_inbox_retention)]
    pub worker_inbox_retention: Duration,

    /// How often the retention pass runs.
    #[arg(long, env = "WORKER_RETENTION_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub worker_retention_interval: Duration,

    /// A connection to the health listener that sends nothing this long (a scrape takes
    /// milliseconds) is closed, so silent sockets cannot hold the listener.
    #[arg(long, env = "WORKER_HTTP_IDLE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub worker_http_idle_timeout: Duration,

    /// On SIGTERM, how long in-flight events may take before unfinished ones are
    /// handed back to the broker.
    #[arg(long, env = "WORKER_SHUTDOWN_DEADLINE", default_value = "25s", value_parser = parse_duration)]
    pub worker_shutdown_deadline: Duration,

    /// Database connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub database_max_connections: u32,

    /// Pluggy client id (`POST /auth`). Unset: Pluggy events are recorded, not synced.
    #[arg(long, env = "PLUGGY_CLIENT_ID")]
    pub pluggy_client_id: Option<String>,

    /// Pluggy client secret.
    #[arg(long, env = "PLUGGY_CLIENT_SECRET", hide_env_values = true)]
    pub pluggy_client_secret: Option<String>,

    /// Pluggy API base URL.
    #[arg(long, env = "PLUGGY_API_URL", default_value = "https://api.pluggy.ai")]
    pub pluggy_api_url: String,

    /// Timeout of each Pluggy API request.
    #[arg(long, env = "PLUGGY_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub pluggy_timeout: Duration,

    /// Public https base URL of the gateway, as Pluggy calls it. With the Pluggy API
    /// configured, the worker checks at start-up and after each reconciliation sweep
    /// that Pluggy will deliver there.
    #[arg(long = "backend-url", id = "public_backend_url", env = "BACKEND_URL")]
    pub backend_url: Option<String>,

    /// How often the worker sweeps Pluggy's items for what webhooks missed (`0s`: never;
    /// `worker pluggy reconcile` runs one sweep).
    #[arg(long, env = "PLUGGY_RECONCILE_INTERVAL", default_value = "6h", value_parser = parse_duration_or_off)]
    pub pluggy_reconcile_interval: Duration,

    /// Pluggy API calls a sweep makes per minute at most.
    #[arg(long, env = "PLUGGY_RECONCILE_CALLS_PER_MINUTE", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub pluggy_reconcile_calls_per_minute: u32,

    /// `text` or `json`.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

/// The most events one transaction takes. An effect that sends a statement runs under
/// a savepoint, a subtransaction; PostgreSQL keeps up to 64 of them per transaction in
/// shared memory, and past that every other session's snapshot checks pay for a lookup
/// on disk.
pub const MAX_BATCH_SIZE: u16 = 64;

/// How much of one queue a worker process takes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimits {
    /// Slots: consumers, each with its own channel and one batch at a time.
    pub concurrency: usize,
    /// Deliveries the broker sends ahead to each slot.
    pub prefetch: u16,
    /// Deliveries per batch.
    pub batch: usize,
}

fn retired_prefetch(_: &str) -> Result<String, String> {
    Err("retired: set WORKER_LIVETIP_PREFETCH and WORKER_PLUGGY_PREFETCH instead".into())
}

fn retired_concurrency(_: &str) -> Result<String, String> {
    Err("retired: set WORKER_LIVETIP_CONCURRENCY and WORKER_PLUGGY_CONCURRENCY instead".into())
}

/// Retry step delays, at least one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delays(pub Vec<Duration>);

impl WorkerSettings {
    /// The database URL in force.
    pub fn database_url(&self) -> &str {
        self.database_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or(shared::db::DEFAULT_DATABASE_URL)
    }

    /// The Pluggy API settings, when both credentials are set.
    pub fn pluggy(&self) -> Option<crate::pluggy::client::PluggyConfig> {
        let id = self
            .pluggy_client_id
            .as_deref()
            .filter(|v| !v.trim().is_empty())?;
        let secret = self
            .pluggy_client_secret
            .as_deref()
            .filter(|v| !v.trim().is_empty())?;
        Some(crate::pluggy::client::PluggyConfig {
            base_url: self.pluggy_api_url.trim_end_matches('/').to_owned(),
            client_id: id.trim().to_owned(),
            client_secret: shared::secret::Secret::new(secret.trim()),
            timeout: self.pluggy_timeout,
        })
    }

    /// Settings that only make sense together: every slot of every queue may need a
    /// database connection at once, so a smaller pool turns load into acquire timeouts.
    pub fn check(&self) -> Result<(), String> {
        shared::amqp::check_url(&self.amqp_url)?;
        if let Some(url) = &self.backend_url {
            crate::pluggy::webhooks::webhook_url(url).map_err(|e| e.to_string())?;
        }
        let slots: usize = [Some(Provider::LiveTip), Some(Provider::Pluggy), None]
            .into_iter()
            .map(|queue| self.queue_limits(queue).concurrency)
            .sum();
        let pool = usize::try_from(self.database_max_connections).unwrap_or(usize::MAX);
        if pool < slots {
            return Err(format!(
                "DATABASE_MAX_CONNECTIONS ({pool}) is below the slots of every queue together \
                 ({slots}: WORKER_LIVETIP_CONCURRENCY + WORKER_PLUGGY_CONCURRENCY + 1 for the audit queue)"
            ));
        }
        // The Pluggy sweep holds its lock's connection and writes through another.
        let sweeping = self.pluggy().is_some() && !self.pluggy_reconcile_interval.is_zero();
        if sweeping && pool < slots + 2 {
            return Err(format!(
                "DATABASE_MAX_CONNECTIONS ({pool}) leaves the Pluggy sweep no connection: it needs \
                 the queues' {slots} slots + 2 (or PLUGGY_RECONCILE_INTERVAL=0s)"
            ));
        }
        Ok(())
    }

    /// Slots, prefetch and batch size of a work queue; `None` is the gateway's audit
    /// queue (small records: one slot is plenty).
    pub fn queue_limits(&self, provider: Option<Provider>) -> QueueLimits {
        let (concurrency, prefetch) = match provider {
            Some(Provider::LiveTip) => (
                self.worker_livetip_concurrency,
                self.worker_livetip_prefetch,
            ),
            Some(Provider::Pluggy) => (self.worker_pluggy_concurrency, self.worker_pluggy_prefetch),
            None => (1, 4),
        };
        QueueLimits {
            concurrency: usize::from(concurrency),
            prefetch,
            batch: usize::from(self.worker_batch_size.min(prefetch)),
        }
    }

    /// The topology with this worker's retry steps.
    pub fn topology(&self) -> Topology {
        self.amqp_prefix
            .clone()
            .with_retry_delays(self.worker_retry_delays.0.clone())
            .with_quorum_group_size(self.amqp_quorum_initial_group_size)
    }
}

fn parse_topology(raw: &str) -> Result<Topology, String> {
    Topology::new(raw).map_err(|e| e.to_string())
}

/// `250ms`, `10s`, `5m`, `1h`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let duration = parse_duration_or_off(raw)?;
    if duration.is_zero() {
        return Err(format!("{:?} must be longer than zero", raw.trim()));
    }
    Ok(duration)
}

/// A duration where zero means "off" (`0s`).
pub fn parse_duration_or_off(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration such as 500ms, 10s, 1m or 1h, got {raw:?}"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {raw:?} (use ms, s, m or h)"
            ));
        }
    };
    Ok(duration)
}

/// At least a week: less would let a provider's late copy of a finished event be
/// applied again.
fn parse_inbox_retention(raw: &str) -> Result<Duration, String> {
    let retention = parse_duration(raw)?;
    if retention < Duration::from_secs(7 * 24 * 3600) {
        return Err(format!(
            "{raw:?} is shorter than 7 days (168h): copies of finished events could be applied again"
        ));
    }
    Ok(retention)
}

fn parse_subscription(raw: &str) -> Result<String, String> {
    if crate::handlers::pluggy::subscribable(raw) {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "{raw:?} is no Pluggy webhook event: use all, item/all, or an event such as \
             item/updated, transactions/created or payment_intent/created"
        ))
    }
}

fn parse_delays(raw: &str) -> Result<Delays, String> {
    let delays = raw
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    if delays.is_empty() {
        return Err("at least one delay is required".into());
    }
    Ok(Delays(delays))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_delay_lists() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert_eq!(
            parse_delays("10s,1m").map(|d| d.0),
            Ok(vec![Duration::from_secs(10), Duration::from_secs(60)])
        );
    }

    #[test]
    fn each_queue_has_its_own_limits_and_retired_names_are_refused() {
        let cli = Cli::try_parse_from(["worker", "--worker-pluggy-concurrency", "2"]);
        let limits = cli.map(|c| {
            (
                c.settings.queue_limits(Some(Provider::LiveTip)),
                c.settings.queue_limits(Some(Provider::Pluggy)),
            )
        });
        assert_eq!(
            limits.ok(),
            Some((
                QueueLimits {
                    concurrency: 3,
                    prefetch: 128,
                    batch: 64
                },
                QueueLimits {
                    concurrency: 2,
                    prefetch: 4,
                    batch: 4
                }
            ))
        );
        let retired = Cli::try_parse_from(["worker", "--worker-concurrency", "8"]).map(|_| ());
        assert!(retired.is_err_and(|e| e.to_string().contains("WORKER_LIVETIP_CONCURRENCY")));
        let small_pool = Cli::try_parse_from(["worker", "--database-max-connections", "7"])
            .map_err(|e| e.to_string())
            .and_then(|c| c.settings.check());
        assert!(small_pool.is_err_and(|e| e.contains("DATABASE_MAX_CONNECTIONS (7)")));
    }

    #[test]
    fn the_inbox_outlives_provider_retries() {
        let short = Cli::try_parse_from(["worker", "--worker-inbox-retention", "24h"]).map(|_| ());
        assert!(short.is_err_and(|e| e.to_string().contains("WORKER_INBOX_RETENTION")));
        let week = Cli::try_parse_from(["worker", "--worker-inbox-retention", "168h"]);
        assert!(week.is_ok());
    }

    #[test]
    fn the_unauthenticated_listener_is_loopback_by_default() {
        let cli = Cli::try_parse_from(["worker"]).map(|c| c.settings.worker_metrics_addr);
        assert!(cli.is_ok_and(|addr| addr.ip().is_loopback()));
    }

    #[test]
    fn setup_webhook_takes_the_catalogue_only() {
        let with = |event: &str| {
            Cli::try_parse_from([
                "worker",
                "pluggy",
                "setup-webhook",
                "--backend-url",
                "https://hooks.example.com",
                "--webhook-secret",
                "s",
                "--event",
                event,
            ])
            .map(|_| ())
        };
        for event in ["all", "item/all", "item/updated", "payment_intent/created"] {
            assert!(with(event).is_ok(), "{event}");
        }
        let refused = with("items/everything");
        assert!(refused.is_err_and(|e| {
            let e = e.to_string();
            e.contains("--event") && e.contains("item/all")
        }));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = Cli::try_parse_from(["worker", "--worker-retry-delays", "soon"]).map(|_| ());
        assert!(err.is_err_and(|e| e.to_string().contains("WORKER_RETRY_DELAYS")));
    }
}
