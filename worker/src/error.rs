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
    ClaimedElsewhere(Option<chrono::DateTime<chrono::Utc>>),
    /// A concurrent event changed what this one read; starting over reads it anew.
    #[error("contended: {0}")]
    Contended(&'static str),
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
            // broker hiccup: all pass.
            Self::Database(e) if refused_for_good(e) => ErrorClass::Permanent,
            Self::Database(_)
            | Self::ClaimedElsewhere(_)
            | Self::Contended(_)
            | Self::Broker(_) => ErrorClass::Transient,
            Self::Pluggy(e) if e.is_transient() => ErrorClass::Transient,
            Self::Envelope(_) | Self::Payload(_) | Self::Pluggy(_) => ErrorClass::Permanent,
        }
    }

    /// The database could not be reached at all: recording the failure there would
    /// only wait for the same timeout again.
    pub fn is_database_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Database(DbErr::ConnectionAcquire(_) | DbErr::Conn(_))
        )
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

/// A statement the database refuses because of the data itself, which no retry
/// changes: PostgreSQL's SQLSTATE classes 22 (data exception: value too long, invalid
/// encoding such as a NUL) and 23 (integrity: check, not-null, foreign key), and
/// SQLite's constraint failures. A unique violation is the exception: it means a
/// concurrent writer got there first, and the next attempt reads what it wrote.
fn refused_for_good(error: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx};
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = error
    else {
        return false;
    };
    let sqlx::Error::Database(db) = &**e else {
        return false;
    };
    let Some(code) = db.code() else {
        return false;
    };
    is_permanent_code(&code)
}

/// See [`refused_for_good`]; SQLite reports extended result codes as numbers.
fn is_permanent_code(code: &str) -> bool {
    const PG_UNIQUE_VIOLATION: &str = "23505";
    // SQLITE_CONSTRAINT_PRIMARYKEY and SQLITE_CONSTRAINT_UNIQUE.
    const SQLITE_UNIQUE: [&str; 2] = ["1555", "2067"];
    if code == PG_UNIQUE_VIOLATION || SQLITE_UNIQUE.contains(&code) {
        return false;
    }
    if code.starts_with("22") || code.starts_with("23") {
        return code.len() == 5;
    }
    // SQLITE_CONSTRAINT (19) and its extended codes (19 + n * 256), SQLITE_TOOBIG (18),
    // SQLITE_MISMATCH (20).
    code.parse::<u32>()
        .is_ok_and(|n| matches!(n & 0xff, 18..=20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_errors_are_permanent_races_are_not() {
        for code in [
            "22001", "22021", "22P02", "23502", "23503", "23514", "275", "1299", "19",
        ] {
            assert!(is_permanent_code(code), "{code}");
        }
        for code in [
            "23505", "2067", "1555", "40001", "40P01", "57P01", "08006", "5", "517",
        ] {
            assert!(!is_permanent_code(code), "{code}");
        }
    }
}
