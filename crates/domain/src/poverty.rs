//! When is a household poor? The multidimensional poverty standard as versioned
//! data ([`PovertyStandard`], loaded from `data/poverty-standards.toml` or a file
//! of the operator's), the one classification rule of the decree ([`classify`]),
//! the transitions between a household's consecutive reviews ([`transitions`]),
//! and the rates the province reports ([`Rate`]).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::household::Residence;

const BUNDLED: &str = include_str!("../data/poverty-standards.toml");

/// Most indicators a standard may have: deprivations are kept as a bit set.
pub const MAX_INDICATORS: usize = 16;

/// A pair of amounts, one for rural and one for urban residence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lines {
    pub rural: i64,
    pub urban: i64,
}

impl Lines {
    pub fn for_residence(&self, residence: Residence) -> i64 {
        match residence {
            Residence::Rural => self.rural,
            Residence::Urban => self.urban,
        }
    }
}

/// One deprivation indicator of a standard.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Indicator {
    pub code: String,
    /// Vietnamese name as in the decree.
    pub name: String,
    pub dimension: String,
    /// In units whose sum over the standard's indicators is the whole.
    pub weight: u32,
    pub deprived_if: String,
}

/// A poverty standard: which review years it governs, its lines and indicators.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PovertyStandard {
    pub code: String,
    pub title: String,
    pub first_year: i32,
    pub last_year: i32,
    /// The indicator set is not settled law yet and may be replaced by configuration.
    #[serde(default)]
    pub provisional: bool,
    /// Income per person per month at or below which a household is poor or near-poor.
    pub poor_line: Lines,
    /// Upper bound of the income-only "average living standard" band.
    #[serde(default)]
    pub average_line: Option<Lines>,
    /// Circular 07 proxy-income score A at or below which a household is within the line.
    #[serde(default)]
    pub score_a_line: Option<Lines>,
    /// Score B points per deprived indicator (Circular 07 form B2).
    #[serde(default)]
    pub points_per_deprivation: Option<u32>,
    /// Deprivations at or above which a household under the line is poor.
    pub deprivation_cutoff: u32,
    /// Alkire–Foster k, in weight units.
    pub mpi_cutoff: u32,
    #[serde(rename = "indicator")]
    pub indicators: Vec<Indicator>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StandardsFile {
    standard: Vec<PovertyStandard>,
}

/// Why a standards file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StandardsError {
    #[error("cannot read poverty standards: {0}")]
    Parse(String),
    #[error("poverty standard {code}: {problem}")]
    Invalid { code: String, problem: String },
    #[error("poverty standards {0} and {1} both claim review year {2}")]
    Overlap(String, String, i32),
}

/// The set of standards in force over the years, ordered by first year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standards {
    standards: Vec<PovertyStandard>,
}

impl Standards {
    /// Parses and checks a standards file.
    pub fn parse(text: &str) -> Result<Standards, StandardsError> {
        let file: StandardsFile =
            toml::from_str(text).map_err(|e| StandardsError::Parse(e.to_string()))?;
        let mut standards = file.standard;
        for s in &standards {
            s.check()?;
        }
        standards.sort_by_key(|s| s.first_year);
        for pair in standards.windows(2) {
            if pair[1].first_year <= pair[0].last_year {
                return Err(StandardsError::Overlap(
                    pair[0].code.clone(),
                    pair[1].code.clone(),
                    pair[1].first_year,
                ));
            }
        }
        Ok(Standards { standards })
    }

    /// The standards shipped with Sustain.
    pub fn bundled() -> &'static Standards {
        static BUNDLED_STANDARDS: OnceLock<Standards> = OnceLock::new();
        BUNDLED_STANDARDS.get_or_init(|| {
            // The bundled file is part of the build and covered by a test.
            Standards::parse(BUNDLED).unwrap_or_else(|e| panic!("bundled standards: {e}"))
        })
    }

    /// The standard governing reviews of `year`.
    pub fn for_year(&self, year: i32) -> Option<&PovertyStandard> {
        self.standards
            .iter()
            .find(|s| (s.first_year..=s.last_year).contains(&year))
    }

    pub fn by_code(&self, code: &str) -> Option<&PovertyStandard> {
        self.standards.iter().find(|s| s.code == code)
    }

    pub fn all(&self) -> &[PovertyStandard] {
        &self.standards
    }

    /// First and last review years any standard covers.
    pub fn years(&self) -> Option<(i32, i32)> {
        Some((
            self.standards.first()?.first_year,
            self.standards.last()?.last_year,
        ))
    }

    /// The standard governing reviews of `year`, or why none does (a field
    /// violation's reason).
    pub fn covering(&self, year: i32) -> Result<&PovertyStandard, String> {
        self.for_year(year).ok_or_else(|| {
            let (first, last) = self.years().unwrap_or((0, 0));
            format!("no poverty standard covers {year}; standards cover {first}–{last}")
        })
    }
}

