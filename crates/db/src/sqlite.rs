//! A SQLite write transaction that sea-orm code uses like any other
//! connection and that also takes rows built ahead ([`SqliteRows`]) straight
//! into SQLite's own prepared statements: one single-row INSERT per table,
//! run once a row, the way SQLite loads fastest. Through sqlx every value
//! is first converted and copied into sqlx's arguments on the async side and
//! every statement is a round trip to the connection's worker thread; for a
//! bulk import that was a quarter of the writer's time, and SQLite has one
//! writer (docs/benchmarks.md, issue 3).

use std::ptr::NonNull;

use chrono::SecondsFormat;
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::sqlite::SqliteTransactionManager;
use sea_orm::sqlx::{SqlSafeStr, Sqlite};
use sea_orm::{DatabaseConnection, DbBackend, DbErr, RuntimeErr, Statement, Value};
use sqlx_core::transaction::TransactionManager;
use tokio::sync::Mutex;

use super::{SQLITE_ROWS_PER_INSERT, chunk_size, exec_err};

/// One write transaction on a SQLite pool, begun IMMEDIATE as
/// [`super::begin_write`] begins them. Dropped without a commit (an error on
/// the way), it rolls back. It holds its pooled connection itself, not a
/// sqlx `Transaction`, so it can still use it once committed.
pub struct SqliteWrite {
    txn: Mutex<PoolConnection<Sqlite>>,
    open: bool,
}

impl std::fmt::Debug for SqliteWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteWrite")
    }
}

impl Drop for SqliteWrite {
    fn drop(&mut self) {
        if self.open {
            // Queued on the connection, run before anyone uses it again, as
            // sqlx's own transactions roll back when dropped.
            SqliteTransactionManager::start_rollback(self.txn.get_mut());
        }
    }
}

super::sqlx_transaction_connection!(SqliteWrite, DbBackend::Sqlite);

/// SQLite's own default: checkpoint in the commit that takes the WAL past
/// 1,000 pages.
const AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 1000";

impl SqliteWrite {
    /// Begins a transaction on `db`'s pool; `None` when `db` is not SQLite.
    pub(super) async fn begin(db: &DatabaseConnection) -> Result<Option<SqliteWrite>, DbErr> {
        if db.get_database_backend() != DbBackend::Sqlite {
            return Ok(None);
        }
        let mut conn = db
            .get_sqlite_connection_pool()
            .acquire()
            .await
            .map_err(exec_err)?;
        SqliteTransactionManager::begin(&mut conn, Some("BEGIN IMMEDIATE".into_sql_str()))
            .await
            .map_err(exec_err)?;
        Ok(Some(SqliteWrite {
            txn: Mutex::new(conn),
            open: true,
        }))
    }

    pub async fn commit(mut self) -> Result<(), DbErr> {
        SqliteTransactionManager::commit(self.txn.get_mut())
            .await
            .map_err(exec_err)?;
        self.open = false;
        Ok(())
    }

    /// Commits without checkpointing the WAL in the commit, for a writer that
    /// has a [`Checkpointer`] do it beside it. The connection checkpoints in
    /// its commits again afterwards, for whoever writes on it next.
    pub async fn commit_unchecked(mut self) -> Result<(), DbErr> {
        let conn = self.txn.get_mut();
        sea_orm::sqlx::raw_sql("PRAGMA wal_autocheckpoint = 0")
            .execute(&mut **conn)
            .await
            .map_err(exec_err)?;
        let committed = SqliteTransactionManager::commit(conn).await;
        let restored = sea_orm::sqlx::raw_sql(AUTOCHECKPOINT)
            .execute(&mut **conn)
            .await;
        committed.map_err(exec_err)?;
        self.open = false;
        restored.map_err(exec_err)?;
        Ok(())
    }

    /// Inserts `tables` in order, each through one prepared single-row
    /// INSERT run once a row, on the SQLite handle of this transaction's
    /// connection. A failure leaves the transaction to be rolled back.
    pub(super) async fn insert_built(&self, tables: Vec<SqliteRows>) -> Result<(), DbErr> {
        let mut txn = self.txn.lock().await;
        let mut handle = txn.lock_handle().await.map_err(exec_err)?;
        let raw = handle.as_raw_handle();
        // The handle is locked for the whole synchronous call below: a
        // future cannot be dropped half-way through it.
        let write = || insert_on(raw, &tables);
        match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(write),
            _ => write(),
        }
    }
}

