//! Worker binaries as operators run them: replicas, crashes, signals, migrations, CLI.

use std::collections::BTreeSet;
use std::time::Duration;

use hookwire_tests::broker::TestTopology;
use hookwire_tests::database::TestDatabase;
use hookwire_tests::eventually;
use hookwire_tests::gateway::{LIVETIP_TOKEN, spawn_gateway};
use hookwire_tests::http_client::post;
use hookwire_tests::process::binary;
use hookwire_tests::proxy::{Mode, TcpProxy};
use hookwire_tests::worker::{
    WorkerProcess, event_rows, finished_count, spawn_worker_on, wait_finished, worker_args,
};
use serde_json::json;

async fn send_livetip(addr: std::net::SocketAddr, ids: std::ops::Range<usize>) {
    let mut sends = Vec::new();
    for i in ids {
        sends.push(tokio::spawn(async move {
            let body = json!({"event": "payment_pending", "payment": {"sender": "s", "amount": 1, "paymentId": format!("p-{i}"), "paid": false}});
            let headers = [("content-type", "application/json"), ("x-livetip-webhook-secret-token", LIVETIP_TOKEN)];
            post(addr, "/webhook", &headers, body.to_string()).await.status
        }));
        if sends.len() >= 50 {
            for s in sends.drain(..) {
                assert_eq!(s.await.unwrap(), 200);
            }
        }
    }
    for s in sends {
        assert_eq!(s.await.unwrap(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_share_a_queue_and_store_every_event_once() {
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let conn = db.connect().await;
    shared::db::migrate(&conn).await.unwrap();
    send_livetip(gw.addr, 0..200).await;
    let _a = WorkerProcess::spawn(
        &db.url,
        &gw.topology,
        &[
            "--worker-livetip-concurrency",
            "2",
            "--worker-livetip-prefetch",
            "4",
        ],
    );
    let _b = WorkerProcess::spawn(
        &db.url,
        &gw.topology,
        &[
            "--worker-livetip-concurrency",
            "2",
            "--worker-livetip-prefetch",
            "4",
        ],
    );
    wait_finished(&conn, 200, Duration::from_secs(60)).await;
    let rows = event_rows(&conn).await;
    assert_eq!(rows.len(), 200);
    let workers: BTreeSet<_> = rows.iter().filter_map(|r| r.processed_by.clone()).collect();
    assert_eq!(workers.len(), 2, "both replicas took a share: {workers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_nothing_and_applies_nothing_twice() {
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let conn = db.connect().await;
    shared::db::migrate(&conn).await.unwrap();
    send_livetip(gw.addr, 0..300).await;
    let mut first = WorkerProcess::spawn(
        &db.url,
        &gw.topology,
        &[
            "--worker-livetip-concurrency",
            "8",
            "--worker-livetip-prefetch",
            "64",
        ],
    );
    eventually(
        "the first worker is mid-batch",
        Duration::from_secs(30),
        || async { (finished_count(&conn).await >= 40).then_some(()) },
    )
    .await;
    first.signal("KILL");
    let status = first.wait_exit(Duration::from_secs(10)).await;
    assert!(!status.success());
    let after_kill = finished_count(&conn).await;
    assert!(
        after_kill < 300,
        "killed before the end ({after_kill} done)"
    );

    let _second = WorkerProcess::spawn(&db.url, &gw.topology, &[]);
    wait_finished(&conn, 300, Duration::from_secs(60)).await;
    let rows = event_rows(&conn).await;
    assert_eq!(rows.len(), 300, "every event exactly once");
    let logs = <shared::db::entities::webhook_log::Entity as sea_orm::EntityTrait>::find()
        .all(&conn)
        .await
        .unwrap();
    for log_type in ["webhook", "payment_pending", "response"] {
        let n = logs.iter().filter(|l| l.log_type == log_type).count();
        assert_eq!(n, 300, "every effect exactly once ({log_type} entries)");
    }
    assert_eq!(logs.len(), 900);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_consuming_and_exits_zero() {
    let db = TestDatabase::postgres().await;
    let topology = TestTopology::new();
    let port = hookwire_tests::process::free_port();
    let health = format!("127.0.0.1:{port}");
    let mut worker = WorkerProcess::spawn_with(&db.url, &topology, &[], &health, &[]);
    // Ready: migrated, consuming every queue, database reachable.
    hookwire_tests::http_client::wait_ready("worker", health.parse().unwrap()).await;
    worker.signal("TERM");
    assert_eq!(
        worker.wait_exit(Duration::from_secs(10)).await.code(),
        Some(0)
    );
}

async fn migrate_at_once(db: TestDatabase) {
    let topology = TestTopology::new();
    let mut runs = Vec::new();
    for _ in 0..3 {
        let args = worker_args(&db.url, &hookwire_tests::amqp_url(), &topology, &[]);
        runs.push(
            tokio::process::Command::new(binary("test-worker"))
                .args(&args[1..])
                .arg("migrate")
                .output(),
        );
    }
    for run in runs {
        let output = run.await.unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let conn = db.connect().await;
    shared::db::migrate(&conn).await.unwrap();
    assert!(event_rows(&conn).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_migrating_at_once_leave_one_sound_schema_on_postgres() {
    migrate_at_once(TestDatabase::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_migrating_at_once_leave_one_sound_schema_on_sqlite() {
    migrate_at_once(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dlq_commands_list_and_refuse_an_unfiltered_replay() {
    let db = TestDatabase::postgres().await;
    let topology = TestTopology::new();
    let run = |extra: &[&str]| {
        let mut args = worker_args(&db.url, &hookwire_tests::amqp_url(), &topology, &[]);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        tokio::process::Command::new(binary("test-worker"))
            .args(args[1..].to_vec())
            .output()
    };
    let listed = run(&["dlq", "list"]).await.unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("0 dead letter(s)"));
    let refused = run(&["dlq", "replay"]).await.unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let dry = run(&["dlq", "replay", "--all", "--dry-run"]).await.unwrap();
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would replay 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_reconnects_after_losing_the_broker() {
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap(), Mode::Up).await;
    let worker = spawn_worker_on(&db.url, &proxy.amqp_url(), &gw.topology, &[]).await;
    worker.wait_consuming().await;
    let conn = db.connect().await;
    send_livetip(gw.addr, 0..5).await;
    wait_finished(&conn, 5, Duration::from_secs(20)).await;

    proxy.set(Mode::Down);
    eventually("worker notices", Duration::from_secs(15), || async {
        (!worker.ctx.is_consuming()).then_some(())
    })
    .await;
    send_livetip(gw.addr, 5..10).await;
    proxy.set(Mode::Up);
    worker.wait_consuming().await;
    wait_finished(&conn, 10, Duration::from_secs(30)).await;
    assert_eq!(event_rows(&conn).await.len(), 10);
}
