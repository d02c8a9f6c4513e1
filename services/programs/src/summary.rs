//! The programme summary of a unit over a period: a few grouped queries over
//! the records, and for the enrolments over their running tallies
//! (`livelihood::tally`), which [`recount_model_figures`] checks.

use chrono::NaiveDate;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use std::collections::BTreeMap;

use sustain_domain::poverty::{Rate, Standing};
use sustain_domain::programme::PRODUCTION_PROJECT;
use sustain_platform::Caller;
use sustain_platform::api::today;
use sustain_platform::error::ServiceError;
use sustain_proto::programs::v1 as pb;
use tonic::{Request, Response, Status};

use crate::convert::class_to_proto;
use crate::livelihood::convert::type_from_code;
use crate::registry::{Registry, credentials_of};
use crate::store::tally::PPM;
use crate::training::kind_from_code;
use crate::{READ, store};

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
    let txn = sustain_db::begin_snapshot(db).await?;
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
        store::summary::models_running(conn, unit, from, to),
        store::summary::tallied_enrolments(conn, unit, from, to)
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
    let models = store::summary::models_running(conn, unit, from, to).await?;
    let counts = store::summary::recounted_enrolments(conn, unit, from, to).await?;
    Ok(assemble(models, counts))
}

/// Puts the models and the enrolment counts together, in total and Project
/// by Project.
fn assemble(
    models: Vec<(String, String, i64, i64, i64)>,
    counts: store::summary::EnrolmentCounts,
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
    let courses = store::summary::courses(conn, unit, from, to).await?;
    let mut f = pb::TrainingFigures::default();
    let mut by_kind: std::collections::BTreeMap<i32, (i64, i64)> = Default::default();
    for c in courses {
        f.courses += c.n;
        f.official_participants += c.officials;
        if c.p3 {
            f.project3_courses += c.n;
        }
        by_kind.entry(kind_from_code(&c.kind) as i32).or_default().0 += c.n;
    }
    let trainees = store::summary::trainees(conn, unit, from, to).await?;
    let mut abroad: std::collections::BTreeMap<String, i64> = Default::default();
    for t in trainees {
        f.trainees += t.n;
        f.completed += t.done;
        by_kind
            .entry(kind_from_code(&t.course_kind) as i32)
            .or_default()
            .1 += t.n;
        match t.employment.as_str() {
            "new_job" => f.new_jobs += t.n,
            "work_abroad" => {
                f.working_abroad += t.n;
                *abroad
                    .entry(t.destination_country.unwrap_or_default())
                    .or_default() += t.n;
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

/// Support given in the period to households under the unit; the under-five
/// denominator is the caller's to fill in.
pub async fn support_figures(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<pb::SupportFigures, ServiceError> {
    let rows = store::summary::support(conn, unit, from, to).await?;
    let mut f = pb::SupportFigures::default();
    for store::summary::SupportRow {
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
    f.children_measured = store::summary::children_measured(conn, unit, to).await?;
    Ok(f)
}

pub async fn communication_figures(
    conn: &impl ConnectionTrait,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<pb::CommunicationFigures, ServiceError> {
    let rows = store::summary::activities(conn, unit, from, to).await?;
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
    let (inspections, with_open_follow_ups, with_overdue_follow_ups) =
        store::summary::inspections(conn, unit, from, to, today).await?;
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
