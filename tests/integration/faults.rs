//! Faults under steady load, with the books checked at the end: every event answered
//! 2xx is stored exactly once, whatever broke in between. Each test breaks only what
//! it owns (a proxy, a private database, its own processes); the shared broker and
//! database keep running.

use std::time::Duration;

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
    let load = tokio::spawn(run_load(gw.addr, "cut", 600, LOAD_CLIENTS, PACE));
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.set(Mode::Down);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.set(Mode::Up);
    let ledger = load.await.unwrap();
    assert!(ledger.refused > 0, "the cut was felt by the senders");
    assert_books_balance(&db.connect().await, &ledger, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_in_a_loop_lose_nothing_and_apply_nothing_twice() {
    let db = TestDatabase::postgres().await;
    let conn = db.connect().await;
    shared::db::migrate(&conn).await.unwrap();
    let gw = spawn_gateway().await;
    let flags = [
        "--worker-livetip-concurrency",
        "8",
        "--worker-livetip-prefetch",
        "32",
    ];
    let load = tokio::spawn(run_load(gw.addr, "kill", 500, LOAD_CLIENTS, PACE));
    for _ in 0..4 {
        let mut worker = WorkerProcess::spawn(&db.url, &gw.topology, &flags);
        tokio::time::sleep(Duration::from_millis(700)).await;
        worker.signal("KILL");
        worker.wait_exit(Duration::from_secs(10)).await;
    }
    let ledger = load.await.unwrap();
    assert_eq!(
        ledger.refused, 0,
        "the gateway never depended on the workers"
    );
    let _survivor = WorkerProcess::spawn(&db.url, &gw.topology, &flags);
    assert_books_balance(&conn, &ledger, Duration::from_secs(60)).await;
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
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.resume();
    let ledger = load.await.unwrap();
    assert_eq!(ledger.refused, 0, "ingest never waits on the database");
    wait_reachable(&url).await;
    let conn = sea_orm::Database::connect(&url).await.unwrap();
    assert_books_balance(&conn, &ledger, Duration::from_secs(90)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_load_leaves_no_request_half_done() {
    let db = TestDatabase::postgres().await;
    let mut gateway = GatewayProcess::spawn(&[]).await;
    hookwire_tests::http_client::wait_ready("gateway", gateway.addr).await;
    let topology: &TestTopology = &gateway.topology;
    let worker = spawn_worker(&db.url, topology, &[]).await;
    worker.wait_consuming().await;
    let load = tokio::spawn(run_load(gateway.addr, "term", 600, LOAD_CLIENTS, PACE));
    tokio::time::sleep(Duration::from_millis(700)).await;
    gateway.signal("TERM");
    assert!(gateway.wait_exit(Duration::from_secs(30)).await.success());
    let ledger = load.await.unwrap();
    assert!(ledger.refused > 0, "requests after the stop were refused");
    assert_books_balance(&db.connect().await, &ledger, Duration::from_secs(60)).await;
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
    let load = tokio::spawn(run_load(gw.addr, "restart", 600, LOAD_CLIENTS, PACE));
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| rabbit.stop_app());
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| rabbit.start_app());
    let ledger = load.await.unwrap();
    assert!(ledger.refused > 0, "the restart was felt by the senders");
    assert_books_balance(&db.connect().await, &ledger, Duration::from_secs(60)).await;
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
        tokio::time::sleep(Duration::from_millis(600)).await;
        if round == 1 {
            tokio::task::block_in_place(|| pg.stop());
        }
        worker.signal("KILL");
        worker.wait_exit(Duration::from_secs(10)).await;
        if round == 1 {
            tokio::time::sleep(Duration::from_secs(1)).await;
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
    assert_books_balance(&conn, &ledger, Duration::from_secs(90)).await;
}
