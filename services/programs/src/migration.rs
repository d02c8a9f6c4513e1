//! Schema of the programmes database, journal first.

use sea_orm_migration::prelude::*;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(sustain_platform::journal::migration::CreateJournal),
            Box::new(CreateLivelihood),
            Box::new(CreateTraining),
            Box::new(CreateOutreach),
            Box::new(CreateSupport),
            Box::new(CreateEnrolmentTallies),
            Box::new(sustain_sync::migration::CreateSync),
            Box::new(sustain_platform::reseal::CreateResealProgress),
            Box::new(CreateSectorReports),
        ]
    }
}

fn timestamps(t: &mut TableCreateStatement) -> &mut TableCreateStatement {
    t.col(ColumnDef::new("state").string().not_null())
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
}

fn placement(t: &mut TableCreateStatement) -> &mut TableCreateStatement {
    t.col(ColumnDef::new("province_code").string().not_null())
        .col(ColumnDef::new("district_code").string().null())
        .col(ColumnDef::new("commune_code").string().null())
        .col(ColumnDef::new("current_commune_code").string().null())
}

/// Lists filter by one unit column and page by id.
async fn placement_indexes(m: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    for column in [
        "province_code",
        "district_code",
        "commune_code",
        "current_commune_code",
    ] {
        m.create_index(
            Index::create()
                .name(format!("{table}_{column}_id"))
                .table(table.to_owned())
                .col(column)
                .col("id")
                .to_owned(),
        )
        .await?;
    }
    Ok(())
}

#[derive(Debug)]
struct CreateLivelihood;

