//! Who owns which units, as this instance knows it: its own name, its
//! upstream and the `sync_owner` rows (seeded from configuration, changed
//! only by an audited handover). The journal refuses a write to a record
//! another instance owns with it; replication keeps the rows.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, EntityTrait, Statement};
use sustain_domain::admin::{self, Level};

use crate::error::ServiceError;

pub mod sync_owner {
    use sea_orm::entity::prelude::*;

    /// Who owns a unit; units no row names belong to the upstream (or, with
    /// none, to this instance).
    #[sea_orm::model]
    #[derive(
        Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize,
    )]
    #[sea_orm(table_name = "sync_owner")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub unit_code: String,
        pub instance: String,
        pub since: ChronoDateTimeUtc,
        pub set_by: String,
        pub version: i64,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Who owns what, as this instance knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// This instance's name; empty when it runs alone.
    pub me: String,
    /// The instance above; empty at the top.
    pub upstream: String,
    owners: HashMap<String, String>,
}

impl Topology {
    /// Reads the topology; a database without one runs alone.
    pub async fn load(conn: &impl ConnectionTrait) -> Result<Topology, ServiceError> {
        let backend = conn.get_database_backend();
        let Some(row) = conn
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT name, upstream FROM sync_instance WHERE id = 1",
            ))
            .await?
        else {
            return Ok(Topology::default());
        };
        let owners = sync_owner::Entity::find()
            .all(conn)
            .await?
            .into_iter()
            .map(|o| (o.unit_code, o.instance))
            .collect();
        Ok(Topology {
            me: row.try_get("", "name")?,
            upstream: row.try_get("", "upstream")?,
            owners,
        })
    }

    /// True when this instance replicates with others.
    pub fn is_replicated(&self) -> bool {
        !self.me.is_empty()
    }

    /// The instance owning records of `unit`: the row of the most specific unit
    /// at or above it (a commune's row beats its district's; the 2025 successor
    /// of an old commune counts as above it), else the upstream, else this one.
    pub fn owner_of(&self, unit: &str) -> &str {
        let mut best: Option<(u8, &str, &str)> = None;
        if !self.owners.is_empty() {
            for code in admin::catalog().ancestors_or_self(unit) {
                let Some((code, owner)) = self.owners.get_key_value(&code) else {
                    continue;
                };
                let rank = match Level::of_code(code) {
                    Some(Level::Commune) if code == unit => 4,
                    Some(Level::Commune) => 3,
                    Some(Level::District) => 2,
                    _ => 1,
                };
                // Ties (two successors) go to the smaller code, deterministically.
                if best.is_none_or(|(r, c, _)| rank > r || (rank == r && code.as_str() < c)) {
                    best = Some((rank, code.as_str(), owner.as_str()));
                }
            }
        }
        match best {
            Some((_, _, owner)) => owner,
            None if !self.upstream.is_empty() => &self.upstream,
            None => &self.me,
        }
    }

    /// True when this instance may write records of `unit`.
    pub fn owns(&self, unit: &str) -> bool {
        !self.is_replicated() || self.owner_of(unit) == self.me
    }

    /// The units rows give this instance: the scope it owns.
    pub fn own_units(&self) -> Vec<String> {
        self.units_of(&self.me)
    }

    /// The units rows give `instance`.
    pub fn units_of(&self, instance: &str) -> Vec<String> {
        let mut units: Vec<String> = self
            .owners
            .iter()
            .filter(|(_, owner)| *owner == instance)
            .map(|(unit, _)| unit.clone())
            .collect();
        units.sort();
        units
    }

    /// PERMISSION_DENIED unless every unit this instance owns lies in the
    /// caller's scope: for what speaks of the whole instance (`what`: its sync
    /// status, its own chain).
    pub fn require_whole(
        &self,
        caller: &crate::auth::Caller,
        what: &str,
    ) -> Result<(), ServiceError> {
        match self
            .own_units()
            .into_iter()
            .find(|u| !caller.scope.contains_unit(u))
        {
            None => Ok(()),
            Some(unit) => Err(ServiceError::PermissionDenied {
                reason: "OUT_OF_SCOPE",
                message: format!(
                    "{what} of instance {} covers unit {unit}, which is not wholly inside the caller's scope",
                    self.me
                ),
            }),
        }
    }

    /// FAILED_PRECONDITION naming the owner when any of `units` is not this
    /// instance's to write.
    pub fn check_writes<'a>(
        &self,
        units: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ServiceError> {
        if !self.is_replicated() {
            return Ok(());
        }
        let mut seen: Vec<&str> = vec![];
        for unit in units {
            if seen.contains(&unit) {
                continue;
            }
            seen.push(unit);
            let owner = self.owner_of(unit);
            if owner != self.me {
                return Err(ServiceError::FailedPrecondition {
                    reason: "REPLICA",
                    message: format!(
                        "records of unit {unit} belong to instance {owner:?}; this instance ({}) holds a read-only copy, so write them there",
                        self.me
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(me: &str, upstream: &str, owners: &[(&str, &str)]) -> Topology {
        Topology {
            me: me.into(),
            upstream: upstream.into(),
            owners: owners
                .iter()
                .map(|(u, o)| ((*u).to_owned(), (*o).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn the_most_specific_row_owns_a_unit() {
        let province = topology(
            "province",
            "",
            &[
                ("20", "province"),
                ("181", "district-181"),
                ("06067", "district-185"),
            ],
        );
        assert_eq!(province.owner_of("181"), "district-181");
        // A commune of district 181 handed to another instance.
        assert_eq!(province.owner_of("06067"), "district-185");
        assert_eq!(province.owner_of("20"), "province");
        // Another commune of 181 stays with it.
        let other = admin::catalog()
            .communes_under(
                "181",
                chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"),
            )
            .into_iter()
            .map(|u| u.code.clone())
            .find(|c| c != "06067")
            .expect("181 has communes");
        assert_eq!(province.owner_of(&other), "district-181");
        assert!(province.check_writes(["20"]).is_ok());
        let refused = province.check_writes(["06067"]).expect_err("replica");
        assert!(refused.to_string().contains("district-185"), "{refused}");

        // A district owns its rows; everything else is the upstream's.
        let district = topology("district-181", "province", &[("181", "district-181")]);
        assert!(district.owns("181") && district.owns(&other));
        assert_eq!(district.owner_of("20"), "province");
        assert_eq!(district.owner_of("185"), "province");

        // Alone, everything is this instance's.
        assert!(Topology::default().owns("20"));
        assert!(Topology::default().check_writes(["181"]).is_ok());
    }

    /// The 2025 reform reused old commune codes for new communes that took in
    /// communes of other districts. Walking up from an old commune through
    /// its successor must reach the successor as it is after the reform, not
    /// the old commune that once bore its code, or two districts would reach
    /// the same ground.
    #[test]
    fn no_two_lang_son_districts_reach_the_same_ground() {
        let catalog = admin::catalog();
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).expect("date");
        let (before, after) = (day(2025, 6, 30), day(2025, 7, 1));
        let districts: Vec<String> = catalog
            .children(Some("20"), before)
            .iter()
            .map(|u| u.code.clone())
            .collect();
        assert_eq!(districts.len(), 11);
        let mut units: std::collections::BTreeSet<String> = districts.iter().cloned().collect();
        for date in [before, after] {
            units.extend(
                catalog
                    .communes_under("20", date)
                    .iter()
                    .map(|u| u.code.clone()),
            );
        }
        let mut owners = vec![("20".to_owned(), "province".to_owned())];
        owners.extend(
            districts
                .iter()
                .map(|d| (d.clone(), format!("district-{d}"))),
        );
        let owners: Vec<(&str, &str)> = owners
            .iter()
            .map(|(u, o)| (u.as_str(), o.as_str()))
            .collect();
        let province = topology("province", "", &owners);
        let mut checked = 0;
        for unit in &units {
            let owner = province.owner_of(unit);
            // Where an old commune lay before the reform, its records lie.
            if let Some(old) = catalog.get(unit, before)
                && let Some(district) = old.parent_code.as_deref().filter(|p| *p != "20")
            {
                assert_eq!(owner, format!("district-{district}"), "{unit}");
            }
            for d in &districts {
                if owner == format!("district-{d}") {
                    continue;
                }
                let scope = crate::auth::Scope::new(vec![d.clone()]);
                assert!(
                    !scope.overlaps_unit(unit),
                    "district {d} reaches {unit}, which belongs to {owner}"
                );
                checked += 1;
            }
        }
        assert!(checked > 2000, "{checked}");
    }
}
