//! Who may do what where: the role × scope × RPC matrix, authentication, and the
//! unit catalog.

mod common;

use common::*;
use sustain_platform::Role;
use sustain_proto::registry::v1 as pb;
use tonic::Code;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Rpc {
    Create,
    Get,
    List,
    Count,
    Update,
    Archive,
}

const ALL: [Rpc; 6] = [
    Rpc::Create,
    Rpc::Get,
    Rpc::List,
    Rpc::Count,
    Rpc::Update,
    Rpc::Archive,
];

/// Runs one RPC against a household in Bình Gia (181); returns the status code and,
/// for lists and counts, how many households the caller saw.
async fn call(client: &mut Households, rpc: Rpc, target: &pb::Household) -> (Code, Option<i64>) {
    let result = match rpc {
        Rpc::Create => create(client, household("Lương Văn X", ""))
            .await
            .map(|_| None),
        Rpc::Get => get(client, &target.id).await.map(|_| None),
        Rpc::List => client
            .list_households(pb::ListHouseholdsRequest::default())
            .await
            .map(|r| Some(r.into_inner().households.len() as i64)),
        Rpc::Count => client
            .count_households(pb::CountHouseholdsRequest::default())
            .await
            .map(|r| Some(r.into_inner().count)),
        Rpc::Update => update(client, target.clone(), &["address.village"], "")
            .await
            .map(|_| None),
        Rpc::Archive => client
            .archive_household(pb::ArchiveHouseholdRequest {
                id: target.id.clone(),
                etag: target.etag.clone(),
                reason: "test".into(),
                request_id: String::new(),
            })
            .await
            .map(|_| None),
    };
    match result {
        Ok(seen) => (Code::Ok, seen),
        Err(status) => (status.code(), None),
    }
}