impl PovertyStandard {
    fn check(&self) -> Result<(), StandardsError> {
        let invalid = |problem: String| StandardsError::Invalid {
            code: self.code.clone(),
            problem,
        };
        if self.first_year > self.last_year {
            return Err(invalid("first_year is after last_year".into()));
        }
        if self.indicators.is_empty() || self.indicators.len() > MAX_INDICATORS {
            return Err(invalid(format!(
                "needs 1 to {MAX_INDICATORS} indicators, has {}",
                self.indicators.len()
            )));
        }
        let codes: BTreeSet<&str> = self.indicators.iter().map(|i| i.code.as_str()).collect();
        if codes.len() != self.indicators.len() {
            return Err(invalid("indicator codes repeat".into()));
        }
        if self.indicators.iter().any(|i| i.weight == 0) {
            return Err(invalid("an indicator has weight 0".into()));
        }
        if self.deprivation_cutoff == 0 || self.deprivation_cutoff as usize > self.indicators.len()
        {
            return Err(invalid("deprivation_cutoff is out of range".into()));
        }
        if self.mpi_cutoff == 0 || self.mpi_cutoff > self.total_weight() {
            return Err(invalid("mpi_cutoff is out of range".into()));
        }
        let lines_ok = |l: &Lines| l.rural > 0 && l.urban > 0;
        if !lines_ok(&self.poor_line) {
            return Err(invalid("poor_line must be positive".into()));
        }
        if let Some(avg) = &self.average_line
            && (avg.rural <= self.poor_line.rural || avg.urban <= self.poor_line.urban)
        {
            return Err(invalid("average_line must be above poor_line".into()));
        }
        if self.score_a_line.is_some() != self.points_per_deprivation.is_some() {
            return Err(invalid(
                "score_a_line and points_per_deprivation go together".into(),
            ));
        }
        Ok(())
    }

    pub fn total_weight(&self) -> u32 {
        self.indicators.iter().map(|i| i.weight).sum()
    }

    pub fn position(&self, code: &str) -> Option<usize> {
        self.indicators.iter().position(|i| i.code == code)
    }

    /// The deprivation set naming these indicator codes; the unknown codes on error.
    pub fn deprivations<'a>(
        &self,
        codes: impl IntoIterator<Item = &'a str>,
    ) -> Result<Deprivations, Vec<String>> {
        let mut set = Deprivations::NONE;
        let mut unknown = vec![];
        for code in codes {
            match self.position(code) {
                Some(p) => set = set.with(p),
                None => unknown.push(code.to_owned()),
            }
        }
        if unknown.is_empty() {
            Ok(set)
        } else {
            Err(unknown)
        }
    }

    /// Dimensions in the order their first indicator appears.
    pub fn dimensions(&self) -> Vec<&str> {
        let mut out: Vec<&str> = vec![];
        for i in &self.indicators {
            if !out.contains(&i.dimension.as_str()) {
                out.push(&i.dimension);
            }
        }
        out
    }

    /// Alkire–Foster deprivation score c_i, in weight units.
    pub fn score(&self, deprived: Deprivations) -> u32 {
        self.indicators
            .iter()
            .enumerate()
            .filter(|(p, _)| deprived.contains(*p))
            .map(|(_, i)| i.weight)
            .sum()
    }

    /// MPI-poor: c_i ≥ k.
    pub fn is_mpi_poor(&self, deprived: Deprivations) -> bool {
        self.score(deprived) >= self.mpi_cutoff
    }
}

