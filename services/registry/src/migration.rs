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
            Box::new(CreateReviews),
            Box::new(MemberBirthDates),
            Box::new(ProvinceTally),
            Box::new(sustain_sync::migration::CreateSync),
            Box::new(StandardSet),
            Box::new(sustain_platform::reseal::CreateResealProgress),
            Box::new(SearchKeys),
            Box::new(ProvinceTallyInForce),
            Box::new(ReviewArea),
            Box::new(VillageAssignments),
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

/// Reviews, the running tallies of certified reviews that summaries read, the
/// sealed earlier versions of households for point-in-time reads, and the
/// external keys of imported households.
#[derive(Debug)]
struct CreateReviews;

impl MigrationName for CreateReviews {
    fn name(&self) -> &str {
        "m20261129_000004_create_reviews"
    }
}

/// Columns that key a row of the province tally: the tally summed over the
/// communes of each district (after the reform, of each commune); see
/// `tally.rs`.
pub(crate) const PROVINCE_TALLY_KEY: &[&str] = PROVINCE_TALLY_KEY_V2;

/// The province tally's key since reviews record their area: what
/// [`ReviewArea`] made and [`VillageAssignments`] fills again.
const PROVINCE_TALLY_KEY_V2: &[&str] = &[
    "year",
    "standard_code",
    "province_code",
    "child_unit",
    "ethnic_minority",
    "residence",
    "area",
    "class",
    "transition",
    "mpi_poor",
];

/// The province tally's key before reviews recorded their area: what the
/// migrations before [`ReviewArea`] made and filled.
const PROVINCE_TALLY_KEY_V1: &[&str] = &[
    "year",
    "standard_code",
    "province_code",
    "child_unit",
    "ethnic_minority",
    "residence",
    "class",
    "transition",
    "mpi_poor",
];

