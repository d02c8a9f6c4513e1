//! The registry and the programmes service, each on 127.0.0.1:0 over its own
//! fresh database, the programmes service calling the registry for real; and
//! households with certified reviews to enrol.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use sustain_platform::Role;
use sustain_platform::config::{Config, Secrets};
use sustain_proto::programs::v1 as pb;
use sustain_proto::programs::v1::catalog_service_client::CatalogServiceClient;
use sustain_proto::programs::v1::livelihood_service_client::LivelihoodServiceClient;
use sustain_proto::programs::v1::programme_summary_service_client::ProgrammeSummaryServiceClient;
use sustain_proto::registry::v1 as reg;
use sustain_proto::registry::v1::review_service_client::ReviewServiceClient;
pub use sustain_testkit::server::{Bearer, Running};
use sustain_testkit::{TestDatabase, token};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub fn secrets() -> Secrets {
    sustain_testkit::secrets()
}

pub type Livelihood = LivelihoodServiceClient<InterceptedService<Channel, Bearer>>;
pub type Catalog = CatalogServiceClient<InterceptedService<Channel, Bearer>>;
pub type Summary = ProgrammeSummaryServiceClient<InterceptedService<Channel, Bearer>>;
pub type Reviews = ReviewServiceClient<InterceptedService<Channel, Bearer>>;

fn config(url: &str) -> Config {
    let mut config = Config::defaults(0);
    config.database_url = url.to_owned();
    config.shutdown_grace_secs = 0;
    config
}

pub async fn start_registry(url: &str) -> Running {
    registry_on(loopback().await, config(url)).await
}

pub async fn start_programs(url: &str, registry: SocketAddr, timeout_ms: u64) -> Running {
    let mut config = config(url);
    config.registry.url = format!("http://{registry}");
    config.registry.timeout_ms = timeout_ms;
    programs_on(loopback().await, config).await
}

async fn loopback() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
}

/// The registry with `config` on a listener bound beforehand.
pub async fn registry_on(listener: tokio::net::TcpListener, config: Config) -> Running {
    Running::start_on(
        listener,
        move |listener, stopped| async move {
            sustain_registry::run(&config, &secrets(), listener, async {
                let _ = stopped.await;
            })
            .await
        },
        "sustain.registry.v1.ReviewService",
    )
    .await
    .expect("registry serving")
}

/// The programmes service with `config` on a listener bound beforehand.
pub async fn programs_on(listener: tokio::net::TcpListener, config: Config) -> Running {
    Running::start_on(
        listener,
        move |listener, stopped| async move {
            sustain_programs::run(&config, &secrets(), listener, async {
                let _ = stopped.await;
            })
            .await
        },
        "sustain.programs.v1.LivelihoodService",
    )
    .await
    .expect("programs serving")
}

/// Both services, each over its own database.
pub struct Suite {
    pub registry: Option<Running>,
    pub programs: Running,
    pub programs_db: TestDatabase,
    _registry_db: TestDatabase,
}

impl Suite {
    pub async fn start() -> Suite {
        let registry_db = TestDatabase::new().await.expect("registry database");
        let programs_db = TestDatabase::new().await.expect("programs database");
        let registry = start_registry(&registry_db.url).await;
        let programs = start_programs(&programs_db.url, registry.addr, 3000).await;
        Suite {
            registry: Some(registry),
            programs,
            programs_db,
            _registry_db: registry_db,
        }
    }

    /// Both services on listeners bound beforehand, with these configurations
    /// (their databases and the programmes service's registry set here): an
    /// instance of a province's sync topology.
    pub async fn start_on(
        registry: (tokio::net::TcpListener, Config),
        programs: (tokio::net::TcpListener, Config),
    ) -> Suite {
        let registry_db = TestDatabase::new().await.expect("registry database");
        let programs_db = TestDatabase::new().await.expect("programs database");
        let (registry_listener, mut registry_config) = registry;
        registry_config.database_url = registry_db.url.clone();
        let registry = registry_on(registry_listener, registry_config).await;
        let (programs_listener, mut programs_config) = programs;
        programs_config.database_url = programs_db.url.clone();
        programs_config.registry.url = format!("http://{}", registry.addr);
        let programs = programs_on(programs_listener, programs_config).await;
        Suite {
            registry: Some(registry),
            programs,
            programs_db,
            _registry_db: registry_db,
        }
    }

