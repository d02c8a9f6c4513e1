//! Sector reports (the labour department's and the social insurance office's
//! yearly figures) over a real server: every bad field named and nothing
//! written, one live report per unit, year and kind (under concurrency too),
//! retries answered alike, scope held, and the summary adding the widest
//! units' reports.

mod common;

use common::*;
use sustain_platform::Role;
use sustain_proto::programs::v1 as pb;
use sustain_proto::programs::v1::sector_report::Figures;
use sustain_proto::programs::v1::sector_report_service_client::SectorReportServiceClient;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Sector = SectorReportServiceClient<InterceptedService<Channel, Bearer>>;

async fn sector(suite: &Suite, role: Role, scope: &[&str]) -> Sector {
    client(
        SectorReportServiceClient::new,
        suite.programs.channel().await.expect("connect"),
        role,
        scope,
    )
}

fn labour(unit: &str, year: i32, trainees: i64, workforce: i64, trained: i64) -> pb::SectorReport {
    pb::SectorReport {
        unit_code: unit.into(),
        year,
        source: "Sở Lao động - Thương binh và Xã hội".into(),
        figures: Some(Figures::Labour(pb::LabourFigures {
            vocational_trainees: trainees,
            workforce,
            trained_workers: trained,
            new_jobs: trainees + 1,
            workers_abroad: 3,
        })),
        ..Default::default()
    }
}

fn cards(unit: &str, year: i32, n: i64) -> pb::SectorReport {
    pb::SectorReport {
        unit_code: unit.into(),
        year,
        source: "Bảo hiểm xã hội tỉnh".into(),
        figures: Some(Figures::HealthInsurance(pb::HealthInsuranceFigures {
            cards_issued: n,
        })),
        ..Default::default()
    }
}

async fn create(
    client: &mut Sector,
    report: pb::SectorReport,
    request_id: &str,
) -> Result<pb::SectorReport, tonic::Status> {
    client
        .create_sector_report(pb::CreateSectorReportRequest {
            report: Some(report),
            request_id: request_id.into(),
        })
        .await
        .map(|r| r.into_inner().report.expect("report"))
}

async fn all(client: &mut Sector, unit: &str) -> Vec<pb::SectorReport> {
    client
        .list_sector_reports(pb::ListSectorReportsRequest {
            filter: Some(pb::SectorReportFilter {
                unit_code: unit.into(),
                include_archived: true,
                ..Default::default()
            }),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .expect("list")
        .into_inner()
        .reports
}

#[tokio::test]
async fn every_bad_field_is_named_and_nothing_is_written() {
    let suite = Suite::start().await;
    let mut admin = sector(&suite, Role::Admin, &["*"]).await;
    let bad = create(
        &mut admin,
        pb::SectorReport {
            unit_code: String::new(),
            year: 1999,
            source: " ".into(),
            figures: Some(Figures::Labour(pb::LabourFigures {
                vocational_trainees: -1,
                workforce: 10,
                trained_workers: 11,
                new_jobs: 0,
                workers_abroad: 100_000_001,
            })),
            ..Default::default()
        },
        "",
    )
    .await
    .expect_err("invalid");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&bad),
        [
            "report.year",
            "report.source",
            "report.unit_code",
            "report.labour.vocational_trainees",
            "report.labour.workers_abroad",
            "report.labour.trained_workers",
        ]
    );
    assert!(
        bad.message()
            .contains("report.labour.trained_workers: must not exceed workforce"),
        "the reason is in the message: {}",
        bad.message()
    );
    let no_figures = create(
        &mut admin,
        pb::SectorReport {
            figures: None,
            ..cards("20", 2023, 1)
        },
        "",
    )
    .await
    .expect_err("no figures");
    assert_eq!(violated_fields(&no_figures), ["report.figures"]);
    // A district after the reform, a year to come, an unknown unit.
    for (report, field) in [
        (cards("181", 2025, 5), "report.unit_code"),
        (cards("20", 2100, 5), "report.year"),
        (cards("99999", 2023, 5), "report.unit_code"),
    ] {
        let refused = create(&mut admin, report, "").await.expect_err("refused");
        assert_eq!(violated_fields(&refused), [field], "{}", refused.message());
    }
    assert!(all(&mut admin, "20").await.is_empty(), "nothing written");
}

