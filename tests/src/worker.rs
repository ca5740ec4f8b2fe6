//! Workers for tests: in-process (same code as the binary) or as real processes.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use shared::db::entities::webhook_event::{self, Column, Entity as WebhookEvents};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use worker::app::WorkerContext;
use worker::{Cli, Worker};

use crate::broker::{TEST_RETRY_DELAYS, TestTopology};

/// The settings a test worker runs with, as command-line arguments.
pub fn worker_args(
    database_url: &str,
    amqp_url: &str,
    topology: &TestTopology,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "worker",
        "--database-url",
        database_url,
        "--amqp-url",
        amqp_url,
        "--amqp-prefix",
        topology.prefix(),
        "--worker-metrics-addr",
        "127.0.0.1:0",
        "--worker-retry-delays",
        TEST_RETRY_DELAYS,
        "--worker-inline-retry",
        "1s",
        "--worker-lease",
        "3s",
        "--worker-shutdown-deadline",
        "5s",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    // A flag in `extra` replaces the test default (clap refuses a flag given twice).
    for flag in extra.iter().filter(|a| a.starts_with("--")) {
        if let Some(at) = args.iter().position(|a| a == flag) {
            args.drain(at..at + 2);
        }
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// A worker running inside the test process.
#[derive(Debug)]
pub struct TestWorker {
    pub health: SocketAddr,
    pub ctx: Arc<WorkerContext>,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<bool>>,
}

/// Starts an in-process worker (migrating the database first).
pub async fn spawn_worker(
    database_url: &str,
    topology: &TestTopology,
    extra: &[&str],
) -> TestWorker {
    spawn_worker_on(database_url, &crate::amqp_url(), topology, extra).await
}

/// Same, with an explicit broker URL (a proxy, a private node).
pub async fn spawn_worker_on(
    database_url: &str,
    amqp_url: &str,
    topology: &TestTopology,
    extra: &[&str],
) -> TestWorker {
    crate::init_logs();
    let cli = Cli::try_parse_from(worker_args(database_url, amqp_url, topology, extra))
        .expect("worker settings");
    let built = Worker::build(cli.settings, true)
        .await
        .expect("worker starts");
    let health = built.health_addr();
    let ctx = built.context();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(built.run_until_stopped(shutdown.clone()));
    TestWorker {
        health,
        ctx,
        shutdown,
        handle: Some(handle),
    }
}

impl TestWorker {
    /// Waits until it consumes every queue.
    pub async fn wait_consuming(&self) {
        crate::eventually("worker consuming", Duration::from_secs(20), || async {
            self.ctx.is_consuming().then_some(())
        })
        .await;
    }

    pub async fn stop(mut self) -> bool {
        self.shutdown.cancel();
        match self.handle.take() {
            Some(handle) => handle.await.unwrap_or(false),
            None => false,
        }
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A worker as a real process.
#[derive(Debug)]
pub struct WorkerProcess {
    child: Child,
}

impl WorkerProcess {
    pub fn spawn(database_url: &str, topology: &TestTopology, extra: &[&str]) -> Self {
        Self::spawn_with(database_url, topology, extra, "127.0.0.1:0", &[])
    }

    /// With its health/metrics listener on `metrics_addr` and extra environment.
    pub fn spawn_with(
        database_url: &str,
        topology: &TestTopology,
        extra: &[&str],
        metrics_addr: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let log = if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        Self::spawn_logging_to(database_url, topology, extra, metrics_addr, env, log)
    }

    /// The same, its log lines (written to stderr) going to `log`.
    pub fn spawn_logging_to(
        database_url: &str,
        topology: &TestTopology,
        extra: &[&str],
        metrics_addr: &str,
        env: &[(&str, &str)],
        log: Stdio,
    ) -> Self {
        let mut args = worker_args(database_url, &crate::amqp_url(), topology, extra);
        if let Some(at) = args.iter().position(|a| a == "--worker-metrics-addr") {
            args[at + 1] = metrics_addr.to_owned();
        }
        let child = Command::new(crate::process::binary("test-worker"))
            .args(&args[1..])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self { child }
    }

    pub fn signal(&self, name: &str) {
        let pid = self.child.id().unwrap();
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .expect("worker exits in time")
            .unwrap()
    }
}

/// Rows in the inbox.
pub async fn event_rows(db: &DatabaseConnection) -> Vec<webhook_event::Model> {
    WebhookEvents::find().all(db).await.unwrap()
}

/// Inbox rows in a final state (processed, ignored or rejected).
pub async fn finished_count(db: &DatabaseConnection) -> u64 {
    WebhookEvents::find()
        .filter(Column::Status.is_in(["processed", "ignored", "rejected"]))
        .count(db)
        .await
        .unwrap_or(0)
}

/// Waits until `n` inbox rows are finished.
pub async fn wait_finished(db: &DatabaseConnection, n: u64, timeout: Duration) {
    crate::eventually(&format!("{n} events finished"), timeout, || async {
        (finished_count(db).await >= n).then_some(())
    })
    .await;
}