    pub fn registry(&self) -> &Running {
        self.registry.as_ref().expect("registry running")
    }

    pub async fn livelihood(&self, role: Role, scope: &[&str]) -> Livelihood {
        LivelihoodServiceClient::with_interceptor(
            self.programs.channel().await.expect("connect"),
            Bearer(token(role, scope)),
        )
    }

    pub async fn catalog(&self, role: Role, scope: &[&str]) -> Catalog {
        CatalogServiceClient::with_interceptor(
            self.programs.channel().await.expect("connect"),
            Bearer(token(role, scope)),
        )
    }

    pub async fn summary(&self, role: Role, scope: &[&str]) -> Summary {
        ProgrammeSummaryServiceClient::with_interceptor(
            self.programs.channel().await.expect("connect"),
            Bearer(token(role, scope)),
        )
    }

    pub async fn reviews(&self, role: Role, scope: &[&str]) -> Reviews {
        ReviewServiceClient::with_interceptor(
            self.registry().channel().await.expect("connect"),
            Bearer(token(role, scope)),
        )
    }
}

/// How a test household stands, by the certified reviews it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Poor,
    NearPoor,
    RecentlyEscaped,
    Other,
    NeverReviewed,
}

const DEPRIVED3: &[&str] = &["latrine", "domestic_water", "telecom_use"];

fn review(year: i32, income: i64, deprived: &[&str]) -> reg::ImportedReview {
    reg::ImportedReview {
        review: Some(reg::ReviewInput {
            year,
            kind: reg::ReviewKind::Periodic as i32,
            deprived_indicators: deprived.iter().map(|d| (*d).to_owned()).collect(),
            income_per_person_month: Some(income),
            reviewer: "Lý Văn Sáu".into(),
            ..Default::default()
        }),
        state: reg::ReviewState::Certified as i32,
        decision_number: format!("{year}/QĐ-UBND"),
        decision_date: format!("{year}-12-10"),
    }
}

fn reviews_of(kind: Kind) -> Vec<reg::ImportedReview> {
    match kind {
        Kind::Poor => vec![
            review(2022, 1_000_000, DEPRIVED3),
            review(2023, 1_200_000, DEPRIVED3),
        ],
        Kind::NearPoor => vec![review(2023, 1_200_000, &["latrine"])],
        Kind::RecentlyEscaped => {
            vec![
                review(2022, 1_000_000, DEPRIVED3),
                review(2023, 3_000_000, &[]),
            ]
        }
        Kind::Other => vec![review(2022, 3_500_000, &[]), review(2023, 3_600_000, &[])],
        Kind::NeverReviewed => vec![],
    }
}

fn member(name: &str, relation: reg::Relation, birth: &str, sex: reg::Sex) -> reg::Member {
    reg::Member {
        full_name: name.into(),
        birth_date: birth.into(),
        sex: sex as i32,
        ethnicity_code: "02".into(),
        relation: relation as i32,
        health_insurance: reg::HealthInsurance::Insured as i32,
        ..Default::default()
    }
}

/// Imports one household per entry into the registry, certified as `kind`;
/// their ids in order.
pub async fn households(suite: &Suite, entries: &[(&str, Kind)]) -> Vec<String> {
    let rows = entries
        .iter()
        .enumerate()
        .map(|(i, (commune, kind))| reg::ImportRow {
            row_number: i as i64 + 1,
            external_key: format!("t-{}-{i}", uuid::Uuid::now_v7().simple()),
            household: Some(reg::Household {
                address: Some(reg::Address {
                    commune_code: (*commune).into(),
                    village: "Bản Nà Lại".into(),
                    residence: reg::Residence::Rural as i32,
                }),
                registered_on: "2015-03-01".into(),
                members: vec![
                    member(
                        &format!("Nông Văn {i}"),
                        reg::Relation::Head,
                        "1980-01-01",
                        reg::Sex::Male,
                    ),
                    member(
                        "Nông Thị Bé",
                        reg::Relation::Child,
                        "2023-02-01",
                        reg::Sex::Female,
                    ),
                ],
                ..Default::default()
            }),
            reviews: reviews_of(*kind),
        })
        .collect();
    let mut client = suite.reviews(Role::Admin, &["*"]).await;
    let mut stream = client
        .import_households(tokio_stream::iter(vec![reg::ImportHouseholdsRequest {
            rows,
        }]))
        .await
        .expect("import")
        .into_inner();
    let mut ids = vec![];
    while let Some(r) = stream.message().await.expect("import answer") {
        for result in r.results {
            assert!(
                result.violations.is_empty(),
                "test household rejected: {:?}",
                result.violations
            );
            ids.push(result.household_id);
        }
    }
    assert_eq!(ids.len(), entries.len());
    ids
}

