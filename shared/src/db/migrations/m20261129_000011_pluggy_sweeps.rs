//! What the Pluggy reconciliation needs to be right across clocks and restarts.
//!
//! - `pluggy_items.synced_last_updated_at`: Pluggy's `lastUpdatedAt` as our last sync of
//!   the item read it. The sweep compares Pluggy's current value with it, both from
//!   Pluggy's clock, instead of with our own sync time. Null for items synced before:
//!   the first sweep syncs them once.
//! - `pluggy_sweeps`: one row per finished sweep (its report), so the next one is due an
//!   interval after the last, whichever replica ran it and however often workers restart.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PluggyItems::Table)
                    .add_column_if_not_exists(timestamp_with_time_zone_null(
                        PluggyItems::SyncedLastUpdatedAt,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PluggySweeps::Table)
                    .if_not_exists()
                    .col(uuid(PluggySweeps::Id).primary_key())
                    .col(timestamp_with_time_zone(PluggySweeps::StartedAt))
                    .col(timestamp_with_time_zone(PluggySweeps::FinishedAt))
                    .col(integer(PluggySweeps::ItemsChecked))
                    .col(integer(PluggySweeps::ItemsBehind))
                    .col(integer(PluggySweeps::ItemsDeleted))
                    .col(integer(PluggySweeps::ItemsFailed))
                    .col(big_integer(PluggySweeps::RowsRecovered))
                    .col(integer(PluggySweeps::ApiCalls))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_pluggy_sweeps_finished_at")
                    .table(PluggySweeps::Table)
                    .col(PluggySweeps::FinishedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PluggySweeps::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(PluggyItems::Table)
                    .drop_column(PluggyItems::SyncedLastUpdatedAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum PluggyItems {
    Table,
    SyncedLastUpdatedAt,
}

#[derive(DeriveIden)]
enum PluggySweeps {
    Table,
    Id,
    StartedAt,
    FinishedAt,
    ItemsChecked,
    ItemsBehind,
    ItemsDeleted,
    ItemsFailed,
    RowsRecovered,
    ApiCalls,
}
