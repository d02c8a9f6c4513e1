//! Running tallies of certified reviews, kept in the same transaction as the
//! reviews they count, so a summary sums a few hundred tally rows instead of
//! scanning every review. One tally row per combination of what a summary breaks
//! figures down by; each holds the number of households and, per indicator, how
//! many of them are deprived in it. [`recount`] computes the same rows from the
//! reviews themselves: the plain `GROUP BY` the tallies are checked against.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use sustain_db::{SqliteRows, Tally};
use sustain_domain::admin::{self, Level};
use sustain_domain::poverty::MAX_INDICATORS;
use sustain_platform::error::ServiceError;

use crate::migration::{PROVINCE_TALLY_KEY, TALLY_KEY};
use crate::model::review;

/// Where a review is counted. Field names are the `TALLY_KEY` columns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
struct TallyKey {
    year: i32,
    standard_code: String,
    province_code: String,
    district_code: String,
    commune_code: String,
    current_commune_code: String,
    ethnic_minority: bool,
    residence: String,
    area: String,
    class: String,
    transition: String,
    mpi_poor: bool,
}

impl TallyKey {
    fn of(r: &review::Model) -> TallyKey {
        TallyKey {
            year: r.year,
            standard_code: r.standard_code.clone(),
            province_code: r.province_code.clone(),
            district_code: r.district_code.clone(),
            commune_code: r.commune_code.clone(),
            current_commune_code: r.current_commune_code.clone(),
            ethnic_minority: r.ethnic_minority,
            residence: r.residence.clone(),
            area: r.area.clone(),
            class: r.class.clone(),
            transition: r.transition.clone(),
            mpi_poor: r.mpi_poor,
        }
    }
}

/// Where a review is counted in the province tally: the commune-level key
/// with the communes of a district (after the reform: each commune) summed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
struct ProvinceKey {
    year: i32,
    standard_code: String,
    province_code: String,
    child_unit: String,
    ethnic_minority: bool,
    residence: String,
    area: String,
    class: String,
    transition: String,
    mpi_poor: bool,
}

impl ProvinceKey {
    fn of(k: &TallyKey) -> ProvinceKey {
        ProvinceKey {
            year: k.year,
            standard_code: k.standard_code.clone(),
            province_code: k.province_code.clone(),
            // The same child the province's summary groups by: the units
            // in force at the end of the year.
            child_unit: if !k.district_code.is_empty() && !admin::reported_after_reform(k.year) {
                k.district_code.clone()
            } else if k.current_commune_code.is_empty() {
                // A split commune's household not yet placed by village.
                format!("{UNASSIGNED_FROM}{}", k.commune_code)
            } else {
                k.current_commune_code.clone()
            },
            ethnic_minority: k.ethnic_minority,
            residence: k.residence.clone(),
            area: k.area.clone(),
            class: k.class.clone(),
            transition: k.transition.clone(),
            mpi_poor: k.mpi_poor,
        }
    }
}

/// A tally table's key: the table, its key columns and the key's values in
/// their order (the serde field names are the column names).
trait Key: Eq + std::hash::Hash + serde::Serialize {
    const TABLE: &'static str;
    const COLUMNS: &'static [&'static str];
    fn values(&self) -> Vec<Value>;
}

impl Key for ProvinceKey {
    const TABLE: &'static str = "review_tally_province";
    const COLUMNS: &'static [&'static str] = PROVINCE_TALLY_KEY;
    fn values(&self) -> Vec<Value> {
        vec![
            self.year.into(),
            self.standard_code.clone().into(),
            self.province_code.clone().into(),
            self.child_unit.clone().into(),
            self.ethnic_minority.into(),
            self.residence.clone().into(),
            self.area.clone().into(),
            self.class.clone().into(),
            self.transition.clone().into(),
            self.mpi_poor.into(),
        ]
    }
}

