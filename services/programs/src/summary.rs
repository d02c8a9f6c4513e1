//! The programme summary of a unit over a period: a few grouped queries over
//! the records, and for the enrolments over their running tallies
//! (`livelihood::tally`), which [`recount_model_figures`] checks.

use chrono::NaiveDate;
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter,
    QuerySelect, QueryTrait,
};
use std::collections::BTreeMap;

use sustain_domain::poverty::{Rate, Standing};
use sustain_domain::programme::{
    INCOME_RISE_TARGET_PERCENT, PRODUCTION_PROJECT, PROFIT_TARGET_VND,
};
use sustain_platform::Caller;
use sustain_platform::api::today;
use sustain_platform::error::ServiceError;
use sustain_platform::placement::under_unit;
use sustain_proto::programs::v1 as pb;
use tonic::{Request, Response, Status};

use crate::READ;
use crate::convert::{ACTIVE, class_to_proto};
use crate::livelihood::convert::type_from_code;
use crate::livelihood::tally::{PPM, Sums, period_mask};
use crate::model::{
    communication_activity as activity, course, enrolment, enrolment_reach, enrolment_tally,
    inspection, livelihood_model, support, trainee,
};
use crate::registry::{Registry, credentials_of};
use crate::training::kind_from_code;

/// Longest period one summary covers.
pub const MAX_YEARS: i32 = 20;

#[derive(Debug, Clone)]
pub struct SummaryApi {
    pub db: DatabaseConnection,
    pub registry: Registry,
    pub cache: SummaryCache,
}

/// Local figures by the journal head they were read at: every write to the
/// programme records (models, enrolments and outcomes, courses, trainees,
/// support, communication, inspections, sector reports, the catalogue) journals in its own
/// transaction and moves the head.
pub type SummaryCache = sustain_platform::cache::SummaryCache<pb::ProgrammeSummary>;

/// The local figures as of the current journal head, from the cache when
/// that head's figures have been read already.
pub async fn current_local_summary(
    db: &DatabaseConnection,
    cache: &SummaryCache,
    unit: &str,
    from: i32,
    to: i32,
    today: NaiveDate,
) -> Result<pb::ProgrammeSummary, ServiceError> {
    let txn = sustain_platform::db::begin_snapshot(db).await?;
    let head = sustain_platform::journal::head(&txn).await?;
    let key = (unit.to_owned(), from, to, today, head);
    if let Some(hit) = cache.get(&key) {
        return Ok(std::sync::Arc::unwrap_or_clone(hit));
    }
    let fresh = local_summary(&txn, unit, from, to, today).await?;
    txn.commit().await?;
    cache.insert(key, std::sync::Arc::new(fresh.clone()));
    Ok(fresh)
}

/// The period and unit asked for, checked against the caller's scope: the
/// whole unit must lie inside it.
pub fn checked_request(
    caller: &Caller,
    request: &pb::GetProgrammeSummaryRequest,
) -> Result<(String, i32, i32), ServiceError> {
    sustain_platform::api::checked_period(
        caller,
        &request.unit_code,
        request.from_year,
        request.to_year,
        MAX_YEARS,
        "summary",
    )
}

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
struct EnrolmentCounts {
    sums: Vec<(String, String, Sums)>,
    households: Vec<(String, String, i64)>,
}

/// One Project's figures while they are added up: the figures, models by
/// type, households by class.
type ProjectTally = (
    pb::ProjectModelFigures,
    BTreeMap<i32, i64>,
    Vec<(Option<Standing>, String, i64)>,
);

