//! A dead worker's events are applied by the next one at once (or, for Pluggy syncs,
//! once its lease runs out); a live worker keeps its lease; one queue's slow work
//! never starves another's.

use std::collections::BTreeSet;
use std::time::Duration;

use hookwire_tests::database::TestDatabase;
use hookwire_tests::eventually;
use hookwire_tests::fake_pluggy::{FakePluggy, seed};
use hookwire_tests::gateway::{TestGateway, post_pluggy, spawn_gateway};
use hookwire_tests::livetip::livetip_event;
use hookwire_tests::process::free_port;
use hookwire_tests::worker::{WorkerProcess, event_rows, spawn_worker, wait_finished};
use hookwire_tests::{metric_value, scrape};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    Statement, TransactionTrait,
};
use serde_json::{Value, json};
use shared::db::entities::payment::Entity as Payments;
use shared::db::entities::webhook_event::{Column, Entity as WebhookEvents};

async fn livetip(gw: &TestGateway, id: &str) {
    let payment = json!({"sender": "fan_42", "amount": 5, "paymentId": id, "paid": true});
    livetip_event(gw.addr, "payment_confirmed", payment).await;
}

async fn pluggy(gw: &TestGateway, body: Value) {
    let response = post_pluggy(gw.addr, &body).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
}

