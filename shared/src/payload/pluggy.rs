//! What the gateway needs from a Pluggy delivery: event name, event id and client id.
//!
//! Everything else is the worker's business; unknown events and fields are accepted.

use super::{PayloadError, bounds, id_like, json_object};

/// The routing-relevant part of a Pluggy webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluggyHead {
    /// `item/updated`, `transactions/created`, ...
    pub event: String,
    /// `eventId`; Pluggy keeps it across retries. Never the top-level `id`, which names
    /// the entity the event is about (two events about one connector share it).
    pub event_id: Option<String>,
    /// `clientId`, present on newer deliveries.
    pub client_id: Option<String>,
    /// `itemId`: the item the event is about (item, account and transaction events).
    pub item_id: Option<String>,
    /// `accountId`: the account of an account or transaction event.
    pub account_id: Option<String>,
}

/// Id fields the worker stores, each with its bound.
const STORED_IDS: &[(&str, usize)] = &[
    ("eventId", bounds::PROVIDER_EVENT_ID),
    ("clientId", bounds::PLUGGY_CLIENT_ID),
    ("itemId", bounds::PLUGGY_ID),
    ("accountId", bounds::PLUGGY_ID),
];

/// Parses the head of a Pluggy payload: a JSON object with a string `event`, and every
/// field the worker stores within its bound (unknown fields are accepted as they are).
pub fn parse_head(body: &[u8]) -> Result<PluggyHead, PayloadError> {
    parse(body).map(|(head, _)| head)
}

/// The head and the whole payload as one reading of the body: the worker handles the
/// very value whose fields the gateway checked, never a second parse that could read
/// them otherwise.
pub fn parse(body: &[u8]) -> Result<(PluggyHead, serde_json::Value), PayloadError> {
    let map = json_object(body)?;
    let event = match map.get("event") {
        Some(serde_json::Value::String(e)) => {
            bounds::name("event", e, bounds::PLUGGY_EVENT_NAME)?;
            e.clone()
        }
        Some(_) => return Err(PayloadError::new("event must be a string")),
        None => return Err(PayloadError::new("event is required")),
    };
    for (field, max) in STORED_IDS {
        if let Some(id) = id_like(map.get(*field)) {
            bounds::name(field, &id, *max)?;
        }
    }
    // Ids the worker deletes by; anything but an array is no list (and deletes nothing).
    if let Some(serde_json::Value::Array(ids)) = map.get("transactionIds") {
        for id in ids {
            match id {
                serde_json::Value::String(id) => {
                    bounds::name("transactionIds[]", id, bounds::PLUGGY_ID)?;
                }
                _ => return Err(PayloadError::new("transactionIds[] must be strings")),
            }
        }
    }
    // `error` is stored as `jsonb`, which cannot hold a NUL; the rest of the body is kept
    // as bytes or re-serialised text, where an escaped NUL is harmless.
    if let Some(error) = map.get("error") {
        bounds::no_nul(error).map_err(|e| PayloadError::new(format!("error: {}", e.0)))?;
    }
    let head = PluggyHead {
        event,
        event_id: id_like(map.get("eventId")),
        client_id: id_like(map.get("clientId")),
        item_id: id_like(map.get("itemId")),
        account_id: id_like(map.get("accountId")),
    };
    Ok((head, serde_json::Value::Object(map)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_event_and_ids() {
        let head = parse_head(
            br#"{"event":"transactions/deleted","eventId":"e1","itemId":"i","accountId":"a","clientId":"c"}"#,
        );
        assert_eq!(
            head,
            Ok(PluggyHead {
                event: "transactions/deleted".into(),
                event_id: Some("e1".into()),
                client_id: Some("c".into()),
                item_id: Some("i".into()),
                account_id: Some("a".into()),
            })
        );
        // `id` names the entity (a connector, an item), never the event.
        let entity = parse_head(br#"{"event":"connector/status_updated","id":"c1"}"#);
        assert_eq!(entity.map(|h| h.event_id), Ok(None));
    }

    #[test]
    fn the_payload_is_the_reading_the_head_was_checked_on() {
        let body = br#"{"event":"transactions/created","itemId":"i","data":{"n":1.10}}"#;
        let (head, payload) = parse(body)
            .map_err(|e| e.0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(head.item_id.as_deref(), payload["itemId"].as_str());
        assert_eq!(payload["data"]["n"].to_string(), "1.10");
    }

    #[test]
    fn refuses_what_is_not_an_event_object() {
        for body in [
            &b"[]"[..],
            b"\"s\"",
            b"{}",
            br#"{"event":3}"#,
            br#"{"event":""}"#,
            b"{",
            b"\xff",
            br#"{"event":"x/y","itemId":"i\u0000"}"#,
            br#"{"event":"x/y","transactionIds":["t",3]}"#,
            br#"{"event":"item/error","error":{"message":"\u0000"}}"#,
        ] {
            assert!(
                parse_head(body).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
