//! Gateway settings, read from the environment (and `.env`) or flags; `gateway --help`
//! lists every variable with its default. A bad value stops start-up with a message
//! that names the variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use shared::amqp::Topology;
use shared::secret::SecretList;
use shared::telemetry::LogFormat;

use crate::guard::Networks;

/// hookwire gateway: verifies provider webhooks and answers 2xx only once RabbitMQ
/// has confirmed a persistent copy of the event.
#[derive(Clone, Debug, Parser)]
#[command(name = "gateway", version, about, long_about = None)]
pub struct GatewayConfig {
    /// Public listener for provider webhooks and health checks.
    #[arg(long, env = "GATEWAY_ADDR", default_value = "0.0.0.0:8000")]
    pub gateway_addr: SocketAddr,

    /// RabbitMQ URL (amqp:// or amqps://). A missing `heartbeat` query parameter
    /// defaults to 10 s so a dead connection is noticed quickly.
    #[arg(
        long,
        env = "AMQP_URL",
        // The default is the local broker's well-known guest login, no secret: shown.
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    pub amqp_url: String,

    /// Prefix of every exchange and queue name (isolates environments sharing a broker).
    #[arg(long, env = "AMQP_PREFIX", default_value = "hookwire", value_parser = parse_topology)]
    pub amqp_prefix: Topology,

    /// Replicas of each quorum queue this process creates (unset: the broker's default,
    /// every node of the cluster). Queues that exist keep theirs.
    #[arg(long, env = "AMQP_QUORUM_INITIAL_GROUP_SIZE",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub amqp_quorum_initial_group_size: Option<u32>,

    /// Confirm-mode channels used for publishing; more channels spread confirm work.
    #[arg(long, env = "AMQP_PUBLISH_CHANNELS", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub amqp_publish_channels: u16,

    /// How long a request waits for the broker's confirm before answering 503.
    #[arg(long, env = "CONFIRM_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub confirm_timeout_ms: u64,

