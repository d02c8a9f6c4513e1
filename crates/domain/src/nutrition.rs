//! A child's nutrition check against the WHO Child Growth Standards (2006):
//! weight-for-age and length/height-for-age z-scores from the standards' LMS
//! parameters by completed month of age (0–60), and the status the health
//! station reports. Below −2 SD is underweight or stunted, below −3 SD severe;
//! the MPI's nutrition indicator counts a household whose child is either.
//! Length is taken lying down before 24 months and standing after, as the
//! standards are.

use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate};

use crate::person::Sex;

/// Oldest age, in completed months, the standards cover here.
pub const MAX_AGE_MONTHS: u32 = 60;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Lms {
    l: f64,
    m: f64,
    s: f64,
}

impl Lms {
    /// The LMS z-score of a measurement (WHO's formula; beyond ±3 SD WHO
    /// restrains weight z-scores, which moves no child across −2 or −3).
    fn z(&self, x: f64) -> f64 {
        if self.l.abs() < 1e-12 {
            (x / self.m).ln() / self.s
        } else {
            ((x / self.m).powf(self.l) - 1.0) / (self.l * self.s)
        }
    }
}

#[derive(Debug)]
struct Tables {
    /// [sex][month]
    weight: [Vec<Lms>; 2],
    height: [Vec<Lms>; 2],
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let text = include_str!("../data/who-growth-standards-0-5.csv");
        let mut t = Tables {
            weight: [vec![], vec![]],
            height: [vec![], vec![]],
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let [indicator, sex, month, l, m, s] = f.as_slice() else {
                continue;
            };
            let sex = usize::from(*sex == "female");
            let lms = Lms {
                l: l.parse().unwrap_or(f64::NAN),
                m: m.parse().unwrap_or(f64::NAN),
                s: s.parse().unwrap_or(f64::NAN),
            };
            let table = if *indicator == "weight_for_age" {
                &mut t.weight[sex]
            } else {
                &mut t.height[sex]
            };
            // Rows come in month order; the month column documents it.
            debug_assert_eq!(month.parse::<usize>().ok(), Some(table.len()));
            table.push(lms);
        }
        t
    })
}

/// How far below the standard a child is on one indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deficit {
    None,
    /// Below −2 SD.
    Moderate,
    /// Below −3 SD.
    Severe,
}

