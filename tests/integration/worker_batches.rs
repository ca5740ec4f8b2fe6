//! Batches: many events in one transaction, each effect under its own savepoint, one
//! `multiple` ack; a failure inside a batch undoes only that event's writes.

use std::collections::BTreeSet;
use std::time::Duration;

use hookwire_tests::broker::{drain, header, ready_messages};
use hookwire_tests::database::TestDatabase;
use hookwire_tests::eventually;
use hookwire_tests::gateway::spawn_gateway;
use hookwire_tests::livetip::livetip_event;
use hookwire_tests::worker::{event_rows, spawn_worker};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde_json::json;
use shared::Provider;
use shared::db::entities::payment::Entity as Payments;
use shared::db::entities::webhook_log::{self, Entity as WebhookLogs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_event_in_a_batch_undoes_only_its_own_writes() {
    let db = TestDatabase::postgres().await;
    let conn = db.connect().await;
    shared::db::migrate(&conn).await.unwrap();
    // The database refuses one payer's payment: a permanent error (SQLSTATE class 22)
    // in the middle of one event's effect.
    conn.execute_unprepared(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.user_name = 'poison' THEN \
           RAISE EXCEPTION 'refused by the test' USING ERRCODE = '22023'; \
         END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_poison BEFORE INSERT ON payments \
         FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .await
    .unwrap();
    let gw = spawn_gateway().await;
    let worker = spawn_worker(
        &db.url,
        &gw.topology,
        &["--worker-livetip-concurrency", "1"],
    )
    .await;
    worker.wait_consuming().await;
    // The one slot's first batch waits on a lock while the next ten events reach the
    // slot's prefetch: they then form one batch, whatever the timing.
    let holder = conn.begin().await.unwrap();
    holder
        .execute_unprepared("LOCK TABLE webhook_logs IN SHARE MODE")
        .await
        .unwrap();
    let first = json!({"sender": "early", "amount": "10.00", "currency": "BRL",
                       "paymentId": "batch-early", "paid": true});
    livetip_event(gw.addr, "payment_confirmed", first).await;
    for i in 0..10 {
        let sender = if i == 4 {
            "poison".to_owned()
        } else {
            format!("fan_{i}")
        };
        livetip_event(
            gw.addr,
            "payment_confirmed",
            json!({"sender": sender, "amount": "10.00", "currency": "BRL",
                   "paymentId": format!("batch-{i}"), "paid": true}),
        )
        .await;
    }
    let queue = gw.topology.topology.work_queue(Provider::LiveTip);
    eventually(
        "every event delivered to the slot",
        Duration::from_secs(10),
        || async { (ready_messages(&queue).await == 0).then_some(()) },
    )
    .await;
    holder.rollback().await.unwrap();
    let rows = eventually(
        "ten events processed and one dead",
        Duration::from_secs(30),
        || async {
            let rows = event_rows(&conn).await;
            let dead = rows.iter().filter(|r| r.status == "dead").count();
            let processed = rows.iter().filter(|r| r.status == "processed").count();
            (dead == 1 && processed == 10).then_some(rows)
        },
    )
    .await;
    // The nine of the second batch were marked done by one statement of one
    // transaction, after the early one.
    let stamps: BTreeSet<_> = rows
        .iter()
        .filter(|r| r.status == "processed")
        .map(|r| r.processed_at)
        .collect();
    assert_eq!(stamps.len(), 2, "two batches: {stamps:?}");
    let payers: BTreeSet<String> = Payments::find()
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.user_name)
        .collect();
    assert_eq!(payers.len(), 10);
    assert!(!payers.contains("poison"));

    // The failed event kept none of its writes from inside the batch: its only log
    // entry is the `error` written when it was given up.
    let dead = rows.iter().find(|r| r.status == "dead").unwrap();
    let dead_logs: Vec<String> = WebhookLogs::find()
        .filter(webhook_log::Column::WebhookEventId.eq(dead.id))
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.log_type)
        .collect();
    assert!(dead_logs.is_empty(), "{dead_logs:?}");
    assert!(
        dead.last_error
            .as_deref()
            .is_some_and(|e| e.contains("refused by the test")),
        "{dead:?}"
    );
    let letters = drain(&gw.topology.topology.dead_letter_queue(Provider::LiveTip)).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        header(&letters[0], worker::dead_header::CLASS).as_deref(),
        Some("permanent")
    );
    for row in rows.iter().filter(|r| r.status == "processed") {
        let logs = WebhookLogs::find()
            .filter(webhook_log::Column::WebhookEventId.eq(row.id))
            .all(&conn)
            .await
            .unwrap();
        assert_eq!(logs.len(), 3, "received, created, response: {logs:?}");
    }

    // Everything was acknowledged: nothing goes back to the queue when the worker stops.
    assert!(worker.stop().await);
    assert_eq!(ready_messages(&queue).await, 0);
}
