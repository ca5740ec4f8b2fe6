//! Every stored field has a bound, checked at the edge with a 400 naming it; at its
//! bound it fits its column and is applied; what reaches the queue past the gateway,
//! or what the database refuses for its data, is dead-lettered at once as permanent.

use std::time::Duration;

use hookwire_tests::broker::{TestTopology, publish_raw, tool_link};
use hookwire_tests::database::TestDatabase;
use hookwire_tests::eventually;
use hookwire_tests::fake_pluggy::{FakePluggy, seed};
use hookwire_tests::gateway::{TestGateway, post_livetip, post_pluggy, spawn_gateway};
use hookwire_tests::http_client::TestResponse;
use hookwire_tests::livetip::{admin, stack};
use hookwire_tests::worker::{event_rows, spawn_worker, wait_finished};
use http::Method;
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Statement};
use serde_json::{Value, json};
use shared::Provider;
use shared::db::entities::payment::Entity as Payments;
use shared::db::entities::pluggy_item::Entity as Items;
use shared::payload::bounds;
use worker::error::{ErrorClass, WorkerError};

async fn send_livetip(gw: &TestGateway, payment: Value, event: &str) -> TestResponse {
    post_livetip(gw.addr, &json!({"event": event, "payment": payment})).await
}

async fn send_pluggy(gw: &TestGateway, body: Value) -> TestResponse {
    post_pluggy(gw.addr, &body).await
}

