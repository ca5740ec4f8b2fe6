//! Traces and metrics as SREs and ops see them: gateway and worker as processes,
//! exporting OTLP to a receiver on loopback and serving Prometheus text.

use std::net::SocketAddr;
use std::time::Duration;

use hookwire_tests::database::TestDatabase;
use hookwire_tests::gateway::{LIVETIP_TOKEN, PLUGGY_NEW, PLUGGY_OLD};
use hookwire_tests::http_client::{get, post, wait_ready};
use hookwire_tests::otlp::{ExportedSpan, Receiver};
use hookwire_tests::process::{GatewayProcess, free_port};
use hookwire_tests::worker::{WorkerProcess, wait_finished};
use hookwire_tests::{eventually, metric_value as value};
use sea_orm::EntityTrait;

const PROVIDER_TRACEPARENT: &str = "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-01";

struct Stack {
    gateway: GatewayProcess,
    admin: SocketAddr,
    worker: WorkerProcess,
    worker_metrics: SocketAddr,
    db: TestDatabase,
}

async fn start(otel: &[(&str, &str)]) -> Stack {
    let db = TestDatabase::postgres().await;
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin_addr = admin.to_string();
    let mut env = otel.to_vec();
    env.push(("ADMIN_ADDR", &admin_addr));
    let gateway = GatewayProcess::spawn(&env).await;
    let worker_metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let worker = WorkerProcess::spawn_with(
        &db.url,
        &gateway.topology,
        &[],
        &worker_metrics.to_string(),
        otel,
    );
    for (what, addr) in [("gateway", gateway.addr), ("worker", worker_metrics)] {
        wait_ready(what, addr).await;
    }
    Stack {
        gateway,
        admin,
        worker,
        worker_metrics,
        db,
    }
}

async fn send_pluggy(stack: &Stack, event_id: &str) -> hookwire_tests::http_client::TestResponse {
    let body =
        serde_json::json!({"event": "item/updated", "eventId": event_id, "itemId": "item-obs"});
    post(
        stack.gateway.addr,
        "/api/banking/pluggy/webhook/",
        &[
            ("content-type", "application/json"),
            ("x-pluggy-webhook-secret", PLUGGY_NEW),
            ("traceparent", PROVIDER_TRACEPARENT),
        ],
        body.to_string(),
    )
    .await
}

async fn send_livetip(
    stack: &Stack,
    payment_id: &str,
) -> hookwire_tests::http_client::TestResponse {
    let body = serde_json::json!({"event": "payment_confirmed", "payment": {
        "sender": "Maria Confidencial", "amount": "25.50", "paymentId": payment_id, "paid": true}});
    post(
        stack.gateway.addr,
        "/webhook",
        &[
            ("content-type", "application/json"),
            ("x-livetip-webhook-secret-token", LIVETIP_TOKEN),
        ],
        body.to_string(),
    )
    .await
}

async fn stop(stack: &mut Stack) {
    stack.gateway.signal("TERM");
    stack.worker.signal("TERM");
    assert!(
        stack
            .gateway
            .wait_exit(Duration::from_secs(30))
            .await
            .success()
    );
    assert!(
        stack
            .worker
            .wait_exit(Duration::from_secs(30))
            .await
            .success()
    );
}

fn trace_id(response: &hookwire_tests::http_client::TestResponse) -> String {
    response.headers["x-trace-id"].to_str().unwrap().to_owned()
}

