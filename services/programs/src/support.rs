//! The SupportService adapter: support given to a household or one of its
//! members. The household (and member) are checked with the registry; a
//! nutrition check's status is derived from the child's registered birth date
//! and sex with the WHO growth standards. The kind's own fields are stored
//! encrypted; the columns the summaries count stay plain.

use chrono::{Datelike, NaiveDate};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use sustain_domain::Violations;
use sustain_domain::household::Sex;
use sustain_domain::nutrition;
use sustain_platform::Caller;
use sustain_platform::api::{new_id, now, optional_date, parse_date, required_id, text, today};
use sustain_platform::crypto::FieldCipher;
use sustain_platform::error::{ServiceError, checked};
use sustain_platform::journal::{self, IdempotencyKey};
use sustain_proto::programs::v1 as pb;
use sustain_proto::programs::v1::support::Details as PbDetails;
use sustain_proto::registry::v1 as registry_pb;
use tonic::{Request, Response, Status};

use crate::WRITE;
use crate::catalog::{self, check_code};
use crate::convert::{ACTIVE, MAX_NAME_CHARS, class_to_proto, meta};
use crate::model::support;
use crate::records::{self, Record, record};
use crate::registry::{Named, Registry, credentials_of, placement_of, standing_code};
use crate::store::Narrow;

record!(support, "support");

const SUPPORT_PATHS: &[&str] = &["provided_on", "details"];
/// Plausible bounds of an under-5 child's measurements.
const WEIGHT_GRAMS: std::ops::RangeInclusive<i32> = 500..=40_000;
const HEIGHT_MM: std::ops::RangeInclusive<i32> = 400..=1_300;

/// The kind's own fields, as stored (encrypted) in `details_enc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Details {
    HealthInsurance {
        valid_from: NaiveDate,
        valid_to: NaiveDate,
    },
    Housing {
        work: String,
        amount_vnd: i64,
        completed_on: Option<NaiveDate>,
    },
    Nutrition {
        weight_grams: i32,
        height_mm: i32,
    },
    Education {
        kind: String,
        school_year: String,
        amount_vnd: i64,
        rice_kg: i32,
    },
    LegalAid {
        matter: String,
    },
    Electricity {
        amount_vnd: i64,
    },
}

impl Details {
    fn kind(&self) -> &'static str {
        match self {
            Details::HealthInsurance { .. } => "health_insurance",
            Details::Housing { .. } => "housing",
            Details::Nutrition { .. } => "nutrition",
            Details::Education { .. } => "education",
            Details::LegalAid { .. } => "legal_aid",
            Details::Electricity { .. } => "electricity",
        }
    }

    fn amount(&self) -> i64 {
        match self {
            Details::Housing { amount_vnd, .. }
            | Details::Education { amount_vnd, .. }
            | Details::Electricity { amount_vnd } => *amount_vnd,
            _ => 0,
        }
    }

    fn default_project(&self) -> Option<&'static str> {
        match self {
            Details::Housing { .. } => Some("NTP-SPR.5"),
            Details::Nutrition { .. } => Some("NTP-SPR.3.2"),
            _ => None,
        }
    }
}

fn kind_to_proto(kind: &str) -> pb::SupportKind {
    match kind {
        "health_insurance" => pb::SupportKind::HealthInsurance,
        "housing" => pb::SupportKind::Housing,
        "nutrition" => pb::SupportKind::Nutrition,
        "education" => pb::SupportKind::Education,
        "legal_aid" => pb::SupportKind::LegalAid,
        "electricity" => pb::SupportKind::Electricity,
        _ => pb::SupportKind::Unspecified,
    }
}

pub fn kind_code(kind: pb::SupportKind) -> Option<&'static str> {
    match kind {
        pb::SupportKind::HealthInsurance => Some("health_insurance"),
        pb::SupportKind::Housing => Some("housing"),
        pb::SupportKind::Nutrition => Some("nutrition"),
        pb::SupportKind::Education => Some("education"),
        pb::SupportKind::LegalAid => Some("legal_aid"),
        pb::SupportKind::Electricity => Some("electricity"),
        pb::SupportKind::Unspecified => None,
    }
}