    /// Pluggy webhook secrets, comma-separated (several during a rotation), as the value
    /// of `X-Pluggy-Webhook-Secret` (what Pluggy sends when the webhook was registered
    /// with it). Never an HMAC key: whoever reads one delivery's headers knows it.
    #[arg(long, env = "PLUGGY_WEBHOOK_SECRET", default_value = "", hide_env_values = true,
          hide_default_value = true, value_parser = parse_secrets)]
    pub pluggy_webhook_secret: SecretList,

    /// HMAC-SHA256 keys for `X-Pluggy-Signature` (the product owner's guide),
    /// comma-separated; must differ from every `PLUGGY_WEBHOOK_SECRET`. With neither
    /// set, the Pluggy route answers 503.
    #[arg(long, env = "PLUGGY_SIGNING_KEY", default_value = "", hide_env_values = true,
          hide_default_value = true, value_parser = parse_secrets)]
    pub pluggy_signing_key: SecretList,

    /// Our Pluggy client id; when set, a payload whose `clientId` differs is refused (403).
    #[arg(long, env = "PLUGGY_CLIENT_ID")]
    pub pluggy_client_id: Option<String>,

    /// LiveTip shared tokens, comma-separated, for `X-Livetip-Webhook-Secret-Token`.
    /// Unset: the LiveTip route answers 503.
    #[arg(long, env = "LIVETIP_WEBHOOK_TOKEN", default_value = "", hide_env_values = true,
          hide_default_value = true, value_parser = parse_secrets)]
    pub livetip_webhook_token: SecretList,

    /// Largest accepted request body in bytes (the LiveTip spec's 1 MB).
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 1_048_576,
          value_parser = clap::value_parser!(u64).range(1..=64 * 1_048_576))]
    pub body_limit_bytes: u64,

    /// Time allowed to receive a whole body; a trickled body is cut off with 408.
    #[arg(long, env = "BODY_READ_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub body_read_timeout_ms: u64,

    /// Time allowed to receive a request's headers before the connection is closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub header_read_timeout_ms: u64,

    /// Open connections served at once; further clients wait in the kernel's backlog.
    /// Each costs memory (see `MEMORY_BUDGET_MIB`).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1_024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Connections per client address on each listener; beyond it a new connection is
    /// closed at once. Addresses in `TRUSTED_PROXIES` are exempt (they carry many
    /// clients). 0 turns the cap off.
    #[arg(long, env = "MAX_CONNECTIONS_PER_CLIENT", default_value_t = 128)]
    pub max_connections_per_client: u32,

    /// A connection that sends nothing for this long while none of its requests is being
    /// answered is closed: from accept to its first byte, and between keep-alive requests.
    #[arg(long, env = "CONNECTION_IDLE_TIMEOUT_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub connection_idle_timeout_ms: u64,

    /// Requests handled at once on each provider route (each has its own); beyond it
    /// that route sheds with 503 and `Retry-After`. Their bodies share `BODY_BUDGET_MIB`.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_in_flight: u32,

    /// Bytes of request bodies held at once, all requests together, in MiB: a body
    /// reserves its declared length (the whole `BODY_LIMIT_BYTES` when chunked) before
    /// it is read, and beyond the budget the request gets 503 at once.
    #[arg(long, env = "BODY_BUDGET_MIB", default_value_t = 96,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub body_budget_mib: u64,

    /// Of Pluggy's in-flight requests, how many may be unverified at once (signed with
    /// HMAC only, so anyone's until the body is read); at most half of
    /// `MAX_IN_FLIGHT`, so verified deliveries always find room. Default: 32, or half
    /// of `MAX_IN_FLIGHT` when that is smaller.
    #[arg(long, env = "MAX_UNVERIFIED",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_unverified: Option<u32>,

    /// Unverified requests at once per client address (429 beyond).
    #[arg(long, env = "MAX_UNVERIFIED_PER_CLIENT", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_unverified_per_client: u32,

    /// Time allowed to receive an unverified body (408 after): Pluggy's bodies are a
    /// few KiB, so this is short.
    #[arg(long, env = "UNVERIFIED_BODY_TIMEOUT_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub unverified_body_timeout_ms: u64,

    /// Memory the gateway may use at worst (bodies in flight, connections, baseline);
    /// start-up refuses settings whose worst case exceeds it. The default fits the
    /// 256 MiB limit of the Kubernetes manifests with room to spare.
    #[arg(long, env = "MEMORY_BUDGET_MIB", default_value_t = 240,
          value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    pub memory_budget_mib: u64,

    /// Requests per second per client address on each provider route (burst: twice
    /// that); 0 turns it off. Providers deliver from a handful of addresses, so this is
    /// close to a per-provider ceiling: the default leaves room for a retry storm after
    /// an outage.
    #[arg(long, env = "RATE_LIMIT_PER_IP", default_value_t = 500)]
    pub rate_limit_per_ip: u32,

    /// Proxies (CIDRs or addresses, comma-separated) whose `X-Forwarded-For` is
    /// believed; from anyone else the header is ignored.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "", value_parser = Networks::parse)]
    pub trusted_proxies: Networks,

    /// Optional allow-list of source networks for the Pluggy route (a second check,
    /// never the only one). Empty: any source.
    #[arg(long, env = "PLUGGY_ALLOWED_IPS", default_value = "", value_parser = Networks::parse)]
    pub pluggy_allowed_ips: Networks,

    /// Optional allow-list of source networks for the LiveTip route. Empty: any source.
    #[arg(long, env = "LIVETIP_ALLOWED_IPS", default_value = "", value_parser = Networks::parse)]
    pub livetip_allowed_ips: Networks,

    /// On SIGTERM, how long in-flight requests may take before the process exits anyway.
    #[arg(long, env = "SHUTDOWN_DEADLINE_SECS", default_value_t = 25,
          value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub shutdown_deadline_secs: u64,

    /// On SIGTERM, how long readiness reports "not ready" before the listener closes,
    /// so load balancers stop routing here first (0 when a preStop hook already waits).
    #[arg(long, env = "SHUTDOWN_READINESS_DELAY_MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=120_000))]
    pub shutdown_readiness_delay_ms: u64,

    /// Rejections are logged and recorded once per window and kind (client address,
    /// provider, status, reason) with a count: a flood is a few lines, not millions.
    #[arg(long, env = "REJECTION_WINDOW_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(50..=3_600_000))]
    pub rejection_window_ms: u64,

    /// Kinds of rejection tracked per window; beyond it they are counted per provider,
    /// status and kind of reason, without the address, so memory stays bounded.
    #[arg(long, env = "REJECTED_AUDIT_BUFFER", default_value_t = 1_024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rejected_audit_buffer: u32,

    /// Admin listener (monitoring, payments API). Keep it private: loopback, or a port
    /// only the cluster reaches.
    #[arg(long, env = "ADMIN_ADDR", default_value = "127.0.0.1:8001")]
    pub admin_addr: SocketAddr,

    /// Bearer token every admin route requires. Unset: the admin listener is allowed
    /// on a loopback address only, without authentication.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, value_parser = parse_secrets)]
    pub admin_token: Option<SecretList>,

    /// `development` enables `POST /test-webhook` on the admin listener.
    #[arg(long, env = "APP_ENV", default_value = "production")]
    pub app_env: String,

    /// Database the admin routes read (the worker writes it). Unset: the worker's
    /// SQLite default in the working directory. The ingest path never uses it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// `text` for terminals, `json` for log shippers.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// The trace viewer's page of one trace, `{traceId}` standing for the id (Jaeger:
    /// `http://localhost:16686/trace/{traceId}`). Set: every event and log entry the admin
    /// API returns carries `traceUrl`.
    #[arg(long, env = "TRACE_UI_URL", value_parser = parse_trace_ui)]
    pub trace_ui_url: Option<String>,
}

