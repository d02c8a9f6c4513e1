//! What a household record is and when it is well-formed: exactly one head, members
//! born before the household was registered, citizen IDs consistent with their
//! holders and not repeated, and whether the household counts as ethnic-minority.

use chrono::NaiveDate;
use std::collections::HashMap;

use crate::admin::{Location, catalog};
use crate::citizen_id::CitizenId;
use crate::ethnicity;
use crate::violation::Violations;

pub use crate::person::Sex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residence {
    Rural,
    Urban,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Head,
    Spouse,
    Child,
    Parent,
    Grandchild,
    Grandparent,
    Sibling,
    OtherRelative,
    NonRelative,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthInsurance {
    Insured,
    Uninsured,
}

/// Longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Most members one household record may hold.
pub const MAX_MEMBERS: usize = 60;
/// Earliest birth date accepted.
pub fn earliest_birth_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1880, 1, 1).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub full_name: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub ethnicity_code: String,
    pub relation: Relation,
    pub citizen_id: Option<CitizenId>,
    pub has_disability: bool,
    pub health_insurance: HealthInsurance,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub location: Location,
    pub village: String,
    pub residence: Residence,
}

/// A household as submitted, after each field has been parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Household {
    pub address: Address,
    pub registered_on: NaiveDate,
    pub members: Vec<Member>,
}

impl Household {
    pub fn head(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.relation == Relation::Head)
    }

    /// A household is ethnic-minority when its head is not Kinh.
    pub fn is_ethnic_minority(&self) -> bool {
        self.head()
            .is_some_and(|h| ethnicity::is_minority(&h.ethnicity_code))
    }
}