#[tokio::test]
async fn one_live_report_per_unit_year_and_kind_and_a_retry_gets_the_first_answer() {
    let suite = Suite::start().await;
    let mut admin = sector(&suite, Role::Admin, &["*"]).await;
    let first = create(&mut admin, labour("181", 2023, 900, 40_000, 23_000), "r-1")
        .await
        .expect("created");
    assert_eq!(first.kind, pb::SectorReportKind::Labour as i32);
    let again = create(&mut admin, labour("181", 2023, 900, 40_000, 23_000), "r-1")
        .await
        .expect("retried");
    assert_eq!(again, first, "a retry gets the first answer");
    let second = create(&mut admin, labour("181", 2023, 1, 2, 1), "r-2")
        .await
        .expect_err("one per unit, year and kind");
    assert_eq!(second.code(), Code::AlreadyExists);
    assert_eq!(reason(&second), "SECTOR_REPORT_EXISTS");
    assert!(second.message().contains(&first.id), "{}", second.message());
    // Another kind, year or unit is another report.
    create(&mut admin, cards("181", 2023, 5_000), "r-3")
        .await
        .expect("cards");
    create(&mut admin, labour("181", 2022, 1, 2, 1), "r-4")
        .await
        .expect("another year");

    // Concurrent creates of one report: exactly one is written.
    let attempts = (0..8).map(|i| {
        let mut c = admin.clone();
        async move { create(&mut c, cards("182", 2024, 10 + i), &format!("race-{i}")).await }
    });
    let results = futures::future::join_all(attempts).await;
    let written = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(written, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e.code() == Code::AlreadyExists)
    );
    assert_eq!(all(&mut admin, "182").await.len(), 1);

    // Archived, the unit may report the year again.
    let archived = admin
        .archive_sector_report(pb::ArchiveSectorReportRequest {
            id: first.id.clone(),
            etag: first.meta.clone().expect("meta").etag,
            reason: "nhập nhầm số liệu".into(),
            request_id: "r-5".into(),
        })
        .await
        .expect("archived")
        .into_inner()
        .report
        .expect("report");
    assert_eq!(
        archived.meta.expect("meta").state,
        pb::RecordState::Archived as i32
    );
    create(&mut admin, labour("181", 2023, 950, 40_000, 23_500), "r-6")
        .await
        .expect("reported again");
}

