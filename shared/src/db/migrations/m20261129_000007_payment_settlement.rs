//! What LiveTip actually paid, and every LiveTip payment bound to one of ours.
//!
//! `received_amount`/`received_currency` let an underpaid payment show both amounts.
//! `livetip_bindings` maps each LiveTip `paymentId` to the payment it settled or
//! addressed: the first matching step reads it, so every later event about a LiveTip
//! payment finds the same payment, even after another LiveTip payment settled it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        for column in [
            string_len_null(Payments::ReceivedAmount, 40),
            string_len_null(Payments::ReceivedCurrency, 8),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Payments::Table)
                        .add_column_if_not_exists(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(LivetipBindings::Table)
                    .if_not_exists()
                    .col(string_len(LivetipBindings::LivetipPaymentId, 255).primary_key())
                    .col(string_len(LivetipBindings::PaymentId, 16))
                    .col(timestamp_with_time_zone(LivetipBindings::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_livetip_bindings_payment_id")
                    .table(LivetipBindings::Table)
                    .col(LivetipBindings::PaymentId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Payments bound before this table existed keep their binding.
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO livetip_bindings (livetip_payment_id, payment_id, created_at) \
                 SELECT livetip_payment_id, id, updated_at FROM payments \
                 WHERE livetip_payment_id IS NOT NULL \
                 AND livetip_payment_id NOT IN (SELECT livetip_payment_id FROM livetip_bindings)",
            )
            .await
            .map(drop)
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LivetipBindings::Table).to_owned())
            .await?;
        for column in [Payments::ReceivedAmount, Payments::ReceivedCurrency] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Payments::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    ReceivedAmount,
    ReceivedCurrency,
}

#[derive(DeriveIden)]
enum LivetipBindings {
    Table,
    LivetipPaymentId,
    PaymentId,
    CreatedAt,
}