/// The indicators a household is deprived in, as a bit set over the standard's
/// indicator positions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Deprivations(u16);

impl Deprivations {
    pub const NONE: Deprivations = Deprivations(0);

    pub fn from_bits(bits: u16) -> Deprivations {
        Deprivations(bits)
    }

    pub fn bits(self) -> u16 {
        self.0
    }

    #[must_use]
    pub fn with(self, position: usize) -> Deprivations {
        Deprivations(self.0 | (1 << position))
    }

    pub fn contains(self, position: usize) -> bool {
        position < MAX_INDICATORS && self.0 & (1 << position) != 0
    }

    pub fn count(self) -> u32 {
        self.0.count_ones()
    }

    pub fn positions(self) -> impl Iterator<Item = usize> {
        (0..MAX_INDICATORS).filter(move |p| self.contains(*p))
    }
}

/// A household's class under a standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Poor,
    NearPoor,
    AverageLiving,
    NotPoor,
    /// Above the near-poor line by Circular 07's score A, income not
    /// measured: neither poor nor near-poor, but whether of average living
    /// standard (a band defined by income alone) or above it, unknown.
    AboveLineIncomeNotMeasured,
}

/// How the household's living standard was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Average income per person per month, VND.
    Income(i64),
    /// Circular 07 proxy-income score A (form B1); score B follows from the deprivations.
    ScoreA(u32),
}

/// The highest income per person and month a review records, VND.
pub const MAX_INCOME: i64 = 10_000_000_000;
/// The highest score A a review records.
pub const MAX_SCORE_A: i32 = 1_000;

/// Which measure field of a review is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureRefused {
    /// `income_per_person_month` or `score_a`.
    pub field: &'static str,
    pub reason: String,
}

impl Measure {
    /// The measure a review gives: its income, or where income is not
    /// measured Circular 07's score A, which only a standard with a score A
    /// line (`standard`, when known) can classify.
    pub fn given(
        income: Option<i64>,
        score_a: Option<i32>,
        standard: Option<&PovertyStandard>,
    ) -> Result<Measure, MeasureRefused> {
        let refused = |field, reason: String| Err(MeasureRefused { field, reason });
        match (income, score_a) {
            (Some(income), None) if (0..=MAX_INCOME).contains(&income) => {
                Ok(Measure::Income(income))
            }
            (Some(_), None) => refused(
                "income_per_person_month",
                format!("must be between 0 and {MAX_INCOME} VND"),
            ),
            (None, Some(a)) if !(0..=MAX_SCORE_A).contains(&a) => {
                refused("score_a", format!("must be between 0 and {MAX_SCORE_A}"))
            }
            (None, Some(_)) if standard.is_some_and(|s| s.score_a_line.is_none()) => refused(
                "score_a",
                "this year's standard defines no score A line; give income_per_person_month".into(),
            ),
            (None, Some(a)) => Ok(Measure::ScoreA(a.unsigned_abs())),
            (Some(_), Some(_)) => refused(
                "score_a",
                "give either income_per_person_month or score_a, not both".into(),
            ),
            (None, None) => refused(
                "income_per_person_month",
                "is required (or score_a where income is not measured)".into(),
            ),
        }
    }
}

/// Why a measure cannot be classified under a standard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("standard {0} defines no score A line; record income instead")]
    NoScoreLine(String),
}

/// The decree's rule: under the line AND deprived in at least the cut-off → poor;
/// under the line with fewer → near-poor; above it, the income-only average band,
/// else not poor. "Under" includes "at".
pub fn classify(
    standard: &PovertyStandard,
    residence: Residence,
    measure: Measure,
    deprived: Deprivations,
) -> Result<Class, ClassifyError> {
    let within_line = match measure {
        Measure::Income(income) => income <= standard.poor_line.for_residence(residence),
        Measure::ScoreA(a) => {
            let line = standard
                .score_a_line
                .ok_or_else(|| ClassifyError::NoScoreLine(standard.code.clone()))?;
            i64::from(a) <= line.for_residence(residence)
        }
    };
    if within_line {
        return Ok(if deprived.count() >= standard.deprivation_cutoff {
            Class::Poor
        } else {
            Class::NearPoor
        });
    }
    Ok(match (measure, standard.average_line) {
        (Measure::Income(income), Some(avg)) if income <= avg.for_residence(residence) => {
            Class::AverageLiving
        }
        // Score A says only whether income is within the line: above it,
        // the average band cannot be told from the rest.
        (Measure::ScoreA(_), Some(_)) => Class::AboveLineIncomeNotMeasured,
        _ => Class::NotPoor,
    })
}

