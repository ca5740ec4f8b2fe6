//! The spec's `manage.py` commands as subcommands: `worker pluggy setup-webhook` against
//! the fake Pluggy, and `gateway simulate pluggy` against a running gateway.

use std::process::Output;

use hookwire_tests::broker::{drain, take};
use hookwire_tests::fake_pluggy::FakePluggy;
use hookwire_tests::gateway::{PLUGGY_KEY_NEW, PLUGGY_NEW, spawn_gateway};
use hookwire_tests::process::binary;
use serde_json::json;
use shared::Provider;

const SECRET: &str = "whsec-current,whsec-old";
const BACKEND: &str = "https://hooks.example.com";

async fn setup_webhook(fake: &FakePluggy, backend_url: &str, extra: &[&str]) -> Output {
    tokio::process::Command::new(binary("test-worker"))
        .env_clear()
        .env("PLUGGY_CLIENT_ID", "fake-client")
        .env("PLUGGY_CLIENT_SECRET", "fake-secret")
        .env("PLUGGY_API_URL", fake.url())
        .env("PLUGGY_WEBHOOK_SECRET", SECRET)
        .env("BACKEND_URL", backend_url)
        .args(["pluggy", "setup-webhook"])
        .args(extra)
        .output()
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_webhook_creates_then_leaves_then_force_updates() {
    let fake = FakePluggy::start().await;
    let url = "https://hooks.example.com/api/banking/pluggy/webhook/";

    let created = setup_webhook(&fake, BACKEND, &[]).await;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(stdout(&created).starts_with("created webhook"));
    let id = {
        let s = fake.state.lock().unwrap();
        assert_eq!(s.webhooks.len(), 1);
        assert_eq!(s.webhooks[0]["url"], url);
        assert_eq!(s.webhooks[0]["event"], "all");
        let id = s.webhooks[0]["id"].as_str().unwrap().to_owned();
        // The first secret of the rotation list is the one Pluggy will send back.
        assert_eq!(
            s.webhook_headers[&id],
            json!({"X-Pluggy-Webhook-Secret": "whsec-current"})
        );
        id
    };

    let again = setup_webhook(&fake, BACKEND, &[]).await;
    assert!(again.status.success());
    assert!(
        stdout(&again).contains("left unchanged"),
        "{}",
        stdout(&again)
    );
    assert_eq!(fake.state.lock().unwrap().webhooks.len(), 1);
    assert_eq!(fake.calls_to("/webhooks/"), 0, "no PATCH without --force");

    // Another event for the same URL is its own registration.
    let other = setup_webhook(&fake, BACKEND, &["--event", "item/updated"]).await;
    assert!(stdout(&other).starts_with("created webhook"));
    assert_eq!(fake.state.lock().unwrap().webhooks.len(), 2);

    fake.state
        .lock()
        .unwrap()
        .webhook_headers
        .insert(id.clone(), json!({"X-Pluggy-Webhook-Secret": "stale"}));
    let forced = setup_webhook(&fake, BACKEND, &["--force"]).await;
    assert!(forced.status.success());
    assert_eq!(
        stdout(&forced).trim(),
        format!("updated webhook {id}: all -> {url}")
    );
    let s = fake.state.lock().unwrap();
    assert_eq!(s.webhooks.len(), 2);
    assert_eq!(
        s.webhook_headers[&id],
        json!({"X-Pluggy-Webhook-Secret": "whsec-current"})
    );
    assert!(s.calls.contains(&format!("PATCH /webhooks/{id}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_webhook_refuses_urls_pluggy_cannot_call_before_calling_pluggy() {
    let fake = FakePluggy::start().await;
    for bad in [
        "http://hooks.example.com",
        "https://203.0.113.7",
        "https://localhost",
        "https://hooks.example.com:8443",
    ] {
        let refused = setup_webhook(&fake, bad, &[]).await;
        assert_eq!(refused.status.code(), Some(2), "{bad}");
        let message = String::from_utf8_lossy(&refused.stderr);
        assert!(message.contains("BACKEND_URL"), "{bad}: {message}");
    }
    let s = fake.state.lock().unwrap();
    assert_eq!(s.auth_calls, 0);
    assert!(s.webhooks.is_empty());
}

async fn simulate(key: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(binary("test-gateway"))
        .env_clear()
        .env("PLUGGY_SIGNING_KEY", key)
        .args(["simulate", "pluggy"])
        .args(args)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_sends_a_signed_event_that_the_gateway_queues() {
    let gw = spawn_gateway().await;
    let url = format!("http://{}/api/banking/pluggy/webhook/", gw.addr);
    let sent = simulate(
        PLUGGY_KEY_NEW,
        &[
            "item/updated",
            "--status",
            "ACTIVE",
            "--item-id",
            "item-sim",
            "--url",
            &url,
        ],
    )
    .await;
    assert!(sent.status.success(), "{}", stdout(&sent));
    assert!(
        stdout(&sent)
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("200 {")),
        "{}",
        stdout(&sent)
    );
    let queued = take(&gw.queue(Provider::Pluggy), 1).await;
    assert_eq!(queued.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&queued[0].body).unwrap();
    assert_eq!(body["event"], "item/updated");
    assert_eq!(body["itemId"], "item-sim");
    assert_eq!(body["status"], "ACTIVE");

    // The header secret is no signing key.
    let refused = simulate(PLUGGY_NEW, &["item/error", "--url", &url]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stdout(&refused)
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("403 ")),
        "{}",
        stdout(&refused)
    );
    assert!(drain(&gw.queue(Provider::Pluggy)).await.is_empty());
}

/// A worker started against the fake with `BACKEND_URL` set: what its first check of
/// the registration found (needed events missing, registrations disabled). The
/// recorder is the test process's, shared by its workers: this is check number `nth`.
async fn registration_seen(
    nth: f64,
    fake: &FakePluggy,
    db: &hookwire_tests::database::TestDatabase,
    gw: &hookwire_tests::gateway::TestGateway,
) -> (f64, f64) {
    let mut flags = fake.worker_flags();
    // No sweep (its check after each sweep would count too): the start-up check alone.
    flags.extend(
        [
            "--backend-url",
            BACKEND,
            "--pluggy-reconcile-interval",
            "0s",
        ]
        .map(str::to_owned),
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let worker = hookwire_tests::worker::spawn_worker(&db.url, &gw.topology, &flags).await;
    hookwire_tests::eventually(
        "the registration checked",
        std::time::Duration::from_secs(20),
        || async {
            let metrics = hookwire_tests::scrape(worker.health).await;
            let value = |name| hookwire_tests::metric_value(&metrics, name, &[]);
            (value("hookwire_pluggy_webhook_checks_total") >= nth).then(|| {
                (
                    value("hookwire_pluggy_webhook_events_missing"),
                    value("hookwire_pluggy_webhook_disabled"),
                )
            })
        },
    )
    .await
}

/// The worker checks at start-up that Pluggy will deliver every event it needs to
/// `BACKEND_URL`: a missing registration, then one Pluggy disabled, are reported (the
/// metrics an alert watches); `setup-webhook`, then `setup-webhook --force`, repair them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_checks_its_webhook_registration_and_setup_repairs_it() {
    let fake = FakePluggy::start().await;
    let db = hookwire_tests::database::TestDatabase::sqlite();
    let gw = spawn_gateway().await;
    // Nothing registered: every needed event is missing.
    assert_eq!(registration_seen(1.0, &fake, &db, &gw).await, (7.0, 0.0));
    assert!(setup_webhook(&fake, BACKEND, &[]).await.status.success());
    assert_eq!(registration_seen(2.0, &fake, &db, &gw).await, (0.0, 0.0));
    // Pluggy disables it (deliveries kept failing).
    fake.state.lock().unwrap().webhooks[0]["disabledAt"] = json!("2026-11-29T00:00:00Z");
    assert_eq!(registration_seen(3.0, &fake, &db, &gw).await, (7.0, 1.0));
    assert!(
        setup_webhook(&fake, BACKEND, &["--force"])
            .await
            .status
            .success()
    );
    assert_eq!(registration_seen(4.0, &fake, &db, &gw).await, (0.0, 0.0));
}
