//! The gateway binary as operators run it: signals drain, bad config fails fast.

use std::time::Duration;

use hookwire_tests::broker::take;
use hookwire_tests::gateway::LIVETIP_TOKEN;
use hookwire_tests::process::{GatewayProcess, binary};
use serde_json::json;
use shared::Provider;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn signal_drains_and_exits_zero(signal: &str) {
    let admin_port = hookwire_tests::process::free_port();
    let admin_addr = format!("127.0.0.1:{admin_port}");
    let admin: std::net::SocketAddr = admin_addr.parse().unwrap();
    let mut gw = GatewayProcess::spawn(&[
        ("SHUTDOWN_READINESS_DELAY_MS", "300"),
        ("ADMIN_ADDR", admin_addr.as_str()),
    ])
    .await;
    let addr = gw.addr;
    hookwire_tests::http_client::wait_ready("gateway process", addr).await;

    let body = json!({"event": "payment_pending", "payment": {"sender": "s", "amount": 1, "paymentId": signal, "paid": false}}).to_string();
    let (first, rest) = body.as_bytes().split_at(5);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Livetip-Webhook-Secret-Token: {LIVETIP_TOKEN}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    // The request is in hand (the in-flight gauge counts it) before the signal.
    hookwire_tests::wait_livetip_in_flight(admin, 1.0).await;

    gw.signal(signal);
    // The rest of the body arrives only once the listener has closed to new clients.
    hookwire_tests::eventually("listener closed", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(addr)
            .await
            .is_err()
            .then_some(())
    })
    .await;
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
        // Unparsable: would otherwise retry forever; the password never printed.
        ("AMQP_URL", "amqp://user:s3cret@[not-a-host"),
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
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }
}

/// Secrets never reach the log, at the most verbose level, whatever the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_ever_logged() {
    use hookwire_tests::gateway::{PLUGGY_KEY_OLD, PLUGGY_NEW, PLUGGY_OLD};
    use hookwire_tests::http_client::post;
    let log_path = std::env::temp_dir().join(format!(
        "hookwire-log-{}.jsonl",
        uuid::Uuid::new_v4().simple()
    ));
    let file = std::fs::File::create(&log_path).unwrap();
    let mut gw = GatewayProcess::spawn_logging_to(
        &[
            ("RUST_LOG", "trace"),
            ("LOG_FORMAT", "json"),
            ("ADMIN_TOKEN", "admin-secret-token"),
        ],
        std::process::Stdio::from(file),
    )
    .await;
    hookwire_tests::http_client::wait_ready("gateway", gw.addr).await;
    let body = serde_json::json!({"event": "item/updated", "eventId": "log-1"}).to_string();
    let signature = hookwire_tests::pluggy_signature(PLUGGY_KEY_OLD, body.as_bytes());
    for headers in [
        vec![("x-pluggy-webhook-secret", PLUGGY_NEW)],
        vec![("x-pluggy-signature", signature.as_str())],
        vec![("x-pluggy-webhook-secret", "a-wrong-guess")],
    ] {
        let mut all = vec![("content-type", "application/json")];
        all.extend(headers);
        post(gw.addr, "/api/banking/pluggy/webhook/", &all, body.clone()).await;
    }
    let tip = serde_json::json!({"event": "payment_pending", "payment": {"sender": "s", "amount": 1, "paymentId": "log-2", "paid": false}}).to_string();
    for token in [LIVETIP_TOKEN, "wrong-token"] {
        post(
            gw.addr,
            "/webhook",
            &[
                ("content-type", "application/json"),
                ("x-livetip-webhook-secret-token", token),
            ],
            tip.clone(),
        )
        .await;
    }
    gw.signal("TERM");
    assert!(gw.wait_exit(Duration::from_secs(30)).await.success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        log.lines().count() > 5,
        "the gateway logged at trace level: {log}"
    );
    for secret in [
        PLUGGY_NEW,
        PLUGGY_OLD,
        PLUGGY_KEY_OLD,
        LIVETIP_TOKEN,
        "admin-secret-token",
        signature.as_str(),
        "a-wrong-guess",
        "wrong-token",
    ] {
        assert!(!log.contains(secret), "{secret} appears in the log");
    }
}