fn base_payment(id: &str) -> Value {
    json!({"sender": "s", "amount": "1.00", "paymentId": id, "paid": true})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livetip_fields_past_their_bound_are_refused_and_at_it_applied() {
    let s = stack(&[]).await;
    let long = |n: usize| "x".repeat(n);
    // (field, past the bound, at the bound)
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "payment.paymentId",
            json!(long(bounds::LIVETIP_PAYMENT_ID + 1)),
            json!(long(bounds::LIVETIP_PAYMENT_ID)),
        ),
        (
            "payment.sender",
            json!(long(bounds::USER_NAME + 1)),
            json!(format!("s{}", long(bounds::USER_NAME - 1))),
        ),
        (
            "payment.receiver",
            json!(long(bounds::USER_NAME + 1)),
            json!(long(bounds::USER_NAME)),
        ),
        (
            "payment.content",
            json!(long(bounds::CONTENT + 1)),
            json!(long(bounds::CONTENT)),
        ),
        ("payment.currency", json!("BRLX"), json!("btc")),
    ];
    let mut applied = 0;
    for (i, (field, past, at)) in cases.into_iter().enumerate() {
        let key = field.trim_start_matches("payment.");
        let mut payment = base_payment(&format!("lt-past-{i}"));
        payment[key] = past;
        let refused = send_livetip(&s.gw, payment, "payment_confirmed").await;
        assert_eq!(refused.status, 400, "{field}");
        assert_eq!(refused.json()["error"], "Payload inválido");
        let reason = refused.json()["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(reason.starts_with(field), "{field}: {reason}");

        let mut payment = base_payment(&format!("lt-at-{i}"));
        payment[key] = at;
        let accepted = send_livetip(&s.gw, payment, "payment_confirmed").await;
        assert_eq!(accepted.status, 200, "{field}: {:?}", accepted.body);
        applied += 1;
    }
    let refused = send_livetip(&s.gw, base_payment("lt-e"), &long(bounds::EVENT_NAME + 1)).await;
    assert_eq!(
        (refused.status, refused.json()["reason"].as_str()),
        (400, Some("event is longer than 255 characters"))
    );
    let accepted = send_livetip(&s.gw, base_payment("lt-e"), &long(bounds::EVENT_NAME)).await;
    assert_eq!(accepted.status, 200);
    applied += 1;

    // Control characters, and amounts that are not plain decimals.
    for (payment, field) in [
        (
            json!({"sender": "nul\u{0}user", "amount": 1, "paymentId": "n1", "paid": true}),
            "payment.sender",
        ),
        (
            json!({"sender": "s", "amount": 1, "paymentId": "n\u{1}2", "paid": true}),
            "payment.paymentId",
        ),
        (
            json!({"sender": "s", "amount": "1_000", "paymentId": "a1", "paid": true}),
            "payment.amount",
        ),
        (
            json!({"sender": "s", "amount": " 10", "paymentId": "a2", "paid": true}),
            "payment.amount",
        ),
    ] {
        let refused = send_livetip(&s.gw, payment, "payment_confirmed").await;
        assert_eq!(refused.status, 400);
        let reason = refused.json()["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(reason.starts_with(field), "{field}: {reason}");
    }

    // Everything at its bound was stored and applied.
    wait_finished(&s.conn, applied, Duration::from_secs(30)).await;
    let rows = event_rows(&s.conn).await;
    assert_eq!(rows.len() as u64, applied);
    assert!(
        rows.iter()
            .all(|r| r.attempts == 1 && r.last_error.is_none()),
        "{rows:#?}"
    );
    let payments = Payments::find().all(&s.conn).await.unwrap();
    assert_eq!(
        payments.len(),
        5,
        "each confirmation at its bound created its payment"
    );
    assert!(payments.iter().any(|p| p.currency == "BTC"));

    // The admin API refuses the same values.
    let nul = admin(s.gw.admin, Method::GET, "/webhook-logs?event=a%00b", None).await;
    assert_eq!(nul.status, 400);
    assert!(
        nul.json()["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("event")
    );
    for (body, field) in [
        (
            json!({"userName": "nul\u{0}user", "amount": "5.00"}),
            "userName",
        ),
        (
            json!({"userName": long(bounds::USER_NAME + 1), "amount": "5.00"}),
            "userName",
        ),
        (json!({"userName": "u", "amount": "1_000"}), "amount"),
        (
            json!({"userName": "u", "amount": "5.00", "currency": "REAL"}),
            "currency",
        ),
    ] {
        let refused = admin(s.gw.admin, Method::POST, "/payments", Some(body)).await;
        assert_eq!(refused.status, 400, "{field}");
        assert!(
            refused.json()["reason"]
                .as_str()
                .unwrap_or_default()
                .starts_with(field)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pluggy_fields_past_their_bound_are_refused_and_at_it_applied() {
    let s = stack(&[]).await;
    let long = |n: usize| "x".repeat(n);
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "eventId",
            json!({"event": "item/login_succeeded", "eventId": long(bounds::PROVIDER_EVENT_ID + 1)}),
            json!({"event": "item/login_succeeded", "eventId": long(bounds::PROVIDER_EVENT_ID)}),
        ),
        (
            "itemId",
            json!({"event": "item/waiting_user_input", "eventId": "e1", "itemId": long(bounds::PLUGGY_ID + 1)}),
            json!({"event": "item/waiting_user_input", "eventId": "e1", "itemId": long(bounds::PLUGGY_ID)}),
        ),
        (
            "accountId",
            json!({"event": "item/login_succeeded", "eventId": "e2", "accountId": long(bounds::PLUGGY_ID + 1)}),
            json!({"event": "item/login_succeeded", "eventId": "e2", "accountId": long(bounds::PLUGGY_ID)}),
        ),
        (
            "transactionIds[]",
            json!({"event": "transactions/deleted", "eventId": "e3", "transactionIds": [long(bounds::PLUGGY_ID + 1)]}),
            json!({"event": "transactions/deleted", "eventId": "e3", "transactionIds": [long(bounds::PLUGGY_ID)]}),
        ),
        (
            "clientId",
            json!({"event": "item/login_succeeded", "eventId": "e4", "clientId": long(bounds::PLUGGY_CLIENT_ID + 1)}),
            json!({"event": "item/login_succeeded", "eventId": "e4", "clientId": long(bounds::PLUGGY_CLIENT_ID)}),
        ),
        (
            "event",
            json!({"event": long(bounds::PLUGGY_EVENT_NAME + 1), "eventId": "e5"}),
            json!({"event": long(bounds::PLUGGY_EVENT_NAME), "eventId": "e5"}),
        ),
    ];
    for (field, past, at) in cases {
        let refused = send_pluggy(&s.gw, past).await;
        assert_eq!(refused.status, 400, "{field}");
        assert_eq!(refused.json()["error"], "invalid payload");
        let reason = refused.json()["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(reason.starts_with(field), "{field}: {reason}");
        let accepted = send_pluggy(&s.gw, at).await;
        assert_eq!(accepted.status, 200, "{field}: {:?}", accepted.body);
    }
    for body in [
        json!({"event": "item/updated\u{0}", "eventId": "n1"}),
        json!({"event": "item/updated", "eventId": "n\u{0}2"}),
        json!({"event": "item/error", "eventId": "n3", "itemId": "i", "error": {"message": "a\u{0}b"}}),
    ] {
        let refused = send_pluggy(&s.gw, body).await;
        assert_eq!(refused.status, 400, "{:?}", refused.body);
    }
    wait_finished(&s.conn, 6, Duration::from_secs(30)).await;
    let rows = event_rows(&s.conn).await;
    assert_eq!(rows.len(), 6);
    assert!(
        rows.iter()
            .all(|r| r.attempts == 1 && r.last_error.is_none()),
        "{rows:#?}"
    );
    let items = Items::find().all(&s.conn).await.unwrap();
    assert_eq!(
        items.iter().map(|i| i.id.len()).collect::<Vec<_>>(),
        vec![bounds::PLUGGY_ID]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_no_retry_can_fix_is_dead_lettered_at_the_first_attempt() {
    let db = TestDatabase::postgres().await;
    let topology = TestTopology::new();
    let worker = spawn_worker(&db.url, &topology, &[]).await;
    worker.wait_consuming().await;

    // Past the gateway, straight into the work queue: a sender no column holds.
    let body = json!({"event": "payment_confirmed", "payment": {"sender": "x".repeat(5_000), "amount": 1, "paymentId": "p", "paid": true}}).to_string();
    let envelope = hookwire_tests::envelope(Provider::LiveTip, "payment_confirmed", body.clone());
    publish_raw(
        &topology.topology.events_exchange(),
        &envelope.routing_key(),
        body.as_bytes(),
        envelope.properties(),
    )
    .await;
    let (link, _stop) = tool_link(&topology.topology).await;
    let letter = eventually("dead-lettered", Duration::from_secs(20), || async {
        worker::dlq::list(&link, &topology.topology, Some(Provider::LiveTip), 10)
            .await
            .unwrap()
            .pop()
    })
    .await;
    assert_eq!((letter.class.as_str(), letter.attempts), ("permanent", 1));
    assert!(
        letter.reason.contains("payment.sender is longer than 255"),
        "{}",
        letter.reason
    );
    assert_eq!(
        worker
            .ctx
            .stats
            .retried
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // And what the database itself refuses for the data is permanent too.
    let conn = db.connect().await;
    for value in ["y".repeat(bounds::USER_NAME + 1), "nul\u{0}".to_owned()] {
        let refused = conn
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO payments (id, user_name, amount, currency, status, created_at, updated_at) \
                 VALUES ('HW-TEST0000', $1, '1.00', 'BRL', 'pending', now(), now())",
                [value.into()],
            ))
            .await
            .unwrap_err();
        assert_eq!(
            WorkerError::Database(refused).class(),
            ErrorClass::Permanent
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_the_database_refuses_is_dead_lettered_at_the_first_attempt() {
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let fake = FakePluggy::start().await;
    // Pluggy's API (not the webhook, which the gateway checked) returns account ids one
    // character wider than their column.
    let item = "i".repeat(bounds::PLUGGY_ID - 4);
    seed(&mut fake.state.lock().unwrap(), &item, "UPDATED", "SUCCESS");
    let flags = fake.worker_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let worker = spawn_worker(&db.url, &gw.topology, &flags).await;
    worker.wait_consuming().await;
    let sent = post_pluggy(
        gw.addr,
        &json!({"event": "item/updated", "eventId": "wide", "itemId": item}),
    )
    .await;
    assert_eq!(sent.status, 200);
    let (link, _stop) = tool_link(&gw.topology.topology).await;
    let letter = eventually("dead-lettered", Duration::from_secs(20), || async {
        worker::dlq::list(&link, &gw.topology.topology, Some(Provider::Pluggy), 10)
            .await
            .unwrap()
            .pop()
    })
    .await;
    assert_eq!(
        (letter.class.as_str(), letter.attempts),
        ("permanent", 1),
        "{}",
        letter.reason
    );
    assert!(
        letter.reason.contains("database error"),
        "{}",
        letter.reason
    );
    assert_eq!(
        worker
            .ctx
            .stats
            .retried
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let conn = db.connect().await;
    let rows = event_rows(&conn).await;
    assert_eq!((rows[0].status.as_str(), rows[0].attempts), ("dead", 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bounded_column_is_exactly_as_wide_as_its_bound() {
    let db = TestDatabase::postgres().await;
    let conn = db.connect().await;
    shared::db::migrate(&conn).await.unwrap();
    for (table, column, bound) in bounds::COLUMNS {
        let row = conn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT character_maximum_length::bigint AS n FROM information_schema.columns \
                 WHERE table_name = $1 AND column_name = $2",
                [(*table).into(), (*column).into()],
            ))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{table}.{column} exists"));
        let width: i64 = row.try_get("", "n").unwrap();
        assert_eq!(width as usize, *bound, "{table}.{column}");
    }
}
