//! Tables of the journal, shared by every service's database.

pub mod audit_log {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub recorded_at: ChronoDateTimeUtc,
        pub actor: String,
        pub role: String,
        pub action: String,
        pub record_type: String,
        pub record_id: String,
        pub owner_unit: String,
        pub version: i64,
        pub state_hash: String,
        pub request_id: String,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod outbox {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub recorded_at: ChronoDateTimeUtc,
        pub record_type: String,
        pub record_id: String,
        pub owner_unit: String,
        pub version: i64,
        pub action: String,
        #[sea_orm(column_type = "Text")]
        pub state: String,
        /// Empty for a change made here; the peer's name for one applied from it.
        pub origin: String,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod idempotency {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "idempotency")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub fingerprint: String,
        pub response: Vec<u8>,
        pub recorded_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
