//! A per-test slice of the shared broker, and ways to look inside its queues.

use lapin::options::{BasicGetOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use shared::amqp::Topology;

/// Retry steps the test workers use: short, so retries happen within a test.
pub const TEST_RETRY_DELAYS: &str = "300ms,1s";

/// A unique topology prefix whose exchange and queues are deleted on drop.
#[derive(Debug)]
pub struct TestTopology {
    pub topology: Topology,
    url: String,
}

impl TestTopology {
    pub fn new() -> Self {
        let prefix = format!(
            "hwtest-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        // The worker's retry steps belong to the topology too, or their queues would
        // outlive the test: hundreds of idle quorum queues starve a 2-core broker.
        let delays = TEST_RETRY_DELAYS
            .split(',')
            .map(|d| worker::config::parse_duration(d).unwrap())
            .collect();
        Self {
            topology: Topology::new(&prefix).unwrap().with_retry_delays(delays),
            url: crate::amqp_url(),
        }
    }

    pub fn prefix(&self) -> &str {
        self.topology.prefix()
    }
}

impl Default for TestTopology {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestTopology {
    fn drop(&mut self) {
        let topology = self.topology.clone();
        let url = self.url.clone();
        // Drop cannot await; a short-lived runtime on its own thread does the cleanup,
        // which also runs when the test panicked.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(conn) = Connection::connect(&url, ConnectionProperties::default()).await
                else {
                    return;
                };
                if let Ok(channel) = conn.create_channel().await {
                    for queue in topology.all_queues() {
                        let _ = channel
                            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                            .await;
                    }
                    for exchange in topology.all_exchanges() {
                        let _ = channel
                            .exchange_delete(
                                exchange.as_str().into(),
                                ExchangeDeleteOptions::default(),
                            )
                            .await;
                    }
                }
                let _ = conn.close(200, "cleanup".into()).await;
            });
        })
        .join();
    }
}

/// One message taken off a queue.
#[derive(Debug)]
pub struct Taken {
    pub routing_key: String,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
}

/// Takes every message currently in `queue` (acknowledging them).
pub async fn drain(queue: &str) -> Vec<Taken> {
    let conn = Connection::connect(&crate::amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let mut taken = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        taken.push(Taken {
            routing_key: message.delivery.routing_key.as_str().to_owned(),
            properties: message.delivery.properties.clone(),
            body: message.delivery.data.clone(),
        });
    }
    let _ = conn.close(200, "drained".into()).await;
    taken
}

