//! The product's binaries as real processes: signals, exit codes, start-up errors.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::broker::TestTopology;
use crate::gateway::{LIVETIP_TOKENS, PLUGGY_SECRETS};

/// A port that was free a moment ago (the process binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Path of a binary built by this package (`test-gateway`, ...).
pub fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/integration-<hash> -> target/<profile>/<name>
    exe.parent().and_then(|d| d.parent()).unwrap().join(name)
}

/// A gateway process on its own port and topology.
#[derive(Debug)]
pub struct GatewayProcess {
    pub addr: SocketAddr,
    pub topology: TestTopology,
    child: Child,
}

impl GatewayProcess {
    pub async fn spawn(extra_env: &[(&str, &str)]) -> Self {
        let log = if std::env::var_os("TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        Self::spawn_logging_to(extra_env, log).await
    }

    /// With its log lines (written to stderr) going to `log`.
    pub async fn spawn_logging_to(extra_env: &[(&str, &str)], log: Stdio) -> Self {
        let topology = TestTopology::new();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut command = Command::new(binary("test-gateway"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GATEWAY_ADDR", addr.to_string())
            .env("ADMIN_ADDR", "127.0.0.1:0")
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .env("AMQP_URL", crate::amqp_url())
            .env("AMQP_PREFIX", topology.prefix())
            .env("PLUGGY_WEBHOOK_SECRET", PLUGGY_SECRETS)
            .env("PLUGGY_SIGNING_KEY", crate::gateway::PLUGGY_KEYS)
            .env("LIVETIP_WEBHOOK_TOKEN", LIVETIP_TOKENS)
            .env("REJECTION_WINDOW_MS", "200")
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        let child = command.spawn().unwrap();
        Self {
            addr,
            topology,
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .expect("process did not exit in time")
            .unwrap()
    }
}
