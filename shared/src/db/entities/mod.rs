//! One module per table.

pub mod bank_account;
pub mod bank_transaction;
pub mod livetip_binding;
pub mod payment;
pub mod pluggy_item;
pub mod pluggy_sweep;
pub mod webhook_event;
pub mod webhook_log;
