//! W3C trace context (`traceparent`, `tracestate`) as it travels in AMQP headers.
//!
//! The gateway's publish span is stored in the message, so the worker's consume span
//! joins the same trace as its child. Ids come from the OpenTelemetry spans; this type
//! only carries them across the broker in the standard header format.

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

    /// The context of a tracing span (through its OpenTelemetry data); `None` when the
    /// OpenTelemetry layer is not installed.
    pub fn of_span(span: &tracing::Span) -> Option<Self> {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let context = span.context();
        let otel = context.span();
        let sc = otel.span_context();
        if !sc.is_valid() {
            return None;
        }
        let state = sc.trace_state().header();
        Some(Self {
            trace_id: sc.trace_id().to_bytes(),
            span_id: sc.span_id().to_bytes(),
            sampled: sc.is_sampled(),
            tracestate: (!state.is_empty()).then_some(state),
        })
    }

    /// This context as a remote OpenTelemetry parent (or link target).
    pub fn to_otel(&self) -> opentelemetry::trace::SpanContext {
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
        let state = self
            .tracestate
            .as_deref()
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default();
        SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            if self.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            state,
        )
    }

    /// Makes `span` a child of this (remote) context.
    pub fn adopt(&self, span: &tracing::Span) {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let parent = opentelemetry::Context::new().with_remote_span_context(self.to_otel());
        let _ = span.set_parent(parent);
    }

    /// The 32-hex-digit trace id an SRE pastes into Jaeger.
    pub fn trace_id(&self) -> String {
        lower_hex(&self.trace_id)
    }

    /// The 16-hex-digit span id.
    pub fn span_id(&self) -> String {
        lower_hex(&self.span_id)
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> String {
        // Written into one buffer: the gateway builds this for every event it accepts.
        let mut text = [0u8; 55];
        text[..3].copy_from_slice(b"00-");
        let _ = hex::encode_to_slice(self.trace_id, &mut text[3..35]);
        text[35] = b'-';
        let _ = hex::encode_to_slice(self.span_id, &mut text[36..52]);
        text[52..].copy_from_slice(if self.sampled { b"-01" } else { b"-00" });
        String::from_utf8_lossy(&text).into_owned()
    }
}

/// Lowercase hex of a fixed-size id, through a table rather than a character iterator.
fn lower_hex<const N: usize>(bytes: &[u8; N]) -> String {
    let mut text = vec![0u8; 2 * N];
    let _ = hex::encode_to_slice(bytes, &mut text);
    String::from_utf8_lossy(&text).into_owned()
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
    fn converts_to_and_from_opentelemetry() {
        let ctx = TraceContext::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Some("vendor=1"),
        )
        .unwrap_or_else(TraceContext::new_root);
        let otel = ctx.to_otel();
        assert_eq!(
            otel.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(otel.is_sampled() && otel.is_remote());
        assert_eq!(otel.trace_state().header(), "vendor=1");
    }

    #[test]
    fn writes_the_w3c_text_it_reads() {
        for header in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        ] {
            let ctx = TraceContext::parse(header, None);
            assert_eq!(
                ctx.as_ref().map(TraceContext::traceparent).as_deref(),
                Some(header)
            );
            assert_eq!(
                ctx.map(|c| (c.trace_id(), c.span_id())),
                Some((header[3..35].to_owned(), header[36..52].to_owned()))
            );
        }
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