fn deficit_to_proto(code: Option<&str>) -> pb::Deficit {
    match code {
        Some("none") => pb::Deficit::None,
        Some("moderate") => pb::Deficit::Moderate,
        Some("severe") => pb::Deficit::Severe,
        _ => pb::Deficit::Unspecified,
    }
}

fn non_negative(value: i64, field: &str, v: &mut Violations) {
    if value < 0 {
        v.add(field, "must not be negative");
    }
}

/// Checks the kind's fields as sent.
fn details_from_proto(
    d: Option<&PbDetails>,
    provided_on: Option<NaiveDate>,
    v: &mut Violations,
) -> Option<Details> {
    let before = v.len();
    let f = |name: &str| format!("support.{name}");
    let details = match d {
        None => {
            v.add("support.details", "is required: one of health_insurance, housing, nutrition, education, legal_aid, electricity");
            return None;
        }
        Some(PbDetails::HealthInsurance(c)) => {
            let from = parse_date(&c.valid_from, &f("health_insurance.valid_from"), v);
            let to = parse_date(&c.valid_to, &f("health_insurance.valid_to"), v);
            if let (Some(a), Some(b)) = (from, to)
                && b < a
            {
                v.add(f("health_insurance.valid_to"), "is before valid_from");
            }
            Details::HealthInsurance {
                valid_from: from?,
                valid_to: to?,
            }
        }
        Some(PbDetails::Housing(h)) => {
            let work = match pb::HousingWork::try_from(h.work) {
                Ok(pb::HousingWork::Build) => "build",
                Ok(pb::HousingWork::Renovate) => "renovate",
                _ => {
                    v.add(f("housing.work"), "must be BUILD or RENOVATE");
                    ""
                }
            };
            non_negative(h.amount_vnd, &f("housing.amount_vnd"), v);
            let completed = optional_date(&h.completed_on, &f("housing.completed_on"), v);
            if let Some(c) = completed {
                if provided_on.is_some_and(|p| c < p) {
                    v.add(f("housing.completed_on"), "is before provided_on");
                } else if c > today() {
                    v.add(f("housing.completed_on"), "must not be in the future");
                }
            }
            Details::Housing {
                work: work.to_owned(),
                amount_vnd: h.amount_vnd,
                completed_on: completed,
            }
        }
        Some(PbDetails::Nutrition(n)) => {
            if !WEIGHT_GRAMS.contains(&n.weight_grams) {
                v.add(
                    f("nutrition.weight_grams"),
                    format!(
                        "must be between {} and {} grams",
                        WEIGHT_GRAMS.start(),
                        WEIGHT_GRAMS.end()
                    ),
                );
            }
            if !HEIGHT_MM.contains(&n.height_mm) {
                v.add(
                    f("nutrition.height_mm"),
                    format!(
                        "must be between {} and {} millimetres",
                        HEIGHT_MM.start(),
                        HEIGHT_MM.end()
                    ),
                );
            }
            Details::Nutrition {
                weight_grams: n.weight_grams,
                height_mm: n.height_mm,
            }
        }
        Some(PbDetails::Education(e)) => {
            let kind = match pb::EducationKind::try_from(e.kind) {
                Ok(pb::EducationKind::FeeExemption) => "fee_exemption",
                Ok(pb::EducationKind::RiceSubsidy) => "rice_subsidy",
                Ok(pb::EducationKind::Other) => "other",
                _ => {
                    v.add(
                        f("education.kind"),
                        "must be FEE_EXEMPTION, RICE_SUBSIDY or OTHER",
                    );
                    ""
                }
            };
            let year = e.school_year.trim();
            let valid_year = year
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse::<i32>().ok()?, b.parse::<i32>().ok()?)))
                .is_some_and(|(a, b)| b == a + 1 && (2000..=2100).contains(&a));
            if !valid_year {
                v.add(f("education.school_year"), "must be written like 2023-2024");
            }
            non_negative(e.amount_vnd, &f("education.amount_vnd"), v);
            non_negative(i64::from(e.rice_kg), &f("education.rice_kg"), v);
            Details::Education {
                kind: kind.to_owned(),
                school_year: year.to_owned(),
                amount_vnd: e.amount_vnd,
                rice_kg: e.rice_kg,
            }
        }
        Some(PbDetails::LegalAid(l)) => Details::LegalAid {
            matter: text(&l.matter, &f("legal_aid.matter"), MAX_NAME_CHARS, true, v),
        },
        Some(PbDetails::Electricity(e)) => {
            non_negative(e.amount_vnd, &f("electricity.amount_vnd"), v);
            Details::Electricity {
                amount_vnd: e.amount_vnd,
            }
        }
    };
    (v.len() == before).then_some(details)
}

