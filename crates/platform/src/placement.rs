//! Where a record that is not a household sits: a programme model run by a
//! district, an inspection of a commune, an allocation to a province. The unit
//! and every unit above it are kept in columns of the record's table, so a list
//! under any unit and a scope check are plain column comparisons, the same way
//! households are filtered.

use chrono::NaiveDate;
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use sustain_domain::admin::{self, Level};

use crate::auth::{Caller, Scope};
use crate::error::ServiceError;

/// The columns a placed table carries: `province_code`, `district_code`,
/// `commune_code` and `current_commune_code` (the last three nullable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The unit the record belongs to.
    pub unit_code: String,
    pub province_code: String,
    /// `None` above district level and for communes created by the 2025 reform.
    pub district_code: Option<String>,
    pub commune_code: Option<String>,
    /// The commune in force today that carries `commune_code` on.
    pub current_commune_code: Option<String>,
}

impl Placement {
    /// Places a unit code as read on `on`; the reason it cannot be placed
    /// otherwise, for a field violation.
    pub fn of_unit(code: &str, on: NaiveDate, today: NaiveDate) -> Result<Placement, String> {
        let catalog = admin::catalog();
        match Level::of_code(code) {
            Some(Level::Commune) => {
                let l = catalog
                    .locate_commune(code, on, today)
                    .map_err(|e| e.to_string())?;
                Ok(Placement {
                    unit_code: code.to_owned(),
                    province_code: l.province_code,
                    district_code: l.district_code,
                    commune_code: Some(l.commune_code),
                    current_commune_code: Some(l.current_commune_code),
                })
            }
            Some(Level::District) => {
                let province = catalog
                    .versions(code)
                    .iter()
                    .find(|u| u.level == Level::District)
                    .and_then(|u| u.parent_code.clone())
                    .ok_or_else(|| "is not a known district".to_owned())?;
                Ok(Placement {
                    unit_code: code.to_owned(),
                    province_code: province,
                    district_code: Some(code.to_owned()),
                    commune_code: None,
                    current_commune_code: None,
                })
            }
            Some(Level::Province) if catalog.province(code).is_some() => Ok(Placement {
                unit_code: code.to_owned(),
                province_code: code.to_owned(),
                district_code: None,
                commune_code: None,
                current_commune_code: None,
            }),
            _ => Err("is not a known administrative unit code".to_owned()),
        }
    }

    /// True when `code` names this unit or a unit above it.
    pub fn is_within(&self, code: &str) -> bool {
        self.province_code == code
            || self.district_code.as_deref() == Some(code)
            || self.commune_code.as_deref() == Some(code)
            || self.current_commune_code.as_deref() == Some(code)
    }
}

impl Scope {
    /// True when a record placed at `placement` lies inside the scope.
    pub fn covers_placement(&self, placement: &Placement) -> bool {
        self.is_nationwide() || self.codes().iter().any(|c| placement.is_within(c))
    }
}

impl Caller {
    /// PERMISSION_DENIED unless the record's placement is in scope.
    pub fn require_placement(&self, placement: &Placement) -> Result<(), ServiceError> {
        if self.scope.covers_placement(placement) {
            Ok(())
        } else {
            Err(ServiceError::PermissionDenied {
                reason: "OUT_OF_SCOPE",
                message: format!(
                    "unit {} is outside the caller's administrative scope",
                    placement.unit_code
                ),
            })
        }
    }
}

fn col(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

/// Rows of a placed table lying under `code`, by the column of its level.
pub fn under_unit(code: &str) -> Condition {
    match Level::of_code(code) {
        Some(Level::Province) => Condition::all().add(col("province_code").eq(code)),
        Some(Level::District) => Condition::all().add(col("district_code").eq(code)),
        Some(Level::Commune) => Condition::any()
            .add(col("commune_code").eq(code))
            .add(col("current_commune_code").eq(code)),
        // Not a unit code: matches nothing.
        None => Condition::all().add(Expr::cust("1 = 0")),
    }
}

/// Rows inside the caller's scope, or `None` when the scope holds everything.
pub fn in_scope(scope: &Scope) -> Option<Condition> {
    if scope.is_nationwide() {
        return None;
    }
    Some(
        scope
            .codes()
            .iter()
            .fold(Condition::any(), |any, code| any.add(under_unit(code))),
    )
}

/// The filter for a list under `unit` (when given) within the caller's scope.
/// A unit wholly inside the scope makes the scope condition redundant, and
/// leaving it in steers planners to the wide index.
pub fn selection(scope: &Scope, unit: Option<&str>) -> Condition {
    let mut all = Condition::all();
    match unit {
        Some(code) => {
            all = all.add(under_unit(code));
            if !scope.contains_unit(code)
                && let Some(c) = in_scope(scope)
            {
                all = all.add(c);
            }
        }
        None => {
            if let Some(c) = in_scope(scope) {
                all = all.add(c);
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn units_of_every_level_are_placed() {
        let today = d(2026, 1, 1);
        let commune = Placement::of_unit("06067", d(2024, 1, 1), today).unwrap();
        assert_eq!(commune.province_code, "20");
        assert_eq!(commune.district_code.as_deref(), Some("181"));
        assert!(commune.is_within("181") && commune.is_within("06067"));
        let district = Placement::of_unit("181", d(2024, 1, 1), today).unwrap();
        assert_eq!(district.province_code, "20");
        assert!(district.commune_code.is_none());
        assert!(!district.is_within("06067"));
        let province = Placement::of_unit("20", d(2024, 1, 1), today).unwrap();
        assert!(province.is_within("20") && !province.is_within("181"));
        assert!(Placement::of_unit("99999", d(2024, 1, 1), today).is_err());
        assert!(Placement::of_unit("", d(2024, 1, 1), today).is_err());

        let district_clerk = Scope::new(vec!["181".into()]);
        assert!(district_clerk.covers_placement(&commune));
        assert!(district_clerk.covers_placement(&district));
        // A record of the whole province is not the district's to see.
        assert!(!district_clerk.covers_placement(&province));
        assert!(Scope::nationwide().covers_placement(&province));
    }
}
