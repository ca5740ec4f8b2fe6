//! Poison messages, database outages, exhausted attempts: nothing is lost, and the
//! dead-letter queue tells why.

use std::time::Duration;

use hookwire_tests::broker::{TestTopology, drain, header, publish_raw, tool_link};
use hookwire_tests::database::{PrivatePostgres, TestDatabase};
use hookwire_tests::eventually;
use hookwire_tests::gateway::{GatewaySettings, PLUGGY_NEW, spawn_gateway_with};
use hookwire_tests::http_client::{get, post};
use hookwire_tests::worker::{event_rows, spawn_worker, wait_finished};
use shared::Provider;
use worker::dlq;

fn envelope(provider: Provider, event: &str, body: &'static [u8]) -> shared::Envelope {
    hookwire_tests::envelope(provider, event, body)
}

/// A gateway on `topology`'s prefix is not needed here: the poison comes from elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_with_its_reason_and_replay_brings_it_back_unchanged() {
    let db = TestDatabase::postgres().await;
    let topology = TestTopology::new();
    let worker = spawn_worker(&db.url, &topology, &[]).await;
    worker.wait_consuming().await;
    let exchange = topology.topology.events_exchange();

    // A valid envelope whose payload breaks LiveTip's contract, and a message that is
    // no envelope at all.
    let poison: &'static [u8] =
        b"{\"event\":\"payment_confirmed\",  \"payment\":{\"sender\":\"s\"}}";
    let bad = envelope(Provider::LiveTip, "payment_confirmed", poison);
    publish_raw(&exchange, &bad.routing_key(), poison, bad.properties()).await;
    publish_raw(
        &exchange,
        "livetip.payment_failed",
        b"not an envelope",
        lapin::BasicProperties::default(),
    )
    .await;

    let (link, stop) = tool_link(&topology.topology).await;
    let letters = eventually("both dead-lettered", Duration::from_secs(20), || async {
        let letters = dlq::list(&link, &topology.topology, Some(Provider::LiveTip), 10)
            .await
            .unwrap();
        (letters.len() == 2).then_some(letters)
    })
    .await;
    let letter = letters
        .iter()
        .find(|l| l.event == "payment_confirmed")
        .unwrap();
    assert_eq!(letter.class, "permanent");
    assert_eq!(letter.attempts, 1);
    assert!(
        letter
            .reason
            .contains("invalid payload: payment.paymentId is required"),
        "{}",
        letter.reason
    );
    assert!(chrono::DateTime::parse_from_rfc3339(&letter.dead_at).is_ok());
    assert_eq!(letter.routing_key, "livetip.payment_confirmed");
    let other = letters.iter().find(|l| l.event.is_empty()).unwrap();
    assert!(other.reason.contains("envelope"), "{}", other.reason);

    // The inbox tells the same story.
    let conn = db.connect().await;
    let rows = event_rows(&conn).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, "dead");
    let errors = hookwire_tests::livetip::logs_of(&conn, "error").await;
    assert_eq!(
        errors.len(),
        2,
        "one `error` log entry per event given up on"
    );
    assert!(errors.iter().all(|e| e.status == "error"));
    assert!(
        errors
            .iter()
            .any(|e| hookwire_tests::livetip::data(e)["class"] == "permanent")
    );
    assert!(
        rows[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("payment.paymentId")
    );
    assert!(worker.stop().await);

    // Dry run: counts, moves nothing.
    let report = dlq::replay(
        &link,
        &topology.topology,
        &dlq::ReplayFilter {
            provider: Some(Provider::LiveTip),
            event: Some("payment_confirmed".into()),
            all: true,
            dry_run: true,
            request_id: None,
        },
    )
    .await
    .unwrap();
    assert_eq!((report.replayed, report.kept), (1, 1));
    assert_eq!(
        dlq::list(&link, &topology.topology, None, 10)
            .await
            .unwrap()
            .len(),
        2
    );

    // Replay by event: the matching letter goes back to its work queue, bytes unchanged,
    // counters reset; the other stays.
    let report = dlq::replay(
        &link,
        &topology.topology,
        &dlq::ReplayFilter {
            provider: None,
            event: Some("payment_confirmed".into()),
            all: true,
            dry_run: false,
            request_id: None,
        },
    )
    .await
    .unwrap();
    assert_eq!((report.replayed, report.kept), (1, 1));
    let back =
        hookwire_tests::broker::take(&topology.topology.work_queue(Provider::LiveTip), 1).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body, poison, "original bytes unchanged");
    assert_eq!(back[0].routing_key, "livetip.payment_confirmed");
    assert!(header(&back[0], "x-hookwire-attempts").is_none());
    assert!(header(&back[0], "x-hookwire-dead-reason").is_none());
    assert!(header(&back[0], "x-hookwire-replayed-at").is_some());
    assert_eq!(
        shared::Envelope::from_amqp(&back[0].properties, back[0].body.clone().into())
            .unwrap()
            .request_id,
        bad.request_id
    );
    let left = dlq::list(&link, &topology.topology, None, 10)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].event.is_empty());
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_in_retries_while_the_database_is_down_and_are_stored_once_after() {
    let pg = PrivatePostgres::start();
    let url = pg.url("postgres");
    let gw = spawn_gateway_with(GatewaySettings::default()).await;
    gw.wait_ready().await;
    let worker = spawn_worker(&url, &gw.topology, &["--worker-max-attempts", "100"]).await;
    worker.wait_consuming().await;
    assert_eq!(get(worker.health, "/readyz").await.status, 200);

    pg.stop();
    let headers = [
        ("content-type", "application/json"),
        ("x-pluggy-webhook-secret", PLUGGY_NEW),
    ];
    for i in 0..10 {
        let body =
            format!(r#"{{"event":"item/login_succeeded","eventId":"outage-{i}","itemId":"i"}}"#);
        assert_eq!(
            post(gw.addr, "/api/banking/pluggy/webhook/", &headers, body)
                .await
                .status,
            200,
            "ingest never waits on the database"
        );
    }
    eventually(
        "events cycling through retry steps",
        Duration::from_secs(20),
        || async {
            (worker
                .ctx
                .stats
                .retried
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 10)
                .then_some(())
        },
    )
    .await;
    let not_ready = get(worker.health, "/readyz").await;
    assert_eq!(not_ready.status, 503);
    assert_eq!(not_ready.json()["database"], false);
    assert!(
        drain(&gw.topology.topology.dead_letter_queue(Provider::Pluggy))
            .await
            .is_empty()
    );

    pg.resume();
    let conn = shared::db::connect(&url, 2).await.unwrap();
    wait_finished(&conn, 10, Duration::from_secs(30)).await;
    let rows = event_rows(&conn).await;
    assert_eq!(rows.len(), 10, "each event stored once");
    assert!(rows.iter().all(|r| r.status == "processed"));
    assert!(worker.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_keeps_failing_is_dead_lettered_after_the_attempt_limit() {
    let pg = PrivatePostgres::start();
    let url = pg.url("postgres");
    let topology = TestTopology::new();
    let worker = spawn_worker(&url, &topology, &["--worker-max-attempts", "2"]).await;
    worker.wait_consuming().await;
    pg.stop();
    let body: &'static [u8] = br#"{"event":"item/error","eventId":"doomed","itemId":"i"}"#;
    let event = envelope(Provider::Pluggy, "item/error", body);
    // As the gateway publishes it: retries and the replay then go through the events
    // exchange, without the `BCC` routing key the broker removed on delivery.
    publish_raw(
        &topology.topology.ingest_exchange(),
        &event.routing_key(),
        body,
        event.ingest_properties(),
    )
    .await;

    let (link, stop) = tool_link(&topology.topology).await;
    let letters = eventually(
        "dead-lettered after 2 attempts",
        Duration::from_secs(30),
        || async {
            let letters = dlq::list(&link, &topology.topology, Some(Provider::Pluggy), 10)
                .await
                .unwrap();
            (!letters.is_empty()).then_some(letters)
        },
    )
    .await;
    assert_eq!(
        (letters[0].attempts, letters[0].class.as_str()),
        (2, "transient")
    );
    assert!(
        letters[0].reason.contains("database"),
        "{}",
        letters[0].reason
    );

    // Once the database is back, a replay stores it.
    pg.resume();
    let report = dlq::replay(
        &link,
        &topology.topology,
        &dlq::ReplayFilter {
            provider: Some(Provider::Pluggy),
            event: None,
            all: true,
            dry_run: false,
            request_id: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(report.replayed, 1);
    let conn = shared::db::connect(&url, 2).await.unwrap();
    wait_finished(&conn, 1, Duration::from_secs(30)).await;
    assert_eq!(event_rows(&conn).await[0].payload, body);
    stop.cancel();
    assert!(worker.stop().await);
}
