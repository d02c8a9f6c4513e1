//! The gateway's dashboard over the registry, the programmes service and the
//! ledger as real servers: its figures are the backends' own, a backend that
//! is down or silent leaves its section marked unavailable within the
//! caller's deadline while the others answer, and scope holds through it.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sustain_platform::Role;
use sustain_platform::config::{Config, Secrets};
use sustain_proto::gateway::v1 as gw;
use sustain_proto::gateway::v1::report_service_client::ReportServiceClient;
use sustain_proto::ledger::v1 as ledger;
use sustain_proto::ledger::v1::account_service_client::AccountServiceClient;
use sustain_proto::ledger::v1::funding_service_client::FundingServiceClient;
use sustain_proto::ledger::v1::transfer_service_client::TransferServiceClient;
use sustain_proto::programs::v1 as programs;
use sustain_proto::programs::v1::programme_summary_service_client::ProgrammeSummaryServiceClient;
use sustain_proto::registry::v1 as registry;
use sustain_proto::registry::v1::review_service_client::ReviewServiceClient;
use sustain_testkit::server::{Bearer, Running};
use sustain_testkit::{FIELD_KEY, JWT_SECRET, LOOKUP_KEY, TestDatabase, token};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Authed = InterceptedService<Channel, Bearer>;

fn secrets() -> Secrets {
    sustain_testkit::secrets()
}

fn config(url: &str) -> Config {
    let mut config = Config::defaults(0);
    config.database_url = url.to_owned();
    config.shutdown_grace_secs = 0;
    config.auth.jwt_secret = Some(B64.encode(JWT_SECRET));
    config.crypto.field_key = Some(B64.encode(FIELD_KEY));
    config.crypto.lookup_key = Some(B64.encode(LOOKUP_KEY));
    config
}

struct Suite {
    registry: Running,
    programs: Running,
    ledger: Option<Running>,
    _dbs: Vec<TestDatabase>,
}

impl Suite {
    /// The three backends, the registry loaded with a small demo and the
    /// ledger with some of Binh Gia's money.
    async fn start() -> Suite {
        let dbs = vec![
            TestDatabase::new().await.expect("db"),
            TestDatabase::new().await.expect("db"),
            TestDatabase::new().await.expect("db"),
        ];
        let registry_config = config(&dbs[0].url);
        sustain_registry::demo_cli::run(&registry_config, 7, 1_500, None, false)
            .await
            .expect("registry demo");
        let registry = Running::start(
            move |listener, stopped| async move {
                sustain_registry::run(&registry_config, &secrets(), listener, async {
                    let _ = stopped.await;
                })
                .await
            },
            "sustain.registry.v1.ReviewService",
        )
        .await
        .expect("registry");
        let mut programs_config = config(&dbs[1].url);
        programs_config.registry.url = format!("http://{}", registry.addr);
        let programs = Running::start(
            move |listener, stopped| async move {
                sustain_programs::run(&programs_config, &secrets(), listener, async {
                    let _ = stopped.await;
                })
                .await
            },
            "sustain.programs.v1.LivelihoodService",
        )
        .await
        .expect("programs");
        let ledger_config = config(&dbs[2].url);
        let ledger = Running::start(
            move |listener, stopped| async move {
                sustain_ledger::run(&ledger_config, &secrets(), listener, async {
                    let _ = stopped.await;
                })
                .await
            },
            "sustain.ledger.v1.TransferService",
        )
        .await
        .expect("ledger");
        let suite = Suite {
            registry,
            programs,
            ledger: Some(ledger),
            _dbs: dbs,
        };
        suite.fund().await;
        suite
    }

    /// A small share of the programme demo, written through the APIs.
    async fn programme_demo(&self) {
        let mut clients = sustain_programs::demo::Clients::new(
            self.registry.channel().await.expect("registry"),
            self.programs.channel().await.expect("programs"),
            &token(Role::Admin, &["*"]),
        )
        .expect("clients");
        let report = sustain_programs::demo::load(
            &mut clients,
            sustain_programs::demo::DEFAULT_SEED,
            &sustain_programs::demo::LANG_SON.scaled(100),
            false,
        )
        .await
        .expect("programme demo");
        assert!(report.models > 0 && report.enrolments > 0);
    }

    async fn authed(running: &Running, role: Role, scope: &[&str]) -> Authed {
        InterceptedService::new(
            running.channel().await.expect("connect"),
            Bearer(token(role, scope)),
        )
    }

