//! The admin listener: the spec's monitoring routes, the payments API, auth, the
//! development-only test webhook, and behaviour without a database.

use std::collections::BTreeSet;

use clap::Parser as _;
use gateway::{Application, GatewayConfig};
use hookwire_tests::gateway::{GatewaySettings, LIVETIP_TOKEN, post_pluggy, spawn_gateway_with};
use hookwire_tests::http_client::{get, post, send};
use hookwire_tests::livetip::{
    ADMIN_TOKEN, admin, expect_payment, livetip_event, settled, stack, wait_status,
};
use http::Method;
use serde_json::{Value, json};

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_logs_filters_limit_and_shape() {
    let s = stack(&[]).await;
    livetip_event(
        s.gw.addr,
        "payment_pending",
        json!({"sender": "a", "amount": 1, "paymentId": "l1", "paid": false}),
    )
    .await;
    livetip_event(
        s.gw.addr,
        "payment_confirmed",
        json!({"sender": "a", "amount": 1, "paymentId": "l2", "paid": true}),
    )
    .await;
    let rejected = post(
        s.gw.addr,
        "/webhook",
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(rejected.status, 401);
    settled(&s.conn, 2).await;
    hookwire_tests::eventually(
        "validation entry stored",
        std::time::Duration::from_secs(10),
        || async {
            (!hookwire_tests::livetip::logs_of(&s.conn, "validation")
                .await
                .is_empty())
            .then_some(())
        },
    )
    .await;

    let all = admin(s.gw.admin, Method::GET, "/webhook-logs", None).await;
    assert_eq!(all.status, 200);
    let body = all.json();
    assert_eq!(keys(&body), ["count", "logs"].map(String::from).into());
    let logs = body["logs"].as_array().unwrap();
    assert_eq!(body["count"].as_u64(), Some(logs.len() as u64));
    // pending: webhook, payment_pending, response; confirmed: webhook, payment_create, response; validation.
    assert_eq!(logs.len(), 7);
    for log in logs {
        assert_eq!(
            keys(log),
            [
                "data",
                "dataTruncated",
                "event",
                "eventId",
                "id",
                "ip",
                "requestId",
                "status",
                "timestamp",
                "traceId",
                "type"
            ]
            .map(String::from)
            .into()
        );
        assert!(log["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(
            log["data"].is_string() || log["data"].is_null(),
            "data is JSON text, as in the spec"
        );
    }
    let times: Vec<&str> = logs
        .iter()
        .map(|l| l["timestamp"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");

    let typed = admin(s.gw.admin, Method::GET, "/webhook-logs?type=webhook", None)
        .await
        .json();
    assert_eq!(typed["count"], 2);
    let by_event = admin(
        s.gw.admin,
        Method::GET,
        "/webhook-logs?event=payment_confirmed&type=payment_create",
        None,
    )
    .await
    .json();
    assert_eq!(by_event["count"], 1);
    assert_eq!(by_event["logs"][0]["status"], "success");
    let by_status = admin(s.gw.admin, Method::GET, "/webhook-logs?status=error", None)
        .await
        .json();
    assert_eq!(by_status["count"], 1);
    assert_eq!(by_status["logs"][0]["type"], "validation");
    assert_eq!(
        admin(s.gw.admin, Method::GET, "/webhook-logs?limit=2", None)
            .await
            .json()["count"],
        2
    );
    assert_eq!(
        admin(s.gw.admin, Method::GET, "/webhook-logs?limit=999999", None)
            .await
            .json()["count"],
        7,
        "capped, not refused"
    );
    assert_eq!(
        admin(s.gw.admin, Method::GET, "/webhook-logs?limit=0", None)
            .await
            .status,
        400
    );
    assert_eq!(
        admin(s.gw.admin, Method::GET, "/webhook-logs?limit=abc", None)
            .await
            .status,
        400
    );
}

/// Log entries carry our event id, the gateway's request id and the trace id, filter
/// by each, link to the trace, and show only a bounded preview of `data`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_logs_carry_ids_filter_by_them_and_preview_data() {
    let s = stack(&["--trace-ui-url", "https://traces.test/t/{traceId}"]).await;
    let long = "x".repeat(4000);
    let answered = post(
        s.gw.addr,
        "/webhook",
        &[
            ("content-type", "application/json"),
            ("x-livetip-webhook-secret-token", LIVETIP_TOKEN),
        ],
        json!({"event": "payment_pending", "payment": {"sender": "a", "amount": 1,
               "paymentId": "big-1", "paid": false, "content": long}})
        .to_string(),
    )
    .await;
    assert_eq!(answered.status, 200);
    livetip_event(
        s.gw.addr,
        "payment_pending",
        json!({"sender": "b", "amount": 2, "paymentId": "other", "paid": false}),
    )
    .await;
    settled(&s.conn, 2).await;
    let request_id = answered.header("x-request-id").unwrap();
    let trace_id = answered.header("x-trace-id").unwrap();
    let by_request = admin(
        s.gw.admin,
        Method::GET,
        &format!("/webhook-logs?requestId={request_id}"),
        None,
    )
    .await
    .json();
    let logs = by_request["logs"].as_array().unwrap();
    assert!(!logs.is_empty());
    let event_id = logs[0]["eventId"].as_str().unwrap().to_owned();
    for log in logs {
        assert_eq!(log["requestId"], request_id);
        assert_eq!(log["traceId"], trace_id);
        assert_eq!(log["eventId"], event_id.as_str());
        assert_eq!(
            log["traceUrl"],
            format!("https://traces.test/t/{trace_id}").as_str()
        );
    }
    for filter in [format!("eventId={event_id}"), format!("traceId={trace_id}")] {
        let same = admin(
            s.gw.admin,
            Method::GET,
            &format!("/webhook-logs?{filter}"),
            None,
        )
        .await
        .json();
        assert_eq!(same["count"], by_request["count"], "{filter}");
    }
    let webhook = logs.iter().find(|l| l["type"] == "webhook").unwrap();
    assert_eq!(webhook["dataTruncated"], true);
    assert_eq!(
        webhook["data"].as_str().unwrap().chars().count(),
        gateway::admin::monitoring::DATA_PREVIEW_CHARS
    );
    assert_eq!(
        admin(s.gw.admin, Method::GET, "/webhook-logs?eventId=nope", None)
            .await
            .status,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_stats_has_exactly_the_spec_shape() {
    let s = stack(&[]).await;
    let id = expect_payment(s.gw.admin, "zoe", "1.00").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_payment(s.gw.admin, "zoe", "2.00").await;
    livetip_event(
        s.gw.addr,
        "payment_confirmed",
        json!({"sender": "zoe", "amount": 1, "paymentId": "z1", "paid": true, "content": id}),
    )
    .await;
    livetip_event(
        s.gw.addr,
        "payment_pending",
        json!({"sender": "nobody", "amount": 9, "paymentId": "z2", "paid": false}),
    )
    .await;
    settled(&s.conn, 2).await;
    wait_status(&s.conn, &id, "completed").await;
    let stats = admin(s.gw.admin, Method::GET, "/webhook-stats", None).await;
    assert_eq!(stats.status, 200);
    let stats = stats.json();
    assert_eq!(
        keys(&stats),
        [
            "eventCounts",
            "paymentStats",
            "statusCounts",
            "totalPayments",
            "totalWebhooks"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(stats["totalWebhooks"], 2);
    assert_eq!(stats["totalPayments"], 2);
    assert_eq!(
        stats["eventCounts"],
        json!({"payment_confirmed": 1, "payment_pending": 1})
    );
    assert_eq!(
        stats["paymentStats"],
        json!({"cancelled": 0, "completed": 1, "failed": 0, "pending": 1, "underpaid": 0})
    );
    // received x2 (webhook), success x3 (payment_update, 2 responses), ignored x1 (unmatched pending).
    assert_eq!(
        stats["statusCounts"],
        json!({"ignored": 1, "received": 2, "success": 3})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payments_api_creates_reads_and_lists() {
    let s = stack(&[]).await;
    let created = admin(
        s.gw.admin,
        Method::POST,
        "/payments",
        Some(json!({"userName": " ana ", "amount": 25.5})),
    )
    .await;
    assert_eq!(created.status, 201);
    let p = created.json();
    let id = p["id"].as_str().unwrap();
    assert!(shared::payment_id::is_valid(id), "{id}");
    assert_eq!(
        (
            p["userName"].as_str(),
            p["amount"].as_str(),
            p["currency"].as_str(),
            p["status"].as_str()
        ),
        (Some("ana"), Some("25.50"), Some("BRL"), Some("pending"))
    );
    assert_eq!(p["message"], id);
    assert!(p["createdAt"].as_str().unwrap().ends_with('Z'));
    let btc = admin(
        s.gw.admin,
        Method::POST,
        "/payments",
        Some(json!({"userName": "bo", "amount": "0.00012345", "currency": "btc"})),
    )
    .await
    .json();
    assert_eq!(
        (btc["amount"].as_str(), btc["currency"].as_str()),
        (Some("0.00012345"), Some("BTC"))
    );

    let fetched = admin(
        s.gw.admin,
        Method::GET,
        &format!("/payments/{}", id.to_lowercase()),
        None,
    )
    .await;
    assert_eq!(
        (fetched.status, fetched.json()["id"].as_str()),
        (200, Some(id))
    );
    let missing = admin(s.gw.admin, Method::GET, "/payments/HW-ZZZZZZZZ", None).await;
    assert_eq!(
        (missing.status, missing.json()),
        (
            404,
            serde_json::json!({"error": "payment not found", "id": "HW-ZZZZZZZZ"})
        ),
        "a missing payment, not a missing route"
    );
    let listed = admin(
        s.gw.admin,
        Method::GET,
        "/payments?status=pending&limit=1",
        None,
    )
    .await
    .json();
    assert_eq!(listed["count"], 1);
    assert_eq!(
        admin(s.gw.admin, Method::GET, "/payments?status=completed", None)
            .await
            .json()["count"],
        0
    );
    assert_eq!(
        admin(s.gw.admin, Method::GET, "/payments?status=paid", None)
            .await
            .status,
        400
    );

    for bad in [
        json!({"amount": 1}),
        json!({"userName": "", "amount": 1}),
        json!({"userName": "a", "amount": -1}),
        json!({"userName": "a", "amount": "x"}),
        json!({"userName": "a", "amount": 1, "currency": "R$"}),
    ] {
        let response = admin(s.gw.admin, Method::POST, "/payments", Some(bad.clone())).await;
        assert_eq!(response.status, 400, "{bad}");
        assert!(response.json()["reason"].is_string());
    }
    assert_eq!(
        admin(s.gw.admin, Method::DELETE, "/payments", None)
            .await
            .status,
        405
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_the_token() {
    let s = stack(&[]).await;
    let none = get(s.gw.admin, "/webhook-stats").await;
    assert_eq!(none.status, 401);
    let wrong = send(
        s.gw.admin,
        Method::GET,
        "/webhook-stats",
        &[("authorization", "Bearer nope")],
        "",
    )
    .await;
    assert_eq!(wrong.status, 403);
    let right = send(
        s.gw.admin,
        Method::GET,
        "/webhook-stats",
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        "",
    )
    .await;
    assert_eq!(right.status, 200);
    // Unknown paths are not revealed before authentication.
    assert_eq!(get(s.gw.admin, "/nothing").await.status, 401);
    // The admin routes are not on the public listener.
    assert_eq!(get(s.gw.addr, "/webhook-stats").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_admin_listener_is_loopback_only() {
    let base = |admin_addr: &str| {
        GatewayConfig::try_parse_from([
            "gateway",
            "--gateway-addr",
            "127.0.0.1:0",
            "--admin-addr",
            admin_addr,
            "--amqp-prefix",
            "hwtest-noadmin",
        ])
        .unwrap()
    };
    let refused = Application::build(base("0.0.0.0:0")).await;
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("ADMIN_TOKEN")),
        "a network-reachable admin listener without a token must not start"
    );
    let gw = spawn_gateway_with(GatewaySettings::default()).await;
    let open = get(gw.admin, "/healthz").await;
    assert_eq!(
        open.status, 200,
        "loopback without a token: no authentication"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_webhook_runs_the_real_path_in_development_only() {
    let production = stack(&[]).await;
    let body = json!({"event": "payment_confirmed", "payment": {"sender": "teste_user", "amount": 25.50, "paymentId": "test_123", "paid": true}});
    let off = admin(
        production.gw.admin,
        Method::POST,
        "/test-webhook",
        Some(body.clone()),
    )
    .await;
    assert_eq!(off.status, 404);

    let dev = stack(&["--app-env", "development"]).await;
    let on = admin(dev.gw.admin, Method::POST, "/test-webhook", Some(body)).await;
    assert_eq!(on.status, 200, "{:?}", on.body);
    let answer = on.json();
    assert_eq!(
        (
            answer["success"].as_bool(),
            answer["paymentId"].as_str(),
            answer["processed"].as_bool()
        ),
        (Some(true), Some("test_123"), Some(true))
    );
    settled(&dev.conn, 1).await;
    let created = hookwire_tests::livetip::logs_of(&dev.conn, "payment_create").await;
    assert_eq!(
        created.len(),
        1,
        "the worker handled it like any LiveTip delivery"
    );
    let invalid = admin(
        dev.gw.admin,
        Method::POST,
        "/test-webhook",
        Some(json!({"event": "x"})),
    )
    .await;
    assert_eq!(
        (invalid.status, invalid.json()["error"].as_str()),
        (400, Some("Payload inválido"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_database_admin_answers_503_and_ingest_goes_on() {
    let gw = spawn_gateway_with(GatewaySettings::default().arg("--admin-token", ADMIN_TOKEN)).await;
    gw.wait_ready().await;
    for path in ["/webhook-logs", "/webhook-stats", "/payments"] {
        let response = admin(gw.admin, Method::GET, path, None).await;
        assert_eq!(response.status, 503, "{path}");
        assert_eq!(response.json()["error"], "database unavailable");
    }
    // The console's overview still shows the queues (and signs in through `/healthz`).
    let overview = admin(gw.admin, Method::GET, "/overview", None).await;
    assert_eq!(overview.status, 200);
    let overview = overview.json();
    assert_eq!(
        (
            &overview["databaseReachable"],
            &overview["eventsPerMinute"],
            &overview["brokerReachable"]
        ),
        (&json!(false), &Value::Null, &json!(true)),
        "{overview}"
    );
    assert!(overview["queues"].as_array().is_some_and(|q| !q.is_empty()));
    assert_eq!(
        admin(gw.admin, Method::GET, "/healthz", None).await.status,
        200
    );
    let headers = [
        ("content-type", "application/json"),
        ("x-livetip-webhook-secret-token", LIVETIP_TOKEN),
    ];
    let body = json!({"event": "payment_pending", "payment": {"sender": "s", "amount": 1, "paymentId": "p", "paid": false}});
    assert_eq!(
        post(gw.addr, "/webhook", &headers, body.to_string())
            .await
            .status,
        200
    );
}

/// The README's LiveTip demo, run as written against the real stack: our payment is
/// created, the script sends one LiveTip payment's life (pending, confirmed) with one
/// `paymentId`, and the payment ends completed, with no second payment created. The
/// token comes from the environment as it would from `.env`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_livetip_demo_completes_one_payment() {
    let s = stack(&[]).await;
    let created = admin(
        s.gw.admin,
        Method::POST,
        "/payments",
        Some(json!({"userName": "teste_user", "amount": "25.50"})),
    )
    .await
    .json();
    let id = created["id"].as_str().unwrap().to_owned();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/scripts/livetip-test.sh"
    );
    let run = tokio::process::Command::new("bash")
        .arg(script)
        .arg(format!("http://{}/webhook", s.gw.addr))
        .env("CONTENT", &id)
        .env(
            "LIVETIP_WEBHOOK_TOKEN",
            hookwire_tests::gateway::LIVETIP_TOKENS,
        )
        .output()
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(out.matches("\"success\":true").count(), 2, "{out}");
    let done = wait_status(&s.conn, &id, "completed").await;
    assert_eq!(done.amount.to_string(), "25.50");
    let all = admin(s.gw.admin, Method::GET, "/payments", None)
        .await
        .json();
    assert_eq!(all["count"], 1, "no second payment: {all}");
}

/// `GET /events/{key}` finds one event by our id, the gateway's `X-Request-Id` or the
/// `X-Trace-Id`, with its payload, log rows, the payment it touched and a trace link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_is_found_by_any_of_its_ids() {
    let s = stack(&["--trace-ui-url", "http://jaeger.test/trace/{traceId}"]).await;
    let body = json!({"event": "payment_confirmed", "payment": {"sender": "fan_42",
        "amount": "9.00", "currency": "BRL", "paymentId": "find-me", "paid": true}})
    .to_string();
    let answered = post(
        s.gw.addr,
        "/webhook",
        &[
            ("content-type", "application/json"),
            ("x-livetip-webhook-secret-token", LIVETIP_TOKEN),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(answered.status, 200);
    let request_id = answered.header("x-request-id").unwrap().to_owned();
    let trace_id = answered.header("x-trace-id").unwrap().to_owned();
    hookwire_tests::worker::wait_finished(&s.conn, 1, std::time::Duration::from_secs(20)).await;

    let by_request = admin(
        s.gw.admin,
        Method::GET,
        &format!("/events/{request_id}"),
        None,
    )
    .await;
    assert_eq!(by_request.status, 200, "{:?}", by_request.body);
    let event = by_request.json();
    let id = event["id"].as_str().unwrap().to_owned();
    for key in [id.as_str(), trace_id.as_str(), &trace_id.to_uppercase()] {
        let found = admin(s.gw.admin, Method::GET, &format!("/events/{key}"), None).await;
        assert_eq!(found.json()["id"], id.as_str(), "by {key}");
    }
    assert_eq!(
        (
            event["provider"].as_str(),
            event["event"].as_str(),
            event["status"].as_str(),
            event["attempts"].as_i64(),
            event["duplicates"].as_i64()
        ),
        (
            Some("livetip"),
            Some("payment_confirmed"),
            Some("processed"),
            Some(1),
            Some(0)
        )
    );
    assert_eq!(event["requestId"], request_id.as_str());
    assert_eq!(event["traceId"], trace_id.as_str());
    assert_eq!(
        event["traceUrl"],
        format!("http://jaeger.test/trace/{trace_id}").as_str()
    );
    assert!(event["receivedAt"].as_str().unwrap().ends_with('Z'));
    assert!(event["processedAt"].as_str().is_some());
    assert_eq!(
        event["payload"],
        json!({"encoding": "text", "body": body}),
        "the raw body, byte for byte"
    );
    let log_types: Vec<&str> = event["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["type"].as_str())
        .collect();
    assert!(log_types.contains(&"webhook"), "{log_types:?}");
    assert_eq!(event["touched"]["livetipPaymentId"], "find-me");
    assert_eq!(event["touched"]["payment"]["status"], "completed");
    assert_eq!(event["touched"]["payment"]["userName"], "fan_42");

    for unknown in [
        "00000000-0000-4000-8000-000000000000",
        "0123456789abcdef0123456789abcdef",
        "nonsense",
    ] {
        let missing = admin(s.gw.admin, Method::GET, &format!("/events/{unknown}"), None).await;
        assert_eq!(
            (missing.status, missing.json()),
            (404, json!({"error": "event not found", "id": unknown}))
        );
    }
    // The same token as every admin route.
    assert_eq!(get(s.gw.admin, &format!("/events/{id}")).await.status, 401);
}

/// `GET /events`: filters, search by a provider's id or our payment id, newest first,
/// and a cursor that neither repeats nor skips a row while new events arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_listing_filters_searches_and_pages_stably() {
    let s = stack(&[]).await;
    let ours = admin(
        s.gw.admin,
        Method::POST,
        "/payments",
        Some(json!({"userName": "fan_q", "amount": "5.00"})),
    )
    .await
    .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let send = |i: usize, content: String| {
        let addr = s.gw.addr;
        async move {
            livetip_event(
                addr,
                "payment_pending",
                json!({"sender": format!("s{i}"), "amount": "5.00", "paymentId": format!("p-{i}"),
                       "paid": false, "content": content}),
            )
            .await;
        }
    };
    for i in 0..5 {
        send(
            i,
            if i == 3 {
                format!("tip {ours}")
            } else {
                String::new()
            },
        )
        .await;
    }
    settled(&s.conn, 5).await;

    let page = |query: String| async move {
        admin(s.gw.admin, Method::GET, &format!("/events?{query}"), None)
            .await
            .json()
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for round in 0.. {
        let query = match &cursor {
            Some(c) => format!("limit=2&cursor={c}"),
            None => "limit=2".to_owned(),
        };
        let body = page(query).await;
        seen.extend(
            body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["providerEventId"].as_str().unwrap().to_owned()),
        );
        // New events arrive while an operator pages.
        if round < 2 {
            send(10 + round, String::new()).await;
            settled(&s.conn, 6 + round as u64).await;
        }
        match body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["p-4", "p-3", "p-2", "p-1", "p-0"],
        "newest first, each once, none of the later arrivals mixed in"
    );

    assert_eq!(
        page("provider=livetip&event=payment_pending".into()).await["count"],
        7
    );
    // Only the pending event that named our payment bound it; the others had nothing to
    // move (no payment of theirs).
    let processed = page("status=processed".into()).await;
    assert_eq!(processed["count"], 1);
    assert_eq!(processed["events"][0]["providerEventId"], "p-3");
    assert_eq!(
        page("status=ignored&event=payment_pending".into()).await["count"],
        6
    );
    assert_eq!(page("provider=pluggy".into()).await["count"], 0);
    let by_provider_id = page("q=p-2".into()).await;
    assert_eq!(by_provider_id["count"], 1);
    assert_eq!(by_provider_id["events"][0]["providerEventId"], "p-2");
    let by_our_payment = page(format!("q={}", ours.to_lowercase())).await;
    assert_eq!(by_our_payment["count"], 1, "{by_our_payment}");
    assert_eq!(by_our_payment["events"][0]["providerEventId"], "p-3");
    assert_eq!(page("since=2999-01-01T00:00:00Z".into()).await["count"], 0);
    assert_eq!(page("until=2999-01-01T00:00:00Z".into()).await["count"], 7);
    for bad in ["since=yesterday", "cursor=nonsense", "limit=0"] {
        let refused = admin(s.gw.admin, Method::GET, &format!("/events?{bad}"), None).await;
        assert_eq!(refused.status, 400, "{bad}");
    }
}

/// `GET /events?q=` also finds Pluggy events by the item or account they are about
/// (the worker records both ids), and the event filter narrows to one event name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pluggy_events_are_found_by_item_and_account() {
    let s = stack(&[]).await;
    for body in [
        json!({"event": "item/updated", "eventId": "ev-1", "itemId": "item-a"}),
        json!({"event": "transactions/deleted", "eventId": "ev-2", "itemId": "item-a",
               "accountId": "acct-1", "transactionIds": ["t1"]}),
        json!({"event": "transactions/deleted", "eventId": "ev-3", "itemId": "item-b",
               "accountId": "acct-2", "transactionIds": ["t2"]}),
    ] {
        assert_eq!(post_pluggy(s.gw.addr, &body).await.status, 200);
    }
    settled(&s.conn, 3).await;
    let ids = |query: &'static str| async move {
        let body = admin(s.gw.admin, Method::GET, &format!("/events?{query}"), None)
            .await
            .json();
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["providerEventId"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("q=item-a").await, ["ev-2", "ev-1"], "newest first");
    assert_eq!(ids("q=acct-2").await, ["ev-3"]);
    assert_eq!(ids("q=ev-1").await, ["ev-1"]);
    assert!(ids("q=item-c").await.is_empty());
    assert_eq!(
        ids("provider=pluggy&event=transactions/deleted").await,
        ["ev-3", "ev-2"]
    );
    let found = admin(s.gw.admin, Method::GET, "/events?q=acct-1", None)
        .await
        .json();
    assert_eq!(
        (
            &found["events"][0]["itemId"],
            &found["events"][0]["accountId"]
        ),
        (&json!("item-a"), &json!("acct-1"))
    );
}

/// Pluggy's whole event catalogue is accepted and recorded with its ids, visible in the
/// logs API: the payments products' events (no effect yet) and
/// `item/waiting_user_action`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pluggy_catalogue_events_are_recorded_and_listed() {
    let s = stack(&[]).await;
    let events = [
        json!({"event": "payment_intent/created", "eventId": "cat-1", "paymentIntentId": "pi-1"}),
        json!({"event": "scheduled_payment/completed", "eventId": "cat-2", "id": "sp-1"}),
        json!({"event": "payment_refund/created", "eventId": "cat-3", "id": "rf-1"}),
        json!({"event": "boleto/updated", "eventId": "cat-4", "id": "bo-1"}),
        json!({"event": "automatic_pix_payment/created", "eventId": "cat-5", "id": "ap-1"}),
        json!({"event": "payment_request/updated", "eventId": "cat-6", "paymentRequestId": "pr-1"}),
        json!({"event": "item/waiting_user_action", "eventId": "cat-7", "itemId": "it-w"}),
    ];
    for body in &events {
        assert_eq!(post_pluggy(s.gw.addr, body).await.status, 200, "{body}");
    }
    settled(&s.conn, events.len() as u64).await;
    for body in &events {
        let name = body["event"].as_str().unwrap();
        let found = admin(
            s.gw.admin,
            Method::GET,
            &format!("/events?q={}", body["eventId"].as_str().unwrap()),
            None,
        )
        .await
        .json();
        assert_eq!(found["count"], 1, "{name}: {found}");
        assert_eq!(found["events"][0]["event"], name);
        let logs = admin(
            s.gw.admin,
            Method::GET,
            &format!("/webhook-logs?event={name}"),
            None,
        )
        .await
        .json();
        let entry = &logs["logs"][0];
        assert_eq!(logs["count"], 1, "{name}: {logs}");
        // The payload, ids included, is in the entry's data.
        let data = entry["data"].to_string();
        assert!(data.contains(body["eventId"].as_str().unwrap()), "{data}");
        if name.starts_with("item/") {
            assert_eq!(entry["type"], "webhook", "{entry}");
        } else {
            assert_eq!(entry["type"], "event_ignored", "{entry}");
            assert!(data.contains("no effect yet"), "{data}");
        }
    }
}

/// The admin API lists and replays dead letters as `worker dlq` does (one
/// implementation): the same letters, the same refusal to replay everything unasked,
/// and a dry run that counts without `all`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_through_the_admin_api_as_the_cli_does() {
    let s = stack(&[]).await;
    let topology = &s.gw.topology;
    for i in 0..2 {
        hookwire_tests::broker::publish_raw(
            &topology.topology.events_exchange(),
            "livetip.payment_confirmed",
            b"not an envelope",
            lapin::BasicProperties::default()
                .with_type("payment_confirmed".into())
                .with_message_id(format!("req-{i}").into()),
        )
        .await;
    }
    let listed = hookwire_tests::eventually(
        "two dead letters",
        std::time::Duration::from_secs(30),
        || async {
            let body = admin(
                s.gw.admin,
                Method::GET,
                "/dead-letters?provider=livetip",
                None,
            )
            .await
            .json();
            (body["count"] == 2).then_some(body)
        },
    )
    .await;
    let mut request_ids = Vec::new();
    for letter in listed["deadLetters"].as_array().unwrap() {
        assert_eq!(
            (
                letter["provider"].as_str(),
                letter["event"].as_str(),
                letter["class"].as_str()
            ),
            (
                Some("livetip"),
                Some("payment_confirmed"),
                Some("permanent")
            ),
            "{letter}"
        );
        assert!(letter["deadAt"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(!letter["reason"].as_str().unwrap().is_empty());
        request_ids.push(letter["requestId"].as_str().unwrap().to_owned());
    }
    request_ids.sort();
    assert_eq!(request_ids, ["req-0", "req-1"]);

    let cli = |args: &'static [&'static str]| async move {
        let output = tokio::process::Command::new(hookwire_tests::process::binary("test-worker"))
            .env_clear()
            .env("AMQP_URL", hookwire_tests::amqp_url())
            .env("AMQP_PREFIX", topology.prefix())
            .env(
                "WORKER_RETRY_DELAYS",
                hookwire_tests::broker::TEST_RETRY_DELAYS,
            )
            .args(args)
            .output()
            .await
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    // A listing holds the letters until its channel closes; the broker then hands them
    // back to the queue, which takes a moment.
    let dead_queue = topology
        .topology
        .dead_letter_queue(shared::Provider::LiveTip);
    let back_in_queue = || async {
        hookwire_tests::eventually(
            "the letters back in their queue",
            std::time::Duration::from_secs(10),
            || async {
                (hookwire_tests::broker::ready_messages(&dead_queue).await == 2).then_some(())
            },
        )
        .await;
    };
    back_in_queue().await;
    let (code, out) = cli(&["dlq", "list", "--provider", "livetip"]).await;
    assert_eq!(code, Some(0));
    assert!(
        out.contains("2 dead letter(s)"),
        "the CLI sees the same: {out}"
    );
    assert_eq!(
        out.matches("livetip\tpayment_confirmed").count(),
        2,
        "{out}"
    );

    let replay = |body: Value| async move {
        admin(s.gw.admin, Method::POST, "/dead-letters/replay", Some(body)).await
    };
    let refused = replay(json!({})).await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.json()["reason"]
            .as_str()
            .unwrap()
            .contains("refusing")
    );
    let (code, _) = cli(&["dlq", "replay"]).await;
    assert_eq!(code, Some(2), "the CLI refuses the same");
    // A dry run needs no `all`, in both.
    back_in_queue().await;
    let (code, out) = cli(&["dlq", "replay", "--dry-run"]).await;
    assert_eq!(
        (code, out.trim()),
        (Some(0), "would replay 2 dead letter(s); 0 kept")
    );
    back_in_queue().await;
    let dry = replay(json!({"dryRun": true})).await;
    assert_eq!(
        dry.json(),
        json!({"dryRun": true, "replayed": 2, "kept": 0})
    );
    back_in_queue().await;
    let other =
        replay(json!({"provider": "livetip", "event": "payment_pending", "dryRun": true})).await;
    assert_eq!(
        other.json(),
        json!({"dryRun": true, "replayed": 0, "kept": 2})
    );
    back_in_queue().await;
    let done = replay(json!({"provider": "livetip", "event": "payment_confirmed"})).await;
    assert_eq!(
        done.json(),
        json!({"dryRun": false, "replayed": 2, "kept": 0})
    );
    assert_eq!(
        replay(json!({"provider": "nobody", "all": true}))
            .await
            .status,
        400
    );
}
