//! Bank transactions, keyed by Pluggy's transaction id.

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
                    .table(BankTransactions::Table)
                    .if_not_exists()
                    .col(string_len(BankTransactions::Id, 64).primary_key())
                    .col(string_len(BankTransactions::AccountId, 64))
                    .col(timestamp_with_time_zone_null(BankTransactions::Date))
                    .col(text_null(BankTransactions::Description))
                    // Exact decimal text; see `shared::money`.
                    .col(string_len(BankTransactions::Amount, 40))
                    .col(string_len_null(BankTransactions::Currency, 8))
                    .col(string_len_null(BankTransactions::Type, 16))
                    .col(string_len_null(BankTransactions::Status, 16))
                    .col(string_len_null(BankTransactions::Category, 255))
                    .col(boolean(BankTransactions::Deleted).default(false))
                    .col(json_binary_null(BankTransactions::Raw))
                    .col(timestamp_with_time_zone(BankTransactions::CreatedAt))
                    .col(timestamp_with_time_zone(BankTransactions::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_bank_transactions_account_date")
                    .table(BankTransactions::Table)
                    .col(BankTransactions::AccountId)
                    .col(BankTransactions::Date)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BankTransactions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum BankTransactions {
    Table,
    Id,
    AccountId,
    Date,
    Description,
    Amount,
    Currency,
    Type,
    Status,
    Category,
    Deleted,
    Raw,
    CreatedAt,
    UpdatedAt,
}
