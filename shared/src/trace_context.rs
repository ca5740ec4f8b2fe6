//! W3C trace context (`traceparent`, `tracestate`) as it travels in AMQP headers.
//!
//! The gateway starts one trace per accepted request and stores its context in the
//! message, so the worker's spans join the same trace. When OpenTelemetry export is
//! wired in, the ids come from the active span instead of being minted here; the
//! header format stays the same.

use uuid::Uuid;

/// Header carrying the W3C `traceparent` value.
pub const TRACEPARENT: &str = "traceparent";
/// Header carrying the W3C `tracestate` value.
pub const TRACESTATE: &str = "tracestate";

/// One trace context, in W3C form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    sampled: bool,
    /// Vendor state forwarded untouched.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// A new root context with random ids, sampled.
    pub fn new_root() -> Self {
        let trace = Uuid::new_v4().into_bytes();
        let span = Uuid::new_v4().into_bytes();
        let mut span_id = [0u8; 8];
        span_id.copy_from_slice(&span[..8]);
        Self {
            trace_id: trace,
            span_id,
            sampled: true,
            tracestate: None,
        }
    }

    /// Parses a `traceparent` header (version 00); `None` when it is malformed or all-zero.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || parts.next().is_some() {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        let mut flag = [0u8; 1];
        hex::decode_to_slice(trace, &mut trace_id).ok()?;
        hex::decode_to_slice(span, &mut span_id).ok()?;
        hex::decode_to_slice(flags, &mut flag).ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flag[0] & 1 == 1,
            tracestate: tracestate.map(str::to_owned),
        })
    }

    /// The 32-hex-digit trace id an SRE pastes into Jaeger.
    pub fn trace_id(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.span_id),
            u8::from(self.sampled)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_header() {
        let ctx = TraceContext::new_root();
        let parsed = TraceContext::parse(&ctx.traceparent(), None);
        assert_eq!(parsed.as_ref(), Some(&ctx));
        assert_eq!(ctx.trace_id().len(), 32);
    }

    #[test]
    fn rejects_malformed_headers() {
        for bad in [
            "",
            "00-abc-def-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(TraceContext::parse(bad, None).is_none(), "{bad}");
        }
    }
}
