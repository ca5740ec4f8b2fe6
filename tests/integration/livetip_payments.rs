//! LiveTip payments: matching in the specification's order, the forward-only status
//! lifecycle (also under concurrent, out-of-order deliveries), and the spec's logs.

use std::time::Duration;

use hookwire_tests::livetip::{
    data, expect_payment, livetip_event, logs_of, payment_row, settled, stack, wait_status,
};
use sea_orm::EntityTrait;
use serde_json::json;
use shared::db::entities::payment::Entity as Payments;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_id_in_the_message_matches_then_livetips_id_does() {
    let s = stack(&[]).await;
    let expected = expect_payment(s.gw.admin, "ana", "25.50").await;
    let id = expected["id"].as_str().unwrap().to_owned();
    assert_eq!(
        expected["message"],
        id.as_str(),
        "the payer writes our id in the message"
    );

    livetip_event(s.gw.addr, "payment_confirmed", json!({"sender": "someone", "amount": 25.5, "paymentId": "lt-1", "paid": true, "content": format!("valeu! {} abraço", id.to_lowercase())})).await;
    let paid = wait_status(&s.conn, &id, "completed").await;
    assert_eq!(paid.matched_by.as_deref(), Some("external_id"));
    assert_eq!(paid.livetip_payment_id.as_deref(), Some("lt-1"));
    assert!(paid.paid_at.is_some());
    assert_eq!(paid.amount, "25.50");
    let update = logs_of(&s.conn, "payment_update").await;
    assert_eq!((update.len(), update[0].status.as_str()), (1, "success"));
    assert_eq!(data(&update[0])["matchedBy"], "external_id");
    assert_eq!(
        (
            data(&update[0])["from"].as_str(),
            data(&update[0])["to"].as_str()
        ),
        (Some("pending"), Some("completed"))
    );

    // A late failure for the same LiveTip payment finds it by LiveTip's id and changes nothing.
    livetip_event(
        s.gw.addr,
        "payment_failed",
        json!({"sender": "x", "amount": 1, "paymentId": "lt-1", "paid": false}),
    )
    .await;
    settled(&s.conn, 2).await;
    assert_eq!(payment_row(&s.conn, &id).await.status, "completed");
    let failed = logs_of(&s.conn, "payment_failed").await;
    assert_eq!((failed.len(), failed[0].status.as_str()), (1, "ignored"));
    assert_eq!(data(&failed[0])["matchedBy"], "livetip_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_glued_inside_another_token_is_not_a_match() {
    let s = stack(&[]).await;
    let id = expect_payment(s.gw.admin, "caio", "5.00").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    livetip_event(s.gw.addr, "payment_confirmed", json!({"sender": "dora", "amount": 7, "paymentId": "lt-glued", "paid": true, "content": format!("X{id}Y")})).await;
    settled(&s.conn, 1).await;
    assert_eq!(payment_row(&s.conn, &id).await.status, "pending");
    let all = Payments::find().all(&s.conn).await.unwrap();
    let created = all.iter().find(|p| p.id != id).unwrap();
    assert_eq!(
        (created.matched_by.as_deref(), created.status.as_str()),
        (Some("created"), "completed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_matches_payer_and_amount_among_pending_oldest_first() {
    let s = stack(&[]).await;
    let older = expect_payment(s.gw.admin, "bia", "10.00").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let newer = expect_payment(s.gw.admin, "bia", "10.00").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_amount = expect_payment(s.gw.admin, "bia", "12.00").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_user = expect_payment(s.gw.admin, "beto", "10.00").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    livetip_event(
        s.gw.addr,
        "payment_confirmed",
        json!({"sender": "bia", "amount": "10.005", "paymentId": "lt-a", "paid": true}),
    )
    .await;
    let first = wait_status(&s.conn, &older, "completed").await;
    assert_eq!(first.matched_by.as_deref(), Some("amount_user"));
    let log = logs_of(&s.conn, "payment_update").await;
    assert_eq!(
        data(&log[0])["candidates"],
        2,
        "the choice among several is logged"
    );

    // Within the spec's window but below the amount: matched, and underpaid (money
    // moves only for at least the expected amount).
    livetip_event(
        s.gw.addr,
        "payment_confirmed",
        json!({"sender": "bia", "amount": 9.995, "paymentId": "lt-b", "paid": true}),
    )
    .await;
    let short = wait_status(&s.conn, &newer, "underpaid").await;
    assert_eq!(short.matched_by.as_deref(), Some("amount_user"));
    assert_eq!(short.received_amount.as_deref(), Some("9.995"));
    // 0.02 away: no match; a new payment is created instead.
    livetip_event(
        s.gw.addr,
        "payment_confirmed",
        json!({"sender": "bia", "amount": "12.02", "paymentId": "lt-c", "paid": true}),
    )
    .await;
    settled(&s.conn, 3).await;
    assert_eq!(payment_row(&s.conn, &other_amount).await.status, "pending");
    assert_eq!(payment_row(&s.conn, &other_user).await.status, "pending");
    assert_eq!(logs_of(&s.conn, "payment_create").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_events_create_only_for_paid_confirmations() {
    let s = stack(&[]).await;
    livetip_event(
        s.gw.addr,
        "payment_pending",
        json!({"sender": "eva", "amount": 3, "paymentId": "lt-p", "paid": false}),
    )
    .await;
    livetip_event(
        s.gw.addr,
        "payment_confirmed",
        json!({"sender": "eva", "amount": "3.00", "paymentId": "lt-q", "paid": false}),
    )
    .await;
    livetip_event(s.gw.addr, "payment_confirmed", json!({"sender": "eva", "amount": "4.00", "paymentId": "lt-r", "paid": true, "currency": "btc", "content": "gg"})).await;
    livetip_event(
        s.gw.addr,
        "tip_refunded",
        json!({"sender": "eva", "amount": 4, "paymentId": "lt-r", "paid": true}),
    )
    .await;
    settled(&s.conn, 4).await;
    let payments = Payments::find().all(&s.conn).await.unwrap();
    assert_eq!(payments.len(), 1);
    let created = &payments[0];
    assert_eq!(
        (
            created.user_name.as_str(),
            created.amount.as_str(),
            created.currency.as_str(),
            created.status.as_str(),
            created.matched_by.as_deref(),
            created.livetip_payment_id.as_deref(),
            created.content.as_deref()
        ),
        (
            "eva",
            "4.00",
            "BTC",
            "completed",
            Some("created"),
            Some("lt-r"),
            Some("gg")
        )
    );
    assert_eq!(
        logs_of(&s.conn, "payment_create").await[0].status,
        "success"
    );
    assert_eq!(
        logs_of(&s.conn, "payment_pending").await[0].status,
        "ignored"
    );
    assert_eq!(
        logs_of(&s.conn, "payment_update").await[0].status,
        "ignored",
        "paid: false confirms nothing"
    );
    let ignored = logs_of(&s.conn, "event_ignored").await;
    assert_eq!(
        (
            ignored.len(),
            ignored[0].status.as_str(),
            ignored[0].event.as_deref()
        ),
        (1, "ignored", Some("tip_refunded"))
    );
    // Every delivery logged as received, and its response.
    assert_eq!(logs_of(&s.conn, "webhook").await.len(), 4);
    assert!(
        logs_of(&s.conn, "webhook")
            .await
            .iter()
            .all(|l| l.status == "received" && l.ip.as_deref() == Some("127.0.0.1"))
    );
    assert_eq!(logs_of(&s.conn, "response").await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_moves_the_status_as_the_spec_says() {
    let s = stack(&[]).await;
    let mut ids = Vec::new();
    for (i, event) in [
        "payment_pending",
        "payment_failed",
        "payment_cancelled",
        "payment_confirmed",
    ]
    .iter()
    .enumerate()
    {
        let id = expect_payment(s.gw.admin, "gil", &format!("{}.00", i + 1)).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        livetip_event(s.gw.addr, event, json!({"sender": "gil", "amount": i + 1, "paymentId": format!("lt-{i}"), "paid": *event == "payment_confirmed", "content": id})).await;
        ids.push(id);
    }
    settled(&s.conn, 4).await;
    let statuses: Vec<String> = futures_statuses(&s.conn, &ids).await;
    assert_eq!(statuses, ["pending", "failed", "cancelled", "completed"]);
    assert_eq!(
        logs_of(&s.conn, "payment_pending").await[0].status,
        "processed"
    );
    assert_eq!(
        logs_of(&s.conn, "payment_failed").await[0].status,
        "success"
    );
    assert_eq!(
        logs_of(&s.conn, "payment_cancelled").await[0].status,
        "success"
    );
    assert_eq!(
        logs_of(&s.conn, "payment_update").await[0].status,
        "success"
    );
    // The pending one is now bound to its LiveTip id.
    assert_eq!(
        payment_row(&s.conn, &ids[0])
            .await
            .livetip_payment_id
            .as_deref(),
        Some("lt-0")
    );
}

async fn futures_statuses(conn: &sea_orm::DatabaseConnection, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        out.push(payment_row(conn, id).await.status);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_events_end_where_in_order_ones_would() {
    let s = stack(&[]).await;
    let id = expect_payment(s.gw.admin, "hugo", "8.00").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // In order LiveTip said: pending, confirmed, then a stray failure. Delivered backwards.
    livetip_event(
        s.gw.addr,
        "payment_failed",
        json!({"sender": "hugo", "amount": 8, "paymentId": "lt-h", "paid": false, "content": id}),
    )
    .await;
    livetip_event(
        s.gw.addr,
        "payment_confirmed",
        json!({"sender": "hugo", "amount": 8, "paymentId": "lt-h", "paid": true}),
    )
    .await;
    // The worker handles deliveries concurrently: "late" means applied after the others.
    settled(&s.conn, 2).await;
    livetip_event(
        s.gw.addr,
        "payment_pending",
        json!({"sender": "hugo", "amount": 8, "paymentId": "lt-h", "paid": false}),
    )
    .await;
    settled(&s.conn, 3).await;
    assert_eq!(
        payment_row(&s.conn, &id).await.status,
        "completed",
        "money received outranks a failure"
    );
    let late = logs_of(&s.conn, "payment_pending").await;
    assert_eq!(late[0].status, "ignored", "a late pending changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_on_two_replicas_reach_the_in_order_outcome() {
    let s = stack(&[]).await;
    let second = hookwire_tests::worker::spawn_worker(
        &s.db.url,
        &s.gw.topology,
        &["--worker-livetip-concurrency", "8"],
    )
    .await;
    second.wait_consuming().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            expect_payment(s.gw.admin, &format!("user{i}"), "2.00").await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut sends = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        // Confirmed, failed and pending for the same payment, all at once.
        for (event, paid) in [
            ("payment_confirmed", true),
            ("payment_failed", false),
            ("payment_pending", false),
        ] {
            let addr = s.gw.addr;
            let payment = json!({"sender": format!("user{i}"), "amount": 2, "paymentId": format!("lt-{i}"), "paid": paid, "content": id});
            sends.push(tokio::spawn(async move {
                livetip_event(addr, event, payment).await
            }));
        }
    }
    for send in sends {
        send.await.unwrap();
    }
    settled(&s.conn, 36).await;
    for id in &ids {
        let payment = payment_row(&s.conn, id).await;
        assert_eq!(payment.status, "completed", "{id}");
        assert_eq!(
            payment.livetip_payment_id.as_deref(),
            Some(id_lt(&ids, id).as_str())
        );
    }
    assert_eq!(
        logs_of(&s.conn, "payment_update")
            .await
            .iter()
            .filter(|l| l.status == "success")
            .count(),
        12
    );
}

fn id_lt(ids: &[String], id: &str) -> String {
    format!(
        "lt-{}",
        ids.iter().position(|x| x == id).unwrap_or_default()
    )
}
