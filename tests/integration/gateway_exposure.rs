//! What one unauthenticated client can hold: silent sockets, connections, unverified
//! bodies. Each attack runs against a live gateway (and the worker's listener) on
//! loopback, bounded in connections and time, while genuine deliveries go on.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hookwire_tests::database::TestDatabase;
use hookwire_tests::gateway::{
    GatewaySettings, LIVETIP_TOKEN, PLUGGY_NEW, TestGateway, post_livetip, post_pluggy,
    spawn_gateway_with,
};
use hookwire_tests::http_client::{get, raw_exchange};
use hookwire_tests::livetip::{ADMIN_TOKEN, stack};
use hookwire_tests::process::{GatewayProcess, free_port};
use hookwire_tests::worker::spawn_worker;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection from `source` (any 127.x address: one "client" each).
async fn connect_from(source: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(to).await
}

/// Whether the server closed `stream` (read gives end of file or an error).
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // An h2 server speaks first (SETTINGS, PING): keep reading until it hangs up.
            Ok(Ok(_)) => {}
        }
    }
}

/// HTTP/2 prior knowledge: the preface and an empty SETTINGS frame, then silence.
const H2C_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 3, last])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_are_closed_on_every_listener_while_the_gateway_answers() {
    let db = TestDatabase::postgres().await;
    let gw =
        spawn_gateway_with(GatewaySettings::default().arg("--connection-idle-timeout-ms", "500"))
            .await;
    gw.wait_ready().await;
    let worker = spawn_worker(
        &db.url,
        &gw.topology,
        &["--worker-http-idle-timeout", "500ms"],
    )
    .await;
    let listeners = [gw.addr, gw.admin, worker.health];
    let mut silent = Vec::new();
    for (n, addr) in listeners.iter().enumerate() {
        for i in 0..12u8 {
            let mut stream = connect_from(ip(10 * n as u8 + i % 4 + 1), *addr)
                .await
                .unwrap();
            if i % 3 == 0 {
                stream.write_all(H2C_PREFACE).await.unwrap();
            }
            silent.push((addr, stream));
        }
    }
    // The public listener answers meanwhile.
    assert_eq!(get(gw.addr, "/healthz").await.status, 200);
    for (addr, stream) in &mut silent {
        assert!(
            closed_by_server(stream, Duration::from_secs(10)).await,
            "a silent socket to {addr} was left open"
        );
    }
    assert_eq!(get(gw.addr, "/healthz").await.status, 200);
    assert_eq!(get(worker.health, "/healthz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_connections() {
    let gw =
        spawn_gateway_with(GatewaySettings::default().arg("--max-connections-per-client", "4"))
            .await;
    gw.wait_ready().await;
    let greedy = ip(100);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from(greedy, gw.addr).await.unwrap());
    }
    // The fifth from that address is closed at once, untouched by the idle timeout.
    let mut fifth = connect_from(greedy, gw.addr).await.unwrap();
    let _ = fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert!(closed_by_server(&mut fifth, Duration::from_secs(5)).await);
    let mut response = String::new();
    let _ = fifth.read_to_string(&mut response).await;
    assert!(
        response.is_empty(),
        "no answer on a refused connection: {response}"
    );
    // Another address is served; the four held ones still are.
    let mut other = connect_from(ip(101), gw.addr).await.unwrap();
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    other.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    held[0]
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    held[0].read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Holds one unverified Pluggy request: a well-formed signature, a body of `length`
/// bytes declared and `sent` of them sent. Returns when the server answers or closes
/// (or the test ends).
async fn hold_unverified_body(
    source: IpAddr,
    to: SocketAddr,
    length: usize,
    sent: usize,
) -> Option<u16> {
    let mut stream = connect_from(source, to).await.ok()?;
    let head = format!(
        "POST /api/banking/pluggy/webhook/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Pluggy-Signature: {}\r\nContent-Length: {length}\r\n\r\n",
        "0".repeat(64)
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    let _ = stream.write_all(&vec![b' '; sent]).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.get(9..12)?.parse().ok()
}

fn resident_peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_unverified_bodies_neither_starve_providers_nor_pass_the_memory_bound() {
    // The release defaults: per provider 512 in flight, 32 unverified, 4 per client,
    // 128 connections per address.
    let gateway = GatewayProcess::spawn(&[]).await;
    let addr = gateway.addr;
    hookwire_tests::http_client::wait_ready("gateway", addr).await;
    // The attack runs until the genuine deliveries below are done (however long they
    // take on a loaded machine), at most two minutes.
    let attack_over = std::sync::Arc::new(tokio::sync::Notify::new());
    let attack_ends = tokio::time::Instant::now() + Duration::from_secs(120);
    // 64 addresses x 9 connections, more than MAX_IN_FLIGHT (512): each declares a body
    // of 1 MiB - 1 byte and sends one byte of it (every eighth sends all but the last,
    // to weigh on memory), then holds; refilled as soon as the gateway cuts one.
    let mut attackers = Vec::new();
    for n in 0..576usize {
        let source = IpAddr::from([127, 0, 4, u8::try_from(n % 64 + 1).unwrap()]);
        let sent = if n % 8 == 0 { 1_048_574 } else { 1 };
        let over = attack_over.clone();
        attackers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let stop = over.notified();
            tokio::pin!(stop);
            loop {
                let held = hold_unverified_body(source, addr, 1_048_575, sent);
                tokio::select! {
                    answer = held => answers.push(answer),
                    () = &mut stop => break,
                    () = tokio::time::sleep_until(attack_ends) => break,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            answers
        }));
    }
    // Let the attack take hold: a probe from a fresh address finds every unverified
    // slot taken.
    hookwire_tests::eventually(
        "the attack fills the unverified slots",
        Duration::from_secs(60),
        || async {
            let probe = hold_unverified_body(IpAddr::from([127, 0, 5, 1]), addr, 1_048_575, 1);
            matches!(
                tokio::time::timeout(Duration::from_secs(5), probe).await,
                Ok(Some(503))
            )
            .then_some(())
        },
    )
    .await;
    // Genuine deliveries from their own address, through the attack: 20 of each.
    let mut genuine = Vec::new();
    for i in 0..20 {
        let livetip = json!({"event": "payment_pending", "payment": {"sender": "s", "amount": 1, "paymentId": format!("g-{i}"), "paid": false}});
        genuine.push(post_livetip(addr, &livetip).await.status);
        let pluggy = json!({"event": "item/updated", "eventId": format!("g-{i}"), "itemId": "it"});
        genuine.push(post_pluggy(addr, &pluggy).await.status);
    }
    attack_over.notify_waiters();
    let mut refused = std::collections::BTreeMap::new();
    for attacker in attackers {
        for answer in attacker.await.unwrap() {
            *refused.entry(answer).or_insert(0) += 1;
        }
    }
    assert!(
        genuine.iter().all(|s| *s == 200),
        "every genuine delivery answered 200 during the attack: {genuine:?}; attackers saw {refused:?}"
    );
    assert!(
        refused.keys().any(|a| matches!(a, Some(429 | 503))),
        "the attack was bounded, not served: {refused:?}"
    );
    // Resident memory stayed under the bound the settings promise.
    let config = <gateway::GatewayConfig as clap::Parser>::try_parse_from(["gateway"]).unwrap();
    let bound_kib = gateway::budget::worst_case(&config) / 1024;
    let peak = resident_peak_kib(gateway.pid());
    assert!(
        peak < bound_kib,
        "peak {peak} KiB against a bound of {bound_kib} KiB"
    );
    println!(
        "gateway peak resident {} MiB; bound {} MiB; attackers saw {refused:?}",
        peak / 1024,
        bound_kib / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codings_we_do_not_decode_and_duplicate_keys_are_refused() {
    let gw = spawn_gateway_with(GatewaySettings::default()).await;
    gw.wait_ready().await;
    let body = br#"{"event":"payment_pending","payment":{"sender":"s","amount":1,"paymentId":"p","paid":false}}"#;
    let chunked = hookwire_tests::http_client::chunked(body, 16);
    for coding in [
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: chunked\r\nContent-Encoding: gzip",
    ] {
        let head = format!(
            "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Livetip-Webhook-Secret-Token: {LIVETIP_TOKEN}\r\nConnection: close\r\n{coding}\r\n\r\n"
        );
        let (status, answer) = raw_exchange(gw.addr, head, chunked.clone()).await;
        assert_eq!(status, 415, "{coding}: {answer}");
    }
    let duplicate = br#"{"event":"payment_confirmed","payment":{"sender":"s","amount":1,"amount":500,"paymentId":"p","paid":true}}"#;
    let headers = [
        ("content-type", "application/json"),
        ("x-livetip-webhook-secret-token", LIVETIP_TOKEN),
    ];
    let raw =
        hookwire_tests::http_client::post(gw.addr, "/webhook", &headers, duplicate.to_vec()).await;
    assert_eq!(raw.status, 400);
    assert!(
        raw.json()["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("\"amount\" twice")
    );
    let pluggy = br#"{"event":"item/created","event":"item/deleted","eventId":"d"}"#;
    let headers = [
        ("content-type", "application/json"),
        ("x-pluggy-webhook-secret", PLUGGY_NEW),
    ];
    let raw = hookwire_tests::http_client::post(
        gw.addr,
        "/api/banking/pluggy/webhook/",
        &headers,
        pluggy.to_vec(),
    )
    .await;
    assert_eq!(raw.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let s = stack(&[]).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {ADMIN_TOKEN}");
        let response = hookwire_tests::http_client::send(
            s.gw.admin,
            http::Method::GET,
            "/webhook-stats",
            &[("authorization", auth.as_str())],
            String::new(),
        )
        .await;
        assert_eq!(response.status, 200, "{scheme}");
    }
    let basic = format!("Basic {ADMIN_TOKEN}");
    let response = hookwire_tests::http_client::send(
        s.gw.admin,
        http::Method::GET,
        "/webhook-stats",
        &[("authorization", basic.as_str())],
        String::new(),
    )
    .await;
    assert_eq!(response.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_secret_cannot_sign_and_cannot_be_the_signing_key() {
    let gw: TestGateway = spawn_gateway_with(GatewaySettings::default()).await;
    gw.wait_ready().await;
    let body = br#"{"event":"item/deleted","eventId":"forged","itemId":"i"}"#;
    let forged = hookwire_tests::pluggy_signature(PLUGGY_NEW, body);
    let headers = [
        ("content-type", "application/json"),
        ("x-pluggy-signature", forged.as_str()),
    ];
    let response = hookwire_tests::http_client::post(
        gw.addr,
        "/api/banking/pluggy/webhook/",
        &headers,
        body.to_vec(),
    )
    .await;
    assert_eq!(response.status, 403, "signed with a captured header secret");

    // The same value as both is refused at start-up, naming both variables.
    let port = free_port().to_string();
    let refused = tokio::process::Command::new(hookwire_tests::process::binary("test-gateway"))
        .env_clear()
        .env("GATEWAY_ADDR", format!("127.0.0.1:{port}"))
        .env("ADMIN_ADDR", "127.0.0.1:0")
        .env("PLUGGY_WEBHOOK_SECRET", "same-value")
        .env("PLUGGY_SIGNING_KEY", "other,same-value")
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        said.contains("PLUGGY_SIGNING_KEY and PLUGGY_WEBHOOK_SECRET must differ"),
        "{said}"
    );
}
