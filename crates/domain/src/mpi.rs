//! The Alkire–Foster multidimensional poverty index over a standard's indicators
//! and weights. [`MpiCounts`] is additive (counts only), so it can be kept as a
//! running tally per unit and subgroup and summed; [`Mpi::of`] turns counts into
//! H, A, M0, headcounts and contributions.

use crate::poverty::{Deprivations, MAX_INDICATORS, PovertyStandard};

/// What the MPI of a population needs, as sums that add across subgroups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MpiCounts {
    /// Households (n).
    pub households: i64,
    /// MPI-poor households (q): deprivation score ≥ k.
    pub mpi_poor: i64,
    /// Σ c_i over MPI-poor households, in weight units.
    pub censored_score: i64,
    /// Households deprived in each indicator.
    pub deprived: [i64; MAX_INDICATORS],
    /// MPI-poor households deprived in each indicator.
    pub censored: [i64; MAX_INDICATORS],
}

impl MpiCounts {
    pub fn add(&mut self, standard: &PovertyStandard, d: Deprivations) {
        self.add_many(standard, d, 1);
    }

    /// Adds `times` households with deprivations `d` (negative removes them).
    pub fn add_many(&mut self, standard: &PovertyStandard, d: Deprivations, times: i64) {
        let poor = standard.is_mpi_poor(d);
        self.households += times;
        for p in d.positions() {
            self.deprived[p] += times;
            if poor {
                self.censored[p] += times;
            }
        }
        if poor {
            self.mpi_poor += times;
            self.censored_score += i64::from(standard.score(d)) * times;
        }
    }

    pub fn merge(&mut self, other: &MpiCounts) {
        self.households += other.households;
        self.mpi_poor += other.mpi_poor;
        self.censored_score += other.censored_score;
        for p in 0..MAX_INDICATORS {
            self.deprived[p] += other.deprived[p];
            self.censored[p] += other.censored[p];
        }
    }
}

/// One indicator's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorMpi {
    pub code: String,
    pub uncensored_headcount: f64,
    pub censored_headcount: f64,
    /// Share of M0 due to this indicator; the shares sum to 1 when M0 > 0.
    pub contribution: f64,
}

/// One dimension's share of M0.
#[derive(Debug, Clone, PartialEq)]
pub struct DimensionMpi {
    pub dimension: String,
    pub contribution: f64,
}

/// The index for one population.
#[derive(Debug, Clone, PartialEq)]
pub struct Mpi {
    pub households: i64,
    pub mpi_poor: i64,
    /// Headcount ratio H = q / n.
    pub headcount: f64,
    /// Intensity A = Σ c_i(k) / q.
    pub intensity: f64,
    /// M0 = H × A.
    pub m0: f64,
    pub indicators: Vec<IndicatorMpi>,
    pub dimensions: Vec<DimensionMpi>,
}

