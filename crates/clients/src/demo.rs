//! A synthetic Lạng Sơn on the real unit codes, deterministic from a seed, whose
//! certified reviews reproduce the province's reported figures for 2021–2024
//! (domain brief section 1): 23,510 poor (12.2%) and 23,250 near-poor (12.06%) of
//! 192,750 households in 2021; 8.92%, 6.02% and 3.36% poor in 2022–2024 as the
//! province grows about 2% a year; and among the poor and near-poor of 2021,
//! exactly 24,180 without a hygienic latrine, 4,570 without safe water, 2,640
//! without information devices and 7,880 with no member using the internet.
//!
//! Classes come from a latent welfare score per household that improves over the
//! years with noise, so the transitions are plausible (most poor escape, some
//! fall back); the counts per class are fixed per year, the order decides who.
//! With `households` other than the default the targets scale proportionally.

use std::collections::HashMap;

use chrono::{Datelike, Duration, NaiveDate};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sustain_domain::admin::{self, Level};
use sustain_domain::lang_son;
use sustain_domain::poverty::{Class, PovertyStandard, Standards};
use sustain_proto::registry::v1 as pb;

/// Lạng Sơn's GSO code.
pub const PROVINCE: &str = "20";
pub const DEFAULT_SEED: u64 = 2021;
pub const YEARS: [i32; 4] = [2021, 2022, 2023, 2024];

/// Reported (or, for near-poor in 2022–2023, interpolated) figures per year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YearTarget {
    pub year: i32,
    pub households: u64,
    pub poor: u64,
    pub near_poor: u64,
}

/// The default population. 2021: 192,750 is inside the 192,707–192,783 window in
/// which both 12.2% and 12.06% round right; 2024: 205,600 inside 205,510–205,766.
pub const LANG_SON: [YearTarget; 4] = [
    YearTarget {
        year: 2021,
        households: 192_750,
        poor: lang_son::POOR_2021,
        near_poor: lang_son::NEAR_POOR_2021,
    },
    YearTarget {
        year: 2022,
        households: 196_600,
        poor: 17_537,
        near_poor: 21_020,
    },
    YearTarget {
        year: 2023,
        households: 200_530,
        poor: 12_072,
        near_poor: 18_840,
    },
    YearTarget {
        year: 2024,
        households: 205_600,
        poor: 6_912,
        near_poor: 16_451,
    },
];

/// Deprivations among the poor and near-poor of 2021, split poor / near-poor.
const NAMED_2021: [(&str, u64, u64); 4] = [
    ("latrine", 15_000, 9_180),
    ("domestic_water", 3_000, 1_570),
    ("information_devices", 2_000, 640),
    ("telecom_use", 5_000, 2_880),
];

const ETHNIC_MIX: [(&str, u32); 8] = [
    ("07", 420), // Nùng
    ("02", 359), // Tày
    ("01", 165), // Kinh
    ("09", 35),  // Dao
    ("04", 6),   // Hoa
    ("15", 6),   // Sán Chay
    ("08", 5),   // HMông
    ("18", 4),   // Sán Dìu
];

const FAMILY: [&str; 15] = [
    "Hoàng", "Nông", "Lý", "Vi", "Lương", "Hà", "Nguyễn", "Lăng", "Triệu", "Chu", "Hứa", "Lộc",
    "Mã", "Đinh", "Dương",
];
const MALE: [&str; 16] = [
    "Sáu", "Đức", "Hùng", "Minh", "Tuấn", "Thắng", "Cường", "Hải", "Long", "Bình", "Quang", "Toàn",
    "Phúc", "Sơn", "Tài", "Khánh",
];
const FEMALE: [&str; 16] = [
    "Mai",
    "Lan",
    "Hoa",
    "Hương",
    "Thu",
    "Nga",
    "Liên",
    "Dung",
    "Hạnh",
    "Thảo",
    "Yến",
    "Phượng",
    "Xuân",
    "Hồng",
    "Ngọc",
    "Vân",
];
const VILLAGES: [&str; 10] = [
    "Bản Nà Lại",
    "Thôn Khòn Khẩu",
    "Bản Pác Ve",
    "Thôn Nà Pàn",
    "Bản Còn Cuối",
    "Thôn Đồng Tâm",
    "Bản Nà Nưa",
    "Thôn Pò Mới",
    "Bản Khuổi Tát",
    "Thôn Bó Luông",
];

