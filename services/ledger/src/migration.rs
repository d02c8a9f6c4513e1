//! Schema of the ledger database, journal first.

use sea_orm_migration::prelude::*;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(sustain_platform::journal::migration::CreateJournal),
            Box::new(CreateLedger),
            Box::new(sustain_sync::migration::CreateSync),
            Box::new(CreateReplicaChains),
            Box::new(sustain_platform::reseal::CreateResealProgress),
        ]
    }
}

#[derive(Debug)]
struct CreateLedger;

impl MigrationName for CreateLedger {
    fn name(&self) -> &str {
        "m20261129_000021_create_ledger"
    }
}

fn money(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().to_owned()
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for CreateLedger {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("ledger_account")
                .col(ColumnDef::new("id").string().not_null().primary_key())
                .col(ColumnDef::new("kind").string().not_null())
                .col(ColumnDef::new("source").string().not_null())
                .col(ColumnDef::new("name").string().not_null())
                .col(ColumnDef::new("project_code").string().not_null())
                .col(ColumnDef::new("year").integer().not_null())
                .col(ColumnDef::new("unit_code").string().not_null())
                .col(ColumnDef::new("province_code").string().not_null())
                .col(ColumnDef::new("district_code").string().null())
                .col(ColumnDef::new("commune_code").string().null())
                .col(ColumnDef::new("current_commune_code").string().null())
                .col(ColumnDef::new("guarded").boolean().not_null())
                .col(ColumnDef::new("purpose").string().not_null())
                .col(ColumnDef::new("reference_id").string().not_null())
                .col(money("debits_pending"))
                .col(money("debits_posted"))
                .col(money("credits_pending"))
                .col(money("credits_posted"))
                .col(ColumnDef::new("sequence").big_integer().not_null())
                .col(
                    ColumnDef::new("created_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        for column in [
            "province_code",
            "district_code",
            "commune_code",
            "current_commune_code",
        ] {
            m.create_index(
                Index::create()
                    .name(format!("ledger_account_{column}_id"))
                    .table("ledger_account")
                    .col(column)
                    .col("id")
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table("ledger_transfer")
                .col(ColumnDef::new("id").string().not_null().primary_key())
                .col(ColumnDef::new("batch_id").string().not_null())
                .col(ColumnDef::new("leg").integer().not_null())
                .col(ColumnDef::new("debit_account_id").string().not_null())
                .col(ColumnDef::new("credit_account_id").string().not_null())
                .col(money("amount"))
                .col(ColumnDef::new("pending").boolean().not_null())
                .col(ColumnDef::new("reverses_id").string().null())
                .col(ColumnDef::new("value_date").date().not_null())
                .col(ColumnDef::new("memo").string().not_null())
                .col(ColumnDef::new("state").string().not_null())
                .col(ColumnDef::new("posted_on").date().null())
                .col(ColumnDef::new("resolved_on").date().null())
                .col(ColumnDef::new("sequence").big_integer().not_null())
                .col(ColumnDef::new("resolve_sequence").big_integer().null())
                .col(
                    ColumnDef::new("created_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        for (name, column) in [
            ("ledger_transfer_debit", "debit_account_id"),
            ("ledger_transfer_credit", "credit_account_id"),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table("ledger_transfer")
                    .col(column)
                    .col("value_date")
                    .to_owned(),
            )
            .await?;
        }
        m.create_index(
            Index::create()
                .name("ledger_transfer_reverses")
                .table("ledger_transfer")
                .col("reverses_id")
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("ledger_entry")
                .col(
                    ColumnDef::new("sequence")
                        .big_integer()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new("kind").string().not_null())
                .col(ColumnDef::new("record_id").string().not_null())
                .col(ColumnDef::new("hash").string().not_null())
                .col(
                    ColumnDef::new("recorded_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("ledger_head")
                .col(ColumnDef::new("id").integer().not_null().primary_key())
                .col(ColumnDef::new("sequence").big_integer().not_null())
                .col(ColumnDef::new("hash").string().not_null())
                .to_owned(),
        )
        .await?;
        m.exec_stmt(
            Query::insert()
                .into_table("ledger_head")
                .columns(["id", "sequence", "hash"])
                .values_panic([
                    1.into(),
                    0i64.into(),
                    hex::encode(sustain_domain::ledger::GENESIS).into(),
                ])
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// The chains of the instances below, as they arrived: every entry with the
/// record it covers, and per instance the last entry that verified and the
/// alarm raised when one did not.
#[derive(Debug)]
struct CreateReplicaChains;

impl MigrationName for CreateReplicaChains {
    fn name(&self) -> &str {
        "m20261129_200001_create_ledger_replica_chains"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for CreateReplicaChains {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("ledger_replica_entry")
                .col(ColumnDef::new("instance").string().not_null())
                .col(ColumnDef::new("sequence").big_integer().not_null())
                .col(ColumnDef::new("kind").string().not_null())
                .col(ColumnDef::new("record_id").string().not_null())
                .col(ColumnDef::new("hash").string().not_null())
                .col(ColumnDef::new("record").text().not_null())
                .col(ColumnDef::new("verified").boolean().not_null())
                .col(
                    ColumnDef::new("received_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .primary_key(Index::create().col("instance").col("sequence"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("ledger_replica_head")
                .col(ColumnDef::new("instance").string().not_null().primary_key())
                .col(ColumnDef::new("sequence").big_integer().not_null())
                .col(ColumnDef::new("hash").string().not_null())
                .col(ColumnDef::new("alarm").text().not_null())
                .col(ColumnDef::new("alarm_at").timestamp_with_time_zone().null())
                .col(
                    ColumnDef::new("checked_at")
                        .timestamp_with_time_zone()
                        .null(),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
