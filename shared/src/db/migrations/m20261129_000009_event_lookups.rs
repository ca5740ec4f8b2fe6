//! Indexes for the admin API's event lookups: one event by the gateway's request id or
//! by its trace id (`GET /events/{key}`); an event's log rows and a trace's log rows
//! (`/events/{key}`, `/webhook-logs?eventId=&traceId=`); the events listing, newest
//! first by receipt with its cursor (`received_at`, `id`), and its search by provider
//! id (`q`: LiveTip `paymentId`, Pluggy `eventId`). Without them each lookup scans the
//! table: on a million events, hundreds of milliseconds instead of one (BENCHMARKS.md).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, column) in [
            (
                "ix_webhook_events_request_id",
                Alias::new("webhook_events"),
                Alias::new("request_id"),
            ),
            (
                "ix_webhook_events_trace_id",
                Alias::new("webhook_events"),
                Alias::new("trace_id"),
            ),
            (
                "ix_webhook_events_provider_event_id",
                Alias::new("webhook_events"),
                Alias::new("provider_event_id"),
            ),
            (
                "ix_webhook_logs_webhook_event_id",
                Alias::new("webhook_logs"),
                Alias::new("webhook_event_id"),
            ),
            (
                "ix_webhook_logs_trace_id",
                Alias::new("webhook_logs"),
                Alias::new("trace_id"),
            ),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(table)
                        .col(column)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_events_received_at_id")
                    .table(Alias::new("webhook_events"))
                    .col(Alias::new("received_at"))
                    .col(Alias::new("id"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            ("ix_webhook_events_request_id", "webhook_events"),
            ("ix_webhook_events_trace_id", "webhook_events"),
            ("ix_webhook_events_provider_event_id", "webhook_events"),
            ("ix_webhook_events_received_at_id", "webhook_events"),
            ("ix_webhook_logs_webhook_event_id", "webhook_logs"),
            ("ix_webhook_logs_trace_id", "webhook_logs"),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
