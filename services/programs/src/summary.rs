//! The programme summary of a unit over a period, counted by the database from
//! the records themselves (no running totals to drift): a few grouped queries.

use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter,
    QuerySelect,
};
use sustain_domain::Violations;
use sustain_domain::admin;
use sustain_domain::poverty::{Rate, Standing};
use sustain_domain::programme::{
    INCOME_RISE_TARGET_PERCENT, PRODUCTION_PROJECT, PROFIT_TARGET_VND,
};
use sustain_platform::Caller;
use sustain_platform::error::ServiceError;
use sustain_platform::placement::under_unit;
use sustain_proto::programs::v1 as pb;
use tonic::{Request, Response, Status};

use crate::READ;
use crate::convert::{ACTIVE, check, class_to_proto};
use crate::livelihood::convert::type_from_code;
use crate::model::{enrolment, livelihood_model};

/// Longest period one summary covers.
pub const MAX_YEARS: i32 = 20;

/// Income changes are summed in millionths: exact enough for two decimals of a
/// percentage, and integer arithmetic on both databases.
const PPM: i64 = 1_000_000;

#[derive(Debug, Clone)]
pub struct SummaryApi {
    pub db: DatabaseConnection,
}

/// The period and unit asked for, checked against the caller's scope: the
/// whole unit must lie inside it.
pub fn checked_request(
    caller: &Caller,
    request: &pb::GetProgrammeSummaryRequest,
) -> Result<(String, i32, i32), ServiceError> {
    let mut v = Violations::new();
    let unit = request.unit_code.trim().to_owned();
    if unit.is_empty() {
        v.add("unit_code", "is required");
    } else if !admin::catalog().is_known(&unit) {
        v.add("unit_code", "is not a known administrative unit code");
    }
    for (field, year) in [
        ("from_year", request.from_year),
        ("to_year", request.to_year),
    ] {
        if !(2000..=2100).contains(&year) {
            v.add(field, "must be a year between 2000 and 2100");
        }
    }
    if request.to_year < request.from_year {
        v.add("to_year", "is before from_year");
    } else if request.to_year - request.from_year >= MAX_YEARS {
        v.add(
            "to_year",
            format!("a summary covers at most {MAX_YEARS} years"),
        );
    }
    check(v)?;
    if !caller.scope.contains_unit(&unit) {
        return Err(ServiceError::PermissionDenied {
            reason: "OUT_OF_SCOPE",
            message: format!(
                "unit {unit} is not wholly inside the caller's scope; ask for a unit within it"
            ),
        });
    }
    Ok((unit, request.from_year, request.to_year))
}

fn sum(expr: &str) -> Expr {
    Expr::cust(format!("CAST(COALESCE(SUM({expr}), 0) AS BIGINT)"))
}

/// One class's enrolment figures.
#[derive(Debug, FromQueryResult)]
struct ClassRow {
    class: String,
    enrolments: i64,
    households: i64,
    measured: i64,
    with_base: i64,
    change_ppm: i64,
    up: i64,
    profit: i64,
}

