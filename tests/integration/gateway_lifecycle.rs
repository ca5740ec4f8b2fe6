//! Concurrency and graceful shutdown.

use std::collections::BTreeSet;
use std::time::Duration;

use hookwire_tests::broker::take;
use hookwire_tests::gateway::{GatewaySettings, LIVETIP_TOKEN, spawn_gateway_with};
use hookwire_tests::http_client::post;
use serde_json::json;
use shared::Provider;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests_are_each_confirmed_and_queued() {
    // All 300 come from one address: allowed that many connections here (the default
    // per-client cap is 128).
    let gw =
        spawn_gateway_with(GatewaySettings::default().arg("--max-connections-per-client", "512"))
            .await;
    gw.wait_ready().await;
    let requests = 300;
    let mut tasks = Vec::new();
    for i in 0..requests {
        let addr = gw.addr;
        tasks.push(tokio::spawn(async move {
            let body = json!({"event": "payment_pending", "payment": {"sender": "s", "amount": i, "paymentId": format!("c{i}"), "paid": false}});
            let r = post(addr, "/webhook", &[("content-type", "application/json"), ("x-livetip-webhook-secret-token", LIVETIP_TOKEN)], body.to_string()).await; (r.status, r.body)
        }));
    }
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body:?}");
    }
    let ids: BTreeSet<String> = take(&gw.queue(Provider::LiveTip), requests)
        .await
        .iter()
        .map(|t| {
            serde_json::from_slice::<serde_json::Value>(&t.body).unwrap()["payment"]["paymentId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_turns_readiness_off_then_drains_in_flight_requests() {
    let gw =
        spawn_gateway_with(GatewaySettings::default().arg("--shutdown-readiness-delay-ms", "700"))
            .await;
    gw.wait_ready().await;
    let body = json!({"event": "payment_pending", "payment": {"sender": "s", "amount": 1, "paymentId": "in-flight", "paid": false}}).to_string();
    let (first, rest) = body.as_bytes().split_at(10);

    // A request whose body is still arriving when shutdown begins.
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Livetip-Webhook-Secret-Token: {LIVETIP_TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    // Shutdown begins once the request is in hand (the in-flight gauge counts it).
    hookwire_tests::wait_livetip_in_flight(gw.admin, 1.0).await;
    gw.begin_shutdown();
    let during = hookwire_tests::eventually(
        "not ready while draining",
        Duration::from_secs(30),
        || async {
            let r = hookwire_tests::http_client::get(gw.addr, "/readyz").await;
            (r.status == 503).then_some(r)
        },
    )
    .await;
    assert_eq!(during.json()["reason"], "shutting down");

    // Then the listener closes to new clients.
    hookwire_tests::eventually("listener closed", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(gw.addr)
            .await
            .is_err()
            .then_some(())
    })
    .await;

    // The in-flight request still completes, and its event is queued.
    stream.write_all(rest).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(take(&gw.queue(Provider::LiveTip), 1).await.len(), 1);
    assert!(
        gw.stop().await,
        "every in-flight request finished within the deadline"
    );
}
