//! The `worker` command: `run` (default), `migrate`, `dlq list`, `dlq replay`,
//! `pluggy setup-webhook`.
//!
//! In the library so end-to-end tests run the exact entry point as a process.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use shared::amqp::{BrokerLink, LinkConfig, TopologyScope};
use tokio_util::sync::CancellationToken;

use crate::app::Worker;
use crate::config::{Cli, Command, DlqCommand, PluggyCommand, WorkerSettings};
use crate::dlq;

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let _entered = runtime.enter();
    let mut telemetry = shared::telemetry::init(cli.settings.log_format, "hookwire-worker");
    let code = runtime.block_on(run(cli));
    telemetry.shutdown();
    code
}

async fn run(cli: Cli) -> ExitCode {
    let settings = cli.settings;
    match cli.command.unwrap_or(Command::Run { no_migrate: false }) {
        Command::Run { no_migrate } => run_worker(settings, !no_migrate).await,
        Command::Migrate => migrate(&settings).await,
        Command::Dlq(command) => dead_letters(settings, command).await,
        Command::Pluggy(command) => pluggy(settings, command).await,
    }
}

async fn run_worker(settings: WorkerSettings, migrate: bool) -> ExitCode {
    let worker = match Worker::build(settings, migrate).await {
        Ok(worker) => worker,
        Err(error) => return fail("worker failed to start", &error),
    };
    let shutdown = CancellationToken::new();
    shared::shutdown::cancel_on_signal(shutdown.clone());
    worker.run_until_stopped(shutdown).await;
    ExitCode::SUCCESS
}

async fn migrate(settings: &WorkerSettings) -> ExitCode {
    let db = match shared::db::connect(settings.database_url(), 2).await {
        Ok(db) => db,
        Err(error) => return fail("cannot open DATABASE_URL", &error),
    };
    match shared::db::migrate(&db).await {
        Ok(()) => {
            tracing::info!("migrations applied");
            ExitCode::SUCCESS
        }
        Err(error) => fail("migrations failed", &error),
    }
}

async fn dead_letters(settings: WorkerSettings, command: DlqCommand) -> ExitCode {
    // A refused replay is refused before anything connects.
    if let Some(filter) = replay_filter(&command)
        && let Err(refused) = filter.check()
    {
        eprintln!("{refused}");
        return ExitCode::from(2);
    }
    let topology = settings.topology();
    let stop = CancellationToken::new();
    let (link, task) = BrokerLink::start(
        LinkConfig {
            url: settings.amqp_url.clone(),
            connection_name: "hookwire-dlq".to_owned(),
            publish_channels: 1,
            confirm_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(10),
            topology: topology.clone(),
            scope: TopologyScope::Worker,
        },
        stop.clone(),
    );
    let code = if !link.wait_ready(Duration::from_secs(15)).await {
        tracing::error!("cannot reach the broker at AMQP_URL");
        ExitCode::FAILURE
    } else {
        match &command {
            DlqCommand::List { provider, limit } => {
                match dlq::list(&link, &topology, *provider, *limit).await {
                    Ok(letters) => {
                        for l in &letters {
                            println!(
                                "{}\t{}\tattempts={}\t{}\t{}\t{} bytes\trequest={}\t{}",
                                l.provider,
                                l.event,
                                l.attempts,
                                l.class,
                                l.dead_at,
                                l.bytes,
                                l.request_id,
                                l.reason
                            );
                        }
                        println!("{} dead letter(s)", letters.len());
                        ExitCode::SUCCESS
                    }
                    Err(error) => fail("dlq list failed", &error),
                }
            }
            DlqCommand::Replay { .. } => {
                let filter = replay_filter(&command).unwrap_or_default();
                match dlq::replay(&link, &topology, &filter).await {
                    Ok(report) => {
                        let verb = if filter.dry_run {
                            "would replay"
                        } else {
                            "replayed"
                        };
                        println!(
                            "{verb} {} dead letter(s); {} kept",
                            report.replayed, report.kept
                        );
                        ExitCode::SUCCESS
                    }
                    Err(error) => fail("dlq replay failed", &error),
                }
            }
        }
    };
    stop.cancel();
    let _ = task.await;
    code
}

