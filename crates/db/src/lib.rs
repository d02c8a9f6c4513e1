//! Database connection: a SQLite file by default, PostgreSQL for a `postgres://`
//! URL. Writes go through [`begin_write`], which on SQLite takes the write lock at
//! BEGIN (IMMEDIATE) so concurrent writers queue on the busy timeout instead of
//! failing when a read transaction tries to upgrade.

mod copy;
mod sqlite;
mod tally;

use std::sync::Arc;
use std::time::Duration;

pub use copy::{PgWrite, WriteTxn};
pub use sqlite::{Checkpointer, SqliteRows, SqliteWrite};
pub use tally::Tally;

use sea_orm::sqlx;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    AccessMode, ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, IsolationLevel, RuntimeErr, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
};
use sea_query_sqlx::SqlxValues;

/// Opens a pool for `url`, creating the SQLite file's directory when needed.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        if let Some(dir) = sqlite_path(url).and_then(|p| p.parent().map(ToOwned::to_owned))
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(&dir)
                .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", dir.display())))?;
        }
        options.max_connections(4).min_connections(1);
        options.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true)
                // 64 MiB of page cache per connection (default 2 MiB): the indexes
                // of a province's households stay in memory; bulk import of 64k
                // households 23.5 → 20.3 s (docs/benchmarks.md).
                .pragma("cache_size", "-65536")
        });
    } else {
        options.max_connections(16).min_connections(1);
        // sqlx prepares every statement; after five runs PostgreSQL may switch to
        // a generic plan that cannot see a LIKE pattern or how selective a unit
        // is, and walks a whole district (measured: name search 58 ms → see
        // docs/benchmarks.md). Filters here vary too much for generic plans.
        options.map_sqlx_postgres_opts(|o| o.options([("plan_cache_mode", "force_custom_plan")]));
    }
    Database::connect(options).await
}

fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Begins a transaction that will write.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let options = TransactionOptions {
        isolation_level: None,
        access_mode: None,
        sqlite_transaction_mode: (db.get_database_backend() == DbBackend::Sqlite)
            .then_some(SqliteTransactionMode::Immediate),
    };
    db.begin_with_options(options).await
}

/// Begins a read-only transaction whose reads all see one snapshot: on
/// PostgreSQL `REPEATABLE READ READ ONLY`; on SQLite (WAL) a deferred
/// transaction, which keeps the snapshot of its first read.
pub async fn begin_snapshot(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let options = match db.get_database_backend() {
        DbBackend::Postgres => TransactionOptions {
            isolation_level: Some(IsolationLevel::RepeatableRead),
            access_mode: Some(AccessMode::ReadOnly),
            sqlite_transaction_mode: None,
        },
        _ => TransactionOptions {
            isolation_level: None,
            access_mode: None,
            sqlite_transaction_mode: None,
        },
    };
    db.begin_with_options(options).await
}

/// Refreshes planner statistics, at start-up and after a bulk load: SQLite's
/// recommended `PRAGMA optimize`; on PostgreSQL an `ANALYZE` (sampled, so cheap
/// on large tables), because autovacuum analyzes a freshly loaded table only
/// later and until then the planner guesses: a province's under-five count
/// took over 5 s right after the demo load, 29 ms after ANALYZE.
pub async fn optimize(db: &DatabaseConnection) -> Result<(), DbErr> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => "PRAGMA optimize=0x10002",
        DbBackend::Postgres => "ANALYZE",
        _ => return Ok(()),
    };
    sea_orm::ConnectionTrait::execute_unprepared(db, sql).await?;
    Ok(())
}

/// True when `e` is a unique-constraint violation.
pub fn is_unique_violation(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// A connection that bulk rows are written through: by `COPY` on a
/// [`PgWrite`] (a [`WriteTxn`] on PostgreSQL), by SQLite's own prepared
/// statements on a [`SqliteWrite`], by INSERT statements on anything else.
pub trait Bulk: sea_orm::ConnectionTrait {
    /// The transaction to COPY into, when this is one.
    fn copier(&self) -> Option<&PgWrite> {
        None
    }

    /// The SQLite transaction to write [`SqliteRows`] through, when this is one.
    fn sqlite_writer(&self) -> Option<&SqliteWrite> {
        None
    }
}

/// Inserts rows built ahead ([`SqliteRows`]) on SQLite, table after table in
/// order: on a [`SqliteWrite`] through SQLite's prepared statements, one per
/// table, run once a row; on another SQLite connection as multi-row INSERTs.
pub async fn insert_built(conn: &impl Bulk, tables: Vec<SqliteRows>) -> Result<(), DbErr> {
    if let Some(writer) = conn.sqlite_writer() {
        return writer.insert_built(tables).await;
    }
    if conn.get_database_backend() != DbBackend::Sqlite {
        return Err(DbErr::Custom(
            "rows built for SQLite cannot be written to another database".into(),
        ));
    }
    for table in tables {
        run_all(conn, table.statements()).await?;
    }
    Ok(())
}

fn exec_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e)))
}

