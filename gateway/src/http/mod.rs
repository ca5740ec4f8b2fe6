//! HTTP plumbing: routing, the listener, request telemetry.

pub mod router;
pub mod server;
pub mod telemetry;
