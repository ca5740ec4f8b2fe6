//! Pluggy's API: the client the sync handlers and the setup command use, and the
//! command that registers our webhook.

pub mod client;
pub mod model;
pub mod registration;
pub mod webhooks;

pub use client::{PluggyClient, PluggyError};
