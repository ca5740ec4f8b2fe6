//! A real gateway on port 0, inside the test process.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser as _;
use gateway::{Application, GatewayConfig};
use tokio_util::sync::CancellationToken;

use crate::broker::TestTopology;
use crate::http_client::get;

pub const PLUGGY_SECRETS: &str = "pluggy-old-secret,pluggy-new-secret";
pub const PLUGGY_OLD: &str = "pluggy-old-secret";
pub const PLUGGY_NEW: &str = "pluggy-new-secret";
/// HMAC keys for `X-Pluggy-Signature`, distinct from the header secrets.
pub const PLUGGY_KEYS: &str = "pluggy-old-key,pluggy-new-key";
pub const PLUGGY_KEY_OLD: &str = "pluggy-old-key";
pub const PLUGGY_KEY_NEW: &str = "pluggy-new-key";
pub const LIVETIP_TOKENS: &str = "2400613d5c2fb33d76e76c298d1dab4c,livetip-next-token";
pub const LIVETIP_TOKEN: &str = "2400613d5c2fb33d76e76c298d1dab4c";
pub const LIVETIP_NEXT: &str = "livetip-next-token";

/// A running gateway and the topology it publishes to.
#[derive(Debug)]
pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub topology: TestTopology,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<bool>>,
}

/// Builder for a test gateway's settings.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub amqp_url: String,
    pub pluggy_secrets: Option<String>,
    pub pluggy_keys: Option<String>,
    pub livetip_tokens: Option<String>,
    pub database_url: Option<String>,
    pub extra: Vec<String>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            amqp_url: crate::amqp_url(),
            pluggy_secrets: Some(PLUGGY_SECRETS.into()),
            pluggy_keys: Some(PLUGGY_KEYS.into()),
            livetip_tokens: Some(LIVETIP_TOKENS.into()),
            database_url: None,
            extra: Vec::new(),
        }
    }
}

impl GatewaySettings {
    pub fn arg(mut self, flag: &str, value: &str) -> Self {
        self.extra.push(flag.into());
        self.extra.push(value.into());
        self
    }
}

/// Starts a gateway with the default test secrets and waits until it is ready.
pub async fn spawn_gateway() -> TestGateway {
    let gateway = spawn_gateway_with(GatewaySettings::default()).await;
    gateway.wait_ready().await;
    gateway
}

/// Starts a gateway without waiting for the broker.
pub async fn spawn_gateway_with(settings: GatewaySettings) -> TestGateway {
    crate::init_logs();
    let topology = TestTopology::new();
    let mut args: Vec<String> = vec![
        "gateway".into(),
        "--gateway-addr".into(),
        "127.0.0.1:0".into(),
        "--amqp-url".into(),
        settings.amqp_url.clone(),
        "--amqp-prefix".into(),
        topology.prefix().into(),
        "--shutdown-deadline-secs".into(),
        "5".into(),
        // Rejections are written once per window: short here, so tests see them soon.
        "--rejection-window-ms".into(),
        "200".into(),
        "--admin-addr".into(),
        "127.0.0.1:0".into(),
        // Never the working directory's SQLite file: a test that reads the admin routes
        // passes its own database.
        "--database-url".into(),
        settings
            .database_url
            .clone()
            .unwrap_or_else(|| "postgres://nobody@127.0.0.1:1/none".into()),
    ];
    if let Some(secrets) = &settings.pluggy_secrets {
        args.extend(["--pluggy-webhook-secret".into(), secrets.clone()]);
    }
    if let Some(keys) = &settings.pluggy_keys {
        args.extend(["--pluggy-signing-key".into(), keys.clone()]);
    }
    if let Some(tokens) = &settings.livetip_tokens {
        args.extend(["--livetip-webhook-token".into(), tokens.clone()]);
    }
    args.extend(settings.extra.iter().cloned());
    let config = GatewayConfig::try_parse_from(args).expect("test gateway config");
    let app = Application::build(config).await.expect("gateway starts");
    let addr = app.local_addr();
    let admin = app.admin_addr();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestGateway {
        addr,
        admin,
        topology,
        shutdown,
        handle: Some(handle),
    }
}

impl TestGateway {
    pub fn queue(&self, provider: shared::Provider) -> String {
        self.topology.topology.work_queue(provider)
    }

    pub fn rejected_queue(&self) -> String {
        self.topology.topology.rejected_queue()
    }

    pub async fn readyz(&self) -> u16 {
        get(self.addr, "/readyz").await.status
    }

    pub async fn wait_ready(&self) {
        crate::eventually("gateway ready", Duration::from_secs(20), || async {
            (self.readyz().await == 200).then_some(())
        })
        .await;
    }

    /// Starts the drain without waiting for it.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Drains and returns whether every in-flight request finished in time.
    pub async fn stop(mut self) -> bool {
        self.shutdown.cancel();
        match self.handle.take() {
            Some(handle) => handle.await.unwrap_or(false),
            None => false,
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// POSTs a LiveTip delivery with the test token; the response, whatever it is.
pub async fn post_livetip(
    addr: SocketAddr,
    body: &serde_json::Value,
) -> crate::http_client::TestResponse {
    let headers = [
        ("content-type", "application/json"),
        ("x-livetip-webhook-secret-token", LIVETIP_TOKEN),
    ];
    crate::http_client::post(addr, "/webhook", &headers, body.to_string()).await
}

/// POSTs a Pluggy delivery authenticated by the secret header.
pub async fn post_pluggy(
    addr: SocketAddr,
    body: &serde_json::Value,
) -> crate::http_client::TestResponse {
    let headers = [
        ("content-type", "application/json"),
        ("x-pluggy-webhook-secret", PLUGGY_NEW),
    ];
    crate::http_client::post(
        addr,
        "/api/banking/pluggy/webhook/",
        &headers,
        body.to_string(),
    )
    .await
}