#[tokio::test]
async fn role_and_scope_matrix() {
    use Code::{Ok as OK, PermissionDenied as DENIED};
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    // (role, scope, expected code per RPC in ALL order, households visible to list/count)
    let matrix: &[(Role, &str, [Code; 6], i64)] = &[
        (Role::Admin, "181", [OK, OK, OK, OK, OK, OK], 1),
        (Role::Admin, "20", [OK, OK, OK, OK, OK, OK], 1),
        (Role::Enumerator, "181", [OK, OK, OK, OK, OK, DENIED], 1),
        (Role::Approver, "06067", [DENIED, OK, OK, OK, DENIED, OK], 1),
        (Role::Viewer, "181", [DENIED, OK, OK, OK, DENIED, DENIED], 1),
        (Role::Sync, "20", [DENIED, OK, OK, OK, DENIED, DENIED], 1),
        (Role::Finance, "20", [DENIED; 6], 0),
        // Another district: refused on every path, and lists and counts see nothing.
        (
            Role::Admin,
            "182",
            [DENIED, DENIED, OK, OK, DENIED, DENIED],
            0,
        ),
        (
            Role::Enumerator,
            "182",
            [DENIED, DENIED, OK, OK, DENIED, DENIED],
            0,
        ),
        (
            Role::Viewer,
            "05977",
            [DENIED, DENIED, OK, OK, DENIED, DENIED],
            0,
        ),
        // Another province.
        (
            Role::Admin,
            "01",
            [DENIED, DENIED, OK, OK, DENIED, DENIED],
            0,
        ),
    ];
    for (role, scope, expected, visible) in matrix {
        let mut client = server.households(*role, &[scope]).await;
        for (rpc, want) in ALL.iter().zip(expected) {
            // A fresh target per call, so archive and update always meet a live household.
            let target = create(&mut admin, household("Mục Tiêu", ""))
                .await
                .expect("target");
            let before = count(&mut admin, None).await;
            let (code, seen) = call(&mut client, *rpc, &target).await;
            assert_eq!(code, *want, "{role:?}@{scope} {rpc:?}");
            if let Some(seen) = seen {
                let expected_seen = if *visible == 0 { 0 } else { before.min(50) };
                assert_eq!(seen, expected_seen, "{role:?}@{scope} {rpc:?} saw");
            }
            if code != OK {
                let after = count(&mut admin, None).await;
                assert_eq!(
                    after, before,
                    "{role:?}@{scope} {rpc:?}: refused call wrote nothing"
                );
                let still = get(&mut admin, &target.id).await.expect("target");
                assert_eq!(
                    still.version, 1,
                    "{role:?}@{scope} {rpc:?}: target untouched"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_district_caller_cannot_filter_its_way_into_another_district() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    create(&mut admin, household("Nguyễn Văn A", ""))
        .await
        .expect("created");
    let mut other = server.households(Role::Admin, &["182"]).await;
    let err = other
        .count_households(pb::CountHouseholdsRequest {
            filter: unit_filter("181"),
        })
        .await
        .expect_err("disjoint unit");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(reason(&err), "OUT_OF_SCOPE");
    // Asking about the whole province gives only the caller's own part of it.
    assert_eq!(count(&mut other, unit_filter("20")).await, 0);
    let mut own = server.households(Role::Viewer, &["181"]).await;
    assert_eq!(count(&mut own, unit_filter("20")).await, 1);
    let err = other
        .list_households(pb::ListHouseholdsRequest {
            filter: Some(pb::HouseholdFilter {
                citizen_id: "020085001234".into(),
                unit_code: "181".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect_err("disjoint");
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let server = TestServer::start().await;
    let forged = sustain_platform::auth::TokenIssuer::shared(
        b"not-the-server-key-not-the-server-key",
        "sustain",
        "sustain",
    )
    .expect("key")
    .issue(
        "mallory",
        Role::Admin,
        &["*"],
        sustain_platform::auth::Duration::hours(1),
    )
    .expect("token");
    for bearer in [None, Some("not-a-jwt".to_owned()), Some(forged)] {
        let mut client = server.households_with(bearer.clone()).await;
        let err = client
            .count_households(pb::CountHouseholdsRequest::default())
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::Unauthenticated, "{bearer:?}");
    }
    // Health and reflection stay open for probes and tooling.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn unit_catalog_answers_across_the_reform() {
    let server = TestServer::start().await;
    let mut units = server.units(Role::Viewer).await;
    let before = units
        .get_admin_unit(pb::GetAdminUnitRequest {
            code: "05977".into(),
            as_of: "2024-06-01".into(),
        })
        .await
        .expect("old")
        .into_inner()
        .unit
        .expect("unit");
    assert_eq!(before.name, "Phường Vĩnh Trại");
    assert_eq!(before.parent_code, "178");
    assert_eq!(before.successor_codes, ["05977"]);
    let after = units
        .get_admin_unit(pb::GetAdminUnitRequest {
            code: "05977".into(),
            as_of: "2026-01-01".into(),
        })
        .await
        .expect("new")
        .into_inner()
        .unit
        .expect("unit");
    assert_eq!(after.name, "Phường Đông Kinh");
    assert_eq!(after.parent_code, "20");
    assert_eq!(after.valid_from, "2025-07-01");

    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = units
            .list_admin_units(pb::ListAdminUnitsRequest {
                parent_code: "20".into(),
                as_of: "2026-01-01".into(),
                page_size: 50,
                page_token: token,
            })
            .await
            .expect("list")
            .into_inner();
        all.extend(page.units);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(all.len(), 65, "Lạng Sơn after the reform");
    let districts = units
        .list_admin_units(pb::ListAdminUnitsRequest {
            parent_code: "20".into(),
            as_of: "2024-01-01".into(),
            ..Default::default()
        })
        .await
        .expect("districts")
        .into_inner()
        .units;
    assert_eq!(districts.len(), 11);

    let split = units
        .resolve_successor(pb::ResolveSuccessorRequest {
            code: "06622".into(),
            at: String::new(),
        })
        .await
        .expect("resolve")
        .into_inner();
    assert!(split.split);
    assert_eq!(
        split
            .successors
            .iter()
            .map(|u| u.code.as_str())
            .collect::<Vec<_>>(),
        ["06613", "06625"]
    );
    // Kiên Mộc (06625) was split too, though its code lives on in one of
    // its successors: the answer says so instead of "itself, not split".
    let reused = units
        .resolve_successor(pb::ResolveSuccessorRequest {
            code: "06625".into(),
            at: String::new(),
        })
        .await
        .expect("resolve")
        .into_inner();
    assert!(reused.split, "{reused:?}");
    assert_eq!(
        reused
            .successors
            .iter()
            .map(|u| u.code.as_str())
            .collect::<Vec<_>>(),
        ["06625", "06637"]
    );
    // Before the reform it is itself.
    let before = units
        .resolve_successor(pb::ResolveSuccessorRequest {
            code: "06625".into(),
            at: "2024-06-01".into(),
        })
        .await
        .expect("resolve")
        .into_inner();
    assert!(!before.split);
    assert_eq!(before.successors.len(), 1);

    let err = units
        .get_admin_unit(pb::GetAdminUnitRequest {
            code: "1234".into(),
            as_of: "soon".into(),
        })
        .await
        .expect_err("bad");
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(fields, ["as_of", "code"]);
    let err = units
        .get_admin_unit(pb::GetAdminUnitRequest {
            code: "181".into(),
            as_of: "2026-01-01".into(),
        })
        .await
        .expect_err("district gone");
    assert_eq!(err.code(), Code::NotFound);
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ReviewRpc {
    Record,
    Revise,
    Approve,
    Certify,
    Get,
    List,
    AtYear,
    Summary,
    Series,
    Standards,
    Import,
}

const REVIEW_RPCS: [ReviewRpc; 11] = [
    ReviewRpc::Record,
    ReviewRpc::Revise,
    ReviewRpc::Approve,
    ReviewRpc::Certify,
    ReviewRpc::Get,
    ReviewRpc::List,
    ReviewRpc::AtYear,
    ReviewRpc::Summary,
    ReviewRpc::Series,
    ReviewRpc::Standards,
    ReviewRpc::Import,
];

fn review_input(year: i32) -> pb::ReviewInput {
    pb::ReviewInput {
        year,
        kind: pb::ReviewKind::Periodic as i32,
        deprived_indicators: vec!["latrine".into()],
        income_per_person_month: Some(1_000_000),
        reviewer: "Lý Văn Sáu".into(),
        ..Default::default()
    }
}

/// A household of Bình Gia (181) with a review of 2022 in `state`.
async fn reviewed(server: &TestServer, state: pb::ReviewState) -> (pb::Household, pb::Review) {
    let h = create(&mut server.admin().await, household("Mục Tiêu", ""))
        .await
        .expect("household");
    let mut admin = server.reviews(Role::Admin, &["*"]).await;
    let mut r = admin
        .record_review(pb::RecordReviewRequest {
            household_id: h.id.clone(),
            review: Some(review_input(2022)),
            request_id: String::new(),
        })
        .await
        .expect("record")
        .into_inner()
        .review
        .expect("review");
    if state != pb::ReviewState::Draft {
        r = admin
            .approve_review(approval(&r, 90))
            .await
            .expect("approve")
            .into_inner()
            .review
            .expect("review");
    }
    if state == pb::ReviewState::Certified {
        r = admin
            .certify_review(certification(&r))
            .await
            .expect("certify")
            .into_inner()
            .review
            .expect("review");
    }
    (h, r)
}

async fn call_review(server: &TestServer, client: &mut Reviews, rpc: ReviewRpc) -> Code {
    use pb::ReviewState as S;
    let result: Result<(), tonic::Status> = match rpc {
        ReviewRpc::Record => {
            let h = create(&mut server.admin().await, household("Mục Tiêu", ""))
                .await
                .expect("household");
            client
                .record_review(pb::RecordReviewRequest {
                    household_id: h.id,
                    review: Some(review_input(2022)),
                    request_id: String::new(),
                })
                .await
                .map(drop)
        }
        ReviewRpc::Revise => {
            let (_, r) = reviewed(server, S::Draft).await;
            client
                .revise_review(pb::ReviseReviewRequest {
                    review_id: r.id,
                    etag: r.etag,
                    review: Some(review_input(2022)),
                    request_id: String::new(),
                })
                .await
                .map(drop)
        }
        ReviewRpc::Approve => {
            let (_, r) = reviewed(server, S::Draft).await;
            client.approve_review(approval(&r, 75)).await.map(drop)
        }
        ReviewRpc::Certify => {
            let (_, r) = reviewed(server, S::Approved).await;
            client.certify_review(certification(&r)).await.map(drop)
        }
        ReviewRpc::Get => {
            let (_, r) = reviewed(server, S::Certified).await;
            client
                .get_review(pb::GetReviewRequest { id: r.id })
                .await
                .map(drop)
        }
        ReviewRpc::List => {
            let (h, _) = reviewed(server, S::Certified).await;
            client
                .list_reviews(pb::ListReviewsRequest {
                    household_id: h.id,
                    year: 0,
                })
                .await
                .map(drop)
        }
        ReviewRpc::AtYear => {
            let (h, _) = reviewed(server, S::Certified).await;
            client
                .get_household_at_year(pb::GetHouseholdAtYearRequest {
                    household_id: h.id,
                    year: 2022,
                })
                .await
                .map(drop)
        }
        ReviewRpc::Summary => client
            .get_poverty_summary(pb::GetPovertySummaryRequest {
                unit_code: "181".into(),
                year: 2022,
                unassigned_from: String::new(),
            })
            .await
            .map(drop),
        ReviewRpc::Series => client
            .get_poverty_series(pb::GetPovertySeriesRequest {
                unit_code: "181".into(),
                from_year: 2021,
                to_year: 2022,
                unassigned_from: String::new(),
            })
            .await
            .map(drop),
        ReviewRpc::Standards => client
            .list_poverty_standards(pb::ListPovertyStandardsRequest {})
            .await
            .map(drop),
        ReviewRpc::Import => {
            let row = pb::ImportRow {
                row_number: 2,
                external_key: uuid::Uuid::now_v7().to_string(),
                household: Some(household("Nhập Khẩu", "")),
                reviews: vec![],
            };
            let requests = tokio_stream::iter([pb::ImportHouseholdsRequest { rows: vec![row] }]);
            match client.import_households(requests).await {
                Err(status) => Err(status),
                Ok(response) => {
                    let mut stream = response.into_inner();
                    let answer = stream.message().await;
                    match answer {
                        Err(status) => Err(status),
                        Ok(answer) => {
                            let result = answer.expect("a result").results[0].clone();
                            if result.outcome == pb::ImportOutcome::Accepted as i32 {
                                Ok(())
                            } else {
                                // Refused for scope: the row names the commune.
                                assert_eq!(
                                    result.violations[0].field,
                                    "household.address.commune_code"
                                );
                                Err(tonic::Status::permission_denied("row outside scope"))
                            }
                        }
                    }
                }
            }
        }
    };
    result.err().map(|s| s.code()).unwrap_or(Code::Ok)
}

#[tokio::test]
async fn review_role_and_scope_matrix() {
    use Code::{Ok as OK, PermissionDenied as DENIED};
    let server = TestServer::start().await;
    // Order: record, revise, approve, certify, get, list, at-year, summary(181), series(181), standards, import.
    let matrix: &[(Role, &str, [Code; 11])] = &[
        (Role::Admin, "181", [OK; 11]),
        (
            Role::Enumerator,
            "181",
            [OK, OK, DENIED, DENIED, OK, OK, OK, OK, OK, OK, DENIED],
        ),
        (
            Role::Approver,
            "181",
            [DENIED, DENIED, OK, OK, OK, OK, OK, OK, OK, OK, OK],
        ),
        // A commune's approver: its households, but not the district's summary.
        (
            Role::Approver,
            "06067",
            [DENIED, DENIED, OK, OK, OK, OK, OK, DENIED, DENIED, OK, OK],
        ),
        (
            Role::Viewer,
            "181",
            [
                DENIED, DENIED, DENIED, DENIED, OK, OK, OK, OK, OK, OK, DENIED,
            ],
        ),
        (
            Role::Sync,
            "20",
            [
                DENIED, DENIED, DENIED, DENIED, OK, OK, OK, OK, OK, OK, DENIED,
            ],
        ),
        (Role::Finance, "20", [DENIED; 11]),
        // Another district: nothing of Bình Gia's, on any path.
        (
            Role::Admin,
            "182",
            [
                DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, OK, DENIED,
            ],
        ),
        (
            Role::Viewer,
            "05977",
            [
                DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, OK, DENIED,
            ],
        ),
    ];
    for (role, scope, expected) in matrix {
        let mut client = server.reviews(*role, &[scope]).await;
        for (rpc, want) in REVIEW_RPCS.iter().zip(expected) {
            let code = call_review(&server, &mut client, *rpc).await;
            assert_eq!(code, *want, "{role:?}@{scope} {rpc:?}");
        }
    }
}
