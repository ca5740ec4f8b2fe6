//! Faults under steady load, with the books checked at the end: every event answered
//! 2xx is stored exactly once, whatever broke in between. Each test breaks only what
//! it owns (a proxy, a private database, its own processes); the shared broker and
//! database keep running.

use std::time::Duration;

use sea_orm::EntityTrait;

use hookwire_tests::books::{assert_books_balance, run_load};
use hookwire_tests::broker::TestTopology;
use hookwire_tests::database::{PrivatePostgres, TestDatabase, wait_reachable};
use hookwire_tests::gateway::{GatewaySettings, spawn_gateway, spawn_gateway_with};
use hookwire_tests::process::GatewayProcess;
use hookwire_tests::proxy::{Mode, TcpProxy};
use hookwire_tests::worker::{WorkerProcess, spawn_worker};

const LOAD_CLIENTS: usize = 8;
const PACE: Duration = Duration::from_millis(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_cut_between_gateway_and_broker_loses_nothing_answered() {
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap(), Mode::Up).await;
    let gw = spawn_gateway_with(GatewaySettings {
        amqp_url: proxy.amqp_url(),
        ..GatewaySettings::default()
    })
    .await;
    gw.wait_ready().await;
    let db = TestDatabase::postgres().await;
    let worker = spawn_worker(&db.url, &gw.topology, &[]).await;
    worker.wait_consuming().await;
    let load = tokio::spawn(run_load(gw.addr, "cut", 1_600, LOAD_CLIENTS, PACE));
    let conn = db.connect().await;
    wait_applied(&conn, 50).await;
    proxy.set(Mode::Down);
    wait_answered(gw.admin, "503", 1.0).await;
    proxy.set(Mode::Up);
    let ledger = load.await.unwrap();
    assert!(ledger.refused > 0, "the cut was felt by the senders");
    assert_books_balance(
        &db.connect().await,
        &hookwire_tests::amqp_url(),
        &gw.topology.topology,
        &ledger,
        Duration::from_secs(60),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_in_a_loop_lose_nothing_and_apply_nothing_twice() {
    workers_killed_in_a_loop(TestDatabase::postgres().await, "kill", 8, 1_200, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_delays_events_but_loses_none() {
    let pg = PrivatePostgres::start();
    let url = pg.url("postgres");
    wait_reachable(&url).await;
    let gw = spawn_gateway().await;
    let worker = spawn_worker(&url, &gw.topology, &[]).await;
    worker.wait_consuming().await;
    let load = tokio::spawn(run_load(gw.addr, "db", 400, LOAD_CLIENTS, PACE));
    // The outage starts once events flow, and lasts until some arrived during it.
    let conn = sea_orm::Database::connect(&url).await.unwrap();
    hookwire_tests::eventually(
        "events applied before the outage",
        Duration::from_secs(30),
        || async { (hookwire_tests::worker::finished_count(&conn).await >= 20).then_some(()) },
    )
    .await;
    drop(conn);
    let down_at = chrono::Utc::now();
    tokio::task::block_in_place(|| pg.stop());
    let received = worker
        .ctx
        .stats
        .processed
        .load(std::sync::atomic::Ordering::Relaxed);
    hookwire_tests::eventually(
        "events arrive during the outage",
        Duration::from_secs(30),
        || async {
            let consumed = hookwire_tests::metric_value(
                &hookwire_tests::scrape(worker.health).await,
                "hookwire_worker_messages_consumed_total",
                &[],
            );
            (consumed > received as f64 + 20.0).then_some(())
        },
    )
    .await;
    let up_at = chrono::Utc::now();
    tokio::task::block_in_place(|| pg.resume());
    let ledger = load.await.unwrap();
    assert_eq!(ledger.refused, 0, "ingest never waits on the database");
    wait_reachable(&url).await;
    let conn = sea_orm::Database::connect(&url).await.unwrap();
    assert_books_balance(
        &conn,
        &hookwire_tests::amqp_url(),
        &gw.topology.topology,
        &ledger,
        Duration::from_secs(90),
    )
    .await;
    // The worker met the outage: events received while the database was down were
    // applied after it came back.
    let met = shared::db::entities::webhook_event::Entity::find()
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.received_at > down_at && e.received_at < up_at)
        .filter(|e| e.processed_at.is_some_and(|p| p > up_at))
        .count();
    eprintln!("events received during the outage and applied after it: {met}");
    assert!(met > 0, "the outage hit work in flight");
    let failed = worker
        .ctx
        .stats
        .failed_attempts
        .load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("attempts that failed on the outage and were retried: {failed}");
    assert!(failed > 0, "the worker retried through the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_load_leaves_no_request_half_done() {
    let db = TestDatabase::postgres().await;
    // Readiness goes off at SIGTERM and the listener stays open two seconds more, so
    // whatever began before the signal reaches the gateway and must be answered.
    let mut gateway = GatewayProcess::spawn(&[("SHUTDOWN_READINESS_DELAY_MS", "500")]).await;
    hookwire_tests::http_client::wait_ready("gateway", gateway.addr).await;
    let topology = gateway.topology.topology.clone();
    let worker = spawn_worker(&db.url, &gateway.topology, &[]).await;
    worker.wait_consuming().await;
    let conn = db.connect().await;
    let load = tokio::spawn(run_load(gateway.addr, "term", 1_200, LOAD_CLIENTS, PACE));
    hookwire_tests::eventually("load applied", Duration::from_secs(60), || async {
        (hookwire_tests::worker::finished_count(&conn).await >= 150).then_some(())
    })
    .await;
    let signalled = tokio::time::Instant::now();
    gateway.signal("TERM");
    assert!(gateway.wait_exit(Duration::from_secs(30)).await.success());
    let ledger = load.await.unwrap();
    assert!(ledger.refused > 0, "requests after the stop were refused");
    let cut: Vec<&String> = ledger
        .started
        .iter()
        .filter(|(began, id)| *began < signalled && !ledger.accepted.contains(id))
        .map(|(_, id)| id)
        .collect();
    assert!(
        cut.is_empty(),
        "begun before SIGTERM but not answered 2xx: {cut:?}"
    );
    assert_books_balance(
        &db.connect().await,
        &hookwire_tests::amqp_url(),
        &topology,
        &ledger,
        Duration::from_secs(60),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_under_load_loses_nothing_answered() {
    let rabbit = hookwire_tests::broker::PrivateRabbit::start();
    let gw = spawn_gateway_with(GatewaySettings {
        amqp_url: rabbit.amqp_url(),
        ..GatewaySettings::default()
    })
    .await;
    gw.wait_ready().await;
    let db = TestDatabase::postgres().await;
    let worker =
        hookwire_tests::worker::spawn_worker_on(&db.url, &rabbit.amqp_url(), &gw.topology, &[])
            .await;
    worker.wait_consuming().await;
    let load = tokio::spawn(run_load(gw.addr, "restart", 1_200, LOAD_CLIENTS, PACE));
    wait_applied(&db.connect().await, 50).await;
    tokio::task::block_in_place(|| rabbit.stop_app());
    // Down until the gateway has noticed (readiness off), then back.
    hookwire_tests::eventually(
        "the gateway sees the broker gone",
        Duration::from_secs(60),
        || async { (gw.readyz().await == 503).then_some(()) },
    )
    .await;
    tokio::task::block_in_place(|| rabbit.start_app());
    let ledger = load.await.unwrap();
    assert!(ledger.refused > 0, "the restart was felt by the senders");
    assert_books_balance(
        &db.connect().await,
        &rabbit.amqp_url(),
        &gw.topology.topology,
        &ledger,
        Duration::from_secs(60),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_kills_and_a_database_restart_together_lose_nothing() {
    let pg = PrivatePostgres::start();
    let url = pg.url("postgres");
    wait_reachable(&url).await;
    let conn = sea_orm::Database::connect(&url).await.unwrap();
    shared::db::migrate(&conn).await.unwrap();
    drop(conn);
    let gw = spawn_gateway().await;
    let flags = [
        "--worker-livetip-concurrency",
        "8",
        "--worker-livetip-prefetch",
        "32",
    ];
    let load = tokio::spawn(run_load(gw.addr, "both", 400, LOAD_CLIENTS, PACE));
    for round in 0..3 {
        let mut worker = WorkerProcess::spawn(&url, &gw.topology, &flags);
        {
            let conn = sea_orm::Database::connect(&url).await.unwrap();
            let before = hookwire_tests::worker::finished_count(&conn).await;
            wait_applied(&conn, before + 10).await;
        }
        if round == 1 {
            tokio::task::block_in_place(|| pg.stop());
        }
        worker.signal("KILL");
        worker.wait_exit(Duration::from_secs(10)).await;
        if round == 1 {
            // Down while the gateway goes on accepting (it never needs the database).
            let accepted = answered(gw.admin, "200").await;
            wait_answered(gw.admin, "200", accepted + 20.0).await;
            tokio::task::block_in_place(|| pg.resume());
        }
    }
    let ledger = load.await.unwrap();
    assert_eq!(
        ledger.refused, 0,
        "ingest depends on neither workers nor database"
    );
    let _survivor = WorkerProcess::spawn(&url, &gw.topology, &flags);
    wait_reachable(&url).await;
    let conn = sea_orm::Database::connect(&url).await.unwrap();
    assert_books_balance(
        &conn,
        &hookwire_tests::amqp_url(),
        &gw.topology.topology,
        &ledger,
        Duration::from_secs(90),
    )
    .await;
}

/// The books must be able to fail: an event applied a second time past the inbox (as a
/// broken dedupe would) makes them refuse to balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_books_fail_when_an_event_is_applied_twice() {
    use sea_orm::{EntityTrait, TransactionTrait};
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let worker = spawn_worker(&db.url, &gw.topology, &[]).await;
    worker.wait_consuming().await;
    let ledger = run_load(gw.addr, "twice", 150, LOAD_CLIENTS, Duration::ZERO).await;
    let conn = db.connect().await;
    let url = hookwire_tests::amqp_url();
    assert_books_balance(
        &conn,
        &url,
        &gw.topology.topology,
        &ledger,
        Duration::from_secs(60),
    )
    .await;

    // Apply one finished event again, straight through the handler.
    let row = shared::db::entities::webhook_event::Entity::find()
        .one(&conn)
        .await
        .unwrap()
        .unwrap();
    let envelope = shared::Envelope {
        provider_event_id: row.provider_event_id.clone(),
        received_at: row.received_at,
        ..hookwire_tests::envelope(shared::Provider::LiveTip, &row.event, row.payload.clone())
    };
    let prepared = worker::handlers::prepare(&conn, None, &envelope)
        .await
        .unwrap();
    let txn = conn.begin().await.unwrap();
    let written = worker::logs::Buffer::default();
    let scope = worker::handlers::Scope {
        written: &written,
        livetip: None,
        created: None,
    };
    worker::handlers::apply(&txn, &envelope, row.id, prepared, &scope)
        .await
        .unwrap();
    written.flush(&txn).await.unwrap();
    txn.commit().await.unwrap();

    let books = hookwire_tests::books::settle(
        &conn,
        &url,
        &gw.topology.topology,
        Duration::from_secs(1),
        Duration::from_secs(30),
    )
    .await;
    let verdict = hookwire_tests::books::check(&ledger, &books);
    assert!(
        verdict.as_ref().is_err_and(|e| e.contains("applied twice")),
        "{verdict:?}"
    );
}

/// Starts a worker and SIGKILLs it once it has applied some events while load flows
/// (so it has deliveries in hand when it dies), `rounds` times. Returns how many
/// deliveries the workers received as redelivered: work a killed one had in hand and
/// the next one took over (read from each worker's metrics just before its kill).
async fn kill_loop(
    url: &str,
    topology: &TestTopology,
    flags: &[&str],
    conn: &sea_orm::DatabaseConnection,
    rounds: usize,
) -> f64 {
    let mut taken_over = 0.0;
    for _ in 0..rounds {
        let before = hookwire_tests::worker::finished_count(conn).await;
        let (mut worker, metrics) = worker_with_metrics(url, topology, flags);
        hookwire_tests::eventually(
            "the worker applies events",
            Duration::from_secs(60),
            || async {
                (hookwire_tests::worker::finished_count(conn).await >= before + 10).then_some(())
            },
        )
        .await;
        taken_over += redelivered(metrics).await;
        worker.signal("KILL");
        worker.wait_exit(Duration::from_secs(10)).await;
    }
    taken_over
}

async fn redelivered(metrics: std::net::SocketAddr) -> f64 {
    hookwire_tests::metric_value(
        &hookwire_tests::scrape(metrics).await,
        "hookwire_worker_messages_redelivered_total",
        &[],
    )
}

/// A worker process with its metrics listener on a port of its own.
fn worker_with_metrics(
    url: &str,
    topology: &TestTopology,
    flags: &[&str],
) -> (WorkerProcess, std::net::SocketAddr) {
    let port = hookwire_tests::process::free_port();
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let worker = WorkerProcess::spawn_with(url, topology, flags, &metrics.to_string(), &[]);
    (worker, metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_workers_killed_in_a_loop_lose_nothing_and_apply_nothing_twice() {
    workers_killed_in_a_loop(TestDatabase::sqlite(), "lite", 4, 800, 3).await;
}

/// Load from the gateway while workers are killed `rounds` times, then the books, and
/// proof that the kills hit work in flight (redelivered work taken over).
async fn workers_killed_in_a_loop(
    db: TestDatabase,
    tag: &'static str,
    concurrency: usize,
    events: usize,
    rounds: usize,
) {
    let conn = db.connect().await;
    shared::db::migrate(&conn).await.unwrap();
    let gw = spawn_gateway().await;
    // Prefetch equal to the concurrency: what a killed worker held, it had started.
    let slots = concurrency.to_string();
    let flags = [
        "--worker-livetip-concurrency",
        slots.as_str(),
        "--worker-livetip-prefetch",
        slots.as_str(),
    ];
    let load = tokio::spawn(run_load(gw.addr, tag, events, LOAD_CLIENTS, PACE));
    let mut taken_over = kill_loop(&db.url, &gw.topology, &flags, &conn, rounds).await;
    let ledger = load.await.unwrap();
    assert_eq!(
        ledger.refused, 0,
        "the gateway never depended on the workers"
    );
    let (_survivor, metrics) = worker_with_metrics(&db.url, &gw.topology, &flags);
    assert_books_balance(
        &conn,
        &hookwire_tests::amqp_url(),
        &gw.topology.topology,
        &ledger,
        Duration::from_secs(90),
    )
    .await;
    taken_over += redelivered(metrics).await;
    eprintln!("taken over after kills: {taken_over} deliveries");
    assert!(taken_over > 0.0, "the kills hit work in flight");
}

/// The broker killed with SIGKILL under load (no clean shutdown) and started again:
/// every event answered 2xx was confirmed on disk, so none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_under_load_loses_nothing_answered() {
    let mut rabbit = hookwire_tests::broker::PrivateRabbit::start();
    let gw = spawn_gateway_with(GatewaySettings {
        amqp_url: rabbit.amqp_url(),
        ..GatewaySettings::default()
    })
    .await;
    gw.wait_ready().await;
    let db = TestDatabase::postgres().await;
    let worker =
        hookwire_tests::worker::spawn_worker_on(&db.url, &rabbit.amqp_url(), &gw.topology, &[])
            .await;
    worker.wait_consuming().await;
    let conn = db.connect().await;
    let load = tokio::spawn(run_load(gw.addr, "kill9", 1_600, LOAD_CLIENTS, PACE));
    hookwire_tests::eventually("events flow", Duration::from_secs(30), || async {
        (hookwire_tests::worker::finished_count(&conn).await >= 100).then_some(())
    })
    .await;
    tokio::task::block_in_place(|| rabbit.kill_and_restart());
    let mut ledger = load.await.unwrap();
    assert!(ledger.refused > 0, "the kill was felt by the senders");
    // And after the restart, events flow again through the same gateway and worker.
    gw.wait_ready().await;
    let after = run_load(gw.addr, "kill9-after", 300, LOAD_CLIENTS, PACE).await;
    assert_eq!(after.refused, 0, "recovered: {after:?}");
    ledger.accepted.extend(after.accepted);
    ledger.sent.extend(after.sent);
    assert_books_balance(
        &conn,
        &rabbit.amqp_url(),
        &gw.topology.topology,
        &ledger,
        Duration::from_secs(60),
    )
    .await;
}

/// Waits until `n` events are finished in the inbox.
async fn wait_applied(conn: &sea_orm::DatabaseConnection, n: u64) {
    hookwire_tests::eventually(
        &format!("{n} events applied"),
        Duration::from_secs(60),
        || async { (hookwire_tests::worker::finished_count(conn).await >= n).then_some(()) },
    )
    .await;
}

/// LiveTip deliveries the gateway has answered with `status` so far (its metrics).
async fn answered(admin: std::net::SocketAddr, status: &str) -> f64 {
    hookwire_tests::metric_value(
        &hookwire_tests::scrape(admin).await,
        "hookwire_gateway_requests_total",
        &["route=\"/webhook\"", &format!("status=\"{status}\"")],
    )
}

/// Waits until at least `count` LiveTip deliveries were answered with `status`.
async fn wait_answered(admin: std::net::SocketAddr, status: &str, count: f64) {
    hookwire_tests::eventually(
        &format!("{count} answers {status}"),
        Duration::from_secs(60),
        || async { (answered(admin, status).await >= count).then_some(()) },
    )
    .await;
}
