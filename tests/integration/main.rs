//! hookwire end-to-end tests: one binary, real RabbitMQ, each test on its own topology.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cluster;
mod console;
mod faults;
mod gateway_abuse;
mod gateway_broker;
mod gateway_edges;
mod gateway_exposure;
mod gateway_lifecycle;
mod gateway_limits;
mod gateway_livetip;
mod gateway_pluggy;
mod gateway_process;
mod livetip_admin;
mod livetip_payments;
mod livetip_settlement;
mod observability;
mod payload_bounds;
mod pluggy_commands;
mod pluggy_sync;
mod rejections_and_retention;
mod worker_batches;
mod worker_failures;
mod worker_pipeline;
mod worker_processes;
mod worker_recovery;
