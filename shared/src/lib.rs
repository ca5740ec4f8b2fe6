//! What the hookwire gateway and worker agree on.
//!
//! # Layout
//! - [`provider`]: the closed set of webhook providers and their routing keys.
//! - [`envelope`]: the versioned message format (raw body + metadata headers).
//! - [`payload`]: provider payload parsing shared by validation and handling.
//! - [`amqp`]: topology as code and the supervised, confirm-mode broker link.
//! - `db` (feature `db`): SeaORM connection, migrations and entities.
//! - [`payment_id`], [`money`]: our payment ids and exact money text.
//! - [`connection`]: per-client connection caps and idle timeouts for every listener.
//! - [`secret`]: secrets that never print and compare in constant time.
//! - [`trace_context`]: W3C trace context carried in message headers.
//! - [`telemetry`]: logs and OpenTelemetry traces; [`metrics`]: the Prometheus recorder;
//!   [`shutdown`]: signal handling for both binaries.

pub mod amqp;
pub mod connection;
#[cfg(feature = "db")]
pub mod db;
pub mod envelope;
pub mod metrics;
pub mod money;
pub mod payload;
pub mod payment_id;
pub mod provider;
pub mod secret;
pub mod shutdown;
pub mod telemetry;
pub mod trace_context;

pub use envelope::Envelope;
pub use provider::Provider;