impl Key for TallyKey {
    const TABLE: &'static str = "review_tally";
    const COLUMNS: &'static [&'static str] = TALLY_KEY;
    fn values(&self) -> Vec<Value> {
        vec![
            self.year.into(),
            self.standard_code.clone().into(),
            self.province_code.clone().into(),
            self.district_code.clone().into(),
            self.commune_code.clone().into(),
            self.current_commune_code.clone().into(),
            self.ethnic_minority.into(),
            self.residence.clone().into(),
            self.area.clone().into(),
            self.class.clone().into(),
            self.transition.clone().into(),
            self.mpi_poor.into(),
        ]
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    households: i64,
    deprived: [i64; MAX_INDICATORS],
}

impl Counts {
    fn plus(&mut self, other: &Counts) {
        self.households += other.households;
        for (d, o) in self.deprived.iter_mut().zip(other.deprived) {
            *d += o;
        }
    }
}

/// Changes to the tallies, gathered while a transaction writes reviews and
/// applied once at its end.
#[derive(Debug, Clone, Default)]
pub struct TallyDelta {
    changes: HashMap<TallyKey, Counts>,
}

impl TallyDelta {
    /// Counts `r` (`sign` 1) or stops counting it (`sign` -1).
    pub fn add(&mut self, r: &review::Model, sign: i64) {
        let counts = self.changes.entry(TallyKey::of(r)).or_default();
        counts.households += sign;
        let bits = r.deprived_bits as u32;
        for (p, d) in counts.deprived.iter_mut().enumerate() {
            if bits & (1 << p) != 0 {
                *d += sign;
            }
        }
    }

    /// Writes the changes to the commune-level tally and the province
    /// tally, in key order: writers in flight together (import batches) then
    /// lock the rows they share in the same order and cannot deadlock.
    pub async fn apply(self, conn: &impl ConnectionTrait) -> Result<(), ServiceError> {
        let (rows, province) = self.sorted();
        upsert(conn, &rows).await?;
        upsert(conn, &province).await
    }

    /// The same upserts as [`apply`](Self::apply) makes, as rows built
    /// ahead for SQLite ([`sustain_db::insert_built`]).
    pub fn sqlite_rows(self) -> Vec<SqliteRows> {
        let (rows, province) = self.sorted();
        vec![sqlite_upserts(&rows), sqlite_upserts(&province)]
    }

    /// The commune-level and the province changes, each in key order.
    fn sorted(self) -> (Changes<TallyKey>, Changes<ProvinceKey>) {
        let mut rows: Vec<(TallyKey, Counts)> = self
            .changes
            .into_iter()
            .filter(|(_, c)| *c != Counts::default())
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let mut province: HashMap<ProvinceKey, Counts> = HashMap::new();
        for (key, counts) in &rows {
            province
                .entry(ProvinceKey::of(key))
                .or_default()
                .plus(counts);
        }
        let mut province: Vec<(ProvinceKey, Counts)> = province
            .into_iter()
            .filter(|(_, c)| *c != Counts::default())
            .collect();
        province.sort_by(|a, b| a.0.cmp(&b.0));
        (rows, province)
    }
}

/// Changes to the tally of `K`, one a key.
type Changes<K> = Vec<(K, Counts)>;

/// The tally table of `K`: its key columns, then the counts.
fn tally_of<K: Key>() -> Tally<'static> {
    Tally {
        table: K::TABLE,
        key: K::COLUMNS,
        counts: count_columns(),
    }
}

/// The count columns of every tally: households, then each indicator's.
fn count_columns() -> &'static [&'static str] {
    static COLUMNS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    COLUMNS.get_or_init(|| {
        std::iter::once("households".to_owned())
            .chain(crate::migration::deprived_columns())
            .map(|c| &*c.leak())
            .collect()
    })
}

