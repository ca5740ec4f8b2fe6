//! Gateway -> RabbitMQ -> worker -> database: stored once, byte-exact, on PostgreSQL
//! and on the embedded SQLite default.

use std::time::Duration;

use hookwire_tests::database::TestDatabase;
use hookwire_tests::gateway::{PLUGGY_NEW, spawn_gateway};
use hookwire_tests::http_client::post;
use hookwire_tests::worker::{event_rows, spawn_worker, wait_finished};
use sea_orm::EntityTrait;
use shared::db::entities::webhook_log::Entity as WebhookLogs;

const PLUGGY: &str = "/api/banking/pluggy/webhook/";

fn pluggy_headers() -> [(&'static str, &'static str); 2] {
    [
        ("content-type", "application/json"),
        ("x-pluggy-webhook-secret", PLUGGY_NEW),
    ]
}

async fn stored_once_end_to_end(db: TestDatabase) {
    let gw = spawn_gateway().await;
    let worker = spawn_worker(&db.url, &gw.topology, &[]).await;
    worker.wait_consuming().await;
    let body = "{\"event\":\"item/login_succeeded\", \"eventId\":\"evt-e2e\",\"itemId\":\"it-1\",\"note\":\"ação\"}";
    let response = post(gw.addr, PLUGGY, &pluggy_headers(), body).await;
    assert_eq!(response.status, 200);
    let trace_id = response.header("x-trace-id").unwrap().to_owned();
    let request_id = response.header("x-request-id").unwrap().to_owned();

    let conn = db.connect().await;
    wait_finished(&conn, 1, Duration::from_secs(20)).await;
    let rows = event_rows(&conn).await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        row.payload,
        body.as_bytes(),
        "raw body stored byte for byte"
    );
    assert_eq!(
        (
            row.provider.as_str(),
            row.event.as_str(),
            row.status.as_str()
        ),
        ("pluggy", "item/login_succeeded", "processed")
    );
    assert_eq!(row.dedupe_key, "event:evt-e2e");
    assert_eq!(row.provider_event_id.as_deref(), Some("evt-e2e"));
    assert_eq!(row.trace_id.as_deref(), Some(trace_id.as_str()));
    assert_eq!(row.request_id.map(|r| r.to_string()), Some(request_id));
    assert_eq!(row.attempts, 1);
    assert!(row.processed_at.is_some() && row.processed_by.is_some());
    assert!(row.claim_token.is_none() && row.lease_until.is_none());
    let logs = WebhookLogs::find().all(&conn).await.unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(
        (logs[0].log_type.as_str(), logs[0].status.as_str()),
        ("webhook", "processed")
    );
    assert!(worker.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_from_the_gateway_is_stored_once_on_postgres() {
    stored_once_end_to_end(TestDatabase::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_from_the_gateway_is_stored_once_on_sqlite() {
    stored_once_end_to_end(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_delivered_five_times_is_applied_once() {
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let worker = spawn_worker(&db.url, &gw.topology, &[]).await;
    worker.wait_consuming().await;
    let body = r#"{"event":"item/waiting_user_input","eventId":"evt-5x","itemId":"i"}"#;
    for _ in 0..5 {
        assert_eq!(
            post(gw.addr, PLUGGY, &pluggy_headers(), body).await.status,
            200
        );
    }
    // LiveTip identical bodies are one event too.
    let tip = r#"{"event":"payment_pending","payment":{"sender":"s","amount":"3.00","paymentId":"p-5x","paid":false}}"#;
    for _ in 0..5 {
        let headers = [
            ("content-type", "application/json"),
            (
                "x-livetip-webhook-secret-token",
                hookwire_tests::gateway::LIVETIP_TOKEN,
            ),
        ];
        assert_eq!(post(gw.addr, "/webhook", &headers, tip).await.status, 200);
    }
    let conn = db.connect().await;
    hookwire_tests::eventually("all copies seen", Duration::from_secs(20), || async {
        let rows = event_rows(&conn).await;
        (rows.len() == 2 && rows.iter().all(|r| r.duplicates == 4)).then_some(())
    })
    .await;
    let rows = event_rows(&conn).await;
    let status = |provider: &str| {
        rows.iter()
            .find(|r| r.provider == provider)
            .map(|r| r.status.clone())
    };
    assert_eq!(status("pluggy").as_deref(), Some("processed"));
    // An unmatched pending payment changes nothing: recorded as ignored.
    assert_eq!(status("livetip").as_deref(), Some("ignored"));
    let logs = WebhookLogs::find().all(&conn).await.unwrap();
    let webhook_entries = logs.iter().filter(|l| l.log_type == "webhook").count();
    assert_eq!(webhook_entries, 2, "one effect per event");
    assert_eq!(
        logs.len(),
        1 + 3,
        "Pluggy: webhook; LiveTip: webhook, payment_pending, response"
    );
    assert_eq!(
        worker
            .ctx
            .stats
            .duplicates
            .load(std::sync::atomic::Ordering::Relaxed),
        8
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_copies_on_two_workers_are_claimed_once() {
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let a = spawn_worker(
        &db.url,
        &gw.topology,
        &["--worker-livetip-concurrency", "8"],
    )
    .await;
    let b = spawn_worker(
        &db.url,
        &gw.topology,
        &["--worker-livetip-concurrency", "8"],
    )
    .await;
    a.wait_consuming().await;
    b.wait_consuming().await;
    // Twenty distinct events, each sent three times at once.
    let mut sends = Vec::new();
    for event in 0..20 {
        for _ in 0..3 {
            let addr = gw.addr;
            sends.push(tokio::spawn(async move {
                let body = format!(
                    r#"{{"event":"item/login_succeeded","eventId":"sim-{event}","itemId":"i"}}"#
                );
                post(addr, PLUGGY, &pluggy_headers(), body).await.status
            }));
        }
    }
    for send in sends {
        assert_eq!(send.await.unwrap(), 200);
    }
    let conn = db.connect().await;
    hookwire_tests::eventually("every copy settled", Duration::from_secs(30), || async {
        let rows = event_rows(&conn).await;
        (rows.len() == 20
            && rows
                .iter()
                .all(|r| r.status == "processed" && r.duplicates == 2))
        .then_some(())
    })
    .await;
    assert_eq!(
        WebhookLogs::find().all(&conn).await.unwrap().len(),
        20,
        "exactly one effect per event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_become_validation_logs() {
    let db = TestDatabase::postgres().await;
    let gw = spawn_gateway().await;
    let worker = spawn_worker(&db.url, &gw.topology, &[]).await;
    worker.wait_consuming().await;
    let response = post(
        gw.addr,
        "/webhook",
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(response.status, 401);
    let conn = db.connect().await;
    let log =
        hookwire_tests::eventually("validation log stored", Duration::from_secs(20), || async {
            WebhookLogs::find()
                .all(&conn)
                .await
                .ok()
                .and_then(|mut l| l.pop())
        })
        .await;
    assert_eq!(
        (log.log_type.as_str(), log.status.as_str()),
        ("validation", "error")
    );
    assert_eq!(log.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(log.provider.as_deref(), Some("livetip"));
    assert_eq!(log.id.to_string(), response.header("x-request-id").unwrap());
    let data: serde_json::Value = serde_json::from_str(log.data.as_deref().unwrap()).unwrap();
    assert_eq!(
        (data["httpStatus"].as_u64(), data["path"].as_str()),
        (Some(401), Some("/webhook"))
    );
}
