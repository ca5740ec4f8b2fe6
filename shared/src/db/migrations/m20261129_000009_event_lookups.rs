//! Indexes for the admin API's event lookups: one event by the gateway's request id or
//! by its trace id (`GET /events/{key}`); an event's log rows and a trace's log rows
//! (`/events/{key}`, `/webhook-logs?eventId=&traceId=`); the events listing, newest
//! first by receipt with its cursor (`received_at`, `id`), and its search by provider
//! id (`q`: LiveTip `paymentId`, Pluggy `eventId`). Without them each lookup scans the
//! table: on a million events, hundreds of milliseconds instead of one (BENCHMARKS.md).

use sea_orm_migration::prelude::*;

/// Every index of this migration: name, table, columns.
const INDEXES: [(&str, &str, &[&str]); 6] = [
    (
        "ix_webhook_events_request_id",
        "webhook_events",
        &["request_id"],
    ),
    (
        "ix_webhook_events_trace_id",
        "webhook_events",
        &["trace_id"],
    ),
    (
        "ix_webhook_events_provider_event_id",
        "webhook_events",
        &["provider_event_id"],
    ),
    (
        "ix_webhook_events_received_at_id",
        "webhook_events",
        &["received_at", "id"],
    ),
    (
        "ix_webhook_logs_webhook_event_id",
        "webhook_logs",
        &["webhook_event_id"],
    ),
    ("ix_webhook_logs_trace_id", "webhook_logs", &["trace_id"]),
];

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, columns) in INDEXES {
            let mut index = Index::create();
            index.name(name).table(Alias::new(table)).if_not_exists();
            for column in columns {
                index.col(Alias::new(*column));
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in INDEXES {
            manager
                .drop_index(Index::drop().name(name).table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
