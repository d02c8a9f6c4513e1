//! The programme side of the Lạng Sơn demo, written through the running
//! services' own APIs: livelihood models (Project 2) and production projects
//! (Project 3) with households picked from the registry by their certified
//! standing, technical courses and trainees, inspections and communication
//! work, sized to the province's 2021–2024 report (domain brief §1). Every
//! call carries a request id derived from the seed, so running it twice
//! writes nothing new. It ends by comparing the province's programme summary
//! with the targets.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context, bail, ensure};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sustain_domain::admin::{self, Level};
use sustain_domain::lang_son;
use sustain_domain::sector::Labour;
use sustain_platform::auth::BearerToken;
use sustain_proto::programs::v1 as pb;
use sustain_proto::programs::v1::communication_service_client::CommunicationServiceClient;
use sustain_proto::programs::v1::inspection_service_client::InspectionServiceClient;
use sustain_proto::programs::v1::livelihood_service_client::LivelihoodServiceClient;
use sustain_proto::programs::v1::programme_summary_service_client::ProgrammeSummaryServiceClient;
use sustain_proto::programs::v1::sector_report_service_client::SectorReportServiceClient;
use sustain_proto::programs::v1::training_service_client::TrainingServiceClient;
use sustain_proto::registry::v1 as reg;
use sustain_proto::registry::v1::household_service_client::HouseholdServiceClient;
use sustain_proto::registry::v1::review_service_client::ReviewServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub const DEFAULT_SEED: u64 = 2021;
const PROVINCE: &str = lang_son::PROVINCE;

/// What the demo writes; [`LANG_SON`] is the province's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// Project 2 models by type: livestock, crop, forestry.
    pub p2_models: [u32; 3],
    /// Project 2 households: poor, near-poor, recently escaped, other.
    pub p2_households: [u32; 4],
    pub p2_jobs: u32,
    /// Project 3 production projects by type: livestock, crop, forestry.
    pub p3_projects: [u32; 3],
    /// Project 3 households: poor, near-poor, recently escaped.
    pub p3_households: [u32; 3],
    pub courses: u32,
    pub trainees: u32,
    pub inspections: u32,
    pub articles: u32,
    pub leaflets: u32,
    /// People in dialogues and communication trainings.
    pub participants: u32,
    /// The labour department's and the social insurance office's figures
    /// for the province, year by year.
    pub sector: [SectorYear; 4],
}

/// One year of sector figures the demo files, split over the districts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectorYear {
    pub year: i32,
    pub labour: Labour,
    pub cards: i64,
}

const fn sector_year(
    year: i32,
    [
        vocational_trainees,
        workforce,
        trained_workers,
        new_jobs,
        workers_abroad,
        cards,
    ]: [i64; 6],
) -> SectorYear {
    SectorYear {
        year,
        labour: Labour {
            vocational_trainees,
            workforce,
            trained_workers,
            new_jobs,
            workers_abroad,
        },
        cards,
    }
}

