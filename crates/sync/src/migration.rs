//! Creates the sync tables; every service lists this migration after the journal's.

use sea_orm_migration::prelude::*;

#[derive(Debug)]
pub struct CreateSync;

impl MigrationName for CreateSync {
    fn name(&self) -> &str {
        "m20261129_100001_create_sync"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for CreateSync {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // The instance a change came from: empty for a change made here, a
        // peer's name for one applied from its feed (never sent back to it).
        m.alter_table(
            Table::alter()
                .table("outbox")
                .add_column(ColumnDef::new("origin").string().not_null().default(""))
                .to_owned(),
        )
        .await?;
        // A receiver reads the version it holds of each incoming record here.
        m.create_index(
            Index::create()
                .name("outbox_record_id")
                .table("outbox")
                .col("record_id")
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sync_instance")
                .col(ColumnDef::new("id").integer().not_null().primary_key())
                .col(ColumnDef::new("name").string().not_null())
                .col(ColumnDef::new("upstream").string().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sync_owner")
                .col(
                    ColumnDef::new("unit_code")
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new("instance").string().not_null())
                .col(
                    ColumnDef::new("since")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new("set_by").string().not_null())
                .col(ColumnDef::new("version").big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sync_cursor")
                .col(ColumnDef::new("peer").string().not_null().primary_key())
                .col(ColumnDef::new("seq").big_integer().not_null())
                .col(
                    ColumnDef::new("updated_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sync_conflict")
                .col(
                    ColumnDef::new("id")
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(ColumnDef::new("peer").string().not_null())
                .col(ColumnDef::new("record_type").string().not_null())
                .col(ColumnDef::new("record_id").string().not_null())
                .col(ColumnDef::new("owner_unit").string().not_null())
                .col(ColumnDef::new("local_version").big_integer().not_null())
                .col(ColumnDef::new("local_state").text().not_null())
                .col(ColumnDef::new("incoming_version").big_integer().not_null())
                .col(ColumnDef::new("incoming_state").text().not_null())
                .col(ColumnDef::new("incoming_action").string().not_null())
                .col(ColumnDef::new("reason").string().not_null())
                .col(
                    ColumnDef::new("recorded_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new("resolution").string().not_null())
                .col(ColumnDef::new("resolved_by").string().not_null())
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "sync_conflict",
            "sync_cursor",
            "sync_owner",
            "sync_instance",
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        m.drop_index(
            Index::drop()
                .name("outbox_record_id")
                .table("outbox")
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("outbox")
                .drop_column("origin")
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
