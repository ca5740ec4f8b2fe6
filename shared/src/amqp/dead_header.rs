//! Failure headers of a message: its attempt count, and once dead, why, what kind of
//! failure and when. Shared: the worker's settlement writes them; the dead-letter tools
//! (the worker's CLI and the gateway's admin API) and the queue monitor read them.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, ShortString};

/// Rounds of delayed retry a message has been through.
pub const ATTEMPTS_HEADER: &str = "x-hookwire-attempts";
/// The last failure of a message sent to a retry step.
pub const LAST_ERROR: &str = "x-hookwire-last-error";

/// Human-readable reason with its cause chain.
pub const REASON: &str = "x-hookwire-dead-reason";
/// `transient` (attempts exhausted) or `permanent`.
pub const CLASS: &str = "x-hookwire-error-class";
/// RFC 3339 UTC time of dead-lettering.
pub const AT: &str = "x-hookwire-dead-at";
/// Routing key to replay the message under.
pub const ROUTING_KEY: &str = "x-hookwire-routing-key";

/// Failed rounds recorded on a message so far.
pub fn attempts(properties: &BasicProperties) -> u32 {
    let Some(headers) = properties.headers() else {
        return 0;
    };
    match headers.inner().get(&ShortString::from(ATTEMPTS_HEADER)) {
        Some(AMQPValue::LongUInt(n)) => *n,
        Some(AMQPValue::LongInt(n)) => u32::try_from(*n).unwrap_or(0),
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}