fn one<'a>(
    spans: &'a [ExportedSpan],
    what: &str,
    pick: impl Fn(&ExportedSpan) -> bool,
) -> &'a ExportedSpan {
    let found: Vec<_> = spans.iter().filter(|s| pick(s)).collect();
    assert_eq!(found.len(), 1, "exactly one {what}: {found:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_per_event_from_the_request_to_the_database() {
    let receiver = Receiver::start().await;
    let endpoint = receiver.endpoint();
    let mut stack = start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await;
    let pluggy = send_pluggy(&stack, "evt-obs-1").await;
    let livetip = send_livetip(&stack, "lt-obs-1").await;
    assert_eq!((pluggy.status, livetip.status), (200, 200));
    let conn = stack.db.connect().await;
    wait_finished(&conn, 2, Duration::from_secs(30)).await;
    let rows = shared::db::entities::webhook_event::Entity::find()
        .all(&conn)
        .await
        .unwrap();
    stop(&mut stack).await;
    let spans = receiver.spans();

    for (response, provider, queue_suffix) in [
        (&pluggy, "pluggy", ".pluggy"),
        (&livetip, "livetip", ".livetip"),
    ] {
        let trace = trace_id(response);
        assert_eq!(trace.len(), 32);
        let in_trace: Vec<ExportedSpan> = spans
            .iter()
            .filter(|s| s.trace_id == trace)
            .cloned()
            .collect();
        let server = one(&in_trace, "server span", |s| s.kind == 2);
        assert_eq!(server.service, "hookwire-gateway");
        assert_eq!(server.parent_span_id, "", "a request starts its own trace");
        assert_eq!(server.attr("http.request.method"), Some("POST"));
        assert_eq!(server.attr("http.response.status_code"), Some("200"));
        assert_eq!(server.attr("provider"), Some(provider));
        assert!(server.attr("http.route").is_some() && server.attr("client.address").is_some());
        one(&in_trace, "verify span", |s| {
            s.name == "verify" && s.parent_span_id == server.span_id
        });
        let publish = one(&in_trace, "publish span", |s| s.kind == 4);
        assert_eq!(publish.parent_span_id, server.span_id);
        assert_eq!(publish.attr("messaging.system"), Some("rabbitmq"));
        assert!(
            publish
                .attr("messaging.destination.name")
                .is_some_and(|x| x.ends_with(".ingest")),
            "events go to the direct ingest exchange"
        );
        assert!(publish.attr("messaging.message.id").is_some());
        assert!(
            publish
                .attr("messaging.rabbitmq.destination.routing_key")
                .is_some_and(|k| k.starts_with(provider))
        );
        let consume = one(&in_trace, "consume span", |s| s.kind == 5);
        assert_eq!(consume.service, "hookwire-worker");
        assert_eq!(
            consume.parent_span_id, publish.span_id,
            "the consumer continues the publisher's trace"
        );
        assert!(
            consume
                .attr("messaging.destination.name")
                .is_some_and(|q| q.ends_with(queue_suffix))
        );
        assert_eq!(consume.attr("hookwire.attempt"), Some("1"));
        let db_spans: Vec<_> = in_trace
            .iter()
            .filter(|s| s.attr("db.system.name") == Some("postgresql"))
            .collect();
        assert!(db_spans.len() >= 2, "claim and apply");
        assert!(db_spans.iter().all(|s| s.parent_span_id == consume.span_id));
        // The trace id is on the inbox row too.
        assert!(
            rows.iter()
                .any(|r| r.trace_id.as_deref() == Some(trace.as_str()) && r.provider == provider)
        );
    }
    let server = spans
        .iter()
        .find(|s| s.trace_id == trace_id(&pluggy) && s.kind == 2)
        .unwrap();
    assert_eq!(
        server.links,
        vec!["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_owned()],
        "the provider's own trace is linked, not the parent"
    );
    assert_eq!(
        spans
            .iter()
            .find(|s| s.trace_id == trace_id(&pluggy) && s.kind == 5)
            .and_then(|s| s.attr("provider_event_id")),
        Some("evt-obs-1")
    );
    let raw = String::from_utf8_lossy(&receiver.raw()).into_owned();
    for secret in [PLUGGY_NEW, PLUGGY_OLD, LIVETIP_TOKEN, "Maria Confidencial"] {
        assert!(!raw.contains(secret), "{secret} exported");
    }
}

async fn scrape(addr: SocketAddr, path: &str) -> String {
    let response = get(addr, path).await;
    assert_eq!(response.status, 200);
    String::from_utf8_lossy(&response.body).into_owned()
}

/// The value of the series whose name and labels all appear in the line.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_what_happened() {
    let mut stack = start(&[]).await;
    for i in 0..3 {
        assert_eq!(send_pluggy(&stack, &format!("evt-m-{i}")).await.status, 200);
    }
    // A provider retry of the first event: accepted again, skipped by the worker.
    assert_eq!(send_pluggy(&stack, "evt-m-0").await.status, 200);
    assert_eq!(send_livetip(&stack, "lt-m-1").await.status, 200);
    let refused = post(
        stack.gateway.addr,
        "/webhook",
        &[
            ("content-type", "application/json"),
            ("x-livetip-webhook-secret-token", "wrong"),
        ],
        "{}".to_owned(),
    )
    .await;
    assert_eq!(refused.status, 403);
    let conn = stack.db.connect().await;
    wait_finished(&conn, 4, Duration::from_secs(30)).await;

    let gateway = scrape(stack.admin, "/metrics").await;
    let requests = "hookwire_gateway_requests_total";
    assert_eq!(
        value(
            &gateway,
            requests,
            &["provider=\"pluggy\"", "status=\"200\""]
        ),
        4.0
    );
    assert_eq!(
        value(
            &gateway,
            requests,
            &["provider=\"livetip\"", "status=\"200\""]
        ),
        1.0
    );
    assert_eq!(
        value(
            &gateway,
            requests,
            &["provider=\"livetip\"", "status=\"403\""]
        ),
        1.0
    );
    assert_eq!(
        value(
            &gateway,
            "hookwire_gateway_rejected_total",
            &["provider=\"livetip\"", "reason=\"invalid_credential\""]
        ),
        1.0
    );
    assert_eq!(
        value(
            &gateway,
            "hookwire_gateway_request_duration_seconds_count",
            &["route=\"/webhook\""]
        ),
        2.0
    );
    assert_eq!(
        value(
            &gateway,
            "hookwire_gateway_publish_confirm_seconds_count",
            &["outcome=\"confirmed\""]
        ),
        5.0
    );
    assert_eq!(value(&gateway, "hookwire_broker_connected", &[]), 1.0);

    let worker = eventually(
        "the duplicate is counted",
        Duration::from_secs(20),
        || async {
            let text = scrape(stack.worker_metrics, "/metrics").await;
            (value(
                &text,
                "hookwire_worker_duplicates_skipped_total",
                &["provider=\"pluggy\""],
            ) == 1.0)
                .then_some(text)
        },
    )
    .await;
    let consumed = "hookwire_worker_messages_consumed_total";
    assert_eq!(
        value(
            &worker,
            consumed,
            &["provider=\"pluggy\"", "event=\"item/updated\""]
        ),
        4.0
    );
    assert_eq!(
        value(
            &worker,
            consumed,
            &["provider=\"livetip\"", "event=\"payment_confirmed\""]
        ),
        1.0
    );
    assert_eq!(
        value(&worker, "hookwire_worker_messages_succeeded_total", &[]),
        4.0
    );
    assert_eq!(
        value(&worker, "hookwire_worker_messages_dead_lettered_total", &[]),
        0.0
    );
    assert_eq!(
        value(
            &worker,
            "hookwire_worker_handler_duration_seconds_count",
            &[]
        ),
        5.0
    );
    assert_eq!(value(&worker, "hookwire_broker_connected", &[]), 1.0);
    // Queue depth comes from the broker, sampled when the worker starts and every 15 s.
    assert!(worker.contains("hookwire_queue_messages{"));
    stop(&mut stack).await;
}