/// Messages ready in `queue` (not counting those delivered and unacknowledged).
pub async fn ready_messages(queue: &str) -> u32 {
    let conn = Connection::connect(&crate::amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let declared = channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..lapin::options::QueueDeclareOptions::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let _ = conn.close(200, "counted".into()).await;
    declared.message_count()
}

/// Waits until `queue` has yielded `count` messages in total, and returns them.
pub async fn take(queue: &str, count: usize) -> Vec<Taken> {
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while all.len() < count && tokio::time::Instant::now() < deadline {
        all.extend(drain(queue).await);
        if all.len() < count {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    all
}

/// A header of a taken message, as text.
pub fn header(taken: &Taken, name: &str) -> Option<String> {
    let headers = taken.properties.headers().as_ref()?;
    match headers
        .inner()
        .get(&lapin::types::ShortString::from(name))?
    {
        lapin::types::AMQPValue::LongString(s) => {
            Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
        }
        lapin::types::AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        lapin::types::AMQPValue::LongUInt(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// Publishes one message with a confirm, as some other producer would.
pub async fn publish_raw(
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) {
    let conn = Connection::connect(&crate::amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            lapin::options::BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            properties.with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        confirm,
        lapin::Confirmation::Ack(None),
        "published and routed"
    );
    let _ = conn.close(200, "published".into()).await;
}

/// A broker link for test-side tooling (dead-letter listing and replay).
pub async fn tool_link(
    topology: &Topology,
) -> (
    shared::amqp::BrokerLink,
    tokio_util::sync::CancellationToken,
) {
    let stop = tokio_util::sync::CancellationToken::new();
    let (link, _task) = shared::amqp::BrokerLink::start(
        shared::amqp::LinkConfig {
            url: crate::amqp_url(),
            connection_name: "hookwire-test-tool".into(),
            publish_channels: 1,
            confirm_timeout: std::time::Duration::from_secs(5),
            heartbeat: std::time::Duration::from_secs(10),
            topology: topology.clone(),
            scope: shared::amqp::TopologyScope::Worker,
        },
        stop.clone(),
    );
    assert!(link.wait_ready(std::time::Duration::from_secs(10)).await);
    (link, stop)
}

/// A RabbitMQ node of the test's own, on free ports in a temp dir, for faults that
/// stop the broker (about 20-30 s to start). Never the shared node.
#[derive(Debug)]
pub struct PrivateRabbit {
    pub port: u16,
    dist_port: u16,
    node: String,
    dir: std::path::PathBuf,
    child: std::process::Child,
}

impl PrivateRabbit {
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// A node with extra `rabbitmq.conf` lines (e.g. `max_message_size = 65536`).
    ///
    /// A node that does not boot is started again on fresh ports and a fresh name (at
    /// most three times), its log printed: its ports are picked free and bound later,
    /// and on a loaded machine another socket can take one meanwhile (seen once in CI:
    /// `rabbit_is_not_running` 25 s into a boot). What the tests check starts after.
    pub fn start_with(config: &str) -> Self {
        let mut failures = Vec::new();
        for attempt in 1..=3 {
            let rabbit = Self::boot(config);
            let pid_file = format!("{}/pid", rabbit.dir.display());
            match rabbit.try_ctl(&["wait", &pid_file, "--timeout", "90"]) {
                Ok(()) => return rabbit,
                Err(error) => {
                    eprintln!(
                        "private RabbitMQ node {} did not boot (attempt {attempt} of 3): {error}\n{}",
                        rabbit.node,
                        rabbit.log_tail()
                    );
                    failures.push(error);
                }
            }
        }
        panic!("no private RabbitMQ node booted in three attempts: {failures:?}");
    }

    /// The last lines of the node's own log, for a node that failed.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.dir.join("log"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            text.push_str(&format!("--- {}\n", entry.path().display()));
            text.push_str(&lines[lines.len().saturating_sub(30)..].join("\n"));
            text.push('\n');
        }
        text
    }

    fn boot(config: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let node = format!("hwtest{}@localhost", &id[..8]);
        let dir = std::env::temp_dir().join(format!("hookwire-rabbit-{}", &id[..12]));
        std::fs::create_dir_all(&dir).unwrap();
        let port = crate::process::free_port();
        let dist_port = crate::process::free_port();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        // The system config pins the shared node's listener; ours names its own.
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n{config}"),
        )
        .unwrap();
        let status = std::process::Command::new("chown")
            .args(["-R", "rabbitmq", dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
        let child = Self::spawn_node(&node, &dir, port, dist_port);
        Self {
            port,
            dist_port,
            node,
            dir,
            child,
        }
    }

    fn spawn_node(
        node: &str,
        dir: &std::path::Path,
        port: u16,
        dist_port: u16,
    ) -> std::process::Child {
        use std::process::{Command, Stdio};
        let d = dir.display().to_string();
        Command::new("runuser")
            .args(["-u", "rabbitmq", "--", "env", "HOME=/var/lib/rabbitmq"])
            .arg(format!("RABBITMQ_NODENAME={node}"))
            .arg("RABBITMQ_NODE_IP_ADDRESS=127.0.0.1")
            .arg(format!("RABBITMQ_NODE_PORT={port}"))
            .arg(format!("RABBITMQ_DIST_PORT={dist_port}"))
            .arg(format!("RABBITMQ_MNESIA_BASE={d}/mnesia"))
            .arg(format!("RABBITMQ_LOG_BASE={d}/log"))
            .arg(format!("RABBITMQ_ENABLED_PLUGINS_FILE={d}/enabled_plugins"))
            .arg(format!("RABBITMQ_PID_FILE={d}/pid"))
            .arg(format!("RABBITMQ_CONFIG_FILE={d}/rabbitmq.conf"))
            .arg("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn wait_started(&self) {
        let pid_file = format!("{}/pid", self.dir.display());
        self.ctl(&["wait", &pid_file, "--timeout", "90"]);
    }

    /// Kills the node's Erlang VM with SIGKILL (no clean shutdown, as a crash or an
    /// OOM kill would), then starts it again on the same data and ports.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.child = Self::spawn_node(&self.node, &self.dir, self.port, self.dist_port);
        self.wait_started();
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f?heartbeat=5", self.port)
    }

    /// The Erlang node name (`hwtest…@localhost`).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Joins `seed`'s cluster (the nodes share the `rabbitmq` user's Erlang cookie).
    pub fn join(&self, seed: &PrivateRabbit) {
        self.ctl(&["stop_app"]);
        self.ctl(&["join_cluster", &seed.node]);
        self.ctl(&["start_app"]);
    }

    /// Kills the node's Erlang VM with SIGKILL and leaves it down.
    pub fn kill(&mut self) {
        let pid = std::fs::read_to_string(self.dir.join("pid")).unwrap_or_default();
        let pid = pid.trim();
        assert!(!pid.is_empty(), "the node wrote its pid");
        let killed = std::process::Command::new("kill")
            .args(["-9", pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.dir.join("pid"));
    }

    /// The node (of those listed) leading the quorum queue `queue`, as this node's
    /// cluster sees it.
    pub fn quorum_leader(&self, queue: &str) -> Option<String> {
        let output = std::process::Command::new("rabbitmqctl")
            .args(["-q", "-n", &self.node, "list_queues", "name", "leader"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .find(|(name, _)| *name == queue)
            .map(|(_, leader)| leader.trim().to_owned())
    }

    /// Stops the broker application (connections dropped, data kept).
    pub fn stop_app(&self) {
        self.ctl(&["stop_app"]);
    }

    pub fn start_app(&self) {
        self.ctl(&["start_app"]);
    }

    /// Sets a policy on the queues matching `pattern` (a JSON `definition`).
    pub fn set_policy(&self, name: &str, pattern: &str, definition: &str) {
        self.ctl(&[
            "set_policy",
            "--apply-to",
            "queues",
            name,
            pattern,
            definition,
        ]);
    }

    pub fn clear_policy(&self, name: &str) {
        self.ctl(&["clear_policy", name]);
    }

    /// Sets the memory alarm's threshold (`absolute 1MB` raises the alarm at once:
    /// the node blocks publishing connections; `0.4` is the default).
    pub fn set_memory_watermark(&self, args: &[&str]) {
        let mut all = vec!["set_vm_memory_high_watermark"];
        all.extend_from_slice(args);
        self.ctl(&all);
    }

    fn ctl(&self, args: &[&str]) {
        if let Err(error) = self.try_ctl(args) {
            panic!("{error}");
        }
    }

    fn try_ctl(&self, args: &[&str]) -> Result<(), String> {
        let output = std::process::Command::new("rabbitmqctl")
            .args(["-q", "-n", &self.node])
            .args(args)
            .output()
            .map_err(|e| format!("rabbitmqctl {args:?}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "rabbitmqctl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "-n", &self.node, "stop"])
            .output();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
