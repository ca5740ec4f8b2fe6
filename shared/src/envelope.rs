//! The versioned envelope an accepted webhook travels in, from gateway to worker.
//!
//! The AMQP body is the provider's request body, byte for byte: signatures stay
//! verifiable, dead letters stay replayable, and no re-encoding can alter what the
//! provider sent. Everything else the worker needs rides in AMQP properties and headers.

use std::borrow::Cow;
use std::net::IpAddr;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::provider::Provider;
use crate::trace_context::{TRACEPARENT, TRACESTATE, TraceContext};

/// Current envelope version; a worker refuses versions it does not know.
pub const ENVELOPE_VERSION: u32 = 1;

/// Header holding the envelope's metadata as one compact JSON object.
///
/// One header rather than one per field: RabbitMQ decodes every header table entry of
/// every message, and a dozen entries cut the broker's throughput by a third (see
/// BENCHMARKS.md). The trace context keeps its standard header names beside it.
pub const ENVELOPE_HEADER: &str = "x-hookwire-envelope";

/// RabbitMQ's sender-selected routing header: extra keys the message is routed by,
/// removed by the broker before delivery (unlike `CC`), so a consumer that moves the
/// message on (a retry, a dead letter through the default exchange) never routes on it.
pub const BCC_HEADER: &str = "BCC";

/// Request headers copied into the envelope. An allow-list, so that a credential
/// header can never slip through under a name nobody thought of.
pub const KEPT_HTTP_HEADERS: &[&str] = &[
    "content-type",
    "user-agent",
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
    "traceparent",
    "tracestate",
];

/// One accepted webhook.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// Who sent it.
    pub provider: Provider,
    /// Provider's event name.
    pub event: String,
    /// Provider's event id, when the payload has one.
    pub provider_event_id: Option<String>,
    /// When the gateway received it.
    pub received_at: DateTime<Utc>,
    /// Gateway request id, also the AMQP `message_id`.
    pub request_id: Uuid,
    /// Client address.
    pub client_ip: Option<IpAddr>,
    /// Kept request headers, lowercase names.
    pub http_headers: Vec<(String, String)>,
    /// Trace this event belongs to.
    pub trace: TraceContext,
    /// The request body, untouched.
    pub body: Bytes,
}

/// A delivery that is not a hookwire envelope this version understands.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The version header is absent or not one we read.
    #[error("unsupported envelope version {0:?}")]
    Version(Option<u32>),
    /// A required header is absent or malformed.
    #[error("envelope header {0} is missing or malformed")]
    Header(&'static str),
}

/// The envelope header's JSON shape; field names are part of the wire format. Written
/// from borrowed fields (the gateway builds one per request), read back owned.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta<'a> {
    v: u32,
    provider: Cow<'a, str>,
    event: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event_id: Option<Cow<'a, str>>,
    received_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "no_headers")]
    http: Cow<'a, [(String, String)]>,
}

fn no_headers(headers: &[(String, String)]) -> bool {
    headers.is_empty()
}

impl Envelope {
    /// Routing key on the ingest and events exchanges.
    pub fn routing_key(&self) -> String {
        self.provider.routing_key(&self.event)
    }

    /// AMQP properties: persistent, metadata in one header, trace context beside it.
    pub fn properties(&self) -> BasicProperties {
        self.properties_with(FieldTable::default())
    }

