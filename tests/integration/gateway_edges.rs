//! Edges SECURITY.md promises, each shown over HTTP against a running gateway: hostile
//! bodies, allow-lists, admin authentication on every route, bodies refused before they
//! are read or past the limit, and a silent broker stall under load.

use std::time::Duration;

use hookwire_tests::books::{assert_books_balance, run_load};
use hookwire_tests::database::TestDatabase;
use hookwire_tests::gateway::{
    GatewaySettings, LIVETIP_TOKEN, PLUGGY_NEW, TestGateway, spawn_gateway_with,
};
use hookwire_tests::http_client::{TestResponse, get, post, send};
use hookwire_tests::livetip::{ADMIN_TOKEN, stack};
use hookwire_tests::proxy::{Mode, TcpProxy};
use hookwire_tests::worker::spawn_worker;
use http::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn gateway(settings: GatewaySettings) -> TestGateway {
    let gw = spawn_gateway_with(settings).await;
    gw.wait_ready().await;
    gw
}

/// Inputs an attacker would try, sent as bodies to both provider routes: every answer
/// is a 4xx with a JSON body (never a 5xx), and the gateway still serves afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hostile_corpus_over_http_gets_4xx_json_and_the_gateway_stays_up() {
    let gw = gateway(GatewaySettings::default()).await;
    let corpus: Vec<Vec<u8>> = vec![
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        format!("{}1{}", r#"{"event":"x","payment":"#.repeat(10_000), "}".repeat(10_000)).into_bytes(),
        format!(
            r#"{{"event":"payment_confirmed","payment":{{"sender":"s","amount":1{},"paymentId":"p","paid":true}}}}"#,
            "0".repeat(10_000)
        )
        .into_bytes(),
        vec![b' '; 1_000_000],
        r#"{"event":"item/updated"}"#.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        b"{\"event\":\"a\xff\xfe\"}".to_vec(),
        br#"{"event":"payment_confirmed","payment":{"sender":"s","amount":1e400,"paymentId":"p","paid":true}}"#.to_vec(),
        br#"{"event":"payment_confirmed","payment":{"sender":"s","amount":"NaN","paymentId":"p","paid":true}}"#.to_vec(),
        b"\xef\xbb\xbf{\"event\":\"x\"}".to_vec(),
        br#"{"event":"item/created","event":"item/deleted","eventId":"d"}"#.to_vec(),
        b"".to_vec(),
        b"null".to_vec(),
    ];
    let routes: [(&str, (&str, &str)); 2] = [
        (
            "/webhook",
            ("x-livetip-webhook-secret-token", LIVETIP_TOKEN),
        ),
        (
            "/api/banking/pluggy/webhook/",
            ("x-pluggy-webhook-secret", PLUGGY_NEW),
        ),
    ];
    for (path, credential) in routes {
        for (n, body) in corpus.iter().enumerate() {
            let headers = [("content-type", "application/json"), credential];
            let response = post(gw.addr, path, &headers, body.clone()).await;
            let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
            assert!(
                response.status < 500,
                "{path} {shown:?}: {}",
                response.status
            );
            // Pluggy reads only its head: a LiveTip-shaped body with a monstrous amount
            // is an unknown Pluggy event, accepted as such. Everything else is refused.
            let harmless =
                path.contains("pluggy") && (2..=7).contains(&n) && response.status == 200;
            if !harmless {
                assert!(
                    (400..500).contains(&response.status),
                    "{path} {shown:?}: {}",
                    response.status
                );
                assert!(
                    serde_json::from_slice::<serde_json::Value>(&response.body)
                        .is_ok_and(|v| v["error"].is_string()),
                    "a JSON error: {:?}",
                    response.body
                );
            }
        }
    }
    assert_eq!(get(gw.addr, "/healthz").await.status, 200);
    assert_eq!(gw.readyz().await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livetip_has_its_own_source_allow_list() {
    let gw = gateway(
        GatewaySettings::default()
            .arg("--livetip-allowed-ips", "203.0.113.0/24")
            .arg("--trusted-proxies", "127.0.0.1"),
    )
    .await;
    let body = json!({"event": "payment_pending", "payment": {"sender": "s", "amount": 1, "paymentId": "ip", "paid": false}}).to_string();
    let with = |xff: &'static str| {
        [
            ("content-type", "application/json"),
            ("x-livetip-webhook-secret-token", LIVETIP_TOKEN),
            ("x-forwarded-for", xff),
        ]
    };
    let refused = post(gw.addr, "/webhook", &with("198.51.100.7"), body.clone()).await;
    assert_eq!(refused.status, 403);
    assert!(refused.json()["error"].is_string());
    assert_eq!(
        post(gw.addr, "/webhook", &with("203.0.113.9"), body.clone())
            .await
            .status,
        200
    );
    // Pluggy has no list configured: any source.
    let pluggy = post(
        gw.addr,
        "/api/banking/pluggy/webhook/",
        &[
            ("content-type", "application/json"),
            ("x-pluggy-webhook-secret", PLUGGY_NEW),
            ("x-forwarded-for", "198.51.100.7"),
        ],
        json!({"event": "item/updated", "eventId": "ip"}).to_string(),
    )
    .await;
    assert_eq!(pluggy.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_needs_the_token() {
    let s = stack(&[]).await;
    let routes: [(Method, &str, &str); 7] = [
        (Method::GET, "/webhook-logs", ""),
        (Method::GET, "/webhook-stats", ""),
        (Method::GET, "/payments", ""),
        (
            Method::POST,
            "/payments",
            r#"{"userName":"u","amount":"1.00"}"#,
        ),
        (Method::GET, "/payments/HW-00000000", ""),
        (Method::GET, "/metrics", ""),
        (Method::POST, "/test-webhook", "{}"),
    ];
    let right = format!("Bearer {ADMIN_TOKEN}");
    for (method, path, body) in routes {
        for (auth, expected) in [
            (None, Some(401)),
            (Some("Bearer wrong"), Some(403)),
            (Some(right.as_str()), None),
        ] {
            let mut headers = vec![("content-type", "application/json")];
            if let Some(auth) = auth {
                headers.push(("authorization", auth));
            }
            let response: TestResponse =
                send(s.gw.admin, method.clone(), path, &headers, body.to_owned()).await;
            match expected {
                Some(status) => {
                    assert_eq!(response.status, status, "{method} {path} with {auth:?}")
                }
                None => assert!(
                    ![401, 403].contains(&response.status),
                    "{method} {path} with the token: {}",
                    response.status
                ),
            }
        }
    }
}

/// A credential that fails in the headers is answered before the body is sent, and a
/// body past the limit is cut off while it is still arriving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_refused_before_they_are_read_or_past_the_limit() {
    let gw = gateway(GatewaySettings::default()).await;
    // Declares 500 KiB, sends none of it: the 403 comes anyway.
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Livetip-Webhook-Secret-Token: wrong\r\nContent-Length: 512000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut answer))
        .await
        .expect("an answer without the body")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 403"));

    // A chunked body that goes on past 1 MiB: 413 arrives while the client still has
    // megabytes to send, and the connection is closed rather than read to the end.
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Livetip-Webhook-Secret-Token: {LIVETIP_TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
        let mut sent = 0usize;
        for _ in 0..160 {
            // 10 MiB in all, unless the server stops reading first.
            if writer.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            sent += 64 * 1024;
        }
        sent
    });
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), reader.read_to_end(&mut response)).await;
    assert!(
        String::from_utf8_lossy(&response).starts_with("HTTP/1.1 413"),
        "{:?}",
        String::from_utf8_lossy(&response)
    );
    let sent = writing.await.unwrap();
    assert!(
        sent < 10 * 1024 * 1024,
        "the server stopped reading (sent {sent} bytes)"
    );
}

