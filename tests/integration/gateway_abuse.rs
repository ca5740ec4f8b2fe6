//! Abuse controls: per-client rate limits behind trusted proxies, source allow-lists,
//! and shedding when too many requests are in flight.

use std::time::Duration;

use hookwire_tests::broker::drain;
use hookwire_tests::gateway::{
    GatewaySettings, LIVETIP_TOKEN, PLUGGY_NEW, TestGateway, spawn_gateway_with,
};
use hookwire_tests::http_client::{TestResponse, post};
use serde_json::json;
use shared::Provider;
use tokio::io::AsyncWriteExt;

async fn gateway(flags: &[(&str, &str)]) -> TestGateway {
    let mut settings = GatewaySettings::default();
    for (flag, value) in flags {
        settings = settings.arg(flag, value);
    }
    let gw = spawn_gateway_with(settings).await;
    gw.wait_ready().await;
    gw
}

async fn livetip(gw: &TestGateway, forwarded_for: Option<&str>, id: &str) -> TestResponse {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-livetip-webhook-secret-token", LIVETIP_TOKEN),
    ];
    if let Some(xff) = forwarded_for {
        headers.push(("x-forwarded-for", xff));
    }
    let body = json!({"event": "payment_pending", "payment": {"sender": "s", "amount": 1, "paymentId": id, "paid": false}});
    post(gw.addr, "/webhook", &headers, body.to_string()).await
}

async fn pluggy(gw: &TestGateway, forwarded_for: Option<&str>, id: &str) -> TestResponse {
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-pluggy-webhook-secret", PLUGGY_NEW),
    ];
    if let Some(xff) = forwarded_for {
        headers.push(("x-forwarded-for", xff));
    }
    let body = json!({"event": "item/updated", "eventId": id, "itemId": "i"});
    post(
        gw.addr,
        "/api/banking/pluggy/webhook/",
        &headers,
        body.to_string(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_is_per_client_and_route_and_believes_only_trusted_proxies() {
    let gw = gateway(&[
        ("--rate-limit-per-ip", "1"),
        ("--trusted-proxies", "127.0.0.1/32"),
    ])
    .await;
    let client = Some("203.0.113.1");
    // A burst, then refused with a wait and a JSON error. (At one request a second, a
    // token may come back between two requests on a slow machine: the burst is sent
    // until the refusal, however many that takes.)
    let mut accepted = 0;
    let limited = loop {
        let r = livetip(&gw, client, &format!("a{accepted}")).await;
        if r.status != 200 {
            break r;
        }
        accepted += 1;
        assert!(accepted < 20, "never limited");
    };
    assert!(accepted >= 2, "the burst is two");
    assert_eq!(limited.status, 429);
    assert!(
        limited
            .header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1)
    );
    assert!(
        serde_json::from_slice::<serde_json::Value>(&limited.body).unwrap()["error"].is_string()
    );
    // Another route, another client: their own buckets.
    assert_eq!(pluggy(&gw, client, "p1").await.status, 200);
    assert_eq!(livetip(&gw, Some("203.0.113.2"), "b1").await.status, 200);
    // A hop written by the client itself, left of the proxy's, is not believed: the
    // event carries the address the proxy saw.
    assert_eq!(
        livetip(&gw, Some("6.6.6.6, 203.0.113.77"), "spoof")
            .await
            .status,
        200
    );
    let queued = drain(&gw.queue(Provider::LiveTip)).await;
    assert_eq!(queued.len(), accepted + 2);
    let spoofed = queued
        .iter()
        .map(|t| shared::Envelope::from_amqp(&t.properties, t.body.clone().into()).unwrap())
        .find(|e| e.provider_event_id.as_deref() == Some("spoof"))
        .unwrap();
    assert_eq!(spoofed.client_ip, "203.0.113.77".parse().ok());
    assert_eq!(drain(&gw.queue(Provider::Pluggy)).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let gw = gateway(&[("--rate-limit-per-ip", "1")]).await;
    assert_eq!(livetip(&gw, Some("203.0.113.1"), "c1").await.status, 200);
    assert_eq!(livetip(&gw, Some("203.0.113.2"), "c2").await.status, 200);
    // Every request is the loopback peer's, whatever the header claims.
    assert_eq!(livetip(&gw, Some("203.0.113.3"), "c3").await.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_allow_list_is_a_second_check_per_provider() {
    let gw = gateway(&[
        ("--pluggy-allowed-ips", "52.67.145.81,177.71.238.212"),
        ("--trusted-proxies", "127.0.0.1"),
    ])
    .await;
    let refused = pluggy(&gw, None, "d1").await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&refused.body).unwrap()["error"],
        "source address not allowed for this provider"
    );
    assert_eq!(pluggy(&gw, Some("52.67.145.81"), "d2").await.status, 200);
    // The allow-list never replaces authentication.
    let forged = post(
        gw.addr,
        "/api/banking/pluggy/webhook/",
        &[
            ("content-type", "application/json"),
            ("x-forwarded-for", "52.67.145.81"),
            ("x-pluggy-webhook-secret", "wrong"),
        ],
        json!({"event": "item/updated", "eventId": "d3"}).to_string(),
    )
    .await;
    assert_eq!(forged.status, 403);
    // LiveTip has no list configured: any source.
    assert_eq!(livetip(&gw, None, "d4").await.status, 200);
    assert_eq!(drain(&gw.queue(Provider::Pluggy)).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_in_flight_bound_requests_are_shed_with_503_not_queued() {
    let gw = gateway(&[("--max-in-flight", "2")]).await;
    // Two requests whose bodies never finish hold both slots. Each is admitted before
    // the next is sent (the in-flight gauge says so): sent together, the second could
    // itself be the one shed.
    let mut holders = Vec::new();
    for held in 1..=2 {
        let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let request = format!(
            "POST /webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Livetip-Webhook-Secret-Token: {LIVETIP_TOKEN}\r\nContent-Length: 500\r\n\r\n{{\"event\""
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        holders.push(stream);
        let gauge = format!("hookwire_gateway_in_flight{{provider=\"livetip\"}} {held}");
        hookwire_tests::eventually("holder admitted", Duration::from_secs(5), || async {
            let metrics = hookwire_tests::http_client::get(gw.admin, "/metrics").await;
            String::from_utf8_lossy(&metrics.body)
                .lines()
                .any(|line| line == gauge)
                .then_some(())
        })
        .await;
    }
    // Both slots are held (the gauge said so): the next request is shed at once.
    let shed = livetip(&gw, None, "e1").await;
    assert_eq!(shed.status, 503, "{:?}", shed.body);
    assert_eq!(shed.header("retry-after"), Some("5"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&shed.body).unwrap()["error"],
        "gateway overloaded"
    );
    drop(holders);
    hookwire_tests::eventually("slots free again", Duration::from_secs(5), || async {
        (livetip(&gw, None, "e2").await.status == 200).then_some(())
    })
    .await;
    // Health answers whatever the load.
    assert_eq!(
        hookwire_tests::http_client::get(gw.addr, "/healthz")
            .await
            .status,
        200
    );
    assert_eq!(drain(&gw.queue(Provider::LiveTip)).await.len(), 1);
}
