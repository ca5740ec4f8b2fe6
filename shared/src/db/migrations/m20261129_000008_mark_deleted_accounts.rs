//! Accounts deactivated by an item deletion before deletions were confirmed with
//! Pluggy's API carry no mark of why; this gives them the `deleted` mark a deletion now
//! writes, so a later sync that finds their item at Pluggy can undo it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE bank_accounts SET sync_status = 'deleted' \
                 WHERE is_active = false \
                 AND item_id IN (SELECT id FROM pluggy_items WHERE deleted_at IS NOT NULL)",
            )
            .await
            .map(drop)
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
