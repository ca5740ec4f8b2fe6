//! The LiveTip specification's webhook log (`GET /webhook-logs`, `/webhook-stats`).

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
                    .table(WebhookLogs::Table)
                    .if_not_exists()
                    .col(uuid(WebhookLogs::Id).primary_key())
                    .col(timestamp_with_time_zone(WebhookLogs::Timestamp))
                    .col(string_len(WebhookLogs::Type, 32))
                    .col(string_len_null(WebhookLogs::Event, 255))
                    .col(string_len(WebhookLogs::Status, 16))
                    .col(text_null(WebhookLogs::Data))
                    .col(string_len_null(WebhookLogs::Ip, 64))
                    .col(string_len_null(WebhookLogs::Provider, 32))
                    .col(uuid_null(WebhookLogs::WebhookEventId))
                    .col(string_len_null(WebhookLogs::TraceId, 32))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_webhook_logs_timestamp", WebhookLogs::Timestamp),
            ("ix_webhook_logs_type", WebhookLogs::Type),
            ("ix_webhook_logs_event", WebhookLogs::Event),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(WebhookLogs::Table)
                        .col(column)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookLogs::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum WebhookLogs {
    Table,
    Id,
    Timestamp,
    Type,
    Event,
    Status,
    Data,
    Ip,
    Provider,
    WebhookEventId,
    TraceId,
}