    async fn fund(&self) {
        let ledger = self.ledger.as_ref().expect("ledger");
        let accounts =
            AccountServiceClient::new(Self::authed(ledger, Role::Finance, &["20"]).await);
        let open = |kind: ledger::AccountKind, unit: &str, project: &str, year: i32| {
            let request = ledger::CreateAccountRequest {
                account: Some(ledger::Account {
                    kind: kind as i32,
                    source: ledger::FundingSource::CentralInvestment as i32,
                    name: format!("{kind:?} {unit}"),
                    project_code: project.into(),
                    unit_code: unit.into(),
                    year,
                    ..Default::default()
                }),
                request_id: String::new(),
            };
            let mut client = accounts.clone();
            async move {
                client
                    .create_account(request)
                    .await
                    .expect("account")
                    .into_inner()
                    .account
                    .expect("account")
                    .id
            }
        };
        let source = open(ledger::AccountKind::Source, "20", "", 0).await;
        let plan = open(ledger::AccountKind::Plan, "20", "NTP-SPR.3", 2023).await;
        let allocation = open(ledger::AccountKind::Allocation, "181", "NTP-SPR.3", 2023).await;
        let mut transfers =
            TransferServiceClient::new(Self::authed(ledger, Role::Finance, &["20"]).await);
        let leg = |debit: &str, credit: &str, amount: i64| ledger::Transfer {
            id: uuid::Uuid::now_v7().to_string(),
            debit_account_id: debit.into(),
            credit_account_id: credit.into(),
            amount_vnd: amount,
            value_date: "2023-05-01".into(),
            ..Default::default()
        };
        transfers
            .create_transfers(ledger::CreateTransfersRequest {
                transfers: vec![leg(&source, &plan, 900), leg(&plan, &allocation, 600)],
            })
            .await
            .expect("transfers");
    }

    async fn gateway(&self, programs_url: Option<String>) -> Running {
        self.gateway_with_http(programs_url).await.0
    }

    /// The gateway and the address of its HTTP reports.
    async fn gateway_with_http(
        &self,
        programs_url: Option<String>,
    ) -> (Running, std::net::SocketAddr) {
        let mut config = config("sqlite::memory:");
        config.registry.url = format!("http://{}", self.registry.addr);
        config.programs.url =
            programs_url.unwrap_or_else(|| format!("http://{}", self.programs.addr));
        config.ledger.url = match &self.ledger {
            Some(l) => format!("http://{}", l.addr),
            // A port nobody listens on.
            None => "http://127.0.0.1:1".into(),
        };
        let http = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind http");
        let http_addr = http.local_addr().expect("http addr");
        let running = Running::start(
            move |listener, stopped| async move {
                sustain_gateway::run(&config, &secrets(), listener, http, async {
                    let _ = stopped.await;
                })
                .await
            },
            "sustain.gateway.v1.ReportService",
        )
        .await
        .expect("gateway");
        (running, http_addr)
    }
}

async fn dashboard(
    gateway: &Running,
    role: Role,
    scope: &[&str],
    unit: &str,
    deadline: Option<Duration>,
) -> Result<gw::Dashboard, tonic::Status> {
    let mut client = ReportServiceClient::new(Suite::authed(gateway, role, scope).await);
    let mut request = tonic::Request::new(gw::GetDashboardRequest {
        unit_code: unit.into(),
        from_year: 2021,
        to_year: 2024,
    });
    if let Some(d) = deadline {
        request.set_timeout(d);
    }
    client
        .get_dashboard(request)
        .await
        .map(|r| r.into_inner().dashboard.expect("dashboard"))
}

