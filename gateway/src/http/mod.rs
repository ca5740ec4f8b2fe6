//! HTTP plumbing: routing, body limits, the listener.

pub mod body;
pub mod router;
pub mod server;
pub mod telemetry;