/// The derived nutrition status of a stored check.
fn nutrition_of(row: &support::Model, details: &Details) -> Option<nutrition::Assessment> {
    let Details::Nutrition {
        weight_grams,
        height_mm,
    } = details
    else {
        return None;
    };
    let sex = Sex::from_code(row.sex.as_deref()?)?;
    nutrition::assess(
        sex,
        row.birth_date?,
        row.provided_on,
        u32::try_from(*weight_grams).ok()?,
        u32::try_from(*height_mm).ok()?,
    )
    .ok()
}

fn details_to_proto(row: &support::Model, details: &Details) -> PbDetails {
    match details {
        Details::HealthInsurance {
            valid_from,
            valid_to,
        } => PbDetails::HealthInsurance(pb::HealthInsuranceCard {
            valid_from: valid_from.to_string(),
            valid_to: valid_to.to_string(),
        }),
        Details::Housing {
            work,
            amount_vnd,
            completed_on,
        } => PbDetails::Housing(pb::Housing {
            work: if work == "build" {
                pb::HousingWork::Build
            } else {
                pb::HousingWork::Renovate
            } as i32,
            amount_vnd: *amount_vnd,
            completed_on: completed_on.map(|d| d.to_string()).unwrap_or_default(),
        }),
        Details::Nutrition {
            weight_grams,
            height_mm,
        } => {
            let a = nutrition_of(row, details);
            PbDetails::Nutrition(pb::NutritionCheck {
                weight_grams: *weight_grams,
                height_mm: *height_mm,
                age_months: a.map_or(0, |a| a.age_months as i32),
                weight_for_age_z: a
                    .map(|a| format!("{:.2}", a.weight_for_age_z))
                    .unwrap_or_default(),
                height_for_age_z: a
                    .map(|a| format!("{:.2}", a.height_for_age_z))
                    .unwrap_or_default(),
                underweight: deficit_to_proto(row.underweight.as_deref()) as i32,
                stunted: deficit_to_proto(row.stunted.as_deref()) as i32,
            })
        }
        Details::Education {
            kind,
            school_year,
            amount_vnd,
            rice_kg,
        } => PbDetails::Education(pb::EducationSupport {
            kind: match kind.as_str() {
                "fee_exemption" => pb::EducationKind::FeeExemption,
                "rice_subsidy" => pb::EducationKind::RiceSubsidy,
                _ => pb::EducationKind::Other,
            } as i32,
            school_year: school_year.clone(),
            amount_vnd: *amount_vnd,
            rice_kg: *rice_kg,
        }),
        Details::LegalAid { matter } => PbDetails::LegalAid(pb::LegalAid {
            matter: matter.clone(),
        }),
        Details::Electricity { amount_vnd } => PbDetails::Electricity(pb::ElectricitySupport {
            amount_vnd: *amount_vnd,
        }),
    }
}