#[tokio::test]
async fn the_dashboard_shows_the_backends_own_figures_and_survives_a_backend_down() {
    let mut suite = Suite::start().await;
    let gateway = suite.gateway(None).await;
    let d = dashboard(&gateway, Role::Admin, &["*"], "20", None)
        .await
        .expect("dashboard");

    // Poverty: the registry's own summaries, year by year.
    let poverty = d.poverty.expect("poverty");
    assert!(poverty.unavailable.is_none(), "{:?}", poverty.unavailable);
    let mut reviews =
        ReviewServiceClient::new(Suite::authed(&suite.registry, Role::Admin, &["*"]).await);
    let mut own = vec![];
    for year in 2021..=2024 {
        own.push(
            reviews
                .get_poverty_summary(registry::GetPovertySummaryRequest {
                    unit_code: "20".into(),
                    year,
                    unassigned_from: String::new(),
                })
                .await
                .expect("summary")
                .into_inner()
                .summary
                .expect("summary"),
        );
    }
    assert_eq!(poverty.years, own);
    assert_eq!(
        poverty.years[0].poor.as_ref().expect("poor").percent,
        "12.2"
    );

    let programmes = d.programmes.expect("programmes");
    let own = ProgrammeSummaryServiceClient::new(
        Suite::authed(&suite.programs, Role::Admin, &["*"]).await,
    )
    .get_programme_summary(programs::GetProgrammeSummaryRequest {
        unit_code: "20".into(),
        from_year: 2021,
        to_year: 2024,
    })
    .await
    .expect("programme summary")
    .into_inner()
    .summary;
    assert_eq!(programmes.summary, own);

    let funding = d.funding.expect("funding");
    let ledger = suite.ledger.as_ref().expect("ledger");
    let own = FundingServiceClient::new(Suite::authed(ledger, Role::Admin, &["*"]).await)
        .get_funding_summary(ledger::GetFundingSummaryRequest {
            unit_code: "20".into(),
            from_year: 2021,
            to_year: 2024,
        })
        .await
        .expect("funding summary")
        .into_inner()
        .summary;
    assert_eq!(funding.summary, own);
    let total = funding.summary.expect("summary").total.expect("total");
    assert_eq!((total.planned_vnd, total.allocated_vnd), (900, 600));

    // The ledger goes down: its section says so, the others still answer.
    suite
        .ledger
        .take()
        .expect("ledger")
        .stop()
        .await
        .expect("stopped");
    let d = dashboard(
        &gateway,
        Role::Admin,
        &["*"],
        "20",
        Some(Duration::from_secs(5)),
    )
    .await
    .expect("dashboard");
    let funding = d.funding.expect("funding");
    assert!(funding.summary.is_none(), "no invented figures");
    assert_eq!(funding.unavailable.expect("why").code, "UNAVAILABLE");
    assert!(d.poverty.expect("poverty").unavailable.is_none());
    assert!(d.programmes.expect("programmes").unavailable.is_none());
    gateway.stop().await.expect("gateway stopped");
}

#[tokio::test]
async fn a_silent_backend_costs_no_more_than_the_callers_deadline() {
    let suite = Suite::start().await;
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let _holder = tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let gateway = suite.gateway(Some(format!("http://{silent_addr}"))).await;
    let started = Instant::now();
    let d = dashboard(
        &gateway,
        Role::Viewer,
        &["20"],
        "20",
        Some(Duration::from_millis(1_500)),
    )
    .await
    .expect("dashboard");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1_500), "took {took:?}");
    let programmes = d.programmes.expect("programmes");
    assert!(programmes.summary.is_none());
    assert_eq!(
        programmes.unavailable.expect("why").code,
        "DEADLINE_EXCEEDED"
    );
    assert_eq!(d.poverty.expect("poverty").years.len(), 4);
    assert!(d.funding.expect("funding").unavailable.is_none());
}

#[tokio::test]
async fn a_backend_that_dies_mid_call_leaves_its_section_unavailable_at_once() {
    let suite = Suite::start().await;
    // Takes the call, reads what the gateway sends, then goes away as a
    // killed process would: the connection closes with the call in flight.
    let dying = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dying_addr = dying.local_addr().expect("addr");
    let _killer = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        while let Ok((mut socket, _)) = dying.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                drop(socket);
            });
        }
    });
    let gateway = suite.gateway(Some(format!("http://{dying_addr}"))).await;
    let started = Instant::now();
    let d = dashboard(
        &gateway,
        Role::Viewer,
        &["20"],
        "20",
        Some(Duration::from_secs(5)),
    )
    .await
    .expect("dashboard");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let programmes = d.programmes.expect("programmes");
    assert!(programmes.summary.is_none(), "no invented figures");
    let why = programmes.unavailable.expect("why");
    assert_eq!(why.code, "UNAVAILABLE", "{why:?}");
    assert!(
        why.reason
            .starts_with("programs: the connection was lost during the call"),
        "{why:?}"
    );
    assert_eq!(d.poverty.expect("poverty").years.len(), 4);
    assert!(d.funding.expect("funding").unavailable.is_none());
}

