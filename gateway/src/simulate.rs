//! `gateway simulate pluggy <event>`: the spec's `test_pluggy_webhook`. Sends a
//! realistic, correctly signed Pluggy event to a running gateway, so that a developer
//! can watch one event go through the whole pipeline without a Pluggy account.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use shared::secret::Secret;

/// What to send.
#[derive(Clone, Debug, clap::Args)]
pub struct PluggySimulation {
    /// Pluggy event name: `item/created`, `item/updated`, `item/error`,
    /// `transactions/created`, `account/updated`, ...
    pub event: String,
    /// Item status to put in the payload (the guide's `--status ACTIVE`).
    #[arg(long)]
    pub status: Option<String>,
    /// Item id; a fresh UUID when omitted.
    #[arg(long)]
    pub item_id: Option<String>,
    /// Account id for account and transaction events; a fresh UUID when omitted.
    #[arg(long)]
    pub account_id: Option<String>,
    /// Where to send it; the local gateway's Pluggy route when omitted.
    #[arg(long)]
    pub url: Option<String>,
}

/// Why a simulation could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// Nothing to sign with.
    #[error("PLUGGY_SIGNING_KEY is empty: the gateway would refuse an unsigned event")]
    NoSecret,
    /// The request failed before an answer.
    #[error("cannot reach {url}")]
    Send {
        /// Target.
        url: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
}

/// The gateway's answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response body as text.
    pub body: String,
}

/// A payload shaped like Pluggy's for `event` (fields from Pluggy's documentation).
pub fn payload(sim: &PluggySimulation, client_id: Option<&str>) -> Value {
    let fresh = || uuid::Uuid::new_v4().to_string();
    let item_id = sim.item_id.clone().unwrap_or_else(fresh);
    let account_id = sim.account_id.clone().unwrap_or_else(fresh);
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut body = json!({"event": sim.event, "eventId": fresh()});
    let fields = match sim.event.as_str() {
        "connector/status_updated" => json!({
            "id": 201,
            "data": {"status": sim.status.as_deref().unwrap_or("ONLINE")},
        }),
        "transactions/created" => json!({
            "itemId": item_id,
            "accountId": account_id,
            "transactionsCount": 1,
            "transactionsCreatedAtFrom": now,
            "createdTransactionsLink": format!(
                "https://api.pluggy.ai/transactions?accountId={account_id}&createdAtFrom={now}"
            ),
        }),
        "transactions/updated" | "transactions/deleted" => json!({
            "itemId": item_id,
            "accountId": account_id,
            "transactionIds": [fresh()],
        }),
        "account/created" | "account/updated" => json!({
            "itemId": item_id,
            "accountId": account_id,
        }),
        event => {
            let mut item = json!({
                "itemId": item_id,
                "triggeredBy": "USER",
                "clientUserId": "hookwire-simulator",
            });
            if event == "item/error" {
                item["error"] = json!({
                    "code": "INVALID_CREDENTIALS",
                    "message": "Invalid credentials (simulated)",
                });
            }
            if let Some(status) = &sim.status {
                item["status"] = json!(status);
            }
            item
        }
    };
    if let (Some(map), Value::Object(extra)) = (body.as_object_mut(), fields) {
        map.extend(extra);
    }
    if let (Some(id), Some(map)) = (client_id, body.as_object_mut()) {
        map.insert("clientId".into(), json!(id));
    }
    body
}

/// Hex HMAC-SHA256 of the exact body, as `X-Pluggy-Signature` carries it.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Signs `body` and posts it to `url`.
pub async fn send(
    url: &str,
    secret: Option<&Secret>,
    body: &Value,
) -> Result<Answer, SimulateError> {
    let secret = secret.ok_or(SimulateError::NoSecret)?;
    let bytes = body.to_string().into_bytes();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let failed = |source| SimulateError::Send {
        url: url.to_owned(),
        source,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(failed)?;
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-pluggy-signature", sign(secret, &bytes))
        .body(bytes)
        .send()
        .await
        .map_err(failed)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(failed)?;
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(event: &str) -> PluggySimulation {
        PluggySimulation {
            event: event.into(),
            status: Some("ACTIVE".into()),
            item_id: Some("item-1".into()),
            account_id: Some("acc-1".into()),
            url: None,
        }
    }

    #[test]
    fn payloads_carry_the_fields_the_worker_needs() {
        let item = payload(&sim("item/updated"), Some("client-9"));
        assert_eq!(item["itemId"], "item-1");
        assert_eq!(item["status"], "ACTIVE");
        assert_eq!(item["clientId"], "client-9");
        assert!(item["eventId"].as_str().is_some_and(|id| id.len() == 36));
        let error = payload(&sim("item/error"), None);
        assert_eq!(error["error"]["code"], "INVALID_CREDENTIALS");
        assert!(error.get("clientId").is_none());
        let created = payload(&sim("transactions/created"), None);
        assert_eq!(created["accountId"], "acc-1");
        assert!(created["createdTransactionsLink"].as_str().is_some());
        let deleted = payload(&sim("transactions/deleted"), None);
        assert_eq!(deleted["transactionIds"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn signs_as_the_gateway_verifies() {
        // RFC 4231 test case 2.
        let secret = Secret::new("Jefe");
        assert_eq!(
            sign(&secret, b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
