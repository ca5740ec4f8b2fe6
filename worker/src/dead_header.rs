//! Dead-letter headers: why, what kind of failure, after how many attempts, when. Their
//! own module: the settlement writes them, the dead-letter tools and the queue monitor
//! read them.

/// Human-readable reason with its cause chain.
pub const REASON: &str = "x-hookwire-dead-reason";
/// `transient` (attempts exhausted) or `permanent`.
pub const CLASS: &str = "x-hookwire-error-class";
/// RFC 3339 UTC time of dead-lettering.
pub const AT: &str = "x-hookwire-dead-at";
/// Routing key to replay the message under.
pub const ROUTING_KEY: &str = "x-hookwire-routing-key";
