//! The programme tables. Every record that belongs to a place carries its unit
//! and the units above it (`province_code` … `current_commune_code`), so lists and
//! scope checks under any unit are column comparisons (see
//! `sustain_platform::placement`). Enrolments copy the household's place and its
//! class at enrolment from the registry: figures for a year do not move when a
//! household does or is reviewed again.

pub mod programme_item {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "programme_item")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub code: String,
        pub parent_code: Option<String>,
        pub level: String,
        pub name: String,
        /// Empty for the seeded national structure.
        pub owner_unit: String,
        pub seeded: bool,
        /// The Project (NTP-SPR.1 … 7) above the item, if any.
        pub project_code: Option<String>,
        pub state: String,
        pub archive_reason: Option<String>,
        pub version: i64,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod livelihood_model {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "livelihood_model")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub project_code: String,
        /// The Project the catalog item lies under: "NTP-SPR.2" or "NTP-SPR.3".
        pub project_root: String,
        pub name: String,
        pub model_type: String,
        pub unit_code: String,
        pub province_code: String,
        pub district_code: Option<String>,
        pub commune_code: Option<String>,
        pub current_commune_code: Option<String>,
        /// JSON array of commune codes.
        #[sea_orm(column_type = "Text")]
        pub commune_codes: String,
        pub start_date: Date,
        pub end_date: Option<Date>,
        pub start_year: i32,
        /// 9999 while the model has no end date.
        pub end_year: i32,
        pub budget_vnd: i64,
        pub jobs_created: i32,
        pub state: String,
        pub archive_reason: Option<String>,
        pub version: i64,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod enrolment {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "enrolment")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub model_id: String,
        pub project_code: String,
        /// The model's Project (NTP-SPR.2 or NTP-SPR.3).
        pub project_root: String,
        pub household_id: String,
        pub enrolled_on: Date,
        pub year: i32,
        pub class: String,
        pub review_year: i32,
        pub province_code: String,
        pub district_code: Option<String>,
        pub commune_code: Option<String>,
        pub current_commune_code: Option<String>,
        pub ethnic_minority: bool,
        pub income_before_vnd: Option<i64>,
        pub income_after_vnd: Option<i64>,
        pub yearly_profit_vnd: Option<i64>,
        pub measured_on: Option<Date>,
        pub state: String,
        pub archive_reason: Option<String>,
        pub version: i64,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod course {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "course")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub project_code: String,
        pub kind: String,
        pub name: String,
        pub unit_code: String,
        pub province_code: String,
        pub district_code: Option<String>,
        pub commune_code: Option<String>,
        pub current_commune_code: Option<String>,
        pub start_date: Date,
        pub end_date: Option<Date>,
        pub start_year: i32,
        pub official_participants: i32,
        pub state: String,
        pub archive_reason: Option<String>,
        pub version: i64,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod trainee {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "trainee")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub course_id: String,
        /// The course's kind and start year, for filters and summaries.
        pub course_kind: String,
        pub year: i32,
        pub household_id: String,
        pub member_id: String,
        pub class: String,
        /// The household's commune.
        pub unit_code: String,
        pub province_code: String,
        pub district_code: Option<String>,
        pub commune_code: Option<String>,
        pub current_commune_code: Option<String>,
        pub completed: bool,
        pub employment: String,
        pub destination_country: Option<String>,
        pub employed_on: Option<Date>,
        pub state: String,
        pub archive_reason: Option<String>,
        pub version: i64,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod communication_activity {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "communication_activity")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub project_code: String,
        pub kind: String,
        pub title: String,
        pub unit_code: String,
        pub province_code: String,
        pub district_code: Option<String>,
        pub commune_code: Option<String>,
        pub current_commune_code: Option<String>,
        pub held_on: Date,
        pub year: i32,
        pub count: i64,
        pub participants: i64,
        pub state: String,
        pub archive_reason: Option<String>,
        pub version: i64,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod sector_report {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A sector agency's yearly figures for a unit; the columns of the other
    /// kind stay 0.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "sector_report")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// `labour` or `health_insurance`.
        pub kind: String,
        pub unit_code: String,
        pub province_code: String,
        pub district_code: Option<String>,
        pub commune_code: Option<String>,
        pub current_commune_code: Option<String>,
        pub year: i32,
        pub source: String,
        pub vocational_trainees: i64,
        pub workforce: i64,
        pub trained_workers: i64,
        pub new_jobs: i64,
        pub workers_abroad: i64,
        pub cards_issued: i64,
        pub state: String,
        pub archive_reason: Option<String>,
        pub version: i64,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod inspection {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "inspection")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub project_code: String,
        pub inspecting_body: String,
        pub unit_code: String,
        pub province_code: String,
        pub district_code: Option<String>,
        pub commune_code: Option<String>,
        pub current_commune_code: Option<String>,
        pub held_on: Date,
        pub year: i32,
        #[sea_orm(column_type = "Text")]
        pub findings: String,
        /// JSON array of follow-ups (action, due_on, closed_on).
        #[sea_orm(column_type = "Text")]
        pub follow_ups: String,
        pub open_follow_ups: i32,
        /// Earliest due date among the open follow-ups: overdue when past.
        pub next_due_on: Option<Date>,
        pub state: String,
        pub archive_reason: Option<String>,
        pub version: i64,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod support {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// `details` holds the kind's own fields as JSON, encrypted (a child's
    /// measurements are health data); the columns the summaries count stay
    /// in plain columns beside it.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "support")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub household_id: String,
        pub member_id: Option<String>,
        pub project_code: Option<String>,
        pub kind: String,
        pub provided_on: Date,
        pub year: i32,
        pub class: String,
        pub unit_code: String,
        pub province_code: String,
        pub district_code: Option<String>,
        pub commune_code: Option<String>,
        pub current_commune_code: Option<String>,
        pub details_enc: String,
        pub amount_vnd: i64,
        /// Housing: build or renovate.
        pub work: Option<String>,
        pub completed_on: Option<Date>,
        /// Nutrition: age at the check and the derived deficits.
        pub age_months: Option<i32>,
        pub underweight: Option<String>,
        pub stunted: Option<String>,
        /// Nutrition: the child's birth date and sex as the registry had them,
        /// so a corrected check is re-derived without asking again.
        pub birth_date: Option<Date>,
        pub sex: Option<String>,
        pub state: String,
        pub archive_reason: Option<String>,
        pub version: i64,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Running sums of enrolments by placement, Project, class and year, kept in
/// the transaction that writes the enrolments (`livelihood::tally`). Unit
/// columns hold "" where the enrolment has none.
pub mod enrolment_tally {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "enrolment_tally")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub province_code: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub district_code: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub commune_code: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub current_commune_code: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub project_root: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub class: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub year: i32,
        pub enrolments: i64,
        pub measured: i64,
        pub with_base: i64,
        pub change_ppm: i64,
        pub income_up: i64,
        pub profit_in_target: i64,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// The years (bit `year − 2000`) in which a household had an active
/// enrolment, per placement, Project and class; "" in `project_root` or
/// `class` means any. Read only to know what a change moves in
/// [`enrolment_reach`].
pub mod enrolment_reach_household {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "enrolment_reach_household")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub household_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub province_code: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub district_code: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub commune_code: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub current_commune_code: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub project_root: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub class: String,
        pub years_mask: i64,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// How many households share one placement, Project, class and set of
/// enrolment years: a period's distinct households are the sum over the
/// masks that meet it, with no DISTINCT over the enrolments.
pub mod enrolment_reach {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "enrolment_reach")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub province_code: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub district_code: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub commune_code: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub current_commune_code: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub project_root: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub class: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub years_mask: i64,
        pub households: i64,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
