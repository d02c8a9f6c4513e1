//! Between the wire and the domain for reviews: checks a reviewer's input against
//! the standard in force for its year and classifies it; renders stored reviews.

use chrono::{Datelike, NaiveDate};
use sustain_domain::Violations;
use sustain_domain::household::Residence;
use sustain_domain::poverty::{
    self, Class, Deprivations, Measure, PovertyStandard, Standards, Transition,
};
use sustain_proto::registry::v1 as pb;

use crate::convert::{etag, parse_date};
use crate::model::review;

const MAX_REVIEWER_CHARS: usize = 200;

/// A checked review input, classified.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub year: i32,
    pub kind: &'static str,
    pub standard_code: String,
    pub deprived: Deprivations,
    pub income: Option<i64>,
    pub score_a: Option<i32>,
    pub class: Class,
    pub mpi_poor: bool,
    pub reviewer: String,
    pub reviewed_on: Option<NaiveDate>,
    /// The area whose line it was classified under.
    pub area: Residence,
    /// The reviewer's reason, when the area was set against the default.
    pub area_reason: Option<String>,
}

/// Where the household under review is: what its area is derived from.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub location: &'a sustain_domain::admin::Location,
    pub residence: Residence,
    pub registered_on: NaiveDate,
}

const MAX_AREA_REASON_CHARS: usize = 500;

