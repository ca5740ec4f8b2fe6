//! Expected and received LiveTip payments.

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
                    .table(Payments::Table)
                    .if_not_exists()
                    .col(string_len(Payments::Id, 16).primary_key())
                    .col(string_len(Payments::UserName, 255))
                    // Exact decimal text; see `shared::money`.
                    .col(string_len(Payments::Amount, 40))
                    .col(string_len(Payments::Currency, 8).default("BRL"))
                    .col(string_len(Payments::Status, 16))
                    .col(string_len_null(Payments::LivetipPaymentId, 255))
                    .col(text_null(Payments::Content))
                    .col(string_len_null(Payments::MatchedBy, 16))
                    .col(timestamp_with_time_zone(Payments::CreatedAt))
                    .col(timestamp_with_time_zone(Payments::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Payments::PaidAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_payments_livetip_payment_id")
                    .table(Payments::Table)
                    .col(Payments::LivetipPaymentId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_payments_user_status_created")
                    .table(Payments::Table)
                    .col(Payments::UserName)
                    .col(Payments::Status)
                    .col(Payments::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Payments::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
    UserName,
    Amount,
    Currency,
    Status,
    LivetipPaymentId,
    Content,
    MatchedBy,
    CreatedAt,
    UpdatedAt,
    PaidAt,
}