impl Deficit {
    fn of(z: f64) -> Deficit {
        if z < -3.0 {
            Deficit::Severe
        } else if z < -2.0 {
            Deficit::Moderate
        } else {
            Deficit::None
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Deficit::None => "none",
            Deficit::Moderate => "moderate",
            Deficit::Severe => "severe",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    pub age_months: u32,
    pub weight_for_age_z: f64,
    pub height_for_age_z: f64,
    pub underweight: Deficit,
    pub stunted: Deficit,
}

impl Assessment {
    /// Underweight or stunted: the MPI's nutrition deprivation.
    pub fn malnourished(&self) -> bool {
        self.underweight != Deficit::None || self.stunted != Deficit::None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NutritionError {
    #[error("is before the child's birth")]
    BeforeBirth,
    #[error("the child is older than {MAX_AGE_MONTHS} months; the under-5 standards do not apply")]
    TooOld,
}

/// Completed months from `birth` to `on`.
pub fn age_in_months(birth: NaiveDate, on: NaiveDate) -> Option<u32> {
    if on < birth {
        return None;
    }
    let mut months = (on.year() - birth.year()) * 12 + on.month() as i32 - birth.month() as i32;
    if on.day() < birth.day() {
        months -= 1;
    }
    u32::try_from(months).ok()
}

/// The child's age in completed months on `measured_on`, when the under-5
/// standards apply to it: born by then and at most [`MAX_AGE_MONTHS`] old.
pub fn assessable_age(birth: NaiveDate, measured_on: NaiveDate) -> Result<u32, NutritionError> {
    let age = age_in_months(birth, measured_on).ok_or(NutritionError::BeforeBirth)?;
    if age > MAX_AGE_MONTHS {
        return Err(NutritionError::TooOld);
    }
    Ok(age)
}

/// Assesses a child measured on `measured_on`: weight in grams, length or
/// height in millimetres.
pub fn assess(
    sex: Sex,
    birth: NaiveDate,
    measured_on: NaiveDate,
    weight_grams: u32,
    height_mm: u32,
) -> Result<Assessment, NutritionError> {
    let age = assessable_age(birth, measured_on)?;
    let sex = usize::from(sex == Sex::Female);
    let t = tables();
    let (Some(w), Some(h)) = (
        t.weight[sex].get(age as usize),
        t.height[sex].get(age as usize),
    ) else {
        return Err(NutritionError::TooOld);
    };
    let waz = w.z(f64::from(weight_grams) / 1000.0);
    let haz = h.z(f64::from(height_mm) / 10.0);
    Ok(Assessment {
        age_months: age,
        weight_for_age_z: waz,
        height_for_age_z: haz,
        underweight: Deficit::of(waz),
        stunted: Deficit::of(haz),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn the_tables_cover_every_month_for_both_sexes() {
        let t = tables();
        for sex in 0..2 {
            assert_eq!(t.weight[sex].len(), 61);
            assert_eq!(t.height[sex].len(), 61);
        }
    }

    #[test]
    fn the_standards_apply_from_birth_to_sixty_months() {
        assert_eq!(assessable_age(d(2023, 1, 15), d(2023, 1, 15)), Ok(0));
        assert_eq!(assessable_age(d(2020, 1, 15), d(2025, 1, 15)), Ok(60));
        assert_eq!(
            assessable_age(d(2020, 1, 15), d(2025, 2, 15)),
            Err(NutritionError::TooOld)
        );
        assert_eq!(
            assessable_age(d(2023, 1, 15), d(2023, 1, 14)),
            Err(NutritionError::BeforeBirth)
        );
    }

    #[test]
    fn ages_count_completed_months() {
        assert_eq!(age_in_months(d(2023, 1, 31), d(2023, 2, 28)), Some(0));
        assert_eq!(age_in_months(d(2023, 1, 15), d(2024, 1, 15)), Some(12));
        assert_eq!(age_in_months(d(2023, 1, 15), d(2024, 1, 14)), Some(11));
        assert_eq!(age_in_months(d(2023, 1, 15), d(2023, 1, 1)), None);
    }

    #[test]
    fn the_median_child_scores_zero_and_the_published_cut_offs_hold() {
        // A boy of 12 months: median 9.6 kg and 75.7 cm; WHO's −2 SD is 7.7 kg
        // and 71.0 cm, −3 SD 6.9 kg and 68.6 cm (published tables).
        let birth = d(2023, 1, 10);
        let on = d(2024, 1, 10);
        let median = assess(Sex::Male, birth, on, 9_649, 757).unwrap();
        assert!(median.weight_for_age_z.abs() < 0.05, "{median:?}");
        assert!(median.height_for_age_z.abs() < 0.05, "{median:?}");
        assert!(!median.malnourished());
        let thin = assess(Sex::Male, birth, on, 7_600, 757).unwrap();
        assert_eq!(thin.underweight, Deficit::Moderate);
        let short = assess(Sex::Male, birth, on, 9_600, 700).unwrap();
        assert_eq!(
            (short.stunted, short.underweight),
            (Deficit::Moderate, Deficit::None)
        );
        let severe = assess(Sex::Male, birth, on, 6_800, 680).unwrap();
        assert_eq!(
            (severe.stunted, severe.underweight),
            (Deficit::Severe, Deficit::Severe)
        );
        // A girl of 36 months, standing height: −2 SD is 87.4 cm.
        let girl = assess(Sex::Female, d(2021, 3, 1), d(2024, 3, 1), 13_900, 870).unwrap();
        assert_eq!(girl.stunted, Deficit::Moderate);
        assert!(matches!(
            assess(Sex::Female, d(2018, 1, 1), d(2024, 3, 1), 15_000, 1000),
            Err(NutritionError::TooOld)
        ));
    }
}
