//! JSON log lines with the OpenTelemetry ids at the top level (`trace_id`, `span_id`)
//! and the fields of the enclosing spans flattened in, so that a log search for an
//! event id or a trace id finds every line of that event.
//!
//! tracing-subscriber's own JSON format nests span fields and knows nothing of the
//! OpenTelemetry ids; this is the small piece it lacks.

use std::fmt;
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::TraceContextExt;

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Dispatch, Event, Id, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// A span's fields as JSON values, kept in the span's extensions. Recorded for every
/// span but read only when a line is logged inside one, so they are kept cheaply: the
/// names are the callsite's static ones, in a short list rather than a map.
#[derive(Debug, Default)]
struct SpanFields(Vec<(&'static str, Value)>);

/// The subscriber, seen weakly: the OpenTelemetry ids of a span are read through it.
type SharedDispatch = Arc<OnceLock<WeakDispatch>>;

/// Collects span fields for [`JsonLines`] and remembers the subscriber.
#[derive(Debug)]
pub struct FieldsLayer {
    dispatch: SharedDispatch,
}

/// The layer that records span fields, and the event format that uses them.
pub fn layers() -> (FieldsLayer, JsonLines) {
    let dispatch = SharedDispatch::default();
    (
        FieldsLayer {
            dispatch: dispatch.clone(),
        },
        JsonLines { dispatch },
    )
}

impl<S> Layer<S> for FieldsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut Visitor(&mut fields.0));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut Visitor(&mut fields.0));
        }
    }
}

/// The event format: one JSON object per line.
#[derive(Debug)]
pub struct JsonLines {
    dispatch: SharedDispatch,
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Utc::now()
                .to_rfc3339_opts(SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(scope) = ctx.event_scope() {
            let mut leaf = None;
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    for (key, value) in &fields.0 {
                        line.insert((*key).to_owned(), value.clone());
                    }
                }
                leaf = Some(span);
            }
            if let Some(span) = leaf {
                line.insert("span".into(), span.name().into());
                let dispatch = self.dispatch.get().and_then(WeakDispatch::upgrade);
                if let Some(context) =
                    dispatch.and_then(|d| tracing_opentelemetry::get_otel_context(&span.id(), &d))
                {
                    let otel = context.span();
                    let ids = otel.span_context();
                    if ids.is_valid() {
                        line.insert("trace_id".into(), ids.trace_id().to_string().into());
                        line.insert("span_id".into(), ids.span_id().to_string().into());
                    }
                }
            }
        }
        let mut own = Vec::new();
        event.record(&mut Visitor(&mut own));
        line.extend(own.into_iter().map(|(key, value)| (key.to_owned(), value)));
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// The fmt layer's span-field text, which it renders for every span it sees: the JSON
/// lines read [`SpanFields`] instead, so nothing is rendered (measured: the text alone
/// cost the gateway several microseconds a request, see BENCHMARKS.md).
#[derive(Debug)]
pub struct NoText;

impl<'writer> FormatFields<'writer> for NoText {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        _writer: Writer<'writer>,
        _fields: R,
    ) -> fmt::Result {
        Ok(())
    }
}

/// Collects fields by name; a field recorded again replaces its value. `otel.*` fields
/// are instructions to the OpenTelemetry layer, not log content, and are never kept.
struct Visitor<'a>(&'a mut Vec<(&'static str, Value)>);

impl Visitor<'_> {
    fn put(&mut self, field: &Field, value: impl FnOnce() -> Value) {
        let name = field.name();
        if name.starts_with("otel.") {
            return;
        }
        match self.0.iter_mut().find(|(kept, _)| *kept == name) {
            Some((_, slot)) => *slot = value(),
            None => self.0.push((name, value())),
        }
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, || value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, || value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, || value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, || value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, || value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, || value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, || format!("{value:?}").into());
    }
}
