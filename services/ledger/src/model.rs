//! The ledger's tables. Accounts keep their four running sums, updated in the
//! transaction that moves money; transfers are never changed but for the
//! resolution of a pending one; the entries chain every change by hash.

pub mod account {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "ledger_account")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub kind: String,
        pub source: String,
        pub name: String,
        /// "" for a source.
        pub project_code: String,
        /// 0 for a source.
        pub year: i32,
        pub unit_code: String,
        pub province_code: String,
        pub district_code: Option<String>,
        pub commune_code: Option<String>,
        pub current_commune_code: Option<String>,
        pub guarded: bool,
        /// Expenditure: "", activity, model or household_support.
        pub purpose: String,
        /// The programme record the expenditure is for, or "".
        pub reference_id: String,
        pub debits_pending: i64,
        pub debits_posted: i64,
        pub credits_pending: i64,
        pub credits_posted: i64,
        /// The journal entry that created it.
        pub sequence: i64,
        pub created_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod transfer {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "ledger_transfer")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub batch_id: String,
        pub leg: i32,
        pub debit_account_id: String,
        pub credit_account_id: String,
        pub amount: i64,
        pub pending: bool,
        pub reverses_id: Option<String>,
        pub value_date: Date,
        pub memo: String,
        /// pending, posted or voided.
        pub state: String,
        /// When it counted as posted: the value date, or the day a pending
        /// transfer was posted.
        pub posted_on: Option<Date>,
        pub resolved_on: Option<Date>,
        pub sequence: i64,
        pub resolve_sequence: Option<i64>,
        pub created_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// One link of the hash chain: what changed (`kind`, `record_id`) and the
/// hash over the previous link and the change's canonical bytes, which are
/// rebuilt from the stored rows when the chain is verified.
pub mod entry {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "ledger_entry")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub sequence: i64,
        /// account, transfer, post or void.
        pub kind: String,
        pub record_id: String,
        pub hash: String,
        pub recorded_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// The chain's head, one row: every write locks it first, so writes append
/// to the chain one after the other.
pub mod head {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "ledger_head")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub sequence: i64,
        pub hash: String,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// An entry of another instance's chain, as it arrived; `verified` when it
/// chained on the entry before it.
pub mod replica_entry {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
    #[sea_orm(table_name = "ledger_replica_entry")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub instance: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub sequence: i64,
        pub kind: String,
        pub record_id: String,
        pub hash: String,
        /// The account or transfer row after the change, as JSON.
        #[sea_orm(column_type = "Text")]
        pub record: String,
        pub verified: bool,
        pub received_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Per instance below: the last entry of its chain that verified here, and
/// the alarm raised when an entry did not, or when the instance's own chain
/// stopped agreeing with the copy held here.
pub mod replica_head {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ledger_replica_head")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub instance: String,
        pub sequence: i64,
        pub hash: String,
        #[sea_orm(column_type = "Text")]
        pub alarm: String,
        pub alarm_at: Option<ChronoDateTimeUtc>,
        pub checked_at: Option<ChronoDateTimeUtc>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
