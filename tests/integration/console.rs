//! The operators' console in a real headless Chromium against the real stack: sign in,
//! watch the overview move, find an event by LiveTip `paymentId`, follow it to its
//! payment, replay a dead letter and see its queue drain. Plus, over plain HTTP, where
//! the console is served and with which headers.
//!
//! `CONSOLE_SCREENSHOTS_DIR=<dir>` also saves the README's two screenshots there
//! (`deploy/scripts/console-screenshots.sh`); `CONSOLE_WINDOW=390x844` runs them in a
//! phone's window.

use std::path::PathBuf;

use hookwire_tests::broker::{publish_raw, ready_messages};
use hookwire_tests::browser::{Browser, Step};
use hookwire_tests::http_client::get;
use hookwire_tests::livetip::{ADMIN_TOKEN, admin, livetip_event, settled, stack, stack_sqlite};
use http::Method;
use lapin::types::{AMQPValue, LongString};
use serde_json::json;
use shared::Provider;
use shared::amqp::dead_header;

fn screenshot_dir() -> Option<PathBuf> {
    std::env::var_os("CONSOLE_SCREENSHOTS_DIR").map(PathBuf::from)
}

/// The window: a laptop's, or `CONSOLE_WINDOW=390x844` (a phone) and the like.
fn window() -> (u32, u32) {
    std::env::var("CONSOLE_WINDOW")
        .ok()
        .and_then(|w| {
            let (width, height) = w.split_once('x')?;
            Some((width.parse().ok()?, height.parse().ok()?))
        })
        .unwrap_or((1280, 1000))
}

/// Sign in, the overview's counts moving with new events, an event found by its
/// LiveTip `paymentId`, opened, and followed to its payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_finds_an_event_and_follows_it_to_its_payment() {
    let s = stack(&["--trace-ui-url", "http://jaeger.test/trace/{traceId}"]).await;
    let ours = admin(
        s.gw.admin,
        Method::POST,
        "/payments",
        Some(json!({"userName": "fan_42", "amount": "25.50"})),
    )
    .await
    .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    livetip_event(
        s.gw.addr,
        "payment_confirmed",
        json!({"sender": "fan_42", "amount": "25.50", "currency": "BRL",
               "paymentId": "lt-console-1", "paid": true, "content": ours}),
    )
    .await;
    settled(&s.conn, 1).await;

    let browser = Browser::start("console-event-to-payment", window().0, window().1).await;
    let base = format!("http://{}/", s.gw.admin);
    let outcome: Step = async {
        browser.goto(&base).await?;
        browser.type_into("#token", "not-the-token").await?;
        browser.click("#sign-in-form button").await?;
        browser
            .wait_text("#sign-in-error", "the refusal", |t| t.contains("refused"))
            .await?;
        browser.type_into("#token", ADMIN_TOKEN).await?;
        browser.click("#sign-in-form button").await?;
        browser
            .wait_text("#total-webhooks", "1 webhook", |t| t == "1")
            .await?;
        browser
            .wait_text("#events-last-hour", "one event this hour", |t| {
                t.starts_with("1 event")
            })
            .await?;

        // New events move the counts without a reload.
        for i in 0..2 {
            livetip_event(
                s.gw.addr,
                "payment_pending",
                json!({"sender": "other", "amount": "1.00", "paymentId": format!("lt-other-{i}"),
                       "paid": false}),
            )
            .await;
        }
        settled(&s.conn, 3).await;
        browser
            .wait_text("#total-webhooks", "3 webhooks, refreshed", |t| t == "3")
            .await?;
        if let Some(dir) = screenshot_dir() {
            browser
                .screenshot(&dir.join("console-overview.png"))
                .await?;
        }

        browser.click_link("Events").await?;
        browser.type_into("#q", "lt-console-1").await?;
        browser.click("form.filters button[type=submit]").await?;
        // The search's answer (before it, the page listed all three events).
        browser
            .wait_text("#view caption", "one event found", |t| {
                t.starts_with("1 event on this page")
            })
            .await?;
        browser.click_link("lt-console-1").await?;
        browser
            .wait_text("#view h1", "the event's heading", |t| {
                t == "livetip payment_confirmed"
            })
            .await?;
        browser
            .wait_text("#payload-pretty", "the pretty payload", |t| {
                t.contains("\"paymentId\": \"lt-console-1\"")
            })
            .await?;
        let trace = browser.attribute("#open-trace", "href").await?;
        if !trace
            .as_deref()
            .is_some_and(|t| t.starts_with("http://jaeger.test/trace/"))
        {
            return Err(format!("Open trace links to {trace:?}"));
        }
        if let Some(dir) = screenshot_dir() {
            browser.screenshot(&dir.join("console-event.png")).await?;
        }
        browser.click("#touched-payment").await?;
        browser
            .wait_text("#payment-status", "the completed payment", |t| {
                t == "completed"
            })
            .await?;
        browser.click_link("lt-console-1").await?;
        browser
            .wait_text("#view h1", "back on the event", |t| {
                t == "livetip payment_confirmed"
            })
            .await?;
        Ok(())
    }
    .await;
    browser.conclude(outcome).await;
}

