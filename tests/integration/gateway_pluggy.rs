//! Pluggy ingest: both ways of authenticating, rotation, payload rules, the queued envelope.

use hookwire_tests::broker::{drain, header, take};
use hookwire_tests::gateway::{
    PLUGGY_KEY_NEW, PLUGGY_KEY_OLD, PLUGGY_NEW, PLUGGY_OLD, spawn_gateway,
};
use hookwire_tests::http_client::post;
use hookwire_tests::pluggy_signature;
use shared::Provider;

const PATH: &str = "/api/banking/pluggy/webhook/";
const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_delivery_is_queued_byte_identical_with_its_envelope() {
    let gw = spawn_gateway().await;
    // Odd spacing, key order and non-ASCII: any re-encoding would show.
    let body = "{ \"eventId\":\"d876fd7c-1\",  \"event\":\"item/updated\",\"itemId\":\"a5c7\",\"note\":\"ação\" }\n";
    let signature = format!(
        "sha256={}",
        pluggy_signature(PLUGGY_KEY_NEW, body.as_bytes())
    );
    let response = post(
        gw.addr,
        PATH,
        &[
            JSON,
            ("x-pluggy-signature", &signature),
            ("user-agent", "pluggy-test"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        ],
        body,
    )
    .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    let json = response.json();
    assert_eq!(json["received"], true);
    assert_eq!(json["eventId"], "d876fd7c-1");
    assert_eq!(json["event"], "item/updated");
    let request_id = response.header("x-request-id").unwrap().to_owned();
    let trace_id = response.header("x-trace-id").unwrap().to_owned();

    let taken = take(&gw.queue(Provider::Pluggy), 1).await;
    assert_eq!(taken.len(), 1);
    let message = &taken[0];
    assert_eq!(message.body, body.as_bytes(), "body must be byte-identical");
    assert_eq!(message.routing_key, "pluggy.item.updated");
    assert_eq!(*message.properties.delivery_mode(), Some(2), "persistent");
    assert_eq!(
        message.properties.message_id().as_ref().map(|s| s.as_str()),
        Some(request_id.as_str())
    );
    let meta: serde_json::Value =
        serde_json::from_str(&header(message, "x-hookwire-envelope").unwrap()).unwrap();
    assert_eq!(meta["v"], 1);
    assert_eq!(meta["provider"], "pluggy");
    assert_eq!(meta["event"], "item/updated");
    assert_eq!(meta["eventId"], "d876fd7c-1");
    assert_eq!(meta["clientIp"], "127.0.0.1");
    assert!(
        meta["receivedAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let traceparent = header(message, "traceparent").unwrap();
    assert!(
        traceparent.contains(&trace_id),
        "{traceparent} carries {trace_id}"
    );
    // The provider's own trace header is kept as data, not adopted as our parent.
    assert!(!traceparent.contains("0af7651916cd43dd8448eb211c80319c"));
    let envelope =
        shared::Envelope::from_amqp(&message.properties, message.body.clone().into()).unwrap();
    let kept = &envelope.http_headers;
    assert!(
        kept.contains(&("user-agent".to_owned(), "pluggy-test".to_owned())),
        "{kept:?}"
    );
    assert!(
        kept.iter()
            .any(|(n, v)| n == "traceparent" && v.contains("0af7651916cd43dd8448eb211c80319c"))
    );
    assert!(
        kept.iter()
            .all(|(n, v)| !n.starts_with("x-pluggy") && !v.contains(&signature[7..])),
        "credentials never travel in the envelope: {kept:?}"
    );
    assert_eq!(envelope.provider, Provider::Pluggy);
    assert_eq!(envelope.trace.trace_id(), trace_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_credential_form_and_both_rotated_secrets_pass() {
    let gw = spawn_gateway().await;
    let body = br#"{"event":"item/created","eventId":"e-rot","itemId":"i1"}"#;
    let forms = [
        ("x-pluggy-signature", pluggy_signature(PLUGGY_KEY_OLD, body)),
        (
            "x-pluggy-signature",
            pluggy_signature(PLUGGY_KEY_NEW, body).to_uppercase(),
        ),
        (
            "x-pluggy-signature",
            format!("sha256={}", pluggy_signature(PLUGGY_KEY_OLD, body)),
        ),
        ("x-pluggy-webhook-secret", PLUGGY_OLD.to_owned()),
        ("x-pluggy-webhook-secret", PLUGGY_NEW.to_owned()),
    ];
    for (name, value) in &forms {
        for path in [PATH, "/api/banking/pluggy/webhook"] {
            let response = post(gw.addr, path, &[JSON, (name, value)], &body[..]).await;
            assert_eq!(response.status, 200, "{name}: {value} on {path}");
        }
    }
    // A wrong secret header does not spoil a valid signature: either way suffices.
    let sig = pluggy_signature(PLUGGY_KEY_NEW, body);
    let response = post(
        gw.addr,
        PATH,
        &[
            JSON,
            ("x-pluggy-webhook-secret", "wrong"),
            ("x-pluggy-signature", &sig),
        ],
        &body[..],
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(
        take(&gw.queue(Provider::Pluggy), forms.len() * 2 + 1)
            .await
            .len(),
        forms.len() * 2 + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_wrong_credentials_are_refused_and_nothing_is_queued() {
    let gw = spawn_gateway().await;
    let body = br#"{"event":"item/updated","eventId":"e1"}"#;
    let cases: Vec<(Vec<(&str, String)>, u16)> = vec![
        (vec![], 401),
        (vec![("x-pluggy-signature", String::new())], 401),
        (
            vec![(
                "x-pluggy-signature",
                pluggy_signature("not-our-secret", body),
            )],
            403,
        ),
        (vec![("x-pluggy-signature", "zz-not-hex".into())], 403),
        (
            vec![(
                "x-pluggy-signature",
                pluggy_signature(PLUGGY_KEY_NEW, b"a different body"),
            )],
            403,
        ),
        (
            vec![("x-pluggy-webhook-secret", "pluggy-old-secre".into())],
            403,
        ),
    ];
    for (headers, expected) in cases {
        let mut all: Vec<(&str, &str)> = vec![JSON];
        all.extend(headers.iter().map(|(n, v)| (*n, v.as_str())));
        let response = post(gw.addr, PATH, &all, &body[..]).await;
        assert_eq!(response.status, expected, "{headers:?}");
        assert!(response.json()["error"].is_string());
    }
    assert!(drain(&gw.queue(Provider::Pluggy)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_rules_and_unknown_events() {
    let gw = hookwire_tests::gateway::spawn_gateway_with(
        hookwire_tests::gateway::GatewaySettings::default().arg("--pluggy-client-id", "our-client"),
    )
    .await;
    gw.wait_ready().await;
    let secret = ("x-pluggy-webhook-secret", PLUGGY_NEW);
    for bad in [
        "[]",
        "\"item/updated\"",
        "{}",
        r#"{"event":42}"#,
        "{not json",
        "",
    ] {
        let response = post(gw.addr, PATH, &[JSON, secret], bad).await;
        assert_eq!(response.status, 400, "{bad}");
        assert_eq!(response.json()["error"], "invalid payload");
        assert!(response.json()["reason"].is_string());
    }
    let foreign = post(
        gw.addr,
        PATH,
        &[JSON, secret],
        r#"{"event":"item/updated","clientId":"someone-else"}"#,
    )
    .await;
    assert_eq!(foreign.status, 403);
    let text = post(
        gw.addr,
        PATH,
        &[("content-type", "text/plain"), secret],
        r#"{"event":"x"}"#,
    )
    .await;
    assert_eq!(text.status, 415);

    // Unknown events and the entity's `id` are accepted and queued (the `id` is no event
    // id); our client id passes.
    let unknown = post(
        gw.addr,
        PATH,
        &[JSON, secret],
        r#"{"event":"brand/new thing","id":"legacy-1","clientId":"our-client","extra":{"a":1}}"#,
    )
    .await;
    assert_eq!(unknown.status, 200);
    assert_eq!(unknown.json()["eventId"], serde_json::Value::Null);
    // No content type at all: judged by the body.
    let bare = post(
        gw.addr,
        PATH,
        &[secret],
        r#"{"event":"connector/status_updated","eventId":"e9"}"#,
    )
    .await;
    assert_eq!(bare.status, 200);
    let taken = take(&gw.queue(Provider::Pluggy), 2).await;
    let keys: Vec<&str> = taken.iter().map(|t| t.routing_key.as_str()).collect();
    assert_eq!(
        keys,
        ["pluggy.brand.new_thing", "pluggy.connector.status_updated"]
    );
}
