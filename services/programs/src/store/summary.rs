//! The programme summary's reads: a few grouped queries over the records,
//! and for the enrolments over their running tallies (`store::tally`). Each
//! returns plain rows; `summary` puts them together.

use chrono::NaiveDate;
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QuerySelect,
    QueryTrait,
};
use sustain_domain::programme::{
    INCOME_RISE_TARGET_PERCENT, PRODUCTION_PROJECT, PROFIT_TARGET_VND,
};
use sustain_platform::error::ServiceError;
use sustain_platform::placement::under_unit;

use crate::convert::ACTIVE;
use crate::model::{
    communication_activity as activity, course, enrolment, enrolment_reach, enrolment_tally,
    inspection, livelihood_model, support, trainee,
};
use crate::store::tally::{PPM, Sums, period_mask};

fn sum(expr: &str) -> Expr {
    Expr::cust(format!("CAST(COALESCE(SUM({expr}), 0) AS BIGINT)"))
}

/// One Project's and class's enrolment sums, counted from the enrolments.
#[derive(Debug, FromQueryResult)]
struct ClassRow {
    project_root: String,
    class: String,
    enrolments: i64,
    households: i64,
    measured: i64,
    with_base: i64,
    change_ppm: i64,
    up: i64,
    profit: i64,
}

/// One Project's and class's sums, read from the tallies.
#[derive(Debug, FromQueryResult)]
struct TallyRow {
    project_root: String,
    class: String,
    enrolments: i64,
    measured: i64,
    with_base: i64,
    change_ppm: i64,
    income_up: i64,
    profit_in_target: i64,
}

/// The enrolments of a unit and period, however they were counted: sums per
/// Project and class, and distinct households per Project and class with ""
/// standing for any (so `("", "")` is every household enrolled).
#[derive(Debug, Default)]
pub struct EnrolmentCounts {
    pub sums: Vec<(String, String, Sums)>,
    pub households: Vec<(String, String, i64)>,
}

