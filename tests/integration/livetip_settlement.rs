//! Money moves only for the right amount and currency, and every paid LiveTip payment
//! ends bound to exactly one completed payment, however the events race.

use std::collections::BTreeMap;
use std::time::Duration;

use hookwire_tests::database::TestDatabase;
use hookwire_tests::gateway::{GatewaySettings, spawn_gateway_with};
use hookwire_tests::livetip::{
    ADMIN_TOKEN, Stack, admin, data, expect_payment, livetip_event, logs_of, payment_row, settled,
    stack, stack_sqlite, wait_status,
};
use hookwire_tests::worker::{WorkerProcess, wait_finished};
use hookwire_tests::{metric_value, scrape};
use http::Method;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use shared::db::entities::livetip_binding::Entity as Bindings;
use shared::db::entities::payment::{self, Entity as Payments};

fn id_of(payment: &Value) -> String {
    payment["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_completes_only_for_its_amount_and_currency() {
    completes_only_for_its_amount_and_currency(stack(&[]).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_payment_completes_only_for_its_amount_and_currency() {
    completes_only_for_its_amount_and_currency(stack_sqlite(&[]).await).await;
}

async fn completes_only_for_its_amount_and_currency(s: Stack) {
    let order = id_of(&expect_payment(s.gw.admin, "alice", "500.00").await);

    // One cent with our id in the message: matched, never completed.
    livetip_event(s.gw.addr, "payment_confirmed", json!({"sender": "mallory", "amount": 0.01, "paymentId": "lt-cent", "paid": true, "content": format!("pedido {order}")})).await;
    let underpaid = wait_status(&s.conn, &order, "underpaid").await;
    assert_eq!(underpaid.received_amount.as_deref(), Some("0.01"));
    assert_eq!(underpaid.received_currency.as_deref(), Some("BRL"));
    assert!(underpaid.paid_at.is_none());
    let log = logs_of(&s.conn, "payment_update").await;
    assert_eq!((log.len(), log[0].status.as_str()), (1, "error"));
    assert_eq!(data(&log[0])["reason"], "amount_below_expected");
    assert_eq!(data(&log[0])["expected"]["amount"], "500.00");
    assert_eq!(data(&log[0])["received"]["amount"], "0.01");
    let shown = admin(s.gw.admin, Method::GET, &format!("/payments/{order}"), None).await;
    let shown = shown.json();
    assert_eq!(
        (
            shown["status"].as_str(),
            shown["amount"].as_str(),
            shown["receivedAmount"].as_str()
        ),
        (Some("underpaid"), Some("500.00"), Some("0.01")),
        "the admin API shows both amounts"
    );
    let listed = admin(s.gw.admin, Method::GET, "/payments?status=underpaid", None).await;
    assert_eq!(listed.json()["count"], 1, "the state is queryable");

    // Less by a fraction of a cent is still less: no tolerance below.
    let close = id_of(&expect_payment(s.gw.admin, "bruno", "10.00").await);
    livetip_event(s.gw.addr, "payment_confirmed", json!({"sender": "bruno", "amount": "9.999", "paymentId": "lt-close", "paid": true, "content": close})).await;
    wait_status(&s.conn, &close, "underpaid").await;

    // The right amount in another currency does not settle it either.
    let euro = id_of(&expect_payment(s.gw.admin, "carla", "20.00").await);
    livetip_event(s.gw.addr, "payment_confirmed", json!({"sender": "carla", "amount": 20, "currency": "usd", "paymentId": "lt-usd", "paid": true, "content": euro})).await;
    let other = wait_status(&s.conn, &euro, "underpaid").await;
    assert_eq!(other.received_currency.as_deref(), Some("USD"));

    // Found by an already-bound LiveTip id: the amount is checked there too.
    let bound = id_of(&expect_payment(s.gw.admin, "davi", "30.00").await);
    livetip_event(s.gw.addr, "payment_pending", json!({"sender": "davi", "amount": 30, "paymentId": "lt-bound", "paid": false, "content": bound})).await;
    settled(&s.conn, 4).await;
    livetip_event(
        s.gw.addr,
        "payment_confirmed",
        json!({"sender": "davi", "amount": 3, "paymentId": "lt-bound", "paid": true}),
    )
    .await;
    let by_livetip_id = wait_status(&s.conn, &bound, "underpaid").await;
    assert_eq!(by_livetip_id.matched_by.as_deref(), Some("external_id"));
    let reasons: Vec<Value> = logs_of(&s.conn, "payment_update")
        .await
        .iter()
        .map(|l| json!([data(l)["matchedBy"], data(l)["reason"]]))
        .collect();
    assert!(
        reasons.contains(&json!(["livetip_id", "amount_below_expected"])),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&json!(["external_id", "currency_differs"])),
        "{reasons:?}"
    );

    // Equal, and above: completed, the received amount kept.
    livetip_event(s.gw.addr, "payment_confirmed", json!({"sender": "alice", "amount": "500.00", "paymentId": "lt-full", "paid": true, "content": order})).await;
    let paid = wait_status(&s.conn, &order, "completed").await;
    assert_eq!(paid.livetip_payment_id.as_deref(), Some("lt-full"));
    assert_eq!(paid.received_amount.as_deref(), Some("500.00"));
    assert!(paid.paid_at.is_some());
    let tip = id_of(&expect_payment(s.gw.admin, "edu", "10.00").await);
    livetip_event(s.gw.addr, "payment_confirmed", json!({"sender": "edu", "amount": 10.5, "paymentId": "lt-more", "paid": true, "content": tip})).await;
    assert_eq!(
        wait_status(&s.conn, &tip, "completed")
            .await
            .received_amount
            .as_deref(),
        Some("10.50")
    );

    // A later copy of the underpayment (another body) still finds the order by its
    // binding: nothing is created, the order stays completed.
    livetip_event(s.gw.addr, "payment_confirmed", json!({"sender": "mallory", "amount": 0.01, "paymentId": "lt-cent", "paid": true, "content": format!("pedido {order}"), "read": true})).await;
    settled(&s.conn, 8).await;
    assert_eq!(payment_row(&s.conn, &order).await.status, "completed");
    assert_eq!(Payments::find().all(&s.conn).await.unwrap().len(), 5);

    // Counted when a payment became underpaid: the late copy changed nothing.
    let metrics = scrape(s.worker.health).await;
    let count = |reason: &str| {
        metric_value(
            &metrics,
            "hookwire_worker_payment_mismatches_total",
            &[&format!("reason=\"{reason}\"")],
        )
    };
    assert_eq!(count("amount_below_expected"), 3.0, "{metrics}");
    assert_eq!(count("currency_differs"), 1.0);
}

/// What every round checks: each LiveTip id that arrived paid is bound to exactly one
/// completed row, no pending payment of the sender is left, nothing else was made.
async fn assert_round(conn: &DatabaseConnection, sender: &str, livetip_ids: &[String]) {
    let rows: Vec<payment::Model> = Payments::find()
        .filter(payment::Column::UserName.eq(sender))
        .all(conn)
        .await
        .unwrap();
    for id in livetip_ids {
        let bound: Vec<&payment::Model> = rows
            .iter()
            .filter(|p| p.livetip_payment_id.as_deref() == Some(id) && p.status == "completed")
            .collect();
        assert_eq!(bound.len(), 1, "{sender}: {id} in {rows:#?}");
        let binding = Bindings::find_by_id(id.clone()).one(conn).await.unwrap();
        assert_eq!(binding.map(|b| b.payment_id), Some(bound[0].id.clone()));
    }
    assert_eq!(rows.len(), livetip_ids.len(), "{sender}: {rows:#?}");
    assert!(rows.iter().all(|p| p.status == "completed"), "{rows:#?}");
}

/// `rounds` rounds at once, each: two pending payments for one sender and 13.13, then
/// four distinct confirmations from that sender for that amount, all in flight
/// together. Every third round one confirmation names the newer payment in its
/// message; every third another was bound to the older one by an earlier pending
/// event, and must complete exactly that one.
async fn race(
    gw_addr: std::net::SocketAddr,
    admin_addr: std::net::SocketAddr,
    conn: &DatabaseConnection,
    rounds: usize,
) {
    let mut expected = BTreeMap::new();
    let mut first = Vec::new();
    for round in 0..rounds {
        let sender = format!("u{round}");
        let older = id_of(&expect_payment(admin_addr, &sender, "13.13").await);
        let newer = id_of(&expect_payment(admin_addr, &sender, "13.13").await);
        let ids: Vec<String> = (0..4).map(|i| format!("lt-{round}-{i}")).collect();
        if round % 3 == 2 {
            first.push((sender.clone(), ids[0].clone(), older.clone()));
        }
        expected.insert(sender, (ids, newer));
    }
    for (sender, id, older) in &first {
        livetip_event(gw_addr, "payment_pending", json!({"sender": sender, "amount": "13.13", "paymentId": id, "paid": false, "content": older})).await;
    }
    wait_finished(conn, first.len() as u64, Duration::from_secs(30)).await;
    let mut sends = Vec::new();
    for (round, (sender, (ids, newer))) in expected.iter().enumerate() {
        for (i, id) in ids.iter().enumerate() {
            let mut payment =
                json!({"sender": sender, "amount": 13.13, "paymentId": id, "paid": true});
            if round % 3 == 1 && i == 3 {
                payment["content"] = json!(format!("for {newer}"));
            }
            sends.push(tokio::spawn(livetip_event(
                gw_addr,
                "payment_confirmed",
                payment,
            )));
        }
    }
    for send in sends {
        send.await.unwrap();
    }
    wait_finished(
        conn,
        (first.len() + rounds * 4) as u64,
        Duration::from_secs(60),
    )
    .await;
    // (A confirmation naming the newer payment may find it taken by a concurrent
    // fallback match: then it is not a match, and that confirmation creates a row.)
    for (sender, (ids, _)) in &expected {
        assert_round(conn, sender, ids).await;
    }
    for (_, id, older) in &first {
        let matched = Payments::find_by_id(older.clone())
            .one(conn)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(matched.livetip_payment_id.as_deref(), Some(id.as_str()));
        assert_eq!(matched.status, "completed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_payments_in_one_worker_each_end_on_one_completed_row() {
    let s = stack(&[]).await;
    race(s.gw.addr, s.gw.admin, &s.conn, 21).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_racing_payments_each_end_on_one_completed_row() {
    let s = stack_sqlite(&[]).await;
    race(s.gw.addr, s.gw.admin, &s.conn, 21).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_payments_on_two_worker_processes_each_end_on_one_completed_row() {
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway_with(
        GatewaySettings {
            database_url: Some(db.url.clone()),
            ..GatewaySettings::default()
        }
        .arg("--admin-token", ADMIN_TOKEN),
    )
    .await;
    gw.wait_ready().await;
    let conn = db.connect().await;
    shared::db::migrate(&conn).await.unwrap();
    let _a = WorkerProcess::spawn(&db.url, &gw.topology, &[]);
    let _b = WorkerProcess::spawn(&db.url, &gw.topology, &[]);
    race(gw.addr, gw.admin, &conn, 21).await;
}
