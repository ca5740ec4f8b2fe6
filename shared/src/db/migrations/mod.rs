//! Schema history: one migration per change, named by date, never edited once released.

use sea_orm_migration::{MigrationTrait, MigratorTrait};

mod m20261123_000001_create_webhook_events;
mod m20261123_000002_create_webhook_logs;
mod m20261123_000003_create_payments;
mod m20261123_000004_create_pluggy_items;
mod m20261123_000005_create_bank_accounts;
mod m20261123_000006_create_bank_transactions;
mod m20261129_000007_payment_settlement;
mod m20261129_000008_mark_deleted_accounts;
mod m20261129_000009_event_lookups;
mod m20261129_000010_event_search;
mod m20261129_000011_pluggy_sweeps;

/// Every migration, in order.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_webhook_events::Migration),
            Box::new(m20261123_000002_create_webhook_logs::Migration),
            Box::new(m20261123_000003_create_payments::Migration),
            Box::new(m20261123_000004_create_pluggy_items::Migration),
            Box::new(m20261123_000005_create_bank_accounts::Migration),
            Box::new(m20261123_000006_create_bank_transactions::Migration),
            Box::new(m20261129_000007_payment_settlement::Migration),
            Box::new(m20261129_000008_mark_deleted_accounts::Migration),
            Box::new(m20261129_000009_event_lookups::Migration),
            Box::new(m20261129_000010_event_search::Migration),
            Box::new(m20261129_000011_pluggy_sweeps::Migration),
        ]
    }
}