/// Circular 07 score B: points per deprived indicator.
pub fn score_b(standard: &PovertyStandard, deprived: Deprivations) -> Option<u32> {
    standard
        .points_per_deprivation
        .map(|points| points * deprived.count())
}

/// How a household's class moved since its previous review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transition {
    /// No earlier review: the household's baseline.
    FirstReview,
    /// Poor, never poor before.
    NewlyPoor,
    /// Poor again after having escaped poverty.
    RePoor,
    RemainedPoor,
    /// Was poor, is not any more (near-poor or above).
    EscapedPoverty,
    /// Near-poor, and was not poor or near-poor before.
    NewlyNearPoor,
    RemainedNearPoor,
    /// Was near-poor, is above the line now.
    EscapedNearPoverty,
    RemainedNotPoor,
}

/// The transition of each review in a household's chronological chain of classes.
pub fn transitions(chain: &[Class]) -> Vec<Transition> {
    let mut out = Vec::with_capacity(chain.len());
    let mut ever_poor = false;
    let mut previous: Option<Class> = None;
    for &class in chain {
        let t = match (previous, class) {
            (None, _) => Transition::FirstReview,
            (Some(Class::Poor), Class::Poor) => Transition::RemainedPoor,
            (Some(_), Class::Poor) if ever_poor => Transition::RePoor,
            (Some(_), Class::Poor) => Transition::NewlyPoor,
            (Some(Class::Poor), _) => Transition::EscapedPoverty,
            (Some(Class::NearPoor), Class::NearPoor) => Transition::RemainedNearPoor,
            (Some(_), Class::NearPoor) => Transition::NewlyNearPoor,
            (Some(Class::NearPoor), _) => Transition::EscapedNearPoverty,
            (Some(_), _) => Transition::RemainedNotPoor,
        };
        ever_poor |= class == Class::Poor;
        previous = Some(class);
        out.push(t);
    }
    out
}

/// The transition of a review of `class` after the household's earlier classes,
/// oldest first: the last step of [`transitions`] over the whole chain.
pub fn transition_after(earlier: &[Class], class: Class) -> Transition {
    let mut chain = earlier.to_vec();
    chain.push(class);
    transitions(&chain).pop().unwrap_or(Transition::FirstReview)
}

/// Where a household stands when a programme takes it in, read from its
/// certified reviews: the class of the latest review up to the year, and whether
/// it left poverty or near-poverty recently. Support for households that have
/// just escaped runs 36 months (Decree 27/2022, Decision 90/QĐ-TTg), so
/// "recently" is an escape certified in one of the last three review years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Standing {
    Poor,
    NearPoor,
    RecentlyEscaped,
    /// Above the near-poor line with no recent escape, or never reviewed.
    Other,
}

/// Review years an escape counts as recent: the escape year and the two after.
pub const RECENT_ESCAPE_YEARS: i32 = 3;

/// One certified review as [`standing_at`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertifiedReview {
    pub year: i32,
    pub class: Class,
    pub transition: Transition,
}

/// A household's standing in `year` and the review year it was read from
/// (`None`: no certified review up to that year). `chain` in any order.
pub fn standing_at(chain: &[CertifiedReview], year: i32) -> (Standing, Option<i32>) {
    let Some(latest) = chain
        .iter()
        .filter(|r| r.year <= year)
        .max_by_key(|r| r.year)
    else {
        return (Standing::Other, None);
    };
    let standing = match latest.class {
        Class::Poor => Standing::Poor,
        Class::NearPoor => Standing::NearPoor,
        Class::AverageLiving | Class::NotPoor | Class::AboveLineIncomeNotMeasured => {
            let escaped = chain.iter().any(|r| {
                r.year <= year
                    && year - r.year < RECENT_ESCAPE_YEARS
                    && matches!(
                        r.transition,
                        Transition::EscapedPoverty | Transition::EscapedNearPoverty
                    )
            });
            if escaped {
                Standing::RecentlyEscaped
            } else {
                Standing::Other
            }
        }
    };
    (standing, Some(latest.year))
}

