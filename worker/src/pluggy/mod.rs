//! Pluggy's API: the client the sync handlers and the setup command use.

pub mod client;
pub mod model;

pub use client::{PluggyClient, PluggyError};