#[tokio::test]
async fn scope_and_roles_hold_through_the_gateway() {
    let suite = Suite::start().await;
    let gateway = suite.gateway(None).await;
    // Another district's dashboard: refused by the gateway itself.
    let refused = dashboard(&gateway, Role::Viewer, &["180"], "181", None)
        .await
        .expect_err("other district");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = dashboard(&gateway, Role::Enumerator, &["20"], "20", None)
        .await
        .expect_err("enumerators read no reports");
    assert_eq!(refused.code(), Code::PermissionDenied);
    // A district's own dashboard holds its figures only; the ledger's money
    // for 181 shows, the province's plan does not.
    let own = dashboard(&gateway, Role::Viewer, &["181"], "181", None)
        .await
        .expect("own district");
    let funding = own.funding.expect("funding").summary.expect("summary");
    let total = funding.total.expect("total");
    assert_eq!((total.planned_vnd, total.allocated_vnd), (0, 600));
    let poverty = own.poverty.expect("poverty");
    assert!(poverty.years.iter().all(|y| y.unit_code == "181"));
    // Bad input is named.
    let mut client = ReportServiceClient::new(Suite::authed(&gateway, Role::Viewer, &["20"]).await);
    let bad = client
        .get_dashboard(gw::GetDashboardRequest {
            unit_code: "nowhere".into(),
            from_year: 2024,
            to_year: 2021,
        })
        .await
        .expect_err("bad request");
    assert_eq!(bad.code(), Code::InvalidArgument);
}

/// A plain HTTP/1.1 GET over a socket: (status, content type, body).
async fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.expect("send");
    let mut raw = vec![];
    socket.read_to_end(&mut raw).await.expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, raw[split + 4..].to_vec())
}

