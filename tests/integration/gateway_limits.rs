//! Body limit at exactly 1 MiB, routing errors, unconfigured providers.

use hookwire_tests::broker::{drain, take};
use hookwire_tests::gateway::{
    GatewaySettings, LIVETIP_TOKEN, PLUGGY_KEY_NEW, spawn_gateway, spawn_gateway_with,
};
use hookwire_tests::http_client::{chunked, get, post, raw_exchange, send};
use hookwire_tests::pluggy_signature;
use http::Method;
use serde_json::json;
use shared::Provider;

const MIB: usize = 1_048_576;

/// A valid LiveTip payload of exactly `size` bytes (padded in a field we do not
/// store: the stored ones have bounds of their own).
fn livetip_body(size: usize) -> Vec<u8> {
    let base = |pad: &str| {
        format!(
            r#"{{"event":"payment_pending","payment":{{"sender":"s","amount":1,"paymentId":"big","paid":false}},"padding":"{pad}"}}"#
        )
    };
    let padding = size - base("").len();
    let body = base(&"x".repeat(padding)).into_bytes();
    assert_eq!(body.len(), size);
    body
}

fn livetip_head(extra: &str) -> String {
    format!(
        "POST /webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Livetip-Webhook-Secret-Token: {LIVETIP_TOKEN}\r\nConnection: close\r\n{extra}\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_mebibyte_passes_one_byte_more_does_not() {
    let gw = spawn_gateway().await;
    let exact = livetip_body(MIB);
    let over = livetip_body(MIB + 1);

    let ok = post(
        gw.addr,
        "/webhook",
        &[
            ("content-type", "application/json"),
            ("x-livetip-webhook-secret-token", LIVETIP_TOKEN),
        ],
        exact.clone(),
    )
    .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);

    // Declared length over the limit: refused before the body is read.
    let (status, body) = raw_exchange(
        gw.addr,
        livetip_head(&format!("Content-Length: {}\r\n", over.len())),
        over.clone(),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        json!({"error": "Payload muito grande"})
    );

    // No declared length: cut off as soon as the stream passes the limit.
    let (status, body) = raw_exchange(
        gw.addr,
        livetip_head("Transfer-Encoding: chunked\r\n"),
        chunked(&over, 64 * 1024),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        json!({"error": "Payload muito grande"})
    );

    // Chunked at exactly the limit still passes.
    let (status, body) = raw_exchange(
        gw.addr,
        livetip_head("Transfer-Encoding: chunked\r\n"),
        chunked(&exact, 64 * 1024),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let taken = take(&gw.queue(Provider::LiveTip), 2).await;
    assert_eq!(taken.len(), 2);
    assert!(taken.iter().all(|t| t.body == exact));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pluggy_over_the_limit_is_refused_even_when_signed() {
    let gw = spawn_gateway().await;
    let body = format!(r#"{{"event":"item/updated","pad":"{}"}}"#, "y".repeat(MIB));
    let sig = pluggy_signature(PLUGGY_KEY_NEW, body.as_bytes());
    let head = format!(
        "POST /api/banking/pluggy/webhook/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Pluggy-Signature: {sig}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let (status, text) = raw_exchange(gw.addr, head, chunked(body.as_bytes(), 8192)).await;
    assert_eq!(status, 413);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["error"],
        "payload larger than 1048576 bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_wrong_methods_and_health() {
    let gw = spawn_gateway().await;
    let missing = get(gw.addr, "/nope").await;
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());
    let wrong = get(gw.addr, "/webhook").await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("POST"));
    assert!(wrong.json()["error"].is_string());
    let wrong = send(
        gw.addr,
        Method::PUT,
        "/api/banking/pluggy/webhook/",
        &[],
        "",
    )
    .await;
    assert_eq!((wrong.status, wrong.header("allow")), (405, Some("POST")));
    let wrong = post(gw.addr, "/healthz", &[], "").await;
    assert_eq!(
        (wrong.status, wrong.header("allow")),
        (405, Some("GET, HEAD"))
    );

    let health = get(gw.addr, "/healthz").await;
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok"}))
    );
    let ready = get(gw.addr, "/readyz").await;
    assert_eq!(
        (ready.status, ready.json()),
        (200, json!({"status": "ready"}))
    );
    assert!(ready.header("x-request-id").is_some() && ready.header("x-trace-id").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfigured_provider_accepts_nothing() {
    let gw = spawn_gateway_with(GatewaySettings {
        pluggy_secrets: None,
        pluggy_keys: None,
        livetip_tokens: Some(" , ".into()),
        ..GatewaySettings::default()
    })
    .await;
    gw.wait_ready().await;
    let pluggy = post(
        gw.addr,
        "/api/banking/pluggy/webhook/",
        &[
            ("x-pluggy-webhook-secret", ""),
            ("x-pluggy-signature", "00"),
        ],
        r#"{"event":"item/updated"}"#,
    )
    .await;
    assert_eq!(
        (pluggy.status, pluggy.json()),
        (503, json!({"error": "provider not configured"}))
    );
    let livetip = post(
        gw.addr,
        "/webhook",
        &[
            ("content-type", "application/json"),
            ("x-livetip-webhook-secret-token", ""),
        ],
        "{}",
    )
    .await;
    assert_eq!(
        (livetip.status, livetip.json()),
        (503, json!({"error": "provider not configured"}))
    );
    assert!(drain(&gw.queue(Provider::Pluggy)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_trickled_bodies_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = spawn_gateway_with(
        GatewaySettings::default()
            .arg("--header-read-timeout-ms", "500")
            .arg("--body-read-timeout-ms", "500"),
    )
    .await;
    gw.wait_ready().await;

    // Headers that never finish: the connection is closed.
    let mut slow = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    slow.write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A generous ceiling, only so a regression fails instead of hanging.
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        slow.read_to_end(&mut buf),
    )
    .await;
    assert!(
        closed.is_ok(),
        "server closed the connection of a client that never finished its headers"
    );

    // A body that trickles in: 408 once the body deadline passes.
    let mut trickle = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Livetip-Webhook-Secret-Token: {LIVETIP_TOKEN}\r\nContent-Length: 100\r\n\r\n{{\"ev"
    );
    trickle.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        trickle.read_to_end(&mut response),
    )
    .await;
    assert!(read.is_ok());
    assert!(
        String::from_utf8_lossy(&response).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&response)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Two slots, and held connections closed after a second of silence.
    let gw = spawn_gateway_with(
        GatewaySettings::default()
            .arg("--max-connections", "2")
            .arg("--connection-idle-timeout-ms", "1000"),
    )
    .await;
    gw.wait_ready().await;
    // Take both slots with keep-alive connections, each proven served by one answer
    // (a connection left over from wait_ready may hold a slot until it idles out).
    let mut held = Vec::new();
    for _ in 0..2 {
        let stream =
            hookwire_tests::eventually("a slot", std::time::Duration::from_secs(30), || async {
                let mut s = tokio::net::TcpStream::connect(gw.addr).await.ok()?;
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await
                    .ok()?;
                let mut buf = [0u8; 512];
                let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
                    .await
                    .ok()?
                    .ok()?;
                (n > 0).then_some(s)
            })
            .await;
        held.push(stream);
    }
    // A third client is not served before one of the two is closed (by the server,
    // when it idles out): of these events, a close must come first.
    let mut third = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let (mut a, mut b) = (held.remove(0), held.remove(0));
    let (mut sink_a, mut sink_b) = (Vec::new(), Vec::new());
    let first = tokio::select! {
        biased;
        _ = a.read_to_end(&mut sink_a) => "a held connection closed",
        _ = b.read_to_end(&mut sink_b) => "a held connection closed",
        _ = third.read_to_end(&mut response) => "the third was served",
    };
    assert_eq!(
        first, "a held connection closed",
        "the third client waited for a slot"
    );
    let served = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        third.read_to_end(&mut response),
    )
    .await;
    assert!(served.is_ok());
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"));
}
