//! Why handling an event failed, and the one place that decides what happens next.

use sea_orm::DbErr;
use shared::amqp::PublishError;
use shared::envelope::EnvelopeError;
use shared::payload::PayloadError;

/// A handling failure.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The database did not answer or refused the statement.
    #[error("database error")]
    Database(#[from] DbErr),
    /// Another worker holds a live claim on this event.
    #[error("event is being processed by another worker")]
    ClaimedElsewhere,
    /// The message is not an envelope this worker reads.
    #[error("unreadable envelope")]
    Envelope(#[from] EnvelopeError),
    /// The payload breaks the provider's contract.
    #[error("invalid payload")]
    Payload(#[from] PayloadError),
    /// Pluggy's API failed.
    #[error("Pluggy API error")]
    Pluggy(#[from] crate::pluggy::PluggyError),
    /// The broker did not take a message we had to publish.
    #[error("broker error")]
    Broker(#[from] PublishError),
}

/// What a failure means for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// May succeed later: retry with backoff, then through the delayed-retry steps.
    Transient,
    /// Will never succeed: dead-letter at once.
    Permanent,
}

impl ErrorClass {
    /// Header and log value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
        }
    }
}

impl WorkerError {
    /// The classification, in one place.
    pub fn class(&self) -> ErrorClass {
        match self {
            // A database that is away, restarting or overloaded, a contended claim, a
            // broker hiccup: all pass. A statement the database refuses for good would
            // also land here, and then reach the dead-letter queue after the attempts.
            Self::Database(_) | Self::ClaimedElsewhere | Self::Broker(_) => ErrorClass::Transient,
            Self::Pluggy(e) if e.is_transient() => ErrorClass::Transient,
            Self::Envelope(_) | Self::Payload(_) | Self::Pluggy(_) => ErrorClass::Permanent,
        }
    }

    /// One line with the cause chain, for logs, dead-letter headers and `last_error`.
    pub fn describe(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}