/// Share of the village meeting that must agree for a review to stand; below it
/// the household is re-scored (Circular 07/2021: at least 50%).
pub const MEETING_AGREEMENT_PERCENT: i32 = 50;

/// Whether the village meeting's agreement approves a review.
pub fn meeting_approves(agreement_percent: i32) -> bool {
    agreement_percent >= MEETING_AGREEMENT_PERCENT
}

macro_rules! codes {
    ($ty:ty { $($variant:ident => $code:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),+];
            pub fn code(self) -> &'static str {
                match self { $(<$ty>::$variant => $code),+ }
            }
            pub fn from_code(code: &str) -> Option<Self> {
                match code { $($code => Some(<$ty>::$variant),)+ _ => None }
            }
        }
    };
}

codes!(Class {
    Poor => "poor",
    NearPoor => "near_poor",
    AverageLiving => "average_living",
    NotPoor => "not_poor",
    AboveLineIncomeNotMeasured => "above_line_income_not_measured",
});

codes!(Standing {
    Poor => "poor",
    NearPoor => "near_poor",
    RecentlyEscaped => "recently_escaped",
    Other => "other",
});

codes!(Transition {
    FirstReview => "first_review",
    NewlyPoor => "newly_poor",
    RePoor => "re_poor",
    RemainedPoor => "remained_poor",
    EscapedPoverty => "escaped_poverty",
    NewlyNearPoor => "newly_near_poor",
    RemainedNearPoor => "remained_near_poor",
    EscapedNearPoverty => "escaped_near_poverty",
    RemainedNotPoor => "remained_not_poor",
});

/// An exact share, shown the way the province reports it: a percentage rounded
/// half up to two decimals, trailing zeros dropped (12.2, 8.92, 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub numerator: i64,
    pub denominator: i64,
}

impl Rate {
    pub fn new(numerator: i64, denominator: i64) -> Rate {
        Rate {
            numerator,
            denominator,
        }
    }

