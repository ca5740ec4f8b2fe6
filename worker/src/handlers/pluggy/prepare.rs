//! What a Pluggy event needs from Pluggy's API, fetched before any write.
//!
//! Runs after the event is claimed (a duplicate never reaches Pluggy) and outside the
//! database transaction (no transaction stays open across HTTP calls).

use sea_orm::{DatabaseConnection, EntityTrait};
use serde_json::Value;
use shared::db::entities::bank_account::Entity as BankAccounts;
use shared::db::entities::pluggy_item::Entity as PluggyItems;
use shared::payload::PayloadError;

use super::{KNOWN_EVENTS, is_payments_event};
use crate::error::WorkerError;
use crate::pluggy::model::Item;
use crate::pluggy::{PluggyClient, PluggyError};

/// The writes an event calls for, with everything fetched.
#[derive(Debug)]
pub enum Plan {
    /// `item/created`, `item/updated`: the item, and when it is ready its accounts and
    /// their transactions (inactive accounts skipped).
    Item {
        item: Item,
        /// When Pluggy was asked: a deletion recorded before it is undone (Pluggy still
        /// served the item), one recorded after it stands.
        fetched_at: chrono::DateTime<chrono::Utc>,
        accounts: Vec<Value>,
        transactions: Vec<(String, Vec<Value>)>,
    },
    /// `item/error`: store it, mark the item's accounts in error.
    ItemError { item_id: String, error: Value },
    /// `item/deleted`: keep history, deactivate accounts.
    ItemDeleted { item_id: String },
    /// Events recorded without an API call.
    Record { item_id: Option<String> },
    /// `item/created|updated` received before a full sync of the item began reading
    /// Pluggy: that sync saw what the event announces, so no API call is made.
    SyncSkipped {
        item_id: String,
        synced_at: chrono::DateTime<chrono::Utc>,
    },
    /// `transactions/created|updated`: upsert these (and the account, when new).
    Transactions {
        item_id: Option<String>,
        account_id: String,
        account: Option<Value>,
        transactions: Vec<Value>,
    },
    /// `transactions/deleted`.
    TransactionsDeleted { ids: Vec<String> },
    /// `account/created|updated`.
    Account { account: Value },
    /// Nothing to do, and why (recorded as ignored).
    Skip { reason: String },
    /// Pluggy's API contradicts the event (an item said deleted that Pluggy still
    /// serves, transactions said deleted that it still lists, an error it does not
    /// show): nothing is applied, and it is recorded as rejected. A forged event can say
    /// anything; only what the API confirms changes our data.
    Contradicted { reason: String },
}

/// Events whose plan needs Pluggy's API (when it is configured): syncs, and every
/// destructive or state-changing event, which is confirmed there before it is applied.
/// The others are recorded from the payload alone.
const API_EVENTS: &[&str] = &[
    "item/created",
    "item/updated",
    "item/deleted",
    "item/error",
    "transactions/created",
    "transactions/updated",
    "transactions/deleted",
    "account/created",
    "account/updated",
];

/// How far the gateway's clock (an event's receipt) and the worker's (a sync's start)
/// may disagree before a skipped sync could miss a change.
pub const CLOCK_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// Whether `event` starts a full sync of its item.
pub fn syncs_item(event: &str) -> bool {
    matches!(event, "item/created" | "item/updated")
}

/// Whether `event` calls Pluggy's API in [`prepare`].
pub fn calls_api(event: &str) -> bool {
    API_EVENTS.contains(&event)
}

fn field<'a>(payload: &'a Value, name: &str) -> Option<&'a str> {
    payload
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn required(payload: &Value, name: &str, event: &str) -> Result<String, WorkerError> {
    field(payload, name)
        .map(str::to_owned)
        .ok_or_else(|| WorkerError::Payload(PayloadError(format!("{event} requires {name}"))))
}