/// Lạng Sơn 2021–2024. Project 2: 249 models (231 livestock, 14 crop, 4
/// forestry), about 4,100 households (1,310 poor, 1,840 near-poor, 910
/// recently escaped; 40 others make "about"), more than 3,500 jobs. Project 3:
/// 164 projects, more than 4,340 households (the class split and project
/// types are not reported; the demo assumes them), about 140 courses, more
/// than 3,260 trainees. 430 inspections; about 3,500 articles, more than
/// 110,000 leaflets, about 12,120 people in dialogues and trainings.
/// Sector figures: 11,000–20,000 vocational trainees and 17,000–18,500 new
/// jobs a year, 57.2 % of workers trained in 2021 and 64 % in 2024, 1,200
/// workers abroad in 2024, more than a million health-insurance cards in
/// 2021–2024; the workforce (about half a million), the years between and
/// the workers abroad before 2024 are the demo's assumptions.
pub const LANG_SON: Targets = Targets {
    p2_models: lang_son::P2_MODELS,
    p2_households: [
        lang_son::P2_HOUSEHOLDS[0],
        lang_son::P2_HOUSEHOLDS[1],
        lang_son::P2_HOUSEHOLDS[2],
        40,
    ],
    p2_jobs: 3_520,
    // The split by type is not reported; it adds up to the 164 reported.
    p3_projects: [96, 58, lang_son::P3_PROJECTS - 96 - 58],
    p3_households: [1_500, 2_000, 850],
    courses: lang_son::P3_COURSES,
    trainees: lang_son::P3_TRAINEES,
    inspections: lang_son::INSPECTIONS,
    articles: lang_son::ARTICLES,
    leaflets: 110_400,
    participants: lang_son::PARTICIPANTS,
    sector: [
        sector_year(2021, [11_800, 500_000, 286_000, 17_200, 600, 262_000]),
        sector_year(2022, [14_500, 502_000, 294_000, 17_600, 850, 263_000]),
        sector_year(2023, [17_200, 504_000, 312_500, 18_000, 1_000, 262_500]),
        sector_year(2024, [19_000, 506_000, 323_840, 18_300, 1_200, 263_500]),
    ],
};

impl Targets {
    /// The targets divided by `divisor`, each rounded to the nearest, so a
    /// scaled demo is the report divided (the Lạng Sơn page compares it so):
    /// 231 livestock models over 50 are 5, 14 crop models none. Each project
    /// keeps at least one model, so a small demo still shows them.
    pub fn scaled(&self, divisor: u32) -> Targets {
        let divisor = f64::from(divisor.max(1));
        let d = |n: u32| (f64::from(n) / divisor).round() as u32;
        let at_least_one = |counts: [u32; 3]| {
            if counts.iter().sum::<u32>() > 0 {
                counts
            } else {
                [1, 0, 0]
            }
        };
        Targets {
            p2_models: at_least_one(self.p2_models.map(d)),
            p2_households: self.p2_households.map(d),
            p2_jobs: d(self.p2_jobs),
            p3_projects: at_least_one(self.p3_projects.map(d)),
            p3_households: self.p3_households.map(d),
            courses: d(self.courses),
            trainees: d(self.trainees),
            inspections: d(self.inspections),
            articles: d(self.articles),
            leaflets: d(self.leaflets),
            participants: d(self.participants),
            sector: self.sector.map(|y| {
                let d = |n: i64| (n as f64 / divisor).round() as i64;
                SectorYear {
                    year: y.year,
                    labour: Labour {
                        vocational_trainees: d(y.labour.vocational_trainees),
                        workforce: d(y.labour.workforce),
                        trained_workers: d(y.labour.trained_workers),
                        new_jobs: d(y.labour.new_jobs),
                        workers_abroad: d(y.labour.workers_abroad),
                    },
                    cards: d(y.cards),
                }
            }),
        }
    }
}

type Authed = InterceptedService<Channel, BearerToken>;

/// Clients of the two services, carrying an admin token.
pub struct Clients {
    households: HouseholdServiceClient<Authed>,
    reviews: ReviewServiceClient<Authed>,
    livelihood: LivelihoodServiceClient<Authed>,
    training: TrainingServiceClient<Authed>,
    inspections: InspectionServiceClient<Authed>,
    communication: CommunicationServiceClient<Authed>,
    sector: SectorReportServiceClient<Authed>,
    summary: ProgrammeSummaryServiceClient<Authed>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clients(..)")
    }
}

impl Clients {
    pub fn new(registry: Channel, programs: Channel, token: &str) -> anyhow::Result<Clients> {
        let bearer = BearerToken::new(token)?;
        let r = || InterceptedService::new(registry.clone(), bearer.clone());
        let p = || InterceptedService::new(programs.clone(), bearer.clone());
        Ok(Clients {
            households: HouseholdServiceClient::new(r()),
            reviews: ReviewServiceClient::new(r()),
            livelihood: LivelihoodServiceClient::new(p()),
            training: TrainingServiceClient::new(p()),
            inspections: InspectionServiceClient::new(p()),
            communication: CommunicationServiceClient::new(p()),
            sector: SectorReportServiceClient::new(p()),
            summary: ProgrammeSummaryServiceClient::new(p()),
        })
    }
}

