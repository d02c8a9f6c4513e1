//! Sector reports: the one live report of a unit, year and kind, and the
//! reports a summary counts.

use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder};
use sustain_platform::error::ServiceError;
use sustain_platform::placement::under_unit;

use crate::convert::ACTIVE;
use crate::model::sector_report as report;

/// Key of the PostgreSQL advisory lock that makes "one live report per unit,
/// year and kind" hold under concurrent creates ("sect").
const LOCK: i64 = 0x7365_6374;

/// Holds the reports' lock until the transaction ends (SQLite write
/// transactions are one at a time already).
pub async fn lock(conn: &impl ConnectionTrait) -> Result<(), ServiceError> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({LOCK})"))
            .await?;
    }
    Ok(())
}

/// The live report of `unit`, `year` and `kind`, if there is one.
pub async fn live_report(
    conn: &impl ConnectionTrait,
    unit: &str,
    year: i32,
    kind: &str,
) -> Result<Option<report::Model>, ServiceError> {
    Ok(report::Entity::find()
        .filter(report::Column::UnitCode.eq(unit))
        .filter(report::Column::Year.eq(year))
        .filter(report::Column::Kind.eq(kind))
        .filter(report::Column::State.eq(ACTIVE))
        .one(conn)
        .await?)
}

/// The live reports under `unit` for `from`–`to`: by year, the newest first.
pub async fn reports_under(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<Vec<report::Model>, ServiceError> {
    Ok(report::Entity::find()
        .filter(under_unit(unit))
        .filter(report::Column::State.eq(ACTIVE))
        .filter(report::Column::Year.between(from, to))
        .order_by_asc(report::Column::Year)
        .order_by_desc(report::Column::UpdatedAt)
        .order_by_desc(report::Column::Id)
        .all(conn)
        .await?)
}
