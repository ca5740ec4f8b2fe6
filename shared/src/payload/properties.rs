//! Property tests and a corpus of hostile inputs: whatever arrives, parsing answers
//! with a value or a `PayloadError`, never a panic, and agrees with itself.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{bounds, livetip, pluggy};

/// Arbitrary JSON, nested a few levels, with the field names the parsers look at.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::from),
        "-?[0-9]{1,30}(\\.[0-9]{0,30})?".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        let key = prop_oneof![
            Just("event".to_owned()),
            Just("eventId".to_owned()),
            Just("id".to_owned()),
            Just("clientId".to_owned()),
            Just("payment".to_owned()),
            Just("sender".to_owned()),
            Just("amount".to_owned()),
            Just("paymentId".to_owned()),
            Just("paid".to_owned()),
            Just("currency".to_owned()),
            Just("timestamp".to_owned()),
            ".{0,12}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(key, inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = pluggy::parse_head(&body);
        let _ = livetip::parse(&body);
    }

    #[test]
    fn arbitrary_json_is_parsed_or_refused_consistently(value in json_value()) {
        let body = serde_json::to_vec(&value).unwrap_or_default();
        if let Ok(head) = pluggy::parse_head(&body) {
            prop_assert!(!head.event.trim().is_empty());
        }
        match livetip::parse(&body) {
            Ok(event) => {
                prop_assert!(!event.event.trim().is_empty());
                prop_assert!(!event.payment.payment_id.trim().is_empty());
                prop_assert!(event.payment.amount >= rust_decimal::Decimal::ZERO);
                // What passes fits its columns and holds no control character: the
                // worker can store whatever the gateway accepted.
                for (value, bound) in [
                    (&event.event, bounds::EVENT_NAME),
                    (&event.payment.sender, bounds::USER_NAME),
                    (&event.payment.payment_id, bounds::LIVETIP_PAYMENT_ID),
                ] {
                    prop_assert!(value.chars().count() <= bound);
                    prop_assert!(!value.chars().any(char::is_control));
                }
                prop_assert_eq!(event.payment.currency.len(), bounds::CURRENCY_CODE);
                prop_assert!(event.payment.currency.bytes().all(|b| b.is_ascii_uppercase()));
            }
            Err(reason) => prop_assert!(!reason.0.is_empty()),
        }
    }

    #[test]
    fn amounts_are_read_exactly(units in 0u64..10_000_000_000_000_000, cents in 0u32..100) {
        // Up to 19 significant digits: more than a float holds, so any trip through
        // f64 would show.
        let text = format!("{units}.{cents:02}");
        let expected = text.parse::<rust_decimal::Decimal>().map(|d| d.normalize());
        for amount in [format!("\"{text}\""), text.clone()] {
            let body = format!(
                r#"{{"event":"payment_confirmed","payment":{{"sender":"s","amount":{amount},"paymentId":"p","paid":true}}}}"#
            );
            let parsed = livetip::parse(body.as_bytes()).map(|e| e.payment.amount);
            prop_assert_eq!(parsed.ok(), expected.clone().ok());
        }
    }
}

/// Inputs an attacker would try; each must be refused (or, where harmless, accepted)
/// without a panic, a hang or unbounded work.
#[test]
fn hostile_corpus_is_refused_cleanly() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!(
        "{}1{}",
        r#"{"event":"x","payment":"#.repeat(10_000),
        "}".repeat(10_000)
    );
    let huge_number = format!(
        r#"{{"event":"payment_confirmed","payment":{{"sender":"s","amount":1{},"paymentId":"p","paid":true}}}}"#,
        "0".repeat(10_000)
    );
    let whitespace = vec![b' '; 1_048_576];
    let utf16: Vec<u8> =
        r#"{"event":"item/updated"}"#.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let refused: Vec<Vec<u8>> = vec![
        deep.into_bytes(),
        deep_object.into_bytes(),
        huge_number.into_bytes(),
        whitespace,
        utf16,
        b"{\"event\":\"a\xff\xfe\"}".to_vec(),
        br#"{"event":"payment_confirmed","payment":{"sender":"s","amount":1e400,"paymentId":"p","paid":true}}"#.to_vec(),
        br#"{"event":"payment_confirmed","payment":{"sender":"s","amount":-5,"paymentId":"p","paid":true}}"#.to_vec(),
        br#"{"event":"payment_confirmed","payment":{"sender":"s","amount":"NaN","paymentId":"p","paid":true}}"#.to_vec(),
        b"\xef\xbb\xbf{\"event\":\"x\"}".to_vec(),
        Vec::new(),
    ];
    for body in &refused {
        assert!(
            livetip::parse(body).is_err(),
            "{:?}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
    }
    // Pluggy's head ignores the amount, so only the structural attacks apply.
    for i in [0, 1, 3, 4, 5] {
        assert!(pluggy::parse_head(&refused[i]).is_err(), "case {i}");
    }
    // A NUL inside a string could never be stored (PostgreSQL refuses it): refused,
    // naming the field.
    let nul = br#"{"event":"payment_pending","payment":{"sender":"a\u0000b","amount":1,"paymentId":"p","paid":false}}"#;
    assert_eq!(
        livetip::parse(nul).map_err(|e| e.0),
        Err("payment.sender must not contain control characters".to_owned())
    );
    // Duplicate keys, at any depth: refused, since readers disagree on which one wins.
    let dup = br#"{"event":"item/created","event":"item/updated","eventId":"e"}"#;
    assert!(
        pluggy::parse_head(dup).is_err_and(|e| e.0.contains("the key \"event\" twice")),
        "names the key"
    );
    let nested = br#"{"event":"payment_confirmed","payment":{"sender":"s","amount":1,"amount":500,"paymentId":"p","paid":true}}"#;
    assert!(livetip::parse(nested).is_err());
    let in_array = br#"{"event":"x/y","list":[{"a":1,"a":2}]}"#;
    assert!(pluggy::parse_head(in_array).is_err());
    // The same key in sibling objects is no duplicate.
    let siblings = br#"{"event":"x/y","a":{"k":1},"b":{"k":2},"n":1.50}"#;
    assert!(pluggy::parse_head(siblings).is_ok());
}
