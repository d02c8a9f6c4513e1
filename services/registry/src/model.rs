//! The registry's tables. Citizen IDs, ethnicity and disability are stored only as
//! ciphertext; `citizen_id_hash` (a keyed HMAC) enforces one person, one household.
//! `names_folded` holds every member's folded name so a name search reads one table.
//! Reviews carry the household's unit, residence and ethnic-minority flag as they
//! were when reviewed, so figures for a year do not move when a household does.

pub mod household {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "household")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub province_code: String,
        pub district_code: Option<String>,
        pub commune_code: String,
        pub current_commune_code: String,
        pub village: String,
        pub residence: String,
        pub registered_on: Date,
        pub head_name: String,
        #[sea_orm(column_type = "Text")]
        pub names_folded: String,
        pub ethnic_minority: bool,
        pub state: String,
        pub archive_reason: Option<String>,
        pub version: i64,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod member {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "member")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub household_id: String,
        pub position: i32,
        pub full_name: String,
        pub birth_date: Date,
        pub sex: String,
        pub relation: String,
        pub ethnicity_enc: String,
        pub citizen_id_enc: Option<String>,
        pub citizen_id_hash: Option<String>,
        pub disability_enc: String,
        pub health_insurance: String,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod review {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "review")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub household_id: String,
        pub year: i32,
        pub revision: i32,
        pub kind: String,
        pub state: String,
        pub standard_code: String,
        pub province_code: String,
        /// Empty for units that have no district (after the 2025 reform).
        pub district_code: String,
        pub commune_code: String,
        pub current_commune_code: String,
        pub residence: String,
        /// The area whose line the review was classified under: the
        /// household's residence unless the reform or the reviewer changed it.
        /// (A peer's review journaled before it existed: its residence.)
        #[serde(default)]
        pub area: String,
        pub area_reason: Option<String>,
        pub ethnic_minority: bool,
        pub income: Option<i64>,
        pub score_a: Option<i32>,
        pub deprived_bits: i32,
        pub deprivation_count: i32,
        pub class: String,
        pub transition: String,
        pub mpi_poor: bool,
        pub household_version: i64,
        pub reviewer: String,
        pub reviewed_on: Option<Date>,
        pub meeting_date: Option<Date>,
        pub agreement_percent: Option<i32>,
        pub approved_by: Option<String>,
        pub approved_at: Option<ChronoDateTimeUtc>,
        pub decision_number: Option<String>,
        pub decision_date: Option<Date>,
        pub certified_by: Option<String>,
        pub certified_at: Option<ChronoDateTimeUtc>,
        pub supersedes: Option<String>,
        pub version: i64,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Earlier versions of households, sealed whole: the rows as they were.
pub mod household_version {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "household_version")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub household_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: i64,
        pub sealed: Vec<u8>,
        pub recorded_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod import_key {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
    #[sea_orm(table_name = "import_key")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub external_key: String,
        pub household_id: String,
        pub created_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod standard_set {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// The poverty standards set at the province, replacing the bundled file;
    /// one row, `id` = `current`.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "poverty_standard_set")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub province_code: String,
        #[sea_orm(column_type = "Text")]
        pub standards_toml: String,
        pub version: i64,
        pub updated_at: ChronoDateTimeUtc,
        pub updated_by: String,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod village_assignment {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// Which part of a split commune one of its villages joined; `id` is
    /// `{commune_code}/{village_key}`. An empty `successor_code` is an
    /// assignment taken back: kept, so the change travels like any other.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "village_assignment")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub province_code: String,
        pub commune_code: String,
        /// The village as matched (`text::search_key`).
        pub village_key: String,
        pub village: String,
        pub successor_code: String,
        pub version: i64,
        pub updated_at: ChronoDateTimeUtc,
        pub updated_by: String,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