    /// Hundredths of a percent, rounded half away from zero (half up for the
    /// shares, symmetric for changes that can fall); 0 for an empty denominator.
    pub fn basis_points(self) -> i64 {
        if self.denominator <= 0 {
            return 0;
        }
        let scaled = i128::from(self.numerator).abs() * 10_000;
        let den = i128::from(self.denominator);
        let magnitude = ((scaled * 2 + den) / (den * 2)) as i64;
        if self.numerator < 0 {
            -magnitude
        } else {
            magnitude
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bp = self.basis_points();
        if bp < 0 {
            f.write_str("-")?;
        }
        let bp = bp.abs();
        let (whole, frac) = (bp / 100, bp % 100);
        match frac {
            0 => write!(f, "{whole}"),
            f10 if f10 % 10 == 0 => write!(f, "{whole}.{}", f10 / 10),
            _ => write!(f, "{whole}.{frac:02}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_review_measures_by_income_or_score_a_never_both() {
        let standards = Standards::bundled();
        let field = |r: Result<Measure, MeasureRefused>| r.map_err(|e| e.field);
        assert_eq!(
            Measure::given(Some(1_500_000), None, None),
            Ok(Measure::Income(1_500_000))
        );
        assert_eq!(
            field(Measure::given(Some(-1), None, None)),
            Err("income_per_person_month")
        );
        assert_eq!(
            field(Measure::given(None, None, None)),
            Err("income_per_person_month")
        );
        assert_eq!(
            field(Measure::given(Some(1), Some(1), None)),
            Err("score_a")
        );
        assert_eq!(
            field(Measure::given(None, Some(1_001), None)),
            Err("score_a")
        );
        let all = standards.all();
        if let Some(s) = all.iter().find(|s| s.score_a_line.is_some()) {
            assert_eq!(
                Measure::given(None, Some(120), Some(s)),
                Ok(Measure::ScoreA(120))
            );
        }
        if let Some(s) = all.iter().find(|s| s.score_a_line.is_none()) {
            assert_eq!(
                field(Measure::given(None, Some(120), Some(s))),
                Err("score_a")
            );
        }
        let (first, _) = standards.years().unwrap();
        assert!(standards.covering(first).is_ok());
        assert!(
            standards
                .covering(first - 1)
                .is_err_and(|e| e.starts_with(&format!("no poverty standard covers {}", first - 1)))
        );
    }
    use proptest::prelude::*;

    fn decree07() -> &'static PovertyStandard {
        Standards::bundled().by_code("decree-07-2021").unwrap()
    }

    fn deprived(n: usize) -> Deprivations {
        (0..n).fold(Deprivations::NONE, |d, p| d.with(p))
    }

    #[test]
    fn bundled_standards_cover_2021_to_2030() {
        let s = Standards::bundled();
        for year in 2021..=2026 {
            assert_eq!(s.for_year(year).unwrap().code, "decree-07-2021", "{year}");
        }
        for year in 2027..=2030 {
            let st = s.for_year(year).unwrap();
            assert_eq!(st.code, "decree-351-2025");
            assert!(st.provisional);
            assert_eq!(
                st.poor_line,
                Lines {
                    rural: 2_200_000,
                    urban: 2_800_000
                }
            );
            assert!(st.position("information_devices").is_none());
            assert!(st.position("waste_handling").is_some());
        }
        assert!(s.for_year(2020).is_none());
        assert!(s.for_year(2031).is_none());
        let d = decree07();
        assert_eq!(d.indicators.len(), 12);
        assert_eq!(d.dimensions().len(), 6);
        assert_eq!(d.total_weight(), 12);
    }

    /// Every boundary of the decree's rule, rural and urban.
    #[test]
    fn classification_boundaries() {
        let s = decree07();
        let table = [
            // residence, income, deprivations, class
            (Residence::Rural, 1_500_000, 3, Class::Poor),
            (Residence::Rural, 1_500_000, 2, Class::NearPoor),
            (Residence::Rural, 1_500_001, 3, Class::AverageLiving),
            (Residence::Rural, 1_500_001, 12, Class::AverageLiving),
            (Residence::Rural, 0, 0, Class::NearPoor),
            (Residence::Rural, 2_250_000, 5, Class::AverageLiving),
            (Residence::Rural, 2_250_001, 5, Class::NotPoor),
            (Residence::Urban, 2_000_000, 3, Class::Poor),
            (Residence::Urban, 2_000_000, 2, Class::NearPoor),
            (Residence::Urban, 1_500_001, 3, Class::Poor),
            (Residence::Urban, 2_000_001, 3, Class::AverageLiving),
            (Residence::Urban, 3_000_000, 0, Class::AverageLiving),
            (Residence::Urban, 3_000_001, 0, Class::NotPoor),
        ];
        for (residence, income, n, expected) in table {
            let got = classify(s, residence, Measure::Income(income), deprived(n)).unwrap();
            assert_eq!(
                got, expected,
                "{residence:?} {income} VND, {n} deprivations"
            );
        }
    }

    #[test]
    fn score_boundaries_follow_circular_07() {
        let s = decree07();
        let table = [
            (Residence::Rural, 140, 3, Class::Poor),
            (Residence::Rural, 140, 2, Class::NearPoor),
            // Above the line score A cannot tell average living from above it.
            (Residence::Rural, 141, 3, Class::AboveLineIncomeNotMeasured),
            (Residence::Urban, 175, 3, Class::Poor),
            (Residence::Urban, 176, 0, Class::AboveLineIncomeNotMeasured),
        ];
        for (residence, a, n, expected) in table {
            let got = classify(s, residence, Measure::ScoreA(a), deprived(n)).unwrap();
            assert_eq!(got, expected, "{residence:?} A={a}, {n} deprivations");
        }
        assert_eq!(score_b(s, deprived(3)), Some(30));
        let new = Standards::bundled().for_year(2027).unwrap();
        assert_eq!(
            classify(new, Residence::Rural, Measure::ScoreA(100), deprived(3)),
            Err(ClassifyError::NoScoreLine("decree-351-2025".into()))
        );
        assert_eq!(score_b(new, deprived(3)), None);
    }

    #[test]
    fn the_new_standard_moves_the_line() {
        let new = Standards::bundled().for_year(2027).unwrap();
        let c = |income| classify(new, Residence::Rural, Measure::Income(income), deprived(3));
        assert_eq!(c(2_200_000), Ok(Class::Poor));
        assert_eq!(c(2_200_001), Ok(Class::NotPoor));
    }

    #[test]
    fn transitions_name_every_move() {
        use Class::*;
        use Transition::*;
        let cases: &[(&[Class], &[Transition])] = &[
            (&[Poor], &[FirstReview]),
            (&[Poor, Poor], &[FirstReview, RemainedPoor]),
            (&[Poor, NearPoor], &[FirstReview, EscapedPoverty]),
            (
                &[Poor, NotPoor, Poor],
                &[FirstReview, EscapedPoverty, RePoor],
            ),
            (
                &[NotPoor, NearPoor, Poor],
                &[FirstReview, NewlyNearPoor, NewlyPoor],
            ),
            (
                &[NearPoor, NearPoor, AverageLiving],
                &[FirstReview, RemainedNearPoor, EscapedNearPoverty],
            ),
            (&[AverageLiving, NotPoor], &[FirstReview, RemainedNotPoor]),
            (
                &[Poor, NearPoor, NearPoor, Poor],
                &[FirstReview, EscapedPoverty, RemainedNearPoor, RePoor],
            ),
        ];
        for (chain, expected) in cases {
            assert_eq!(transitions(chain), *expected, "{chain:?}");
        }
    }

    #[test]
    fn the_village_meeting_needs_half() {
        assert!(meeting_approves(50));
        assert!(!meeting_approves(49));
    }

    fn certified(year: i32, class: Class, transition: Transition) -> CertifiedReview {
        CertifiedReview {
            year,
            class,
            transition,
        }
    }

    #[test]
    fn standing_reads_the_latest_certified_review_and_recent_escapes() {
        use Class::*;
        use Transition::*;
        let chain = [
            certified(2022, Poor, FirstReview),
            certified(2023, NotPoor, EscapedPoverty),
            certified(2024, NotPoor, RemainedNotPoor),
            certified(2026, NotPoor, RemainedNotPoor),
        ];
        assert_eq!(standing_at(&chain, 2021), (Standing::Other, None));
        assert_eq!(standing_at(&chain, 2022), (Standing::Poor, Some(2022)));
        assert_eq!(
            standing_at(&chain, 2023),
            (Standing::RecentlyEscaped, Some(2023))
        );
        // The escape year and the two after; a missing 2025 review reads 2024.
        assert_eq!(
            standing_at(&chain, 2025),
            (Standing::RecentlyEscaped, Some(2024))
        );
        assert_eq!(standing_at(&chain, 2026), (Standing::Other, Some(2026)));
        // Escaping poverty into near-poverty leaves the household near-poor.
        let to_near = [
            certified(2022, Poor, FirstReview),
            certified(2023, NearPoor, EscapedPoverty),
        ];
        assert_eq!(
            standing_at(&to_near, 2023),
            (Standing::NearPoor, Some(2023))
        );
        let from_near = [
            certified(2022, NearPoor, FirstReview),
            certified(2023, AverageLiving, EscapedNearPoverty),
        ];
        assert_eq!(
            standing_at(&from_near, 2024),
            (Standing::RecentlyEscaped, Some(2023))
        );
        assert_eq!(standing_at(&[], 2024), (Standing::Other, None));
    }

    #[test]
    fn rates_render_like_the_province() {
        assert_eq!(Rate::new(23_510, 192_750).to_string(), "12.2");
        assert_eq!(Rate::new(23_250, 192_750).to_string(), "12.06");
        assert_eq!(Rate::new(16_451, 205_600).to_string(), "8");
        assert_eq!(Rate::new(1, 3).to_string(), "33.33");
        assert_eq!(Rate::new(2, 3).to_string(), "66.67");
        // Half up: 0.125% → 0.13.
        assert_eq!(Rate::new(1, 800).to_string(), "0.13");
        assert_eq!(Rate::new(0, 0).to_string(), "0");
        assert_eq!(Rate::new(5, 5).to_string(), "100");
        // Changes can fall: rounded away from zero, signed.
        assert_eq!(Rate::new(-1, 3).to_string(), "-33.33");
        assert_eq!(Rate::new(-1, 800).to_string(), "-0.13");
        assert_eq!(Rate::new(-3, 10).to_string(), "-30");
    }

    #[test]
    fn bad_standards_are_refused() {
        let overlapping = BUNDLED.replace("first_year = 2027", "first_year = 2026");
        assert!(matches!(
            Standards::parse(&overlapping),
            Err(StandardsError::Overlap(..))
        ));
        let no_cutoff = BUNDLED.replacen("deprivation_cutoff = 3", "deprivation_cutoff = 0", 1);
        assert!(matches!(
            Standards::parse(&no_cutoff),
            Err(StandardsError::Invalid { .. })
        ));
        assert!(matches!(
            Standards::parse("standard = 3"),
            Err(StandardsError::Parse(_))
        ));
    }

    fn class_rank(c: Class) -> u8 {
        match c {
            Class::Poor => 0,
            Class::NearPoor => 1,
            Class::AverageLiving | Class::AboveLineIncomeNotMeasured => 2,
            Class::NotPoor => 3,
        }
    }

    proptest! {
        /// More income never makes a household poorer; more deprivations never richer.
        #[test]
        fn classification_is_monotone(
            income in 0i64..5_000_000, extra in 0i64..1_000_000,
            bits in 0u16..4096, more in 0usize..12, urban in any::<bool>(),
        ) {
            let s = decree07();
            let r = if urban { Residence::Urban } else { Residence::Rural };
            let d = Deprivations::from_bits(bits);
            let base = classify(s, r, Measure::Income(income), d).unwrap();
            let richer = classify(s, r, Measure::Income(income + extra), d).unwrap();
            let worse = classify(s, r, Measure::Income(income), d.with(more)).unwrap();
            prop_assert!(class_rank(richer) >= class_rank(base));
            prop_assert!(class_rank(worse) <= class_rank(base));
        }

        /// Poor and near-poor are exactly "within the line", split by the cut-off.
        #[test]
        fn poor_iff_within_line_and_cutoff(income in 0i64..5_000_000, bits in 0u16..4096, urban in any::<bool>()) {
            let s = decree07();
            let r = if urban { Residence::Urban } else { Residence::Rural };
            let d = Deprivations::from_bits(bits);
            let class = classify(s, r, Measure::Income(income), d).unwrap();
            let within = income <= s.poor_line.for_residence(r);
            prop_assert_eq!(class == Class::Poor, within && d.count() >= 3);
            prop_assert_eq!(class == Class::NearPoor, within && d.count() < 3);
            // With equal weights the MPI cut-off k = 3/12 is the legal cut-off.
            prop_assert_eq!(s.is_mpi_poor(d), d.count() >= 3);
        }

        /// Every chain gets one transition per review; re-poor needs an earlier escape.
        #[test]
        fn transitions_are_consistent(chain in proptest::collection::vec(0u8..4, 0..8)) {
            let chain: Vec<Class> = chain.into_iter().map(|c| Class::ALL[c as usize]).collect();
            let ts = transitions(&chain);
            prop_assert_eq!(ts.len(), chain.len());
            for (i, t) in ts.iter().enumerate() {
                prop_assert_eq!(*t, transition_after(&chain[..i], chain[i]));
                prop_assert_eq!(*t == Transition::FirstReview, i == 0);
                if *t == Transition::RePoor {
                    prop_assert!(chain[..i - 1].contains(&Class::Poor));
                    prop_assert_ne!(chain[i - 1], Class::Poor);
                }
                if matches!(t, Transition::RePoor | Transition::NewlyPoor | Transition::RemainedPoor) {
                    prop_assert_eq!(chain[i], Class::Poor);
                }
            }
        }

        #[test]
        fn rate_text_parses_back_close(num in 0i64..1_000_000, extra in 0i64..1_000_000) {
            let den = num + extra + 1;
            let shown: f64 = Rate::new(num, den).to_string().parse().unwrap();
            let exact = num as f64 * 100.0 / den as f64;
            prop_assert!((shown - exact).abs() <= 0.005 + 1e-9);
        }
    }
}