/// The models' and enrolments' figures.
pub async fn model_figures(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<pb::ModelFigures, ServiceError> {
    let models: Vec<(String, String, i64, i64, i64)> = livelihood_model::Entity::find()
        .select_only()
        .column(livelihood_model::Column::ModelType)
        .column(livelihood_model::Column::ProjectRoot)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .column_as(sum("budget_vnd"), "budget")
        .column_as(sum("jobs_created"), "jobs")
        .filter(under_unit(unit))
        .filter(livelihood_model::Column::State.eq(ACTIVE))
        .filter(livelihood_model::Column::StartYear.lte(to))
        .filter(livelihood_model::Column::EndYear.gte(from))
        .group_by(livelihood_model::Column::ModelType)
        .group_by(livelihood_model::Column::ProjectRoot)
        .into_tuple()
        .all(conn)
        .await?;
    let mut figures = pb::ModelFigures::default();
    let mut by_type: std::collections::BTreeMap<i32, i64> = Default::default();
    for (model_type, root, n, budget, jobs) in models {
        figures.models += n;
        figures.budget_vnd += budget;
        figures.jobs_created += jobs;
        if root == PRODUCTION_PROJECT {
            figures.project3_models += n;
        }
        *by_type
            .entry(type_from_code(&model_type) as i32)
            .or_default() += n;
    }
    figures.by_type = by_type
        .into_iter()
        .map(|(r#type, models)| pb::ModelTypeCount { r#type, models })
        .collect();

    let enrolled = || {
        Condition::all()
            .add(under_unit(unit))
            .add(enrolment::Column::State.eq(ACTIVE))
            .add(enrolment::Column::Year.between(from, to))
    };
    let (low, high) = PROFIT_TARGET_VND;
    let rows: Vec<ClassRow> = enrolment::Entity::find()
        .select_only()
        .column(enrolment::Column::Class)
        .column_as(Expr::cust("COUNT(*)"), "enrolments")
        .column_as(Expr::cust("COUNT(DISTINCT household_id)"), "households")
        .column_as(sum("CASE WHEN measured_on IS NULL THEN 0 ELSE 1 END"), "measured")
        .column_as(
            sum("CASE WHEN income_before_vnd > 0 THEN 1 ELSE 0 END"),
            "with_base",
        )
        .column_as(
            sum(&format!(
                "CASE WHEN income_before_vnd > 0 THEN (income_after_vnd - income_before_vnd) * {PPM} / income_before_vnd ELSE 0 END"
            )),
            "change_ppm",
        )
        .column_as(
            sum(&format!(
                "CASE WHEN income_before_vnd > 0 AND (income_after_vnd - income_before_vnd) * 100 >= income_before_vnd * {INCOME_RISE_TARGET_PERCENT} THEN 1 ELSE 0 END"
            )),
            "up",
        )
        .column_as(
            sum(&format!(
                "CASE WHEN yearly_profit_vnd BETWEEN {low} AND {high} THEN 1 ELSE 0 END"
            )),
            "profit",
        )
        .filter(enrolled())
        .group_by(enrolment::Column::Class)
        .into_model::<ClassRow>()
        .all(conn)
        .await?;
    let mut with_base = 0;
    let mut change_ppm = 0;
    let mut by_class = vec![];
    for r in rows {
        figures.enrolments += r.enrolments;
        figures.outcomes_measured += r.measured;
        figures.income_up_30_percent += r.up;
        figures.profit_in_target += r.profit;
        with_base += r.with_base;
        change_ppm += r.change_ppm;
        by_class.push((Standing::from_code(&r.class), r.class, r.households));
    }
    by_class.sort_by_key(|(standing, _, _)| *standing);
    figures.households_by_class = by_class
        .into_iter()
        .map(|(_, class, households)| pb::ClassCount {
            class_at_enrolment: class_to_proto(&class) as i32,
            households,
        })
        .collect();
    figures.average_income_change_percent = if with_base == 0 {
        String::new()
    } else {
        Rate::new(change_ppm, with_base * PPM).to_string()
    };
    let distinct: Option<i64> = enrolment::Entity::find()
        .select_only()
        .column_as(Expr::cust("COUNT(DISTINCT household_id)"), "n")
        .filter(enrolled())
        .into_tuple()
        .one(conn)
        .await?;
    figures.enrolled_households = distinct.unwrap_or(0);
    Ok(figures)
}

#[tonic::async_trait]
impl pb::programme_summary_service_server::ProgrammeSummaryService for SummaryApi {
    async fn get_programme_summary(
        &self,
        request: Request<pb::GetProgrammeSummaryRequest>,
    ) -> Result<Response<pb::GetProgrammeSummaryResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read programme summaries", READ)?;
        let (unit, from, to) = checked_request(&caller, request.get_ref())?;
        let models = model_figures(&self.db, &unit, from, to).await?;
        Ok(Response::new(pb::GetProgrammeSummaryResponse {
            summary: Some(pb::ProgrammeSummary {
                unit_code: unit,
                from_year: from,
                to_year: to,
                models: Some(models),
            }),
        }))
    }
}
