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

/// Writes the settled line of `incoming` now. `event_id` is our inbox row when the
/// path that settled it knows it (always for applied events and duplicates).
pub fn record(incoming: &Incoming, outcome: Outcome, event_id: Option<Uuid>) {
    Line::of(incoming, outcome, event_id).write();
}

/// A settled line taken down while the delivery is at hand, written once the
/// settlement it reports has happened (a retry or dead-letter copy confirmed).
#[derive(Debug)]
pub struct Line {
    provider: &'static str,
    event: String,
    outcome: Outcome,
    attempt: u32,
    started: std::time::Instant,
    trace_id: Option<String>,
    request_id: Option<String>,
    event_id: Option<Uuid>,
}

impl Line {
    /// The line `incoming` will get with `outcome`.
    pub fn of(incoming: &Incoming, outcome: Outcome, event_id: Option<Uuid>) -> Self {
        let envelope = incoming.envelope.as_ref().ok();
        Self {
            provider: incoming.provider.as_str(),
            event: envelope.map(|e| e.event.clone()).unwrap_or_default(),
            outcome,
            attempt: incoming.attempt,
            started: incoming.started,
            trace_id: envelope.map(|e| e.trace.trace_id()),
            request_id: envelope.map(|e| e.request_id.to_string()),
            event_id,
        }
    }

    /// Writes it.
    pub fn write(self) {
        let status = match self.outcome {
            Outcome::Applied(applied) => Some(applied.status().as_str()),
            _ => None,
        };
        tracing::info!(
            target: "hookwire::settled",
            provider = self.provider,
            event = %self.event,
            outcome = self.outcome.as_str(),
            status,
            attempt = self.attempt,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            trace_id = self.trace_id,
            request_id = self.request_id,
            event_id = self.event_id.map(|id| id.to_string()),
            "event settled"
        );
    }
}
