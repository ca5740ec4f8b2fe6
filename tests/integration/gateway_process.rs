//! The gateway binary as operators run it: signals drain, bad config fails fast.

use std::time::Duration;

use hookwire_tests::broker::take;
use hookwire_tests::eventually;
use hookwire_tests::gateway::LIVETIP_TOKEN;
use hookwire_tests::http_client::get;
use hookwire_tests::process::{GatewayProcess, binary};
use serde_json::json;
use shared::Provider;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn signal_drains_and_exits_zero(signal: &str) {
    let mut gw = GatewayProcess::spawn(&[("SHUTDOWN_READINESS_DELAY_MS", "300")]).await;
    let addr = gw.addr;
    eventually(
        "gateway process ready",
        Duration::from_secs(30),
        || async move {
            let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
                return None;
            };
            drop(stream);
            (get(addr, "/readyz").await.status == 200).then_some(())
        },
    )
    .await;

    let body = json!({"event": "payment_pending", "payment": {"sender": "s", "amount": 1, "paymentId": signal, "paid": false}}).to_string();
    let (first, rest) = body.as_bytes().split_at(5);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Livetip-Webhook-Secret-Token: {LIVETIP_TOKEN}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    gw.signal(signal);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stream.write_all(rest).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "in-flight request finished: {response}"
    );

    let status = gw.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "clean exit after SIG{signal}");
    assert_eq!(
        take(&gw.topology.topology.work_queue(Provider::LiveTip), 1)
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    signal_drains_and_exits_zero("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_drains_in_flight_requests_and_exits_zero() {
    signal_drains_and_exits_zero("INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_setting_stops_start_up_and_names_the_variable() {
    for (name, value) in [
        ("BODY_LIMIT_BYTES", "lots"),
        ("GATEWAY_ADDR", "not-an-address"),
        ("AMQP_PREFIX", "has space"),
        ("LOG_FORMAT", "xml"),
    ] {
        let output = tokio::process::Command::new(binary("test-gateway"))
            .env_clear()
            .env(name, value)
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{name}={value} must not start");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}