/// Works out and fetches what `event`, received by the gateway at `received_at`, needs.
pub async fn prepare(
    db: &DatabaseConnection,
    client: Option<&PluggyClient>,
    event: &str,
    payload: &Value,
    received_at: chrono::DateTime<chrono::Utc>,
) -> Result<Plan, WorkerError> {
    if is_payments_event(event) {
        return Ok(Plan::Skip {
            reason: "Pluggy payments event: recorded, no effect yet".into(),
        });
    }
    if !KNOWN_EVENTS.contains(&event) {
        return Ok(Plan::Skip {
            reason: "event not handled".into(),
        });
    }
    if matches!(
        event,
        "item/waiting_user_input"
            | "item/waiting_user_action"
            | "item/login_succeeded"
            | "connector/status_updated"
    ) {
        return Ok(Plan::Record {
            item_id: field(payload, "itemId").map(str::to_owned),
        });
    }
    let Some(client) = client else {
        return Ok(Plan::Skip {
            reason: "Pluggy API not configured (PLUGGY_CLIENT_ID, PLUGGY_CLIENT_SECRET): \
                     nothing is synced, and no deletion or error is applied unconfirmed"
                .into(),
        });
    };
    match event {
        "item/deleted" => {
            let item_id = required(payload, "itemId", event)?;
            match client.item(&item_id).await {
                // Only the item's own endpoint answering 404 confirms it gone: a 404 from
                // anywhere else (a wrong base URL, the auth call) confirms nothing.
                Err(PluggyError::Status {
                    status: 404,
                    endpoint,
                }) if endpoint.starts_with("/items/") => Ok(Plan::ItemDeleted { item_id }),
                Ok(_) => Ok(Plan::Contradicted {
                    reason: "the item still exists at Pluggy".into(),
                }),
                Err(error) => Err(error.into()),
            }
        }
        "item/error" => {
            let item_id = required(payload, "itemId", event)?;
            let item = client.item(&item_id).await?;
            // What Pluggy shows, not what the payload claims, is stored.
            match item.error.filter(|e| !e.is_null()) {
                Some(error) => Ok(Plan::ItemError { item_id, error }),
                None => Ok(Plan::Contradicted {
                    reason: "Pluggy shows no error on the item".into(),
                }),
            }
        }
        "transactions/deleted" => {
            let ids = string_list(payload, "transactionIds");
            let still: std::collections::HashSet<String> = client
                .transactions_by_ids(&ids)
                .await?
                .iter()
                .filter_map(|t| field(t, "id").map(str::to_owned))
                .collect();
            let gone: Vec<String> = ids
                .iter()
                .filter(|id| !still.contains(*id))
                .cloned()
                .collect();
            if gone.is_empty() && !ids.is_empty() {
                return Ok(Plan::Contradicted {
                    reason: "every listed transaction still exists at Pluggy".into(),
                });
            }
            Ok(Plan::TransactionsDeleted { ids: gone })
        }
        "item/created" | "item/updated" => {
            let item_id = required(payload, "itemId", event)?;
            // Pluggy sends several of these within seconds while it syncs an item. A
            // full sync that *began* after the event arrived read what it announces; one
            // that only ended after it may have read too early. The margin covers the
            // gateway's and the worker's clocks disagreeing.
            let synced_at = PluggyItems::find_by_id(item_id.clone())
                .one(db)
                .await?
                .and_then(|i| i.synced_at);
            if let Some(synced_at) = synced_at.filter(|began| *began > received_at + CLOCK_MARGIN) {
                return Ok(Plan::SyncSkipped { item_id, synced_at });
            }
            let fetched_at = chrono::Utc::now();
            let item = client.item(&item_id).await?;
            if !item.is_ready() {
                return Ok(Plan::Item {
                    item,
                    fetched_at,
                    accounts: Vec::new(),
                    transactions: Vec::new(),
                });
            }
            let accounts = client.accounts(&item_id).await?;
            let mut transactions = Vec::new();
            for account in &accounts {
                let Some(id) = field(account, "id") else {
                    continue;
                };
                // Inactive by our choice is skipped; inactive because its item was said
                // deleted is not: Pluggy lists it, so this sync reactivates it.
                if is_inactive(db, id, false).await? {
                    continue;
                }
                transactions.push((id.to_owned(), client.transactions(id, None).await?));
            }
            Ok(Plan::Item {
                item,
                fetched_at,
                accounts,
                transactions,
            })
        }
        "transactions/created" | "transactions/updated" => {
            let account_id = required(payload, "accountId", event)?;
            if is_inactive(db, &account_id, true).await? {
                return Ok(Plan::Skip {
                    reason: "account is inactive".into(),
                });
            }
            let item_id = field(payload, "itemId").map(str::to_owned);
            // An event for an account we do not know yet fetches the account first.
            let known = BankAccounts::find_by_id(account_id.clone())
                .one(db)
                .await?
                .is_some();
            let account = match (&item_id, known) {
                (Some(item_id), false) => client
                    .accounts(item_id)
                    .await?
                    .into_iter()
                    .find(|a| field(a, "id") == Some(account_id.as_str())),
                _ => None,
            };
            let transactions = if event == "transactions/updated" {
                client
                    .transactions_by_ids(&string_list(payload, "transactionIds"))
                    .await?
            } else {
                client
                    .transactions(&account_id, field(payload, "transactionsCreatedAtFrom"))
                    .await?
            };
            Ok(Plan::Transactions {
                item_id,
                account_id,
                account,
                transactions,
            })
        }
        "account/created" | "account/updated" => {
            let item_id = required(payload, "itemId", event)?;
            let account_id = required(payload, "accountId", event)?;
            let account = client
                .accounts(&item_id)
                .await?
                .into_iter()
                .find(|a| field(a, "id") == Some(account_id.as_str()));
            Ok(match account {
                Some(account) => Plan::Account { account },
                None => Plan::Skip {
                    reason: "account not found at Pluggy".into(),
                },
            })
        }
        _ => Ok(Plan::Skip {
            reason: "event not handled".into(),
        }),
    }
}

/// Whether the account is inactive; `deleted_counts`: also when only its item's
/// deletion made it so.
pub(crate) async fn is_inactive(
    db: &DatabaseConnection,
    account_id: &str,
    deleted_counts: bool,
) -> Result<bool, WorkerError> {
    Ok(BankAccounts::find_by_id(account_id.to_owned())
        .one(db)
        .await?
        .is_some_and(|a| !a.is_active && (deleted_counts || a.sync_status != "deleted")))
}

fn string_list(payload: &Value, name: &str) -> Vec<String> {
    payload
        .get(name)
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