    /// The properties of the gateway's publish to the ingest exchange: as
    /// [`Envelope::properties`], plus the provider's key in `BCC`, which is what routes
    /// the event to its work queue there. Only that publish carries routing keys:
    /// anywhere else (the default exchange, a pattern on the events exchange) they
    /// would reach queues nobody meant.
    pub fn ingest_properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(
            BCC_HEADER.into(),
            AMQPValue::FieldArray(FieldArray::from(vec![long(self.provider.ingest_key())])),
        );
        self.properties_with(headers)
    }

    /// Both kinds of properties, built once on the ingest path (no table copied).
    fn properties_with(&self, mut headers: FieldTable) -> BasicProperties {
        let meta = Meta {
            v: ENVELOPE_VERSION,
            provider: Cow::Borrowed(self.provider.as_str()),
            event: Cow::Borrowed(&self.event),
            event_id: self.provider_event_id.as_deref().map(Cow::Borrowed),
            received_at: self.received_at,
            client_ip: self.client_ip,
            http: Cow::Borrowed(&self.http_headers),
        };
        // Serialising plain strings and numbers cannot fail; an empty header would be
        // refused by the worker as an unknown version, never silently misread.
        let meta = serde_json::to_vec(&meta).unwrap_or_default();
        headers.insert(
            ENVELOPE_HEADER.into(),
            AMQPValue::LongString(LongString::from(meta)),
        );
        headers.insert(TRACEPARENT.into(), long(&self.trace.traceparent()));
        if let Some(state) = &self.trace.tracestate {
            headers.insert(TRACESTATE.into(), long(state));
        }
        let content_type = self
            .http_headers
            .iter()
            .find(|(n, _)| n == "content-type")
            .map_or("application/json", |(_, v)| v.as_str());
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(ShortString::from(truncate(content_type, 255)))
            .with_message_id(ShortString::from(self.request_id.to_string()))
            .with_timestamp(u64::try_from(self.received_at.timestamp()).unwrap_or(0))
            .with_type(ShortString::from(truncate(&self.event, 255)))
            .with_app_id("hookwire-gateway".into())
            .with_headers(headers)
    }

    /// Reads an envelope back from a delivery's properties and body.
    pub fn from_amqp(props: &BasicProperties, body: Bytes) -> Result<Self, EnvelopeError> {
        let empty = FieldTable::default();
        let headers = props.headers().as_ref().unwrap_or(&empty);
        let get = |name: &'static str| headers.inner().get(&ShortString::from(name));
        let meta: Meta = match get(ENVELOPE_HEADER) {
            Some(AMQPValue::LongString(raw)) => serde_json::from_slice(raw.as_bytes())
                .map_err(|_| EnvelopeError::Header(ENVELOPE_HEADER))?,
            _ => return Err(EnvelopeError::Version(None)),
        };
        if meta.v != ENVELOPE_VERSION {
            return Err(EnvelopeError::Version(Some(meta.v)));
        }
        let provider = meta
            .provider
            .parse()
            .map_err(|_| EnvelopeError::Header("provider"))?;
        let request_id = props
            .message_id()
            .as_ref()
            .and_then(|id| Uuid::parse_str(id.as_str()).ok())
            .ok_or(EnvelopeError::Header("message_id"))?;
        let text = |name: &'static str| get(name).and_then(value_str);
        let trace = text(TRACEPARENT)
            .and_then(|tp| TraceContext::parse(&tp, text(TRACESTATE).as_deref()))
            .unwrap_or_else(TraceContext::new_root);
        Ok(Self {
            provider,
            event: meta.event.into_owned(),
            provider_event_id: meta.event_id.map(Cow::into_owned),
            received_at: meta.received_at,
            request_id,
            client_ip: meta.client_ip,
            http_headers: meta.http.into_owned(),
            trace,
            body,
        })
    }
}

fn long(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}

fn value_str(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Cuts to at most `max` bytes on a character boundary (AMQP short strings are 255 bytes,
/// database columns have limits too).
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_round_trip_through_amqp_properties() {
        let envelope = Envelope {
            provider: Provider::Pluggy,
            event: "item/updated".into(),
            provider_event_id: Some("evt-1".into()),
            received_at: Utc::now(),
            request_id: Uuid::new_v4(),
            client_ip: "10.1.2.3".parse().ok(),
            http_headers: vec![("user-agent".into(), "pluggy".into())],
            trace: TraceContext::new_root(),
            body: Bytes::from_static(b"{\"event\":\"item/updated\"}"),
        };
        let back = Envelope::from_amqp(&envelope.properties(), envelope.body.clone())
            .map_err(|e| e.to_string());
        let back = back.as_ref().map(|b| {
            (
                b.provider,
                b.event.clone(),
                b.provider_event_id.clone(),
                b.request_id,
                b.client_ip,
                b.trace.clone(),
                b.http_headers.clone(),
            )
        });
        assert_eq!(
            back,
            Ok((
                envelope.provider,
                envelope.event.clone(),
                envelope.provider_event_id.clone(),
                envelope.request_id,
                envelope.client_ip,
                envelope.trace.clone(),
                envelope.http_headers.clone(),
            ))
        );
    }

    #[test]
    fn only_the_ingest_publish_carries_the_providers_routing_key() {
        let envelope = Envelope {
            provider: Provider::LiveTip,
            event: "payment_confirmed".into(),
            provider_event_id: None,
            received_at: Utc::now(),
            request_id: Uuid::new_v4(),
            client_ip: None,
            http_headers: Vec::new(),
            trace: TraceContext::new_root(),
            body: Bytes::from_static(b"{}"),
        };
        let bcc = |props: &BasicProperties| {
            props
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get(&ShortString::from(BCC_HEADER)).cloned())
        };
        assert_eq!(bcc(&envelope.properties()), None);
        let ingest = envelope.ingest_properties();
        assert_eq!(
            bcc(&ingest),
            Some(AMQPValue::FieldArray(FieldArray::from(vec![long(
                "livetip"
            )])))
        );
        // Everything else is the same envelope.
        let back = Envelope::from_amqp(&ingest, envelope.body.clone()).map(|b| b.request_id);
        assert_eq!(back.ok(), Some(envelope.request_id));
    }

    #[test]
    fn refuses_unknown_versions() {
        let props = BasicProperties::default();
        assert!(matches!(
            Envelope::from_amqp(&props, Bytes::new()),
            Err(EnvelopeError::Version(None))
        ));
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("ação", 2), "a");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