/// Rules across members; `prefix` is the request path of the member list, such as
/// `household.members`. Field-level parsing has already happened: a member
/// that did not parse is `None` (and already refused), and every rule that
/// can still be told of the others is checked, so one bad field never hides
/// another. Children born after the household was registered are members like
/// any other; only a birth after `today` is refused.
pub fn check_members(members: &[Option<Member>], today: NaiveDate, prefix: &str) -> Violations {
    let mut v = Violations::new();
    let unparsed = members.iter().filter(|m| m.is_none()).count();
    if members.is_empty() {
        v.add(prefix, "a household needs at least one member, its head");
        return v;
    }
    if members.len() > MAX_MEMBERS {
        v.add(prefix, format!("at most {MAX_MEMBERS} members"));
    }
    let heads = members
        .iter()
        .flatten()
        .filter(|m| m.relation == Relation::Head)
        .count();
    // A member that did not parse may be the missing head.
    if heads > 1 || heads == 0 && unparsed == 0 {
        v.add(
            prefix,
            format!("exactly one member must have relation HEAD, found {heads}"),
        );
    }
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, m) in members.iter().enumerate() {
        let Some(m) = m else { continue };
        if m.birth_date > today {
            v.add(format!("{prefix}[{i}].birth_date"), "is in the future");
        }
        if let Some(id) = &m.citizen_id {
            if let Some(first) = ids.insert(id.as_str(), i) {
                v.add(
                    format!("{prefix}[{i}].citizen_id"),
                    format!("repeats the citizen ID of member {first}"),
                );
            }
            if let Err(e) = id.check_holder(Some(m.birth_date), Some(m.sex)) {
                v.add(format!("{prefix}[{i}].citizen_id"), e.to_string());
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    fn member(relation: Relation, ethnicity: &str, id: Option<&str>) -> Member {
        Member {
            full_name: "Hoàng Văn Thụ".into(),
            birth_date: d(1985, 3, 2),
            sex: Sex::Male,
            ethnicity_code: ethnicity.into(),
            relation,
            citizen_id: id.map(|s| CitizenId::parse(s).expect("valid id")),
            has_disability: false,
            health_insurance: HealthInsurance::Insured,
        }
    }

    #[test]
    fn one_head_is_required() {
        let none = check_members(
            &[Some(member(Relation::Spouse, "02", None))],
            d(2024, 1, 1),
            "m",
        );
        assert_eq!(none.iter().next().map(|f| f.field.as_str()), Some("m"));
        let two = check_members(
            &[
                Some(member(Relation::Head, "02", None)),
                Some(member(Relation::Head, "02", None)),
            ],
            d(2024, 1, 1),
            "m",
        );
        assert!(!two.is_empty());
        let one = check_members(
            &[Some(member(Relation::Head, "02", None))],
            d(2024, 1, 1),
            "m",
        );
        assert!(one.is_empty());
        assert!(!check_members(&[], d(2024, 1, 1), "m").is_empty());
    }

    #[test]
    fn repeated_and_inconsistent_ids_are_named() {
        let mut wrong_year = member(Relation::Child, "02", Some("020090001111"));
        wrong_year.birth_date = d(2012, 1, 1);
        let v = check_members(
            &[
                Some(member(Relation::Head, "02", Some("020085001234"))),
                Some(member(Relation::Spouse, "02", Some("020085001234"))),
                Some(wrong_year),
            ],
            d(2024, 1, 1),
            "household.members",
        );
        let fields: Vec<_> = v.iter().map(|f| f.field.clone()).collect();
        assert!(fields.contains(&"household.members[1].citizen_id".to_owned()));
        assert!(fields.contains(&"household.members[2].citizen_id".to_owned()));
    }

    #[test]
    fn birth_in_the_future_is_refused() {
        let mut m = member(Relation::Head, "01", None);
        m.birth_date = d(2025, 1, 1);
        let v = check_members(&[Some(m), None], d(2024, 1, 1), "m");
        assert_eq!(
            v.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(),
            ["m[0].birth_date"],
            "told beside a member that did not parse"
        );
    }

    #[test]
    fn ethnic_minority_follows_the_head() {
        let loc = Location {
            province_code: "20".into(),
            district_code: Some("181".into()),
            commune_code: "06067".into(),
            current_commune_code: "06067".into(),
        };
        let mut h = Household {
            address: Address {
                location: loc,
                village: "Bản Nà".into(),
                residence: Residence::Rural,
            },
            registered_on: d(2022, 1, 1),
            members: vec![
                member(Relation::Head, "01", None),
                member(Relation::Spouse, "02", None),
            ],
        };
        assert!(!h.is_ethnic_minority(), "Kinh head, Tày spouse");
        h.members[0].ethnicity_code = "07".into();
        assert!(h.is_ethnic_minority(), "Nùng head");
    }
}

/// Stable lower-case codes for the enumerations, used in storage and file imports.
macro_rules! codes {
    ($ty:ty { $($variant:ident => $code:literal),+ $(,)? }) => {
        impl $ty {
            pub fn code(self) -> &'static str {
                match self { $(Self::$variant => $code),+ }
            }
            pub fn from_code(code: &str) -> Option<Self> {
                match code { $($code => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

codes!(Residence { Rural => "rural", Urban => "urban" });
codes!(HealthInsurance { Insured => "insured", Uninsured => "uninsured" });
codes!(Relation {
    Head => "head",
    Spouse => "spouse",
    Child => "child",
    Parent => "parent",
    Grandchild => "grandchild",
    Grandparent => "grandparent",
    Sibling => "sibling",
    OtherRelative => "other_relative",
    NonRelative => "non_relative",
});

#[cfg(test)]
mod code_tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for r in [
            Relation::Head,
            Relation::OtherRelative,
            Relation::NonRelative,
        ] {
            assert_eq!(Relation::from_code(r.code()), Some(r));
        }
        assert_eq!(Sex::from_code("female"), Some(Sex::Female));
        assert_eq!(Residence::from_code("town"), None);
    }
}

/// The area whose income line a household is reviewed under on `on`: its
/// residence, unless its commune of registration has since given way to
/// another unit (the 2025 reform merged it): then that unit's kind, a ward
/// (phường) or town (thị trấn) urban, a commune (xã) rural. Decree 07 sets
/// the lines by area; for merged units this is [verify] (README).
pub fn area_on(
    location: &Location,
    residence: Residence,
    registered_on: NaiveDate,
    on: NaiveDate,
) -> Residence {
    let catalog = catalog();
    let registered = catalog.get(&location.commune_code, registered_on);
    match catalog.holding_unit(&location.commune_code, &location.current_commune_code, on) {
        Some(unit) if Some(unit) != registered => match unit.kind.as_str() {
            "Phường" | "Thị trấn" => Residence::Urban,
            "Xã" => Residence::Rural,
            _ => residence,
        },
        _ => residence,
    }
}