/// Targets for a population of `households` in 2021, scaled from Lạng Sơn's.
pub fn targets(households: u64) -> [YearTarget; 4] {
    let base = LANG_SON[0].households as f64;
    LANG_SON.map(|t| {
        if households == LANG_SON[0].households {
            return t;
        }
        let scale = |v: u64| ((v as f64) * households as f64 / base).round() as u64;
        YearTarget {
            year: t.year,
            households: scale(t.households),
            poor: scale(t.poor),
            near_poor: scale(t.near_poor),
        }
    })
}

#[derive(Debug, Clone)]
struct Commune {
    code: String,
    urban: bool,
}

/// The plan: who lives where, and each household's class and deprivations per year.
#[derive(Debug)]
pub struct Demo {
    seed: u64,
    targets: [YearTarget; 4],
    communes: Vec<Commune>,
    commune_of: Vec<u16>,
    ethnicity_of: Vec<u8>,
    first_year: Vec<u8>,
    /// Per household and year: class (Class::ALL index, 255 = not yet there).
    class: Vec<[u8; 4]>,
    deprived: Vec<[u16; 4]>,
    standard: PovertyStandard,
    id_counters: HashMap<(u8, u8), u32>,
}

fn household_rng(seed: u64, i: usize, salt: u64) -> ChaCha8Rng {
    // splitmix64 of (seed, household, purpose): independent, reproducible streams.
    let mut z = seed
        ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ChaCha8Rng::seed_from_u64(z ^ (z >> 31))
}

fn pick_weighted<'a, T>(rng: &mut ChaCha8Rng, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total);
    for (item, w) in items {
        if roll < *w {
            return item;
        }
        roll -= w;
    }
    &items[items.len() - 1].0
}

impl Demo {
    pub fn new(seed: u64, households_2021: u64) -> anyhow::Result<Demo> {
        let standard = Standards::bundled()
            .for_year(2021)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no standard for 2021"))?;
        let targets = targets(households_2021);
        let reference = NaiveDate::from_ymd_opt(2021, 12, 31).unwrap_or_default();
        let catalog = admin::catalog();
        let mut communes = vec![];
        for district in catalog.children(Some(PROVINCE), reference) {
            for c in catalog.children(Some(&district.code), reference) {
                if c.level == Level::Commune {
                    communes.push(Commune {
                        code: c.code.clone(),
                        urban: c.kind.contains("Phường") || c.kind.contains("Thị trấn"),
                    });
                }
            }
        }
        anyhow::ensure!(!communes.is_empty(), "no communes of province {PROVINCE}");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let weights: Vec<(usize, u32)> = (0..communes.len())
            .map(|i| {
                (
                    i,
                    rng.random_range(40..160) * if communes[i].urban { 3 } else { 1 },
                )
            })
            .collect();

        let total = targets[3].households as usize;
        let mut commune_of = Vec::with_capacity(total);
        let mut ethnicity_of = Vec::with_capacity(total);
        let mut first_year = Vec::with_capacity(total);
        let mut base = Vec::with_capacity(total);
        let mut growth = Vec::with_capacity(total);
        let ethnic: Vec<(u8, u32)> = ETHNIC_MIX
            .iter()
            .enumerate()
            .map(|(i, (_, w))| (i as u8, *w))
            .collect();
        for i in 0..total {
            let mut r = household_rng(seed, i, 1);
            let commune = *pick_weighted(&mut r, &weights);
            let e = *pick_weighted(&mut r, &ethnic);
            let year = targets
                .iter()
                .position(|t| (i as u64) < t.households)
                .unwrap_or(3);
            let mut b: f64 = (0..3).map(|_| r.random::<f64>()).sum();
            if ETHNIC_MIX[e as usize].0 == "01" || ETHNIC_MIX[e as usize].0 == "04" {
                b += 0.45;
            }
            if communes[commune].urban {
                b += 0.5;
            }
            commune_of.push(commune as u16);
            ethnicity_of.push(e);
            first_year.push(year as u8);
            base.push(b);
            growth.push(r.random_range(0.0..0.35));
        }

        // Classes per year: rank by welfare, fill poor, near-poor, average, rest.
        let mut class = vec![[255u8; 4]; total];
        for (t, target) in targets.iter().enumerate() {
            let mut present: Vec<(f64, usize)> = (0..total)
                .filter(|&i| first_year[i] as usize <= t)
                .map(|i| {
                    let mut r = household_rng(seed, i, 10 + t as u64);
                    (
                        base[i] + growth[i] * t as f64 + r.random_range(-0.12..0.12),
                        i,
                    )
                })
                .collect();
            present.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let (poor, near) = (target.poor as usize, target.near_poor as usize);
            let average = present.len() / 8;
            for (rank, (_, i)) in present.iter().enumerate() {
                let c = if rank < poor {
                    Class::Poor
                } else if rank < poor + near {
                    Class::NearPoor
                } else if rank < poor + near + average {
                    Class::AverageLiving
                } else {
                    Class::NotPoor
                };
                class[*i][t] = Class::ALL.iter().position(|x| *x == c).unwrap_or(3) as u8;
            }
        }

        let mut demo = Demo {
            seed,
            targets,
            communes,
            commune_of,
            ethnicity_of,
            first_year,
            class,
            deprived: vec![[0u16; 4]; total],
            standard,
            id_counters: HashMap::new(),
        };
        demo.plan_deprivations();
        Ok(demo)
    }

