//! The inbox: one row per distinct event, the key to applying each effect once.

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
                    .table(WebhookEvents::Table)
                    .if_not_exists()
                    .col(uuid(WebhookEvents::Id).primary_key())
                    .col(string_len(WebhookEvents::Provider, 32))
                    .col(string_len(WebhookEvents::Event, 255))
                    .col(string_len(WebhookEvents::DedupeKey, 255))
                    .col(string_len_null(WebhookEvents::ProviderEventId, 255))
                    .col(blob(WebhookEvents::Payload))
                    .col(timestamp_with_time_zone(WebhookEvents::ReceivedAt))
                    .col(timestamp_with_time_zone_null(WebhookEvents::ProcessedAt))
                    .col(string_len(WebhookEvents::Status, 16))
                    .col(integer(WebhookEvents::Attempts).default(0))
                    .col(integer(WebhookEvents::Duplicates).default(0))
                    .col(text_null(WebhookEvents::LastError))
                    .col(string_len_null(WebhookEvents::TraceId, 32))
                    .col(uuid_null(WebhookEvents::RequestId))
                    .col(uuid_null(WebhookEvents::ClaimToken))
                    .col(timestamp_with_time_zone_null(WebhookEvents::LeaseUntil))
                    .col(string_len_null(WebhookEvents::ProcessedBy, 128))
                    .col(timestamp_with_time_zone(WebhookEvents::CreatedAt))
                    .col(timestamp_with_time_zone(WebhookEvents::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_webhook_events_provider_dedupe_key")
                    .table(WebhookEvents::Table)
                    .col(WebhookEvents::Provider)
                    .col(WebhookEvents::DedupeKey)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_events_status_received_at")
                    .table(WebhookEvents::Table)
                    .col(WebhookEvents::Status)
                    .col(WebhookEvents::ReceivedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    Id,
    Provider,
    Event,
    DedupeKey,
    ProviderEventId,
    Payload,
    ReceivedAt,
    ProcessedAt,
    Status,
    Attempts,
    Duplicates,
    LastError,
    TraceId,
    RequestId,
    ClaimToken,
    LeaseUntil,
    ProcessedBy,
    CreatedAt,
    UpdatedAt,
}
