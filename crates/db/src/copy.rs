//! A PostgreSQL write transaction that sea-orm code uses like any other
//! connection and that also takes rows by `COPY … FROM STDIN`, the database's
//! fastest way in. sea-orm's own transaction keeps its connection to itself, so
//! this one holds a sqlx transaction and runs sea-orm's statements on it.

use std::fmt::Write as _;
use std::sync::Arc;

use sea_orm::sqlx::{Postgres, Transaction};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, RuntimeErr, Statement, Value,
};
use tokio::sync::Mutex;

use super::{SqliteWrite, exec_err};

/// Bytes of COPY data sent to the server at a time.
const COPY_CHUNK: usize = 1 << 20;

/// One write transaction on a PostgreSQL pool. Dropped without [`commit`]
/// (an error on the way), it rolls back.
///
/// [`commit`]: PgWrite::commit
pub struct PgWrite {
    txn: Mutex<Transaction<'static, Postgres>>,
}

impl std::fmt::Debug for PgWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgWrite")
    }
}

impl PgWrite {
    /// Begins a transaction on `db`'s pool; `None` when `db` is not PostgreSQL.
    async fn begin(db: &DatabaseConnection) -> Result<Option<PgWrite>, DbErr> {
        if db.get_database_backend() != DbBackend::Postgres {
            return Ok(None);
        }
        let txn = db
            .get_postgres_connection_pool()
            .begin()
            .await
            .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))?;
        Ok(Some(PgWrite {
            txn: Mutex::new(txn),
        }))
    }

    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.into_inner().commit().await.map_err(exec_err)
    }

    /// Writes `rows` into `E`'s table with one `COPY … FROM STDIN` (text
    /// format), all columns but `skip`.
    pub async fn copy_rows<E>(&self, rows: &[E::Model], skip: &[&str]) -> Result<u64, DbErr>
    where
        E: sea_orm::EntityTrait,
    {
        use sea_orm::{IdenStatic, Iterable, ModelTrait};
        if rows.is_empty() {
            return Ok(0);
        }
        let columns: Vec<E::Column> = E::Column::iter()
            .filter(|c| !skip.contains(&c.as_str()))
            .collect();
        let table = sea_orm::EntityName::table_name(&E::default()).to_owned();
        let list: Vec<&str> = columns.iter().map(|c| c.as_str()).collect();
        let sql = format!("COPY {table} ({}) FROM STDIN", list.join(", "));
        let mut txn = self.txn.lock().await;
        let mut copy = txn.copy_in_raw(&sql).await.map_err(exec_err)?;
        let mut buf = String::with_capacity(COPY_CHUNK + 4096);
        for row in rows {
            for (i, c) in columns.iter().enumerate() {
                if i > 0 {
                    buf.push('\t');
                }
                if let Err(e) = push_text(&mut buf, &row.get(*c)) {
                    // Leaving COPY mode cleanly keeps the connection usable.
                    let _ = copy.abort(e.to_string()).await;
                    return Err(e);
                }
            }
            buf.push('\n');
            if buf.len() >= COPY_CHUNK {
                copy.send(buf.as_bytes()).await.map_err(exec_err)?;
                buf.clear();
            }
        }
        if !buf.is_empty() {
            copy.send(buf.as_bytes()).await.map_err(exec_err)?;
        }
        copy.finish().await.map_err(exec_err)
    }
}

/// Appends `value` in COPY's text format: `\N` for NULL, and backslash,
/// tab, newline and carriage return escaped.
fn push_text(out: &mut String, value: &Value) -> Result<(), DbErr> {
    fn escaped(out: &mut String, s: &str) {
        for ch in s.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
    }
    const NULL: &str = "\\N";
    // Writing to a String cannot fail.
    let _ = match value {
        Value::Bool(v) => {
            out.push_str(v.map_or(NULL, |b| if b { "t" } else { "f" }));
            Ok(())
        }
        Value::SmallInt(Some(v)) => write!(out, "{v}"),
        Value::Int(Some(v)) => write!(out, "{v}"),
        Value::BigInt(Some(v)) => write!(out, "{v}"),
        Value::Double(Some(v)) => write!(out, "{v}"),
        Value::String(Some(s)) => {
            escaped(out, s);
            Ok(())
        }
        Value::Bytes(Some(b)) => {
            out.push_str("\\\\x");
            out.push_str(&hex::encode(b));
            Ok(())
        }
        Value::Json(Some(j)) => {
            escaped(out, &j.to_string());
            Ok(())
        }
        Value::ChronoDate(Some(d)) => write!(out, "{}", d.format("%Y-%m-%d")),
        // Microseconds, cut rather than rounded as PostgreSQL would round the
        // nanoseconds: a time must be stored as sqlx's bound parameters store
        // it, or one instant written by COPY and by INSERT compares unequal.
        Value::ChronoDateTimeUtc(Some(t)) => {
            write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f+00"))
        }
        Value::SmallInt(None)
        | Value::Int(None)
        | Value::BigInt(None)
        | Value::Double(None)
        | Value::String(None)
        | Value::Bytes(None)
        | Value::Json(None)
        | Value::ChronoDate(None)
        | Value::ChronoDateTimeUtc(None) => {
            out.push_str(NULL);
            Ok(())
        }
        other => {
            return Err(DbErr::Custom(format!(
                "COPY cannot write a value of this type: {other:?}"
            )));
        }
    };
    Ok(())
}

