//! What the events listing needs beyond migration 9 to stay fast when a filter matches
//! few of a million rows (measured in BENCHMARKS.md):
//!
//! - `pluggy_item_id` and `pluggy_account_id`, so `GET /events?q=` finds a Pluggy
//!   item's or account's events; the worker fills them when it records an event. Rows
//!   recorded before this migration keep them empty and are found by their `eventId`.
//!   Their indexes are partial: LiveTip rows, the bulk, cost them nothing.
//! - `event` and `provider` filters walk their own index in the listing's order
//!   (receipt, id) instead of the whole receipt index past rows they skip: 0.2 ms
//!   instead of 14 ms for an event that is 0.1 % of a million rows. (`status` has had
//!   its index since migration 1.)

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// Which rows an index holds.
enum Rows {
    All,
    WithValue,
}

/// Every index of this migration: name, leading column (the listing's order follows),
/// which rows.
const INDEXES: [(&str, &str, Rows); 4] = [
    (
        "ix_webhook_events_pluggy_item_id",
        "pluggy_item_id",
        Rows::WithValue,
    ),
    (
        "ix_webhook_events_pluggy_account_id",
        "pluggy_account_id",
        Rows::WithValue,
    ),
    ("ix_webhook_events_event", "event", Rows::All),
    ("ix_webhook_events_provider", "provider", Rows::All),
];

const TABLE: &str = "webhook_events";
/// The new columns, sized as Pluggy ids are everywhere (`bounds::PLUGGY_ID`).
const COLUMNS: [&str; 2] = ["pluggy_item_id", "pluggy_account_id"];

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        for column in COLUMNS {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(TABLE))
                        .add_column_if_not_exists(string_len_null(Alias::new(column), 64))
                        .to_owned(),
                )
                .await?;
        }
        for (name, column, rows) in INDEXES {
            let mut index = Index::create();
            index
                .name(name)
                .table(Alias::new(TABLE))
                .if_not_exists()
                .col(Alias::new(column))
                .col(Alias::new("received_at"))
                .col(Alias::new("id"));
            if let Rows::WithValue = rows {
                index.and_where(Expr::col(Alias::new(column)).is_not_null());
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, _, _) in INDEXES {
            manager
                .drop_index(Index::drop().name(name).table(Alias::new(TABLE)).to_owned())
                .await?;
        }
        for column in COLUMNS {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(TABLE))
                        .drop_column(Alias::new(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