/// Checkpoints a SQLite database's WAL beside a bulk writer instead of in its
/// commits ([`SqliteWrite::commit_unchecked`]). In the commit, copying the
/// WAL's pages back into the database took a fifth of the import writer's
/// time while the machine's other core idled. After each commit a passive
/// checkpoint starts on another connection, unless one is still running, and
/// the writer goes on. Every [`Checkpointer::FULL_EVERY`] commits the writer
/// waits for one to finish, so that its next transaction finds the WAL
/// copied back and starts it over instead of growing it.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    db: DatabaseConnection,
    state: std::sync::Arc<Mutex<CheckpointState>>,
}

#[derive(Debug, Default)]
struct CheckpointState {
    running: Option<tokio::task::JoinHandle<()>>,
    commits: u32,
}

impl Checkpointer {
    /// Commits between the checkpoints a writer waits for.
    pub const FULL_EVERY: u32 = 4;

    pub fn new(db: DatabaseConnection) -> Checkpointer {
        Checkpointer {
            db,
            state: Default::default(),
        }
    }

    /// To be called after each [`SqliteWrite::commit_unchecked`]; does nothing
    /// on other databases.
    pub async fn after_commit(&self) {
        if self.db.get_database_backend() != DbBackend::Sqlite {
            return;
        }
        let mut state = self.state.lock().await;
        state.commits = state.commits.wrapping_add(1);
        let full = state.commits % Self::FULL_EVERY == 0;
        if let Some(running) = state.running.take() {
            if !running.is_finished() && !full {
                state.running = Some(running);
                return;
            }
            let _ = running.await;
        }
        let db = self.db.clone();
        let checkpoint = tokio::spawn(async move {
            use sea_orm::ConnectionTrait;
            if let Err(e) = db
                .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                .await
            {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        });
        if full {
            let _ = checkpoint.await;
        } else {
            state.running = Some(checkpoint);
        }
    }
}

/// Runs the inserts of `tables` on the SQLite connection `raw`.
#[allow(unsafe_code)]
fn insert_on(raw: NonNull<rusqlite::ffi::sqlite3>, tables: &[SqliteRows]) -> Result<(), DbErr> {
    // SAFETY: `raw` is the open handle of the sqlx connection whose lock
    // (`LockedSqliteHandle`) the caller holds for the whole of this call, so
    // nothing else uses the handle meanwhile; a Connection made from a handle
    // does not close it when dropped, and it is dropped (its statements
    // finalised) before this function returns.
    let conn = unsafe { rusqlite::Connection::from_handle(raw.as_ptr()) }.map_err(sqlite_err)?;
    for table in tables {
        let mut statement = conn.prepare(&table.sql).map_err(sqlite_err)?;
        for row in table.values.chunks(table.width) {
            for (i, value) in row.iter().enumerate() {
                bind(&mut statement, i + 1, value)?;
            }
            statement.raw_execute().map_err(sqlite_err)?;
        }
    }
    Ok(())
}

fn sqlite_err(e: rusqlite::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::Internal(format!("SQLite: {e}")))
}

/// Binds `value` as sqlx (through sea-orm) binds it on SQLite, so a row reads
/// back the same whichever way it was written: in the form
/// [`SqliteRows::stored`] gives it.
fn bind(statement: &mut rusqlite::Statement<'_>, at: usize, value: &Value) -> Result<(), DbErr> {
    let converted;
    let value = match value {
        Value::BigInt(_) | Value::Double(_) | Value::String(_) | Value::Bytes(_) => value,
        other => {
            converted = SqliteRows::stored(other.clone());
            &converted
        }
    };
    let bound = match value {
        Value::BigInt(Some(n)) => statement.raw_bind_parameter(at, *n),
        Value::Double(Some(d)) => statement.raw_bind_parameter(at, *d),
        Value::String(Some(s)) => statement.raw_bind_parameter(at, s.as_str()),
        Value::Bytes(Some(b)) => statement.raw_bind_parameter(at, b.as_slice()),
        Value::Bool(None)
        | Value::TinyInt(None)
        | Value::SmallInt(None)
        | Value::Int(None)
        | Value::BigInt(None)
        | Value::Double(None)
        | Value::String(None)
        | Value::Bytes(None)
        | Value::ChronoDate(None)
        | Value::ChronoDateTimeUtc(None)
        | Value::Json(None) => statement.raw_bind_parameter(at, rusqlite::types::Null),
        other => {
            return Err(DbErr::Custom(format!(
                "a bulk SQLite row cannot hold a value of this type: {other:?}"
            )));
        }
    };
    bound.map_err(sqlite_err)
}