    pub fn targets(&self) -> &[YearTarget; 4] {
        &self.targets
    }

    /// Every household of the demo: those the 2021–2024 figures are made of,
    /// then those registered after the 2025 reform.
    pub fn households(&self) -> usize {
        self.planned() + self.after_reform()
    }

    /// The households the 2021–2024 figures are made of.
    fn planned(&self) -> usize {
        self.class.len()
    }

    /// Households registered in the second half of 2025, in the communes
    /// the reform made: half a year of the province's 2% growth. They have
    /// no review yet (no 2025 figures are published to reproduce).
    fn after_reform(&self) -> usize {
        self.planned() / 100
    }

    fn class_at(&self, i: usize, t: usize) -> Option<Class> {
        Class::ALL.get(self.class[i][t] as usize).copied()
    }

    fn position(&self, code: &str) -> usize {
        self.standard.position(code).unwrap_or(0)
    }

    /// 2021: the named indicators exactly as reported, over shuffled poor and
    /// near-poor lists; every poor household topped up to 3–5 deprivations with
    /// the other indicators, near-poor ones kept under 3. Later years: drawn.
    fn plan_deprivations(&mut self) {
        let named: Vec<usize> = NAMED_2021
            .iter()
            .map(|(c, _, _)| self.position(c))
            .collect();
        let others: Vec<usize> = (0..self.standard.indicators.len())
            .filter(|p| !named.contains(p))
            .collect();
        let scale = self.targets[0].households as f64 / LANG_SON[0].households as f64;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xDE9);
        for t in 0..4 {
            let mut poor: Vec<usize> = (0..self.planned())
                .filter(|&i| self.class_at(i, t) == Some(Class::Poor))
                .collect();
            let mut near: Vec<usize> = (0..self.planned())
                .filter(|&i| self.class_at(i, t) == Some(Class::NearPoor))
                .collect();
            poor.shuffle(&mut rng);
            near.shuffle(&mut rng);
            if t == 0 {
                let (mut p_at, mut n_at) = (0usize, 0usize);
                for ((_, in_poor, in_near), &position) in NAMED_2021.iter().zip(&named) {
                    let in_poor = ((*in_poor as f64) * scale).round() as usize;
                    let in_near = ((*in_near as f64) * scale).round() as usize;
                    for k in 0..in_poor.min(poor.len()) {
                        self.deprived[poor[(p_at + k) % poor.len()]][t] |= 1 << position;
                    }
                    p_at += in_poor;
                    // One named deprivation at most per near-poor household.
                    for k in 0..in_near.min(near.len()) {
                        self.deprived[near[(n_at + k) % near.len()]][t] |= 1 << position;
                    }
                    n_at += in_near;
                }
            } else {
                let odds = [0.50, 0.10, 0.07, 0.20];
                for &i in &poor {
                    for (k, &p) in named.iter().enumerate() {
                        if rng.random::<f64>() < odds[k] {
                            self.deprived[i][t] |= 1 << p;
                        }
                    }
                }
                for &i in &near {
                    for (k, &p) in named.iter().enumerate() {
                        if self.deprived[i][t].count_ones() < 1 && rng.random::<f64>() < odds[k] {
                            self.deprived[i][t] |= 1 << p;
                        }
                    }
                }
            }
            for &i in &poor {
                let want = rng.random_range(3..=5u32);
                let mut choices = others.clone();
                choices.shuffle(&mut rng);
                for p in choices {
                    if self.deprived[i][t].count_ones() >= want {
                        break;
                    }
                    self.deprived[i][t] |= 1 << p;
                }
            }
            for &i in &near {
                if rng.random::<f64>() < 0.5 {
                    let p = others[rng.random_range(0..others.len())];
                    self.deprived[i][t] |= 1 << p;
                }
            }
            for i in 0..self.planned() {
                if matches!(
                    self.class_at(i, t),
                    Some(Class::AverageLiving | Class::NotPoor)
                ) && rng.random::<f64>() < 0.15
                {
                    let p = others[rng.random_range(0..others.len())];
                    self.deprived[i][t] |= 1 << p;
                }
            }
        }
    }

    fn citizen_id(&mut self, birth: NaiveDate, male: bool) -> String {
        let century = if birth.year() >= 2000 { 2 } else { 0 };
        let digit = century + u8::from(!male);
        let yy = (birth.year() % 100) as u8;
        let n = self.id_counters.entry((digit, yy)).or_insert(0);
        *n += 1;
        format!("020{digit}{yy:02}{:06}", *n)
    }

    fn member(
        &mut self,
        r: &mut ChaCha8Rng,
        family: &str,
        relation: pb::Relation,
        age: i32,
        male: bool,
        ethnicity: &str,
    ) -> pb::Member {
        let birth = NaiveDate::from_ymd_opt(2025 - age, 1, 1).unwrap_or_default()
            + Duration::days(r.random_range(0..365));
        let given = if male {
            MALE[r.random_range(0..16)]
        } else {
            FEMALE[r.random_range(0..16)]
        };
        let middle = if male { "Văn" } else { "Thị" };
        let citizen_id = if age >= 14 {
            self.citizen_id(birth, male)
        } else {
            String::new()
        };
        pb::Member {
            full_name: format!("{family} {middle} {given}"),
            birth_date: birth.to_string(),
            sex: if male { pb::Sex::Male } else { pb::Sex::Female } as i32,
            ethnicity_code: ethnicity.to_owned(),
            relation: relation as i32,
            citizen_id,
            has_disability: r.random::<f64>() < 0.03,
            health_insurance: if r.random::<f64>() < 0.93 {
                pb::HealthInsurance::Insured
            } else {
                pb::HealthInsurance::Uninsured
            } as i32,
            ..Default::default()
        }
    }

    /// Household `i` with its certified reviews, ready to import.
    pub fn row(&mut self, i: usize) -> pb::ImportRow {
        if i >= self.planned() {
            return self.registered_after_reform(i);
        }
        let mut r = household_rng(self.seed, i, 2);
        let commune = self.communes[self.commune_of[i] as usize].clone();
        let ethnicity = ETHNIC_MIX[self.ethnicity_of[i] as usize].0;
        let first = YEARS[self.first_year[i] as usize];
        let registered_on = if first == 2021 {
            NaiveDate::from_ymd_opt(1995, 1, 1).unwrap_or_default()
                + Duration::days(r.random_range(0..9_600))
        } else {
            NaiveDate::from_ymd_opt(first, 2, 1).unwrap_or_default()
                + Duration::days(r.random_range(0..200))
        };
        let family = FAMILY[r.random_range(0..FAMILY.len())];
        let size = *pick_weighted(
            &mut r,
            &[
                (1u32, 6),
                (2, 14),
                (3, 20),
                (4, 27),
                (5, 18),
                (6, 10),
                (7, 5),
            ],
        );
        let head_age = r.random_range(24..80);
        let head_male = r.random::<f64>() < 0.8;
        let mut members = vec![self.member(
            &mut r,
            family,
            pb::Relation::Head,
            head_age,
            head_male,
            ethnicity,
        )];
        if size >= 2 && head_age < 76 {
            let age = (head_age + r.random_range(-4..5)).clamp(20, 90);
            members.push(self.member(
                &mut r,
                family,
                pb::Relation::Spouse,
                age,
                !head_male,
                ethnicity,
            ));
        }
        while (members.len() as u32) < size {
            let (relation, age) = if head_age > 58 {
                (pb::Relation::Grandchild, r.random_range(0..18))
            } else if head_age < 40 && r.random::<f64>() < 0.15 {
                (
                    pb::Relation::Parent,
                    (head_age + r.random_range(22..30)).min(95),
                )
            } else {
                (
                    pb::Relation::Child,
                    r.random_range(0..(head_age - 18).clamp(1, 30)),
                )
            };
            let male = r.random::<bool>();
            members.push(self.member(&mut r, family, relation, age, male, ethnicity));
        }
        let household = pb::Household {
            address: Some(pb::Address {
                commune_code: commune.code.clone(),
                village: VILLAGES[r.random_range(0..VILLAGES.len())].to_owned(),
                residence: if commune.urban {
                    pb::Residence::Urban
                } else {
                    pb::Residence::Rural
                } as i32,
            }),
            registered_on: registered_on.to_string(),
            members,
            ..Default::default()
        };
        let mut reviews = vec![];
        for (t, year) in YEARS.iter().enumerate() {
            let Some(class) = self.class_at(i, t) else {
                continue;
            };
            let line = if commune.urban {
                self.standard.poor_line.urban
            } else {
                self.standard.poor_line.rural
            };
            let avg = self
                .standard
                .average_line
                .map(|a| if commune.urban { a.urban } else { a.rural })
                .unwrap_or(line * 3 / 2);
            // Whole thousands of đồng, strictly inside each class's band.
            let (line, avg) = (line / 1000, avg / 1000);
            let income = 1000
                * match class {
                    Class::Poor | Class::NearPoor => r.random_range(500..=line),
                    Class::AverageLiving => r.random_range(line + 1..=avg),
                    // The demo measures income: it never makes this class.
                    Class::NotPoor | Class::AboveLineIncomeNotMeasured => {
                        r.random_range(avg + 1..=avg * 4)
                    }
                };
            let bits = self.deprived[i][t];
            reviews.push(pb::ImportedReview {
                review: Some(pb::ReviewInput {
                    year: *year,
                    kind: pb::ReviewKind::Periodic as i32,
                    deprived_indicators: self
                        .standard
                        .indicators
                        .iter()
                        .enumerate()
                        .filter(|(p, _)| bits & (1 << p) != 0)
                        .map(|(_, ind)| ind.code.clone())
                        .collect(),
                    income_per_person_month: Some(income),
                    score_a: None,
                    score_b: None,
                    reviewer: "Cán bộ rà soát xã".into(),
                    reviewed_on: format!("{year}-10-{:02}", 5 + r.random_range(0..20)),
                    area: 0,
                    area_reason: String::new(),
                }),
                state: pb::ReviewState::Certified as i32,
                decision_number: format!("{}/QĐ-UBND", 100 + self.commune_of[i]),
                decision_date: format!("{year}-12-{:02}", 10 + r.random_range(0..10)),
            });
        }
        pb::ImportRow {
            row_number: i as i64 + 1,
            external_key: format!("demo-{}-{i:06}", self.seed),
            household: Some(household),
            reviews,
        }
    }
}