/// Checks `input` (found at `prefix` in the request) and classifies it for a
/// household at `place`. Every problem is added to `v`.
pub fn assess(
    standards: &Standards,
    input: &pb::ReviewInput,
    place: &Place<'_>,
    today: NaiveDate,
    prefix: &str,
    v: &mut Violations,
) -> Option<Assessment> {
    let field = |name: &str| format!("{prefix}.{name}");
    let before = v.len();
    let standard = match standards.covering(input.year) {
        Ok(s) => {
            if input.year > today.year() {
                v.add(field("year"), "is in the future");
            }
            Some(s)
        }
        Err(reason) => {
            v.add(field("year"), reason);
            None
        }
    };
    let kind = match pb::ReviewKind::try_from(input.kind) {
        Ok(pb::ReviewKind::Periodic) => Some("periodic"),
        Ok(pb::ReviewKind::Regular) => Some("regular"),
        _ => {
            v.add(field("kind"), "must be PERIODIC or REGULAR");
            None
        }
    };
    let mut deprived = Deprivations::NONE;
    if let Some(standard) = standard {
        for (i, code) in input.deprived_indicators.iter().enumerate() {
            let code = code.trim();
            match standard.position(code) {
                Some(p) if deprived.contains(p) => {
                    v.add(
                        field(&format!("deprived_indicators[{i}]")),
                        format!("{code:?} is listed twice"),
                    );
                }
                Some(p) => deprived = deprived.with(p),
                None => v.add(
                    field(&format!("deprived_indicators[{i}]")),
                    format!(
                        "{code:?} is not an indicator of {}; known: {}",
                        standard.code,
                        standard
                            .indicators
                            .iter()
                            .map(|i| i.code.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
    }
    let measure = Measure::given(input.income_per_person_month, input.score_a, standard)
        .map_err(|refused| v.add(field(refused.field), refused.reason))
        .ok();
    if let (Some(b), Some(standard)) = (input.score_b, standard) {
        match poverty::score_b(standard, deprived) {
            Some(expected) if i64::from(b) == i64::from(expected) => {}
            Some(expected) => v.add(
                field("score_b"),
                format!("is {b} but the deprived indicators give {expected} (10 per indicator)"),
            ),
            None => v.add(field("score_b"), "this year's standard has no score B"),
        }
    }
    let reviewer = input.reviewer.trim();
    if reviewer.is_empty() {
        v.add(field("reviewer"), "is required");
    } else if reviewer.chars().count() > MAX_REVIEWER_CHARS
        || reviewer.chars().any(char::is_control)
    {
        v.add(
            field("reviewer"),
            format!("must be at most {MAX_REVIEWER_CHARS} printable characters"),
        );
    }
    let reviewed_on = if input.reviewed_on.trim().is_empty() {
        None
    } else {
        let d = parse_date(&input.reviewed_on, &field("reviewed_on"), v);
        if d.is_some_and(|d| d > today) {
            v.add(field("reviewed_on"), "is in the future");
        }
        d
    };
    let reason = input.area_reason.trim();
    let set_area = match pb::Residence::try_from(input.area) {
        Ok(pb::Residence::Unspecified) => None,
        Ok(pb::Residence::Rural) => Some(Residence::Rural),
        Ok(pb::Residence::Urban) => Some(Residence::Urban),
        Err(_) => {
            v.add(field("area"), "must be RURAL or URBAN, or left unset");
            None
        }
    };
    if set_area.is_some() && reason.is_empty() {
        v.add(
            field("area_reason"),
            "is required when area is set: say why this review takes another area's line",
        );
    } else if set_area.is_none() && !reason.is_empty() && input.area == 0 {
        v.add(field("area_reason"), "is only given with area");
    } else if reason.chars().count() > MAX_AREA_REASON_CHARS || reason.chars().any(char::is_control)
    {
        v.add(
            field("area_reason"),
            format!("must be at most {MAX_AREA_REASON_CHARS} printable characters"),
        );
    }
    if v.len() > before {
        return None;
    }
    let (standard, kind, measure) = (standard?, kind?, measure?);
    let on = reviewed_on
        .or_else(|| sustain_domain::admin::year_end(input.year))
        .unwrap_or(today);
    let area = set_area.unwrap_or_else(|| {
        sustain_domain::household::area_on(place.location, place.residence, place.registered_on, on)
    });
    let class = poverty::classify(standard, area, measure, deprived).ok()?;
    Some(Assessment {
        year: input.year,
        kind,
        standard_code: standard.code.clone(),
        deprived,
        income: input.income_per_person_month,
        score_a: input.score_a,
        class,
        mpi_poor: standard.is_mpi_poor(deprived),
        reviewer: reviewer.to_owned(),
        reviewed_on,
        area,
        area_reason: set_area.map(|_| reason.to_owned()),
    })
}

pub fn class_to_proto(code: &str) -> pb::PovertyClass {
    match Class::from_code(code) {
        Some(Class::Poor) => pb::PovertyClass::Poor,
        Some(Class::NearPoor) => pb::PovertyClass::NearPoor,
        Some(Class::AverageLiving) => pb::PovertyClass::AverageLiving,
        Some(Class::NotPoor) => pb::PovertyClass::NotPoor,
        Some(Class::AboveLineIncomeNotMeasured) => pb::PovertyClass::AboveLineIncomeNotMeasured,
        None => pb::PovertyClass::Unspecified,
    }
}

pub fn transition_to_proto(code: &str) -> pb::Transition {
    use pb::Transition as T;
    match Transition::from_code(code) {
        Some(Transition::FirstReview) => T::FirstReview,
        Some(Transition::NewlyPoor) => T::NewlyPoor,
        Some(Transition::RePoor) => T::RePoor,
        Some(Transition::RemainedPoor) => T::RemainedPoor,
        Some(Transition::EscapedPoverty) => T::EscapedPoverty,
        Some(Transition::NewlyNearPoor) => T::NewlyNearPoor,
        Some(Transition::RemainedNearPoor) => T::RemainedNearPoor,
        Some(Transition::EscapedNearPoverty) => T::EscapedNearPoverty,
        Some(Transition::RemainedNotPoor) => T::RemainedNotPoor,
        None => T::Unspecified,
    }
}

pub fn state_to_proto(code: &str) -> pb::ReviewState {
    match code {
        "draft" => pb::ReviewState::Draft,
        "approved" => pb::ReviewState::Approved,
        "certified" => pb::ReviewState::Certified,
        "superseded" => pb::ReviewState::Superseded,
        _ => pb::ReviewState::Unspecified,
    }
}

fn timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn date(d: Option<NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

pub fn review_to_proto(r: &review::Model, standard: Option<&PovertyStandard>) -> pb::Review {
    let deprived = Deprivations::from_bits(r.deprived_bits as u16);
    let deprived_indicators = standard
        .map(|s| {
            deprived
                .positions()
                .filter_map(|p| s.indicators.get(p).map(|i| i.code.clone()))
                .collect()
        })
        .unwrap_or_default();
    let score_b = standard
        .and_then(|s| poverty::score_b(s, deprived))
        .unwrap_or(0);
    pb::Review {
        id: r.id.clone(),
        household_id: r.household_id.clone(),
        input: Some(pb::ReviewInput {
            year: r.year,
            kind: match r.kind.as_str() {
                "periodic" => pb::ReviewKind::Periodic,
                "regular" => pb::ReviewKind::Regular,
                _ => pb::ReviewKind::Unspecified,
            } as i32,
            deprived_indicators,
            income_per_person_month: r.income,
            score_a: r.score_a,
            score_b: Some(score_b as i32),
            reviewer: r.reviewer.clone(),
            reviewed_on: date(r.reviewed_on),
            // What the reviewer set, if anything.
            area: if r.area_reason.is_some() {
                residence_to_proto(&r.area) as i32
            } else {
                0
            },
            area_reason: r.area_reason.clone().unwrap_or_default(),
        }),
        revision: r.revision,
        state: state_to_proto(&r.state) as i32,
        standard_code: r.standard_code.clone(),
        poverty_class: class_to_proto(&r.class) as i32,
        transition: transition_to_proto(&r.transition) as i32,
        deprivation_count: r.deprivation_count,
        score_b: score_b as i32,
        mpi_poor: r.mpi_poor,
        household_version: r.household_version,
        commune_code: r.commune_code.clone(),
        commune_in_force: commune_in_force(r),
        residence: residence_to_proto(&r.residence) as i32,
        area: residence_to_proto(&r.area) as i32,
        area_reason: r.area_reason.clone().unwrap_or_default(),
        ethnic_minority: r.ethnic_minority,
        approval: r.approved_at.map(|at| pb::Approval {
            meeting_date: date(r.meeting_date),
            agreement_percent: r.agreement_percent.unwrap_or_default(),
            approved_by: r.approved_by.clone().unwrap_or_default(),
            approve_time: Some(timestamp(at)),
        }),
        certification: r.certified_at.map(|at| pb::Certification {
            decision_number: r.decision_number.clone().unwrap_or_default(),
            decision_date: date(r.decision_date),
            certified_by: r.certified_by.clone().unwrap_or_default(),
            certify_time: Some(timestamp(at)),
        }),
        supersedes_review_id: r.supersedes.clone().unwrap_or_default(),
        version: r.version,
        etag: etag(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

pub fn standard_to_proto(s: &PovertyStandard) -> pb::PovertyStandard {
    let lines = |l: &poverty::Lines| pb::IncomeLines {
        rural: l.rural,
        urban: l.urban,
    };
    pb::PovertyStandard {
        code: s.code.clone(),
        title: s.title.clone(),
        first_year: s.first_year,
        last_year: s.last_year,
        provisional: s.provisional,
        poor_line: Some(lines(&s.poor_line)),
        average_line: s.average_line.as_ref().map(lines),
        score_a_line: s.score_a_line.as_ref().map(lines),
        points_per_deprivation: s.points_per_deprivation.unwrap_or(0) as i32,
        deprivation_cutoff: s.deprivation_cutoff as i32,
        mpi_cutoff: s.mpi_cutoff as i32,
        total_weight: s.total_weight() as i32,
        indicators: s
            .indicators
            .iter()
            .map(|i| pb::PovertyIndicator {
                code: i.code.clone(),
                name: i.name.clone(),
                dimension: i.dimension.clone(),
                weight: i.weight as i32,
                deprived_if: i.deprived_if.clone(),
            })
            .collect(),
    }
}

/// The commune in force on a review's date that holds its household: the
/// registration commune while it stands, else its successor; of a commune
/// split between successors, the one the household was placed in, and none
/// (empty) while its village is not yet assigned.
pub fn commune_in_force(r: &review::Model) -> String {
    let Some(on) = r
        .reviewed_on
        .or_else(|| sustain_domain::admin::year_end(r.year))
    else {
        return r.commune_code.clone();
    };
    let catalog = sustain_domain::admin::catalog();
    match catalog.holding_unit(&r.commune_code, &r.current_commune_code, on) {
        Some(u) => u.code.clone(),
        None if r.current_commune_code.is_empty() => String::new(),
        None => r.commune_code.clone(),
    }
}

fn residence_to_proto(code: &str) -> pb::Residence {
    match code {
        "urban" => pb::Residence::Urban,
        "rural" => pb::Residence::Rural,
        _ => pb::Residence::Unspecified,
    }
}