/// Models under the unit running at some time in the period, by type and
/// Project: (type, Project, models, budget, jobs).
pub async fn models_running(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<Vec<(String, String, i64, i64, i64)>, ServiceError> {
    Ok(livelihood_model::Entity::find()
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
        .await?)
}

pub async fn tallied_enrolments(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<EnrolmentCounts, ServiceError> {
    let rows: Vec<TallyRow> = enrolment_tally::Entity::find()
        .select_only()
        .column(enrolment_tally::Column::ProjectRoot)
        .column(enrolment_tally::Column::Class)
        .column_as(sum("enrolments"), "enrolments")
        .column_as(sum("measured"), "measured")
        .column_as(sum("with_base"), "with_base")
        .column_as(sum("change_ppm"), "change_ppm")
        .column_as(sum("income_up"), "income_up")
        .column_as(sum("profit_in_target"), "profit_in_target")
        .filter(under_unit(unit))
        .filter(enrolment_tally::Column::Year.between(from, to))
        .group_by(enrolment_tally::Column::ProjectRoot)
        .group_by(enrolment_tally::Column::Class)
        .into_model::<TallyRow>()
        .all(conn)
        .await?;
    let households: Vec<(String, String, i64)> = enrolment_reach::Entity::find()
        .select_only()
        .column(enrolment_reach::Column::ProjectRoot)
        .column(enrolment_reach::Column::Class)
        .column_as(sum("households"), "n")
        .filter(under_unit(unit))
        .filter(Expr::cust(format!(
            "(years_mask & {}) <> 0",
            period_mask(from, to)
        )))
        .group_by(enrolment_reach::Column::ProjectRoot)
        .group_by(enrolment_reach::Column::Class)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(EnrolmentCounts {
        // A group whose enrolments were all archived holds zeros: the
        // recount has no such group.
        sums: rows
            .into_iter()
            .filter(|r| r.enrolments != 0)
            .map(|r| {
                let sums = Sums {
                    enrolments: r.enrolments,
                    measured: r.measured,
                    with_base: r.with_base,
                    change_ppm: r.change_ppm,
                    income_up: r.income_up,
                    profit_in_target: r.profit_in_target,
                };
                (r.project_root, r.class, sums)
            })
            .collect(),
        households: households.into_iter().filter(|(.., n)| *n != 0).collect(),
    })
}

pub async fn recounted_enrolments(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<EnrolmentCounts, ServiceError> {
    let enrolled = || {
        Condition::all()
            .add(under_unit(unit))
            .add(enrolment::Column::State.eq(ACTIVE))
            .add(enrolment::Column::Year.between(from, to))
    };
    let (low, high) = PROFIT_TARGET_VND;
    let rows: Vec<ClassRow> = enrolment::Entity::find()
        .select_only()
        .column(enrolment::Column::ProjectRoot)
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
        .group_by(enrolment::Column::ProjectRoot)
        .group_by(enrolment::Column::Class)
        .into_model::<ClassRow>()
        .all(conn)
        .await?;
    let mut counts = EnrolmentCounts::default();
    for r in rows {
        counts
            .households
            .push((r.project_root.clone(), r.class.clone(), r.households));
        let sums = Sums {
            enrolments: r.enrolments,
            measured: r.measured,
            with_base: r.with_base,
            change_ppm: r.change_ppm,
            income_up: r.up,
            profit_in_target: r.profit,
        };
        counts.sums.push((r.project_root, r.class, sums));
    }
    // Distinct households across Projects, across classes, and across both:
    // a household in a Project 2 model and a Project 3 project counts once.
    let by_class: Vec<(String, i64)> = enrolment::Entity::find()
        .select_only()
        .column(enrolment::Column::Class)
        .column_as(Expr::cust("COUNT(DISTINCT household_id)"), "n")
        .filter(enrolled())
        .group_by(enrolment::Column::Class)
        .into_tuple()
        .all(conn)
        .await?;
    let by_project: Vec<(String, i64)> = enrolment::Entity::find()
        .select_only()
        .column(enrolment::Column::ProjectRoot)
        .column_as(Expr::cust("COUNT(DISTINCT household_id)"), "n")
        .filter(enrolled())
        .group_by(enrolment::Column::ProjectRoot)
        .into_tuple()
        .all(conn)
        .await?;
    let total: Option<i64> = enrolment::Entity::find()
        .select_only()
        .column_as(Expr::cust("COUNT(DISTINCT household_id)"), "n")
        .filter(enrolled())
        .into_tuple()
        .one(conn)
        .await?;
    counts
        .households
        .extend(by_class.into_iter().map(|(c, n)| (String::new(), c, n)));
    counts
        .households
        .extend(by_project.into_iter().map(|(p, n)| (p, String::new(), n)));
    if let Some(n) = total.filter(|n| *n != 0) {
        counts.households.push((String::new(), String::new(), n));
    }
    Ok(counts)
}

/// One kind of course and whether it is Project 3's, as counted.
#[derive(Debug, FromQueryResult)]
pub struct CourseRow {
    pub kind: String,
    pub p3: bool,
    pub n: i64,
    pub officials: i64,
}

/// Courses under the unit starting in the period, by kind and Project 3.
pub async fn courses(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<Vec<CourseRow>, ServiceError> {
    Ok(course::Entity::find()
        .select_only()
        .column(course::Column::Kind)
        .column_as(
            Expr::cust(format!("CASE WHEN project_code = '{PRODUCTION_PROJECT}' OR project_code LIKE '{PRODUCTION_PROJECT}.%' THEN 1 ELSE 0 END = 1")),
            "p3",
        )
        .column_as(Expr::cust("COUNT(*)"), "n")
        .column_as(sum("official_participants"), "officials")
        .filter(under_unit(unit))
        .filter(course::Column::State.eq(ACTIVE))
        .filter(course::Column::StartYear.between(from, to))
        .group_by(course::Column::Kind)
        .group_by(Expr::cust("2"))
        .into_model::<CourseRow>()
        .all(conn)
        .await?)
}

/// Trainees of one kind of course, employment and destination, as counted.
#[derive(Debug, FromQueryResult)]
pub struct TraineeRow {
    pub course_kind: String,
    pub employment: String,
    pub destination_country: Option<String>,
    pub n: i64,
    pub done: i64,
}

/// The trainees of the courses [`courses`] counts: joined by the course's
/// placement, not the trainee's home, so a district course counts everyone
/// it trained.
pub async fn trainees(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<Vec<TraineeRow>, ServiceError> {
    let in_courses = course::Entity::find()
        .select_only()
        .column(course::Column::Id)
        .filter(under_unit(unit))
        .filter(course::Column::State.eq(ACTIVE))
        .filter(course::Column::StartYear.between(from, to))
        .as_query()
        .to_owned();
    Ok(trainee::Entity::find()
        .select_only()
        .column(trainee::Column::CourseKind)
        .column(trainee::Column::Employment)
        .column(trainee::Column::DestinationCountry)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .column_as(sum("CASE WHEN completed THEN 1 ELSE 0 END"), "done")
        .filter(trainee::Column::State.eq(ACTIVE))
        .filter(trainee::Column::CourseId.in_subquery(in_courses))
        .group_by(trainee::Column::CourseKind)
        .group_by(trainee::Column::Employment)
        .group_by(trainee::Column::DestinationCountry)
        .into_model::<TraineeRow>()
        .all(conn)
        .await?)
}

/// One kind (and housing work) of support's figures.
#[derive(Debug, FromQueryResult)]
pub struct SupportRow {
    pub kind: String,
    pub work: Option<String>,
    pub n: i64,
    pub amount: i64,
    pub completed: i64,
    pub underweight: i64,
    pub stunted: i64,
}

/// Support given in the period to households under the unit, by kind and work.
pub async fn support(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<Vec<SupportRow>, ServiceError> {
    Ok(support::Entity::find()
        .select_only()
        .column(support::Column::Kind)
        .column(support::Column::Work)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .column_as(sum("amount_vnd"), "amount")
        .column_as(
            sum("CASE WHEN completed_on IS NULL THEN 0 ELSE 1 END"),
            "completed",
        )
        .column_as(
            sum("CASE WHEN underweight IN ('moderate', 'severe') THEN 1 ELSE 0 END"),
            "underweight",
        )
        .column_as(
            sum("CASE WHEN stunted IN ('moderate', 'severe') THEN 1 ELSE 0 END"),
            "stunted",
        )
        .filter(under_unit(unit))
        .filter(support::Column::State.eq(ACTIVE))
        .filter(support::Column::Year.between(from, to))
        .group_by(support::Column::Kind)
        .group_by(support::Column::Work)
        .into_model::<SupportRow>()
        .all(conn)
        .await?)
}

/// Children under the unit whose nutrition was checked in `year`.
pub async fn children_measured(
    conn: &impl ConnectionTrait,
    unit: &str,
    year: i32,
) -> Result<i64, ServiceError> {
    let measured: Option<i64> = support::Entity::find()
        .select_only()
        .column_as(Expr::cust("COUNT(DISTINCT member_id)"), "n")
        .filter(under_unit(unit))
        .filter(support::Column::State.eq(ACTIVE))
        .filter(support::Column::Kind.eq("nutrition"))
        .filter(support::Column::Year.eq(year))
        .into_tuple()
        .one(conn)
        .await?;
    Ok(measured.unwrap_or(0))
}

/// Communication activities in the period: (kind, activities, items, people).
pub async fn activities(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<Vec<(String, i64, i64, i64)>, ServiceError> {
    Ok(activity::Entity::find()
        .select_only()
        .column(activity::Column::Kind)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .column_as(sum("count"), "items")
        .column_as(sum("participants"), "people")
        .filter(under_unit(unit))
        .filter(activity::Column::State.eq(ACTIVE))
        .filter(activity::Column::Year.between(from, to))
        .group_by(activity::Column::Kind)
        .into_tuple()
        .all(conn)
        .await?)
}

/// Inspections in the period: (all, with open follow-ups, with follow-ups
/// overdue on `today`).
pub async fn inspections(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
    today: NaiveDate,
) -> Result<(i64, i64, i64), ServiceError> {
    let row: Option<(i64, i64, i64)> = inspection::Entity::find()
        .select_only()
        .column_as(Expr::cust("COUNT(*)"), "n")
        .column_as(
            sum("CASE WHEN open_follow_ups > 0 THEN 1 ELSE 0 END"),
            "open",
        )
        .column_as(
            // `today` is our own date, written as an ISO literal both databases
            // compare with a date column.
            sum(&format!(
                "CASE WHEN next_due_on < '{today}' THEN 1 ELSE 0 END"
            )),
            "overdue",
        )
        .filter(under_unit(unit))
        .filter(inspection::Column::State.eq(ACTIVE))
        .filter(inspection::Column::Year.between(from, to))
        .into_tuple()
        .one(conn)
        .await?;
    Ok(row.unwrap_or_default())
}
