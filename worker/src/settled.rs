//! The one line per settled event that an SRE greps: what happened to the event, at
//! which attempt, how long it took, and the ids that find it again (the trace, the
//! gateway's request id, our inbox row). Emitted at INFO once per delivery settled;
//! nothing else the worker writes per event is at INFO.

use uuid::Uuid;

use crate::handlers::Applied;
use crate::incoming::Incoming;

/// How a delivery was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its effect committed (processed, ignored or rejected: the inbox status says).
    Applied(Applied),
    /// A copy of an event already handled: acknowledged without effect.
    Duplicate,
    /// Failed; sent to a delayed-retry step.
    RetryStep,
    /// Failed for good; moved to the dead-letter queue.
    DeadLetter,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Applied(_) => "applied",
            Self::Duplicate => "duplicate",
            Self::RetryStep => "retry_step",
            Self::DeadLetter => "dead_letter",
        }
    }
}

/// Writes the settled line of `incoming`. `event_id` is our inbox row when the path
/// that settled it knows it (always for applied events and duplicates).
pub fn record(incoming: &Incoming, outcome: Outcome, event_id: Option<Uuid>) {
    let envelope = incoming.envelope.as_ref().ok();
    let status = match outcome {
        Outcome::Applied(applied) => Some(applied.status().as_str()),
        _ => None,
    };
    tracing::info!(
        target: "hookwire::settled",
        provider = incoming.provider.as_str(),
        event = envelope.map_or("", |e| e.event.as_str()),
        outcome = outcome.as_str(),
        status,
        attempt = incoming.attempt,
        duration_ms = incoming.started.elapsed().as_secs_f64() * 1000.0,
        trace_id = envelope.map(|e| e.trace.trace_id()),
        request_id = envelope.map(|e| e.request_id.to_string()),
        event_id = event_id.map(|id| id.to_string()),
        "event settled"
    );
}