fn parse_trace_ui(raw: &str) -> Result<String, String> {
    if raw.contains("{traceId}") && (raw.starts_with("http://") || raw.starts_with("https://")) {
        Ok(raw.to_owned())
    } else {
        Err("TRACE_UI_URL must be an http(s) URL with {traceId} where the trace id goes".to_owned())
    }
}

fn parse_secrets(raw: &str) -> Result<SecretList, String> {
    Ok(SecretList::parse(raw))
}

fn parse_topology(raw: &str) -> Result<Topology, String> {
    Topology::new(raw).map_err(|e| e.to_string())
}

impl GatewayConfig {
    /// Confirm timeout as a duration.
    pub fn confirm_timeout(&self) -> Duration {
        Duration::from_millis(self.confirm_timeout_ms)
    }

    /// Body read timeout as a duration.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }

    /// Header read timeout as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// Readiness-off delay as a duration.
    pub fn shutdown_readiness_delay(&self) -> Duration {
        Duration::from_millis(self.shutdown_readiness_delay_ms)
    }

    /// Whether development-only routes are on.
    pub fn is_development(&self) -> bool {
        self.app_env.eq_ignore_ascii_case("development")
    }

    /// The database URL in force.
    pub fn database_url(&self) -> &str {
        self.database_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or(shared::db::DEFAULT_DATABASE_URL)
    }

    /// Unverified requests allowed at once (see `MAX_UNVERIFIED`).
    pub fn max_unverified(&self) -> u32 {
        self.max_unverified
            .unwrap_or_else(|| (self.max_in_flight / 2).clamp(1, 32))
    }

    /// Drain deadline as a duration.
    pub fn shutdown_deadline(&self) -> Duration {
        Duration::from_secs(self.shutdown_deadline_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_secrets_stay_hidden() {
        let config =
            GatewayConfig::try_parse_from(["gateway", "--pluggy-webhook-secret", "s3cr3t,next"])
                .map_err(|e| e.to_string());
        let config = config.as_ref();
        assert_eq!(config.map(|c| c.body_limit_bytes), Ok(&1_048_576).copied());
        assert!(config.is_ok_and(|c| c.pluggy_webhook_secret.matches(b"next")));
        assert!(config.is_ok_and(|c| !format!("{c:?}").contains("s3cr3t")));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = GatewayConfig::try_parse_from(["gateway", "--body-limit-bytes", "0"])
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(err.is_err_and(|e| e.contains("BODY_LIMIT_BYTES")));
    }
}
