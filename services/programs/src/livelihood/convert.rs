//! Livelihood models and enrolments between the wire and the tables: every bad
//! field named by its request path.

use chrono::NaiveDate;
use sustain_domain::Violations;
use sustain_domain::admin::Level;
use sustain_domain::programme::Outcome;
use sustain_platform::api::{optional_date, parse_date, text};
use sustain_platform::placement::Placement;
use sustain_proto::programs::v1 as pb;

use crate::convert::{MAX_NAME_CHARS, class_to_proto, meta};
use crate::model::{enrolment, livelihood_model};

/// Most communes one model may list.
pub const MAX_COMMUNES: usize = 200;
/// "No end date" in the year columns.
pub const OPEN_END_YEAR: i32 = 9999;

pub const MODEL_PATHS: &[&str] = &[
    "name",
    "type",
    "commune_codes",
    "start_date",
    "end_date",
    "budget_vnd",
    "jobs_created",
];
/// Largest yearly household income or profit accepted, VND (100 billion):
/// far above any household, and small enough that the summed income changes
/// cannot overflow.
pub const MAX_INCOME_VND: i64 = 100_000_000_000;
/// Smallest income an income change is measured against, VND a year: below
/// it a "before" is a typing slip, and one tiny base would outweigh every
/// other household in the mean.
pub const MIN_BASE_INCOME_VND: i64 = 1_000_000;
pub const ENROLMENT_PATHS: &[&str] = &["outcome"];

pub fn type_code(t: pb::ModelType) -> Option<&'static str> {
    match t {
        pb::ModelType::Livestock => Some("livestock"),
        pb::ModelType::Crop => Some("crop"),
        pb::ModelType::Forestry => Some("forestry"),
        pb::ModelType::Other => Some("other"),
        pb::ModelType::Unspecified => None,
    }
}

pub fn type_from_code(code: &str) -> pb::ModelType {
    match code {
        "livestock" => pb::ModelType::Livestock,
        "crop" => pb::ModelType::Crop,
        "forestry" => pb::ModelType::Forestry,
        "other" => pb::ModelType::Other,
        _ => pb::ModelType::Unspecified,
    }
}

/// The checked fields of a model, before it is stored.
#[derive(Debug, Clone)]
pub struct ModelFields {
    pub project_code: String,
    pub name: String,
    pub model_type: &'static str,
    pub placement: Placement,
    pub commune_codes: Vec<String>,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub budget_vnd: i64,
    pub jobs_created: i32,
}

