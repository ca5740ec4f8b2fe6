//! Pluggy events: the spec's guide against Pluggy's real API. Fetch in `prepare`,
//! write in `apply` (inside the transaction that marks the event done).

pub mod prepare;
pub mod store;

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use shared::Envelope;
use uuid::Uuid;

pub use prepare::Plan;

use super::Applied;
use crate::error::WorkerError;
use crate::logs::{self, LogEntry};

/// Events the product acts on; others are recorded as ignored.
pub const KNOWN_EVENTS: &[&str] = &[
    "item/created",
    "item/updated",
    "item/deleted",
    "item/error",
    "item/waiting_user_input",
    "item/waiting_user_action",
    "item/login_succeeded",
    "connector/status_updated",
    "transactions/created",
    "transactions/updated",
    "transactions/deleted",
    "account/created",
    "account/updated",
];

/// Event families of Pluggy's payments products (`payment_intent/created`, ...), and
/// their single events: accepted and recorded, with no effect yet.
const PAYMENT_FAMILIES: &[&str] = &[
    "payment_intent/",
    "scheduled_payment/",
    "payment_refund/",
    "automatic_pix_payment/",
];
const PAYMENT_EVENTS: &[&str] = &["boleto/updated", "payment_request/updated"];

/// Whether `event` belongs to Pluggy's payments products.
pub fn is_payments_event(event: &str) -> bool {
    PAYMENT_EVENTS.contains(&event)
        || PAYMENT_FAMILIES.iter().any(|family| {
            event.strip_prefix(family).is_some_and(|name| {
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            })
        })
}

/// What a webhook subscription may name: `all`, `item/all`, or one event of the
/// catalogue.
pub fn subscribable(event: &str) -> bool {
    matches!(event, "all" | "item/all") || KNOWN_EVENTS.contains(&event) || is_payments_event(event)
}

/// Applies a prepared Pluggy event.
pub async fn apply<C: ConnectionTrait>(
    txn: &C,
    envelope: &Envelope,
    event_row: Uuid,
    event: &str,
    plan: Plan,
    written: &logs::Buffer,
) -> Result<Applied, WorkerError> {
    let mut summary = json!({});
    let applied = match plan {
        Plan::Item {
            item,
            fetched_at,
            accounts,
            transactions,
        } => {
            let ready = item.is_ready();
            store::undo_deletion_before(txn, &item.id, fetched_at).await?;
            let synced = if ready {
                store::Synced::Full(fetched_at)
            } else {
                store::Synced::No
            };
            store::upsert_item(txn, &item, event, synced).await?;
            let accounts_written = store::upsert_accounts(txn, &accounts, ready).await?;
            let mut transactions_written = 0;
            for (account_id, list) in &transactions {
                transactions_written += store::upsert_transactions(txn, account_id, list).await?;
                store::mark_synced(txn, account_id).await?;
            }
            summary = json!({"itemId": item.id, "ready": ready, "accounts": accounts.len(),
                "accountsWritten": accounts_written, "transactionsWritten": transactions_written});
            Applied::Processed
        }
        Plan::SyncSkipped { item_id, synced_at } => {
            store::touch_item(txn, &item_id, event).await?;
            metrics::counter!("hookwire_worker_pluggy_syncs_skipped_total").increment(1);
            summary = json!({"itemId": item_id, "syncSkipped": true,
                "syncedAt": synced_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
            Applied::Processed
        }
        Plan::ItemError { item_id, error } => {
            store::item_error(txn, &item_id, &error).await?;
            summary = json!({"itemId": item_id, "error": error});
            Applied::Processed
        }
        Plan::ItemDeleted { item_id } => {
            store::item_deleted(txn, &item_id).await?;
            summary = json!({"itemId": item_id});
            Applied::Processed
        }
        Plan::Record { item_id } => {
            if let Some(item_id) = &item_id {
                store::touch_item(txn, item_id, event).await?;
            }
            Applied::Processed
        }
        Plan::Transactions {
            item_id,
            account_id,
            account,
            transactions,
        } => {
            if let Some(account) = &account {
                store::upsert_accounts(txn, std::slice::from_ref(account), false).await?;
            }
            let written = store::upsert_transactions(txn, &account_id, &transactions).await?;
            store::mark_synced(txn, &account_id).await?;
            summary = json!({"itemId": item_id, "accountId": account_id, "fetched": transactions.len(), "transactionsWritten": written});
            Applied::Processed
        }
        Plan::TransactionsDeleted { ids } => {
            let deleted = store::delete_transactions(txn, &ids).await?;
            summary = json!({"transactionsDeleted": deleted});
            Applied::Processed
        }
        Plan::Account { account } => {
            store::upsert_accounts(txn, std::slice::from_ref(&account), false).await?;
            summary = json!({"accountId": account.get("id")});
            Applied::Processed
        }
        Plan::Skip { reason } => {
            summary = json!({"reason": reason});
            Applied::Ignored
        }
        Plan::Contradicted { reason } => {
            tracing::warn!(event, %reason, "Pluggy event contradicted by Pluggy's API; not applied");
            // A known event name (only those are confirmed), bounded as a label.
            let label = KNOWN_EVENTS
                .iter()
                .copied()
                .find(|known| *known == event)
                .unwrap_or("other");
            metrics::counter!("hookwire_worker_pluggy_contradicted_total", "event" => label)
                .increment(1);
            summary = json!({"reason": reason, "rejected": true});
            Applied::Rejected
        }
    };
    let (log_type, status) = match applied {
        Applied::Processed => ("webhook", "processed"),
        Applied::Ignored => ("event_ignored", "ignored"),
        Applied::Rejected => ("event_ignored", "error"),
    };
    let mut data = serde_json::from_slice::<Value>(&envelope.body).unwrap_or(Value::Null);
    if let (Some(object), Value::Object(extra)) = (data.as_object_mut(), summary) {
        object.insert("hookwire".into(), Value::Object(extra));
    }
    written.push(LogEntry {
        log_type,
        event: Some(event.to_owned()),
        status,
        data: Some(data.to_string()),
        ip: envelope.client_ip.map(|ip| ip.to_string()),
        provider: Some("pluggy"),
        webhook_event_id: Some(event_row),
        trace_id: Some(envelope.trace.trace_id()),
        ..LogEntry::default()
    });
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_and_its_subscriptions() {
        for event in [
            "all",
            "item/all",
            "item/updated",
            "item/waiting_user_action",
            "transactions/deleted",
            "payment_intent/created",
            "scheduled_payment/canceled",
            "automatic_pix_payment/updated",
            "boleto/updated",
            "payment_request/updated",
        ] {
            assert!(subscribable(event), "{event}");
        }
        for event in [
            "",
            "items/all",
            "payment_intent/",
            "payment_intent/x/y",
            "boleto/created",
            "nonsense",
        ] {
            assert!(!subscribable(event), "{event}");
        }
        assert!(is_payments_event("payment_refund/created"));
        assert!(!is_payments_event("item/updated"));
    }
}