impl Demo {
    /// Household `i` (past the planned ones), registered between 1 July and
    /// 31 December 2025 in one of the communes in force after the reform,
    /// with no review yet.
    fn registered_after_reform(&mut self, i: usize) -> pb::ImportRow {
        let mut r = household_rng(self.seed, i, 3);
        let end = admin::year_end(2025).unwrap_or_default();
        let mut communes = admin::catalog().communes_under(PROVINCE, end);
        communes.sort_by(|a, b| a.code.cmp(&b.code));
        let (code, urban) = communes
            .get(r.random_range(0..communes.len().max(1)))
            .map_or((String::new(), false), |c| {
                (c.code.clone(), c.kind == "Phường" || c.kind == "Thị trấn")
            });
        let registered_on = admin::reform_date()
            + Duration::days(r.random_range(0..(end - admin::reform_date()).num_days()));
        let family = FAMILY[r.random_range(0..FAMILY.len())];
        let ethnicity = ETHNIC_MIX[*pick_weighted(
            &mut r,
            &ETHNIC_MIX
                .iter()
                .enumerate()
                .map(|(i, (_, w))| (i, *w))
                .collect::<Vec<_>>(),
        )]
        .0;
        let head_age = r.random_range(22..60);
        let head_male = r.random::<f64>() < 0.8;
        let mut members = vec![self.member(
            &mut r,
            family,
            pb::Relation::Head,
            head_age,
            head_male,
            ethnicity,
        )];
        for _ in 0..r.random_range(0..4) {
            let age = r.random_range(0..(head_age - 18).clamp(1, 30));
            let male = r.random::<bool>();
            members.push(self.member(&mut r, family, pb::Relation::Child, age, male, ethnicity));
        }
        pb::ImportRow {
            row_number: i as i64 + 1,
            external_key: format!("demo-{}-{i:06}", self.seed),
            household: Some(pb::Household {
                address: Some(pb::Address {
                    commune_code: code,
                    village: VILLAGES[r.random_range(0..VILLAGES.len())].to_owned(),
                    residence: if urban {
                        pb::Residence::Urban
                    } else {
                        pb::Residence::Rural
                    } as i32,
                }),
                registered_on: registered_on.to_string(),
                members,
                ..Default::default()
            }),
            reviews: vec![],
        }
    }
}