/// Checks a model as sent; the catalog check of `project_code` is the caller's.
pub fn model_fields(
    m: &pb::LivelihoodModel,
    prefix: &str,
    today: NaiveDate,
    v: &mut Violations,
) -> Option<ModelFields> {
    let before = v.len();
    let field = |name: &str| format!("{prefix}.{name}");
    let project_code = m.project_code.trim().to_owned();
    if project_code.is_empty() {
        v.add(field("project_code"), "is required");
    }
    let name = text(&m.name, &field("name"), MAX_NAME_CHARS, true, v);
    let model_type = pb::ModelType::try_from(m.r#type).ok().and_then(type_code);
    if model_type.is_none() {
        v.add(field("type"), "must be LIVESTOCK, CROP, FORESTRY or OTHER");
    }
    let start_date = parse_date(&m.start_date, &field("start_date"), v);
    let end_date = optional_date(&m.end_date, &field("end_date"), v);
    if let (Some(s), Some(e)) = (start_date, end_date)
        && e < s
    {
        v.add(field("end_date"), "is before start_date");
    }
    let on = start_date.unwrap_or(today);
    let placement = if m.unit_code.trim().is_empty() {
        v.add(field("unit_code"), "is required");
        None
    } else {
        Placement::of_unit(m.unit_code.trim(), on, today)
            .map_err(|e| v.add(field("unit_code"), e))
            .ok()
    };
    if m.commune_codes.len() > MAX_COMMUNES {
        v.add(
            field("commune_codes"),
            format!("at most {MAX_COMMUNES} communes"),
        );
    }
    let mut commune_codes = Vec::with_capacity(m.commune_codes.len());
    for (i, raw) in m.commune_codes.iter().enumerate() {
        let code = raw.trim();
        let path = format!("{prefix}.commune_codes[{i}]");
        if Level::of_code(code) != Some(Level::Commune) {
            v.add(path, "is not a commune code (5 digits)");
            continue;
        }
        match Placement::of_unit(code, on, today) {
            Err(e) => v.add(path, e),
            Ok(p) => {
                if let Some(unit) = &placement
                    && !p.is_within(&unit.unit_code)
                {
                    v.add(path, format!("does not lie in unit {}", unit.unit_code));
                } else if commune_codes.iter().any(|c| c == code) {
                    v.add(path, "is listed twice");
                } else {
                    commune_codes.push(code.to_owned());
                }
            }
        }
    }
    if m.budget_vnd < 0 {
        v.add(field("budget_vnd"), "must not be negative");
    }
    if m.jobs_created < 0 {
        v.add(field("jobs_created"), "must not be negative");
    }
    if v.len() > before {
        return None;
    }
    Some(ModelFields {
        project_code,
        name,
        model_type: model_type?,
        placement: placement?,
        commune_codes,
        start_date: start_date?,
        end_date,
        budget_vnd: m.budget_vnd,
        jobs_created: m.jobs_created,
    })
}

/// Writes checked fields over a row (a new one or the stored one).
pub fn apply_model_fields(row: &mut livelihood_model::Model, f: ModelFields, project_root: String) {
    row.project_code = f.project_code;
    row.project_root = project_root;
    row.name = f.name;
    row.model_type = f.model_type.to_owned();
    row.unit_code = f.placement.unit_code;
    row.province_code = f.placement.province_code;
    row.district_code = f.placement.district_code;
    row.commune_code = f.placement.commune_code;
    row.current_commune_code = f.placement.current_commune_code;
    row.commune_codes = serde_json::to_string(&f.commune_codes).unwrap_or_else(|_| "[]".into());
    row.start_year = chrono::Datelike::year(&f.start_date);
    row.end_year = f
        .end_date
        .map_or(OPEN_END_YEAR, |d| chrono::Datelike::year(&d));
    row.start_date = f.start_date;
    row.end_date = f.end_date;
    row.budget_vnd = f.budget_vnd;
    row.jobs_created = f.jobs_created;
}

pub fn commune_codes(row: &livelihood_model::Model) -> Vec<String> {
    serde_json::from_str(&row.commune_codes).unwrap_or_default()
}

pub fn model_to_proto(row: &livelihood_model::Model, enrolled: i64) -> pb::LivelihoodModel {
    pb::LivelihoodModel {
        id: row.id.clone(),
        project_code: row.project_code.clone(),
        name: row.name.clone(),
        r#type: type_from_code(&row.model_type) as i32,
        unit_code: row.unit_code.clone(),
        commune_codes: commune_codes(row),
        start_date: row.start_date.to_string(),
        end_date: row.end_date.map(|d| d.to_string()).unwrap_or_default(),
        budget_vnd: row.budget_vnd,
        jobs_created: row.jobs_created,
        enrolled_households: enrolled,
        meta: Some(meta(
            &row.state,
            row.version,
            row.archive_reason.as_deref(),
            row.created_at,
            row.updated_at,
        )),
    }
}

/// Checks an outcome as sent; `None` with violations when it is wrong.
pub fn outcome_fields(
    o: &pb::Outcome,
    enrolled_on: NaiveDate,
    today: NaiveDate,
    v: &mut Violations,
) -> Option<(Outcome, NaiveDate)> {
    let before = v.len();
    if o.income_before_vnd < 0 || o.income_before_vnd > MAX_INCOME_VND {
        v.add(
            "enrolment.outcome.income_before_vnd",
            format!("must be between 0 and {MAX_INCOME_VND}"),
        );
    } else if o.income_before_vnd > 0 && o.income_before_vnd < MIN_BASE_INCOME_VND {
        v.add(
            "enrolment.outcome.income_before_vnd",
            format!("must be 0 (not known) or at least {MIN_BASE_INCOME_VND} VND a year"),
        );
    }
    if o.income_after_vnd < 0 || o.income_after_vnd > MAX_INCOME_VND {
        v.add(
            "enrolment.outcome.income_after_vnd",
            format!("must be between 0 and {MAX_INCOME_VND}"),
        );
    }
    if o.yearly_profit_vnd.abs() > MAX_INCOME_VND {
        v.add(
            "enrolment.outcome.yearly_profit_vnd",
            format!("must be between -{MAX_INCOME_VND} and {MAX_INCOME_VND}"),
        );
    }
    let measured_on = parse_date(&o.measured_on, "enrolment.outcome.measured_on", v);
    if let Some(d) = measured_on {
        if d < enrolled_on {
            v.add(
                "enrolment.outcome.measured_on",
                format!("is before the enrolment ({enrolled_on})"),
            );
        } else if d > today {
            v.add("enrolment.outcome.measured_on", "must not be in the future");
        }
    }
    if v.len() > before {
        return None;
    }
    Some((
        Outcome {
            income_before: o.income_before_vnd,
            income_after: o.income_after_vnd,
            yearly_profit: o.yearly_profit_vnd,
        },
        measured_on?,
    ))
}

pub fn outcome_of(row: &enrolment::Model) -> Option<Outcome> {
    Some(Outcome {
        income_before: row.income_before_vnd?,
        income_after: row.income_after_vnd?,
        yearly_profit: row.yearly_profit_vnd?,
    })
}

pub fn enrolment_to_proto(row: &enrolment::Model) -> pb::Enrolment {
    let outcome = outcome_of(row).map(|o| pb::Outcome {
        income_before_vnd: o.income_before,
        income_after_vnd: o.income_after,
        yearly_profit_vnd: o.yearly_profit,
        measured_on: row.measured_on.map(|d| d.to_string()).unwrap_or_default(),
        income_change_percent: o.income_change().map(|r| r.to_string()).unwrap_or_default(),
        income_up_30_percent: o.income_up_target(),
        profit_in_target: o.profit_in_target(),
    });
    pb::Enrolment {
        id: row.id.clone(),
        model_id: row.model_id.clone(),
        household_id: row.household_id.clone(),
        enrolled_on: row.enrolled_on.to_string(),
        class_at_enrolment: class_to_proto(&row.class) as i32,
        review_year: row.review_year,
        commune_code: row.commune_code.clone().unwrap_or_default(),
        ethnic_minority: row.ethnic_minority,
        outcome,
        meta: Some(meta(
            &row.state,
            row.version,
            row.archive_reason.as_deref(),
            row.created_at,
            row.updated_at,
        )),
    }
}
