//! Turns grouped tally rows into the poverty summary of a unit and year: counts
//! and rates by class, transitions, deprivations per indicator, the
//! ethnic-minority breakdown and the MPI with its decomposition. Every figure is
//! derived here, once, from the same rows.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use sustain_domain::admin;
use sustain_domain::mpi::{Mpi, MpiCounts};
use sustain_domain::poverty::{Class, MAX_INDICATORS, PovertyStandard, Rate, Transition};
use sustain_proto::registry::v1 as pb;

use super::convert::{class_to_proto, transition_to_proto};
use crate::store::tally::{TallyRow, UNASSIGNED_FROM};

fn share(count: i64, total: i64) -> pb::Share {
    pb::Share {
        count,
        total,
        percent: Rate::new(count, total).to_string(),
    }
}

/// The unit's name as it was at the end of `year`, else its latest name.
pub fn unit_name(code: &str, year: i32) -> String {
    let versions = admin::catalog().versions(code);
    NaiveDate::from_ymd_opt(year, 12, 31)
        .and_then(|d| versions.iter().find(|u| u.is_valid_at(d)))
        .or(versions.last())
        .map(|u| u.name.clone())
        .unwrap_or_default()
}

fn mpi_counts(standard: &PovertyStandard, rows: &[&TallyRow]) -> MpiCounts {
    let mut c = MpiCounts::default();
    for r in rows {
        c.households += r.households;
        for p in 0..MAX_INDICATORS {
            c.deprived[p] += r.deprived[p];
        }
        if r.mpi_poor {
            c.mpi_poor += r.households;
            for (p, indicator) in standard.indicators.iter().enumerate() {
                c.censored[p] += r.deprived[p];
                c.censored_score += i64::from(indicator.weight) * r.deprived[p];
            }
        }
    }
    c
}

fn subgroup(
    standard: &PovertyStandard,
    kind: &str,
    key: String,
    label: String,
    rows: &[&TallyRow],
) -> pb::MpiSubgroup {
    let m = Mpi::of(standard, &mpi_counts(standard, rows));
    pb::MpiSubgroup {
        kind: kind.to_owned(),
        key,
        label,
        households: m.households,
        headcount: m.headcount,
        intensity: m.intensity,
        m0: m.m0,
    }
}

pub fn build(
    standard: &PovertyStandard,
    unit_code: &str,
    year: i32,
    rows: &[TallyRow],
) -> pb::PovertySummary {
    let all: Vec<&TallyRow> = rows.iter().collect();
    let total: i64 = rows.iter().map(|r| r.households).sum();
    let em_total: i64 = rows
        .iter()
        .filter(|r| r.ethnic_minority)
        .map(|r| r.households)
        .sum();
    let count = |pred: &dyn Fn(&TallyRow) -> bool| -> i64 {
        rows.iter().filter(|r| pred(r)).map(|r| r.households).sum()
    };
    let classes = Class::ALL
        .iter()
        .map(|c| pb::ClassFigure {
            poverty_class: class_to_proto(c.code()) as i32,
            households: Some(share(count(&|r| r.class == c.code()), total)),
            ethnic_minority: Some(share(
                count(&|r| r.class == c.code() && r.ethnic_minority),
                em_total,
            )),
        })
        .collect();
    let transitions = Transition::ALL
        .iter()
        .map(|t| pb::TransitionFigure {
            transition: transition_to_proto(t.code()) as i32,
            households: count(&|r| r.transition == t.code()),
            ethnic_minority_households: count(&|r| r.transition == t.code() && r.ethnic_minority),
        })
        .collect();
    let poor = count(&|r| r.class == Class::Poor.code());
    let near_poor = count(&|r| r.class == Class::NearPoor.code());
    let deprived_in = |p: usize, class: Option<Class>| -> i64 {
        rows.iter()
            .filter(|r| class.is_none_or(|c| r.class == c.code()))
            .map(|r| r.deprived[p])
            .sum()
    };
    let deprivations = standard
        .indicators
        .iter()
        .enumerate()
        .map(|(p, i)| {
            let (in_poor, in_near) = (
                deprived_in(p, Some(Class::Poor)),
                deprived_in(p, Some(Class::NearPoor)),
            );
            pb::DeprivationFigure {
                indicator_code: i.code.clone(),
                indicator_name: i.name.clone(),
                dimension: i.dimension.clone(),
                households: deprived_in(p, None),
                poor: in_poor,
                near_poor: in_near,
                poor_or_near_poor: Some(share(in_poor + in_near, poor + near_poor)),
            }
        })
        .collect();

    let overall = Mpi::of(standard, &mpi_counts(standard, &all));
    let mut subgroups = vec![];
    let mut by_child: BTreeMap<&str, Vec<&TallyRow>> = BTreeMap::new();
    for r in rows {
        by_child.entry(r.child_unit.as_str()).or_default().push(r);
    }
    if !(by_child.len() == 1 && by_child.contains_key(unit_code)) {
        for (child, rows) in &by_child {
            // Households of a split commune not yet placed by village: their
            // own row, never a guessed part's.
            let (kind, key, label) = match child.strip_prefix(UNASSIGNED_FROM) {
                Some(old) => (
                    "unassigned",
                    old.to_owned(),
                    format!(
                        "from {old} {}, not yet assigned",
                        unit_name(old, admin::reform_date().year() - 1)
                    ),
                ),
                None => ("unit", (*child).to_owned(), unit_name(child, year)),
            };
            subgroups.push(subgroup(standard, kind, key, label, rows));
        }
    }
    // Kinh-headed households only: a Hoa head makes a household an ethnic
    // minority one (Decree 05/2011; `Household.ethnic_minority`).
    for (flag, label) in [(true, "ethnic minority"), (false, "Kinh")] {
        let rows: Vec<&TallyRow> = rows.iter().filter(|r| r.ethnic_minority == flag).collect();
        subgroups.push(subgroup(
            standard,
            "ethnic_minority",
            flag.to_string(),
            label.to_owned(),
            &rows,
        ));
    }
    for residence in ["rural", "urban"] {
        let rows: Vec<&TallyRow> = rows.iter().filter(|r| r.residence == residence).collect();
        subgroups.push(subgroup(
            standard,
            "residence",
            residence.to_owned(),
            residence.to_owned(),
            &rows,
        ));
    }
    pb::PovertySummary {
        unassigned_from: String::new(),
        area_changed: count(&|r| r.area != r.residence),
        unit_code: unit_code.to_owned(),
        unit_name: unit_name(unit_code, year),
        year,
        standard: Some(pb::StandardRef {
            code: standard.code.clone(),
            title: standard.title.clone(),
            provisional: standard.provisional,
        }),
        households_reviewed: total,
        ethnic_minority_households: em_total,
        poor: Some(share(poor, total)),
        near_poor: Some(share(near_poor, total)),
        classes,
        transitions,
        deprivations,
        mpi: Some(pb::Mpi {
            households: overall.households,
            mpi_poor: overall.mpi_poor,
            headcount: overall.headcount,
            intensity: overall.intensity,
            m0: overall.m0,
            indicators: overall
                .indicators
                .iter()
                .map(|i| pb::IndicatorMpi {
                    indicator_code: i.code.clone(),
                    uncensored_headcount: i.uncensored_headcount,
                    censored_headcount: i.censored_headcount,
                    contribution: i.contribution,
                })
                .collect(),
            dimensions: overall
                .dimensions
                .iter()
                .map(|d| pb::DimensionMpi {
                    dimension: d.dimension.clone(),
                    contribution: d.contribution,
                })
                .collect(),
            subgroups,
        }),
    }
}