#[cfg(test)]
mod report_tests {
    use super::*;
    use sustain_domain::poverty::Rate;

    #[test]
    fn the_demo_registers_households_after_the_reform_in_the_new_communes() {
        let mut demo = Demo::new(7, 5_000).expect("demo");
        let planned = demo.planned();
        assert!(demo.households() > planned);
        let end = admin::year_end(2025).expect("date");
        for i in planned..demo.households() {
            let row = demo.row(i);
            let h = row.household.expect("household");
            let on = NaiveDate::parse_from_str(&h.registered_on, "%Y-%m-%d").expect("date");
            assert!(on >= admin::reform_date() && on <= end, "{on}");
            let code = h.address.expect("address").commune_code;
            let unit = admin::catalog()
                .get(&code, on)
                .expect("in force when registered");
            assert_eq!(unit.level, Level::Commune);
            assert_eq!(unit.parent_code.as_deref(), Some(PROVINCE), "no district");
            assert!(row.reviews.is_empty());
        }
    }

    #[test]
    fn the_default_population_reproduces_the_reported_rates_and_deprivations() {
        for (target, (year, rate)) in LANG_SON.iter().zip(lang_son::POVERTY_RATES) {
            assert_eq!(target.year, year);
            assert_eq!(
                Rate::new(target.poor as i64, target.households as i64).to_string(),
                rate,
                "{year}"
            );
        }
        for ((code, poor, near), (reported, total)) in
            NAMED_2021.iter().zip(lang_son::DEPRIVED_2021)
        {
            assert_eq!(*code, reported);
            assert_eq!(poor + near, total, "{code}");
        }
    }
}
