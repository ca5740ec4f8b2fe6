//! Bank accounts of Pluggy items, keyed by Pluggy's account id.

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
                    .table(BankAccounts::Table)
                    .if_not_exists()
                    .col(string_len(BankAccounts::Id, 64).primary_key())
                    .col(string_len(BankAccounts::ItemId, 64))
                    .col(string_len_null(BankAccounts::Type, 32))
                    .col(string_len_null(BankAccounts::Subtype, 64))
                    .col(string_len_null(BankAccounts::Name, 255))
                    .col(string_len_null(BankAccounts::Number, 64))
                    // Exact decimal text; see `shared::money`.
                    .col(string_len_null(BankAccounts::Balance, 40))
                    .col(string_len_null(BankAccounts::Currency, 8))
                    .col(boolean(BankAccounts::IsActive).default(true))
                    .col(string_len(BankAccounts::SyncStatus, 16))
                    .col(text_null(BankAccounts::SyncError))
                    .col(timestamp_with_time_zone_null(BankAccounts::LastSyncedAt))
                    .col(json_binary_null(BankAccounts::Raw))
                    .col(timestamp_with_time_zone(BankAccounts::CreatedAt))
                    .col(timestamp_with_time_zone(BankAccounts::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_bank_accounts_item_id")
                    .table(BankAccounts::Table)
                    .col(BankAccounts::ItemId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BankAccounts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum BankAccounts {
    Table,
    Id,
    ItemId,
    Type,
    Subtype,
    Name,
    Number,
    Balance,
    Currency,
    IsActive,
    SyncStatus,
    SyncError,
    LastSyncedAt,
    Raw,
    CreatedAt,
    UpdatedAt,
}
