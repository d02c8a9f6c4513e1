//! A registry server on 127.0.0.1:0 over a fresh database, and clients that carry a
//! bearer token for any role and scope.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use sustain_platform::Role;
use sustain_platform::config::{Config, Secrets};
use sustain_proto::registry::v1 as pb;
use sustain_proto::registry::v1::admin_unit_service_client::AdminUnitServiceClient;
use sustain_proto::registry::v1::household_service_client::HouseholdServiceClient;
use sustain_proto::registry::v1::review_service_client::ReviewServiceClient;
pub use sustain_testkit::server::{Bearer, Running};
use sustain_testkit::{TestDatabase, token};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub struct TestServer {
    pub addr: SocketAddr,
    /// The database URL; `db` owns it unless this server shares another's.
    pub url: String,
    db: Option<TestDatabase>,
    running: Running,
    /// Signs this server's tokens when it has a key of its own (else the
    /// shared test secret does).
    signer: Option<sustain_platform::auth::TokenIssuer>,
}

pub type Households = HouseholdServiceClient<InterceptedService<Channel, Bearer>>;
pub type Units = AdminUnitServiceClient<InterceptedService<Channel, Bearer>>;
pub type Reviews = ReviewServiceClient<InterceptedService<Channel, Bearer>>;

/// The registry with `config` on a listener bound beforehand (instances that
/// must know each other's addresses before any starts), ready once its sync
/// service answers.
pub async fn registry_on(
    listener: tokio::net::TcpListener,
    config: Config,
) -> sustain_testkit::server::Running {
    sustain_testkit::server::Running::start_on(
        listener,
        move |listener, stopped| async move {
            sustain_registry::run(&config, &secrets(), listener, async {
                let _ = stopped.await;
            })
            .await
        },
        sustain_sync::SERVICE_NAME,
    )
    .await
    .expect("registry ready")
}

pub fn secrets() -> Secrets {
    sustain_testkit::secrets()
}

impl TestServer {
    pub async fn start() -> TestServer {
        let db = TestDatabase::new().await.expect("test database");
        let url = db.url.clone();
        Self::start_on(url, Some(db), Config::defaults(0).cache_entries).await
    }

    /// A server that reads every household from the database.
    pub async fn start_without_cache() -> TestServer {
        let db = TestDatabase::new().await.expect("test database");
        let url = db.url.clone();
        Self::start_on(url, Some(db), 0).await
    }

    /// A server with `config` over a fresh database (its URL is set here).
    pub async fn start_with(config: Config) -> TestServer {
        let db = TestDatabase::new().await.expect("test database");
        let url = db.url.clone();
        Self::start_configured(url, Some(db), config, secrets()).await
    }

    /// A server that signs and verifies tokens with its own Ed25519 key, as
    /// every instance of a province does; its clients' tokens are signed so.
    pub async fn start_with_key(key: sustain_platform::auth::keys::SigningKey) -> TestServer {
        let db = TestDatabase::new().await.expect("test database");
        let url = db.url.clone();
        let mut config = Config::defaults(0);
        config.shutdown_grace_secs = 0;
        config.cache_poll_ms = 50;
        let signer = sustain_platform::auth::TokenIssuer::own(&key, "sustain", "sustain")
            .expect("a signing key");
        let secrets = Secrets {
            token_key: sustain_platform::auth::TokenKey::Own(Box::new(key)),
            ..secrets()
        };
        let mut server = Self::start_configured(url, Some(db), config, secrets).await;
        server.signer = Some(signer);
        server
    }

    /// A token for `role` over `scope` that this server accepts.
    pub fn token(&self, role: Role, scope: &[&str]) -> String {
        match &self.signer {
            Some(signer) => signer
                .issue(
                    &format!("test-{}", role.as_str()),
                    role,
                    scope,
                    sustain_platform::auth::Duration::hours(1),
                )
                .expect("signed"),
            None => token(role, scope),
        }
    }

    /// A second instance over this server's database, as in a horizontal deployment.
    pub async fn another_instance(&self) -> TestServer {
        Self::start_on(self.url.clone(), None, Config::defaults(0).cache_entries).await
    }

    async fn start_on(url: String, db: Option<TestDatabase>, cache_entries: u64) -> TestServer {
        let mut config = Config::defaults(0);
        config.shutdown_grace_secs = 0;
        config.cache_poll_ms = 50;
        config.cache_entries = cache_entries;
        Self::start_configured(url, db, config, secrets()).await
    }

    async fn start_configured(
        url: String,
        db: Option<TestDatabase>,
        mut config: Config,
        secrets: Secrets,
    ) -> TestServer {
        config.database_url = url.clone();
        let running = Running::start(
            move |listener, stopped| async move {
                sustain_registry::run(&config, &secrets, listener, async {
                    let _ = stopped.await;
                })
                .await
            },
            "sustain.registry.v1.HouseholdService",
        )
        .await
        .expect("the registry ready");
        TestServer {
            addr: running.addr,
            url,
            db,
            running,
            signer: None,
        }
    }

    pub async fn channel(&self) -> Channel {
        self.running.channel().await.expect("connect")
    }