impl Mpi {
    pub fn of(standard: &PovertyStandard, c: &MpiCounts) -> Mpi {
        let total = f64::from(standard.total_weight());
        let ratio = |num: i64, den: i64| {
            if den > 0 {
                num as f64 / den as f64
            } else {
                0.0
            }
        };
        let n = c.households;
        let headcount = ratio(c.mpi_poor, n);
        let intensity = ratio(c.censored_score, c.mpi_poor) / total;
        let m0 = ratio(c.censored_score, n) / total;
        let indicators: Vec<IndicatorMpi> = standard
            .indicators
            .iter()
            .enumerate()
            .map(|(p, ind)| {
                let censored = ratio(c.censored[p], n);
                let weighted = f64::from(ind.weight) / total * censored;
                IndicatorMpi {
                    code: ind.code.clone(),
                    uncensored_headcount: ratio(c.deprived[p], n),
                    censored_headcount: censored,
                    contribution: if m0 > 0.0 { weighted / m0 } else { 0.0 },
                }
            })
            .collect();
        let dimensions = standard
            .dimensions()
            .into_iter()
            .map(|dim| DimensionMpi {
                dimension: dim.to_owned(),
                contribution: standard
                    .indicators
                    .iter()
                    .zip(&indicators)
                    .filter(|(ind, _)| ind.dimension == dim)
                    .map(|(_, i)| i.contribution)
                    .sum(),
            })
            .collect();
        Mpi {
            households: n,
            mpi_poor: c.mpi_poor,
            headcount,
            intensity,
            m0,
            indicators,
            dimensions,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::poverty::Standards;
    use proptest::prelude::*;

    fn decree07() -> &'static PovertyStandard {
        Standards::bundled().by_code("decree-07-2021").unwrap()
    }

    fn set(positions: &[usize]) -> Deprivations {
        positions.iter().fold(Deprivations::NONE, |d, &p| d.with(p))
    }

    /// Worked by hand. Four households, w = 1/12, k = 3/12:
    /// A: deprived in 0,1,9,10 (c = 4/12, poor)
    /// B: deprived in 9,10,11 (c = 3/12, poor)
    /// C: deprived in 9,10 (c = 2/12, not poor)
    /// D: none.
    /// H = 2/4 = 0.5; A = (4/12 + 3/12) / 2 = 7/24; M0 = 7/48.
    /// Latrine (9): uncensored 3/4, censored 2/4; contribution (1/12 × 1/2) / (7/48) = 2/7.
    /// Employment (0): censored 1/4; contribution (1/12 × 1/4) / (7/48) = 1/7.
    /// Dimension employment (0, 1) = 2/7; water & sanitation (8, 9) = 2/7;
    /// information (10, 11) = 3/7.
    #[test]
    fn hand_worked_example() {
        let s = decree07();
        let mut c = MpiCounts::default();
        for d in [
            set(&[0, 1, 9, 10]),
            set(&[9, 10, 11]),
            set(&[9, 10]),
            set(&[]),
        ] {
            c.add(s, d);
        }
        let m = Mpi::of(s, &c);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert_eq!((m.households, m.mpi_poor), (4, 2));
        assert!(close(m.headcount, 0.5));
        assert!(close(m.intensity, 7.0 / 24.0));
        assert!(close(m.m0, 7.0 / 48.0));
        assert!(close(m.indicators[9].uncensored_headcount, 0.75));
        assert!(close(m.indicators[9].censored_headcount, 0.5));
        assert!(close(m.indicators[9].contribution, 2.0 / 7.0));
        assert!(close(m.indicators[0].contribution, 1.0 / 7.0));
        assert!(close(m.indicators[2].contribution, 0.0));
        let dim = |name: &str| {
            m.dimensions
                .iter()
                .find(|d| d.dimension == name)
                .unwrap()
                .contribution
        };
        assert!(close(dim("employment"), 2.0 / 7.0));
        assert!(close(dim("water_sanitation"), 2.0 / 7.0));
        assert!(close(dim("information"), 3.0 / 7.0));
        assert!(close(dim("health"), 0.0));
    }

    #[test]
    fn an_empty_population_has_zero_index() {
        let m = Mpi::of(decree07(), &MpiCounts::default());
        assert_eq!((m.headcount, m.intensity, m.m0), (0.0, 0.0, 0.0));
    }

    proptest! {
        /// M0 = H × A = Σ w_j h_j(k); contributions sum to 1; subgroups decompose M0.
        #[test]
        fn identities_hold(
            group_a in proptest::collection::vec(0u16..4096, 1..60),
            group_b in proptest::collection::vec(0u16..4096, 1..60),
        ) {
            let s = decree07();
            let mut a = MpiCounts::default();
            let mut b = MpiCounts::default();
            group_a.iter().for_each(|&d| a.add(s, Deprivations::from_bits(d)));
            group_b.iter().for_each(|&d| b.add(s, Deprivations::from_bits(d)));
            let mut all = a;
            all.merge(&b);
            let m = Mpi::of(s, &all);
            prop_assert!((m.m0 - m.headcount * m.intensity).abs() < 1e-12);
            let from_headcounts: f64 = m.indicators.iter().map(|i| i.censored_headcount / 12.0).sum();
            prop_assert!((m.m0 - from_headcounts).abs() < 1e-12);
            if m.m0 > 0.0 {
                let total: f64 = m.indicators.iter().map(|i| i.contribution).sum();
                prop_assert!((total - 1.0).abs() < 1e-9);
                let dims: f64 = m.dimensions.iter().map(|d| d.contribution).sum();
                prop_assert!((dims - 1.0).abs() < 1e-9);
            }
            let (ma, mb) = (Mpi::of(s, &a), Mpi::of(s, &b));
            let n = all.households as f64;
            let decomposed = a.households as f64 / n * ma.m0 + b.households as f64 / n * mb.m0;
            prop_assert!((m.m0 - decomposed).abs() < 1e-12);
            // Removing what was added gives back the other group exactly.
            let mut back = all;
            group_a.iter().for_each(|&d| back.add_many(s, Deprivations::from_bits(d), -1));
            prop_assert_eq!(back, b);
        }
    }
}
