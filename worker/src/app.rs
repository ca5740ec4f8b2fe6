//! Building and running a worker: what `main` and the tests both call.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shared::Provider;
use shared::amqp::{BrokerLink, LinkConfig, TopologyScope};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerSettings;
use crate::consumer::{self, QueueKind};
pub use crate::context::{Stats, WorkerContext};

/// A worker that could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Settings that contradict each other.
    #[error("{0}")]
    Settings(String),
    /// The database is unreachable or the URL is wrong.
    #[error("cannot open DATABASE_URL")]
    Database(#[source] sea_orm::DbErr),
    /// Migrations failed.
    #[error("database migrations failed")]
    Migrations(#[source] sea_orm::DbErr),
    /// The Pluggy client cannot be built.
    #[error("cannot set up the Pluggy API client")]
    Pluggy(#[source] crate::pluggy::PluggyError),
    /// The health listener cannot bind.
    #[error("cannot listen on WORKER_METRICS_ADDR {addr}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A connected worker, ready to consume.
#[derive(Debug)]
pub struct Worker {
    ctx: Arc<WorkerContext>,
    health: TcpListener,
    health_addr: SocketAddr,
    link_shutdown: CancellationToken,
    link_task: tokio::task::JoinHandle<()>,
}

impl Worker {
    /// Opens the database (migrating unless told not to), binds the health listener and
    /// starts the broker link. A broker that is down does not stop start-up.
    pub async fn build(settings: WorkerSettings, migrate: bool) -> Result<Self, StartupError> {
        settings.check().map_err(StartupError::Settings)?;
        shared::metrics::install();
        let db = shared::db::connect(settings.database_url(), settings.database_max_connections)
            .await
            .map_err(StartupError::Database)?;
        if migrate {
            shared::db::migrate(&db)
                .await
                .map_err(StartupError::Migrations)?;
        }
        let health = TcpListener::bind(settings.worker_metrics_addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: settings.worker_metrics_addr,
                source,
            })?;
        let health_addr = health.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.worker_metrics_addr,
            source,
        })?;
        let pluggy = match settings.pluggy() {
            Some(config) => {
                Some(crate::pluggy::PluggyClient::new(config).map_err(StartupError::Pluggy)?)
            }
            None => {
                tracing::warn!(
                    "PLUGGY_CLIENT_ID/PLUGGY_CLIENT_SECRET not set: Pluggy events are recorded, not synced"
                );
                None
            }
        };
        let topology = settings.topology();
        let link_shutdown = CancellationToken::new();
        let (link, link_task) = BrokerLink::start(
            LinkConfig {
                url: settings.amqp_url.clone(),
                connection_name: "hookwire-worker".to_owned(),
                publish_channels: 2,
                confirm_timeout: Duration::from_secs(10),
                heartbeat: Duration::from_secs(10),
                topology: topology.clone(),
                scope: TopologyScope::Worker,
            },
            link_shutdown.clone(),
        );
        let ctx = Arc::new(WorkerContext {
            db,
            link,
            topology,
            settings,
            worker_id: worker_id(),
            pluggy,
            stats: Stats::default(),
            consuming: AtomicUsize::new(0),
            item_syncs: crate::keyed_gate::KeyedGate::default(),
        });
        Ok(Self {
            ctx,
            health,
            health_addr,
            link_shutdown,
            link_task,
        })
    }

    /// Address of the health listener.
    pub fn health_addr(&self) -> SocketAddr {
        self.health_addr
    }

    /// Shared context (tests read counters from it).
    pub fn context(&self) -> Arc<WorkerContext> {
        self.ctx.clone()
    }

    /// Consumes until `shutdown`, then stops consuming, lets in-flight events finish
    /// (within the deadline) and closes the broker connection. Returns whether every
    /// in-flight event settled in time.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> bool {
        let health_stop = CancellationToken::new();
        let health = tokio::spawn(crate::health::serve(
            self.health,
            self.ctx.clone(),
            health_stop.clone(),
        ));
        let monitor = tokio::spawn(crate::queue_monitor::run(
            self.ctx.clone(),
            health_stop.clone(),
        ));
        let retention = tokio::spawn(crate::retention::run(
            self.ctx.db.clone(),
            self.ctx.settings.worker_log_retention,
            self.ctx.settings.worker_inbox_retention,
            self.ctx.settings.worker_retention_interval,
            health_stop.clone(),
        ));
        // Pluggy upkeep: the registration check at start-up, then the sweep for what
        // webhooks missed with a check after each (see `reconcile`).
        let upkeep = self.ctx.pluggy.as_ref().map(|client| {
            let registration = self
                .ctx
                .settings
                .backend_url
                .as_deref()
                .and_then(|base| crate::pluggy::webhooks::webhook_url(base).ok())
                .map(|url| url.to_string());
            tokio::spawn(crate::reconcile::every(
                self.ctx.db.clone(),
                client.clone(),
                crate::reconcile::Sweep {
                    item: None,
                    dry_run: false,
                    calls_per_minute: self.ctx.settings.pluggy_reconcile_calls_per_minute,
                },
                self.ctx.settings.pluggy_reconcile_interval,
                registration,
                health_stop.clone(),
            ))
        });
        let mut queues: Vec<(String, QueueKind)> = Provider::ALL
            .iter()
            .map(|p| (self.ctx.topology.work_queue(*p), QueueKind::Events(*p)))
            .collect();
        queues.push((self.ctx.topology.rejected_queue(), QueueKind::Rejected));
        let consumers: Vec<_> = queues
            .into_iter()
            .map(|(queue, kind)| {
                tokio::spawn(consumer::consume(
                    self.ctx.clone(),
                    queue,
                    kind,
                    shutdown.clone(),
                ))
            })
            .collect();
        tracing::info!(worker = %self.ctx.worker_id, health = %self.health_addr, "worker started");

        shutdown.cancelled().await;
        tracing::info!("stopping: no new deliveries; finishing in-flight events");
        let deadline = self.ctx.settings.worker_shutdown_deadline;
        let drained = tokio::time::timeout(deadline, async {
            for consumer in consumers {
                let _ = consumer.await;
            }
        })
        .await
        .is_ok();
        if !drained {
            tracing::warn!("shutdown deadline passed; unfinished deliveries go back to the broker");
        }
        self.link_shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.link_task).await;
        health_stop.cancel();
        let _ = health.await;
        let _ = monitor.await;
        let _ = retention.await;
        if let Some(upkeep) = upkeep {
            let _ = upkeep.await;
        }
        let stats = &self.ctx.stats;
        tracing::info!(
            processed = stats.processed.load(Ordering::Relaxed),
            ignored = stats.ignored.load(Ordering::Relaxed),
            duplicates = stats.duplicates.load(Ordering::Relaxed),
            retried = stats.retried.load(Ordering::Relaxed),
            dead_lettered = stats.dead_lettered.load(Ordering::Relaxed),
            "worker stopped"
        );
        drained
    }
}

fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}:{}", std::process::id())
}
