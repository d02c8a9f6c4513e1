//! Between the wire and the domain: parses protobuf households into domain values,
//! naming every bad field by its request path, and renders stored records back.

use chrono::NaiveDate;
use sustain_domain::Violations;
use sustain_domain::admin::{self, LocateError};
use sustain_domain::citizen_id::CitizenId;
use sustain_domain::ethnicity;
use sustain_domain::household::{
    self, Address, HealthInsurance, Household, MAX_NAME_CHARS, Member, Relation, Residence, Sex,
};
use sustain_proto::registry::v1 as pb;

use crate::store::HouseholdRecord;

/// Longest village name accepted.
pub const MAX_VILLAGE_CHARS: usize = 200;

pub use sustain_platform::api::{
    DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, etag, page_size, parse_date, timestamp, today,
};

fn text(raw: &str, field: &str, max: usize, v: &mut Violations) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        v.add(field, "is required");
        None
    } else if trimmed.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
        None
    } else if trimmed.chars().any(char::is_control) {
        v.add(field, "must not contain control characters");
        None
    } else {
        Some(trimmed.to_owned())
    }
}

fn enum_value<P, D>(
    raw: i32,
    field: &str,
    v: &mut Violations,
    map: impl Fn(P) -> Option<D>,
) -> Option<D>
where
    P: TryFrom<i32>,
{
    let parsed = P::try_from(raw).ok().and_then(map);
    if parsed.is_none() {
        v.add(field, "is required and must be one of the listed values");
    }
    parsed
}

fn member_from_proto(m: &pb::Member, path: &str, v: &mut Violations) -> Option<Member> {
    let full_name = text(
        &m.full_name,
        &format!("{path}.full_name"),
        MAX_NAME_CHARS,
        v,
    );
    let birth_field = format!("{path}.birth_date");
    let birth_date = if m.birth_date.trim().is_empty() {
        v.add(&birth_field, "is required");
        None
    } else {
        parse_date(&m.birth_date, &birth_field, v).filter(|d| {
            let ok = *d >= household::earliest_birth_date();
            if !ok {
                v.add(&birth_field, "is implausibly early");
            }
            ok
        })
    };
    let sex = enum_value(m.sex, &format!("{path}.sex"), v, |s: pb::Sex| match s {
        pb::Sex::Male => Some(Sex::Male),
        pb::Sex::Female => Some(Sex::Female),
        pb::Sex::Unspecified => None,
    });
    let ethnicity_code = m.ethnicity_code.trim().to_owned();
    if !ethnicity::is_known(&ethnicity_code) {
        v.add(
            format!("{path}.ethnicity_code"),
            "must be the two-digit code of one of the 54 ethnic groups (01 Kinh ... 54 Rơ Măm)",
        );
    }
    let relation = enum_value(
        m.relation,
        &format!("{path}.relation"),
        v,
        |r: pb::Relation| {
            Some(match r {
                pb::Relation::Unspecified => return None,
                pb::Relation::Head => Relation::Head,
                pb::Relation::Spouse => Relation::Spouse,
                pb::Relation::Child => Relation::Child,
                pb::Relation::Parent => Relation::Parent,
                pb::Relation::Grandchild => Relation::Grandchild,
                pb::Relation::Grandparent => Relation::Grandparent,
                pb::Relation::Sibling => Relation::Sibling,
                pb::Relation::OtherRelative => Relation::OtherRelative,
                pb::Relation::NonRelative => Relation::NonRelative,
            })
        },
    );
    // A malformed ID is refused here; the member is still read without it,
    // so what the other rules say of it (a birth in the future) is told too.
    let citizen_id = if m.citizen_id.trim().is_empty() {
        None
    } else {
        match CitizenId::parse(&m.citizen_id) {
            Ok(id) => Some(id),
            Err(e) => {
                v.add(format!("{path}.citizen_id"), e.to_string());
                None
            }
        }
    };
    let health_insurance = enum_value(
        m.health_insurance,
        &format!("{path}.health_insurance"),
        v,
        |h: pb::HealthInsurance| match h {
            pb::HealthInsurance::Insured => Some(HealthInsurance::Insured),
            pb::HealthInsurance::Uninsured => Some(HealthInsurance::Uninsured),
            pb::HealthInsurance::Unspecified => None,
        },
    );
    Some(Member {
        full_name: full_name?,
        birth_date: birth_date?,
        sex: sex?,
        ethnicity_code: ethnicity::is_known(&ethnicity_code).then_some(ethnicity_code)?,
        relation: relation?,
        citizen_id,
        has_disability: m.has_disability,
        health_insurance: health_insurance?,
    })
}