/// Writes the details and the counted columns derived from them.
fn apply_details(
    row: &mut support::Model,
    details: &Details,
    cipher: &FieldCipher,
) -> Result<(), ServiceError> {
    row.kind = details.kind().to_owned();
    row.amount_vnd = details.amount();
    (row.work, row.completed_on) = match details {
        Details::Housing {
            work, completed_on, ..
        } => (Some(work.clone()), *completed_on),
        _ => (None, None),
    };
    let assessment = nutrition_of(row, details);
    row.age_months = assessment.map(|a| a.age_months as i32);
    row.underweight = assessment.map(|a| a.underweight.code().to_owned());
    row.stunted = assessment.map(|a| a.stunted.code().to_owned());
    let json = serde_json::to_string(details)
        .map_err(|e| ServiceError::Internal(format!("support details: {e}")))?;
    row.details_enc = cipher.encrypt(&json, &row.id);
    Ok(())
}

fn stored_details(row: &support::Model, cipher: &FieldCipher) -> Result<Details, ServiceError> {
    let json = cipher
        .decrypt(&row.details_enc, &row.id)
        .map_err(|e| ServiceError::Internal(format!("support {} details: {e}", row.id)))?;
    serde_json::from_str(&json)
        .map_err(|e| ServiceError::Internal(format!("support {} details: {e}", row.id)))
}

fn support_to_proto(
    row: &support::Model,
    cipher: &FieldCipher,
) -> Result<pb::Support, ServiceError> {
    let details = stored_details(row, cipher)?;
    Ok(pb::Support {
        id: row.id.clone(),
        household_id: row.household_id.clone(),
        member_id: row.member_id.clone().unwrap_or_default(),
        project_code: row.project_code.clone().unwrap_or_default(),
        provided_on: row.provided_on.to_string(),
        details: Some(details_to_proto(row, &details)),
        kind: kind_to_proto(&row.kind) as i32,
        class_at_support: class_to_proto(&row.class) as i32,
        commune_code: row.commune_code.clone().unwrap_or_default(),
        meta: Some(meta(
            &row.state,
            row.version,
            row.archive_reason.as_deref(),
            row.created_at,
            row.updated_at,
        )),
    })
}

#[derive(Debug, Clone)]
pub struct SupportApi {
    pub db: DatabaseConnection,
    pub cipher: FieldCipher,
    pub registry: Registry,
}

/// A support to record, as sent: every field checked, every bad one named.
struct NewSupport {
    household_id: String,
    member_id: Option<String>,
    provided_on: NaiveDate,
    details: Details,
    project: Option<String>,
}

impl NewSupport {
    fn checked(s: &pb::Support) -> Result<NewSupport, ServiceError> {
        let mut v = Violations::new();
        let household_id = required_id(&s.household_id, "support.household_id", &mut v);
        let provided_on = parse_date(&s.provided_on, "support.provided_on", &mut v);
        if provided_on.is_some_and(|d| d > today()) {
            v.add("support.provided_on", "must not be in the future");
        }
        let details = details_from_proto(s.details.as_ref(), provided_on, &mut v);
        let member_id = if s.member_id.trim().is_empty() {
            if matches!(
                s.details,
                Some(
                    PbDetails::HealthInsurance(_)
                        | PbDetails::Nutrition(_)
                        | PbDetails::Education(_)
                )
            ) {
                v.add(
                    "support.member_id",
                    "is required for health insurance, nutrition and education",
                );
            }
            None
        } else {
            Some(required_id(&s.member_id, "support.member_id", &mut v))
        };
        let project = (!s.project_code.trim().is_empty())
            .then(|| check_code(&s.project_code, "support.project_code", &mut v));
        let (details, provided_on) = checked(details.zip(provided_on), v)?;
        Ok(NewSupport {
            household_id,
            member_id,
            provided_on,
            details,
            project,
        })
    }
}

/// The member's birth date and sex as the registry holds them, once the
/// member is of the household and, for a nutrition check, a child the
/// under-5 standards apply to on the day.
/// A new support row of a household, its details still to be applied.
fn new_row(
    household_id: String,
    member_id: Option<String>,
    project_code: Option<String>,
    provided_on: NaiveDate,
    class: String,
    place: sustain_platform::placement::Placement,
) -> support::Model {
    let at = now();
    support::Model {
        id: new_id(),
        household_id,
        member_id,
        project_code,
        kind: String::new(),
        provided_on,
        year: provided_on.year(),
        class,
        unit_code: place.unit_code,
        province_code: place.province_code,
        district_code: place.district_code,
        commune_code: place.commune_code,
        current_commune_code: place.current_commune_code,
        details_enc: String::new(),
        amount_vnd: 0,
        work: None,
        completed_on: None,
        age_months: None,
        underweight: None,
        stunted: None,
        birth_date: None,
        sex: None,
        state: ACTIVE.to_owned(),
        archive_reason: None,
        version: 1,
        created_at: at,
        updated_at: at,
    }
}