/// Backends of this database waiting on a lock.
async fn lock_waiters(conn: &DatabaseConnection) -> i64 {
    let sql = "SELECT count(*)::bigint AS n FROM pg_stat_activity \
               WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// Holds every LiveTip transaction mid-way until the returned transaction ends: their
/// log inserts wait on this lock, after their inbox rows are written (uncommitted).
async fn hold_commits(conn: &DatabaseConnection) -> sea_orm::DatabaseTransaction {
    let holder = conn.begin().await.unwrap();
    holder
        .execute_unprepared("LOCK TABLE webhook_logs IN SHARE MODE")
        .await
        .unwrap();
    holder
}

/// Waits until every LiveTip event is in a worker's hands (its slots' prefetch) and
/// its batches wait on [`hold_commits`]' lock.
async fn wait_all_held(gw: &TestGateway, conn: &DatabaseConnection) {
    let queue = gw.topology.topology.work_queue(shared::Provider::LiveTip);
    eventually(
        "every event delivered, its batches mid-transaction",
        Duration::from_secs(30),
        || async {
            (hookwire_tests::broker::ready_messages(&queue).await == 0
                && lock_waiters(conn).await >= 1)
                .then_some(())
        },
    )
    .await;
}

/// A process's counter as its `/metrics` shows it (absent = 0).
async fn counter(metrics_port: u16, name: &str) -> f64 {
    let addr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    metric_value(&scrape(addr).await, name, &[])
}

async fn wait_metrics(metrics_port: u16) {
    let addr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    hookwire_tests::http_client::wait_ready("worker metrics", addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_in_flight_events_are_applied_at_their_first_redelivery() {
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let conn = db.connect().await;
    shared::db::migrate(&conn).await.unwrap();
    // Default lease and inline budget, as in production.
    let defaults = ["--worker-lease", "30s", "--worker-inline-retry", "30s"];

    let holder = hold_commits(&conn).await;
    let mut first = WorkerProcess::spawn(&db.url, &gw.topology, &defaults);
    for i in 0..20 {
        livetip(&gw, &format!("lt-{i}")).await;
    }
    wait_all_held(&gw, &conn).await;
    first.signal("KILL");
    assert!(!first.wait_exit(Duration::from_secs(10)).await.success());
    holder.rollback().await.unwrap();

    let port = free_port();
    let _second = WorkerProcess::spawn_with(
        &db.url,
        &gw.topology,
        &defaults,
        &format!("127.0.0.1:{port}"),
        &[],
    );
    wait_finished(&conn, 20, Duration::from_secs(60)).await;
    let rows = event_rows(&conn).await;
    assert_eq!(rows.len(), 20);
    for row in &rows {
        assert_eq!(
            (row.status.as_str(), row.attempts, row.last_error.as_deref()),
            ("processed", 1, None),
            "applied at the first attempt after the kill: {row:?}"
        );
    }
    let owners: BTreeSet<_> = rows.iter().filter_map(|r| r.processed_by.clone()).collect();
    assert_eq!(
        owners.len(),
        1,
        "the dead worker committed nothing: {owners:?}"
    );
    assert_eq!(Payments::find().count(&conn).await.unwrap(), 20);
    wait_metrics(port).await;
    assert_eq!(
        counter(port, "hookwire_worker_messages_retried_total").await,
        0.0,
        "no retry step was used"
    );
}

/// The worker commits a batch and dies before its ack reaches the broker: the broker
/// redelivers every event of it, and the next worker acknowledges them as duplicates
/// without a second effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_a_batchs_commit_and_its_ack_applies_nothing_twice() {
    use hookwire_tests::proxy::{Mode, TcpProxy};
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let conn = db.connect().await;
    shared::db::migrate(&conn).await.unwrap();
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap(), Mode::Up).await;
    let through_proxy = proxy.amqp_url();

    let holder = hold_commits(&conn).await;
    let mut first = WorkerProcess::spawn(&db.url, &gw.topology, &["--amqp-url", &through_proxy]);
    for i in 0..10 {
        livetip(&gw, &format!("acked-late-{i}")).await;
    }
    let queue = gw.topology.topology.work_queue(shared::Provider::LiveTip);
    wait_all_held(&gw, &conn).await;
    // Its acks will not reach the broker; then let the batches commit.
    proxy.set(Mode::Stall);
    holder.rollback().await.unwrap();
    wait_finished(&conn, 10, Duration::from_secs(30)).await;
    first.signal("KILL");
    assert!(!first.wait_exit(Duration::from_secs(10)).await.success());
    proxy.set(Mode::Down);

    let second = spawn_worker(&db.url, &gw.topology, &[]).await;
    eventually(
        "every copy redelivered and acknowledged as a duplicate",
        Duration::from_secs(30),
        || async {
            (second
                .ctx
                .stats
                .duplicates
                .load(std::sync::atomic::Ordering::Relaxed)
                == 10)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        second
            .ctx
            .stats
            .processed
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let rows = event_rows(&conn).await;
    assert_eq!(rows.len(), 10);
    for row in &rows {
        assert_eq!(
            (row.status.as_str(), row.attempts, row.duplicates),
            ("processed", 1, 1),
            "{row:?}"
        );
    }
    assert_eq!(Payments::find().count(&conn).await.unwrap(), 10);
    assert_eq!(hookwire_tests::broker::ready_messages(&queue).await, 0);
    assert!(second.stop().await);
}

fn pluggy_flags(fake: &FakePluggy, lease: &str) -> Vec<String> {
    let mut flags = fake.worker_flags();
    flags.extend(["--worker-lease".to_owned(), lease.to_owned()]);
    flags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_pluggy_sync_is_taken_over_when_its_lease_ends() {
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let conn = db.connect().await;
    shared::db::migrate(&conn).await.unwrap();
    let fake = FakePluggy::start().await;
    seed(
        &mut fake.state.lock().unwrap(),
        "item-k",
        "UPDATED",
        "SUCCESS",
    );
    fake.slow_down("/items/", Duration::from_secs(30));
    let flags = pluggy_flags(&fake, "2s");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();

    let mut first = WorkerProcess::spawn(&db.url, &gw.topology, &flags);
    pluggy(
        &gw,
        json!({"event": "item/updated", "eventId": "ev-k", "itemId": "item-k"}),
    )
    .await;
    eventually(
        "the first worker calls Pluggy",
        Duration::from_secs(30),
        || async { (fake.calls_to("/items/") == 1).then_some(()) },
    )
    .await;
    first.signal("KILL");
    assert!(!first.wait_exit(Duration::from_secs(10)).await.success());
    fake.state.lock().unwrap().slow = None;

    let port = free_port();
    let _second = WorkerProcess::spawn_with(
        &db.url,
        &gw.topology,
        &flags,
        &format!("127.0.0.1:{port}"),
        &[],
    );
    wait_finished(&conn, 1, Duration::from_secs(30)).await;
    let rows = event_rows(&conn).await;
    assert_eq!(
        (rows[0].status.as_str(), rows[0].attempts),
        ("processed", 2),
        "taken over from the dead worker's claim: {:?}",
        rows[0]
    );
    wait_metrics(port).await;
    assert_eq!(
        counter(port, "hookwire_worker_messages_retried_total").await,
        0.0,
        "the lease was waited out in process, not through a retry step"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_worker_renews_its_lease_while_pluggy_is_slow() {
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let conn = db.connect().await;
    shared::db::migrate(&conn).await.unwrap();
    let fake = FakePluggy::start().await;
    seed(
        &mut fake.state.lock().unwrap(),
        "item-r",
        "UPDATED",
        "SUCCESS",
    );
    // Three leases long: without renewal a second copy would take the event over.
    fake.slow_down("/items/", Duration::from_secs(9));
    let flags = pluggy_flags(&fake, "3s");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let _a = WorkerProcess::spawn(&db.url, &gw.topology, &flags);
    let _b = WorkerProcess::spawn(&db.url, &gw.topology, &flags);
    // Pluggy's retry of one event: same eventId, another body.
    pluggy(
        &gw,
        json!({"event": "item/updated", "eventId": "ev-r", "itemId": "item-r"}),
    )
    .await;
    pluggy(&gw, json!({"event": "item/updated", "eventId": "ev-r", "itemId": "item-r", "triggeredBy": "SYNC"})).await;
    eventually(
        "the copy is counted as a duplicate",
        Duration::from_secs(60),
        || async {
            WebhookEvents::find()
                .filter(Column::Duplicates.eq(1))
                .one(&conn)
                .await
                .ok()
                .flatten()
        },
    )
    .await;
    let rows = event_rows(&conn).await;
    assert_eq!(
        (rows.len(), rows[0].status.as_str(), rows[0].attempts),
        (1, "processed", 1)
    );
    assert_eq!(fake.calls_to("/items/"), 1, "Pluggy was asked once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livetip_events_are_applied_while_every_pluggy_slot_waits_on_pluggy() {
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let conn = db.connect().await;
    let fake = FakePluggy::start().await;
    for i in 0..12 {
        seed(
            &mut fake.state.lock().unwrap(),
            &format!("item-{i}"),
            "UPDATED",
            "SUCCESS",
        );
    }
    // Far longer than the LiveTip events need: they must not wait for a slot.
    fake.slow_down("/items/", Duration::from_secs(60));
    let flags = pluggy_flags(&fake, "30s");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let worker = spawn_worker(&db.url, &gw.topology, &flags).await;
    worker.wait_consuming().await;
    // More slow Pluggy events than the process has slots in all.
    for i in 0..12 {
        pluggy(&gw, json!({"event": "item/updated", "eventId": format!("ev-{i}"), "itemId": format!("item-{i}")})).await;
    }
    eventually(
        "every Pluggy slot waits on Pluggy",
        Duration::from_secs(20),
        || async { (fake.calls_to("/items/") == 4).then_some(()) },
    )
    .await;
    for i in 0..10 {
        livetip(&gw, &format!("lt-{i}")).await;
    }
    let livetip_done = || async {
        WebhookEvents::find()
            .filter(Column::Provider.eq("livetip"))
            .filter(Column::Status.eq("processed"))
            .count(&conn)
            .await
            .unwrap_or(0)
    };
    eventually(
        "the LiveTip events are applied",
        Duration::from_secs(30),
        || async { (livetip_done().await == 10).then_some(()) },
    )
    .await;
    let pluggy_done = WebhookEvents::find()
        .filter(Column::Provider.eq("pluggy"))
        .filter(Column::Status.eq("processed"))
        .count(&conn)
        .await
        .unwrap();
    assert_eq!(
        (pluggy_done, fake.calls_to("/items/")),
        (0, 4),
        "LiveTip went through while the four Pluggy slots were still waiting"
    );
}
