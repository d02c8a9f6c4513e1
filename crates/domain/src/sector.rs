//! Figures a unit receives each year from a sector agency rather than counts
//! from household records: the labour department's training and jobs, the
//! social insurance office's health-insurance cards. What a valid report
//! holds, and which reports a unit's figures for a year are made of.

use crate::Violations;

/// No unit reports more people than this in a year (Vietnam has about 53
/// million workers); larger figures are typing errors.
pub const MAX_FIGURE: i64 = 100_000_000;

/// The first year a report may cover.
pub const FIRST_YEAR: i32 = 2000;

/// A labour department's figures for a unit and year.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Labour {
    pub vocational_trainees: i64,
    pub workforce: i64,
    pub trained_workers: i64,
    pub new_jobs: i64,
    pub workers_abroad: i64,
}

impl Labour {
    /// Names every figure out of range under `prefix` ("report.labour").
    pub fn check(&self, prefix: &str, v: &mut Violations) {
        for (name, n) in [
            ("vocational_trainees", self.vocational_trainees),
            ("workforce", self.workforce),
            ("trained_workers", self.trained_workers),
            ("new_jobs", self.new_jobs),
            ("workers_abroad", self.workers_abroad),
        ] {
            check_count(n, &format!("{prefix}.{name}"), v);
        }
        if self.trained_workers > self.workforce {
            v.add(
                format!("{prefix}.trained_workers"),
                "must not exceed workforce (the trained are part of it)",
            );
        }
    }

    fn add(&mut self, other: &Labour) {
        self.vocational_trainees += other.vocational_trainees;
        self.workforce += other.workforce;
        self.trained_workers += other.trained_workers;
        self.new_jobs += other.new_jobs;
        self.workers_abroad += other.workers_abroad;
    }
}

/// Names a count that is negative or implausibly large.
pub fn check_count(n: i64, field: &str, v: &mut Violations) {
    if n < 0 {
        v.add(field, "must not be negative");
    } else if n > MAX_FIGURE {
        v.add(field, format!("must be at most {MAX_FIGURE}"));
    }
}

/// Names a report year before [`FIRST_YEAR`] or after `this_year`.
pub fn check_year(year: i32, this_year: i32, field: &str, v: &mut Violations) {
    if year == 0 {
        v.add(field, "is required");
    } else if year < FIRST_YEAR || year > this_year {
        v.add(
            field,
            format!("must be between {FIRST_YEAR} and {this_year}"),
        );
    }
}

/// What one report holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figures {
    Labour(Labour),
    /// Health-insurance cards issued.
    Cards(i64),
}

/// One live report of a given year, placed: its unit and the units above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub unit: String,
    pub above: Vec<String>,
    pub figures: Figures,
}

/// A unit's figures for one year.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Year {
    pub labour: Option<Labour>,
    pub cards: Option<i64>,
}

impl Year {
    /// The figures of `reports` (one year's, newest first) that count: per
    /// kind, those of the widest units (a report is left out when a unit
    /// above it reported too, so a province's own report is not added to its
    /// districts'), and of two reports of the same unit only the first.
    pub fn of(reports: &[Placed]) -> Year {
        let mut year = Year::default();
        for labour in [true, false] {
            let same_kind: Vec<&Placed> = reports
                .iter()
                .filter(|r| matches!(r.figures, Figures::Labour(_)) == labour)
                .collect();
            let mut seen: Vec<&str> = Vec::new();
            for r in &same_kind {
                let covered = r
                    .above
                    .iter()
                    .any(|a| *a != r.unit && same_kind.iter().any(|o| o.unit == *a));
                if covered || seen.contains(&r.unit.as_str()) {
                    continue;
                }
                seen.push(&r.unit);
                match r.figures {
                    Figures::Labour(l) => year.labour.get_or_insert_with(Labour::default).add(&l),
                    Figures::Cards(n) => *year.cards.get_or_insert(0) += n,
                }
            }
        }
        year
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labour(unit: &str, above: &[&str], trainees: i64) -> Placed {
        Placed {
            unit: unit.into(),
            above: above.iter().map(|s| (*s).into()).collect(),
            figures: Figures::Labour(Labour {
                vocational_trainees: trainees,
                ..Labour::default()
            }),
        }
    }

    #[test]
    fn a_province_report_is_not_added_to_its_districts() {
        let year = Year::of(&[
            labour("20", &["20"], 15_000),
            labour("178", &["20", "178"], 1_000),
        ]);
        assert_eq!(year.labour.map(|l| l.vocational_trainees), Some(15_000));
        assert_eq!(year.cards, None);
    }

    #[test]
    fn districts_add_up_when_the_province_has_none() {
        let year = Year::of(&[
            labour("178", &["20", "178"], 1_000),
            labour("180", &["20", "180"], 2_000),
            labour("06184", &["20", "178", "06184"], 300),
            Placed {
                unit: "178".into(),
                above: vec!["20".into(), "178".into()],
                figures: Figures::Cards(40),
            },
        ]);
        assert_eq!(year.labour.map(|l| l.vocational_trainees), Some(3_000));
        assert_eq!(year.cards, Some(40));
    }

    #[test]
    fn of_two_reports_of_one_unit_the_newest_counts() {
        let year = Year::of(&[labour("178", &["20"], 7), labour("178", &["20"], 5)]);
        assert_eq!(year.labour.map(|l| l.vocational_trainees), Some(7));
    }

    #[test]
    fn figures_are_checked_by_name() {
        let mut v = Violations::new();
        Labour {
            workforce: 10,
            trained_workers: 11,
            new_jobs: -1,
            workers_abroad: MAX_FIGURE + 1,
            ..Labour::default()
        }
        .check("report.labour", &mut v);
        let fields: Vec<String> = v.iter().map(|f| f.field.clone()).collect();
        assert_eq!(
            fields,
            [
                "report.labour.new_jobs",
                "report.labour.workers_abroad",
                "report.labour.trained_workers"
            ]
        );
        let mut v = Violations::new();
        check_year(1999, 2026, "report.year", &mut v);
        check_year(2027, 2026, "report.year", &mut v);
        check_year(2026, 2026, "report.year", &mut v);
        assert_eq!(v.len(), 2);
    }
}
