//! Running tallies of enrolments, written in the same transaction as the
//! enrolments they count, so the programme summary reads a few hundred tally
//! rows instead of every enrolment (docs/benchmarks.md, issue 4).
//!
//! - Sums (`enrolment_tally`): enrolments, outcomes measured, income-change
//!   sums and targets met, by placement, Project, class and year. A write adds
//!   its difference: an enrolment created adds itself, an outcome recorded
//!   takes the old row away and adds the new one, an archive takes it away.
//! - Reach (`enrolment_reach`): distinct households. Each household keeps, per
//!   placement, Project and class (and "" for any of them), the mask of years
//!   it had an active enrolment in (`enrolment_reach_household`);
//!   `enrolment_reach` counts households per mask. A period's distinct
//!   households are the sum over the masks that meet the period's mask. After
//!   a write, [`refresh_reach`] recomputes the touched households' masks from
//!   their active enrolments and moves each changed one from its old mask's
//!   count to its new one.
//!
//! `summary::recount_model_figures` counts the same figures from the
//! enrolments themselves; the tests hold the two equal.

use std::collections::{HashMap, HashSet};

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter,
    QuerySelect, Statement, Value,
};
use sustain_db::{Tally, in_json_list};
use sustain_platform::error::ServiceError;

use crate::convert::ACTIVE;
use crate::livelihood::convert::outcome_of;
use crate::model::{enrolment, enrolment_reach, enrolment_reach_household, enrolment_tally};

/// Years a mask can hold: bit `year − FIRST_YEAR` of a signed 64-bit integer,
/// sign bit unused. Enrolments outside are refused when they are made.
pub const FIRST_YEAR: i32 = 2000;
pub const LAST_YEAR: i32 = FIRST_YEAR + 62;

/// Income changes are summed in millionths: exact enough for two decimals of
/// a percentage, and integer arithmetic on both databases.
pub const PPM: i64 = 1_000_000;

/// Key of the PostgreSQL advisory locks that serialise reach updates of one
/// household (the second key is the household id's hash).
const REACH_LOCK: i32 = 7301;

pub fn year_bit(year: i32) -> i64 {
    if (FIRST_YEAR..=LAST_YEAR).contains(&year) {
        1 << (year - FIRST_YEAR)
    } else {
        0
    }
}

/// The mask of the years `from..=to` (the part a mask can hold).
pub fn period_mask(from: i32, to: i32) -> i64 {
    (from.max(FIRST_YEAR)..=to.min(LAST_YEAR)).fold(0, |mask, y| mask | year_bit(y))
}

/// Where an enrolment is counted: its placement, "" for a missing level.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Place {
    province: String,
    district: String,
    commune: String,
    current_commune: String,
}

impl Place {
    fn new(
        province: &str,
        district: Option<&str>,
        commune: Option<&str>,
        current: Option<&str>,
    ) -> Place {
        Place {
            province: province.to_owned(),
            district: district.unwrap_or_default().to_owned(),
            commune: commune.unwrap_or_default().to_owned(),
            current_commune: current.unwrap_or_default().to_owned(),
        }
    }

    fn of(e: &enrolment::Model) -> Place {
        Place::new(
            &e.province_code,
            e.district_code.as_deref(),
            e.commune_code.as_deref(),
            e.current_commune_code.as_deref(),
        )
    }

    fn values(&self) -> [Value; 4] {
        [
            self.province.clone().into(),
            self.district.clone().into(),
            self.commune.clone().into(),
            self.current_commune.clone().into(),
        ]
    }
}

/// What one enrolment adds to the sums, whatever its state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub enrolments: i64,
    pub measured: i64,
    pub with_base: i64,
    pub change_ppm: i64,
    pub income_up: i64,
    pub profit_in_target: i64,
}

impl Sums {
    pub fn of(e: &enrolment::Model) -> Sums {
        let mut s = Sums {
            enrolments: 1,
            measured: i64::from(e.measured_on.is_some()),
            ..Sums::default()
        };
        if let Some(o) = outcome_of(e) {
            if o.income_before > 0 {
                s.with_base = 1;
                // Truncated toward zero, as integer division is in SQL.
                let change = i128::from(o.income_after - o.income_before) * i128::from(PPM)
                    / i128::from(o.income_before);
                s.change_ppm = i64::try_from(change).unwrap_or(i64::MAX);
            }
            s.income_up = i64::from(o.income_up_target());
            s.profit_in_target = i64::from(o.profit_in_target());
        }
        s
    }

    fn add(&mut self, other: Sums, sign: i64) {
        self.enrolments += sign * other.enrolments;
        self.measured += sign * other.measured;
        self.with_base += sign * other.with_base;
        self.change_ppm += sign * other.change_ppm;
        self.income_up += sign * other.income_up;
        self.profit_in_target += sign * other.profit_in_target;
    }

    fn values(&self) -> [Value; 6] {
        [
            self.enrolments.into(),
            self.measured.into(),
            self.with_base.into(),
            self.change_ppm.into(),
            self.income_up.into(),
            self.profit_in_target.into(),
        ]
    }
}

