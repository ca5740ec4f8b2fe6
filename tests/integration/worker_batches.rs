//! Batches: many events in one transaction, each effect under its own savepoint, one
//! `multiple` ack; a failure inside a batch undoes only that event's writes.

use std::collections::BTreeSet;
use std::time::Duration;

use hookwire_tests::broker::{header, ready_messages, take};
use hookwire_tests::database::TestDatabase;
use hookwire_tests::eventually;
use hookwire_tests::gateway::spawn_gateway;
use hookwire_tests::livetip::livetip_event;
use hookwire_tests::worker::{event_rows, spawn_worker};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde_json::json;
use sha2::Digest;
use shared::Provider;
use shared::db::entities::payment::Entity as Payments;
use shared::db::entities::webhook_log::{self, Entity as WebhookLogs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_event_in_a_batch_undoes_only_its_own_writes() {
    let db = TestDatabase::postgres().await;
    let conn = db.connect().await;
    shared::db::migrate(&conn).await.unwrap();
    // Ten pending payments the events will complete (matched by payer and amount, so
    // each effect updates its payment inside its savepoint). The database refuses to
    // change one payer's: a permanent error (SQLSTATE class 22) in the middle of one
    // event's effect.
    for i in 0..10 {
        conn.execute_unprepared(&format!(
            "INSERT INTO payments (id, user_name, amount, currency, status, created_at, updated_at) \
             VALUES ('HW-TEST000{i}', '{}', '10.00', 'BRL', 'pending', now(), now())",
            payer(i)
        ))
        .await
        .unwrap();
    }
    conn.execute_unprepared(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.user_name = 'poison' THEN \
           RAISE EXCEPTION 'refused by the test' USING ERRCODE = '22023'; \
         END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_poison BEFORE UPDATE ON payments \
         FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .await
    .unwrap();
    let gw = spawn_gateway().await;
    let worker = spawn_worker(
        &db.url,
        &gw.topology,
        // The default lease: the failed event is handled alone at once, not after it.
        &["--worker-livetip-concurrency", "1", "--worker-lease", "30s"],
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
        let sender = payer(i);
        livetip_event(
            gw.addr,
            "payment_confirmed",
            json!({"sender": sender, "amount": "10.00", "currency": "BRL",
                   "paymentId": format!("batch-{i}"), "paid": true}),
        )
        .await;
    }
    // A LiveTip payment nobody expected, confirmed twice with different bodies in the
    // same batch: the second finds the payment the first created (not yet written).
    for content in ["first", "second"] {
        livetip_event(
            gw.addr,
            "payment_confirmed",
            json!({"sender": "twice", "amount": "3.00", "currency": "BRL", "content": content,
                   "paymentId": "batch-twice", "paid": true}),
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
        "eleven events processed, one ignored, one dead",
        Duration::from_secs(20),
        || async {
            let rows = event_rows(&conn).await;
            let dead = rows.iter().filter(|r| r.status == "dead").count();
            let processed = rows.iter().filter(|r| r.status == "processed").count();
            let ignored = rows.iter().filter(|r| r.status == "ignored").count();
            (dead == 1 && processed == 11 && ignored == 1).then_some(rows)
        },
    )
    .await;
    // The second batch's events were marked done by one transaction, after the early
    // one.
    let stamps: BTreeSet<_> = rows
        .iter()
        .filter(|r| r.status != "dead")
        .map(|r| r.processed_at)
        .collect();
    assert_eq!(stamps.len(), 2, "two batches: {stamps:?}");
    let completed: BTreeSet<String> = Payments::find()
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.status == "completed")
        .map(|p| p.user_name)
        .collect();
    assert_eq!(
        completed.len(),
        11,
        "nine matched, the early one and the twice-confirmed one created"
    );
    assert!(!completed.contains("poison"));
    let twice = Payments::find()
        .filter(shared::db::entities::payment::Column::UserName.eq("twice"))
        .all(&conn)
        .await
        .unwrap();
    assert_eq!(twice.len(), 1, "one payment for one LiveTip payment");
    assert_eq!(twice[0].content.as_deref(), Some("first"));

    // The failed event kept none of its writes from inside the batch: its only log
    // entry is the `error` written when it was given up.
    let dead = rows.iter().find(|r| r.status == "dead").unwrap();
    // The batch's claim had written it as processed; giving the claim up undid that.
    assert!(
        dead.processed_at.is_none() && dead.processed_by.is_none(),
        "{dead:?}"
    );
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
    let letters = take(
        &gw.topology.topology.dead_letter_queue(Provider::LiveTip),
        1,
    )
    .await;
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
        assert_eq!(
            logs.len(),
            3,
            "received, updated or created, response: {logs:?}"
        );
    }

    // Everything was acknowledged: nothing goes back to the queue when the worker stops.
    assert!(worker.stop().await);
    assert_eq!(ready_messages(&queue).await, 0);
}

/// A batch's claim writes a new row as processed at once; rows it takes over (a failed
/// attempt) are finished by the batch's completion: both end the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_finishes_failed_attempts_it_takes_over_like_new_events() {
    let db = TestDatabase::postgres().await;
    let conn = db.connect().await;
    shared::db::migrate(&conn).await.unwrap();
    let payment = |i: usize| {
        json!({"sender": format!("again_{i}"), "amount": "5.00", "currency": "BRL",
               "paymentId": format!("again-{i}"), "paid": true})
    };
    // Two events whose first attempts failed (as a worker that gave up on them leaves
    // their rows), keyed as the worker keys LiveTip bodies.
    for i in 0..2 {
        let body = json!({"event": "payment_confirmed", "payment": payment(i)}).to_string();
        let key = format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(body.as_bytes()))
        );
        conn.execute_unprepared(&format!(
            "INSERT INTO webhook_events (id, provider, event, dedupe_key, payload, received_at, \
             status, attempts, duplicates, last_error, created_at, updated_at) \
             VALUES (gen_random_uuid(), 'livetip', 'payment_confirmed', '{key}', '\\x00', now(), \
             'retrying', 1, 0, 'the first attempt failed', now(), now())"
        ))
        .await
        .unwrap();
    }
    let gw = spawn_gateway().await;
    let worker = spawn_worker(&db.url, &gw.topology, &[]).await;
    worker.wait_consuming().await;
    for i in 0..3 {
        livetip_event(gw.addr, "payment_confirmed", payment(i)).await;
    }
    let rows = eventually(
        "three events processed",
        Duration::from_secs(20),
        || async {
            let rows = event_rows(&conn).await;
            (rows.iter().filter(|r| r.status == "processed").count() == 3).then_some(rows)
        },
    )
    .await;
    let mut attempts: Vec<i32> = rows.iter().map(|r| r.attempts).collect();
    attempts.sort_unstable();
    assert_eq!(attempts, [1, 2, 2], "{rows:?}");
    for row in &rows {
        assert!(
            row.last_error.is_none()
                && row.claim_token.is_none()
                && row.lease_until.is_none()
                && row.processed_at.is_some()
                && row.processed_by.is_some(),
            "finished like any processed event: {row:?}"
        );
    }
    let created = Payments::find().all(&conn).await.unwrap();
    assert_eq!(created.len(), 3, "each applied once: {created:?}");
    assert!(worker.stop().await);
}

