//! hookwire worker: consumes the provider queues and applies each event's effect once.
//!
//! # Layout
//! - [`config`]: settings and subcommands; [`cli`]: the binary.
//! - [`app`]: [`app::Worker`] builds (database, migrations, broker link) and runs.
//! - [`consumer`]: competing consumers per queue, a slot per channel, reconnecting with
//!   the link; [`collect`] forms a slot's batch.
//! - [`batch`]: a batch's events in one transaction, then one `multiple` ack;
//!   [`event`]: one event alone (Pluggy API calls, failures inside a batch);
//!   [`incoming`]: a delivery as read; [`settlement`]: ack, delayed retry or dead
//!   letter; [`settled`]: the one INFO line per settled event; [`audit`]: the gateway's
//!   rejected-request records.
//! - [`inbox`]: claim-before-effect on `webhook_events`, the exactly-once mechanism.
//! - [`handlers`]: per-provider effects, inside the claim's transaction; [`pluggy`]: the
//!   API client; [`reconcile`]: the sweep for what Pluggy's webhooks missed.
//! - [`retry`]: the backoff policy and retry steps; [`error`]: transient or permanent.
//! - [`dlq`]: dead-letter listing and replay; [`health`]: `/healthz`, `/readyz`;
//!   [`logs`]: the spec's webhook log; [`bulk_insert`]: a batch's whole-row inserts.

pub mod app;
pub mod audit;
pub mod batch;
pub mod bulk_insert;
pub mod cli;
pub mod collect;
pub mod config;
pub mod consumer;
pub mod context;
pub use shared::amqp::dead_header;
pub use shared::amqp::dead_letters as dlq;
pub mod error;
pub mod event;
pub mod handlers;
pub mod health;
pub mod inbox;
pub mod incoming;
pub mod keyed_gate;
pub mod logs;
pub mod pluggy;
pub mod queue_monitor;
pub mod reconcile;
pub mod retention;
pub mod retry;
pub mod savepoint;
pub mod settled;
pub mod settlement;
pub mod telemetry;

pub use app::Worker;
pub use config::{Cli, WorkerSettings};