/// A household the registry can offer, with its standing in one year.
#[derive(Debug, Clone)]
struct Candidate {
    id: String,
    standing: i32,
    head_member: String,
}

/// Households of the province's communes, listed once each, and their
/// standings per year, asked once per commune and year.
#[derive(Default)]
struct Pool {
    listed: HashMap<String, Vec<String>>,
    standings: HashMap<(String, i32), Vec<Candidate>>,
}

impl Pool {
    async fn candidates(
        &mut self,
        c: &mut Clients,
        commune: &str,
        year: i32,
    ) -> anyhow::Result<&[Candidate]> {
        if !self.listed.contains_key(commune) {
            let mut ids = vec![];
            let mut page_token = String::new();
            loop {
                let page = c
                    .households
                    .list_households(reg::ListHouseholdsRequest {
                        filter: Some(reg::HouseholdFilter {
                            unit_code: commune.to_owned(),
                            ..Default::default()
                        }),
                        page_size: 500,
                        page_token,
                    })
                    .await?
                    .into_inner();
                ids.extend(page.households.into_iter().map(|h| h.id));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            self.listed.insert(commune.to_owned(), ids);
        }
        let key = (commune.to_owned(), year);
        if !self.standings.contains_key(&key) {
            let ids = self.listed.get(commune).cloned().unwrap_or_default();
            let mut out = vec![];
            for chunk in ids.chunks(1000) {
                let answer = c
                    .reviews
                    .batch_get_standings(reg::BatchGetStandingsRequest {
                        year,
                        household_ids: chunk.to_vec(),
                        include_members: true,
                    })
                    .await?
                    .into_inner();
                for s in answer.standings {
                    if s.lookup != reg::StandingLookup::Found as i32 {
                        continue;
                    }
                    // The eldest member stands in for the household at courses.
                    let head = s
                        .members
                        .iter()
                        .min_by(|a, b| a.birth_date.cmp(&b.birth_date))
                        .map(|m| m.id.clone())
                        .unwrap_or_default();
                    out.push(Candidate {
                        id: s.household_id,
                        standing: s.standing,
                        head_member: head,
                    });
                }
            }
            self.standings.insert(key.clone(), out);
        }
        Ok(self.standings.get(&key).map_or(&[], Vec::as_slice))
    }
}

const STANDINGS: [reg::Standing; 4] = [
    reg::Standing::Poor,
    reg::Standing::NearPoor,
    reg::Standing::RecentlyEscaped,
    reg::Standing::Other,
];
const TYPES: [pb::ModelType; 3] = [
    pb::ModelType::Livestock,
    pb::ModelType::Crop,
    pb::ModelType::Forestry,
];

/// `total` split into `parts` as evenly as whole numbers allow.
fn split(total: u32, parts: usize) -> Vec<u32> {
    let parts = parts.max(1);
    let base = total / parts as u32;
    let extra = (total % parts as u32) as usize;
    (0..parts).map(|i| base + u32::from(i < extra)).collect()
}

/// Districts of the province with their communes before the 2025 reform (the
/// demo registry's addresses).
fn districts() -> Vec<(String, Vec<String>)> {
    let on = chrono::NaiveDate::from_ymd_opt(2023, 1, 1).unwrap_or_default();
    let catalog = admin::catalog();
    catalog
        .children(Some(PROVINCE), on)
        .into_iter()
        .map(|d| {
            let communes = catalog
                .children(Some(&d.code), on)
                .into_iter()
                .filter(|c| c.level == Level::Commune)
                .map(|c| c.code.clone())
                .collect();
            (d.code.clone(), communes)
        })
        .collect()
}

/// What one Project's models need: per model its type and the classes of the
/// households it takes.
struct ModelPlan {
    model_type: pb::ModelType,
    classes: Vec<reg::Standing>,
}

fn plan_models(rng: &mut ChaCha8Rng, types: &[u32; 3], households: &[u32]) -> Vec<ModelPlan> {
    let mut kinds: Vec<pb::ModelType> = TYPES
        .iter()
        .zip(types)
        .flat_map(|(t, n)| std::iter::repeat_n(*t, *n as usize))
        .collect();
    kinds.shuffle(rng);
    let mut classes: Vec<reg::Standing> = STANDINGS
        .iter()
        .zip(households)
        .flat_map(|(s, n)| std::iter::repeat_n(*s, *n as usize))
        .collect();
    classes.shuffle(rng);
    let sizes = split(classes.len() as u32, kinds.len());
    let mut at = 0;
    kinds
        .into_iter()
        .zip(sizes)
        .map(|(model_type, n)| {
            let chunk = classes[at..at + n as usize].to_vec();
            at += n as usize;
            ModelPlan {
                model_type,
                classes: chunk,
            }
        })
        .collect()
}

/// Households of `classes` in `communes` not used yet, commune by commune:
/// (household, eldest member) and the communes they came from; `None` when
/// the communes do not hold enough.
async fn pick(
    c: &mut Clients,
    pool: &mut Pool,
    rng: &mut ChaCha8Rng,
    used: &HashSet<String>,
    communes: &[String],
    year: i32,
    classes: &[reg::Standing],
) -> anyhow::Result<Option<(Vec<(String, String)>, Vec<String>)>> {
    let mut wanted: BTreeMap<i32, u32> = BTreeMap::new();
    for s in classes {
        *wanted.entry(*s as i32).or_default() += 1;
    }
    let mut picked = vec![];
    let mut from = vec![];
    let mut order = communes.to_vec();
    order.shuffle(rng);
    for commune in order {
        if wanted.values().all(|n| *n == 0) {
            break;
        }
        let mut took = false;
        for cand in pool.candidates(c, &commune, year).await? {
            let Some(n) = wanted.get_mut(&cand.standing) else {
                continue;
            };
            if *n == 0 || used.contains(&cand.id) || picked.iter().any(|(h, _)| h == &cand.id) {
                continue;
            }
            *n -= 1;
            picked.push((cand.id.clone(), cand.head_member.clone()));
            took = true;
        }
        if took {
            from.push(commune);
        }
    }
    Ok(wanted.values().all(|n| *n == 0).then_some((picked, from)))
}

/// The running totals the demo wrote, to compare with the summary.
#[derive(Debug, Default)]
pub struct Report {
    pub models: u32,
    pub enrolments: u32,
    pub trainees: u32,
}

/// Writes the programme side for `targets`; returns what it wrote. With
/// `progress`, shows how far it is (models, courses and inspections written
/// of those planned) on standard error.
pub async fn load(
    c: &mut Clients,
    seed: u64,
    targets: &Targets,
    progress: bool,
) -> anyhow::Result<Report> {
    let planned = targets.p2_models.iter().sum::<u32>()
        + targets.p3_projects.iter().sum::<u32>()
        + targets.courses
        + targets.inspections;
    let bar = sustain_platform::progress::Progress::new(
        "programme records (models, courses, inspections)",
        u64::from(planned),
        progress,
    );
    let report = write_all(c, seed, targets, &bar).await;
    bar.finish();
    report
}

async fn write_all(
    c: &mut Clients,
    seed: u64,
    targets: &Targets,
    bar: &sustain_platform::progress::Progress,
) -> anyhow::Result<Report> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0004);
    let mut districts = districts();
    ensure!(!districts.is_empty(), "no districts of province {PROVINCE}");
    districts.shuffle(&mut rng);
    let mut pool = Pool::default();
    let mut used: HashSet<String> = HashSet::new();
    let mut report = Report::default();
    // Project 3 households by district, for the courses.
    let mut p3_heads: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();

    let projects = [
        (
            "NTP-SPR.2",
            plan_models(&mut rng, &targets.p2_models, &targets.p2_households),
            "p2",
        ),
        (
            "NTP-SPR.3.1",
            plan_models(&mut rng, &targets.p3_projects, &targets.p3_households),
            "p3",
        ),
    ];
    let jobs = split(targets.p2_jobs, projects[0].1.len());
    let mut next_district = 0usize;
    for (project_code, plans, tag) in projects {
        for (i, plan) in plans.into_iter().enumerate() {
            let year = 2022 + (i % 3) as i32;
            // The next district with enough households of the classes wanted.
            let mut found = None;
            for attempt in 0..districts.len() {
                let (district, communes) =
                    districts[(next_district + attempt) % districts.len()].clone();
                if let Some(picks) = pick(
                    c,
                    &mut pool,
                    &mut rng,
                    &used,
                    &communes,
                    year,
                    &plan.classes,
                )
                .await?
                {
                    next_district += attempt + 1;
                    found = Some((district, picks));
                    break;
                }
            }
            let Some((district, (picked, model_communes))) = found else {
                bail!(
                    "no district has enough households of the classes model {tag}-{i} needs in {year}; load a larger registry demo"
                );
            };
            for (h, head) in &picked {
                used.insert(h.clone());
                if tag == "p3" {
                    p3_heads
                        .entry(district.clone())
                        .or_default()
                        .push((h.clone(), head.clone()));
                }
            }
            let picked: Vec<String> = picked.into_iter().map(|(h, _)| h).collect();
            let model = c
                .livelihood
                .create_model(pb::CreateModelRequest {
                    model: Some(pb::LivelihoodModel {
                        project_code: project_code.to_owned(),
                        name: format!(
                            "{} {}-{i:03}",
                            type_name(plan.model_type),
                            tag.to_uppercase()
                        ),
                        r#type: plan.model_type as i32,
                        unit_code: district.clone(),
                        commune_codes: model_communes,
                        start_date: format!("{year}-03-01"),
                        end_date: format!("{}-12-31", year + 2),
                        budget_vnd: rng.random_range(3..15) * 100_000_000,
                        jobs_created: if tag == "p2" { jobs[i] as i32 } else { 0 },
                        ..Default::default()
                    }),
                    request_id: format!("demo-{seed}-{tag}-model-{i}"),
                })
                .await?
                .into_inner()
                .model
                .context("model in answer")?;
            report.models += 1;
            bar.inc(1);
            let enrolled = c
                .livelihood
                .batch_create_enrolments(pb::BatchCreateEnrolmentsRequest {
                    model_id: model.id.clone(),
                    enrolments: picked
                        .iter()
                        .map(|h| pb::NewEnrolment {
                            household_id: h.clone(),
                            enrolled_on: format!("{year}-04-01"),
                        })
                        .collect(),
                    request_id: format!("demo-{seed}-{tag}-enrol-{i}"),
                })
                .await?
                .into_inner()
                .enrolments;
            report.enrolments += enrolled.len() as u32;
            if tag == "p2" {
                for e in enrolled {
                    // Incomes rise 30–60% over the model; profits fall in 30–50 million.
                    let before: i64 = rng.random_range(24..48) * 1_000_000;
                    let rise: i64 = rng.random_range(30..=60);
                    c.livelihood
                        .update_enrolment(pb::UpdateEnrolmentRequest {
                            enrolment: Some(pb::Enrolment {
                                id: e.id.clone(),
                                outcome: Some(pb::Outcome {
                                    income_before_vnd: before,
                                    income_after_vnd: before + before * rise / 100,
                                    yearly_profit_vnd: rng.random_range(30..=50) * 1_000_000,
                                    measured_on: format!("{}-12-15", year + 1),
                                    ..Default::default()
                                }),
                                meta: e.meta.clone(),
                                ..Default::default()
                            }),
                            update_mask: Some(prost_types::FieldMask {
                                paths: vec!["outcome".into()],
                            }),
                            request_id: format!("demo-{seed}-outcome-{}", e.id),
                        })
                        .await?;
                }
            }
        }
    }

    // Technical courses of Project 3 for the heads of the households its
    // projects took in, district by district; each course is run by the
    // district of its first trainee.
    let heads: Vec<(String, String, String)> = p3_heads
        .iter()
        .flat_map(|(d, hs)| {
            hs.iter()
                .map(move |(h, m)| (d.clone(), h.clone(), m.clone()))
        })
        .collect();
    ensure!(
        heads.len() >= targets.trainees as usize,
        "{} trainees wanted but Project 3 took in {} households",
        targets.trainees,
        heads.len()
    );
    let per_course = split(targets.trainees, targets.courses as usize);
    let mut next_head = 0usize;
    for (i, n) in per_course.iter().enumerate() {
        let chosen = &heads[next_head..next_head + *n as usize];
        next_head += *n as usize;
        let district = chosen
            .first()
            .map_or_else(|| PROVINCE.to_owned(), |(d, _, _)| d.clone());
        let year = 2022 + (i % 3) as i32;
        let course = c
            .training
            .create_course(pb::CreateCourseRequest {
                course: Some(pb::Course {
                    project_code: "NTP-SPR.3.1".into(),
                    kind: pb::CourseKind::Technical as i32,
                    name: format!("Kỹ thuật chăn nuôi, trồng trọt {i:03}"),
                    unit_code: district.clone(),
                    start_date: format!("{year}-05-01"),
                    end_date: format!("{year}-05-20"),
                    ..Default::default()
                }),
                request_id: format!("demo-{seed}-course-{i}"),
            })
            .await?
            .into_inner()
            .course
            .context("course in answer")?;
        let trainees = c
            .training
            .batch_create_trainees(pb::BatchCreateTraineesRequest {
                course_id: course.id.clone(),
                trainees: chosen
                    .iter()
                    .map(|(_, h, m)| pb::NewTrainee {
                        household_id: h.clone(),
                        member_id: m.clone(),
                    })
                    .collect(),
                request_id: format!("demo-{seed}-trainees-{i}"),
            })
            .await?
            .into_inner()
            .trainees;
        report.trainees += trainees.len() as u32;
        bar.inc(1);
        for t in trainees {
            // Nineteen in twenty finish.
            if rng.random_range(0..20) == 0 {
                continue;
            }
            c.training
                .update_trainee(pb::UpdateTraineeRequest {
                    trainee: Some(pb::Trainee {
                        id: t.id.clone(),
                        completed: true,
                        meta: t.meta.clone(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["completed".into()],
                    }),
                    request_id: format!("demo-{seed}-completed-{}", t.id),
                })
                .await?;
        }
    }

    // Inspections of the province, its districts and communes, 2021–2024.
    let bodies = [
        "Ban Chỉ đạo các CTMTQG tỉnh",
        "Sở Lao động - Thương binh và Xã hội",
        "Ban Chỉ đạo huyện",
        "Thanh tra tỉnh",
    ];
    for i in 0..targets.inspections {
        let (district, communes) = &districts[i as usize % districts.len()];
        let unit = match i % 5 {
            0 => PROVINCE.to_owned(),
            1 | 2 => district.clone(),
            _ => communes[i as usize % communes.len().max(1)].clone(),
        };
        let year = 2021 + (i % 4) as i32;
        let held = format!("{year}-{:02}-{:02}", 1 + i % 12, 1 + i % 27);
        let follow_ups = (0..i % 3)
            .map(|k| pb::FollowUp {
                action: format!("Khắc phục tồn tại {}", k + 1),
                due_on: format!("{}-{:02}-28", year + 1, 1 + (i + k) % 12),
                closed_on: if (i + k) % 7 == 0 {
                    String::new()
                } else {
                    format!("{}-{:02}-15", year + 1, 1 + (i + k) % 12)
                },
            })
            .collect();
        c.inspections
            .create_inspection(pb::CreateInspectionRequest {
                inspection: Some(pb::Inspection {
                    inspecting_body: bodies[i as usize % bodies.len()].into(),
                    unit_code: unit,
                    held_on: held,
                    findings: "Kiểm tra việc thực hiện Chương trình".into(),
                    follow_ups,
                    ..Default::default()
                }),
                request_id: format!("demo-{seed}-inspection-{i}"),
            })
            .await?;
        bar.inc(1);
    }

    // Communication: articles in tens, leaflets in runs of 480, people in
    // dialogues and trainings.
    let mut n = 0u32;
    for (kind, total, per) in [
        (pb::ActivityKind::Article, targets.articles, 10),
        (pb::ActivityKind::Leaflet, targets.leaflets, 480),
        (pb::ActivityKind::Dialogue, targets.participants * 2 / 3, 40),
        (
            pb::ActivityKind::Training,
            targets.participants - targets.participants * 2 / 3,
            40,
        ),
    ] {
        let runs = split(total, (total / per).max(1) as usize);
        for amount in runs {
            let (district, _) = &districts[n as usize % districts.len()];
            let year = 2021 + (n % 4) as i32;
            let people = matches!(
                kind,
                pb::ActivityKind::Dialogue | pb::ActivityKind::Training
            );
            c.communication
                .create_activity(pb::CreateActivityRequest {
                    activity: Some(pb::CommunicationActivity {
                        kind: kind as i32,
                        title: format!("Tuyên truyền giảm nghèo bền vững {n}"),
                        unit_code: district.clone(),
                        held_on: format!("{year}-{:02}-10", 1 + n % 12),
                        count: if people { 0 } else { i64::from(amount) },
                        participants: if people { i64::from(amount) } else { 0 },
                        ..Default::default()
                    }),
                    request_id: format!("demo-{seed}-activity-{n}"),
                })
                .await?;
            n += 1;
        }
    }

    // The sector agencies' yearly figures, by district as the district
    // offices report them; each figure split evenly, so the province's sums
    // are the targets'.
    let mut by_district = districts.clone();
    by_district.sort();
    let parts = by_district.len();
    for y in &targets.sector {
        let l = &y.labour;
        let shares = |n: i64| split(u32::try_from(n).unwrap_or(u32::MAX), parts);
        let columns = [
            shares(l.vocational_trainees),
            shares(l.workforce),
            shares(l.trained_workers),
            shares(l.new_jobs),
            shares(l.workers_abroad),
            shares(y.cards),
        ];
        for (i, (district, _)) in by_district.iter().enumerate() {
            let [trainees, workforce, trained, jobs, abroad, cards] =
                columns.each_ref().map(|c| i64::from(c[i]));
            for (kind, source, figures) in [
                (
                    "labour",
                    "Phòng Lao động - Thương binh và Xã hội",
                    pb::sector_report::Figures::Labour(pb::LabourFigures {
                        vocational_trainees: trainees,
                        workforce,
                        trained_workers: trained,
                        new_jobs: jobs,
                        workers_abroad: abroad,
                    }),
                ),
                (
                    "cards",
                    "Bảo hiểm xã hội huyện",
                    pb::sector_report::Figures::HealthInsurance(pb::HealthInsuranceFigures {
                        cards_issued: cards,
                    }),
                ),
            ] {
                c.sector
                    .create_sector_report(pb::CreateSectorReportRequest {
                        report: Some(pb::SectorReport {
                            unit_code: district.clone(),
                            year: y.year,
                            source: format!("{source}, báo cáo năm {}", y.year),
                            figures: Some(figures),
                            ..Default::default()
                        }),
                        request_id: format!("demo-{seed}-sector-{kind}-{}-{district}", y.year),
                    })
                    .await?;
            }
        }
    }
    Ok(report)
}

