//! Creates the journal's tables; every service lists this migration first.

use sea_orm_migration::prelude::*;

#[derive(Debug)]
pub struct CreateJournal;

impl MigrationName for CreateJournal {
    fn name(&self) -> &str {
        "m20261129_000001_create_journal"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for CreateJournal {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("audit_log")
                .col(
                    ColumnDef::new("id")
                        .big_integer()
                        .not_null()
                        .auto_increment()
                        .primary_key(),
                )
                .col(
                    ColumnDef::new("recorded_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new("actor").string().not_null())
                .col(ColumnDef::new("role").string().not_null())
                .col(ColumnDef::new("action").string().not_null())
                .col(ColumnDef::new("record_type").string().not_null())
                .col(ColumnDef::new("record_id").string().not_null())
                .col(ColumnDef::new("owner_unit").string().not_null())
                .col(ColumnDef::new("version").big_integer().not_null())
                .col(ColumnDef::new("state_hash").string().not_null())
                .col(ColumnDef::new("request_id").string().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("audit_log_record")
                .table("audit_log")
                .col("record_type")
                .col("record_id")
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("outbox")
                .col(ColumnDef::new("seq").big_integer().not_null().primary_key())
                .col(
                    ColumnDef::new("recorded_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new("record_type").string().not_null())
                .col(ColumnDef::new("record_id").string().not_null())
                .col(ColumnDef::new("owner_unit").string().not_null())
                .col(ColumnDef::new("version").big_integer().not_null())
                .col(ColumnDef::new("action").string().not_null())
                .col(ColumnDef::new("state").text().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("outbox_head")
                .col(ColumnDef::new("id").integer().not_null().primary_key())
                .col(ColumnDef::new("seq").big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.exec_stmt(
            Query::insert()
                .into_table("outbox_head")
                .columns(["id", "seq"])
                .values_panic([1.into(), 0i64.into()])
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("idempotency")
                .col(ColumnDef::new("key").string().not_null().primary_key())
                .col(ColumnDef::new("fingerprint").string().not_null())
                .col(ColumnDef::new("response").blob().not_null())
                .col(
                    ColumnDef::new("recorded_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in ["idempotency", "outbox_head", "outbox", "audit_log"] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