/// Changes to the sums, gathered while a transaction writes enrolments and
/// applied once before it commits.
#[derive(Debug, Default)]
pub struct SumsDelta {
    changes: HashMap<(Place, String, String, i32), Sums>,
}

impl SumsDelta {
    /// Counts `e` (`sign` 1) or stops counting it (`sign` −1).
    pub fn add(&mut self, e: &enrolment::Model, sign: i64) {
        let key = (
            Place::of(e),
            e.project_root.clone(),
            e.class.clone(),
            e.year,
        );
        self.changes.entry(key).or_default().add(Sums::of(e), sign);
    }

    pub async fn apply(self, conn: &impl ConnectionTrait) -> Result<(), ServiceError> {
        // In key order: two batches touching the same tally rows then lock
        // them alike on PostgreSQL and cannot deadlock.
        let mut changes: Vec<_> = self
            .changes
            .into_iter()
            .filter(|(_, s)| *s != Sums::default())
            .collect();
        changes.sort_by(|a, b| a.0.cmp(&b.0));
        let rows = changes
            .into_iter()
            .map(|((place, project, class, year), sums)| {
                let mut row: Vec<Value> = place.values().into();
                row.extend([project.into(), class.into(), year.into()]);
                row.extend(sums.values());
                row
            })
            .collect();
        SUMS.add(conn, rows).await?;
        Ok(())
    }
}

/// Where a tally row lies: the key columns every tally starts with.
const PLACE: [&str; 4] = [
    "province_code",
    "district_code",
    "commune_code",
    "current_commune_code",
];

/// The enrolment sums.
const SUMS: Tally<'static> = Tally {
    table: "enrolment_tally",
    key: &[
        PLACE[0],
        PLACE[1],
        PLACE[2],
        PLACE[3],
        "project_root",
        "class",
        "year",
    ],
    counts: &[
        "enrolments",
        "measured",
        "with_base",
        "change_ppm",
        "income_up",
        "profit_in_target",
    ],
};

/// Households by the years they were enrolled in.
const REACH: Tally<'static> = Tally {
    table: "enrolment_reach",
    key: &[
        PLACE[0],
        PLACE[1],
        PLACE[2],
        PLACE[3],
        "project_root",
        "class",
        "years_mask",
    ],
    counts: &["households"],
};

/// A household's active enrolment, as the reach needs it.
#[derive(Debug, FromQueryResult)]
struct Enrolled {
    household_id: String,
    province_code: String,
    district_code: Option<String>,
    commune_code: Option<String>,
    current_commune_code: Option<String>,
    project_root: String,
    class: String,
    year: i32,
}

type ReachKey = (String, Place, String, String);