fn type_counts(counts: BTreeMap<i32, i64>) -> Vec<pb::ModelTypeCount> {
    counts
        .into_iter()
        .map(|(r#type, models)| pb::ModelTypeCount { r#type, models })
        .collect()
}

fn class_counts(mut counts: Vec<(Option<Standing>, String, i64)>) -> Vec<pb::ClassCount> {
    counts.sort_by_key(|(standing, _, _)| *standing);
    counts
        .into_iter()
        .map(|(_, class, households)| pb::ClassCount {
            class_at_enrolment: class_to_proto(&class) as i32,
            households,
        })
        .collect()
}

/// The models' and enrolments' figures, in total and Project by Project,
/// read from the running tallies (`livelihood::tally`).
pub async fn model_figures(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<pb::ModelFigures, ServiceError> {
    let (models, counts) = tokio::try_join!(
        models_running(conn, unit, from, to),
        tallied_enrolments(conn, unit, from, to)
    )?;
    Ok(assemble(models, counts))
}

/// The same figures counted from the enrolments themselves: what the tallies
/// are checked against, and the baseline the benchmark times them beside.
pub async fn recount_model_figures(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<pb::ModelFigures, ServiceError> {
    let models = models_running(conn, unit, from, to).await?;
    let counts = recounted_enrolments(conn, unit, from, to).await?;
    Ok(assemble(models, counts))
}

/// Models under the unit running at some time in the period, by type and
/// Project: (type, Project, models, budget, jobs).
async fn models_running(
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

async fn tallied_enrolments(
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

async fn recounted_enrolments(
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

/// Puts the models and the enrolment counts together, in total and Project
/// by Project.
fn assemble(
    models: Vec<(String, String, i64, i64, i64)>,
    counts: EnrolmentCounts,
) -> pb::ModelFigures {
    let mut figures = pb::ModelFigures::default();
    let mut by_type: BTreeMap<i32, i64> = BTreeMap::new();
    let mut projects: BTreeMap<String, ProjectTally> = BTreeMap::new();
    for (model_type, root, n, budget, jobs) in models {
        figures.models += n;
        figures.budget_vnd += budget;
        figures.jobs_created += jobs;
        if root == PRODUCTION_PROJECT {
            figures.project3_models += n;
        }
        let t = type_from_code(&model_type) as i32;
        *by_type.entry(t).or_default() += n;
        let p = projects.entry(root.clone()).or_default();
        p.0.models += n;
        p.0.budget_vnd += budget;
        p.0.jobs_created += jobs;
        *p.1.entry(t).or_default() += n;
    }
    figures.by_type = type_counts(by_type);

    let mut with_base = 0;
    let mut change_ppm = 0;
    for (root, _, s) in counts.sums {
        figures.enrolments += s.enrolments;
        figures.outcomes_measured += s.measured;
        figures.income_up_30_percent += s.income_up;
        figures.profit_in_target += s.profit_in_target;
        with_base += s.with_base;
        change_ppm += s.change_ppm;
        projects.entry(root).or_default().0.enrolments += s.enrolments;
    }
    figures.average_income_change_percent = if with_base == 0 {
        String::new()
    } else {
        Rate::new(change_ppm, with_base * PPM).to_string()
    };
    let mut by_class = vec![];
    for (root, class, n) in counts.households {
        match (root.is_empty(), class.is_empty()) {
            (true, true) => figures.enrolled_households = n,
            (true, false) => by_class.push((Standing::from_code(&class), class, n)),
            (false, true) => projects.entry(root).or_default().0.enrolled_households = n,
            (false, false) => {
                let standing = Standing::from_code(&class);
                projects
                    .entry(root)
                    .or_default()
                    .2
                    .push((standing, class, n));
            }
        }
    }
    figures.households_by_class = class_counts(by_class);
    figures.projects = projects
        .into_iter()
        .map(|(code, (mut p, types, classes))| {
            p.project_code = code;
            p.by_type = type_counts(types);
            p.households_by_class = class_counts(classes);
            p
        })
        .collect();
    figures
}

/// Courses starting in the period under the unit, and their trainees.
pub async fn training_figures(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<pb::TrainingFigures, ServiceError> {
    let courses: Vec<(String, bool, i64, i64)> = course::Entity::find()
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
        .into_tuple()
        .all(conn)
        .await?;
    let mut f = pb::TrainingFigures::default();
    let mut by_kind: std::collections::BTreeMap<i32, (i64, i64)> = Default::default();
    for (kind, p3, n, officials) in courses {
        f.courses += n;
        f.official_participants += officials;
        if p3 {
            f.project3_courses += n;
        }
        by_kind.entry(kind_from_code(&kind) as i32).or_default().0 += n;
    }
    // Trainees of those courses: joined by the course's placement, not the
    // trainee's home, so a district course counts everyone it trained.
    let in_courses = course::Entity::find()
        .select_only()
        .column(course::Column::Id)
        .filter(under_unit(unit))
        .filter(course::Column::State.eq(ACTIVE))
        .filter(course::Column::StartYear.between(from, to))
        .as_query()
        .to_owned();
    let trainees: Vec<(String, String, Option<String>, i64, i64)> = trainee::Entity::find()
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
        .into_tuple()
        .all(conn)
        .await?;
    let mut abroad: std::collections::BTreeMap<String, i64> = Default::default();
    for (kind, employment, country, n, done) in trainees {
        f.trainees += n;
        f.completed += done;
        by_kind.entry(kind_from_code(&kind) as i32).or_default().1 += n;
        match employment.as_str() {
            "new_job" => f.new_jobs += n,
            "work_abroad" => {
                f.working_abroad += n;
                *abroad.entry(country.unwrap_or_default()).or_default() += n;
            }
            _ => {}
        }
    }
    f.completion_percent = if f.trainees == 0 {
        String::new()
    } else {
        Rate::new(f.completed, f.trainees).to_string()
    };
    f.by_kind = by_kind
        .into_iter()
        .map(|(kind, (courses, trainees))| pb::CourseKindCount {
            kind,
            courses,
            trainees,
        })
        .collect();
    f.abroad_by_country = abroad
        .into_iter()
        .map(|(country, workers)| pb::CountryCount { country, workers })
        .collect();
    Ok(f)
}

/// One kind (and housing work) of support's figures.
#[derive(Debug, FromQueryResult)]
struct SupportRow {
    kind: String,
    work: Option<String>,
    n: i64,
    amount: i64,
    completed: i64,
    underweight: i64,
    stunted: i64,
}

/// Support given in the period to households under the unit; the under-five
/// denominator is the caller's to fill in.
pub async fn support_figures(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<pb::SupportFigures, ServiceError> {
    let rows: Vec<SupportRow> = support::Entity::find()
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
        .await?;
    let mut f = pb::SupportFigures::default();
    for SupportRow {
        kind,
        work,
        n,
        amount,
        completed,
        underweight,
        stunted,
    } in rows
    {
        match (kind.as_str(), work.as_deref()) {
            ("health_insurance", _) => f.insurance_cards += n,
            ("housing", w) => {
                if w == Some("build") {
                    f.houses_built += n;
                } else {
                    f.houses_renovated += n;
                }
                f.houses_completed += completed;
                f.housing_vnd += amount;
            }
            ("nutrition", _) => {
                f.nutrition_checks += n;
                f.underweight += underweight;
                f.stunted += stunted;
            }
            ("education", _) => f.education_supports += n,
            ("legal_aid", _) => f.legal_aid += n,
            ("electricity", _) => f.electricity_supports += n,
            _ => {}
        }
    }
    let measured: Option<i64> = support::Entity::find()
        .select_only()
        .column_as(Expr::cust("COUNT(DISTINCT member_id)"), "n")
        .filter(under_unit(unit))
        .filter(support::Column::State.eq(ACTIVE))
        .filter(support::Column::Kind.eq("nutrition"))
        .filter(support::Column::Year.eq(to))
        .into_tuple()
        .one(conn)
        .await?;
    f.children_measured = measured.unwrap_or(0);
    Ok(f)
}

pub async fn communication_figures(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<pb::CommunicationFigures, ServiceError> {
    let rows: Vec<(String, i64, i64, i64)> = activity::Entity::find()
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
        .await?;
    let mut f = pb::CommunicationFigures::default();
    for (kind, n, items, people) in rows {
        f.activities += n;
        match kind.as_str() {
            "article" => f.articles += items,
            "leaflet" => f.leaflets += items,
            "dialogue" => f.dialogue_participants += people,
            "training" => f.training_participants += people,
            _ => {}
        }
    }
    Ok(f)
}

pub async fn inspection_figures(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
    today: NaiveDate,
) -> Result<pb::InspectionFigures, ServiceError> {
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
    let (inspections, with_open_follow_ups, with_overdue_follow_ups) = row.unwrap_or_default();
    Ok(pb::InspectionFigures {
        inspections,
        with_open_follow_ups,
        with_overdue_follow_ups,
    })
}

/// Children under five on `on`: born after the same day five years before.
pub fn under_five_births(on: NaiveDate) -> (NaiveDate, NaiveDate) {
    let five_years = on.checked_sub_months(chrono::Months::new(60)).unwrap_or(on);
    (five_years.succ_opt().unwrap_or(five_years), on)
}

/// Everything the summary reports, from this service's own records.
pub async fn local_summary(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
    today: NaiveDate,
) -> Result<pb::ProgrammeSummary, ServiceError> {
    Ok(pb::ProgrammeSummary {
        unit_code: unit.to_owned(),
        from_year: from,
        to_year: to,
        models: Some(model_figures(conn, unit, from, to).await?),
        training: Some(training_figures(conn, unit, from, to).await?),
        support: Some(support_figures(conn, unit, from, to).await?),
        communication: Some(communication_figures(conn, unit, from, to).await?),
        inspections: Some(inspection_figures(conn, unit, from, to, today).await?),
        sector: Some(crate::sector::figures(conn, unit, from, to).await?),
    })
}

#[tonic::async_trait]
impl pb::programme_summary_service_server::ProgrammeSummaryService for SummaryApi {
    async fn get_programme_summary(
        &self,
        request: Request<pb::GetProgrammeSummaryRequest>,
    ) -> Result<Response<pb::GetProgrammeSummaryResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read programme summaries", READ)?;
        let credentials = credentials_of(&request)?;
        let (unit, from, to) = checked_request(&caller, request.get_ref())?;
        let today = today();
        let (born_from, born_to) = under_five_births(sustain_domain::admin::period_end(to, today));
        // The registry's count runs while the local figures are read.
        let (local, under_five) = tokio::join!(
            current_local_summary(&self.db, &self.cache, &unit, from, to, today),
            self.registry
                .count_members(&credentials, caller.role, &unit, born_from, born_to)
        );
        let mut summary = local?;
        let under_five = under_five?;
        if let Some(s) = summary.support.as_mut() {
            s.children_under_five = under_five;
            s.nutrition_coverage_percent = if under_five == 0 {
                String::new()
            } else {
                Rate::new(s.children_measured, under_five).to_string()
            };
        }
        Ok(Response::new(pb::GetProgrammeSummaryResponse {
            summary: Some(summary),
        }))
    }
}
