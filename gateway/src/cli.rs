//! The `gateway` command: read config, start, stop on SIGTERM or Ctrl-C.
//!
//! Lives in the library so the end-to-end tests can run the exact same entry point
//! as a real process (signals and exit codes included).

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::{Application, GatewayConfig};

/// Runs the gateway until a signal; exit code 0 after a clean drain.
pub fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let config = GatewayConfig::parse();
    shared::telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: GatewayConfig) -> ExitCode {
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(error = %error, cause = ?std::error::Error::source(&error), "gateway failed to start");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    shared::shutdown::cancel_on_signal(shutdown.clone());
    app.run_until_stopped(shutdown).await;
    ExitCode::SUCCESS
}
