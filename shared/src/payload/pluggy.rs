//! What the gateway needs from a Pluggy delivery: event name, event id and client id.
//!
//! Everything else is the worker's business; unknown events and fields are accepted.

use super::{PayloadError, id_like, json_object};

/// The routing-relevant part of a Pluggy webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluggyHead {
    /// `item/updated`, `transactions/created`, ...
    pub event: String,
    /// `eventId`, else the deprecated `id`; Pluggy keeps it across retries.
    pub event_id: Option<String>,
    /// `clientId`, present on newer deliveries.
    pub client_id: Option<String>,
}

/// Parses the head of a Pluggy payload: a JSON object with a string `event`.
pub fn parse_head(body: &[u8]) -> Result<PluggyHead, PayloadError> {
    let map = json_object(body)?;
    let event = match map.get("event") {
        Some(serde_json::Value::String(e)) if !e.trim().is_empty() => e.clone(),
        Some(serde_json::Value::String(_)) => return Err(PayloadError::new("event is empty")),
        Some(_) => return Err(PayloadError::new("event must be a string")),
        None => return Err(PayloadError::new("event is required")),
    };
    let event_id = id_like(map.get("eventId")).or_else(|| id_like(map.get("id")));
    let client_id = id_like(map.get("clientId"));
    Ok(PluggyHead {
        event,
        event_id,
        client_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_event_and_ids() {
        let head =
            parse_head(br#"{"event":"item/updated","eventId":"e1","itemId":"i","clientId":"c"}"#);
        assert_eq!(
            head,
            Ok(PluggyHead {
                event: "item/updated".into(),
                event_id: Some("e1".into()),
                client_id: Some("c".into())
            })
        );
        let legacy = parse_head(br#"{"event":"x/y","id":"legacy"}"#).map(|h| h.event_id);
        assert_eq!(legacy, Ok(Some("legacy".into())));
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
        ] {
            assert!(
                parse_head(body).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