/// `rows` as the tally's rows: the key's values, then the counts.
fn tally_rows<K: Key>(rows: &[(K, Counts)]) -> Vec<Vec<Value>> {
    rows.iter()
        .map(|(key, counts)| {
            let mut values = key.values();
            values.push(counts.households.into());
            values.extend(counts.deprived.iter().map(|d| Value::from(*d)));
            values
        })
        .collect()
}

/// `rows` as SQLite upserts built ahead.
fn sqlite_upserts<K: Key>(rows: &[(K, Counts)]) -> SqliteRows {
    tally_of::<K>().sqlite_rows(tally_rows(rows))
}

/// Adds `rows` to the tally table of `K`.
async fn upsert<K: Key>(
    conn: &impl ConnectionTrait,
    rows: &[(K, Counts)],
) -> Result<(), ServiceError> {
    tally_of::<K>().add(conn, tally_rows(rows)).await?;
    Ok(())
}

/// One group of counted households, as a summary reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyRow {
    pub standard_code: String,
    /// The next-level unit the households belong to (for a commune: the
    /// pre-reform commune).
    pub child_unit: String,
    pub ethnic_minority: bool,
    pub residence: String,
    /// The area whose line the households were classified under.
    pub area: String,
    pub class: String,
    pub transition: String,
    pub mpi_poor: bool,
    pub households: i64,
    pub deprived: [i64; MAX_INDICATORS],
}

/// A province's child before the reform: the household's district, or for
/// one registered after it (no district) its commune.
pub const PROVINCE_CHILD_BEFORE_REFORM: &str =
    "CASE WHEN district_code <> '' THEN district_code ELSE current_commune_code END";

/// A province's child after the reform: the commune in force holding the
/// household, or for a household of a split commune not yet assigned to a
/// part, `unassigned:` and the old commune's code.
pub const PROVINCE_CHILD_AFTER_REFORM: &str = "CASE WHEN current_commune_code <> '' THEN current_commune_code ELSE 'unassigned:' || commune_code END";

/// How a child unit of the province tally names the households of a split
/// commune not yet assigned to a part: this, then the old commune's code.
pub const UNASSIGNED_FROM: &str = "unassigned:";

/// The unit filter and the child grouping for a unit code in a year.
///
/// A commune code means the commune in force at the end of the year. A
/// commune that has since ended (merged in the 2025 reform) is the
/// households registered in it; one in force now is the households it holds
/// now, so a commune created by the reform has a series back to 2021 built
/// from its old communes. A code the reform reused (05977: Vĩnh Trại until
/// 30 June 2025, Đông Kinh after) thus reads as Vĩnh Trại for 2021–2024 and
/// as Đông Kinh from 2025, and the communes of a year add up to their
/// district.
fn unit_sql(backend: DbBackend, unit_code: &str, year: i32) -> Option<(String, &'static str)> {
    let p = match backend {
        DbBackend::Postgres => "$2",
        _ => "?",
    };
    Some(match Level::of_code(unit_code)? {
        Level::Province => (
            format!("province_code = {p}"),
            // The units in force at the end of the year: its districts, or
            // for a year reported after the 2025 reform its communes, which
            // hold every household of their old communes whenever it was
            // registered.
            if admin::reported_after_reform(year) {
                PROVINCE_CHILD_AFTER_REFORM
            } else {
                PROVINCE_CHILD_BEFORE_REFORM
            },
        ),
        Level::District => (format!("district_code = {p}"), "commune_code"),
        Level::Commune => {
            let year_end = chrono::NaiveDate::from_ymd_opt(year, 12, 31)?;
            let ended = admin::catalog()
                .get(unit_code, year_end)
                .is_some_and(|u| u.valid_until.is_some());
            let column = if ended {
                "commune_code"
            } else {
                "current_commune_code"
            };
            (format!("{column} = {p}"), "commune_code")
        }
    })
}

const GROUP: &str =
    "standard_code, child_unit, ethnic_minority, residence, area, class, transition, mpi_poor";