/// Parses a whole household; `prefix` is its path in the request (`household`).
/// Returns `None` exactly when something was added to `v`.
pub fn household_from_proto(
    h: &pb::Household,
    prefix: &str,
    today: NaiveDate,
    v: &mut Violations,
) -> Option<Household> {
    let before = v.iter().count();
    let registered_field = format!("{prefix}.registered_on");
    let registered_on = if h.registered_on.trim().is_empty() {
        Some(today)
    } else {
        parse_date(&h.registered_on, &registered_field, v).filter(|d| {
            let ok = *d <= today;
            if !ok {
                v.add(&registered_field, "must not be in the future");
            }
            ok
        })
    };

    let address = match &h.address {
        None => {
            v.add(format!("{prefix}.address"), "is required");
            None
        }
        Some(a) => {
            let code_field = format!("{prefix}.address.commune_code");
            let location = registered_on.and_then(|date| {
                admin::catalog()
                    .locate_commune(a.commune_code.trim(), date, today)
                    .map_err(|e| {
                        let hint = match e {
                            LocateError::NotValidAt { .. } => {
                                " (set registered_on to a date when it was, or use its successor)"
                            }
                            _ => "",
                        };
                        v.add(&code_field, format!("{e}{hint}"));
                    })
                    .ok()
            });
            let village = text(
                &a.village,
                &format!("{prefix}.address.village"),
                MAX_VILLAGE_CHARS,
                v,
            );
            let residence = enum_value(
                a.residence,
                &format!("{prefix}.address.residence"),
                v,
                |r: pb::Residence| match r {
                    pb::Residence::Rural => Some(Residence::Rural),
                    pb::Residence::Urban => Some(Residence::Urban),
                    pb::Residence::Unspecified => None,
                },
            );
            match (location, village, residence) {
                (Some(location), Some(village), Some(residence)) => Some(Address {
                    location,
                    village,
                    residence,
                }),
                _ => None,
            }
        }
    };

    let members_path = format!("{prefix}.members");
    let members: Vec<Option<Member>> = h
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| member_from_proto(m, &format!("{members_path}[{i}]"), v))
        .collect();
    v.extend(household::check_members(&members, today, &members_path));
    let members: Option<Vec<Member>> = members.into_iter().collect();
    if v.iter().count() > before {
        return None;
    }
    Some(Household {
        address: address?,
        registered_on: registered_on?,
        members: members?,
    })
}

/// Renders a stored household; viewers see citizen IDs masked.
pub fn household_to_proto(r: &HouseholdRecord, mask_citizen_ids: bool) -> pb::Household {
    pb::Household {
        id: r.id.clone(),
        address: Some(pb::Address {
            commune_code: r.location.commune_code.clone(),
            village: r.village.clone(),
            residence: match r.residence {
                Residence::Rural => pb::Residence::Rural,
                Residence::Urban => pb::Residence::Urban,
            } as i32,
        }),
        members: r
            .members
            .iter()
            .map(|m| {
                let p = &m.member;
                pb::Member {
                    id: m.id.clone(),
                    full_name: p.full_name.clone(),
                    birth_date: p.birth_date.to_string(),
                    sex: match p.sex {
                        Sex::Male => pb::Sex::Male,
                        Sex::Female => pb::Sex::Female,
                    } as i32,
                    ethnicity_code: p.ethnicity_code.clone(),
                    relation: relation_to_proto(p.relation) as i32,
                    citizen_id: p
                        .citizen_id
                        .as_ref()
                        .map(|c| {
                            if mask_citizen_ids {
                                c.masked()
                            } else {
                                c.as_str().to_owned()
                            }
                        })
                        .unwrap_or_default(),
                    has_disability: p.has_disability,
                    health_insurance: match p.health_insurance {
                        HealthInsurance::Insured => pb::HealthInsurance::Insured,
                        HealthInsurance::Uninsured => pb::HealthInsurance::Uninsured,
                    } as i32,
                }
            })
            .collect(),
        registered_on: r.registered_on.to_string(),
        owner_unit_code: r.owner_unit().to_owned(),
        district_code: r.location.district_code.clone().unwrap_or_default(),
        province_code: r.location.province_code.clone(),
        current_commune_code: r.location.current_commune_code.clone(),
        head_name: r.head_name.clone(),
        ethnic_minority: r.ethnic_minority,
        state: if r.archived {
            pb::HouseholdState::Archived
        } else {
            pb::HouseholdState::Active
        } as i32,
        version: r.version,
        etag: etag(r.version),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
    }
}

fn relation_to_proto(r: Relation) -> pb::Relation {
    match r {
        Relation::Head => pb::Relation::Head,
        Relation::Spouse => pb::Relation::Spouse,
        Relation::Child => pb::Relation::Child,
        Relation::Parent => pb::Relation::Parent,
        Relation::Grandchild => pb::Relation::Grandchild,
        Relation::Grandparent => pb::Relation::Grandparent,
        Relation::Sibling => pb::Relation::Sibling,
        Relation::OtherRelative => pb::Relation::OtherRelative,
        Relation::NonRelative => pb::Relation::NonRelative,
    }
}
