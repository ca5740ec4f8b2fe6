//! The `gateway` command: serve (default) until SIGTERM or Ctrl-C, or `simulate` an
//! event against a running gateway.
//!
//! Lives in the library so the end-to-end tests can run the exact same entry point
//! as a real process (signals and exit codes included).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::simulate::{self, PluggySimulation};
use crate::{Application, GatewayConfig};

/// hookwire gateway: verifies provider webhooks and answers 2xx only once RabbitMQ
/// has confirmed a persistent copy of the event.
#[derive(Clone, Debug, Parser)]
#[command(name = "gateway", version, about, long_about = None)]
struct Cli {
    /// What to do; serve when omitted.
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: GatewayConfig,
}

#[derive(Clone, Debug, Subcommand)]
enum Command {
    /// Send a realistic, signed test event to a running gateway and print its answer.
    #[command(subcommand)]
    Simulate(Simulation),
}

#[derive(Clone, Debug, Subcommand)]
enum Simulation {
    /// A Pluggy event, signed with the first `PLUGGY_SIGNING_KEY`.
    Pluggy(PluggySimulation),
}

/// How many tasks a tokio worker runs from its own queue between looks at the shared
/// one. A confirm is read on lapin's I/O thread, outside tokio, so the request it
/// completes waits in the shared queue while the worker's own queue fills with new HTTP
/// work; tokio's self-tuned default looks there every few dozen tasks. Looking every
/// fourth finishes confirmed requests first: in alternating A/B runs the gateway
/// answered 4.5 % more requests at saturation (ahead in 7 of 11 pairs) and had a lower
/// p99 at 2,000 requests/s (3 of 3), with no more CPU (BENCHMARKS.md, session 15).
const GLOBAL_QUEUE_INTERVAL: u32 = 4;

/// Runs the gateway until a signal (exit code 0 after a clean drain), or a subcommand.
pub fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .global_queue_interval(GLOBAL_QUEUE_INTERVAL)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let _entered = runtime.enter();
    let mut telemetry = shared::telemetry::init(cli.config.log_format, "hookwire-gateway");
    let code = match cli.command {
        None => runtime.block_on(serve(cli.config)),
        Some(Command::Simulate(Simulation::Pluggy(sim))) => {
            runtime.block_on(simulate_pluggy(&cli.config, &sim))
        }
    };
    telemetry.shutdown();
    code
}

async fn serve(config: GatewayConfig) -> ExitCode {
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

async fn simulate_pluggy(config: &GatewayConfig, sim: &PluggySimulation) -> ExitCode {
    let url = sim.url.clone().unwrap_or_else(|| {
        format!(
            "http://127.0.0.1:{}/api/banking/pluggy/webhook/",
            config.gateway_addr.port()
        )
    });
    let body = simulate::payload(sim, config.pluggy_client_id.as_deref());
    println!("POST {url}\n{body}");
    match simulate::send(&url, config.pluggy_signing_key.iter().next(), &body).await {
        Ok(answer) => {
            println!("{} {}", answer.status, answer.body);
            if (200..300).contains(&answer.status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(2)
        }
    }
}
