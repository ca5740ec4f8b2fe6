//! The 2xx-only-when-confirmed promise when the broker is away, stalls or cannot route.

use std::time::Duration;

use hookwire_tests::broker::take;
use hookwire_tests::eventually;
use hookwire_tests::gateway::{
    GatewaySettings, LIVETIP_TOKEN, PLUGGY_NEW, spawn_gateway, spawn_gateway_with,
};
use hookwire_tests::http_client::post;
use hookwire_tests::proxy::{Mode, TcpProxy};
use lapin::options::QueueBindOptions;
use lapin::types::FieldTable;
use serde_json::json;
use shared::Provider;

const BROKER: &str = "127.0.0.1:5672";

async fn livetip(
    addr: std::net::SocketAddr,
    id: &str,
) -> hookwire_tests::http_client::TestResponse {
    let body = json!({"event": "payment_confirmed", "payment": {"sender": "s", "amount": 5, "paymentId": id, "paid": true}});
    post(
        addr,
        "/webhook",
        &[
            ("content-type", "application/json"),
            ("x-livetip-webhook-secret-token", LIVETIP_TOKEN),
        ],
        body.to_string(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_means_503_and_its_return_means_ready_again() {
    let proxy = TcpProxy::start(BROKER.parse().unwrap(), Mode::Down).await;
    let gw = spawn_gateway_with(GatewaySettings {
        amqp_url: proxy.amqp_url(),
        ..GatewaySettings::default()
    })
    .await;

    // Started without a broker: alive, not ready, never a false 2xx.
    assert_eq!(
        hookwire_tests::http_client::get(gw.addr, "/healthz")
            .await
            .status,
        200
    );
    assert_eq!(gw.readyz().await, 503);
    let refused = livetip(gw.addr, "while-down").await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("5"));
    assert_eq!(refused.json()["success"], false);

    proxy.set(Mode::Up);
    gw.wait_ready().await;
    assert_eq!(livetip(gw.addr, "after-start").await.status, 200);

    // Connection lost while running: readiness follows, requests get 503.
    proxy.set(Mode::Down);
    eventually("readiness drops", Duration::from_secs(10), || async {
        (gw.readyz().await == 503).then_some(())
    })
    .await;
    assert_eq!(livetip(gw.addr, "while-cut").await.status, 503);

    // Back without restarting the process.
    proxy.set(Mode::Up);
    gw.wait_ready().await;
    assert_eq!(livetip(gw.addr, "after-return").await.status, 200);

    let ids: Vec<String> = take(&gw.queue(Provider::LiveTip), 2)
        .await
        .iter()
        .map(|t| {
            serde_json::from_slice::<serde_json::Value>(&t.body).unwrap()["payment"]["paymentId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        ids,
        ["after-start", "after-return"],
        "exactly the 2xx answers are queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirm_that_never_comes_is_a_503_not_a_hang() {
    let proxy = TcpProxy::start(BROKER.parse().unwrap(), Mode::Up).await;
    let gw = spawn_gateway_with(
        GatewaySettings {
            amqp_url: proxy.amqp_url(),
            ..GatewaySettings::default()
        }
        .arg("--confirm-timeout-ms", "500"),
    )
    .await;
    gw.wait_ready().await;
    proxy.set(Mode::Stall);
    let stalled = livetip(gw.addr, "stalled").await;
    assert_eq!(stalled.status, 503);
    // Answered by the confirm timeout, not by the connection's loss: the link still
    // counts as up (its heartbeats have not run out yet).
    assert_eq!(
        gw.readyz().await,
        200,
        "the 503 came before the link was given up"
    );

    // The stalled connection is abandoned (missed heartbeats) and replaced.
    eventually("readiness drops", Duration::from_secs(15), || async {
        (gw.readyz().await == 503).then_some(())
    })
    .await;
    proxy.set(Mode::Up);
    gw.wait_ready().await;
    assert_eq!(livetip(gw.addr, "recovered").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_event_is_returned_and_answered_503() {
    let gw = spawn_gateway().await;
    let conn = lapin::Connection::connect(
        &hookwire_tests::amqp_url(),
        lapin::ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let queue = gw.queue(Provider::Pluggy);
    let exchange = gw.topology.topology.events_exchange();
    channel
        .queue_unbind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "pluggy.#".into(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let body = r#"{"event":"item/updated","eventId":"unroutable"}"#;
    let headers = [
        ("content-type", "application/json"),
        ("x-pluggy-webhook-secret", PLUGGY_NEW),
    ];
    let response = post(gw.addr, "/api/banking/pluggy/webhook/", &headers, body).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.header("retry-after"), Some("5"));
    // A return is a per-message failure: the link stays up.
    assert_eq!(gw.readyz().await, 200);

    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "pluggy.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        post(gw.addr, "/api/banking/pluggy/webhook/", &headers, body)
            .await
            .status,
        200
    );
    assert_eq!(take(&queue, 1).await.len(), 1);
    let _ = conn.close(200, "done".into()).await;
}
