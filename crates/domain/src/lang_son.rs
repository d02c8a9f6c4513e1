//! Lạng Sơn's reported figures for the 2021–2025 programme (domain brief §1):
//! what the demo datasets are built to reproduce and what the seed page sets
//! beside the system's own. One place for them: the registry, programme and
//! ledger demos and the gateway's seed page all read these.

/// The province's GSO code.
pub const PROVINCE: &str = "20";

/// The poverty rate by year, as the province writes it (percent).
pub const POVERTY_RATES: [(i32, &str); 4] = [
    (2021, "12.2"),
    (2022, "8.92"),
    (2023, "6.02"),
    (2024, "3.36"),
];

/// Poor and near-poor households at the start, under the new standard.
pub const POOR_2021: u64 = 23_510;
pub const NEAR_POOR_2021: u64 = 23_250;

/// Households deprived of an indicator in 2021, by indicator code: no
/// hygienic latrine, no safe water, no access to information, no member
/// using the internet.
pub const DEPRIVED_2021: [(&str, u64); 4] = [
    ("latrine", 24_180),
    ("domestic_water", 4_570),
    ("information_devices", 2_640),
    ("telecom_use", 7_880),
];

/// Project 2 livelihood models by type: livestock, crop, forestry (249).
pub const P2_MODELS: [u32; 3] = [231, 14, 4];
/// Households in them by class at enrolment: poor, near-poor, recently
/// escaped (of about 4,100).
pub const P2_HOUSEHOLDS: [u32; 3] = [1_310, 1_840, 910];
/// Project 3 production-support projects.
pub const P3_PROJECTS: u32 = 164;
/// Project 3 trainees ("more than").
pub const P3_TRAINEES: u32 = 3_260;
/// Households the Project 3 projects supported ("more than").
pub const P3_HOUSEHOLDS: u32 = 4_340;
/// Project 3 technical courses ("about").
pub const P3_COURSES: u32 = 140;
/// Leaflets handed out ("more than").
pub const LEAFLETS: u32 = 110_000;
/// People in communication dialogues and trainings ("about").
pub const PARTICIPANTS: u32 = 12_120;
/// Inspections 2021–2024.
pub const INSPECTIONS: u32 = 430;
/// Articles and reports ("about").
pub const ARTICLES: u32 = 3_500;

/// People who began vocational training, each year of 2021–2024 (from, to).
pub const VOCATIONAL_TRAINEES_A_YEAR: (u32, u32) = (11_000, 20_000);
/// The share of workers with training, percent, by year.
pub const TRAINED_WORKERS: [(i32, &str); 2] = [(2021, "57.2"), (2024, "64")];
/// New jobs each year of 2021–2024 (from, to).
pub const NEW_JOBS_A_YEAR: (u32, u32) = (17_000, 18_500);
/// Workers who left for contract work abroad in 2024.
pub const ABROAD_2024: u32 = 1_200;
/// Health-insurance cards issued to poor, near-poor and ethnic-minority
/// people 2021–2024 ("more than").
pub const INSURANCE_CARDS: u32 = 1_000_000;

/// The 2021–2025 plan in million đồng, and of it the central budget.
pub const PLAN_MILLION: i64 = 1_149_180;
pub const CENTRAL_MILLION: i64 = 844_520;
/// Mobilised from social contributions, million đồng.
pub const MOBILISED_MILLION: i64 = 2_822_650;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poverty::Rate;

    #[test]
    fn the_reported_start_holds_together() {
        // 192,750 households: inside the 192,707–192,783 the brief derives.
        assert_eq!(
            Rate::new(POOR_2021 as i64, 192_750).to_string(),
            POVERTY_RATES[0].1
        );
        assert_eq!(
            Rate::new(NEAR_POOR_2021 as i64, 192_750).to_string(),
            "12.06"
        );
        assert_eq!(P2_MODELS.iter().sum::<u32>(), 249);
    }
}
