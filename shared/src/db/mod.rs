//! The data layer: connection, migrations, entities. PostgreSQL in production; an
//! embedded SQLite file when `DATABASE_URL` is unset, so a laptop needs no server.

pub mod entities;
pub mod migrations;

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr,
    TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use migrations::Migrator;

/// Used when `DATABASE_URL` is unset: a file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://hookwire.sqlite?mode=rwc";

/// Arbitrary, fixed key of the PostgreSQL advisory lock that serialises migrations.
const MIGRATION_LOCK_KEY: i64 = 0x686f_6f6b_7769_7265; // "hookwire"

/// Opens a pool. Queries never wait long for a connection: a database that is away
/// must surface as a (transient) error, not as a hung worker.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    open(url, max_connections, false).await
}

/// A pool that connects on first use, for processes that must start (and serve what
/// does not need the database) while the database is away.
pub async fn connect_lazy(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    open(url, max_connections, true).await
}

async fn open(url: &str, max_connections: u32, lazy: bool) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.connect_lazy(lazy);
    options
        .max_connections(max_connections.max(1))
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        // A request-serving pool (lazy) must answer "unavailable" quickly.
        .acquire_timeout(Duration::from_secs(if lazy { 2 } else { 5 }))
        .idle_timeout(Duration::from_secs(300))
        .sqlx_logging(false)
        // A worker that vanishes without closing its socket (host lost, network cut)
        // must not hold its open transaction, and the locks an event's claim waits on,
        // for the kernel's two-hour keepalive: the server probes the client after 10 s of
        // silence, and no transaction of ours (never spanning an HTTP call) idles a
        // minute.
        .map_sqlx_postgres_opts(|options| {
            options.options([
                ("tcp_keepalives_idle", "10"),
                ("tcp_keepalives_interval", "5"),
                ("tcp_keepalives_count", "3"),
                ("idle_in_transaction_session_timeout", "60s"),
            ])
        });
    let db = Database::connect(options).await?;
    if db.get_database_backend() == DbBackend::Sqlite && !lazy {
        // WAL lets readers work beside the single writer; the busy timeout turns lock
        // contention between worker processes into waiting instead of errors.
        db.execute_unprepared(
            "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
        )
        .await?;
    }
    Ok(db)
}

/// Applies pending migrations. Safe when several workers start at once: PostgreSQL
/// serialises them behind an advisory lock in one transaction (DDL is transactional);
/// SQLite's single writer lock does the same, and a loser of that race retries.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match migrate_once(db).await {
            Ok(()) => return Ok(()),
            Err(error) if attempt < 5 && db.get_database_backend() == DbBackend::Sqlite => {
                tracing::debug!(%error, attempt, "migration raced another process; retrying");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

async fn migrate_once(db: &DatabaseConnection) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    if db.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!(
            "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
        ))
        .await?;
    }
    Migrator::up(&txn, None).await?;
    txn.commit().await
}

/// Cheap liveness query for readiness checks.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}
