//! Running counts: a tally table is keyed by some columns and holds counts
//! that writes add to (an additive upsert), so a summary reads a few grouped
//! rows instead of counting every record. The registry's review tallies and
//! the programmes' enrolment tallies both write through [`Tally::add`].

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

use super::{SqliteRows, chunk_size};

/// Rows per multi-row statement: well inside both databases' parameter limits
/// for the widest tally (28 columns).
const ROWS_PER_STATEMENT: usize = 400;

/// A tally table: its name, its key columns and its count columns.
#[derive(Debug, Clone, Copy)]
pub struct Tally<'a> {
    pub table: &'a str,
    pub key: &'a [&'a str],
    pub counts: &'a [&'a str],
}

impl Tally<'_> {
    fn columns(&self) -> Vec<&str> {
        self.key.iter().chain(self.counts).copied().collect()
    }

    /// `ON CONFLICT (key) DO UPDATE SET c = table.c + excluded.c, …`
    fn on_conflict(&self) -> String {
        let table = self.table;
        let updates: Vec<String> = self
            .counts
            .iter()
            .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
            .collect();
        format!(
            "ON CONFLICT ({}) DO UPDATE SET {}",
            self.key.join(", "),
            updates.join(", ")
        )
    }

    /// Adds `rows` (each: the key's values, then the counts, in column order)
    /// to the tally. On PostgreSQL in one statement with the rows as one JSON
    /// parameter, as the other bulk writes; elsewhere as multi-row INSERTs.
    /// Callers write in key order, so writers sharing rows lock them alike.
    pub async fn add(
        &self,
        conn: &impl ConnectionTrait,
        rows: Vec<Vec<Value>>,
    ) -> Result<(), DbErr> {
        if rows.is_empty() {
            return Ok(());
        }
        let backend = conn.get_database_backend();
        let columns = self.columns();
        let list = columns.join(", ");
        if backend == DbBackend::Postgres {
            let objects = rows
                .into_iter()
                .map(|row| {
                    columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| Ok(((*c).to_owned(), json_of(v)?)))
                        .collect::<Result<serde_json::Map<_, _>, DbErr>>()
                        .map(serde_json::Value::Object)
                })
                .collect::<Result<Vec<_>, DbErr>>()?;
            let json = serde_json::to_string(&objects)
                .map_err(|e| DbErr::Custom(format!("{} rows: {e}", self.table)))?;
            let sql = format!(
                "INSERT INTO {table} ({list}) SELECT {list} FROM json_populate_recordset(NULL::{table}, $1::json) {}",
                self.on_conflict(),
                table = self.table,
            );
            conn.execute_raw(Statement::from_sql_and_values(backend, sql, [json.into()]))
                .await?;
            return Ok(());
        }
        let mut rest = rows;
        while !rest.is_empty() {
            let tail = rest.split_off(chunk_size(rest.len(), ROWS_PER_STATEMENT));
            let tuple = format!("({})", vec!["?"; columns.len()].join(", "));
            let sql = format!(
                "INSERT INTO {} ({list}) VALUES {} {}",
                self.table,
                vec![tuple; rest.len()].join(", "),
                self.on_conflict()
            );
            let values: Vec<Value> = rest.into_iter().flatten().collect();
            conn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
            rest = tail;
        }
        Ok(())
    }

    /// The same additions as [`Tally::add`], built ahead for SQLite's
    /// prepared-statement path ([`super::insert_built`]).
    pub fn sqlite_rows(&self, rows: Vec<Vec<Value>>) -> SqliteRows {
        let values: Vec<Value> = rows.into_iter().flatten().collect();
        SqliteRows::new(self.table, &self.columns(), values, &self.on_conflict())
    }
}

/// A tally value as JSON: text, integers, flags, or NULL.
fn json_of(v: Value) -> Result<serde_json::Value, DbErr> {
    Ok(match v {
        Value::String(s) => s.map_or(serde_json::Value::Null, |s| s.into()),
        Value::BigInt(n) => n.map_or(serde_json::Value::Null, |n| n.into()),
        Value::Int(n) => n.map_or(serde_json::Value::Null, |n| n.into()),
        Value::Bool(b) => b.map_or(serde_json::Value::Null, |b| b.into()),
        other => {
            return Err(DbErr::Custom(format!(
                "a tally holds text, integers and flags, not {other:?}"
            )));
        }
    })
}
