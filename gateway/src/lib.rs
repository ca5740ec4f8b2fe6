//! hookwire gateway: the public edge that providers call.
//!
//! # Layout
//! - [`config`]: settings from the environment, validated at start-up; [`cli`]: the binary.
//! - [`app`]: [`app::Application`] binds, connects and runs; `main` and tests share it.
//! - [`http`]: listener (connection cap, timeouts, drain), router; [`body`]: bounded body
//!   reads and the checks before them, below both the router and the handlers.
//! - [`verify`]: provider authentication (Pluggy HMAC or secret header, LiveTip token).
//! - [`ingest`]: per-provider handlers: validate, publish with confirm, answer.
//! - [`admin`]: the admin listener (monitoring, payments API, test webhook).
//! - [`guard`]: client address behind proxies, allow-lists, rate limits, in-flight bound.
//! - [`audit`]: rejected-request records, published off the request path.
//! - [`simulate`]: `gateway simulate pluggy`, a signed test event for a running gateway.
//! - [`error`]: [`error::ApiError`], the one place errors become statuses and bodies.
//! - [`state`]: what handlers share.

pub mod admin;
pub mod app;
pub mod audit;
pub mod body;
pub mod budget;
pub mod cli;
pub mod config;
pub mod error;
pub mod guard;
pub mod http;
pub mod ingest;
pub mod simulate;
pub mod state;
pub mod verify;

pub use app::Application;
pub use config::GatewayConfig;
