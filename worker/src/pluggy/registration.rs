//! Whether Pluggy will call us at all: our URL registered and enabled for the events we
//! act on. Pluggy disables a webhook that keeps failing and deletes those pointing at
//! testing tools after 90 days; from then on every event is lost and nothing else says
//! so. Checked at start-up and after each reconciliation sweep (`reconcile::every`);
//! `worker pluggy setup-webhook` repairs it.

use serde_json::Value;

use super::{PluggyClient, PluggyError};

/// The events whose loss loses data: syncs, deletions, errors and transactions.
pub const NEEDED: &[&str] = &[
    "item/created",
    "item/updated",
    "item/deleted",
    "item/error",
    "transactions/created",
    "transactions/updated",
    "transactions/deleted",
];

/// What Pluggy's registrations for our URL cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Needed events no enabled registration of our URL covers.
    pub missing: Vec<&'static str>,
    /// Registrations of our URL that Pluggy disabled (their ids).
    pub disabled: Vec<String>,
}

impl Registration {
    /// Every needed event reaches us.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Whether a subscription to `subscribed` delivers `event`.
fn covers(subscribed: &str, event: &str) -> bool {
    subscribed == "all"
        || subscribed == event
        || (subscribed == "item/all" && event.starts_with("item/"))
}

/// Reads `GET /webhooks`' answer for `url`.
pub fn assess(webhooks: &[Value], url: &str) -> Registration {
    let ours: Vec<&Value> = webhooks
        .iter()
        .filter(|hook| hook.get("url").and_then(Value::as_str) == Some(url))
        .collect();
    let enabled = |hook: &Value| hook.get("disabledAt").is_none_or(Value::is_null);
    let subscribed: Vec<&str> = ours
        .iter()
        .filter(|hook| enabled(hook))
        .filter_map(|hook| hook.get("event").and_then(Value::as_str))
        .collect();
    Registration {
        missing: NEEDED
            .iter()
            .copied()
            .filter(|event| !subscribed.iter().any(|s| covers(s, event)))
            .collect(),
        disabled: ours
            .iter()
            .filter(|hook| !enabled(hook))
            .filter_map(|hook| hook.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect(),
    }
}

/// Asks Pluggy, records the outcome (metrics, and a WARN line naming what is missing).
pub async fn check(client: &PluggyClient, url: &str) -> Result<Registration, PluggyError> {
    let outcome = client.webhooks().await.map(|hooks| assess(&hooks, url));
    match &outcome {
        Ok(registration) => {
            // The findings before the count: whoever sees a check counted sees its result.
            metrics::gauge!("hookwire_pluggy_webhook_events_missing")
                .set(registration.missing.len() as f64);
            metrics::gauge!("hookwire_pluggy_webhook_disabled")
                .set(registration.disabled.len() as f64);
            metrics::counter!("hookwire_pluggy_webhook_checks_total", "outcome" => "done")
                .increment(1);
            if registration.is_complete() {
                tracing::info!(url, "Pluggy webhook registration covers every needed event");
            } else {
                tracing::warn!(
                    url,
                    missing = ?registration.missing,
                    disabled = ?registration.disabled,
                    "Pluggy will not send us every event we need: run `worker pluggy setup-webhook` (--force re-enables)"
                );
            }
        }
        Err(error) => {
            metrics::counter!("hookwire_pluggy_webhook_checks_total", "outcome" => "failed")
                .increment(1);
            tracing::warn!(%error, "Pluggy webhook registration not checked");
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const URL: &str = "https://hooks.example.com/api/banking/pluggy/webhook/";

    #[test]
    fn all_covers_everything_and_a_disabled_one_nothing() {
        let all = [json!({"id": "w1", "url": URL, "event": "all", "disabledAt": null})];
        assert!(assess(&all, URL).is_complete());
        let disabled =
            [json!({"id": "w1", "url": URL, "event": "all", "disabledAt": "2026-11-01T00:00:00Z"})];
        assert_eq!(
            assess(&disabled, URL),
            Registration {
                missing: NEEDED.to_vec(),
                disabled: vec!["w1".to_owned()]
            }
        );
    }

    #[test]
    fn item_all_leaves_transactions_missing_and_other_urls_count_for_nothing() {
        let hooks = [
            json!({"id": "w1", "url": URL, "event": "item/all"}),
            json!({"id": "w2", "url": "https://other.example.com/x", "event": "all"}),
            json!({"id": "w3", "url": URL, "event": "transactions/created"}),
        ];
        assert_eq!(
            assess(&hooks, URL).missing,
            ["transactions/updated", "transactions/deleted"]
        );
        assert_eq!(assess(&[], URL).missing, NEEDED);
    }
}
