//! Pluggy events through gateway, broker and worker into PostgreSQL, against a fake
//! Pluggy that paginates, rate-limits, fails once and expires keys.

use std::time::Duration;

use hookwire_tests::database::TestDatabase;
use hookwire_tests::fake_pluggy::{FakePluggy, seed};
use hookwire_tests::gateway::{PLUGGY_NEW, TestGateway, spawn_gateway};
use hookwire_tests::http_client::post;
use hookwire_tests::worker::{TestWorker, spawn_worker, wait_finished};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
use shared::db::entities::bank_account::Entity as Accounts;
use shared::db::entities::bank_transaction::Entity as Transactions;
use shared::db::entities::pluggy_item::Entity as Items;
use shared::db::entities::webhook_log::Entity as Logs;

async fn send(gw: &TestGateway, body: serde_json::Value) {
    let headers = [
        ("content-type", "application/json"),
        ("x-pluggy-webhook-secret", PLUGGY_NEW),
    ];
    let response = post(
        gw.addr,
        "/api/banking/pluggy/webhook/",
        &headers,
        body.to_string(),
    )
    .await;
    assert_eq!(response.status, 200);
}

async fn pluggy_worker(db: &TestDatabase, gw: &TestGateway, fake: &FakePluggy) -> TestWorker {
    let url = fake.url();
    let worker = spawn_worker(
        &db.url,
        &gw.topology,
        &[
            "--pluggy-client-id",
            "fake-client",
            "--pluggy-client-secret",
            "fake-secret",
            "--pluggy-api-url",
            &url,
        ],
    )
    .await;
    worker.wait_consuming().await;
    worker
}

async fn counts(conn: &DatabaseConnection) -> (usize, usize, usize) {
    (
        Items::find().all(conn).await.unwrap().len(),
        Accounts::find().all(conn).await.unwrap().len(),
        Transactions::find().all(conn).await.unwrap().len(),
    )
}

async fn item_row(conn: &DatabaseConnection, id: &str) -> shared::db::entities::pluggy_item::Model {
    Items::find_by_id(id.to_owned())
        .one(conn)
        .await
        .unwrap()
        .unwrap()
}

async fn account_row(
    conn: &DatabaseConnection,
    id: &str,
) -> shared::db::entities::bank_account::Model {
    Accounts::find_by_id(id.to_owned())
        .one(conn)
        .await
        .unwrap()
        .unwrap()
}

async fn transaction_row(
    conn: &DatabaseConnection,
    id: &str,
) -> shared::db::entities::bank_transaction::Model {
    Transactions::find_by_id(id.to_owned())
        .one(conn)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_update_syncs_every_page_through_rate_limits_and_a_5xx_and_a_repeat_changes_nothing()
 {
    let fake = FakePluggy::start().await;
    seed(&mut fake.state.lock().unwrap(), "it1", "UPDATED", "SUCCESS");
    fake.fail_next("/accounts", 429, Some(1));
    fake.fail_next("/v2/transactions", 500, None);
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let _worker = pluggy_worker(&db, &gw, &fake).await;
    let conn = db.connect().await;

    send(&gw, serde_json::json!({"event": "item/updated", "eventId": "e-1", "itemId": "it1", "triggeredBy": "SYNC"})).await;
    wait_finished(&conn, 1, Duration::from_secs(30)).await;
    assert_eq!(
        counts(&conn).await,
        (1, 3, 21),
        "three accounts over two pages, seven transactions each over three cursor pages"
    );
    let item = item_row(&conn, "it1").await;
    assert_eq!(
        (item.status.as_deref(), item.execution_status.as_deref()),
        (Some("UPDATED"), Some("SUCCESS"))
    );
    assert!(item.synced_at.is_some());
    let tx = transaction_row(&conn, "it1-acc0-tx0").await;
    assert_eq!(
        (tx.amount.as_str(), tx.transaction_type.as_deref()),
        ("-10.10", Some("DEBIT"))
    );
    let account = account_row(&conn, "it1-acc1").await;
    assert_eq!(
        (
            account.balance.as_deref(),
            account.sync_status.as_str(),
            account.is_active
        ),
        (Some("1234.56"), "ok", true)
    );
    assert_eq!(
        fake.state.lock().unwrap().auth_calls,
        1,
        "one key for every call"
    );

    // The same sync again (a new event, and a revoked key on the way): nothing changes.
    let before: Vec<_> = Transactions::find()
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t.updated_at))
        .collect();
    fake.state.lock().unwrap().keys.clear();
    send(
        &gw,
        serde_json::json!({"event": "item/updated", "eventId": "e-2", "itemId": "it1"}),
    )
    .await;
    wait_finished(&conn, 2, Duration::from_secs(30)).await;
    assert_eq!(counts(&conn).await, (1, 3, 21));
    let mut after: Vec<_> = Transactions::find()
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t.updated_at))
        .collect();
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(before, after, "a repeated sync writes nothing");
    assert_eq!(
        fake.state.lock().unwrap().auth_calls,
        2,
        "a 401 for the revoked key fetched a new one"
    );
}