/// The replay filter `command` asks for; `None` for a command that replays nothing.
fn replay_filter(command: &DlqCommand) -> Option<dlq::ReplayFilter> {
    match command {
        DlqCommand::Replay {
            provider,
            event,
            request_id,
            all,
            dry_run,
        } => Some(dlq::ReplayFilter {
            provider: *provider,
            event: event.clone(),
            request_id: request_id.clone(),
            all: *all,
            dry_run: *dry_run,
        }),
        DlqCommand::List { .. } => None,
    }
}

async fn pluggy(settings: WorkerSettings, command: PluggyCommand) -> ExitCode {
    match command {
        PluggyCommand::SetupWebhook {
            backend_url,
            webhook_secret,
            event,
            force,
        } => setup_webhook(settings, &backend_url, &webhook_secret, &event, force).await,
        PluggyCommand::Reconcile { item, dry_run } => reconcile(settings, item, dry_run).await,
    }
}

/// `worker pluggy reconcile`: one sweep, its report on stdout.
async fn reconcile(settings: WorkerSettings, item: Option<String>, dry_run: bool) -> ExitCode {
    use crate::reconcile::{self, Sweep};
    let client = match pluggy_client(&settings) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let db = match shared::db::connect(settings.database_url(), 4).await {
        Ok(db) => db,
        Err(error) => return fail("cannot open DATABASE_URL", &error),
    };
    let sweep = Sweep {
        item,
        dry_run,
        calls_per_minute: settings.pluggy_reconcile_calls_per_minute,
    };
    let outcome = reconcile::run(&db, &client, &sweep).await;
    reconcile::record(&outcome);
    match outcome {
        Ok(report) if report.skipped => {
            println!("another replica is sweeping; nothing done");
            ExitCode::SUCCESS
        }
        Ok(report) => {
            let verb = if dry_run {
                "would recover"
            } else {
                "recovered"
            };
            println!(
                "items checked {}; behind {}; deleted at Pluggy {}; failed {}; rows {verb} {}; API calls {}; {} ms",
                report.items_checked,
                report.items_behind,
                report.items_deleted,
                report.items_failed,
                report.rows_recovered,
                report.api_calls,
                report.duration.as_millis()
            );
            ExitCode::SUCCESS
        }
        Err(error) => fail("reconciliation failed", &error),
    }
}

async fn setup_webhook(
    settings: WorkerSettings,
    backend_url: &str,
    webhook_secret: &str,
    event: &str,
    force: bool,
) -> ExitCode {
    use crate::pluggy::webhooks::{self, Outcome};
    let url = match webhooks::webhook_url(backend_url) {
        Ok(url) => url,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let Some(secret) = shared::secret::SecretList::parse(webhook_secret)
        .iter()
        .next()
        .cloned()
    else {
        eprintln!("PLUGGY_WEBHOOK_SECRET is empty: Pluggy deliveries could not authenticate");
        return ExitCode::from(2);
    };
    let client = match pluggy_client(&settings) {
        Ok(client) => client,
        Err(code) => return code,
    };
    match webhooks::setup(&client, &url, event, &secret, force).await {
        Ok(Outcome::Created { id }) => println!("created webhook {id}: {event} -> {url}"),
        Ok(Outcome::Unchanged { id }) => println!(
            "webhook {id} already registered: {event} -> {url}; left unchanged (--force updates it)"
        ),
        Ok(Outcome::Updated { id }) => println!("updated webhook {id}: {event} -> {url}"),
        Err(error) => return fail("webhook setup failed", &error),
    }
    ExitCode::SUCCESS
}

/// The Pluggy client a subcommand calls the API with, or the exit code that says why
/// there is none.
fn pluggy_client(settings: &WorkerSettings) -> Result<crate::pluggy::PluggyClient, ExitCode> {
    let Some(config) = settings.pluggy() else {
        eprintln!("PLUGGY_CLIENT_ID and PLUGGY_CLIENT_SECRET are required to call Pluggy");
        return Err(ExitCode::from(2));
    };
    crate::pluggy::PluggyClient::new(config)
        .map_err(|error| fail("cannot build the Pluggy client", &error))
}

fn fail(what: &str, error: &dyn std::error::Error) -> ExitCode {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::error!(error = %chain, "{what}");
    ExitCode::FAILURE
}