fn member_facts(
    standing: &registry_pb::HouseholdStanding,
    member_id: Option<&str>,
    details: &Details,
    provided_on: NaiveDate,
) -> Result<(Option<NaiveDate>, Option<String>), ServiceError> {
    let member: Option<&registry_pb::StandingMember> = match member_id {
        None => None,
        Some(m) => match standing.members.iter().find(|x| x.id == m) {
            Some(found) => Some(found),
            None => {
                return Err(ServiceError::invalid(
                    "support.member_id",
                    "is not a member of that household",
                ));
            }
        },
    };
    let birth_date = member.and_then(|m| NaiveDate::parse_from_str(&m.birth_date, "%Y-%m-%d").ok());
    let sex = member.and_then(|m| match registry_pb::Sex::try_from(m.sex) {
        Ok(registry_pb::Sex::Male) => Some(Sex::Male.code().to_owned()),
        Ok(registry_pb::Sex::Female) => Some(Sex::Female.code().to_owned()),
        _ => None,
    });
    if matches!(details, Details::Nutrition { .. }) {
        let Some(birth) = birth_date else {
            return Err(ServiceError::invalid(
                "support.member_id",
                "has no birth date in the registry",
            ));
        };
        if let Err(e) = nutrition::assessable_age(birth, provided_on) {
            return Err(ServiceError::invalid(
                "support.provided_on",
                format!("{e} (born {birth})"),
            ));
        }
    }
    Ok((birth_date, sex))
}

