//! What a batch shares among its LiveTip events.
//!
//! Read once, before the first effect: which LiveTip ids are bound already, and the
//! senders' open (pending or underpaid) payments. Each answer replaces a query per
//! event while it still holds:
//! - an id known unbound serves the first event that names it (that event may bind
//!   it; later ones read it anew);
//! - the open payments serve every event until one is about an existing payment
//!   (which may take or move one); from then on events query as they would alone.
//!
//! Another replica may change either meanwhile, as it may between any two statements
//! of a transaction: `bind`'s primary key and `take`'s guarded update settle those
//! races, as they do without a batch.
//!
//! Written once, after the last effect: the payments that confirmations nobody
//! expected create, and their bindings, as two multi-row inserts. Until then a later
//! event of the batch about the same LiveTip payment finds the created one here (method
//! 1 looks here first). Bindings are inserted without `ON CONFLICT`: if another replica
//! bound one of the ids meanwhile, the statement fails and the batch is tried again,
//! when the read finds that binding.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr};
use shared::db::entities::livetip_binding;
use shared::db::entities::payment;

use super::matching;

/// A batch's reads and deferred creations.
#[derive(Debug, Default)]
pub struct LiveTipBatch {
    unbound: Mutex<HashSet<String>>,
    /// Open payments by sender; `None` once an event may have changed them.
    open: Mutex<Option<HashMap<String, Vec<payment::Model>>>>,
    /// Payments created by the batch's standing effects, with their LiveTip ids, in
    /// order.
    created: Mutex<Vec<(String, payment::Model)>>,
}

/// The payment one event creates, kept with its savepoint: dropped if the event is
/// rolled back, handed to the batch if not.
#[derive(Debug, Default)]
pub struct Created(Mutex<Option<(String, payment::Model)>>);

impl Created {
    /// Records the event's new payment for `livetip_id`.
    pub fn set(&self, livetip_id: &str, payment: payment::Model) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((livetip_id.to_owned(), payment));
    }
}

impl LiveTipBatch {
    /// Two queries for the whole batch: bindings of `livetip_ids`, open payments of
    /// `senders`.
    pub async fn read<C: ConnectionTrait>(
        db: &C,
        livetip_ids: HashSet<String>,
        senders: HashSet<String>,
    ) -> Result<Self, DbErr> {
        let bound = matching::bound_among(db, &livetip_ids).await?;
        let mut open: HashMap<String, Vec<payment::Model>> =
            senders.iter().map(|s| (s.clone(), Vec::new())).collect();
        for payment in matching::open_payments_of(db, &senders).await? {
            if let Some(list) = open.get_mut(&payment.user_name) {
                list.push(payment);
            }
        }
        Ok(Self {
            created: Mutex::default(),
            unbound: Mutex::new(
                livetip_ids
                    .into_iter()
                    .filter(|id| !bound.contains(id))
                    .collect(),
            ),
            open: Mutex::new(Some(open)),
        })
    }

    /// Whether `id` was unbound, for the first event to ask.
    pub fn take_unbound(&self, id: &str) -> bool {
        self.unbound
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    /// The sender's open payments as read, oldest first, while they still hold.
    pub fn open_of(&self, sender: &str) -> Option<Vec<payment::Model>> {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(|open| open.get(sender).cloned())
    }

    /// An event found an existing payment: open payments are read anew from now on.
    pub fn forget_open(&self) {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl LiveTipBatch {
    /// The payment an earlier event of the batch created for `livetip_id`.
    pub fn created_for(&self, livetip_id: &str) -> Option<payment::Model> {
        self.created
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(id, _)| id == livetip_id)
            .map(|(_, p)| p.clone())
    }

    /// Keeps what an event whose effect stands created.
    pub fn keep(&self, created: Created) {
        if let Some(entry) = created
            .0
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            self.created
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(entry);
        }
    }

    /// Inserts the created payments, then their bindings (the order `take` locks them
    /// in): two statements for the whole batch.
    pub async fn write<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        let created =
            std::mem::take(&mut *self.created.lock().unwrap_or_else(PoisonError::into_inner));
        if created.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let bindings: Vec<livetip_binding::ActiveModel> = created
            .iter()
            .map(|(livetip_id, payment)| livetip_binding::ActiveModel {
                livetip_payment_id: Set(livetip_id.clone()),
                payment_id: Set(payment.id.clone()),
                created_at: Set(now),
            })
            .collect();
        let payments: Vec<payment::ActiveModel> = created
            .into_iter()
            .map(|(_, p)| payment::ActiveModel::from(p).reset_all())
            .collect();
        crate::bulk_insert::insert_all(db, payments).await?;
        crate::bulk_insert::insert_all(db, bindings).await
    }
}