/// An effect's savepoint is set only when the effect sends a statement; whatever the
/// mix, undoing a failed effect takes back its own writes and nothing of the others,
/// and the transaction goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_effect_undone_takes_back_only_its_own_statements() {
    use worker::savepoint::Effect;
    let db = TestDatabase::postgres().await;
    let conn = db.connect().await;
    conn.execute_unprepared("CREATE TABLE marks (mark int NOT NULL)")
        .await
        .unwrap();
    let txn = conn.begin().await.unwrap();
    let mut effect = Effect::new(&txn, true);
    let insert = |mark: &str| format!("INSERT INTO marks VALUES ({mark})");
    // 1: fails at its first statement (its savepoint came just before it).
    effect.next();
    assert!(effect.execute_unprepared(&insert("'one'")).await.is_err());
    effect.undo().await.unwrap();
    // 2: writes and stands.
    effect.next();
    effect.execute_unprepared(&insert("2")).await.unwrap();
    // 3: sends nothing and fails: nothing to take back, 2 stays.
    effect.next();
    effect.undo().await.unwrap();
    // 4: writes, then fails: its write goes, 2's stays.
    effect.next();
    effect.execute_unprepared(&insert("4")).await.unwrap();
    assert!(effect.execute_unprepared(&insert("NULL")).await.is_err());
    effect.undo().await.unwrap();
    // The batch records 4's failure on the transaction itself (as `release_in` does).
    txn.execute_unprepared(&insert("40")).await.unwrap();
    // 5: writes and stands; then the batch's own statement, on the transaction.
    effect.next();
    effect.execute_unprepared(&insert("5")).await.unwrap();
    txn.execute_unprepared(&insert("6")).await.unwrap();
    txn.commit().await.unwrap();
    let marks: Vec<i32> = conn
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT mark FROM marks ORDER BY mark",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get("", "mark").unwrap())
        .collect();
    assert_eq!(marks, [2, 5, 6, 40]);

    // Alone in its transaction, an effect has no savepoint: its failure is the
    // transaction's, which the caller rolls back whole.
    let txn = conn.begin().await.unwrap();
    let mut alone = Effect::new(&txn, false);
    alone.next();
    assert!(alone.execute_unprepared(&insert("NULL")).await.is_err());
    assert!(alone.undo().await.is_ok());
    assert!(
        txn.execute_unprepared(&insert("7")).await.is_err(),
        "aborted"
    );
    txn.rollback().await.unwrap();
}

fn payer(i: usize) -> String {
    if i == 4 {
        "poison".to_owned()
    } else {
        format!("fan_{i}")
    }
}