/// A dead letter replayed from the console, behind the dry run's count, drains from
/// its queue and its event is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_replayed_from_the_console_drains_its_queue() {
    let s = stack(&[]).await;
    let topology = &s.gw.topology.topology;
    // Events that died while, say, the database was away: sound, dead-lettered.
    let dead_queue = topology.dead_letter_queue(Provider::LiveTip);
    let mut request_ids = Vec::new();
    for payment_id in ["lt-dead-1", "lt-dead-2"] {
        let body = json!({"event": "payment_pending", "payment": {"sender": "late",
            "amount": "2.00", "paymentId": payment_id, "paid": false}})
        .to_string();
        let envelope = hookwire_tests::envelope(Provider::LiveTip, "payment_pending", body);
        let properties = envelope.properties();
        let mut headers = properties.headers().clone().unwrap_or_default();
        for (name, value) in [
            (dead_header::AT, "2026-11-29T10:00:00.000Z"),
            (dead_header::REASON, "database unavailable"),
            (dead_header::CLASS, "transient"),
            (dead_header::ROUTING_KEY, "livetip.payment_pending"),
        ] {
            headers.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
        }
        publish_raw(
            "",
            &dead_queue,
            &envelope.body,
            properties.with_headers(headers),
        )
        .await;
        request_ids.push(envelope.request_id);
    }

    let browser = Browser::start("console-dead-letter-replay", window().0, window().1).await;
    let base = format!("http://{}/", s.gw.admin);
    let outcome: Step = async {
        browser.goto(&base).await?;
        browser.type_into("#token", ADMIN_TOKEN).await?;
        browser.click("#sign-in-form button").await?;
        browser
            .wait_text("#dead-livetip", "two LiveTip dead letters", |t| t == "2")
            .await?;
        browser.click_link("Dead letters").await?;
        browser
            .wait_text("table tbody tr", "the dead letter", |t| {
                t.contains("database unavailable")
            })
            .await?;
        browser.click("table tbody tr button").await?;
        browser
            .wait_text("#confirm-text", "the dry run's count", |t| {
                t.starts_with("1 dead letter(s)")
            })
            .await?;
        browser.click("#confirm-ok").await?;
        browser
            .wait_text("#replay-status", "the replay's report", |t| {
                t == "Replayed 1 dead letter(s)."
            })
            .await?;
        // The other one, through "replay all that match" and its dry-run count.
        browser.click("#replay-matching").await?;
        browser
            .wait_text("#confirm-text", "the dry run's count", |t| {
                t.starts_with("1 dead letter(s)")
            })
            .await?;
        browser.click("#confirm-ok").await?;
        browser
            .wait_text("#no-dead-letters", "an empty list", |_| true)
            .await?;
        Ok(())
    }
    .await;
    browser.conclude(outcome).await;
    assert_eq!(ready_messages(&dead_queue).await, 0, "the queue drained");
    settled(&s.conn, 2).await;
    for request_id in request_ids {
        let event = admin(
            s.gw.admin,
            Method::GET,
            &format!("/events/{request_id}"),
            None,
        )
        .await;
        assert_eq!(event.status, 200, "the replayed event was recorded");
    }
}