/// Pluggy sends several `item/updated` for one item within seconds while it syncs: an
/// event received before one of our full syncs began reading Pluggy needs no sync of its
/// own. The burst arrives during the first sync, so the second one (handled after it,
/// one at a time per item) reads what the rest announce: two syncs, the other three
/// recorded (each its own row, processed) and counted as skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_item_updates_costs_one_sync() {
    let fake = FakePluggy::start().await;
    seed(
        &mut fake.state.lock().unwrap(),
        "burst",
        "UPDATED",
        "SUCCESS",
    );
    // A sync slow enough that the whole burst arrives while the first one runs.
    fake.slow_down("/items/", Duration::from_millis(1500));
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let worker = pluggy_worker(&db, &gw, &fake).await;
    let conn = db.connect().await;
    for i in 0..5 {
        send(
            &gw,
            serde_json::json!({"event": "item/updated", "eventId": format!("burst-{i}"),
                               "itemId": "burst", "triggeredBy": "SYNC"}),
        )
        .await;
    }
    wait_finished(&conn, 5, Duration::from_secs(30)).await;
    assert_eq!(fake.calls_to("/items/burst"), 2, "two syncs for the burst");
    assert_eq!(counts(&conn).await.0, 1);
    let skipped = Logs::find()
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .filter(|l| {
            l.data
                .as_deref()
                .is_some_and(|d| d.contains("\"syncSkipped\":true"))
        })
        .count();
    assert_eq!(skipped, 3, "the three others recorded as skipped syncs");
    let metrics = hookwire_tests::scrape(worker.health).await;
    assert_eq!(
        hookwire_tests::metric_value(&metrics, "hookwire_worker_pluggy_syncs_skipped_total", &[]),
        3.0
    );
    // An event received after the sync completed syncs again.
    send(
        &gw,
        serde_json::json!({"event": "item/updated", "eventId": "burst-late", "itemId": "burst"}),
    )
    .await;
    wait_finished(&conn, 6, Duration::from_secs(30)).await;
    assert_eq!(fake.calls_to("/items/burst"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_deletions_and_transaction_events_follow_the_guide() {
    let fake = FakePluggy::start().await;
    seed(
        &mut fake.state.lock().unwrap(),
        "it2",
        "UPDATED",
        "PARTIAL_SUCCESS",
    );
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let _worker = pluggy_worker(&db, &gw, &fake).await;
    let conn = db.connect().await;
    send(
        &gw,
        serde_json::json!({"event": "item/created", "eventId": "c-1", "itemId": "it2"}),
    )
    .await;
    wait_finished(&conn, 1, Duration::from_secs(30)).await;

    // The error is confirmed at Pluggy, and Pluggy's version of it is what is stored.
    {
        let mut state = fake.state.lock().unwrap();
        let item = state.items.get_mut("it2").unwrap();
        item["status"] = serde_json::json!("LOGIN_ERROR");
        item["error"] =
            serde_json::json!({"code": "INVALID_CREDENTIALS", "message": "Senha inválida"});
    }
    send(
        &gw,
        serde_json::json!({"event": "item/error", "eventId": "c-2", "itemId": "it2",
        "error": {"code": "INVALID_CREDENTIALS", "message": "whatever the payload says"}}),
    )
    .await;
    wait_finished(&conn, 2, Duration::from_secs(30)).await;
    let accounts = Accounts::find().all(&conn).await.unwrap();
    assert!(
        accounts
            .iter()
            .all(|a| a.sync_status == "error" && a.sync_error.as_deref() == Some("Senha inválida"))
    );

    // Deleted at Pluggy first: the worker refetches the ids and finds them gone.
    fake.state
        .lock()
        .unwrap()
        .transactions
        .retain(|t| t["id"] != "it2-acc0-tx1" && t["id"] != "it2-acc0-tx2");
    send(&gw, serde_json::json!({"event": "transactions/deleted", "eventId": "c-3", "itemId": "it2", "accountId": "it2-acc0", "transactionIds": ["it2-acc0-tx1", "it2-acc0-tx2"]})).await;
    // A new transaction appears at Pluggy; transactions/created fetches from the given time.
    fake.state.lock().unwrap().transactions.push(serde_json::json!({"id": "it2-acc1-new", "accountId": "it2-acc1",
        "date": "2025-02-14T10:00:00.000Z", "description": "Novo", "amount": 99.9, "currencyCode": "BRL", "type": "CREDIT",
        "status": "POSTED", "createdAt": "2025-02-14T10:00:00.000Z"}));
    send(&gw, serde_json::json!({"event": "transactions/created", "eventId": "c-4", "itemId": "it2", "accountId": "it2-acc1",
        "transactionsCreatedAtFrom": "2025-02-14T00:00:00.000Z"})).await;
    wait_finished(&conn, 4, Duration::from_secs(30)).await;
    let deleted: Vec<_> = Transactions::find()
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.deleted)
        .map(|t| t.id)
        .collect();
    assert_eq!(deleted.len(), 2);
    let new = transaction_row(&conn, "it2-acc1-new").await;
    assert_eq!(new.amount, "99.90");

    fake.state.lock().unwrap().items.remove("it2");
    send(
        &gw,
        serde_json::json!({"event": "item/deleted", "eventId": "c-5", "itemId": "it2"}),
    )
    .await;
    wait_finished(&conn, 5, Duration::from_secs(30)).await;
    let item = item_row(&conn, "it2").await;
    assert!(item.deleted_at.is_some());
    assert!(
        Accounts::find()
            .all(&conn)
            .await
            .unwrap()
            .iter()
            .all(|a| !a.is_active)
    );
    assert_eq!(counts(&conn).await.2, 22, "history kept");
    // Inactive accounts are not synced.
    let calls_before = fake.calls_to("/v2/transactions");
    send(&gw, serde_json::json!({"event": "transactions/created", "eventId": "c-6", "itemId": "it2", "accountId": "it2-acc1"})).await;
    wait_finished(&conn, 6, Duration::from_secs(30)).await;
    assert_eq!(fake.calls_to("/v2/transactions"), calls_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_syncing_one_item_at_once_leave_one_row_per_object() {
    let fake = FakePluggy::start().await;
    seed(&mut fake.state.lock().unwrap(), "it3", "UPDATED", "SUCCESS");
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let _a = pluggy_worker(&db, &gw, &fake).await;
    let _b = pluggy_worker(&db, &gw, &fake).await;
    let conn = db.connect().await;
    let sends: Vec<_> = (0..4)
        .map(|i| {
            let body = serde_json::json!({"event": "item/updated", "eventId": format!("k-{i}"), "itemId": "it3"});
            async move { body }
        })
        .collect();
    for body in sends {
        send(&gw, body.await).await;
    }
    wait_finished(&conn, 4, Duration::from_secs(60)).await;
    assert_eq!(counts(&conn).await, (1, 3, 21));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_events_records_and_the_page_based_fallback() {
    let fake = FakePluggy::start().await;
    {
        let mut s = fake.state.lock().unwrap();
        seed(&mut s, "it4", "UPDATED", "SUCCESS");
        s.v2_disabled = true;
        s.key_ttl_secs = 30;
    }
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let _worker = pluggy_worker(&db, &gw, &fake).await;
    let conn = db.connect().await;

    // account/created for an account we have never seen: fetched and stored.
    send(&gw, serde_json::json!({"event": "account/created", "eventId": "a-1", "itemId": "it4", "accountId": "it4-acc2"})).await;
    wait_finished(&conn, 1, Duration::from_secs(30)).await;
    let account = account_row(&conn, "it4-acc2").await;
    assert_eq!(
        (account.name.as_deref(), account.balance.as_deref()),
        (Some("Conta 2"), Some("1234.56"))
    );

    // account/updated after Pluggy's copy changed: the row follows.
    {
        let mut s = fake.state.lock().unwrap();
        let acc = s
            .accounts
            .iter_mut()
            .find(|a| a["id"] == "it4-acc2")
            .unwrap();
        acc["name"] = serde_json::json!("Conta Salário");
        acc["balance"] = serde_json::json!(10.05);
    }
    send(&gw, serde_json::json!({"event": "account/updated", "eventId": "a-2", "itemId": "it4", "accountId": "it4-acc2"})).await;
    wait_finished(&conn, 2, Duration::from_secs(30)).await;
    let account = account_row(&conn, "it4-acc2").await;
    assert_eq!(
        (account.name.as_deref(), account.balance.as_deref()),
        (Some("Conta Salário"), Some("10.05"))
    );

    // Events that only record: the item row remembers the last one, Pluggy is not called.
    let api_calls = fake.state.lock().unwrap().calls.len();
    for (i, event) in [
        "item/waiting_user_input",
        "item/login_succeeded",
        "connector/status_updated",
    ]
    .iter()
    .enumerate()
    {
        let mut body = serde_json::json!({"event": event, "eventId": format!("r-{i}")});
        if event.starts_with("item/") {
            body["itemId"] = serde_json::json!("it4");
        } else {
            body["id"] = serde_json::json!(201);
            body["data"] = serde_json::json!({"status": "UNSTABLE"});
        }
        send(&gw, body).await;
        wait_finished(&conn, 3 + i as u64, Duration::from_secs(30)).await;
    }
    assert_eq!(fake.state.lock().unwrap().calls.len(), api_calls);
    let item = item_row(&conn, "it4").await;
    assert_eq!(item.last_event.as_deref(), Some("item/login_succeeded"));
    let logs = Logs::find()
        .filter(shared::db::entities::webhook_log::Column::Provider.eq("pluggy"))
        .all(&conn)
        .await
        .unwrap();
    for event in [
        "item/waiting_user_input",
        "item/login_succeeded",
        "connector/status_updated",
    ] {
        assert!(
            logs.iter()
                .any(|l| l.event.as_deref() == Some(event) && l.status == "processed"),
            "{event} recorded"
        );
    }

    // No cursor API here: the whole item syncs through the page-based one.
    send(
        &gw,
        serde_json::json!({"event": "item/updated", "eventId": "a-6", "itemId": "it4"}),
    )
    .await;
    wait_finished(&conn, 6, Duration::from_secs(30)).await;
    assert_eq!(counts(&conn).await, (1, 3, 21));
    assert!(
        fake.calls_to("/transactions") >= 3,
        "one page-based listing per account"
    );

    // transactions/updated refetches exactly the listed ids.
    {
        let mut s = fake.state.lock().unwrap();
        let tx = s
            .transactions
            .iter_mut()
            .find(|t| t["id"] == "it4-acc1-tx3")
            .unwrap();
        tx["description"] = serde_json::json!("PIX 3 (estornado)");
        tx["status"] = serde_json::json!("PENDING");
    }
    send(
        &gw,
        serde_json::json!({"event": "transactions/updated", "eventId": "a-7", "itemId": "it4",
        "accountId": "it4-acc1", "transactionIds": ["it4-acc1-tx3"]}),
    )
    .await;
    wait_finished(&conn, 7, Duration::from_secs(30)).await;
    let tx = transaction_row(&conn, "it4-acc1-tx3").await;
    assert_eq!(
        (tx.description.as_deref(), tx.status.as_deref()),
        (Some("PIX 3 (estornado)"), Some("PENDING"))
    );
    assert_eq!(counts(&conn).await, (1, 3, 21));

    // Keys lived 30 s, inside the client's refresh margin: every call got a fresh key
    // before the old one expired, never a 401.
    let s = fake.state.lock().unwrap();
    let api_calls = s.calls.iter().filter(|c| !c.ends_with(" /auth")).count();
    assert_eq!(s.auth_calls, api_calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_events_about_one_entity_without_event_ids_are_two_events() {
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let worker = spawn_worker(&db.url, &gw.topology, &[]).await;
    worker.wait_consuming().await;
    // `id` names the connector, not the event: it went OFFLINE, then came back.
    for status in ["OFFLINE", "ONLINE"] {
        send(
            &gw,
            serde_json::json!({"event": "connector/status_updated", "id": "connector-201", "data": {"status": status}}),
        )
        .await;
    }
    let conn = db.connect().await;
    wait_finished(&conn, 2, Duration::from_secs(20)).await;
    let rows = hookwire_tests::worker::event_rows(&conn).await;
    assert_eq!(rows.len(), 2, "two inbox rows");
    assert!(
        rows.iter()
            .all(|r| r.dedupe_key.starts_with("sha256:") && r.status == "processed")
    );
    let effects = Logs::find()
        .filter(shared::db::entities::webhook_log::Column::Status.eq("processed"))
        .all(&conn)
        .await
        .unwrap();
    let statuses: Vec<String> = effects
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.data.as_deref()?).ok())
        .map(|d| d["data"]["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(statuses.len(), 2, "two effects: {statuses:?}");
    assert!(statuses.contains(&"OFFLINE".to_owned()) && statuses.contains(&"ONLINE".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_pluggy_contradicts_change_nothing_and_a_wrong_deactivation_heals() {
    let fake = FakePluggy::start().await;
    seed(&mut fake.state.lock().unwrap(), "it5", "UPDATED", "SUCCESS");
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let worker = pluggy_worker(&db, &gw, &fake).await;
    let conn = db.connect().await;
    send(
        &gw,
        serde_json::json!({"event": "item/updated", "eventId": "f-1", "itemId": "it5"}),
    )
    .await;
    wait_finished(&conn, 1, Duration::from_secs(30)).await;

    // Forged with a captured secret: Pluggy still serves the item, still lists the
    // transactions, and shows no error.
    for body in [
        serde_json::json!({"event": "item/deleted", "eventId": "f-2", "itemId": "it5"}),
        serde_json::json!({"event": "transactions/deleted", "eventId": "f-3", "itemId": "it5", "accountId": "it5-acc0", "transactionIds": ["it5-acc0-tx1"]}),
        serde_json::json!({"event": "item/error", "eventId": "f-4", "itemId": "it5", "error": {"code": "INVALID_CREDENTIALS", "message": "x"}}),
    ] {
        send(&gw, body).await;
    }
    let rejected =
        hookwire_tests::eventually("three events rejected", Duration::from_secs(30), || async {
            let rows = hookwire_tests::worker::event_rows(&conn).await;
            let rejected: Vec<_> = rows
                .into_iter()
                .filter(|r| r.status == "rejected")
                .collect();
            (rejected.len() == 3).then_some(rejected)
        })
        .await;
    assert!(rejected.iter().all(|r| r.attempts == 1));
    assert!(item_row(&conn, "it5").await.deleted_at.is_none());
    assert!(item_row(&conn, "it5").await.error.is_none());
    let accounts = Accounts::find().all(&conn).await.unwrap();
    assert!(
        accounts
            .iter()
            .all(|a| a.is_active && a.sync_status == "ok")
    );
    assert!(!transaction_row(&conn, "it5-acc0-tx1").await.deleted);
    let logs = Logs::find()
        .filter(shared::db::entities::webhook_log::Column::Status.eq("error"))
        .all(&conn)
        .await
        .unwrap();
    assert_eq!(logs.len(), 3, "each rejection is in the spec's log");
    let metrics = hookwire_tests::scrape(worker.health).await;
    assert_eq!(
        hookwire_tests::metric_value(&metrics, "hookwire_worker_pluggy_contradicted_total", &[]),
        3.0
    );

    // A deletion recorded before Pluggy was asked (applied unconfirmed by older code;
    // migration 8 marks such accounts `deleted`) is undone once a sync finds the item.
    conn.execute_unprepared(
        "UPDATE pluggy_items SET deleted_at = now() - interval '1 hour' WHERE id = 'it5'; \
         UPDATE bank_accounts SET is_active = false, sync_status = 'deleted' WHERE item_id = 'it5'",
    )
    .await
    .unwrap();
    send(
        &gw,
        serde_json::json!({"event": "item/updated", "eventId": "f-5", "itemId": "it5"}),
    )
    .await;
    wait_finished(&conn, 5, Duration::from_secs(30)).await;
    assert!(item_row(&conn, "it5").await.deleted_at.is_none());
    let accounts = Accounts::find().all(&conn).await.unwrap();
    assert_eq!(accounts.len(), 3);
    assert!(
        accounts
            .iter()
            .all(|a| a.is_active && a.sync_status == "ok"),
        "{accounts:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_deactivated_by_older_unconfirmed_deletions_are_marked_for_undoing() {
    use sea_orm_migration::MigratorTrait;
    let db = TestDatabase::postgres().await;
    let conn = db.connect().await;
    // The schema as the previous release left it, with what its unconfirmed deletion did.
    shared::db::migrations::Migrator::up(&conn, Some(7))
        .await
        .unwrap();
    conn.execute_unprepared(
        "INSERT INTO pluggy_items (id, deleted_at, created_at, updated_at) VALUES ('old', now(), now(), now()); \
         INSERT INTO pluggy_items (id, created_at, updated_at) VALUES ('live', now(), now()); \
         INSERT INTO bank_accounts (id, item_id, is_active, sync_status, created_at, updated_at) VALUES \
           ('a-old', 'old', false, 'ok', now(), now()), ('a-live', 'live', false, 'ok', now(), now())",
    )
    .await
    .unwrap();
    shared::db::migrate(&conn).await.unwrap();
    assert_eq!(account_row(&conn, "a-old").await.sync_status, "deleted");
    assert_eq!(
        account_row(&conn, "a-live").await.sync_status,
        "ok",
        "deactivated by choice, not by a deletion: left alone"
    );
}

/// `worker pluggy reconcile` with `args`, against the fake and `db`: its stdout, and
/// whether it succeeded.
async fn reconcile(fake: &FakePluggy, db: &TestDatabase, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(hookwire_tests::process::binary("test-worker"))
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("PLUGGY_CLIENT_ID", "fake-client")
        .env("PLUGGY_CLIENT_SECRET", "fake-secret")
        .env("PLUGGY_API_URL", fake.url())
        .env("PLUGGY_RECONCILE_CALLS_PER_MINUTE", "6000")
        .args(["pluggy", "reconcile"])
        .args(args)
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

/// A `transactions/created` that never arrived: the sweep brings exactly the missing
/// transactions and says so, a dry run first writes nothing, a second run finds
/// nothing; an item Pluggy no longer has is marked deleted; a 429 on the way is waited
/// out; two sweeps at once do the work once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_recovers_what_webhooks_missed() {
    let fake = FakePluggy::start().await;
    seed(&mut fake.state.lock().unwrap(), "rc1", "UPDATED", "SUCCESS");
    seed(
        &mut fake.state.lock().unwrap(),
        "rc-gone",
        "UPDATED",
        "SUCCESS",
    );
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let worker = pluggy_worker(&db, &gw, &fake).await;
    let conn = db.connect().await;
    for (i, item) in ["rc1", "rc-gone"].iter().enumerate() {
        send(&gw, serde_json::json!({"event": "item/updated", "eventId": format!("rc-{i}"), "itemId": item})).await;
    }
    wait_finished(&conn, 2, Duration::from_secs(30)).await;
    drop(worker);
    assert_eq!(counts(&conn).await, (2, 6, 42));

    // Pluggy changes rc1 (two new transactions); the webhook never reaches us. And
    // rc-gone is deleted at Pluggy, its webhook lost too.
    {
        let mut state = fake.state.lock().unwrap();
        // A change older than the sweep's grace (younger ones are left to their webhook).
        let then = chrono::Utc::now() - chrono::Duration::minutes(20);
        let stamp = then.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        for t in 0..2 {
            state
                .transactions
                .push(serde_json::json!({"id": format!("rc1-acc0-new{t}"),
                "accountId": "rc1-acc0", "date": stamp, "description": "PIX late", "amount": -5.5,
                "currencyCode": "BRL", "type": "DEBIT", "status": "POSTED", "createdAt": stamp}));
        }
        state.items.get_mut("rc1").unwrap()["lastUpdatedAt"] = serde_json::json!(stamp);
        state.items.remove("rc-gone");
    }
    fake.fail_next("/items/", 429, Some(1));

    let (ok, out) = reconcile(&fake, &db, &["--dry-run"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "items checked 2; behind 1; deleted at Pluggy 1; failed 0; rows would recover 2;"
        ),
        "{out}"
    );
    assert_eq!(counts(&conn).await, (2, 6, 42), "a dry run writes nothing");
    assert!(item_row(&conn, "rc-gone").await.deleted_at.is_none());

    let (ok, out) = reconcile(&fake, &db, &[]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("items checked 2; behind 1; deleted at Pluggy 1; failed 0; rows recovered 2;"),
        "{out}"
    );
    assert_eq!(counts(&conn).await, (2, 6, 44));
    assert!(transaction_row(&conn, "rc1-acc0-new1").await.amount == "-5.50");
    assert!(item_row(&conn, "rc-gone").await.deleted_at.is_some());

    let (ok, out) = reconcile(&fake, &db, &[]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("items checked 1; behind 0; deleted at Pluggy 0; failed 0; rows recovered 0;"),
        "nothing more, and the deleted item is no longer asked about: {out}"
    );

    // Two sweeps at once (a slow Pluggy keeps the first one busy): one does the work.
    fake.slow_down("/items/", Duration::from_millis(1500));
    let (first, second) = tokio::join!(reconcile(&fake, &db, &[]), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        reconcile(&fake, &db, &[]).await
    });
    assert!(first.0 && second.0, "{first:?} {second:?}");
    assert!(first.1.contains("items checked 1;"), "{}", first.1);
    assert!(
        second.1.contains("another replica is sweeping"),
        "{}",
        second.1
    );
}

/// The worker sweeps on its own every `PLUGGY_RECONCILE_INTERVAL` and counts what it
/// recovered (the metric an alert watches).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_sweeps_periodically() {
    let fake = FakePluggy::start().await;
    seed(&mut fake.state.lock().unwrap(), "per", "UPDATED", "SUCCESS");
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let conn = db.connect().await;
    let mut flags = fake.worker_flags();
    flags.extend(
        [
            "--pluggy-reconcile-interval",
            "1s",
            "--pluggy-reconcile-calls-per-minute",
            "6000",
        ]
        .map(String::from),
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let worker = hookwire_tests::worker::spawn_worker(&db.url, &gw.topology, &flags).await;
    worker.wait_consuming().await;
    send(
        &gw,
        serde_json::json!({"event": "item/updated", "eventId": "per-0", "itemId": "per"}),
    )
    .await;
    wait_finished(&conn, 1, Duration::from_secs(30)).await;
    {
        let mut state = fake.state.lock().unwrap();
        let stamp = (chrono::Utc::now() - chrono::Duration::minutes(20))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        state.transactions.push(
            serde_json::json!({"id": "per-acc1-late", "accountId": "per-acc1",
            "date": stamp, "description": "late", "amount": -1.0, "currencyCode": "BRL",
            "type": "DEBIT", "status": "POSTED", "createdAt": stamp}),
        );
        state.items.get_mut("per").unwrap()["lastUpdatedAt"] = serde_json::json!(stamp);
    }
    hookwire_tests::eventually(
        "the sweep recovers the row",
        Duration::from_secs(20),
        || async {
            let metrics = hookwire_tests::scrape(worker.health).await;
            (hookwire_tests::metric_value(
                &metrics,
                "hookwire_pluggy_reconcile_rows_recovered_total",
                &[],
            ) == 1.0)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        transaction_row(&conn, "per-acc1-late").await.amount,
        "-1.00"
    );
}
