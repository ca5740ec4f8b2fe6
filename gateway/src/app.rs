//! Building and running a gateway: what `main` and the tests both call.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shared::amqp::{BrokerLink, LinkConfig, TopologyScope};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{AdminRoutes, AdminState};
use crate::audit::AuditSink;
use crate::config::GatewayConfig;
use crate::guard::{BodyBudget, InFlight, RateLimits};
use crate::http::router::PublicRoutes;
use crate::http::server::{ServerLimits, serve};
use crate::state::{AppState, Unverified};
use shared::Provider;

/// A gateway that could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Settings whose worst case does not fit, or that contradict each other.
    #[error("{0}")]
    Settings(String),
    /// An admin listener reachable from the network must have a token.
    #[error("ADMIN_TOKEN is required when ADMIN_ADDR ({0}) is not a loopback address")]
    AdminUnprotected(SocketAddr),
    /// The admin listener cannot bind.
    #[error("cannot listen on ADMIN_ADDR {addr}")]
    AdminBind {
        /// Address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `DATABASE_URL` is malformed.
    #[error("invalid DATABASE_URL")]
    Database(#[source] sea_orm::DbErr),
    /// The public address cannot be bound.
    #[error("cannot listen on GATEWAY_ADDR {addr}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A bound, connected-in-the-background gateway, ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    admin_listener: TcpListener,
    admin_addr: SocketAddr,
    admin: Arc<AdminState>,
    state: Arc<AppState>,
    limits: ServerLimits,
    readiness_delay: Duration,
    background: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Binds the listener and starts the broker link. A broker that is down does not
    /// stop start-up: the gateway serves, answers 503, and connects when it can.
    pub async fn build(config: GatewayConfig) -> Result<Self, StartupError> {
        shared::amqp::check_url(&config.amqp_url).map_err(StartupError::Settings)?;
        crate::budget::check(&config).map_err(StartupError::Settings)?;
        shared::metrics::install();
        let listener = TcpListener::bind(config.gateway_addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.gateway_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.gateway_addr,
            source,
        })?;
        let admin_token = config.admin_token.clone().filter(|t| !t.is_empty());
        if admin_token.is_none() {
            if !config.admin_addr.ip().is_loopback() {
                return Err(StartupError::AdminUnprotected(config.admin_addr));
            }
            tracing::warn!(
                addr = %config.admin_addr,
                "ADMIN_TOKEN is not set: the admin listener serves loopback only, without authentication"
            );
        }
        let admin_listener = TcpListener::bind(config.admin_addr)
            .await
            .map_err(|source| StartupError::AdminBind {
                addr: config.admin_addr,
                source,
            })?;
        let admin_addr = admin_listener
            .local_addr()
            .map_err(|source| StartupError::AdminBind {
                addr: config.admin_addr,
                source,
            })?;
        // Lazy: the database may be away; only the admin routes notice (503).
        let db = shared::db::connect_lazy(config.database_url(), 4)
            .await
            .map_err(StartupError::Database)?;
        if config.pluggy_signing_key.iter().any(|key| {
            config
                .pluggy_webhook_secret
                .matches(key.expose().as_bytes())
        }) {
            return Err(StartupError::Settings(
                "PLUGGY_SIGNING_KEY and PLUGGY_WEBHOOK_SECRET must differ: the header secret \
                 travels in every delivery, and whoever reads one could sign with it"
                    .to_owned(),
            ));
        }
        if config.pluggy_webhook_secret.is_empty() && config.pluggy_signing_key.is_empty() {
            tracing::warn!(
                "neither PLUGGY_WEBHOOK_SECRET nor PLUGGY_SIGNING_KEY is set: the Pluggy route answers 503"
            );
        }
        if config.livetip_webhook_token.is_empty() {
            tracing::warn!("LIVETIP_WEBHOOK_TOKEN is not set: the LiveTip route answers 503");
        }
        // The link outlives the listener: in-flight requests still publish while draining.
        let background = CancellationToken::new();
        let topology = config
            .amqp_prefix
            .clone()
            .with_quorum_group_size(config.amqp_quorum_initial_group_size);
        let events_exchange = topology.events_exchange();
        let ingest_exchange = topology.ingest_exchange();
        let (link, link_task) = BrokerLink::start(
            LinkConfig {
                url: config.amqp_url.clone(),
                connection_name: "hookwire-gateway".to_owned(),
                publish_channels: usize::from(config.amqp_publish_channels),
                confirm_timeout: config.confirm_timeout(),
                heartbeat: Duration::from_secs(10),
                topology,
                scope: TopologyScope::Ingest,
            },
            background.clone(),
        );
        let (audit, audit_task) = AuditSink::start(
            link.clone(),
            events_exchange,
            usize::try_from(config.rejected_audit_buffer).unwrap_or(1024),
            Duration::from_millis(config.rejection_window_ms),
            background.clone(),
        );
        let state = Arc::new(AppState {
            pluggy_secrets: config.pluggy_webhook_secret.clone(),
            pluggy_signing_keys: config.pluggy_signing_key.clone(),
            pluggy_client_id: config.pluggy_client_id.clone(),
            livetip_tokens: config.livetip_webhook_token.clone(),
            link,
            ingest_exchange,
            audit,
            body_limit: config.body_limit_bytes,
            body_read_timeout: config.body_read_timeout(),
            draining: AtomicBool::new(false),
            trusted_proxies: config.trusted_proxies.clone(),
            allowed_sources: [
                (Provider::Pluggy, config.pluggy_allowed_ips.clone()),
                (Provider::LiveTip, config.livetip_allowed_ips.clone()),
            ],
            rate_limits: RateLimits::new(config.rate_limit_per_ip),
            in_flight: [
                (
                    Provider::Pluggy,
                    InFlight::new(config.max_in_flight as usize),
                ),
                (
                    Provider::LiveTip,
                    InFlight::new(config.max_in_flight as usize),
                ),
            ],
            body_budget: BodyBudget::new(config.body_budget_mib * 1024 * 1024),
            unverified: Unverified {
                global: InFlight::new(config.max_unverified() as usize),
                per_client: shared::connection::PerClient::new(
                    config.max_unverified_per_client as usize,
                ),
                body_timeout: Duration::from_millis(config.unverified_body_timeout_ms),
            },
        });
        // Idle clients' buckets are dropped so the limiter's memory follows live clients.
        let sweeper_state = state.clone();
        let sweeper_stop = background.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => sweeper_state.rate_limits.forget_idle(),
                    () = sweeper_stop.cancelled() => return,
                }
            }
        });
        let admin = Arc::new(AdminState {
            db,
            token: admin_token,
            development: config.is_development(),
            app: state.clone(),
            trace_ui: config.trace_ui_url.clone(),
        });
        tracing::info!(addr = %local_addr, admin = %admin_addr, "gateway listening");
        Ok(Self {
            listener,
            local_addr,
            admin_listener,
            admin_addr,
            admin,
            state,
            limits: ServerLimits {
                max_connections: usize::try_from(config.max_connections).unwrap_or(10_000),
                max_connections_per_client: usize::try_from(config.max_connections_per_client)
                    .unwrap_or(usize::MAX),
                per_client_exempt: config.trusted_proxies.clone(),
                idle_timeout: Duration::from_millis(config.connection_idle_timeout_ms),
                header_read_timeout: config.header_read_timeout(),
                shutdown_deadline: config.shutdown_deadline(),
            },
            readiness_delay: config.shutdown_readiness_delay(),
            background,
            tasks: vec![link_task, audit_task],
        })
    }

    /// The address actually bound (port 0 in tests becomes a real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Follows broker readiness (tests and health checks).
    pub fn broker_ready(&self) -> tokio::sync::watch::Receiver<bool> {
        self.state.link.ready_watch()
    }

    /// Serves until `shutdown` is cancelled, then drains: readiness turns false, the
    /// listener closes, in-flight requests finish (within the deadline), and the broker
    /// connection closes last. Returns whether every request finished in time.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> bool {
        let stop_accepting = CancellationToken::new();
        let state = self.state.clone();
        let (delay, stop) = (self.readiness_delay, stop_accepting.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            state.draining.store(true, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
            stop.cancel();
        });
        let admin = tokio::spawn(serve(
            self.admin_listener,
            AdminRoutes(self.admin.clone()),
            self.limits.clone(),
            stop_accepting.clone(),
        ));
        let drained = serve(
            self.listener,
            PublicRoutes(self.state.clone()),
            self.limits,
            stop_accepting,
        )
        .await;
        let _ = admin.await;
        if !drained {
            tracing::warn!("shutdown deadline passed with requests still in flight");
        }
        self.background.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        tracing::info!("gateway stopped");
        drained
    }
}