#[tonic::async_trait]
impl pb::support_service_server::SupportService for SupportApi {
    async fn create_support(
        &self,
        request: Request<pb::CreateSupportRequest>,
    ) -> Result<Response<pb::CreateSupportResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("record support", WRITE)?;
        let credentials = credentials_of(&request)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(&caller, "CreateSupport", &request.request_id, &request)?;
        let request_id = request.request_id.clone();
        let new = NewSupport::checked(&request.support.clone().unwrap_or_default())?;
        let (household_id, member_id, provided_on) =
            (new.household_id, new.member_id, new.provided_on);
        if let Some(previous) = journal::answered(&self.db, &self.cipher, key.as_ref()).await? {
            return Ok(Response::new(previous));
        }
        let named = Named {
            household_id: household_id.clone(),
            year: provided_on.year(),
            field: "support.household_id".into(),
        };
        let standing = &self
            .registry
            .one(&credentials, named, member_id.is_some())
            .await?;
        let details = new.details;
        let (birth_date, sex) =
            member_facts(standing, member_id.as_deref(), &details, provided_on)?;
        let project_code = new
            .project
            .or_else(|| details.default_project().map(str::to_owned));
        let place = placement_of(standing);
        let class = standing_code(standing.standing).to_owned();
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            if let Some(code) = &project_code {
                catalog::usable(&txn, &caller, code, "support.project_code").await?;
            }
            let nutrition = matches!(details, Details::Nutrition { .. });
            let mut row = new_row(
                household_id,
                member_id,
                project_code,
                provided_on,
                class,
                place,
            );
            row.birth_date = birth_date.filter(|_| nutrition);
            row.sex = sex.filter(|_| nutrition);
            apply_details(&mut row, &details, &self.cipher)?;
            records::insert(&txn, &caller, &request_id, &row).await?;
            Ok((
                pb::CreateSupportResponse {
                    support: Some(support_to_proto(&row, &self.cipher)?),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn get_support(
        &self,
        request: Request<pb::GetSupportRequest>,
    ) -> Result<Response<pb::GetSupportResponse>, Status> {
        let row = records::fetched::<support::Model, _>(&self.db, &request, "read support").await?;
        Ok(Response::new(pb::GetSupportResponse {
            support: Some(support_to_proto(&row, &self.cipher)?),
        }))
    }

    async fn list_supports(
        &self,
        request: Request<pb::ListSupportsRequest>,
    ) -> Result<Response<pb::ListSupportsResponse>, Status> {
        let list = records::list_order(request, "read support")?;
        let filter = &list.filter;
        let mut v = Violations::new();
        let kind = pb::SupportKind::try_from(filter.kind)
            .ok()
            .and_then(kind_code);
        if filter.kind != 0 && kind.is_none() {
            v.add("filter.kind", "is not a support kind");
        }
        let household = (!filter.household_id.trim().is_empty())
            .then(|| required_id(&filter.household_id, "filter.household_id", &mut v));
        let narrow = Narrow::default()
            .year("year", filter.year)
            .is("kind", kind)
            .is("household_id", household);
        let (rows, next) = list.page::<support::Model>(&self.db, v, narrow).await?;
        Ok(Response::new(pb::ListSupportsResponse {
            supports: rows
                .iter()
                .map(|r| support_to_proto(r, &self.cipher))
                .collect::<Result<_, _>>()?,
            next_page_token: next,
        }))
    }

    async fn update_support(
        &self,
        request: Request<pb::UpdateSupportRequest>,
    ) -> Result<Response<pb::UpdateSupportResponse>, Status> {
        let records::Update {
            caller,
            key,
            request_id,
            id,
            etag,
            paths,
            sent,
        } = records::update_order(request, "record support", "UpdateSupport", SUPPORT_PATHS)?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            let stored = records::changeable::<support::Model>(&txn, &caller, &id, etag.trim()).await?;
            let current = stored_details(&stored, &self.cipher)?;
            let mut v = Violations::new();
            let provided_on = if paths.iter().any(|p| p == "provided_on") {
                let d = parse_date(&sent.provided_on, "support.provided_on", &mut v);
                if d.is_some_and(|d| d > today()) {
                    v.add("support.provided_on", "must not be in the future");
                }
                if d.is_some_and(|d| d.year() != stored.year) {
                    v.add("support.provided_on", "must stay in the same year (the household's standing is read for it); archive and record anew");
                }
                d
            } else {
                Some(stored.provided_on)
            };
            let details = if paths.iter().any(|p| p == "details") {
                details_from_proto(sent.details.as_ref(), provided_on, &mut v)
            } else {
                Some(current.clone())
            };
            if details.as_ref().is_some_and(|d| d.kind() != current.kind()) {
                v.add("support.details", "the kind does not change; archive and record anew");
            }
            let (details, provided_on) = checked(details.zip(provided_on), v)?;
            let expected = stored.version;
            let mut row = stored;
            row.provided_on = provided_on;
            if let (Details::Nutrition { .. }, Some(birth)) = (&details, row.birth_date)
                && let Err(e) = nutrition::assessable_age(birth, provided_on)
            {
                return Err(ServiceError::invalid("support.provided_on", format!("{e} (born {birth})")));
            }
            apply_details(&mut row, &details, &self.cipher)?;
            row.bump(now());
            records::save(&txn, &caller, &request_id, &row, expected, "update").await?;
            Ok((pb::UpdateSupportResponse { support: Some(support_to_proto(&row, &self.cipher)?) }, txn))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn archive_support(
        &self,
        request: Request<pb::ArchiveSupportRequest>,
    ) -> Result<Response<pb::ArchiveSupportResponse>, Status> {
        let (caller, key, order) =
            records::archive_order(request, "archive support", "ArchiveSupport")?;
        let cipher = self.cipher.clone();
        let answer = records::archive::<support::Model, _>(
            &self.db,
            &self.cipher,
            &caller,
            key,
            order,
            move |row| pb::ArchiveSupportResponse {
                support: support_to_proto(row, &cipher).ok(),
            },
        )
        .await?;
        Ok(Response::new(answer))
    }
}