/// A network between gateway and broker that silently drops (connection open, nothing
/// forwarded) under steady load: no false 2xx, and every 2xx applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stall_under_load_loses_nothing_answered() {
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap(), Mode::Up).await;
    let gw = gateway(
        GatewaySettings {
            amqp_url: proxy.amqp_url(),
            ..GatewaySettings::default()
        }
        .arg("--confirm-timeout-ms", "1000"),
    )
    .await;
    let db = TestDatabase::postgres().await;
    let worker = spawn_worker(&db.url, &gw.topology, &[]).await;
    worker.wait_consuming().await;
    let load = tokio::spawn(run_load(
        gw.addr,
        "stall",
        1_600,
        8,
        Duration::from_millis(20),
    ));
    let conn = db.connect().await;
    hookwire_tests::eventually("events flow", Duration::from_secs(30), || async {
        (hookwire_tests::worker::finished_count(&conn).await >= 50).then_some(())
    })
    .await;
    proxy.set(Mode::Stall);
    // Stalled until the gateway has answered some requests 503 (its confirms never
    // came), then the network heals.
    hookwire_tests::eventually("the stall is felt", Duration::from_secs(30), || async {
        let metrics = hookwire_tests::scrape(gw.admin).await;
        (hookwire_tests::metric_value(
            &metrics,
            "hookwire_gateway_requests_total",
            &["route=\"/webhook\"", "status=\"503\""],
        ) > 0.0)
            .then_some(())
    })
    .await;
    proxy.set(Mode::Up);
    let ledger = load.await.unwrap();
    assert!(ledger.refused > 0, "the stall was felt by the senders");
    assert_books_balance(
        &conn,
        &hookwire_tests::amqp_url(),
        &gw.topology.topology,
        &ledger,
        Duration::from_secs(90),
    )
    .await;
}
