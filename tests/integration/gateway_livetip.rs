//! LiveTip ingest: the specification's statuses and exact bodies.

use hookwire_tests::broker::{drain, take};
use hookwire_tests::gateway::{LIVETIP_NEXT, LIVETIP_TOKEN, spawn_gateway};
use hookwire_tests::http_client::post;
use serde_json::json;
use shared::Provider;

const TOKEN_HEADER: &str = "X-Livetip-Webhook-Secret-Token";
const JSON: (&str, &str) = ("content-type", "application/json");

/// The specification's own manual test.
const SPEC_CURL_BODY: &str = r#"{
    "event": "payment_confirmed",
    "payment": {
      "sender": "teste_user",
      "amount": 25.50,
      "paymentId": "test_123",
      "paid": true
    }
  }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_example_is_accepted_with_the_spec_response() {
    let gw = spawn_gateway().await;
    let response = post(
        gw.addr,
        "/webhook",
        &[JSON, (TOKEN_HEADER, LIVETIP_TOKEN)],
        SPEC_CURL_BODY,
    )
    .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    let json = response.json();
    let keys: std::collections::BTreeSet<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "event",
            "paymentId",
            "processed",
            "processingTime",
            "received",
            "success",
            "timestamp"
        ]
        .into()
    );
    assert_eq!(json["success"], true);
    assert_eq!(json["received"], true);
    assert_eq!(json["processed"], true);
    assert_eq!(json["event"], "payment_confirmed");
    assert_eq!(json["paymentId"], "test_123");
    let took = json["processingTime"].as_str().unwrap();
    assert!(
        took.ends_with("ms") && took[..took.len() - 2].parse::<u64>().is_ok(),
        "{took}"
    );
    let at = json["timestamp"].as_str().unwrap();
    assert!(
        at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(at).is_ok(),
        "{at}"
    );

    let taken = take(&gw.queue(Provider::LiveTip), 1).await;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].body, SPEC_CURL_BODY.as_bytes());
    assert_eq!(taken[0].routing_key, "livetip.payment_confirmed");
    let envelope =
        shared::Envelope::from_amqp(&taken[0].properties, taken[0].body.clone().into()).unwrap();
    assert_eq!(envelope.provider_event_id.as_deref(), Some("test_123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_both_tokens_and_tolerant_fields() {
    let gw = spawn_gateway().await;
    let events = [
        "payment_confirmed",
        "payment_pending",
        "payment_failed",
        "payment_cancelled",
        "something_new",
    ];
    for (i, event) in events.iter().enumerate() {
        let token = if i % 2 == 0 {
            LIVETIP_TOKEN
        } else {
            LIVETIP_NEXT
        };
        let body = json!({
            "event": event,
            "payment": {"sender": "s", "amount": "10.00", "paymentId": format!("p{i}"), "paid": i == 0,
                        "currency": "BTC", "unknownField": {"nested": true}},
            "alsoUnknown": 1
        });
        let response = post(
            gw.addr,
            "/webhook",
            &[
                ("content-type", "application/json; charset=utf-8"),
                (TOKEN_HEADER, token),
            ],
            body.to_string(),
        )
        .await;
        assert_eq!(response.status, 200, "{event}: {:?}", response.body);
    }
    let keys: Vec<String> = take(&gw.queue(Provider::LiveTip), events.len())
        .await
        .into_iter()
        .map(|t| t.routing_key)
        .collect();
    assert_eq!(
        keys,
        events
            .iter()
            .map(|e| format!("livetip.{e}"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_use_the_spec_bodies() {
    let gw = spawn_gateway().await;
    let no_token = post(gw.addr, "/webhook", &[JSON], SPEC_CURL_BODY).await;
    assert_eq!(
        (no_token.status, no_token.json()),
        (401, json!({"error": "Token não fornecido"}))
    );
    let wrong = post(
        gw.addr,
        "/webhook",
        &[JSON, (TOKEN_HEADER, "2400613d5c2fb33d76e76c298d1dab4d")],
        SPEC_CURL_BODY,
    )
    .await;
    assert_eq!(
        (wrong.status, wrong.json()),
        (403, json!({"error": "Token inválido"}))
    );
    let media = post(
        gw.addr,
        "/webhook",
        &[
            ("content-type", "text/plain"),
            (TOKEN_HEADER, LIVETIP_TOKEN),
        ],
        SPEC_CURL_BODY,
    )
    .await;
    assert_eq!(media.status, 415);
    assert!(media.json()["error"].is_string());
    let no_media = post(
        gw.addr,
        "/webhook",
        &[(TOKEN_HEADER, LIVETIP_TOKEN)],
        SPEC_CURL_BODY,
    )
    .await;
    assert_eq!(no_media.status, 415);

    let invalid: &[(&str, &str)] = &[
        ("{", "body is not valid JSON"),
        (r#"{"event":"payment_confirmed"}"#, "payment is required"),
        (
            r#"{"event":"payment_confirmed","payment":{"amount":1,"paymentId":"p","paid":true}}"#,
            "payment.sender is required",
        ),
        (
            r#"{"event":"payment_confirmed","payment":{"sender":"s","amount":"1,5","paymentId":"p","paid":true}}"#,
            "payment.amount must be a plain decimal",
        ),
        (
            r#"{"event":"payment_confirmed","payment":{"sender":"s","amount":1,"paid":true}}"#,
            "payment.paymentId is required",
        ),
        (
            r#"{"event":"payment_confirmed","payment":{"sender":"s","amount":1,"paymentId":"p"}}"#,
            "payment.paid is required",
        ),
    ];
    for (body, reason) in invalid {
        let response = post(
            gw.addr,
            "/webhook",
            &[JSON, (TOKEN_HEADER, LIVETIP_TOKEN)],
            *body,
        )
        .await;
        assert_eq!(response.status, 400, "{body}");
        let json = response.json();
        assert_eq!(json["error"], "Payload inválido");
        assert!(
            json["reason"].as_str().unwrap().starts_with(reason),
            "{body}: {json}"
        );
    }
    assert!(drain(&gw.queue(Provider::LiveTip)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_are_recorded_for_the_validation_log_without_secrets() {
    let gw = spawn_gateway().await;
    let leaked = "2400613d5c2fb33d76e76c298d1dab4X";
    let response = post(
        gw.addr,
        "/webhook",
        &[JSON, (TOKEN_HEADER, leaked)],
        SPEC_CURL_BODY,
    )
    .await;
    assert_eq!(response.status, 403);
    let request_id = response.header("x-request-id").unwrap().to_owned();
    let bad = post(gw.addr, "/api/banking/pluggy/webhook", &[JSON], "{}").await;
    assert_eq!(bad.status, 401);

    let records = take(&gw.rejected_queue(), 2).await;
    assert_eq!(records.len(), 2);
    let first: serde_json::Value = serde_json::from_slice(&records[0].body).unwrap();
    assert_eq!(first["provider"], "livetip");
    assert_eq!(first["path"], "/webhook");
    assert_eq!(first["status"], 403);
    assert_eq!(first["clientIp"], "127.0.0.1");
    assert_eq!(first["requestId"], request_id.as_str());
    assert_eq!(first["reason"], "invalid credential");
    assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(!String::from_utf8_lossy(&records[0].body).contains(leaked));
    let second: serde_json::Value = serde_json::from_slice(&records[1].body).unwrap();
    assert_eq!(
        (second["provider"].as_str(), second["status"].as_u64()),
        (Some("pluggy"), Some(401))
    );
}