fn query_err(e: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)))
}

/// `stmt` as a sqlx query, its values bound as sea-orm binds them.
fn query<DB>(stmt: &Statement) -> sqlx::query::Query<'_, DB, SqlxValues>
where
    DB: sqlx::Database,
    SqlxValues: for<'q> sqlx::IntoArguments<DB>,
{
    let values = stmt.values.clone().unwrap_or(sea_orm::Values(vec![]));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values))
}

/// sea-orm's `ConnectionTrait` for a type holding a sqlx transaction in a
/// `txn: Mutex<Transaction<'static, DB>>`, so sea-orm code runs on it as on
/// its own transactions.
macro_rules! sqlx_transaction_connection {
    ($ty:ty, $backend:expr) => {
        #[async_trait::async_trait]
        impl sea_orm::ConnectionTrait for $ty {
            fn get_database_backend(&self) -> sea_orm::DbBackend {
                $backend
            }

            async fn execute_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
                let mut txn = self.txn.lock().await;
                super::query(&stmt)
                    .execute(&mut **txn)
                    .await
                    .map(Into::into)
                    .map_err(super::exec_err)
            }

            async fn execute_unprepared(
                &self,
                sql: &str,
            ) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
                let mut txn = self.txn.lock().await;
                sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut **txn)
                    .await
                    .map(Into::into)
                    .map_err(super::exec_err)
            }

            async fn query_one_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<Option<sea_orm::QueryResult>, sea_orm::DbErr> {
                let mut txn = self.txn.lock().await;
                super::query(&stmt)
                    .fetch_optional(&mut **txn)
                    .await
                    .map(|row| row.map(Into::into))
                    .map_err(super::query_err)
            }

            async fn query_all_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr> {
                let mut txn = self.txn.lock().await;
                super::query(&stmt)
                    .fetch_all(&mut **txn)
                    .await
                    .map(|rows| rows.into_iter().map(Into::into).collect())
                    .map_err(super::query_err)
            }
        }
    };
}
use sqlx_transaction_connection;

impl Bulk for DatabaseConnection {}
impl Bulk for DatabaseTransaction {}
impl Bulk for PgWrite {
    fn copier(&self) -> Option<&PgWrite> {
        Some(self)
    }
}
impl Bulk for SqliteWrite {
    fn sqlite_writer(&self) -> Option<&SqliteWrite> {
        Some(self)
    }
}

/// Inserts many rows of entity `E` at once: the one bulk write every path
/// (import, catch-up, demo) goes through. Through a [`PgWrite`] with `COPY`;
/// through a [`SqliteWrite`] by SQLite's own prepared statement, run once a
/// row. Otherwise on PostgreSQL the rows travel as one JSON parameter expanded
/// by `json_populate_recordset`: one parameter instead of one per value, which
/// both the driver and the server handle far faster for thousands of rows
/// than a multi-row VALUES list (measured in docs/benchmarks.md); on SQLite,
/// multi-row INSERTs. `skip` names columns the database fills itself (an
/// auto-increment id).
pub async fn insert_rows<E>(
    conn: &impl Bulk,
    rows: Vec<E::Model>,
    skip: &[&str],
) -> Result<(), DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: serde::Serialize + sea_orm::IntoActiveModel<E::ActiveModel>,
{
    if let Some(writer) = conn.sqlite_writer() {
        if rows.is_empty() {
            return Ok(());
        }
        return writer
            .insert_built(vec![SqliteRows::of_except::<E>(rows, skip)])
            .await;
    }
    insert_via::<E>(conn, conn.copier(), rows, skip).await
}

/// [`insert_rows`] for a caller that holds the connection and the COPY
/// transaction apart (`copier` is `None` off PostgreSQL's [`WriteTxn`]).
pub async fn insert_via<E>(
    conn: &impl sea_orm::ConnectionTrait,
    copier: Option<&PgWrite>,
    rows: Vec<E::Model>,
    skip: &[&str],
) -> Result<(), DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: serde::Serialize + sea_orm::IntoActiveModel<E::ActiveModel>,
{
    match copier {
        Some(pg) => pg.copy_rows::<E>(&rows, skip).await.map(|_| ()),
        None => insert_statements::<E>(conn, rows, skip).await,
    }
}