super::sqlx_transaction_connection!(PgWrite, DbBackend::Postgres);

/// A write transaction: a [`PgWrite`] on PostgreSQL, so bulk rows go in by
/// COPY; a [`SqliteWrite`] on SQLite, so rows built ahead go in through
/// SQLite's own statements; sea-orm's own elsewhere (see
/// [`super::begin_write`]).
#[derive(Debug)]
pub enum WriteTxn {
    Pg(PgWrite),
    Sqlite(SqliteWrite),
    Orm(DatabaseTransaction),
}

impl WriteTxn {
    pub async fn begin(db: &DatabaseConnection) -> Result<WriteTxn, DbErr> {
        if let Some(pg) = PgWrite::begin(db).await? {
            return Ok(WriteTxn::Pg(pg));
        }
        if let Some(sqlite) = SqliteWrite::begin(db).await? {
            return Ok(WriteTxn::Sqlite(sqlite));
        }
        Ok(WriteTxn::Orm(super::begin_write(db).await?))
    }

    pub async fn commit(self) -> Result<(), DbErr> {
        match self {
            WriteTxn::Pg(pg) => pg.commit().await,
            WriteTxn::Sqlite(sqlite) => sqlite.commit().await,
            WriteTxn::Orm(txn) => txn.commit().await,
        }
    }

    /// Commits, on SQLite leaving the WAL's checkpoint to a
    /// [`super::Checkpointer`] (see [`SqliteWrite::commit_unchecked`]).
    pub async fn commit_unchecked(self) -> Result<(), DbErr> {
        match self {
            WriteTxn::Sqlite(sqlite) => sqlite.commit_unchecked().await,
            other => other.commit().await,
        }
    }
}

/// Runs `$call` on whichever transaction a [`WriteTxn`] holds.
macro_rules! each {
    ($txn:expr, $c:ident => $call:expr) => {
        match $txn {
            WriteTxn::Pg($c) => $call,
            WriteTxn::Sqlite($c) => $call,
            WriteTxn::Orm($c) => $call,
        }
    };
}

impl super::Bulk for WriteTxn {
    fn copier(&self) -> Option<&PgWrite> {
        match self {
            WriteTxn::Pg(pg) => Some(pg),
            _ => None,
        }
    }

    fn sqlite_writer(&self) -> Option<&SqliteWrite> {
        match self {
            WriteTxn::Sqlite(sqlite) => Some(sqlite),
            _ => None,
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DbBackend {
        each!(self, c => c.get_database_backend())
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        each!(self, c => c.execute_raw(stmt).await)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        each!(self, c => c.execute_unprepared(sql).await)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        each!(self, c => c.query_one_raw(stmt).await)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        each!(self, c => c.query_all_raw(stmt).await)
    }
}

#[cfg(test)]
mod tests {
    use super::push_text;
    use sea_orm::Value;

    fn text(v: Value) -> String {
        let mut s = String::new();
        push_text(&mut s, &v).expect("supported");
        s
    }

    #[test]
    fn text_format_escapes_and_nulls() {
        assert_eq!(
            text(Value::String(Some("a\tb\nc\\d\re".into()))),
            "a\\tb\\nc\\\\d\\re"
        );
        assert_eq!(text(Value::String(None)), "\\N");
        assert_eq!(text(Value::String(Some("\\N".into()))), "\\\\N");
        assert_eq!(text(Value::Bool(Some(true))), "t");
        assert_eq!(text(Value::BigInt(Some(-7))), "-7");
        assert_eq!(text(Value::Bytes(Some(vec![0, 255]))), "\\\\x00ff");
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-29T01:02:03.000004999Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        assert_eq!(
            text(Value::ChronoDateTimeUtc(Some(t))),
            "2026-11-29 01:02:03.000004+00"
        );
        assert!(push_text(&mut String::new(), &Value::Char(Some('x'))).is_err());
    }
}
