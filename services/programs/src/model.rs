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