impl MigrationName for CreateLivelihood {
    fn name(&self) -> &str {
        "m20261129_000010_create_livelihood"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for CreateLivelihood {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            timestamps(
                Table::create()
                    .table("programme_item")
                    .col(ColumnDef::new("code").string().not_null().primary_key())
                    .col(ColumnDef::new("parent_code").string().null())
                    .col(ColumnDef::new("level").string().not_null())
                    .col(ColumnDef::new("name").string().not_null())
                    .col(ColumnDef::new("owner_unit").string().not_null())
                    .col(ColumnDef::new("seeded").boolean().not_null())
                    .col(ColumnDef::new("project_code").string().null()),
            )
            .to_owned(),
        )
        .await?;

        m.create_table(
            timestamps(placement(
                Table::create()
                    .table("livelihood_model")
                    .col(ColumnDef::new("id").string().not_null().primary_key())
                    .col(ColumnDef::new("project_code").string().not_null())
                    .col(ColumnDef::new("project_root").string().not_null())
                    .col(ColumnDef::new("name").string().not_null())
                    .col(ColumnDef::new("model_type").string().not_null())
                    .col(ColumnDef::new("unit_code").string().not_null()),
            ))
            .col(ColumnDef::new("commune_codes").text().not_null())
            .col(ColumnDef::new("start_date").date().not_null())
            .col(ColumnDef::new("end_date").date().null())
            .col(ColumnDef::new("start_year").integer().not_null())
            .col(ColumnDef::new("end_year").integer().not_null())
            .col(ColumnDef::new("budget_vnd").big_integer().not_null())
            .col(ColumnDef::new("jobs_created").integer().not_null())
            .to_owned(),
        )
        .await?;
        placement_indexes(m, "livelihood_model").await?;

        m.create_table(
            timestamps(placement(
                Table::create()
                    .table("enrolment")
                    .col(ColumnDef::new("id").string().not_null().primary_key())
                    .col(ColumnDef::new("model_id").string().not_null())
                    .col(ColumnDef::new("project_code").string().not_null())
                    .col(ColumnDef::new("project_root").string().not_null())
                    .col(ColumnDef::new("household_id").string().not_null())
                    .col(ColumnDef::new("enrolled_on").date().not_null())
                    .col(ColumnDef::new("year").integer().not_null())
                    .col(ColumnDef::new("class").string().not_null())
                    .col(ColumnDef::new("review_year").integer().not_null()),
            ))
            .col(ColumnDef::new("ethnic_minority").boolean().not_null())
            .col(ColumnDef::new("income_before_vnd").big_integer().null())
            .col(ColumnDef::new("income_after_vnd").big_integer().null())
            .col(ColumnDef::new("yearly_profit_vnd").big_integer().null())
            .col(ColumnDef::new("measured_on").date().null())
            .to_owned(),
        )
        .await?;
        placement_indexes(m, "enrolment").await?;
        // The province summary reads every enrolment of a period: this index
        // holds all it reads, in the order it groups by, so it never touches
        // the table (docs/benchmarks.md).
        m.create_index(
            Index::create()
                .name("enrolment_summary")
                .table("enrolment")
                .col("province_code")
                .col("state")
                .col("project_root")
                .col("class")
                .col("household_id")
                .col("year")
                .col("measured_on")
                .col("income_before_vnd")
                .col("income_after_vnd")
                .col("yearly_profit_vnd")
                .to_owned(),
        )
        .await?;
        // One enrolment of a household per model, archived or not.
        m.create_index(
            Index::create()
                .name("enrolment_model_household")
                .table("enrolment")
                .col("model_id")
                .col("household_id")
                .unique()
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

#[derive(Debug)]
struct CreateTraining;

impl MigrationName for CreateTraining {
    fn name(&self) -> &str {
        "m20261129_000011_create_training"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for CreateTraining {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            timestamps(placement(
                Table::create()
                    .table("course")
                    .col(ColumnDef::new("id").string().not_null().primary_key())
                    .col(ColumnDef::new("project_code").string().not_null())
                    .col(ColumnDef::new("kind").string().not_null())
                    .col(ColumnDef::new("name").string().not_null())
                    .col(ColumnDef::new("unit_code").string().not_null()),
            ))
            .col(ColumnDef::new("start_date").date().not_null())
            .col(ColumnDef::new("end_date").date().null())
            .col(ColumnDef::new("start_year").integer().not_null())
            .col(ColumnDef::new("official_participants").integer().not_null())
            .to_owned(),
        )
        .await?;
        placement_indexes(m, "course").await?;
        m.create_table(
            timestamps(placement(
                Table::create()
                    .table("trainee")
                    .col(ColumnDef::new("id").string().not_null().primary_key())
                    .col(ColumnDef::new("course_id").string().not_null())
                    .col(ColumnDef::new("course_kind").string().not_null())
                    .col(ColumnDef::new("year").integer().not_null())
                    .col(ColumnDef::new("household_id").string().not_null())
                    .col(ColumnDef::new("member_id").string().not_null())
                    .col(ColumnDef::new("class").string().not_null())
                    .col(ColumnDef::new("unit_code").string().not_null()),
            ))
            .col(ColumnDef::new("completed").boolean().not_null())
            .col(ColumnDef::new("employment").string().not_null())
            .col(ColumnDef::new("destination_country").string().null())
            .col(ColumnDef::new("employed_on").date().null())
            .to_owned(),
        )
        .await?;
        placement_indexes(m, "trainee").await?;
        // A member attends a course once.
        m.create_index(
            Index::create()
                .name("trainee_course_member")
                .table("trainee")
                .col("course_id")
                .col("member_id")
                .unique()
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

#[derive(Debug)]
struct CreateOutreach;

impl MigrationName for CreateOutreach {
    fn name(&self) -> &str {
        "m20261129_000012_create_outreach"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for CreateOutreach {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            timestamps(placement(
                Table::create()
                    .table("communication_activity")
                    .col(ColumnDef::new("id").string().not_null().primary_key())
                    .col(ColumnDef::new("project_code").string().not_null())
                    .col(ColumnDef::new("kind").string().not_null())
                    .col(ColumnDef::new("title").string().not_null())
                    .col(ColumnDef::new("unit_code").string().not_null()),
            ))
            .col(ColumnDef::new("held_on").date().not_null())
            .col(ColumnDef::new("year").integer().not_null())
            .col(ColumnDef::new("count").big_integer().not_null())
            .col(ColumnDef::new("participants").big_integer().not_null())
            .to_owned(),
        )
        .await?;
        placement_indexes(m, "communication_activity").await?;
        m.create_table(
            timestamps(placement(
                Table::create()
                    .table("inspection")
                    .col(ColumnDef::new("id").string().not_null().primary_key())
                    .col(ColumnDef::new("project_code").string().not_null())
                    .col(ColumnDef::new("inspecting_body").string().not_null())
                    .col(ColumnDef::new("unit_code").string().not_null()),
            ))
            .col(ColumnDef::new("held_on").date().not_null())
            .col(ColumnDef::new("year").integer().not_null())
            .col(ColumnDef::new("findings").text().not_null())
            .col(ColumnDef::new("follow_ups").text().not_null())
            .col(ColumnDef::new("open_follow_ups").integer().not_null())
            .col(ColumnDef::new("next_due_on").date().null())
            .to_owned(),
        )
        .await?;
        placement_indexes(m, "inspection").await?;
        Ok(())
    }
}

#[derive(Debug)]
struct CreateSupport;

impl MigrationName for CreateSupport {
    fn name(&self) -> &str {
        "m20261129_000013_create_support"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for CreateSupport {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            timestamps(placement(
                Table::create()
                    .table("support")
                    .col(ColumnDef::new("id").string().not_null().primary_key())
                    .col(ColumnDef::new("household_id").string().not_null())
                    .col(ColumnDef::new("member_id").string().null())
                    .col(ColumnDef::new("project_code").string().null())
                    .col(ColumnDef::new("kind").string().not_null())
                    .col(ColumnDef::new("provided_on").date().not_null())
                    .col(ColumnDef::new("year").integer().not_null())
                    .col(ColumnDef::new("class").string().not_null())
                    .col(ColumnDef::new("unit_code").string().not_null()),
            ))
            .col(ColumnDef::new("details_enc").text().not_null())
            .col(ColumnDef::new("amount_vnd").big_integer().not_null())
            .col(ColumnDef::new("work").string().null())
            .col(ColumnDef::new("completed_on").date().null())
            .col(ColumnDef::new("age_months").integer().null())
            .col(ColumnDef::new("underweight").string().null())
            .col(ColumnDef::new("stunted").string().null())
            .col(ColumnDef::new("birth_date").date().null())
            .col(ColumnDef::new("sex").string().null())
            .to_owned(),
        )
        .await?;
        placement_indexes(m, "support").await?;
        m.create_index(
            Index::create()
                .name("support_household")
                .table("support")
                .col("household_id")
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

#[derive(Debug)]
struct CreateEnrolmentTallies;

impl MigrationName for CreateEnrolmentTallies {
    fn name(&self) -> &str {
        "m20261129_000014_create_enrolment_tallies"
    }
}

/// Unit columns of a tally key: never NULL ("" for a missing level), so
/// they can be part of the primary key.
fn tally_place(t: &mut TableCreateStatement) -> &mut TableCreateStatement {
    t.col(ColumnDef::new("province_code").string().not_null())
        .col(ColumnDef::new("district_code").string().not_null())
        .col(ColumnDef::new("commune_code").string().not_null())
        .col(ColumnDef::new("current_commune_code").string().not_null())
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for CreateEnrolmentTallies {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let place = [
            "province_code",
            "district_code",
            "commune_code",
            "current_commune_code",
        ];
        let mut sums = Table::create();
        sums.table("enrolment_tally");
        tally_place(&mut sums)
            .col(ColumnDef::new("project_root").string().not_null())
            .col(ColumnDef::new("class").string().not_null())
            .col(ColumnDef::new("year").integer().not_null());
        for count in [
            "enrolments",
            "measured",
            "with_base",
            "change_ppm",
            "income_up",
            "profit_in_target",
        ] {
            sums.col(ColumnDef::new(count).big_integer().not_null());
        }
        let mut key = Index::create();
        key.name("enrolment_tally_key");
        for c in place.iter().chain(&["project_root", "class", "year"]) {
            key.col(*c);
        }
        sums.primary_key(&mut key);
        m.create_table(sums.to_owned()).await?;

        let mut reach = Table::create();
        reach.table("enrolment_reach");
        tally_place(&mut reach)
            .col(ColumnDef::new("project_root").string().not_null())
            .col(ColumnDef::new("class").string().not_null())
            .col(ColumnDef::new("years_mask").big_integer().not_null())
            .col(ColumnDef::new("households").big_integer().not_null());
        let mut key = Index::create();
        key.name("enrolment_reach_key");
        for c in place.iter().chain(&["project_root", "class", "years_mask"]) {
            key.col(*c);
        }
        reach.primary_key(&mut key);
        m.create_table(reach.to_owned()).await?;

        let mut households = Table::create();
        households
            .table("enrolment_reach_household")
            .col(ColumnDef::new("household_id").string().not_null());
        tally_place(&mut households)
            .col(ColumnDef::new("project_root").string().not_null())
            .col(ColumnDef::new("class").string().not_null())
            .col(ColumnDef::new("years_mask").big_integer().not_null());
        let mut key = Index::create();
        key.name("enrolment_reach_household_key");
        for c in ["household_id"]
            .iter()
            .chain(&place)
            .chain(&["project_root", "class"])
        {
            key.col(*c);
        }
        households.primary_key(&mut key);
        m.create_table(households.to_owned()).await?;

        // The reach is recomputed from a household's enrolments.
        m.create_index(
            Index::create()
                .name("enrolment_household")
                .table("enrolment")
                .col("household_id")
                .col("state")
                .to_owned(),
        )
        .await?;
        // The summary no longer reads the enrolments; this index only slowed
        // their writes.
        m.drop_index(
            Index::drop()
                .name("enrolment_summary")
                .table("enrolment")
                .to_owned(),
        )
        .await?;
        crate::store::tally::rebuild(m.get_connection())
            .await
            .map_err(|e| DbErr::Custom(format!("building the enrolment tallies: {e}")))?;
        Ok(())
    }
}

#[derive(Debug)]
struct CreateSectorReports;

impl MigrationName for CreateSectorReports {
    fn name(&self) -> &str {
        "m20261207_000015_create_sector_reports"
    }
}

#[async_trait::async_trait]
#[allow(elided_lifetimes_in_paths)]
impl MigrationTrait for CreateSectorReports {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let mut t = Table::create();
        t.table("sector_report")
            .col(ColumnDef::new("id").string().not_null().primary_key())
            .col(ColumnDef::new("kind").string().not_null())
            .col(ColumnDef::new("unit_code").string().not_null());
        placement(&mut t)
            .col(ColumnDef::new("year").integer().not_null())
            .col(ColumnDef::new("source").string().not_null());
        for figure in [
            "vocational_trainees",
            "workforce",
            "trained_workers",
            "new_jobs",
            "workers_abroad",
            "cards_issued",
        ] {
            t.col(ColumnDef::new(figure).big_integer().not_null());
        }
        m.create_table(timestamps(&mut t).to_owned()).await?;
        placement_indexes(m, "sector_report").await?;
        // One live report per unit, year and kind is looked up on create.
        m.create_index(
            Index::create()
                .name("sector_report_unit_year")
                .table("sector_report")
                .col("unit_code")
                .col("year")
                .col("kind")
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
