//! The registry's tables. Citizen IDs, ethnicity and disability are stored only as
//! ciphertext; `citizen_id_hash` (a keyed HMAC) enforces one person, one household.
//! `names_folded` holds every member's folded name so a name search reads one table.

pub mod household {
    use sea_orm::entity::prelude::*;
    use serde::Serialize;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
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
    use serde::Serialize;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
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