/// A tally table: its key columns, the households counted and, per
/// indicator, how many of them are deprived (`d00`…), keyed by `key`.
fn tally_table(table: &str, key: &[&'static str]) -> TableCreateStatement {
    let mut tally = Table::create();
    tally.table(Alias::new(table));
    for column in key {
        let mut def = ColumnDef::new(*column);
        match *column {
            "year" => def.integer(),
            "ethnic_minority" | "mpi_poor" => def.boolean(),
            _ => def.string(),
        };
        tally.col(def.not_null());
    }
    tally.col(ColumnDef::new("households").big_integer().not_null());
    for p in 0..sustain_domain::poverty::MAX_INDICATORS {
        tally.col(ColumnDef::new(format!("d{p:02}")).big_integer().not_null());
    }
    let mut primary = Index::create();
    primary.name(format!("{table}_key"));
    for column in key {
        primary.col(*column);
    }
    tally.primary_key(&mut primary);
    tally.to_owned()
}

/// Columns that key a tally row; see `tally.rs`.
pub(crate) const TALLY_KEY: &[&str] = TALLY_KEY_V2;

/// The tally's key since reviews record their area (see
/// [`PROVINCE_TALLY_KEY_V2`]).
const TALLY_KEY_V2: &[&str] = &[
    "year",
    "standard_code",
    "province_code",
    "district_code",
    "commune_code",
    "current_commune_code",
    "ethnic_minority",
    "residence",
    "area",
    "class",
    "transition",
    "mpi_poor",
];

/// The tally's key before reviews recorded their area (see
/// [`PROVINCE_TALLY_KEY_V1`]).
const TALLY_KEY_V1: &[&str] = &[
    "year",
    "standard_code",
    "province_code",
    "district_code",
    "commune_code",
    "current_commune_code",
    "ethnic_minority",
    "residence",
    "class",
    "transition",
    "mpi_poor",
];

/// A tally's per-indicator count columns, `d00` … in indicator order.
pub(crate) fn deprived_columns() -> Vec<String> {
    (0..sustain_domain::poverty::MAX_INDICATORS)
        .map(|p| format!("d{p:02}"))
        .collect()
}

fn timestamp(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for CreateReviews {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("review")
                .col(ColumnDef::new("id").string().not_null().primary_key())
                .col(ColumnDef::new("household_id").string().not_null())
                .col(ColumnDef::new("year").integer().not_null())
                .col(ColumnDef::new("revision").integer().not_null())
                .col(ColumnDef::new("kind").string().not_null())
                .col(ColumnDef::new("state").string().not_null())
                .col(ColumnDef::new("standard_code").string().not_null())
                .col(ColumnDef::new("province_code").string().not_null())
                .col(ColumnDef::new("district_code").string().not_null())
                .col(ColumnDef::new("commune_code").string().not_null())
                .col(ColumnDef::new("current_commune_code").string().not_null())
                .col(ColumnDef::new("residence").string().not_null())
                .col(ColumnDef::new("ethnic_minority").boolean().not_null())
                .col(ColumnDef::new("income").big_integer().null())
                .col(ColumnDef::new("score_a").integer().null())
                .col(ColumnDef::new("deprived_bits").integer().not_null())
                .col(ColumnDef::new("deprivation_count").integer().not_null())
                .col(ColumnDef::new("class").string().not_null())
                .col(ColumnDef::new("transition").string().not_null())
                .col(ColumnDef::new("mpi_poor").boolean().not_null())
                .col(ColumnDef::new("household_version").big_integer().not_null())
                .col(ColumnDef::new("reviewer").string().not_null())
                .col(ColumnDef::new("reviewed_on").date().null())
                .col(ColumnDef::new("meeting_date").date().null())
                .col(ColumnDef::new("agreement_percent").integer().null())
                .col(ColumnDef::new("approved_by").string().null())
                .col(
                    ColumnDef::new("approved_at")
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new("decision_number").string().null())
                .col(ColumnDef::new("decision_date").date().null())
                .col(ColumnDef::new("certified_by").string().null())
                .col(
                    ColumnDef::new("certified_at")
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(ColumnDef::new("supersedes").string().null())
                .col(ColumnDef::new("version").big_integer().not_null())
                .col(timestamp("created_at"))
                .col(timestamp("updated_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("review", "household_id")
                        .to("household", "id"),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("review_household_year_revision")
                .table("review")
                .col("household_id")
                .col("year")
                .col("revision")
                .unique()
                .to_owned(),
        )
        .await?;
        // What a recount (and the plain GROUP BY it is measured against) reads.
        m.create_index(
            Index::create()
                .name("review_year_state_province")
                .table("review")
                .col("year")
                .col("state")
                .col("province_code")
                .to_owned(),
        )
        .await?;

        m.create_table(tally_table("review_tally", TALLY_KEY_V1))
            .await?;
        for column in ["province_code", "district_code", "current_commune_code"] {
            m.create_index(
                Index::create()
                    .name(format!("review_tally_year_{column}"))
                    .table("review_tally")
                    .col("year")
                    .col(column)
                    .to_owned(),
            )
            .await?;
        }

        m.create_table(
            Table::create()
                .table("household_version")
                .col(ColumnDef::new("household_id").string().not_null())
                .col(ColumnDef::new("version").big_integer().not_null())
                .col(ColumnDef::new("sealed").blob().not_null())
                .col(timestamp("recorded_at"))
                .primary_key(Index::create().col("household_id").col("version"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("import_key")
                .col(
                    ColumnDef::new("external_key")
                        .string()
                        .not_null()
                        .primary_key(),
                )
                .col(ColumnDef::new("household_id").string().not_null())
                .col(timestamp("created_at"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in ["import_key", "household_version", "review_tally", "review"] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

/// Counting members born in a window (the under-five children a programme
/// summary divides by) reads the birth dates of a window, not every member.
#[derive(Debug)]
struct MemberBirthDates;

impl MigrationName for MemberBirthDates {
    fn name(&self) -> &str {
        "m20261129_000005_member_birth_dates"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for MemberBirthDates {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("member_birth_date_household")
                .table("member")
                .col("birth_date")
                .col("household_id")
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("member_birth_date_household")
                .table("member")
                .to_owned(),
        )
        .await
    }
}

/// A province's summary grouped about 4,000 commune-level tally rows a year
/// (8.5 ms of SQL per year over the Lạng Sơn demo); the same counts kept per
/// district are about 165 rows. Filled from the commune-level tally.
#[derive(Debug)]
struct ProvinceTally;

impl MigrationName for ProvinceTally {
    fn name(&self) -> &str {
        "m20261129_000006_province_tally"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for ProvinceTally {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(tally_table("review_tally_province", PROVINCE_TALLY_KEY_V1))
            .await?;
        let deprived = deprived_columns();
        let child =
            "CASE WHEN district_code <> '' THEN district_code ELSE current_commune_code END";
        let grouped: Vec<&str> = PROVINCE_TALLY_KEY_V1
            .iter()
            .map(|c| if *c == "child_unit" { child } else { c })
            .collect();
        let sums: Vec<String> = std::iter::once("households".to_owned())
            .chain(deprived.iter().cloned())
            .map(|c| format!("CAST(SUM({c}) AS BIGINT)"))
            .collect();
        let sql = format!(
            "INSERT INTO review_tally_province ({}, households, {}) SELECT {}, {} FROM review_tally GROUP BY {}",
            PROVINCE_TALLY_KEY_V1.join(", "),
            deprived.join(", "),
            grouped.join(", "),
            sums.join(", "),
            grouped.join(", "),
        );
        m.get_connection().execute_unprepared(&sql).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("review_tally_province").to_owned())
            .await
    }
}

#[derive(Debug)]
struct StandardSet;

impl MigrationName for StandardSet {
    fn name(&self) -> &str {
        "m20261129_100002_standard_set"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for StandardSet {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("poverty_standard_set")
                .col(ColumnDef::new("id").string().not_null().primary_key())
                .col(ColumnDef::new("province_code").string().not_null())
                .col(ColumnDef::new("standards_toml").text().not_null())
                .col(ColumnDef::new("version").big_integer().not_null())
                .col(
                    ColumnDef::new("updated_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new("updated_by").string().not_null())
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("poverty_standard_set").to_owned())
            .await
    }
}

/// Stored folded names under the one search rule (`text::search_key`):
/// punctuation read as a space. Names stored before it kept their hyphens
/// and apostrophes, which a query never holds, so such a name was found on
/// neither database by its own spelling. Only the folded column changes, and
/// only where it differs; the names themselves are untouched.
#[derive(Debug)]
struct SearchKeys;

impl MigrationName for SearchKeys {
    fn name(&self) -> &str {
        "m20261204_200001_household_search_keys"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for SearchKeys {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use sea_orm::{ConnectionTrait, Statement};
        let db = m.get_connection();
        let backend = m.get_database_backend();
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT id, names_folded FROM household",
            ))
            .await?;
        let update = match backend {
            sea_orm::DbBackend::Postgres => "UPDATE household SET names_folded = $1 WHERE id = $2",
            _ => "UPDATE household SET names_folded = ? WHERE id = ?",
        };
        for row in rows {
            let id: String = row.try_get("", "id")?;
            let stored: String = row.try_get("", "names_folded")?;
            let keyed = stored
                .split('|')
                .map(sustain_domain::text::search_key)
                .collect::<Vec<_>>()
                .join("|");
            if keyed != stored {
                db.execute_raw(Statement::from_sql_and_values(
                    backend,
                    update,
                    [keyed.into(), id.into()],
                ))
                .await?;
            }
        }
        Ok(())
    }
}

/// The province tally's years reported after the 2025 reform counted again
/// by the units in force at their end (the communes), not by the districts
/// their households were registered in: the 2025 breakdown listed old
/// districts beside new communes, each with part of its households.
#[derive(Debug)]
struct ProvinceTallyInForce;

impl MigrationName for ProvinceTallyInForce {
    fn name(&self) -> &str {
        "m20261204_200002_province_tally_units_in_force"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for ProvinceTallyInForce {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let first = sustain_domain::admin::reform_date()
            .format("%Y")
            .to_string();
        let deprived = deprived_columns();
        let grouped: Vec<&str> = PROVINCE_TALLY_KEY_V1
            .iter()
            .map(|c| {
                if *c == "child_unit" {
                    "current_commune_code"
                } else {
                    c
                }
            })
            .collect();
        let sums: Vec<String> = std::iter::once("households".to_owned())
            .chain(deprived.iter().cloned())
            .map(|c| format!("CAST(SUM({c}) AS BIGINT)"))
            .collect();
        let db = m.get_connection();
        db.execute_unprepared(&format!(
            "DELETE FROM review_tally_province WHERE year >= {first}"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "INSERT INTO review_tally_province ({}, households, {}) SELECT {}, {} FROM review_tally WHERE year >= {first} GROUP BY {}",
            PROVINCE_TALLY_KEY_V1.join(", "),
            deprived.join(", "),
            grouped.join(", "),
            sums.join(", "),
            grouped.join(", "),
        ))
        .await?;
        Ok(())
    }
}

/// Each review records the area whose income line it was classified under
/// (`area`, and the reviewer's `area_reason` when set against the default),
/// and the tallies count by it beside the household's residence, so a
/// summary can say how many reviews changed area. Reviews before it were
/// classified under their household's residence: that is their area. The
/// tally tables are rebuilt with the wider key (a primary key cannot grow in
/// place on SQLite).
#[derive(Debug)]
struct ReviewArea;

impl MigrationName for ReviewArea {
    fn name(&self) -> &str {
        "m20261204_200003_review_area"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for ReviewArea {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One connection, one transaction: on SQLite a pooled connection
        // may otherwise not yet see the table dropped on another.
        let m = m.begin().await?;
        m.alter_table(
            Table::alter()
                .table("review")
                .add_column(ColumnDef::new("area").string().not_null().default(""))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("review")
                .add_column(ColumnDef::new("area_reason").text().null())
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        db.execute_unprepared("UPDATE review SET area = residence")
            .await?;
        let deprived = deprived_columns();
        for (table, old_key, new_key) in [
            ("review_tally", TALLY_KEY_V1, TALLY_KEY_V2),
            (
                "review_tally_province",
                PROVINCE_TALLY_KEY_V1,
                PROVINCE_TALLY_KEY_V2,
            ),
        ] {
            let next = format!("{table}_area");
            m.create_table(tally_table(&next, new_key)).await?;
            db.execute_unprepared(&format!(
                "INSERT INTO {next} ({}, area, households, {d}) SELECT {}, residence, households, {d} FROM {table}",
                old_key.join(", "),
                old_key.join(", "),
                d = deprived.join(", "),
            ))
            .await?;
            m.drop_table(Table::drop().table(Alias::new(table)).to_owned())
                .await?;
            m.rename_table(
                Table::rename()
                    .table(Alias::new(next.as_str()), Alias::new(table))
                    .to_owned(),
            )
            .await?;
        }
        m.commit().await
    }
}

/// The village → part assignment of the communes the 2025 reform split
/// between successors, and the households of those communes taken back from
/// the part they had been guessed into (the one that kept the code, else the
/// first): until a village is assigned they belong to none. Their reviews
/// follow, and both tallies are counted again from the reviews.
#[derive(Debug)]
struct VillageAssignments;

impl MigrationName for VillageAssignments {
    fn name(&self) -> &str {
        "m20261205_100001_village_assignments"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for VillageAssignments {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let m = m.begin().await?;
        m.create_table(
            Table::create()
                .table("village_assignment")
                .col(ColumnDef::new("id").string().not_null().primary_key())
                .col(ColumnDef::new("province_code").string().not_null())
                .col(ColumnDef::new("commune_code").string().not_null())
                .col(ColumnDef::new("village_key").string().not_null())
                .col(ColumnDef::new("village").string().not_null())
                .col(ColumnDef::new("successor_code").string().not_null())
                .col(ColumnDef::new("version").big_integer().not_null())
                .col(timestamp("updated_at"))
                .col(ColumnDef::new("updated_by").string().not_null())
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        let reform = sustain_domain::admin::reform_date();
        let split: Vec<String> = sustain_domain::admin::catalog()
            .split_codes()
            .iter()
            .map(|c| format!("'{c}'"))
            .collect();
        if !split.is_empty() {
            let split = split.join(", ");
            let before = format!("'{}'", reform.format("%Y-%m-%d"));
            db.execute_unprepared(&format!(
                "UPDATE review SET current_commune_code = '' WHERE commune_code IN ({split}) AND household_id IN \
                 (SELECT id FROM household WHERE commune_code IN ({split}) AND registered_on < {before})"
            ))
            .await?;
            db.execute_unprepared(&format!(
                "UPDATE household SET current_commune_code = '' WHERE commune_code IN ({split}) AND registered_on < {before}"
            ))
            .await?;
        }
        let first = reform.format("%Y").to_string();
        let deprived = deprived_columns();
        let counts: Vec<String> = std::iter::once("CAST(COUNT(*) AS BIGINT)".to_owned())
            .chain((0..sustain_domain::poverty::MAX_INDICATORS).map(|p| {
                format!(
                    "CAST(SUM(CASE WHEN (deprived_bits & {}) <> 0 THEN 1 ELSE 0 END) AS BIGINT)",
                    1 << p
                )
            }))
            .collect();
        let child = format!(
            "CASE WHEN year < {first} AND district_code <> '' THEN district_code \
             WHEN current_commune_code <> '' THEN current_commune_code \
             ELSE 'unassigned:' || commune_code END"
        );
        for (table, key) in [
            ("review_tally", TALLY_KEY_V2.to_vec()),
            ("review_tally_province", PROVINCE_TALLY_KEY_V2.to_vec()),
        ] {
            let grouped: Vec<&str> = key
                .iter()
                .map(|c| {
                    if *c == "child_unit" {
                        child.as_str()
                    } else {
                        c
                    }
                })
                .collect();
            db.execute_unprepared(&format!("DELETE FROM {table}"))
                .await?;
            db.execute_unprepared(&format!(
                "INSERT INTO {table} ({}, households, {}) SELECT {}, {} FROM review WHERE state = 'certified' GROUP BY {}",
                key.join(", "),
                deprived.join(", "),
                grouped.join(", "),
                counts.join(", "),
                grouped.join(", "),
            ))
            .await?;
        }
        m.commit().await
    }
}
