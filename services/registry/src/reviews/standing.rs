//! Standings for programme support: for a batch of households, whether each
//! exists in the caller's scope, where it lives and how it stands in a year by
//! its certified reviews. Three indexed reads per batch, whatever its size.

use std::collections::HashMap;

use sea_orm::ConnectionTrait;
use sustain_domain::Violations;
use sustain_domain::admin::Location;
use sustain_domain::household::Sex;
use sustain_domain::poverty::{self, CertifiedReview, Class, Standing, Transition};
use sustain_platform::Caller;
use sustain_platform::error::ServiceError;
use sustain_proto::registry::v1 as pb;

use crate::model::household;

/// Most households one call may ask about.
pub const MAX_STANDINGS: usize = 1000;

/// Checks the request: a year and 1..=MAX_STANDINGS ids.
pub fn validate(request: &pb::BatchGetStandingsRequest) -> Result<Vec<String>, ServiceError> {
    let mut v = Violations::new();
    if !(2000..=2100).contains(&request.year) {
        v.add("year", "must be a review year between 2000 and 2100");
    }
    if request.household_ids.is_empty() {
        v.add("household_ids", "is required");
    } else if request.household_ids.len() > MAX_STANDINGS {
        v.add("household_ids", format!("at most {MAX_STANDINGS} per call"));
    }
    let mut ids = Vec::with_capacity(request.household_ids.len());
    for (i, raw) in request.household_ids.iter().enumerate() {
        match sustain_platform::api::canonical_id(raw) {
            Some(id) => ids.push(id),
            None => v.add(format!("household_ids[{i}]"), "must be an id (UUID)"),
        }
    }
    if v.is_empty() { Ok(ids) } else { Err(v.into()) }
}

fn standing_to_proto(s: Standing) -> pb::Standing {
    match s {
        Standing::Poor => pb::Standing::Poor,
        Standing::NearPoor => pb::Standing::NearPoor,
        Standing::RecentlyEscaped => pb::Standing::RecentlyEscaped,
        Standing::Other => pb::Standing::Other,
    }
}

fn sex_to_proto(code: &str) -> pb::Sex {
    match Sex::from_code(code) {
        Some(Sex::Male) => pb::Sex::Male,
        Some(Sex::Female) => pb::Sex::Female,
        None => pb::Sex::Unspecified,
    }
}

/// One standing per id, in the order asked.
pub async fn standings(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    year: i32,
    ids: &[String],
    include_members: bool,
) -> Result<Vec<pb::HouseholdStanding>, ServiceError> {
    let found = crate::store::households_by_ids(conn, ids).await?;
    let in_scope: Vec<String> = found
        .values()
        .filter(|h| caller.scope.covers(&location_of(h)))
        .map(|h| h.id.clone())
        .collect();
    let mut chains: HashMap<String, Vec<CertifiedReview>> = HashMap::new();
    let mut members: HashMap<String, Vec<pb::StandingMember>> = HashMap::new();
    if !in_scope.is_empty() {
        let rows = crate::store::reviews::certified_classes(conn, &in_scope, year).await?;
        for (household_id, year, class, transition) in rows {
            let (Some(class), Some(transition)) =
                (Class::from_code(&class), Transition::from_code(&transition))
            else {
                return Err(ServiceError::Internal(format!(
                    "review of household {household_id} for {year} has unknown codes"
                )));
            };
            chains
                .entry(household_id)
                .or_default()
                .push(CertifiedReview {
                    year,
                    class,
                    transition,
                });
        }
        if include_members {
            let rows = crate::store::member_rows_of(conn, &in_scope).await?;
            for m in rows {
                members
                    .entry(m.household_id.clone())
                    .or_default()
                    .push(pb::StandingMember {
                        id: m.id,
                        birth_date: m.birth_date.to_string(),
                        sex: sex_to_proto(&m.sex) as i32,
                    });
            }
        }
    }
    Ok(ids
        .iter()
        .map(|id| {
            let Some(h) = found.get(id) else {
                return lookup_only(id, pb::StandingLookup::NotFound);
            };
            if !caller.scope.covers(&location_of(h)) {
                return lookup_only(id, pb::StandingLookup::OutOfScope);
            }
            let chain = chains.get(id).map_or(&[][..], Vec::as_slice);
            let (standing, review_year) = poverty::standing_at(chain, year);
            pb::HouseholdStanding {
                household_id: id.clone(),
                lookup: if h.state == "active" {
                    pb::StandingLookup::Found
                } else {
                    pb::StandingLookup::Archived
                } as i32,
                province_code: h.province_code.clone(),
                district_code: h.district_code.clone().unwrap_or_default(),
                commune_code: h.commune_code.clone(),
                current_commune_code: h.current_commune_code.clone(),
                ethnic_minority: h.ethnic_minority,
                standing: standing_to_proto(standing) as i32,
                review_year: review_year.unwrap_or(0),
                members: members.get(id).cloned().unwrap_or_default(),
            }
        })
        .collect())
}

fn lookup_only(id: &str, lookup: pb::StandingLookup) -> pb::HouseholdStanding {
    pb::HouseholdStanding {
        household_id: id.to_owned(),
        lookup: lookup as i32,
        ..Default::default()
    }
}

fn location_of(h: &household::Model) -> Location {
    Location {
        province_code: h.province_code.clone(),
        district_code: h.district_code.clone(),
        commune_code: h.commune_code.clone(),
        current_commune_code: h.current_commune_code.clone(),
    }
}
