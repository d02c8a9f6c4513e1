//! Sealing again, with the current keys, what was sealed or hashed with keys
//! rotated away from (`crypto.previous_*`). Each service names its tables; a
//! table is walked in key order in batches, and each batch is written in one
//! transaction together with the job's progress, so a reseal stopped at any
//! point, `kill -9` included, goes on from where it stood when run again and
//! never writes a row twice over or skips one.

use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, Set};

use crate::error::ServiceError;
use crate::journal::idempotency;
use sustain_db::WriteTxn;

pub mod reseal_progress {
    use sea_orm::entity::prelude::*;

    /// How far a reseal of one table has come.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reseal_progress")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub job: String,
        /// The key of the last row done; empty before the first.
        pub last_key: String,
        pub done: i64,
        pub changed: i64,
        pub finished: bool,
        pub updated_at: ChronoDateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// One batch of a table: the key of its last row (`None`: nothing was left)
/// and how many rows it saw and wrote again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub last_key: Option<String>,
    pub seen: i64,
    pub changed: i64,
}

/// A table whose sealed values a reseal walks.
#[tonic::async_trait]
pub trait Table: Send + Sync {
    /// The job's name, e.g. `member`.
    fn name(&self) -> &'static str;
    /// Rows in all, for progress.
    async fn count(&self, db: &DatabaseConnection) -> Result<i64, ServiceError>;
    /// Seals again the rows after `after` (in key order), at most `limit`.
    async fn step(&self, txn: &WriteTxn, after: &str, limit: u64) -> Result<Step, ServiceError>;
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub job: &'static str,
    pub done: i64,
    pub changed: i64,
    pub total: i64,
    pub finished: bool,
}

/// Runs every table's job to its end (a finished one is not run again until
/// `restart`), reporting after each batch.
pub async fn run(
    db: &DatabaseConnection,
    tables: &[&dyn Table],
    batch: u64,
    restart: bool,
    mut report: impl FnMut(&Progress),
) -> Result<Vec<Progress>, ServiceError> {
    let mut all = vec![];
    for table in tables {
        let job = table.name();
        let total = table.count(db).await?;
        if restart {
            reseal_progress::Entity::delete_by_id(job.to_owned())
                .exec(db)
                .await?;
        }
        loop {
            let txn = WriteTxn::begin(db).await?;
            let held = reseal_progress::Entity::find_by_id(job.to_owned())
                .one(&txn)
                .await?;
            let (after, done, changed) = held.as_ref().map_or((String::new(), 0, 0), |p| {
                (p.last_key.clone(), p.done, p.changed)
            });
            if held.as_ref().is_some_and(|p| p.finished) {
                let progress = Progress {
                    job,
                    done,
                    changed,
                    total,
                    finished: true,
                };
                report(&progress);
                all.push(progress);
                break;
            }
            let step = table.step(&txn, &after, batch.max(1)).await?;
            let finished = step.last_key.is_none();
            let row = reseal_progress::ActiveModel {
                job: Set(job.to_owned()),
                last_key: Set(step.last_key.clone().unwrap_or(after)),
                done: Set(done + step.seen),
                changed: Set(changed + step.changed),
                finished: Set(finished),
                updated_at: Set(chrono::Utc::now()),
            };
            if held.is_some() {
                row.update(&txn).await?;
            } else {
                row.insert(&txn).await?;
            }
            txn.commit().await?;
            report(&Progress {
                job,
                done: done + step.seen,
                changed: changed + step.changed,
                total,
                finished,
            });
        }
    }
    Ok(all)
}

/// The stored answers of retried requests (`idempotency`), each sealed with
/// its key as context: every service keeps them.
#[derive(Debug, Clone)]
pub struct Answers(pub crate::crypto::FieldCipher);

#[tonic::async_trait]
impl Table for Answers {
    fn name(&self) -> &'static str {
        "idempotency"
    }

    async fn count(&self, db: &DatabaseConnection) -> Result<i64, ServiceError> {
        use sea_orm::PaginatorTrait;
        Ok(idempotency::Entity::find().count(db).await? as i64)
    }

    async fn step(&self, txn: &WriteTxn, after: &str, limit: u64) -> Result<Step, ServiceError> {
        let rows =
            rows_after::<idempotency::Entity>(txn, idempotency::Column::Key, after, limit).await?;
        let mut changed = 0;
        for row in &rows {
            if self.0.seals_current(&row.response, &row.key) {
                continue;
            }
            let plain = self.0.open(&row.response, &row.key).map_err(|e| {
                ServiceError::Internal(format!(
                    "a stored answer does not open with any key held: {e}"
                ))
            })?;
            let mut active = idempotency::ActiveModel::from(row.clone());
            active.response = Set(self.0.seal(&plain, &row.key));
            active.update(txn).await?;
            changed += 1;
        }
        Ok(Step {
            last_key: rows.last().map(|r| r.key.clone()),
            seen: rows.len() as i64,
            changed,
        })
    }
}

pub use migration::CreateResealProgress;

mod migration {
    use sea_orm_migration::prelude::*;

    /// Creates `reseal_progress`; services that seal list it after the journal's.
    #[derive(Debug)]
    pub struct CreateResealProgress;

    impl MigrationName for CreateResealProgress {
        fn name(&self) -> &str {
            "m20261204_100001_create_reseal_progress"
        }
    }

    #[async_trait::async_trait]
    #[allow(elided_lifetimes_in_paths)]
    impl MigrationTrait for CreateResealProgress {
        async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
            m.create_table(
                Table::create()
                    .table("reseal_progress")
                    .if_not_exists()
                    .col(ColumnDef::new("job").string().not_null().primary_key())
                    .col(ColumnDef::new("last_key").string().not_null())
                    .col(ColumnDef::new("done").big_integer().not_null())
                    .col(ColumnDef::new("changed").big_integer().not_null())
                    .col(ColumnDef::new("finished").boolean().not_null())
                    .col(
                        ColumnDef::new("updated_at")
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
        }
    }
}

/// At most `limit` rows of `E` whose `key` sorts after `after`, in key order:
/// a table's next batch when its key is one column.
pub async fn rows_after<E>(
    conn: &impl ConnectionTrait,
    key: E::Column,
    after: &str,
    limit: u64,
) -> Result<Vec<E::Model>, ServiceError>
where
    E: EntityTrait,
{
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
    Ok(E::find()
        .filter(key.gt(after.to_owned()))
        .order_by_asc(key)
        .limit(limit)
        .all(conn)
        .await?)
}