/// A livestock model of Project 2 run by district 181 in two of its communes.
pub fn livestock_model(name: &str) -> pb::LivelihoodModel {
    pb::LivelihoodModel {
        project_code: "NTP-SPR.2".into(),
        name: name.into(),
        r#type: pb::ModelType::Livestock as i32,
        unit_code: "181".into(),
        commune_codes: vec!["06067".into(), "06070".into()],
        start_date: "2022-03-01".into(),
        end_date: "2025-12-31".into(),
        budget_vnd: 1_200_000_000,
        jobs_created: 25,
        ..Default::default()
    }
}

pub async fn create_model(
    client: &mut Livelihood,
    model: pb::LivelihoodModel,
) -> Result<pb::LivelihoodModel, tonic::Status> {
    client
        .create_model(pb::CreateModelRequest {
            model: Some(model),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().model.expect("model"))
}

pub async fn enrol(
    client: &mut Livelihood,
    model_id: &str,
    households: &[String],
    on: &str,
) -> Result<Vec<pb::Enrolment>, tonic::Status> {
    client
        .batch_create_enrolments(pb::BatchCreateEnrolmentsRequest {
            model_id: model_id.into(),
            enrolments: households
                .iter()
                .map(|h| pb::NewEnrolment {
                    household_id: h.clone(),
                    enrolled_on: on.into(),
                })
                .collect(),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().enrolments)
}

/// Every enrolment a caller can list, all pages.
pub async fn all_enrolments(
    client: &mut Livelihood,
    filter: pb::EnrolmentFilter,
) -> Vec<pb::Enrolment> {
    let mut out = vec![];
    let mut page_token = String::new();
    loop {
        let page = client
            .list_enrolments(pb::ListEnrolmentsRequest {
                filter: Some(filter.clone()),
                page_size: 2,
                page_token: page_token.clone(),
            })
            .await
            .expect("list")
            .into_inner();
        out.extend(page.enrolments);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
        .unwrap_or_default()
}

pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// The ids of a household's members, head first, from the registry.
pub async fn members_of(suite: &Suite, household_id: &str) -> Vec<String> {
    let mut client = sustain_proto::registry::v1::household_service_client::HouseholdServiceClient::with_interceptor(
        suite.registry().channel().await.expect("connect"),
        Bearer(token(Role::Admin, &["*"])),
    );
    client
        .get_household(reg::GetHouseholdRequest {
            id: household_id.into(),
        })
        .await
        .expect("household")
        .into_inner()
        .household
        .expect("household")
        .members
        .into_iter()
        .map(|m| m.id)
        .collect()
}

pub async fn programme_summary(
    suite: &Suite,
    unit: &str,
    scope: &[&str],
    from: i32,
    to: i32,
) -> Result<pb::ProgrammeSummary, tonic::Status> {
    suite
        .summary(Role::Viewer, scope)
        .await
        .get_programme_summary(pb::GetProgrammeSummaryRequest {
            unit_code: unit.into(),
            from_year: from,
            to_year: to,
        })
        .await
        .map(|r| r.into_inner().summary.expect("summary"))
}

pub fn client<C>(
    make: impl FnOnce(InterceptedService<Channel, Bearer>) -> C,
    channel: Channel,
    role: Role,
    scope: &[&str],
) -> C {
    make(InterceptedService::new(channel, Bearer(token(role, scope))))
}
