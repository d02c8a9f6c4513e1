//! Programme records between a province and a district, each a registry and
//! a programmes service over their own databases: a district's model and
//! enrolments reach the province with the same figures, the province's own
//! catalogue item reaches the district, and each refuses to write the other's.

mod common;

use common::*;
use sustain_platform::Role;
use sustain_platform::config::{Config, PeerConfig};
use sustain_proto::programs::v1 as pb;
use sustain_testkit::eventually;
use tonic::Code;

fn config(name: &str, scope: &str) -> Config {
    let mut c = sustain_testkit::sync_config(name, scope);
    // The under-five count a summary divides by is otherwise reused for a
    // minute: the province would keep the count it read before the district's
    // households arrived.
    c.registry.count_cache_secs = 0;
    c
}

fn peer(name: &str, addr: std::net::SocketAddr, scope: &[&str]) -> PeerConfig {
    sustain_testkit::peer(name, format!("http://{addr}"), scope)
}

/// The province's own activity under Project 2.
fn activity(code: &str, name: &str) -> pb::CreateProgrammeItemRequest {
    pb::CreateProgrammeItemRequest {
        item: Some(pb::ProgrammeItem {
            code: code.into(),
            parent_code: "NTP-SPR.2".into(),
            level: pb::ItemLevel::Activity as i32,
            name: name.into(),
            owner_unit_code: "20".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn programme_records_flow_up_and_the_catalogue_flows_down() {
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let (pr, pp, ar, ap) = (
        bind().await.expect("bind"),
        bind().await.expect("bind"),
        bind().await.expect("bind"),
        bind().await.expect("bind"),
    );
    let addr = |l: &tokio::net::TcpListener| l.local_addr().expect("addr");
    let (pr_at, pp_at, ar_at, ap_at) = (addr(&pr), addr(&pp), addr(&ar), addr(&ap));
    let mut p_registry = config("province", "20");
    p_registry.sync.downstream = vec![peer("district-181", ar_at, &["181"])];
    let mut p_programs = config("province", "20");
    p_programs.sync.downstream = vec![peer("district-181", ap_at, &["181"])];
    let mut a_registry = config("district-181", "181");
    a_registry.sync.upstream = Some(peer("province", pr_at, &[]));
    let mut a_programs = config("district-181", "181");
    a_programs.sync.upstream = Some(peer("province", pp_at, &[]));
    let province = Suite::start_on((pr, p_registry), (pp, p_programs)).await;
    let district = Suite::start_on((ar, a_registry), (ap, a_programs)).await;

    // The district's households, model and enrolments.
    let ids = households(
        &district,
        &[
            ("06067", Kind::Poor),
            ("06070", Kind::NearPoor),
            ("06067", Kind::Other),
        ],
    )
    .await;
    let mut at_district = district.livelihood(Role::Admin, &["181"]).await;
    let model = create_model(&mut at_district, livestock_model("Nuôi bò sinh sản"))
        .await
        .expect("model");
    let enrolled = enrol(&mut at_district, &model.id, &ids, "2023-04-01")
        .await
        .expect("enrolled");
    assert_eq!(enrolled.len(), 3);
    // And its labour department's figures for 2023.
    let mut sector = client(
        sustain_proto::programs::v1::sector_report_service_client::SectorReportServiceClient::new,
        district.programs.channel().await.expect("connect"),
        Role::Admin,
        &["181"],
    );
    sector
        .create_sector_report(pb::CreateSectorReportRequest {
            report: Some(pb::SectorReport {
                unit_code: "181".into(),
                year: 2023,
                source: "Phòng LĐ-TB&XH huyện Bình Gia".into(),
                figures: Some(pb::sector_report::Figures::Labour(pb::LabourFigures {
                    vocational_trainees: 900,
                    workforce: 40_000,
                    trained_workers: 23_000,
                    new_jobs: 1_400,
                    workers_abroad: 25,
                })),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("sector report");
    let want = programme_summary(&district, "181", &["181"], 2022, 2024)
        .await
        .expect("summary");
    assert_eq!(
        want.sector.as_ref().map(|s| s.vocational_trainees),
        Some(900),
        "the district's own report counts"
    );
    eventually(
        "the province's figures for 181 equal the district's",
        || async {
            programme_summary(&province, "181", &["20"], 2022, 2024)
                .await
                .is_ok_and(|s| s == want)
        },
    )
    .await;
    let mut at_province = province.livelihood(Role::Admin, &["20"]).await;
    let copy = at_province
        .get_model(pb::GetModelRequest {
            id: model.id.clone(),
        })
        .await
        .expect("the model at the province")
        .into_inner()
        .model
        .expect("model");
    assert_eq!(copy.name, model.name);
    // The province holds a copy: its writes there are refused, naming the owner.
    let refused = create_model(&mut at_province, livestock_model("Nuôi dê"))
        .await
        .expect_err("181 is the district's");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("district-181"),
        "{}",
        refused.message()
    );

    // The province's own activity reaches the district, which may not edit it.
    let mut catalog = province.catalog(Role::Admin, &["20"]).await;
    catalog
        .create_programme_item(activity("LS-2-CATTLE", "Lạng Sơn cattle breeding support"))
        .await
        .expect("created at the province");
    let mut district_catalog = district.catalog(Role::Admin, &["*"]).await;
    eventually("the province's item at the district", || {
        let mut c = district_catalog.clone();
        async move {
            c.get_programme_item(pb::GetProgrammeItemRequest {
                code: "LS-2-CATTLE".into(),
            })
            .await
            .is_ok()
        }
    })
    .await;
    let refused = district_catalog
        .create_programme_item(activity("LS-2-GOATS", "Goats"))
        .await
        .expect_err("the province's catalogue");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("province"),
        "{}",
        refused.message()
    );

    // An archived enrolment leaves both sides' figures alike.
    at_district
        .archive_enrolment(pb::ArchiveEnrolmentRequest {
            id: enrolled[0].id.clone(),
            etag: enrolled[0]
                .meta
                .as_ref()
                .map(|m| m.etag.clone())
                .unwrap_or_default(),
            reason: "moved away".into(),
            request_id: String::new(),
        })
        .await
        .expect("archived");
    let after = programme_summary(&district, "181", &["181"], 2022, 2024)
        .await
        .expect("summary");
    assert_ne!(after, want, "the archive moved the figures");
    eventually("the province follows the archive", || async {
        programme_summary(&province, "181", &["20"], 2022, 2024)
            .await
            .is_ok_and(|s| s == after)
    })
    .await;
}

/// The programme records a taken-over district's feed would overwrite are
/// another's: the province's own catalogue activity, sent back under the
/// district's unit, is kept as a conflict and written nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_district_cannot_overwrite_the_provinces_programme_records() {
    use sea_orm::EntityTrait;
    use sustain_proto::sync::v1 as spb;
    use sustain_testkit::rogue::{RogueFeed, change};
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let (pr, pp, rogue_at) = (
        bind().await.expect("bind"),
        bind().await.expect("bind"),
        bind().await.expect("bind"),
    );
    let rogue = RogueFeed::default();
    let rogue_addr = rogue_at.local_addr().expect("addr");
    let _feed = rogue.serve(rogue_at, None);
    let mut p_programs = config("province", "20");
    p_programs.sync.downstream = vec![peer("district-181", rogue_addr, &["181"])];
    let province = Suite::start_on((pr, config("province", "20")), (pp, p_programs)).await;

    let mut catalog = province.catalog(Role::Admin, &["20"]).await;
    let item = catalog
        .create_programme_item(activity("LS-2-CATTLE", "Hỗ trợ nuôi bò sinh sản"))
        .await
        .expect("the province's activity")
        .into_inner()
        .item
        .expect("item");
    let db = sea_orm::Database::connect(&province.programs_db.url)
        .await
        .expect("connect");
    let held = sustain_platform::journal::outbox::Entity::find()
        .all(&db)
        .await
        .expect("outbox")
        .into_iter()
        .rfind(|r| r.record_id == "LS-2-CATTLE")
        .expect("journaled");
    // The district's unit on the province's record, newer and renamed.
    let forged = held
        .state
        .replace("\"owner_unit\":\"20\"", "\"owner_unit\":\"181\"")
        .replace("Hỗ trợ nuôi bò sinh sản", "Đã bị sửa");
    assert_ne!(forged, held.state);
    rogue.send(vec![change(
        1,
        "programme_item",
        "LS-2-CATTLE",
        "181",
        held.version + 1,
        forged,
    )]);

    let channel = province.programs.channel().await.expect("connect");
    let mut sync = spb::sync_service_client::SyncServiceClient::new(
        tonic::service::interceptor::InterceptedService::new(
            channel,
            Bearer(sustain_testkit::token(Role::Admin, &["*"])),
        ),
    );
    let list = |sync: spb::sync_service_client::SyncServiceClient<_>| async move {
        let mut sync = sync;
        sync.list_conflicts(spb::ListConflictsRequest {
            include_resolved: false,
        })
        .await
        .map(|r| r.into_inner().conflicts)
        .unwrap_or_default()
    };
    eventually("the forged change is kept as a conflict", || {
        let sync = sync.clone();
        async move { !list(sync).await.is_empty() }
    })
    .await;
    let kept = list(sync.clone()).await;
    assert!(
        kept[0].reason.contains("held here in unit 20") && kept[0].reason.contains("\"province\""),
        "{}",
        kept[0].reason
    );
    let after = catalog
        .get_programme_item(pb::GetProgrammeItemRequest {
            code: "LS-2-CATTLE".into(),
        })
        .await
        .expect("still there")
        .into_inner()
        .item
        .expect("item");
    assert_eq!(after, item, "the province's record is as it wrote it");
    let taken = sync
        .resolve_conflict(spb::ResolveConflictRequest {
            id: kept[0].id,
            resolution: spb::Resolution::TakeIncoming as i32,
        })
        .await
        .expect_err("not the district's to send");
    assert_eq!(taken.code(), Code::FailedPrecondition);
}

/// A district that sends a record of its own unit but files it, in the
/// placement columns, under another district must not have it counted there:
/// the change is refused (kept as a conflict) and district 182's figures stay
/// empty.
#[tokio::test]
async fn a_district_cannot_file_its_record_under_another_district() {
    use sustain_proto::sync::v1 as spb;
    use sustain_testkit::rogue::{RogueFeed, change};
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let (pr, pp, rogue_at) = (
        bind().await.expect("bind"),
        bind().await.expect("bind"),
        bind().await.expect("bind"),
    );
    let rogue = RogueFeed::default();
    let rogue_addr = rogue_at.local_addr().expect("addr");
    let _feed = rogue.serve(rogue_at, None);
    let mut p_programs = config("province", "20");
    p_programs.sync.downstream = vec![peer("district-181", rogue_addr, &["181"])];
    let province = Suite::start_on((pr, config("province", "20")), (pp, p_programs)).await;

    let at = chrono::Utc::now();
    let forged = sustain_programs::model::sector_report::Model {
        id: "0199a000-0000-7000-8000-000000000181".into(),
        kind: "labour".into(),
        unit_code: "181".into(),
        province_code: "20".into(),
        district_code: Some("182".into()),
        commune_code: None,
        current_commune_code: None,
        year: 2023,
        source: "Phòng LĐ-TB&XH".into(),
        vocational_trainees: 99_999,
        workforce: 100_000,
        trained_workers: 1,
        new_jobs: 0,
        workers_abroad: 0,
        cards_issued: 0,
        state: "active".into(),
        archive_reason: None,
        version: 1,
        created_at: at,
        updated_at: at,
    };
    rogue.send(vec![change(
        1,
        "sector_report",
        &forged.id,
        "181",
        1,
        serde_json::to_string(&forged).expect("json"),
    )]);
    let channel = province.programs.channel().await.expect("connect");
    let mut sync = spb::sync_service_client::SyncServiceClient::new(
        tonic::service::interceptor::InterceptedService::new(
            channel,
            Bearer(sustain_testkit::token(Role::Admin, &["*"])),
        ),
    );
    eventually("the misfiled change is kept as a conflict", || {
        let mut sync = sync.clone();
        async move {
            sync.list_conflicts(spb::ListConflictsRequest {
                include_resolved: false,
            })
            .await
            .is_ok_and(|r| !r.into_inner().conflicts.is_empty())
        }
    })
    .await;
    let kept = sync
        .list_conflicts(spb::ListConflictsRequest {
            include_resolved: false,
        })
        .await
        .expect("conflicts")
        .into_inner()
        .conflicts;
    assert!(kept[0].reason.contains("182"), "{}", kept[0].reason);
    let s = programme_summary(&province, "182", &["20"], 2023, 2023)
        .await
        .expect("summary");
    assert_eq!(
        s.sector.map(|x| x.vocational_trainees),
        Some(0),
        "nothing counted in district 182"
    );
}