    /// Households as a caller with `bearer` (`None`: no credentials).
    pub async fn households_with(&self, bearer: Option<String>) -> Households {
        HouseholdServiceClient::with_interceptor(
            self.channel().await,
            Bearer(bearer.unwrap_or_default()),
        )
    }

    pub async fn households(&self, role: Role, scope: &[&str]) -> Households {
        self.households_with(Some(self.token(role, scope))).await
    }

    pub async fn admin(&self) -> Households {
        self.households(Role::Admin, &["*"]).await
    }

    pub async fn reviews(&self, role: Role, scope: &[&str]) -> Reviews {
        ReviewServiceClient::with_interceptor(self.channel().await, Bearer(self.token(role, scope)))
    }

    pub async fn units(&self, role: Role) -> Units {
        AdminUnitServiceClient::with_interceptor(
            self.channel().await,
            Bearer(self.token(role, &["*"])),
        )
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(self) {
        self.running.stop().await.expect("server ran cleanly");
    }
}

/// A valid member; `citizen_id` may be empty.
pub fn member(
    name: &str,
    relation: pb::Relation,
    birth: &str,
    sex: pb::Sex,
    ethnicity: &str,
    citizen_id: &str,
) -> pb::Member {
    pb::Member {
        full_name: name.into(),
        birth_date: birth.into(),
        sex: sex as i32,
        ethnicity_code: ethnicity.into(),
        relation: relation as i32,
        citizen_id: citizen_id.into(),
        has_disability: false,
        health_insurance: pb::HealthInsurance::Insured as i32,
        ..Default::default()
    }
}

/// A Tày household of three in Hưng Đạo commune (06067), Bình Gia district (181),
/// registered in 2022.
pub fn household(head_name: &str, head_citizen_id: &str) -> pb::Household {
    household_in("06067", "2022-05-01", head_name, head_citizen_id)
}

pub fn household_in(
    commune: &str,
    registered_on: &str,
    head_name: &str,
    head_citizen_id: &str,
) -> pb::Household {
    pb::Household {
        address: Some(pb::Address {
            commune_code: commune.into(),
            village: "Bản Nà Lại".into(),
            residence: pb::Residence::Rural as i32,
        }),
        registered_on: registered_on.into(),
        members: vec![
            member(
                head_name,
                pb::Relation::Head,
                "1985-03-02",
                pb::Sex::Male,
                "02",
                head_citizen_id,
            ),
            member(
                "Hoàng Thị Mai",
                pb::Relation::Spouse,
                "1987-07-15",
                pb::Sex::Female,
                "07",
                "",
            ),
            member(
                "Nguyễn Văn Bình",
                pb::Relation::Child,
                "2012-09-01",
                pb::Sex::Male,
                "02",
                "",
            ),
        ],
        ..Default::default()
    }
}

pub async fn create(
    client: &mut Households,
    h: pb::Household,
) -> Result<pb::Household, tonic::Status> {
    client
        .create_household(pb::CreateHouseholdRequest {
            household: Some(h),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().household.expect("household in response"))
}

pub async fn get(client: &mut Households, id: &str) -> Result<pb::Household, tonic::Status> {
    client
        .get_household(pb::GetHouseholdRequest { id: id.into() })
        .await
        .map(|r| r.into_inner().household.expect("household in response"))
}

/// Updates the fields named in `paths` from `h`, which carries the id and etag.
pub async fn update(
    client: &mut Households,
    h: pb::Household,
    paths: &[&str],
    request_id: &str,
) -> Result<pb::Household, tonic::Status> {
    client
        .update_household(pb::UpdateHouseholdRequest {
            household: Some(h),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            }),
            request_id: request_id.into(),
        })
        .await
        .map(|r| r.into_inner().household.expect("household in response"))
}

/// Field paths of a status's BadRequest violations.
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

pub fn unit_filter(code: &str) -> Option<pb::HouseholdFilter> {
    Some(pb::HouseholdFilter {
        unit_code: code.into(),
        ..Default::default()
    })
}

pub async fn count(client: &mut Households, filter: Option<pb::HouseholdFilter>) -> i64 {
    client
        .count_households(pb::CountHouseholdsRequest { filter })
        .await
        .expect("count")
        .into_inner()
        .count
}

/// The village meeting's approval of `r`, held in November of its year.
pub fn approval(r: &pb::Review, agreement_percent: i32) -> pb::ApproveReviewRequest {
    let year = r.input.as_ref().map(|i| i.year).unwrap_or_default();
    pb::ApproveReviewRequest {
        review_id: r.id.clone(),
        etag: r.etag.clone(),
        meeting_date: format!("{year}-11-20"),
        agreement_percent,
        request_id: String::new(),
    }
}

/// The commune's decision certifying `r`, in December of its year.
pub fn certification(r: &pb::Review) -> pb::CertifyReviewRequest {
    let year = r.input.as_ref().map(|i| i.year).unwrap_or_default();
    pb::CertifyReviewRequest {
        review_id: r.id.clone(),
        etag: r.etag.clone(),
        decision_number: format!("{year}/QĐ-UBND"),
        decision_date: format!("{year}-12-10"),
        request_id: String::new(),
    }
}
