//! The parts of Pluggy's API objects we read. Unknown fields are ignored; every object
//! is also kept whole as JSON where we store it.

use serde::Deserialize;
use serde_json::Value;

/// `GET /items/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// Item id.
    pub id: String,
    /// UPDATED, UPDATING, LOGIN_ERROR, OUTDATED, ... (the spec's guide says ACTIVE).
    pub status: Option<String>,
    /// SUCCESS, PARTIAL_SUCCESS, ERROR, ...
    pub execution_status: Option<String>,
    /// Error object or null.
    pub error: Option<Value>,
    /// Connector object.
    pub connector: Option<Value>,
    /// Our user id.
    pub client_user_id: Option<String>,
    /// RFC 3339.
    pub created_at: Option<String>,
    /// RFC 3339.
    pub updated_at: Option<String>,
    /// RFC 3339.
    pub last_updated_at: Option<String>,
}

impl Item {
    /// Whether its accounts and transactions can be synced: the spec's ACTIVE, or
    /// Pluggy's UPDATED after a (partially) successful execution.
    pub fn is_ready(&self) -> bool {
        match self.status.as_deref() {
            Some("ACTIVE") => true,
            Some("UPDATED") => matches!(
                self.execution_status.as_deref(),
                Some("SUCCESS" | "PARTIAL_SUCCESS") | None
            ),
            _ => false,
        }
    }
}

/// Page-based list (`/accounts`, `/transactions`, `/webhooks`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    /// This page's objects, kept raw.
    pub results: Vec<Value>,
    /// Pages in all.
    #[serde(default)]
    pub total_pages: Option<u32>,
    /// This page (1-based).
    #[serde(default)]
    pub page: Option<u32>,
}

/// Cursor list (`/v2/transactions`).
#[derive(Debug, Clone, Deserialize)]
pub struct CursorPage {
    /// This page's objects, kept raw.
    pub results: Vec<Value>,
    /// URL of the next page, `null` at the end.
    pub next: Option<String>,
}

/// `POST /auth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    /// A JWT valid about 2 hours.
    pub api_key: String,
}