fn type_name(t: pb::ModelType) -> &'static str {
    match t {
        pb::ModelType::Livestock => "Chăn nuôi",
        pb::ModelType::Crop => "Trồng trọt",
        pb::ModelType::Forestry => "Lâm nghiệp",
        _ => "Mô hình",
    }
}

/// The province's programme summary for 2021–2024.
pub async fn province_summary(c: &mut Clients) -> anyhow::Result<pb::ProgrammeSummary> {
    c.summary
        .get_programme_summary(pb::GetProgrammeSummaryRequest {
            unit_code: PROVINCE.into(),
            from_year: 2021,
            to_year: 2024,
        })
        .await?
        .into_inner()
        .summary
        .context("summary in answer")
}

/// Each figure the targets name, as (label, wanted, found in the summary).
pub fn compare(targets: &Targets, s: &pb::ProgrammeSummary) -> Vec<(&'static str, i64, i64)> {
    let models = s.models.clone().unwrap_or_default();
    let project = |code: &str| {
        models
            .projects
            .iter()
            .find(|p| p.project_code == code)
            .cloned()
            .unwrap_or_default()
    };
    let of_type = |p: &pb::ProjectModelFigures, t: pb::ModelType| {
        p.by_type
            .iter()
            .find(|x| x.r#type == t as i32)
            .map_or(0, |x| x.models)
    };
    let of_class = |p: &pb::ProjectModelFigures, c: pb::EnrolmentClass| {
        p.households_by_class
            .iter()
            .find(|x| x.class_at_enrolment == c as i32)
            .map_or(0, |x| x.households)
    };
    let p2 = project("NTP-SPR.2");
    let p3 = project("NTP-SPR.3");
    let training = s.training.clone().unwrap_or_default();
    let comms = s.communication.unwrap_or_default();
    let inspections = s.inspections.unwrap_or_default();
    let sector = s.sector.clone().unwrap_or_default();
    let sum = |f: fn(&SectorYear) -> i64| {
        targets
            .sector
            .iter()
            .filter(|y| y.year <= s.to_year)
            .map(f)
            .sum::<i64>()
    };
    let t = |n: u32| i64::from(n);
    vec![
        (
            "Project 2 models",
            t(targets.p2_models.iter().sum()),
            p2.models,
        ),
        (
            "  livestock",
            t(targets.p2_models[0]),
            of_type(&p2, pb::ModelType::Livestock),
        ),
        (
            "  crop",
            t(targets.p2_models[1]),
            of_type(&p2, pb::ModelType::Crop),
        ),
        (
            "  forestry",
            t(targets.p2_models[2]),
            of_type(&p2, pb::ModelType::Forestry),
        ),
        (
            "Project 2 households",
            t(targets.p2_households.iter().sum()),
            p2.enrolled_households,
        ),
        (
            "  poor",
            t(targets.p2_households[0]),
            of_class(&p2, pb::EnrolmentClass::Poor),
        ),
        (
            "  near-poor",
            t(targets.p2_households[1]),
            of_class(&p2, pb::EnrolmentClass::NearPoor),
        ),
        (
            "  recently escaped",
            t(targets.p2_households[2]),
            of_class(&p2, pb::EnrolmentClass::RecentlyEscaped),
        ),
        ("Project 2 jobs", t(targets.p2_jobs), p2.jobs_created),
        (
            "Project 3 projects",
            t(targets.p3_projects.iter().sum()),
            p3.models,
        ),
        (
            "Project 3 households",
            t(targets.p3_households.iter().sum()),
            p3.enrolled_households,
        ),
        ("courses", t(targets.courses), training.courses),
        ("trainees", t(targets.trainees), training.trainees),
        (
            "inspections",
            t(targets.inspections),
            inspections.inspections,
        ),
        ("articles", t(targets.articles), comms.articles),
        ("leaflets", t(targets.leaflets), comms.leaflets),
        (
            "people in dialogues and trainings",
            t(targets.participants),
            comms.dialogue_participants + comms.training_participants,
        ),
        (
            "vocational trainees (sector)",
            sum(|y| y.labour.vocational_trainees),
            sector.vocational_trainees,
        ),
        (
            "new jobs (sector)",
            sum(|y| y.labour.new_jobs),
            sector.new_jobs,
        ),
        (
            "workers abroad (sector)",
            sum(|y| y.labour.workers_abroad),
            sector.workers_abroad,
        ),
        (
            "health-insurance cards (sector)",
            sum(|y| y.cards),
            sector.insurance_cards,
        ),
    ]
}