/// Brings the reach of `household_ids` up to date with their active
/// enrolments; call it after writing them, in the same transaction.
pub async fn refresh_reach(
    conn: &impl ConnectionTrait,
    household_ids: &[String],
) -> Result<(), ServiceError> {
    if household_ids.is_empty() {
        return Ok(());
    }
    let backend = conn.get_database_backend();
    if backend == DbBackend::Postgres {
        // Two transactions touching one household one after the other, in
        // hash order so they cannot deadlock; SQLite has one writer anyway.
        let json = serde_json::to_string(household_ids)
            .map_err(|e| ServiceError::Internal(format!("household ids: {e}")))?;
        conn.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT pg_advisory_xact_lock({REACH_LOCK}, k) FROM \
                 (SELECT DISTINCT hashtext(h) AS k FROM json_array_elements_text(CAST($1 AS json)) AS h ORDER BY k) AS locks"
            ),
            [json.into()],
        ))
        .await?;
    }
    let enrolled: Vec<Enrolled> = enrolment::Entity::find()
        .select_only()
        .columns([
            enrolment::Column::HouseholdId,
            enrolment::Column::ProvinceCode,
            enrolment::Column::DistrictCode,
            enrolment::Column::CommuneCode,
            enrolment::Column::CurrentCommuneCode,
            enrolment::Column::ProjectRoot,
            enrolment::Column::Class,
            enrolment::Column::Year,
        ])
        .filter(in_json_list(backend, "household_id", household_ids)?)
        .filter(enrolment::Column::State.eq(ACTIVE))
        .into_model::<Enrolled>()
        .all(conn)
        .await?;
    let mut now: HashMap<ReachKey, i64> = HashMap::new();
    for e in enrolled {
        let place = Place::new(
            &e.province_code,
            e.district_code.as_deref(),
            e.commune_code.as_deref(),
            e.current_commune_code.as_deref(),
        );
        let bit = year_bit(e.year);
        for (project, class) in [
            (e.project_root.as_str(), e.class.as_str()),
            (e.project_root.as_str(), ""),
            ("", e.class.as_str()),
            ("", ""),
        ] {
            *now.entry((
                e.household_id.clone(),
                place.clone(),
                project.to_owned(),
                class.to_owned(),
            ))
            .or_default() |= bit;
        }
    }
    let before: HashMap<ReachKey, i64> = enrolment_reach_household::Entity::find()
        .filter(in_json_list(backend, "household_id", household_ids)?)
        .all(conn)
        .await?
        .into_iter()
        .map(|r| {
            let place = Place {
                province: r.province_code,
                district: r.district_code,
                commune: r.commune_code,
                current_commune: r.current_commune_code,
            };
            (
                (r.household_id, place, r.project_root, r.class),
                r.years_mask,
            )
        })
        .collect();

    let mut moves: HashMap<(Place, String, String, i64), i64> = HashMap::new();
    let mut changed: HashSet<String> = HashSet::new();
    let keys: HashSet<&ReachKey> = before.keys().chain(now.keys()).collect();
    for key in keys {
        let old = before.get(key).copied().unwrap_or(0);
        let new = now.get(key).copied().unwrap_or(0);
        if old == new {
            continue;
        }
        let (household, place, project, class) = key;
        changed.insert(household.clone());
        for (mask, sign) in [(old, -1), (new, 1)] {
            if mask != 0 {
                *moves
                    .entry((place.clone(), project.clone(), class.clone(), mask))
                    .or_default() += sign;
            }
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    let changed: Vec<String> = changed.into_iter().collect();
    enrolment_reach_household::Entity::delete_many()
        .filter(in_json_list(backend, "household_id", &changed)?)
        .exec(conn)
        .await?;
    let changed: HashSet<&String> = changed.iter().collect();
    let rows: Vec<enrolment_reach_household::Model> = now
        .into_iter()
        .filter(|((household, ..), mask)| *mask != 0 && changed.contains(household))
        .map(|((household_id, place, project_root, class), years_mask)| {
            enrolment_reach_household::Model {
                household_id,
                province_code: place.province,
                district_code: place.district,
                commune_code: place.commune,
                current_commune_code: place.current_commune,
                project_root,
                class,
                years_mask,
            }
        })
        .collect();
    sustain_db::insert_statements::<enrolment_reach_household::Entity>(conn, rows, &[]).await?;

    use enrolment_reach::Column as C;
    // In key order, as the sums: writers of different households share these rows.
    let mut moves: Vec<_> = moves.into_iter().filter(|(_, n)| *n != 0).collect();
    moves.sort_by(|a, b| a.0.cmp(&b.0));
    let rows = moves
        .into_iter()
        .map(|((place, project, class, mask), n)| {
            let mut row: Vec<Value> = place.values().into();
            row.extend([project.into(), class.into(), mask.into(), n.into()]);
            row
        })
        .collect();
    REACH.add(conn, rows).await?;
    // Masks nobody holds any more.
    enrolment_reach::Entity::delete_many()
        .filter(C::Households.eq(0))
        .exec(conn)
        .await?;
    Ok(())
}

/// Builds the tallies from the enrolments: for a database whose enrolments
/// predate them (the migration), and to check them.
pub async fn rebuild(conn: &impl ConnectionTrait) -> Result<(), ServiceError> {
    enrolment_tally::Entity::delete_many().exec(conn).await?;
    enrolment_reach::Entity::delete_many().exec(conn).await?;
    enrolment_reach_household::Entity::delete_many()
        .exec(conn)
        .await?;
    let mut after: Option<String> = None;
    loop {
        let mut query = enrolment::Entity::find().filter(enrolment::Column::State.eq(ACTIVE));
        if let Some(id) = &after {
            query = query.filter(enrolment::Column::Id.gt(id.as_str()));
        }
        let rows = sea_orm::QueryOrder::order_by_asc(query, enrolment::Column::Id)
            .limit(5_000)
            .all(conn)
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id.clone());
        let mut sums = SumsDelta::default();
        for r in &rows {
            sums.add(r, 1);
        }
        sums.apply(conn).await?;
    }
    let households: Vec<String> = enrolment::Entity::find()
        .select_only()
        .column(enrolment::Column::HouseholdId)
        .distinct()
        .filter(enrolment::Column::State.eq(ACTIVE))
        .into_tuple()
        .all(conn)
        .await?;
    for chunk in households.chunks(2_000) {
        refresh_reach(conn, chunk).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_hold_the_years_of_the_period_and_no_others() {
        assert_eq!(year_bit(FIRST_YEAR), 1);
        assert_eq!(year_bit(LAST_YEAR), 1 << 62);
        assert_eq!(year_bit(FIRST_YEAR - 1), 0);
        assert_eq!(year_bit(LAST_YEAR + 1), 0);
        assert!(
            period_mask(FIRST_YEAR, LAST_YEAR) > 0,
            "the sign bit stays clear"
        );
        let p = period_mask(2021, 2024);
        assert_eq!(p.count_ones(), 4);
        assert_ne!(p & year_bit(2021), 0);
        assert_ne!(p & year_bit(2024), 0);
        assert_eq!(p & year_bit(2020), 0);
        assert_eq!(p & year_bit(2025), 0);
        assert_eq!(period_mask(2024, 2021), 0);
        assert_eq!(period_mask(1990, 2000), 1);
    }
}
