//! The savepoint that lets one effect of a batch fail alone, set only once the effect
//! reaches the database.
//!
//! Most LiveTip effects in a batch decide from the batch's reads and leave their writes
//! to its multi-row statements: they send no statement at all. A savepoint per event
//! was then the batch's largest number of round trips (one per event against about ten
//! per batch). So an effect runs on [`Effect`], which sets the savepoint just before
//! the effect's first statement, read or write: in PostgreSQL any failed statement
//! aborts the whole transaction, so no statement of the effect may run outside it.

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, Statement,
};
use tokio::sync::Mutex;

/// One name reused for every effect: releasing the previous savepoint and setting the
/// next is then one round trip.
const NAME: &str = "hw_event";

/// The batch's transaction as its effects see it, one effect at a time.
#[derive(Debug)]
pub struct Effect<'a> {
    txn: &'a DatabaseTransaction,
    /// Whether effects are guarded at all: a batch with one claimed event rolls the
    /// whole transaction back instead.
    active: bool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// An earlier effect set a savepoint that is still there.
    set: bool,
    /// The current effect's savepoint is set.
    entered: bool,
}

impl<'a> Effect<'a> {
    /// Effects on `txn`; `active` when there is more than one.
    pub fn new(txn: &'a DatabaseTransaction, active: bool) -> Self {
        Self {
            txn,
            active,
            state: Mutex::default(),
        }
    }

    /// Whether a failed effect can be undone alone.
    pub fn active(&self) -> bool {
        self.active
    }

    /// The next effect starts: its savepoint waits for its first statement.
    pub fn next(&mut self) {
        self.state.get_mut().entered = false;
    }

    /// Undoes the current effect's statements, if it sent any.
    pub async fn undo(&self) -> Result<(), DbErr> {
        let state = self.state.lock().await;
        if state.entered {
            self.txn
                .execute_unprepared(&format!("ROLLBACK TO SAVEPOINT {NAME}"))
                .await?;
        }
        Ok(())
    }

    /// Sets the current effect's savepoint before its first statement. The lock is held
    /// across the round trip, so no statement of the effect can overtake it.
    async fn enter(&self) -> Result<(), DbErr> {
        if !self.active {
            return Ok(());
        }
        let mut state = self.state.lock().await;
        if state.entered {
            return Ok(());
        }
        let sql = if state.set {
            format!("RELEASE SAVEPOINT {NAME}; SAVEPOINT {NAME}")
        } else {
            format!("SAVEPOINT {NAME}")
        };
        self.txn.execute_unprepared(&sql).await?;
        state.set = true;
        state.entered = true;
        Ok(())
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Effect<'_> {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.enter().await?;
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.enter().await?;
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.enter().await?;
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.enter().await?;
        self.txn.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }
}