/// Every settled delivery writes one INFO line an SRE can grep: provider, event,
/// outcome, attempt, duration and the ids that find the event again; the event's
/// other lines are below INFO.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_settled_event_writes_one_info_line_with_its_ids() {
    let db = TestDatabase::postgres().await;
    let gw = hookwire_tests::gateway::spawn_gateway().await;
    let log_path = std::env::temp_dir().join(format!(
        "hookwire-settled-{}.jsonl",
        uuid::Uuid::new_v4().simple()
    ));
    let file = std::fs::File::create(&log_path).unwrap();
    let mut worker = WorkerProcess::spawn_logging_to(
        &db.url,
        &gw.topology,
        &[],
        "127.0.0.1:0",
        &[("LOG_FORMAT", "json"), ("RUST_LOG", "info")],
        std::process::Stdio::from(file),
    );
    let body = serde_json::json!({"event": "payment_confirmed", "payment": {"sender": "fan_42",
        "amount": "7.00", "currency": "BRL", "paymentId": "settled-line", "paid": true}})
    .to_string();
    let headers = [
        ("content-type", "application/json"),
        ("x-livetip-webhook-secret-token", LIVETIP_TOKEN),
    ];
    let first = post(gw.addr, "/webhook", &headers, body.clone()).await;
    assert_eq!(first.status, 200);
    let conn = db.connect().await;
    wait_finished(&conn, 1, Duration::from_secs(30)).await;
    // The same body again: a copy, acknowledged without effect.
    let second = post(gw.addr, "/webhook", &headers, body).await;
    assert_eq!(second.status, 200);
    // A message that is no envelope at all: a dead letter at once.
    hookwire_tests::broker::publish_raw(
        &gw.topology.topology.events_exchange(),
        "livetip.payment_confirmed",
        b"not an envelope",
        lapin::BasicProperties::default(),
    )
    .await;
    let dead = gw
        .topology
        .topology
        .dead_letter_queue(shared::Provider::LiveTip);
    let all_lines = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect::<Vec<_>>()
    };
    let settled_lines = || {
        all_lines()
            .into_iter()
            .filter(|l| l["target"] == "hookwire::settled")
            .collect::<Vec<_>>()
    };
    eventually("three settled lines", Duration::from_secs(30), || async {
        (settled_lines().len() >= 3 && hookwire_tests::broker::ready_messages(&dead).await == 1)
            .then_some(())
    })
    .await;
    worker.signal("TERM");
    assert!(worker.wait_exit(Duration::from_secs(30)).await.success());
    let lines = settled_lines();
    // Nothing else about the event at INFO: every INFO line naming its request or trace
    // is the settled one.
    let request_id = first.header("x-request-id").unwrap();
    let trace_id = first.header("x-trace-id").unwrap();
    let about_it: Vec<_> = all_lines()
        .into_iter()
        .filter(|l| l["level"] == "INFO")
        .filter(|l| {
            let text = l.to_string();
            text.contains(request_id) || text.contains(trace_id)
        })
        .collect();
    assert_eq!(about_it.len(), 1, "{about_it:?}");
    assert_eq!(about_it[0]["target"], "hookwire::settled");
    let _ = std::fs::remove_file(&log_path);
    let outcomes: Vec<&str> = lines.iter().filter_map(|l| l["outcome"].as_str()).collect();
    assert_eq!(
        outcomes,
        ["applied", "duplicate", "dead_letter"],
        "{lines:?}"
    );
    let row = hookwire_tests::worker::event_rows(&conn).await.remove(0);
    for (line, answered) in lines[..2].iter().zip([&first, &second]) {
        assert_eq!(line["level"], "INFO");
        assert_eq!(
            (
                line["provider"].as_str(),
                line["event"].as_str(),
                line["attempt"].as_u64()
            ),
            (Some("livetip"), Some("payment_confirmed"), Some(1))
        );
        assert_eq!(line["event_id"].as_str(), Some(row.id.to_string().as_str()));
        // Each delivery's own trace: the copy's request started a trace of its own.
        assert_eq!(line["trace_id"].as_str(), answered.header("x-trace-id"));
        assert!(line["duration_ms"].as_f64().is_some());
    }
    assert_eq!(
        lines[0]["request_id"].as_str(),
        first.header("x-request-id"),
        "the request id the provider was answered with"
    );
    assert_eq!(lines[0]["trace_id"].as_str(), row.trace_id.as_deref());
    assert_eq!(lines[0]["status"], "processed");
    assert_eq!(lines[2]["provider"], "livetip");
}
