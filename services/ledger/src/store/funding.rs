//! The one grouped read every funding summary is counted from.

use sea_orm::{ConnectionTrait, FromQueryResult, Statement};
use sustain_platform::error::ServiceError;

/// Transfers grouped by everything a summary breaks them down by.
#[derive(Debug, FromQueryResult)]
pub struct Moved {
    pub d_kind: String,
    pub c_kind: String,
    pub reversal: bool,
    pub state: String,
    pub source: String,
    pub d_project: String,
    pub c_project: String,
    pub d_year: i32,
    pub c_year: i32,
    pub d_province: String,
    pub d_district: Option<String>,
    pub d_commune: Option<String>,
    pub d_current: Option<String>,
    pub c_province: String,
    pub c_district: Option<String>,
    pub c_commune: Option<String>,
    pub c_current: Option<String>,
    pub amount: i64,
}

/// The transfers of `province` (every province for ""), grouped by
/// everything a summary breaks them down by; voided ones left out.
pub async fn moved(
    conn: &impl ConnectionTrait,
    province: &str,
) -> Result<Vec<Moved>, ServiceError> {
    let backend = conn.get_database_backend();
    let sql = "SELECT da.kind AS d_kind, ca.kind AS c_kind, \
        CASE WHEN t.reverses_id IS NULL THEN 0 ELSE 1 END = 1 AS reversal, t.state AS state, \
        da.source AS source, da.project_code AS d_project, ca.project_code AS c_project, \
        da.year AS d_year, ca.year AS c_year, \
        da.province_code AS d_province, da.district_code AS d_district, da.commune_code AS d_commune, da.current_commune_code AS d_current, \
        ca.province_code AS c_province, ca.district_code AS c_district, ca.commune_code AS c_commune, ca.current_commune_code AS c_current, \
        CAST(SUM(t.amount) AS BIGINT) AS amount \
        FROM ledger_transfer t \
        JOIN ledger_account da ON da.id = t.debit_account_id \
        JOIN ledger_account ca ON ca.id = t.credit_account_id \
        WHERE ($1 = '' OR da.province_code = $1 OR ca.province_code = $1) AND t.state <> 'voided' \
        GROUP BY da.kind, ca.kind, CASE WHEN t.reverses_id IS NULL THEN 0 ELSE 1 END, t.state, da.source, \
        da.project_code, ca.project_code, da.year, ca.year, \
        da.province_code, da.district_code, da.commune_code, da.current_commune_code, \
        ca.province_code, ca.district_code, ca.commune_code, ca.current_commune_code";
    let sql = match backend {
        sea_orm::DbBackend::Postgres => sql.to_owned(),
        _ => sql.replace("$1", "?"),
    };
    let values: Vec<sea_orm::Value> = match backend {
        sea_orm::DbBackend::Postgres => vec![province.into()],
        _ => vec![province.into(); 3],
    };
    Ok(
        Moved::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .all(conn)
            .await?,
    )
}