/// Rows of one table built ahead of a write: its single-row INSERT and the
/// values of every row, row after row.
#[derive(Debug, Clone)]
pub struct SqliteRows {
    table: String,
    columns: String,
    suffix: String,
    sql: String,
    width: usize,
    values: Vec<Value>,
}

impl SqliteRows {
    /// Rows of `table`'s `columns`, `values` row after row; `suffix` follows
    /// the VALUES of each INSERT (an `ON CONFLICT` clause, or nothing).
    pub fn new(table: &str, columns: &[&str], values: Vec<Value>, suffix: &str) -> SqliteRows {
        let width = columns.len();
        let columns: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
        let columns = columns.join(", ");
        let sql = format!(
            "INSERT INTO \"{table}\" ({columns}) VALUES ({}) {suffix}",
            vec!["?"; width].join(", ")
        );
        SqliteRows {
            table: table.to_owned(),
            columns,
            suffix: suffix.to_owned(),
            sql,
            width,
            values,
        }
    }

    /// The rows of `rows`, every column of entity `E`; the rows' values are
    /// moved, not copied.
    pub fn of<E>(rows: Vec<E::Model>) -> SqliteRows
    where
        E: sea_orm::EntityTrait,
        E::Model: sea_orm::IntoActiveModel<E::ActiveModel>,
    {
        SqliteRows::of_except::<E>(rows, &[])
    }

    /// [`SqliteRows::of`] without the columns `skip` names (the database
    /// fills them itself).
    pub(super) fn of_except<E>(rows: Vec<E::Model>, skip: &[&str]) -> SqliteRows
    where
        E: sea_orm::EntityTrait,
        E::Model: sea_orm::IntoActiveModel<E::ActiveModel>,
    {
        use sea_orm::{ActiveModelTrait, IdenStatic, IntoActiveModel, Iterable};
        let columns: Vec<E::Column> = E::Column::iter()
            .filter(|c| !skip.contains(&c.as_str()))
            .collect();
        let table = sea_orm::EntityName::table_name(&E::default()).to_owned();
        let names: Vec<&str> = columns.iter().map(|c| c.as_str()).collect();
        let mut values = Vec::with_capacity(rows.len() * columns.len());
        for row in rows {
            let mut active = row.into_active_model();
            for c in &columns {
                // A model sets every column.
                let value = active.take(*c).into_value().unwrap_or(Value::String(None));
                values.push(SqliteRows::stored(value));
            }
        }
        SqliteRows::new(&table, &names, values, "")
    }

    /// `value` as SQLite stores it when sqlx binds it (booleans and integers
    /// as 64-bit integers, dates as `YYYY-MM-DD`, times as RFC 3339, JSON as
    /// its text), so that formatting is done while a batch is built, not
    /// while it is written.
    pub fn stored(value: Value) -> Value {
        match value {
            Value::Bool(Some(b)) => Value::BigInt(Some(i64::from(b))),
            Value::TinyInt(Some(n)) => Value::BigInt(Some(i64::from(n))),
            Value::SmallInt(Some(n)) => Value::BigInt(Some(i64::from(n))),
            Value::Int(Some(n)) => Value::BigInt(Some(i64::from(n))),
            Value::ChronoDate(Some(d)) => Value::String(Some(d.format("%F").to_string())),
            Value::ChronoDateTimeUtc(Some(t)) => {
                Value::String(Some(t.to_rfc3339_opts(SecondsFormat::AutoSi, false)))
            }
            Value::Json(Some(j)) => Value::String(Some(j.to_string())),
            other => other,
        }
    }

    /// How many values each row has.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Every row's values, row after row, to change in place before writing.
    pub fn rows_mut(&mut self) -> std::slice::ChunksMut<'_, Value> {
        self.values.chunks_mut(self.width.max(1))
    }

    /// The same rows as multi-row INSERT statements, for a SQLite connection
    /// that is not a [`SqliteWrite`].
    pub(super) fn statements(self) -> Vec<Statement> {
        let SqliteRows {
            table,
            columns,
            suffix,
            width,
            mut values,
            ..
        } = self;
        let row = format!("({})", vec!["?"; width].join(", "));
        let mut statements = vec![];
        while !values.is_empty() && width > 0 {
            let n = chunk_size(values.len() / width, SQLITE_ROWS_PER_INSERT);
            let rest = values.split_off(n * width);
            let chunk = std::mem::replace(&mut values, rest);
            let sql = format!(
                "INSERT INTO \"{table}\" ({columns}) VALUES {} {suffix}",
                vec![row.as_str(); n].join(", ")
            );
            statements.push(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                sql,
                chunk,
            ));
        }
        statements
    }
}