/// Creates a household in 06622 (split in 2025) and certifies its 2025
/// review; its id.
async fn split_commune_household_reviewed_in_2025(suite: &Suite) -> String {
    let channel = Suite::authed(&suite.registry, Role::Admin, &["20"]).await;
    let mut households =
        registry::household_service_client::HouseholdServiceClient::new(channel.clone());
    let mut reviews = ReviewServiceClient::new(channel);
    let member = registry::Member {
        full_name: "Vi Văn Tách".into(),
        birth_date: "1980-02-03".into(),
        sex: registry::Sex::Male as i32,
        ethnicity_code: "02".into(),
        relation: registry::Relation::Head as i32,
        health_insurance: registry::HealthInsurance::Insured as i32,
        ..Default::default()
    };
    let household = households
        .create_household(registry::CreateHouseholdRequest {
            household: Some(registry::Household {
                address: Some(registry::Address {
                    commune_code: "06622".into(),
                    village: "Thôn Khe Lạn".into(),
                    residence: registry::Residence::Rural as i32,
                }),
                registered_on: "2020-01-15".into(),
                members: vec![member],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("created")
        .into_inner()
        .household
        .expect("household");
    assert_eq!(household.current_commune_code, "", "no part guessed");
    let review = reviews
        .record_review(registry::RecordReviewRequest {
            household_id: household.id.clone(),
            review: Some(registry::ReviewInput {
                year: 2025,
                kind: registry::ReviewKind::Periodic as i32,
                deprived_indicators: vec!["latrine".into(), "domestic_water".into()],
                income_per_person_month: Some(1_000_000),
                reviewer: "Lý Văn Sáu".into(),
                reviewed_on: "2025-10-15".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("recorded")
        .into_inner()
        .review
        .expect("review");
    let review = reviews
        .approve_review(registry::ApproveReviewRequest {
            review_id: review.id,
            etag: review.etag,
            meeting_date: "2025-11-20".into(),
            agreement_percent: 80,
            request_id: String::new(),
        })
        .await
        .expect("approved")
        .into_inner()
        .review
        .expect("review");
    reviews
        .certify_review(registry::CertifyReviewRequest {
            review_id: review.id,
            etag: review.etag,
            decision_number: "2025/QĐ-UBND".into(),
            decision_date: "2025-12-10".into(),
            request_id: String::new(),
        })
        .await
        .expect("certified");
    household.id
}

async fn registry_summary(suite: &Suite, unit: &str, year: i32) -> registry::PovertySummary {
    ReviewServiceClient::new(Suite::authed(&suite.registry, Role::Admin, &["*"]).await)
        .get_poverty_summary(registry::GetPovertySummaryRequest {
            unit_code: unit.into(),
            year,
            unassigned_from: String::new(),
        })
        .await
        .expect("summary")
        .into_inner()
        .summary
        .expect("summary")
}

#[tokio::test]
async fn reports_over_http_as_json_csv_and_xlsx() {
    use calamine::{DataType, Reader};
    let suite = Suite::start().await;
    let (_gateway, http) = suite.gateway_with_http(None).await;
    let admin = token(Role::Admin, &["*"]);
    let period = "unit_code=20&from_year=2021&to_year=2024";

    let (status, kind, body) =
        http_get(http, &format!("/api/v1/dashboard?{period}"), Some(&admin)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(kind.starts_with("application/json"), "{kind}");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(json["poverty"]["years"][0]["poor"]["percent"], "12.2");
    assert_eq!(json["funding"]["summary"]["total"]["plannedVnd"], "900");

    // No token outside development mode; a period missing a year; a unit out of scope.
    let (status, _, _) = http_get(http, &format!("/api/v1/dashboard?{period}"), None).await;
    assert_eq!(status, 401);
    let (status, _, body) = http_get(
        http,
        "/api/v1/dashboard?unit_code=20&from_year=2021",
        Some(&admin),
    )
    .await;
    assert_eq!(status, 400);
    let problem: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(problem["field_violations"][0]["field"], "to_year");
    let district = token(Role::Viewer, &["180"]);
    let (status, _, _) = http_get(
        http,
        "/api/v1/poverty.csv?unit_code=181&from_year=2021&to_year=2024",
        Some(&district),
    )
    .await;
    assert_eq!(status, 403);

    let province_2021 = registry_summary(&suite, "20", 2021).await;
    let binh_gia_2024 = registry_summary(&suite, "181", 2024).await;

    let (status, kind, body) =
        http_get(http, &format!("/api/v1/poverty.csv?{period}"), Some(&admin)).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/csv"), "{kind}");
    let text = String::from_utf8(body).expect("utf-8");
    let text = text
        .strip_prefix('\u{feff}')
        .expect("a byte-order mark, so Excel reads UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(
            "Mã đơn vị,Đơn vị,Hộ nghèo 2021,Hộ được rà soát 2021,Tỷ lệ hộ nghèo 2021 (%)"
        ),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines.len(),
        1 + 11 + 1,
        "the eleven districts and the province's total"
    );
    let total: Vec<&str> = lines[12].split(',').collect();
    assert_eq!(total[0], "20");
    assert_eq!(total[4], province_2021.poor.clone().expect("poor").percent);
    // For Excel under a Vietnamese locale: semicolons, a decimal comma.
    let (_, _, body) = http_get(
        http,
        &format!("/api/v1/poverty.csv?{period}&excel=1"),
        Some(&admin),
    )
    .await;
    let excel = String::from_utf8(body).expect("utf-8");
    let excel_lines: Vec<&str> = excel.trim_start_matches('\u{feff}').lines().collect();
    assert!(excel_lines[0].starts_with("Mã đơn vị;Đơn vị;Hộ nghèo 2021;"));
    let total: Vec<&str> = excel_lines[12].split(';').collect();
    assert_eq!(
        total[4],
        province_2021
            .poor
            .clone()
            .expect("poor")
            .percent
            .replace('.', ",")
    );

    let (status, kind, body) = http_get(
        http,
        &format!("/api/v1/poverty.xlsx?{period}"),
        Some(&admin),
    )
    .await;
    assert_eq!(status, 200);
    assert!(kind.contains("spreadsheetml"), "{kind}");
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(body)).expect("an XLSX calamine reads");
    let sheet = book.worksheet_range("Hộ nghèo").expect("the sheet");
    assert_eq!(sheet.height(), 13);
    assert_eq!(
        sheet.get_value((0, 4)).map(|c| c.to_string()),
        Some("Tỷ lệ hộ nghèo 2021 (%)".into())
    );
    let row_181 = (1..13)
        .find(|r| sheet.get_value((*r, 0)).map(|c| c.to_string()) == Some("181".into()))
        .expect("Binh Gia's row");
    let poor_2024 = binh_gia_2024.poor.clone().expect("poor");
    // 2024 is the fourth year: its five columns start at 2 + 3 × 5.
    let cell = |col: u32| sheet.get_value((row_181, col)).and_then(|c| c.as_f64());
    assert_eq!(cell(17), Some(poor_2024.count as f64));
    assert_eq!(cell(18), Some(binh_gia_2024.households_reviewed as f64));
    assert_eq!(
        cell(19),
        Some(poor_2024.percent.parse::<f64>().expect("a rate"))
    );
    assert_eq!(
        sheet.get_value((12, 1)).map(|c| c.to_string()),
        Some(province_2021.unit_name.clone())
    );

    // The report page: the figures in HTML, charts as SVG, no script.
    let (status, kind, body) = http_get(http, &format!("/reports?{period}"), Some(&admin)).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/html"), "{kind}");
    let page = String::from_utf8(body).expect("utf-8");
    assert!(page.contains("Báo cáo giảm nghèo bền vững — Tỉnh Lạng Sơn"));
    for year in &json["poverty"]["years"].as_array().expect("years").clone() {
        let rate = year["poor"]["percent"].as_str().expect("rate");
        // Written the Vietnamese way: 12.2 is "12,20 %".
        let shown = sustain_gateway::page::percent_vi(rate);
        assert!(shown.ends_with(" %") && shown.contains(','), "{shown}");
        assert!(page.contains(&shown), "rate {rate} on the page as {shown}");
    }
    assert!(
        page.matches("<svg").count() >= 3,
        "charts drawn on the server"
    );
    assert!(!page.contains("<script"));
    // The same figures as downloads, linked from the page.
    let link = "/api/v1/poverty.xlsx?unit_code=20&amp;from_year=2021&amp;to_year=2024&amp;breakdown=communes";
    assert!(page.contains(link), "the page links the commune table");
    let (status, kind, body) = http_get(http, &link.replace("&amp;", "&"), Some(&admin)).await;
    assert_eq!(status, 200);
    assert!(kind.contains("spreadsheetml"), "{kind}");
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(body)).expect("an XLSX calamine reads");
    let sheet = book.worksheet_range("Hộ nghèo").expect("the sheet");
    assert!(sheet.height() > 100, "every commune: {}", sheet.height());
}

async fn programme_summary(
    suite: &Suite,
    unit: &str,
    from: i32,
    to: i32,
) -> programs::ProgrammeSummary {
    ProgrammeSummaryServiceClient::new(Suite::authed(&suite.programs, Role::Admin, &["*"]).await)
        .get_programme_summary(programs::GetProgrammeSummaryRequest {
            unit_code: unit.into(),
            from_year: from,
            to_year: to,
        })
        .await
        .expect("programme summary")
        .into_inner()
        .summary
        .expect("summary")
}

#[tokio::test]
async fn reports_break_down_by_unit_with_the_services_own_figures() {
    use calamine::{DataType, Reader};
    let suite = Suite::start().await;
    suite.programme_demo().await;
    let (gateway, http) = suite.gateway_with_http(None).await;
    let mut client = ReportServiceClient::new(Suite::authed(&gateway, Role::Viewer, &["20"]).await);

    // Poverty, district by district: each row is the registry's own figure.
    let report = client
        .get_poverty_report(gw::GetPovertyReportRequest {
            unit_code: "20".into(),
            from_year: 2021,
            to_year: 2024,
            breakdown: gw::Breakdown::Children as i32,
        })
        .await
        .expect("poverty report")
        .into_inner()
        .report
        .expect("report");
    assert_eq!(report.units.len(), 11, "Lạng Sơn's eleven districts");
    let mut own = vec![];
    for year in 2021..=2024 {
        own.push(registry_summary(&suite, "20", year).await);
    }
    assert_eq!(report.years, own);
    let total = report.total.clone().expect("total");
    assert_eq!(total.years[0].poor, own[0].poor);
    let binh_gia = report
        .units
        .iter()
        .find(|r| r.unit_code == "181")
        .expect("Bình Gia");
    for cell in &binh_gia.years {
        let s = registry_summary(&suite, "181", cell.year).await;
        assert_eq!(cell.poor, s.poor, "{}", cell.year);
        assert_eq!(cell.near_poor, s.near_poor, "{}", cell.year);
        assert_eq!(cell.households_reviewed, s.households_reviewed);
    }
    assert_eq!(binh_gia.unit_name, "Huyện Bình Gia");

    // A household of a commune the reform split (06622 Bính Xá), its
    // village not yet assigned to a part, reviewed in 2025.
    let split = split_commune_household_reviewed_in_2025(&suite).await;

    // A year after the 2025 reform is reported by the units in force at its
    // end: the 65 communes, no district, and a row of the households no
    // commune holds yet.
    let after = client
        .get_poverty_report(gw::GetPovertyReportRequest {
            unit_code: "20".into(),
            from_year: 2025,
            to_year: 2025,
            breakdown: gw::Breakdown::Children as i32,
        })
        .await
        .expect("2025 report")
        .into_inner()
        .report
        .expect("report");
    let (in_force, unassigned): (Vec<&gw::PovertyRow>, Vec<&gw::PovertyRow>) =
        after.units.iter().partition(|r| !r.unassigned);
    assert_eq!(in_force.len(), 65, "Lạng Sơn's communes after the reform");
    let from_06622 = unassigned
        .iter()
        .find(|r| r.unit_code == "06622")
        .expect("the row of 06622's unassigned households");
    assert_eq!(
        from_06622.unit_name,
        "Từ 06622 Xã Bính Xá, chưa phân về đơn vị mới"
    );
    assert!(from_06622.years[0].households_reviewed >= 1, "{split}");
    let reviewed: i64 = after
        .units
        .iter()
        .map(|r| r.years[0].households_reviewed)
        .sum();
    assert_eq!(
        reviewed, after.years[0].households_reviewed,
        "the rows hold every household"
    );
    let end = chrono::NaiveDate::from_ymd_opt(2025, 12, 31).expect("date");
    for row in in_force {
        let unit = sustain_domain::admin::catalog()
            .get(&row.unit_code, end)
            .unwrap_or_else(|| panic!("{} in force at the end of 2025", row.unit_code));
        assert_eq!(unit.level, sustain_domain::admin::Level::Commune);
    }

    // Every commune: the communes' poor households add up to the province's.
    let communes = client
        .get_poverty_report(gw::GetPovertyReportRequest {
            unit_code: "20".into(),
            from_year: 2021,
            to_year: 2022,
            breakdown: gw::Breakdown::Communes as i32,
        })
        .await
        .expect("by commune")
        .into_inner()
        .report
        .expect("report");
    assert!(communes.units.len() > 100, "{}", communes.units.len());
    assert!(communes.units.iter().all(|r| r.unit_code.len() == 5));
    let poor_2021: i64 = communes
        .units
        .iter()
        .map(|r| r.years[0].poor.as_ref().map_or(0, |p| p.count))
        .sum();
    assert_eq!(poor_2021, own[0].poor.as_ref().expect("poor").count);

    // Programmes: the period as the service counts it, and each year's cell
    // the service's summary of that one year.
    let programmes = client
        .get_programme_report(gw::GetProgrammeReportRequest {
            unit_code: "20".into(),
            from_year: 2021,
            to_year: 2024,
            breakdown: gw::Breakdown::Children as i32,
        })
        .await
        .expect("programme report")
        .into_inner()
        .report
        .expect("report");
    assert_eq!(
        programmes.period,
        Some(programme_summary(&suite, "20", 2021, 2024).await)
    );
    let province = programmes.total.clone().expect("total");
    for cell in &province.years {
        let s = programme_summary(&suite, "20", cell.year, cell.year).await;
        let models = s.models.expect("models");
        assert_eq!(
            (cell.models, cell.enrolled_households, cell.model_budget_vnd),
            (models.models, models.enrolled_households, models.budget_vnd)
        );
        assert_eq!(cell.trainees, s.training.expect("training").trainees);
    }
    assert!(
        province.years.iter().any(|c| c.models > 0),
        "the demo's models"
    );
    let with_models = programmes
        .units
        .iter()
        .find(|r| r.years.iter().any(|c| c.models > 0))
        .expect("a district with models");
    let s = programme_summary(&suite, &with_models.unit_code, 2021, 2021).await;
    assert_eq!(
        with_models.years[0].models,
        s.models.expect("models").models
    );

    // Funding: Bình Gia's 600 allocated in 2023, the province's 900 planned.
    let funding = client
        .get_funding_report(gw::GetFundingReportRequest {
            unit_code: "20".into(),
            from_year: 2021,
            to_year: 2024,
            breakdown: gw::Breakdown::Children as i32,
        })
        .await
        .expect("funding report")
        .into_inner()
        .report
        .expect("report");
    let ledger = suite.ledger.as_ref().expect("ledger");
    let own_funding = FundingServiceClient::new(Suite::authed(ledger, Role::Admin, &["*"]).await)
        .get_funding_summary(ledger::GetFundingSummaryRequest {
            unit_code: "20".into(),
            from_year: 2021,
            to_year: 2024,
        })
        .await
        .expect("funding summary")
        .into_inner()
        .summary;
    assert_eq!(funding.period, own_funding);
    let figures = |row: &gw::FundingRow, year: i32| {
        row.years
            .iter()
            .find(|c| c.year == year)
            .and_then(|c| c.figures.clone())
            .expect("the year")
    };
    let row_181 = funding
        .units
        .iter()
        .find(|r| r.unit_code == "181")
        .expect("Bình Gia");
    assert_eq!(figures(row_181, 2023).allocated_vnd, 600);
    assert_eq!(figures(row_181, 2022).allocated_vnd, 0);
    let total = funding.total.clone().expect("total");
    assert_eq!(figures(&total, 2023).planned_vnd, 900);
    // Across the reform the rows are the communes of 2025 and, beside them,
    // the district that holds money: nothing drops out of the table.
    let across = client
        .get_funding_report(gw::GetFundingReportRequest {
            unit_code: "20".into(),
            from_year: 2021,
            to_year: 2025,
            breakdown: gw::Breakdown::Children as i32,
        })
        .await
        .expect("funding report across the reform")
        .into_inner()
        .report
        .expect("report");
    assert!(
        across
            .units
            .iter()
            .filter(|r| r.unit_code.len() == 5)
            .count()
            > 11
    );
    let row_181 = across
        .units
        .iter()
        .find(|r| r.unit_code == "181")
        .expect("Bình Gia, which holds money");
    assert_eq!(figures(row_181, 2023).allocated_vnd, 600);

    // Scope holds for every report; a district reads its own communes.
    let mut district =
        ReportServiceClient::new(Suite::authed(&gateway, Role::Viewer, &["181"]).await);
    let refused = district
        .get_funding_report(gw::GetFundingReportRequest {
            unit_code: "20".into(),
            from_year: 2021,
            to_year: 2024,
            breakdown: 0,
        })
        .await
        .expect_err("the province is out of scope");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let own = district
        .get_poverty_report(gw::GetPovertyReportRequest {
            unit_code: "181".into(),
            from_year: 2024,
            to_year: 2024,
            breakdown: 0,
        })
        .await
        .expect("own district")
        .into_inner()
        .report
        .expect("report");
    assert_eq!(own.years, vec![registry_summary(&suite, "181", 2024).await]);
    // The registry decides each commune: Hoa Thám's code 06073 now also
    // names a commune reaching outside Bình Gia, so a district token may not
    // read it, and the table is refused rather than shown with a hole.
    let refused = district
        .get_poverty_report(gw::GetPovertyReportRequest {
            unit_code: "181".into(),
            from_year: 2024,
            to_year: 2024,
            breakdown: gw::Breakdown::Communes as i32,
        })
        .await
        .expect_err("a commune code reaching outside the district");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("06073"), "{}", refused.message());
    let bad = district
        .get_programme_report(gw::GetProgrammeReportRequest {
            unit_code: "181".into(),
            from_year: 2024,
            to_year: 2024,
            breakdown: 9,
        })
        .await
        .expect_err("no such breakdown");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("breakdown"), "{}", bad.message());

    // The same tables over HTTP: JSON, and XLSX with the totals row last.
    let admin = token(Role::Admin, &["*"]);
    let (status, kind, body) = http_get(
        http,
        "/api/v1/reports/funding?unit_code=20&from_year=2021&to_year=2024&breakdown=children",
        Some(&admin),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(kind.starts_with("application/json"), "{kind}");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(json["period"]["total"]["plannedVnd"], "900");
    assert_eq!(json["units"].as_array().map(Vec::len), Some(11));
    let (status, _, body) = http_get(
        http,
        "/api/v1/reports/poverty?unit_code=20&from_year=2021&to_year=2021&breakdown=villages",
        Some(&admin),
    )
    .await;
    assert_eq!(status, 400);
    let problem: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(problem["field_violations"][0]["field"], "breakdown");

    let (status, kind, body) = http_get(
        http,
        "/api/v1/programmes.xlsx?unit_code=20&from_year=2021&to_year=2024",
        Some(&admin),
    )
    .await;
    assert_eq!(status, 200);
    assert!(kind.contains("spreadsheetml"), "{kind}");
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(body)).expect("an XLSX calamine reads");
    let sheet = book.worksheet_range("Chương trình").expect("the sheet");
    assert_eq!(sheet.height(), 1 + 11 + 1);
    assert_eq!(
        sheet.get_value((0, 2)).map(|c| c.to_string()),
        Some("Mô hình 2021".into())
    );
    assert_eq!(
        sheet.get_value((12, 0)).map(|c| c.to_string()),
        Some("20".into())
    );
    for (k, cell) in province.years.iter().enumerate() {
        let col = 2 + 5 * k as u32;
        let number = |c: u32| sheet.get_value((12, c)).and_then(|v| v.as_f64());
        assert_eq!(number(col), Some(cell.models as f64), "{}", cell.year);
        assert_eq!(number(col + 1), Some(cell.enrolled_households as f64));
        assert_eq!(number(col + 4), Some(cell.trainees as f64));
    }

    let (status, kind, body) = http_get(
        http,
        "/api/v1/funding.csv?unit_code=20&from_year=2023&to_year=2023",
        Some(&admin),
    )
    .await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/csv"), "{kind}");
    let text = String::from_utf8(body).expect("utf-8");
    let lines: Vec<&str> = text.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(
        lines[0],
        "Mã đơn vị,Đơn vị,Kế hoạch 2023 (đồng),Đã phân bổ 2023 (đồng),Đã giải ngân 2023 (đồng),Tỷ lệ giải ngân 2023 (%)"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("181,Huyện Bình Gia,0,600,0,")),
        "{text}"
    );
    assert!(
        lines[lines.len() - 1].starts_with("20,Tỉnh Lạng Sơn,900,600,0,"),
        "{text}"
    );
}
