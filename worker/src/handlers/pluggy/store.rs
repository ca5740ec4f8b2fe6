//! Idempotent writes of Pluggy objects, keyed by Pluggy's ids.
//!
//! Rows are compared with what is stored and written only when they differ, so a sync
//! repeated with nothing new changes nothing (not even `updated_at`); two workers
//! syncing one item at once both end on the same single row per object.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde_json::Value;
use shared::db::entities::bank_account::{self, Entity as BankAccounts};
use shared::db::entities::bank_transaction::{self, Entity as BankTransactions};
use shared::db::entities::pluggy_item::{self, Entity as PluggyItems};
use shared::money::{self, Decimal};

use crate::pluggy::model::Item;

fn text(v: &Value, name: &str) -> Option<String> {
    v.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn time(v: Option<&str>) -> Option<DateTime<Utc>> {
    v.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A JSON number or numeric string as exact decimal text.
fn decimal(v: Option<&Value>) -> Option<String> {
    let raw = match v? {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    Decimal::from_str(&raw)
        .or_else(|_| Decimal::from_scientific(&raw))
        .ok()
        .map(money::to_text)
}

/// `sync_status` of an account whose item was deleted: the mark that lets a later sync
/// that finds it at Pluggy again reactivate it.
const DELETED: &str = "deleted";

/// What a write of the item says about our sync of it.
#[derive(Debug, Clone, Copy)]
pub enum Synced {
    /// Not synced (the item is not ready).
    No,
    /// A full sync whose reads of Pluggy began at this time (our clock): events
    /// received before it need no sync of their own.
    Full(DateTime<Utc>),
    /// The reconciliation's partial sync (transactions created since a watermark): it
    /// records which `lastUpdatedAt` it read, never a full sync.
    Reconciled,
}

/// Inserts or updates the item, remembering the event that touched it last.
pub async fn upsert_item<C: ConnectionTrait>(
    db: &C,
    item: &Item,
    event: &str,
    synced: Synced,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let read_last_updated = time(item.last_updated_at.as_deref());
    let row = pluggy_item::ActiveModel {
        id: Set(item.id.clone()),
        status: Set(item.status.clone()),
        execution_status: Set(item.execution_status.clone()),
        error: Set(item.error.clone().filter(|e| !e.is_null())),
        connector: Set(item.connector.clone()),
        client_user_id: Set(item.client_user_id.clone()),
        last_event: Set(Some(event.to_owned())),
        pluggy_created_at: Set(time(item.created_at.as_deref())),
        pluggy_updated_at: Set(time(item.updated_at.as_deref())),
        last_updated_at: Set(time(item.last_updated_at.as_deref())),
        deleted_at: Set(None),
        synced_at: Set(match synced {
            Synced::Full(began) => Some(began),
            Synced::No | Synced::Reconciled => None,
        }),
        synced_last_updated_at: Set(match synced {
            Synced::No => None,
            Synced::Full(_) | Synced::Reconciled => read_last_updated,
        }),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let mut update = vec![
        pluggy_item::Column::Status,
        pluggy_item::Column::ExecutionStatus,
        pluggy_item::Column::Error,
        pluggy_item::Column::Connector,
        pluggy_item::Column::ClientUserId,
        pluggy_item::Column::LastEvent,
        pluggy_item::Column::PluggyCreatedAt,
        pluggy_item::Column::PluggyUpdatedAt,
        pluggy_item::Column::LastUpdatedAt,
        pluggy_item::Column::UpdatedAt,
    ];
    match synced {
        Synced::No => {}
        Synced::Full(_) => update.extend([
            pluggy_item::Column::SyncedAt,
            pluggy_item::Column::SyncedLastUpdatedAt,
        ]),
        Synced::Reconciled => update.push(pluggy_item::Column::SyncedLastUpdatedAt),
    }
    PluggyItems::insert(row)
        .on_conflict(
            OnConflict::column(pluggy_item::Column::Id)
                .update_columns(update)
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map(drop)
}

/// Makes sure a row exists for the item and records the event (no API data needed).
pub async fn touch_item<C: ConnectionTrait>(
    db: &C,
    item_id: &str,
    event: &str,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let row = pluggy_item::ActiveModel {
        id: Set(item_id.to_owned()),
        status: Set(None),
        execution_status: Set(None),
        error: Set(None),
        connector: Set(None),
        client_user_id: Set(None),
        last_event: Set(Some(event.to_owned())),
        pluggy_created_at: Set(None),
        pluggy_updated_at: Set(None),
        last_updated_at: Set(None),
        deleted_at: Set(None),
        synced_at: Set(None),
        synced_last_updated_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    PluggyItems::insert(row)
        .on_conflict(
            OnConflict::column(pluggy_item::Column::Id)
                .update_columns([
                    pluggy_item::Column::LastEvent,
                    pluggy_item::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map(drop)
}

/// `item/error`: the error on the item, its accounts marked in error with the message.
pub async fn item_error<C: ConnectionTrait>(
    db: &C,
    item_id: &str,
    error: &Value,
) -> Result<(), DbErr> {
    touch_item(db, item_id, "item/error").await?;
    let now = Utc::now();
    PluggyItems::update_many()
        .col_expr(pluggy_item::Column::Error, Expr::value(error.clone()))
        .col_expr(pluggy_item::Column::UpdatedAt, Expr::value(now))
        .filter(pluggy_item::Column::Id.eq(item_id))
        .exec(db)
        .await?;
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| error.get("code").and_then(Value::as_str))
        .unwrap_or("item error")
        .to_owned();
    BankAccounts::update_many()
        .col_expr(bank_account::Column::SyncStatus, Expr::value("error"))
        .col_expr(bank_account::Column::SyncError, Expr::value(message))
        .col_expr(bank_account::Column::UpdatedAt, Expr::value(now))
        .filter(bank_account::Column::ItemId.eq(item_id))
        .exec(db)
        .await
        .map(drop)
}

/// Undoes a deletion recorded before `fetched_at`, when Pluggy served the item: a stale
/// or forged `item/deleted` (the code before confirmations applied them unasked). A
/// deletion recorded after Pluggy was asked (a real one that raced this sync) stands.
pub async fn undo_deletion_before<C: ConnectionTrait>(
    db: &C,
    item_id: &str,
    fetched_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let undone = PluggyItems::update_many()
        .col_expr(
            pluggy_item::Column::DeletedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(pluggy_item::Column::Id.eq(item_id))
        .filter(pluggy_item::Column::DeletedAt.lt(fetched_at))
        .exec(db)
        .await?;
    if undone.rows_affected == 0 {
        return Ok(());
    }
    BankAccounts::update_many()
        .col_expr(bank_account::Column::IsActive, Expr::value(true))
        .col_expr(bank_account::Column::SyncStatus, Expr::value("ok"))
        .col_expr(bank_account::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(bank_account::Column::ItemId.eq(item_id))
        .filter(bank_account::Column::SyncStatus.eq(DELETED))
        .exec(db)
        .await
        .map(drop)
}

/// `item/deleted`: history stays, the item is marked deleted and its accounts inactive.
pub async fn item_deleted<C: ConnectionTrait>(db: &C, item_id: &str) -> Result<(), DbErr> {
    touch_item(db, item_id, "item/deleted").await?;
    let now = Utc::now();
    PluggyItems::update_many()
        .col_expr(pluggy_item::Column::DeletedAt, Expr::value(now))
        .filter(pluggy_item::Column::Id.eq(item_id))
        .exec(db)
        .await?;
    BankAccounts::update_many()
        .col_expr(bank_account::Column::IsActive, Expr::value(false))
        .col_expr(bank_account::Column::SyncStatus, Expr::value(DELETED))
        .col_expr(bank_account::Column::UpdatedAt, Expr::value(now))
        .filter(bank_account::Column::ItemId.eq(item_id))
        .exec(db)
        .await
        .map(drop)
}

/// Upserts accounts as Pluggy's API lists them (a fresh sync clears an earlier error);
/// `is_active` is ours and kept (see [`undo_deletion_before`] for deletions undone).
pub async fn upsert_accounts<C: ConnectionTrait>(
    db: &C,
    accounts: &[Value],
    synced: bool,
) -> Result<usize, DbErr> {
    let ids: Vec<String> = accounts.iter().filter_map(|a| text(a, "id")).collect();
    let existing: HashMap<String, bank_account::Model> = BankAccounts::find()
        .filter(bank_account::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect();
    let now = Utc::now();
    let mut written = 0;
    let mut sorted: Vec<&Value> = accounts.iter().collect();
    sorted.sort_by_key(|a| text(a, "id"));
    for account in sorted {
        let (Some(id), Some(item_id)) = (text(account, "id"), text(account, "itemId")) else {
            continue;
        };
        let balance = decimal(account.get("balance"));
        let current = existing.get(&id);
        let unchanged = current.is_some_and(|c| {
            c.raw.as_ref() == Some(account) && c.sync_status == "ok" && c.balance == balance
        });

        if unchanged {
            continue;
        }
        let row = bank_account::ActiveModel {
            id: Set(id),
            item_id: Set(item_id),
            account_type: Set(text(account, "type")),
            subtype: Set(text(account, "subtype")),
            name: Set(text(account, "name")),
            number: Set(text(account, "number")),
            balance: Set(balance),
            currency: Set(text(account, "currencyCode")),
            is_active: Set(current.is_none_or(|c| c.is_active)),
            sync_status: Set("ok".to_owned()),
            sync_error: Set(None),
            last_synced_at: Set(synced.then_some(now)),
            raw: Set(Some(account.clone())),
            created_at: Set(now),
            updated_at: Set(now),
        };
        BankAccounts::insert(row)
            .on_conflict(
                OnConflict::column(bank_account::Column::Id)
                    .update_columns([
                        bank_account::Column::ItemId,
                        bank_account::Column::AccountType,
                        bank_account::Column::Subtype,
                        bank_account::Column::Name,
                        bank_account::Column::Number,
                        bank_account::Column::Balance,
                        bank_account::Column::Currency,
                        bank_account::Column::SyncStatus,
                        bank_account::Column::SyncError,
                        bank_account::Column::Raw,
                        bank_account::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
        written += 1;
    }
    Ok(written)
}

/// Upserts transactions of one account; returns how many rows changed.
pub async fn upsert_transactions<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
    transactions: &[Value],
) -> Result<usize, DbErr> {
    let ids: Vec<String> = transactions.iter().filter_map(|t| text(t, "id")).collect();
    let mut existing: HashMap<String, bank_transaction::Model> = HashMap::new();
    for chunk in ids.chunks(500) {
        existing.extend(
            BankTransactions::find()
                .filter(bank_transaction::Column::Id.is_in(chunk.to_vec()))
                .all(db)
                .await?
                .into_iter()
                .map(|t| (t.id.clone(), t)),
        );
    }
    let now = Utc::now();
    let mut sorted: Vec<&Value> = transactions.iter().collect();
    // One order for every writer: concurrent syncs lock rows in the same sequence.
    sorted.sort_by_key(|t| text(t, "id"));
    let mut rows = Vec::new();
    for t in sorted {
        let Some(id) = text(t, "id") else { continue };
        if existing
            .get(&id)
            .is_some_and(|e| e.raw.as_ref() == Some(t) && !e.deleted)
        {
            continue;
        }
        let Some(amount) = decimal(t.get("amount")) else {
            continue;
        };
        rows.push(bank_transaction::ActiveModel {
            id: Set(id),
            account_id: Set(text(t, "accountId").unwrap_or_else(|| account_id.to_owned())),
            date: Set(time(t.get("date").and_then(Value::as_str))),
            description: Set(text(t, "description")),
            amount: Set(amount),
            currency: Set(text(t, "currencyCode")),
            transaction_type: Set(text(t, "type")),
            status: Set(text(t, "status")),
            category: Set(text(t, "category")),
            deleted: Set(false),
            raw: Set(Some(t.clone())),
            created_at: Set(now),
            updated_at: Set(now),
        });
    }
    let written = rows.len();
    for chunk in rows.chunks(200) {
        BankTransactions::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::column(bank_transaction::Column::Id)
                    .update_columns([
                        bank_transaction::Column::AccountId,
                        bank_transaction::Column::Date,
                        bank_transaction::Column::Description,
                        bank_transaction::Column::Amount,
                        bank_transaction::Column::Currency,
                        bank_transaction::Column::TransactionType,
                        bank_transaction::Column::Status,
                        bank_transaction::Column::Category,
                        bank_transaction::Column::Deleted,
                        bank_transaction::Column::Raw,
                        bank_transaction::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(written)
}

/// Marks the account's transactions synced now.
pub async fn mark_synced<C: ConnectionTrait>(db: &C, account_id: &str) -> Result<(), DbErr> {
    let now = Utc::now();
    BankAccounts::update_many()
        .col_expr(bank_account::Column::LastSyncedAt, Expr::value(now))
        .filter(bank_account::Column::Id.eq(account_id))
        .exec(db)
        .await
        .map(drop)
}

/// `transactions/deleted`: rows kept, marked deleted.
pub async fn delete_transactions<C: ConnectionTrait>(db: &C, ids: &[String]) -> Result<u64, DbErr> {
    let now = Utc::now();
    let mut affected = 0;
    for chunk in ids.chunks(500) {
        affected += BankTransactions::update_many()
            .col_expr(bank_transaction::Column::Deleted, Expr::value(true))
            .col_expr(bank_transaction::Column::UpdatedAt, Expr::value(now))
            .filter(bank_transaction::Column::Id.is_in(chunk.to_vec()))
            .filter(bank_transaction::Column::Deleted.eq(false))
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(affected)
}
