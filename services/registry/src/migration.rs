//! Schema of the registry database, journal first.

use sea_orm_migration::prelude::*;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(sustain_platform::journal::migration::CreateJournal),
            Box::new(CreateHouseholds),
            Box::new(NameTrigrams),
        ]
    }
}

#[derive(Debug)]
struct CreateHouseholds;

impl MigrationName for CreateHouseholds {
    fn name(&self) -> &str {
        "m20261129_000002_create_households"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for CreateHouseholds {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("household")
                .col(ColumnDef::new("id").string().not_null().primary_key())
                .col(ColumnDef::new("province_code").string().not_null())
                .col(ColumnDef::new("district_code").string().null())
                .col(ColumnDef::new("commune_code").string().not_null())
                .col(ColumnDef::new("current_commune_code").string().not_null())
                .col(ColumnDef::new("village").string().not_null())
                .col(ColumnDef::new("residence").string().not_null())
                .col(ColumnDef::new("registered_on").date().not_null())
                .col(ColumnDef::new("head_name").string().not_null())
                .col(ColumnDef::new("names_folded").text().not_null())
                .col(ColumnDef::new("ethnic_minority").boolean().not_null())
                .col(ColumnDef::new("state").string().not_null())
                .col(ColumnDef::new("archive_reason").string().null())
                .col(ColumnDef::new("version").big_integer().not_null())
                .col(
                    ColumnDef::new("created_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new("updated_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .to_owned(),
        )
        .await?;
        // Lists filter by one unit column and page by id.
        for column in [
            "province_code",
            "district_code",
            "commune_code",
            "current_commune_code",
        ] {
            m.create_index(
                Index::create()
                    .name(format!("household_{column}_id"))
                    .table("household")
                    .col(column)
                    .col("id")
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table("member")
                .col(ColumnDef::new("id").string().not_null().primary_key())
                .col(ColumnDef::new("household_id").string().not_null())
                .col(ColumnDef::new("position").integer().not_null())
                .col(ColumnDef::new("full_name").string().not_null())
                .col(ColumnDef::new("birth_date").date().not_null())
                .col(ColumnDef::new("sex").string().not_null())
                .col(ColumnDef::new("relation").string().not_null())
                .col(ColumnDef::new("ethnicity_enc").string().not_null())
                .col(ColumnDef::new("citizen_id_enc").string().null())
                .col(ColumnDef::new("citizen_id_hash").string().null())
                .col(ColumnDef::new("disability_enc").string().not_null())
                .col(ColumnDef::new("health_insurance").string().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from("member", "household_id")
                        .to("household", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("member_household")
                .table("member")
                .col("household_id")
                .col("position")
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("member_citizen_id_hash")
                .table("member")
                .col("citizen_id_hash")
                .unique()
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("member").to_owned())
            .await?;
        m.drop_table(Table::drop().table("household").to_owned())
            .await?;
        Ok(())
    }
}

/// Name search is a `LIKE '%…%'` over `names_folded`, which no B-tree serves. On
/// PostgreSQL a trigram index does (pg_trgm is a trusted extension, so the
/// service's own role may create it); SQLite scans the unit's rows instead.
#[derive(Debug)]
struct NameTrigrams;

impl MigrationName for NameTrigrams {
    fn name(&self) -> &str {
        "m20261129_000003_household_name_trigrams"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for NameTrigrams {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == sea_orm::DbBackend::Postgres {
            let db = m.get_connection();
            db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                .await?;
            db.execute_unprepared(
                "CREATE INDEX household_names_trgm ON household USING gin (names_folded gin_trgm_ops)",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == sea_orm::DbBackend::Postgres {
            m.get_connection()
                .execute_unprepared("DROP INDEX IF EXISTS household_names_trgm")
                .await?;
        }
        Ok(())
    }
}
