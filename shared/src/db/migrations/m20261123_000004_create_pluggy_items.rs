//! Pluggy items (bank connections), keyed by Pluggy's own id.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PluggyItems::Table)
                    .if_not_exists()
                    .col(string_len(PluggyItems::Id, 64).primary_key())
                    .col(string_len_null(PluggyItems::Status, 32))
                    .col(string_len_null(PluggyItems::ExecutionStatus, 64))
                    .col(json_binary_null(PluggyItems::Error))
                    .col(json_binary_null(PluggyItems::Connector))
                    .col(string_len_null(PluggyItems::ClientUserId, 255))
                    .col(string_len_null(PluggyItems::LastEvent, 64))
                    .col(timestamp_with_time_zone_null(PluggyItems::PluggyCreatedAt))
                    .col(timestamp_with_time_zone_null(PluggyItems::PluggyUpdatedAt))
                    .col(timestamp_with_time_zone_null(PluggyItems::LastUpdatedAt))
                    .col(timestamp_with_time_zone_null(PluggyItems::DeletedAt))
                    .col(timestamp_with_time_zone_null(PluggyItems::SyncedAt))
                    .col(timestamp_with_time_zone(PluggyItems::CreatedAt))
                    .col(timestamp_with_time_zone(PluggyItems::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PluggyItems::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum PluggyItems {
    Table,
    Id,
    Status,
    ExecutionStatus,
    Error,
    Connector,
    ClientUserId,
    LastEvent,
    PluggyCreatedAt,
    PluggyUpdatedAt,
    LastUpdatedAt,
    DeletedAt,
    SyncedAt,
    CreatedAt,
    UpdatedAt,
}