#[tokio::test]
async fn an_update_changes_the_figures_of_its_own_kind_only() {
    let suite = Suite::start().await;
    let mut admin = sector(&suite, Role::Admin, &["*"]).await;
    let report = create(&mut admin, labour("20", 2024, 19_000, 506_000, 323_840), "")
        .await
        .expect("created");
    let update =
        |figures: Option<Figures>, paths: &[&str], etag: &str| pb::UpdateSectorReportRequest {
            report: Some(pb::SectorReport {
                id: report.id.clone(),
                source: "Sở LĐ-TB&XH, Báo cáo 12/BC-LĐTBXH".into(),
                figures,
                meta: Some(pb::RecordMeta {
                    etag: etag.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            }),
            request_id: String::new(),
        };
    let etag = report.meta.clone().expect("meta").etag;
    let wrong_kind = admin
        .update_sector_report(update(
            cards("20", 2024, 1).figures,
            &["health_insurance"],
            &etag,
        ))
        .await
        .expect_err("a labour report keeps its kind");
    assert_eq!(violated_fields(&wrong_kind), ["update_mask"]);
    let missing = admin
        .update_sector_report(update(None, &["labour"], &etag))
        .await
        .expect_err("the mask names figures not sent");
    assert_eq!(violated_fields(&missing), ["report.labour"]);
    let updated = admin
        .update_sector_report(update(
            labour("20", 2024, 19_100, 506_000, 323_840).figures,
            &["labour", "source"],
            &etag,
        ))
        .await
        .expect("updated")
        .into_inner()
        .report
        .expect("report");
    assert_eq!(updated.source, "Sở LĐ-TB&XH, Báo cáo 12/BC-LĐTBXH");
    assert_eq!(updated.unit_code, "20", "the unit stays");
    let Some(Figures::Labour(l)) = &updated.figures else {
        panic!("labour figures: {updated:?}");
    };
    assert_eq!(l.vocational_trainees, 19_100);
    let stale = admin
        .update_sector_report(update(updated.figures, &["labour"], &etag))
        .await
        .expect_err("stale etag");
    assert_eq!(stale.code(), Code::Aborted);
}

#[tokio::test]
async fn a_district_reports_for_itself_only() {
    let suite = Suite::start().await;
    let mut district = sector(&suite, Role::Enumerator, &["181"]).await;
    create(&mut district, labour("181", 2023, 900, 40_000, 23_000), "")
        .await
        .expect("its own");
    create(&mut district, labour("06067", 2023, 90, 4_000, 2_300), "")
        .await
        .expect("one of its communes");
    for unit in ["20", "182"] {
        let refused = create(&mut district, labour(unit, 2023, 1, 2, 1), "")
            .await
            .expect_err("outside its scope");
        assert_eq!(refused.code(), Code::PermissionDenied, "{unit}");
    }
    let mut admin = sector(&suite, Role::Admin, &["*"]).await;
    let province = create(&mut admin, cards("20", 2023, 1_000), "")
        .await
        .expect("province");
    let hidden = district
        .get_sector_report(pb::GetSectorReportRequest { id: province.id })
        .await
        .expect_err("the province's report");
    assert_eq!(hidden.code(), Code::PermissionDenied);
    let viewer = sector(&suite, Role::Viewer, &["181"]).await;
    let mut viewer = viewer;
    let read_only = create(&mut viewer, cards("181", 2022, 1), "")
        .await
        .expect_err("a viewer reads only");
    assert_eq!(read_only.code(), Code::PermissionDenied);
    assert_eq!(all(&mut viewer, "181").await.len(), 2);
}

/// A province's own report is its figure; without one, its districts' add
/// up; a commune's report is left out where its district reported.
#[tokio::test]
async fn the_summary_adds_the_widest_units_reports() {
    let suite = Suite::start().await;
    let mut admin = sector(&suite, Role::Admin, &["*"]).await;
    // 2023: the province reports, and so do two districts and a commune.
    create(&mut admin, labour("20", 2023, 17_200, 504_000, 312_480), "")
        .await
        .expect("province");
    create(&mut admin, labour("181", 2023, 900, 40_000, 23_000), "")
        .await
        .expect("181");
    create(&mut admin, labour("06067", 2023, 90, 4_000, 2_300), "")
        .await
        .expect("commune");
    // 2024: only districts; 2022: cards only.
    create(&mut admin, labour("181", 2024, 1_000, 40_000, 25_000), "")
        .await
        .expect("181");
    create(&mut admin, labour("182", 2024, 1_500, 60_000, 39_000), "")
        .await
        .expect("182");
    create(&mut admin, cards("20", 2022, 263_000), "")
        .await
        .expect("cards");

    let s = programme_summary(&suite, "20", &["20"], 2021, 2025)
        .await
        .expect("summary")
        .sector
        .expect("sector");
    let years: Vec<i32> = s.years.iter().map(|y| y.year).collect();
    assert_eq!(years, [2022, 2023, 2024]);
    assert!(!s.years[0].labour_reported && s.years[0].health_insurance_reported);
    assert_eq!(s.years[0].insurance_cards, 263_000);
    assert_eq!(s.years[1].vocational_trainees, 17_200, "the province's own");
    assert_eq!(s.years[1].trained_percent, "62");
    assert_eq!(s.years[2].vocational_trainees, 2_500, "the districts' sum");
    assert_eq!(s.years[2].workforce, 100_000);
    assert_eq!(s.years[2].trained_percent, "64");
    assert!(!s.years[2].health_insurance_reported);
    assert_eq!(s.vocational_trainees, 17_200 + 2_500);
    assert_eq!(s.new_jobs, 17_201 + 1_001 + 1_501);
    assert_eq!(s.insurance_cards, 263_000);

    let d = programme_summary(&suite, "181", &["181"], 2023, 2023)
        .await
        .expect("district")
        .sector
        .expect("sector");
    assert_eq!(
        d.vocational_trainees, 900,
        "the district's own, not its commune's added"
    );
    let c = programme_summary(&suite, "06067", &["181"], 2023, 2023)
        .await
        .expect("commune")
        .sector
        .expect("sector");
    assert_eq!(c.vocational_trainees, 90);
}
