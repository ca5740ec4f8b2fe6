//! What every handler of this process shares: the context passed down from `app`, in a
//! module of its own so that `app` (which starts consumers) and the modules it starts
//! (which read the context) do not import each other.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use sea_orm::DatabaseConnection;
use shared::Provider;
use shared::amqp::{BrokerLink, Topology};

use crate::config::WorkerSettings;
use crate::handlers::Applied;

/// Counters of what this process did (exported as metrics by the observability work).
#[derive(Debug, Default)]
pub struct Stats {
    /// Events whose effect was applied.
    pub processed: AtomicU64,
    /// Events recorded as ignored.
    pub ignored: AtomicU64,
    /// Copies acknowledged without effect.
    pub duplicates: AtomicU64,
    /// Events sent to a delayed-retry step.
    pub retried: AtomicU64,
    /// Attempts that failed transiently and were tried again in process.
    pub failed_attempts: AtomicU64,
    /// Events dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Deliveries the broker marked redelivered: work another consumer (a dead or
    /// disconnected worker) had in hand and this one took over.
    pub redelivered: AtomicU64,
}

impl Stats {
    pub(crate) fn record_applied(&self, applied: Applied) {
        match applied {
            Applied::Processed => &self.processed,
            Applied::Ignored | Applied::Rejected => &self.ignored,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_retry(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_failed_attempt(&self) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_redelivery(&self) {
        self.redelivered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_dead_letter(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }
}

/// What every handler shares.
#[derive(Debug)]
pub struct WorkerContext {
    /// Database pool.
    pub db: DatabaseConnection,
    /// Broker link (consumer channels and confirmed publishes).
    pub link: BrokerLink,
    /// Names, retry steps included.
    pub topology: Topology,
    /// Settings.
    pub settings: WorkerSettings,
    /// `host:pid`, recorded on the rows this process completes.
    pub worker_id: String,
    /// Pluggy's API, when configured.
    pub pluggy: Option<crate::pluggy::PluggyClient>,
    /// Counters.
    pub stats: Stats,
    /// Consumers currently subscribed.
    pub consuming: AtomicUsize,
    /// Pluggy item syncs, one at a time per item (see `keyed_gate`).
    pub item_syncs: crate::keyed_gate::KeyedGate,
}

impl WorkerContext {
    /// Every queue has a live consumer.
    pub fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed) >= QUEUES
    }
}

/// Work queues plus the audit queue.
const QUEUES: usize = Provider::ALL.len() + 1;