async fn grouped(
    conn: &impl ConnectionTrait,
    unit_code: &str,
    year: i32,
    unassigned_from: Option<&str>,
    from_tally: bool,
) -> Result<Vec<TallyRow>, ServiceError> {
    let backend = conn.get_database_backend();
    let Some((mut filter, mut child)) = unit_sql(backend, unit_code, year) else {
        return Ok(vec![]);
    };
    let mut values: Vec<Value> = vec![year.into(), unit_code.into()];
    if let Some(code) = unassigned_from {
        // Only the split commune's households no part holds, by the commune.
        let p = match backend {
            DbBackend::Postgres => "$3",
            _ => "?",
        };
        filter = format!("{filter} AND commune_code = {p} AND current_commune_code = ''");
        child = "commune_code";
        values.push(code.into());
    }
    let first = match backend {
        DbBackend::Postgres => "$1",
        _ => "?",
    };
    let sums: Vec<String> = (0..MAX_INDICATORS)
        .map(|p| {
            if from_tally {
                format!("CAST(SUM(d{p:02}) AS BIGINT) AS d{p:02}")
            } else {
                format!(
                    "CAST(SUM(CASE WHEN (deprived_bits & {}) <> 0 THEN 1 ELSE 0 END) AS BIGINT) AS d{p:02}",
                    1 << p
                )
            }
        })
        .collect();
    // The province tally keeps no commune: a row of unassigned households
    // is read from the commune-level one.
    let province = Level::of_code(unit_code) == Some(Level::Province) && unassigned_from.is_none();
    let (table, households, certified) = match (from_tally, province) {
        (true, true) => ("review_tally_province", "SUM(households)", ""),
        (true, false) => ("review_tally", "SUM(households)", ""),
        (false, _) => ("review", "COUNT(*)", " AND state = 'certified'"),
    };
    // The province tally holds the child unit as a column.
    let child = if from_tally && province {
        "child_unit"
    } else {
        child
    };
    let sql = format!(
        "SELECT standard_code, {child} AS child_unit, ethnic_minority, residence, area, class, transition, mpi_poor, \
         CAST({households} AS BIGINT) AS households, {} FROM {table} WHERE year = {first} AND {filter}{certified} \
         GROUP BY {GROUP} HAVING {households} <> 0",
        sums.join(", ")
    );
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    rows.iter()
        .map(|row| {
            let mut deprived = [0i64; MAX_INDICATORS];
            for (p, d) in deprived.iter_mut().enumerate() {
                *d = row.try_get("", &format!("d{p:02}"))?;
            }
            Ok(TallyRow {
                standard_code: row.try_get("", "standard_code")?,
                child_unit: row.try_get("", "child_unit")?,
                ethnic_minority: row.try_get("", "ethnic_minority")?,
                residence: row.try_get("", "residence")?,
                area: row.try_get("", "area")?,
                class: row.try_get("", "class")?,
                transition: row.try_get("", "transition")?,
                mpi_poor: row.try_get("", "mpi_poor")?,
                households: row.try_get("", "households")?,
                deprived,
            })
        })
        .collect()
}

/// The certified figures for everything under `unit_code` in `year`, from
/// the tallies; with `unassigned_from`, of that split commune's households
/// not yet assigned to a part only.
pub async fn read(
    conn: &impl ConnectionTrait,
    unit_code: &str,
    year: i32,
    unassigned_from: Option<&str>,
) -> Result<Vec<TallyRow>, ServiceError> {
    grouped(conn, unit_code, year, unassigned_from, true).await
}

/// The same figures counted from the reviews: the plain GROUP BY.
pub async fn recount(
    conn: &impl ConnectionTrait,
    unit_code: &str,
    year: i32,
    unassigned_from: Option<&str>,
) -> Result<Vec<TallyRow>, ServiceError> {
    grouped(conn, unit_code, year, unassigned_from, false).await
}