/// The console is the admin listener's alone, its assets load without the token but
/// hold no data, and they forbid what the page never needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_on_the_admin_listener_only_with_a_strict_policy() {
    let s = stack(&[]).await;
    for path in ["/", "/console.js", "/console.css"] {
        let asset = get(s.gw.admin, path).await;
        assert_eq!(asset.status, 200, "{path}");
        let policy = asset.header("content-security-policy").unwrap_or_default();
        assert!(policy.contains("default-src 'none'"), "{path}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert_eq!(asset.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(get(s.gw.addr, path).await.status, 404, "public {path}");
    }
    // The data stays behind the token.
    assert_eq!(get(s.gw.admin, "/overview").await.status, 401);
    let overview = admin(s.gw.admin, Method::GET, "/overview", None).await;
    assert_eq!(overview.status, 200);
    let body = overview.json();
    assert_eq!(body["eventsPerMinute"].as_array().map(Vec::len), Some(60));
    assert_eq!(body["brokerReachable"], true);
    let queues = body["queues"].as_array().unwrap();
    assert!(
        queues
            .iter()
            .any(|q| q["kind"] == "work" && q["provider"] == "livetip" && q["messages"] == 0),
        "{body}"
    );
}

/// The overview's minutes count each event once, in the minute it arrived, by status,
/// on both stores (they group by minute with different SQL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_events_per_minute_on_postgres_and_sqlite() {
    for s in [stack(&[]).await, stack_sqlite(&[]).await] {
        livetip_event(
            s.gw.addr,
            "payment_pending",
            json!({"sender": "a", "amount": "1.00", "paymentId": "lt-overview", "paid": false}),
        )
        .await;
        settled(&s.conn, 1).await;
        let body = admin(s.gw.admin, Method::GET, "/overview", None)
            .await
            .json();
        let minutes = body["eventsPerMinute"].as_array().unwrap();
        let counted = |range: std::ops::Range<usize>| -> i64 {
            minutes[range]
                .iter()
                .flat_map(|m| m["counts"].as_object().unwrap().values())
                .map(|n| n.as_i64().unwrap())
                .sum()
        };
        assert_eq!(counted(0..60), 1, "{body}");
        // The newest minute, or the one before if the minute turned meanwhile.
        assert_eq!(counted(58..60), 1, "{body}");
        assert!(
            minutes[58..]
                .iter()
                .any(|m| m["counts"] == json!({"ignored": 1})),
            "{body}"
        );
        assert!(minutes[59]["minute"].as_str().unwrap().ends_with(":00Z"));
    }
}

/// Without `ADMIN_TOKEN` (the admin listener on loopback only) there is no sign-in; and
/// with the database away the overview still shows the queues and says what is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_or_a_database_the_console_opens_on_the_queues() {
    let gw = hookwire_tests::gateway::spawn_gateway_with(
        hookwire_tests::gateway::GatewaySettings::default(),
    )
    .await;
    gw.wait_ready().await;
    let browser = Browser::start("console-no-token-no-database", 1280, 1000).await;
    let outcome: Step = async {
        browser.goto(&format!("http://{}/", gw.admin)).await?;
        browser
            .wait_text("#view h1", "the overview, no sign-in", |t| t == "Overview")
            .await?;
        browser
            .wait_text(
                "#overview-body [role=alert]",
                "the database's absence",
                |t| t.contains("database is not reachable"),
            )
            .await?;
        browser
            .wait_text("#overview-body table", "the queues", |t| {
                t.contains(".livetip") && t.contains("work")
            })
            .await?;
        Ok(())
    }
    .await;
    browser.conclude(outcome).await;
}
