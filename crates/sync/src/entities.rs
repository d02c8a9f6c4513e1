//! The sync tables, in every service's database.

pub mod sync_cursor {
    use sea_orm::entity::prelude::*;

    /// The last sequence of a peer's feed applied here.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sync_cursor")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub peer: String,
        pub seq: i64,
        pub updated_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod sync_conflict {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sync_conflict")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub peer: String,
        pub record_type: String,
        pub record_id: String,
        pub owner_unit: String,
        pub local_version: i64,
        #[sea_orm(column_type = "Text")]
        pub local_state: String,
        pub incoming_version: i64,
        #[sea_orm(column_type = "Text")]
        pub incoming_state: String,
        pub incoming_action: String,
        pub reason: String,
        pub recorded_at: ChronoDateTimeUtc,
        pub resolution: String,
        pub resolved_by: String,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