/// [`insert_rows`] by INSERT statements, on any connection.
pub async fn insert_statements<E>(
    conn: &impl sea_orm::ConnectionTrait,
    rows: Vec<E::Model>,
    skip: &[&str],
) -> Result<(), DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: serde::Serialize + sea_orm::IntoActiveModel<E::ActiveModel>,
{
    use sea_orm::{IdenStatic, Iterable};
    if rows.is_empty() {
        return Ok(());
    }
    let columns: Vec<&str> = E::Column::iter()
        .map(|c| c.as_str())
        .filter(|c| !skip.contains(c))
        .collect();
    match conn.get_database_backend() {
        DbBackend::Postgres => {
            let table = sea_orm::EntityName::table_name(&E::default()).to_owned();
            let list = columns.join(", ");
            let json = serde_json::to_string(&rows)
                .map_err(|e| DbErr::Custom(format!("cannot serialise {table} rows: {e}")))?;
            let sql = format!(
                "INSERT INTO {table} ({list}) SELECT {list} FROM json_populate_recordset(NULL::{table}, $1::json)"
            );
            conn.execute_raw(sea_orm::Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                [json.into()],
            ))
            .await?;
        }
        // Multi-row INSERTs: SQLite binds values cheaply (a JSON parameter
        // expanded with json_each/json_extract measured slower here, one
        // parse per column).
        _ => run_all(conn, SqliteRows::of_except::<E>(rows, skip).statements()).await?,
    }
    Ok(())
}

/// Runs statements in order.
pub async fn run_all(
    conn: &impl sea_orm::ConnectionTrait,
    statements: Vec<Statement>,
) -> Result<(), DbErr> {
    for statement in statements {
        conn.execute_raw(statement).await?;
    }
    Ok(())
}

/// Rows per multi-row INSERT on SQLite, well inside its bind-parameter limit.
const SQLITE_ROWS_PER_INSERT: usize = 500;

/// How many of `remaining` rows the next multi-row statement takes: `max`, else
/// the largest power of two that fits. Every distinct row count is a distinct
/// statement in the driver's per-connection statement cache, and a 500-row
/// INSERT is a large prepared program; powers of two keep the number of
/// distinct statements (and so the cache's memory) small and fixed.
pub fn chunk_size(remaining: usize, max: usize) -> usize {
    if remaining >= max {
        max
    } else {
        1 << (usize::BITS - 1 - remaining.max(1).leading_zeros())
    }
}

/// A condition `column IN (the given values)` with the values as one JSON
/// parameter, for lookups of thousands of keys at once. On PostgreSQL as
/// `= ANY(ARRAY(…))`: written as `IN (SELECT …)` the planner, guessing 100 keys,
/// hashes them and scans the whole table, which grows with it (22 ms against
/// 3 ms for 1,000 keys over 60,000 rows; docs/benchmarks.md, issue 7).
pub fn in_json_list(
    backend: DbBackend,
    column: &str,
    values: &[String],
) -> Result<sea_orm::sea_query::Expr, DbErr> {
    let json = serde_json::to_string(values)
        .map_err(|e| DbErr::Custom(format!("cannot serialise a key list: {e}")))?;
    let sql = match backend {
        DbBackend::Postgres => {
            format!("{column} = ANY(ARRAY(SELECT json_array_elements_text(CAST($1 AS json))))")
        }
        _ => format!("{column} IN (SELECT value FROM json_each(?))"),
    };
    Ok(sea_orm::sea_query::Expr::cust_with_values(sql, [json]))
}

#[cfg(test)]
mod tests {
    use super::chunk_size;

    #[test]
    fn chunks_are_the_maximum_or_powers_of_two() {
        assert_eq!(chunk_size(1200, 500), 500);
        assert_eq!(chunk_size(200, 500), 128);
        assert_eq!(chunk_size(72, 500), 64);
        assert_eq!(chunk_size(1, 500), 1);
        let mut left = 3_871;
        let mut sizes = std::collections::BTreeSet::new();
        while left > 0 {
            let n = chunk_size(left, 500);
            assert!(n <= left);
            sizes.insert(n);
            left -= n;
        }
        assert!(sizes.iter().all(|n| *n == 500 || n.is_power_of_two()));
    }
}
