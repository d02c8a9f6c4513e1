//! The annual review over real servers: record → approve → certify → summary,
//! transitions over four years, corrections as revisions, point-in-time reads,
//! validation that writes nothing, scope on summaries, and tallies that equal a
//! recount from the reviews.

mod common;

use common::*;
use sustain_platform::Role;
use sustain_proto::registry::v1 as pb;
use tonic::Code;

const POOR3: &[&str] = &["latrine", "domestic_water", "telecom_use"];

fn input(year: i32, income: i64, deprived: &[&str]) -> pb::ReviewInput {
    pb::ReviewInput {
        year,
        kind: pb::ReviewKind::Periodic as i32,
        deprived_indicators: deprived.iter().map(|d| (*d).to_owned()).collect(),
        income_per_person_month: Some(income),
        score_a: None,
        score_b: None,
        reviewer: "Lý Văn Sáu".into(),
        reviewed_on: format!("{year}-10-15"),
        area: 0,
        area_reason: String::new(),
    }
}

async fn record(
    reviews: &mut Reviews,
    household_id: &str,
    review: pb::ReviewInput,
) -> Result<pb::Review, tonic::Status> {
    reviews
        .record_review(pb::RecordReviewRequest {
            household_id: household_id.into(),
            review: Some(review),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().review.expect("review"))
}

async fn approve(
    reviews: &mut Reviews,
    r: &pb::Review,
    percent: i32,
) -> Result<pb::Review, tonic::Status> {
    reviews
        .approve_review(approval(r, percent))
        .await
        .map(|r| r.into_inner().review.expect("review"))
}

async fn certify(reviews: &mut Reviews, r: &pb::Review) -> Result<pb::Review, tonic::Status> {
    reviews
        .certify_review(certification(r))
        .await
        .map(|r| r.into_inner().review.expect("review"))
}

/// Records, approves and certifies; the certified review.
async fn certified(
    reviews: &mut Reviews,
    household_id: &str,
    review: pb::ReviewInput,
) -> pb::Review {
    let r = record(reviews, household_id, review).await.expect("record");
    let r = approve(reviews, &r, 80).await.expect("approve");
    certify(reviews, &r).await.expect("certify")
}

async fn summary(
    reviews: &mut Reviews,
    unit: &str,
    year: i32,
) -> Result<pb::PovertySummary, tonic::Status> {
    reviews
        .get_poverty_summary(pb::GetPovertySummaryRequest {
            unit_code: unit.into(),
            year,
            unassigned_from: String::new(),
        })
        .await
        .map(|r| r.into_inner().summary.expect("summary"))
}

async fn history(reviews: &mut Reviews, household_id: &str, year: i32) -> Vec<pb::Review> {
    reviews
        .list_reviews(pb::ListReviewsRequest {
            household_id: household_id.into(),
            year,
        })
        .await
        .expect("list")
        .into_inner()
        .reviews
}

fn transition(r: &pb::Review) -> pb::Transition {
    pb::Transition::try_from(r.transition).expect("transition")
}

fn class(r: &pb::Review) -> pb::PovertyClass {
    pb::PovertyClass::try_from(r.poverty_class).expect("class")
}

fn transition_count(s: &pb::PovertySummary, t: pb::Transition) -> i64 {
    s.transitions
        .iter()
        .find(|f| f.transition == t as i32)
        .map(|f| f.households)
        .unwrap_or(-1)
}

/// Creates `n` households in a commune; their ids.
async fn households(server: &TestServer, commune: &str, n: usize) -> Vec<String> {
    let mut client = server.admin().await;
    let mut ids = vec![];
    for i in 0..n {
        let h = household_in(commune, "2020-01-15", &format!("Hoàng Văn {i}"), "");
        ids.push(create(&mut client, h).await.expect("create").id);
    }
    ids
}

async fn assert_tallies_equal_recount(server: &TestServer, units: &[&str], years: &[i32]) {
    let db = sustain_db::connect(&server.url).await.expect("db");
    for unit in units {
        for year in years {
            let mut tallied = sustain_registry::store::tally::read(&db, unit, *year, None)
                .await
                .expect("tally");
            let mut counted = sustain_registry::store::tally::recount(&db, unit, *year, None)
                .await
                .expect("recount");
            let key = |r: &sustain_registry::store::tally::TallyRow| {
                format!(
                    "{}|{}|{}|{}|{}|{}",
                    r.child_unit, r.ethnic_minority, r.residence, r.class, r.transition, r.mpi_poor
                )
            };
            tallied.sort_by_key(key);
            counted.sort_by_key(key);
            assert_eq!(
                tallied, counted,
                "tallies of {unit} in {year} differ from a recount"
            );
        }
    }
}

#[tokio::test]
async fn record_approve_certify_then_summary() {
    let server = TestServer::start().await;
    let ids = households(&server, "06067", 4).await;
    let mut enumerator = server.reviews(Role::Enumerator, &["181"]).await;
    let mut approver = server.reviews(Role::Approver, &["181"]).await;

    // Poor: under the line with 3 deprivations; near-poor: exactly at the line with 2.
    let poor = record(&mut enumerator, &ids[0], input(2022, 1_200_000, POOR3))
        .await
        .expect("record");
    assert_eq!(class(&poor), pb::PovertyClass::Poor);
    assert_eq!(poor.state, pb::ReviewState::Draft as i32);
    assert_eq!(transition(&poor), pb::Transition::FirstReview);
    assert_eq!(poor.standard_code, "decree-07-2021");
    assert_eq!((poor.deprivation_count, poor.score_b), (3, 30));
    assert!(poor.mpi_poor);

    // A draft does not count.
    let s = summary(&mut approver, "06067", 2022)
        .await
        .expect("summary");
    assert_eq!(s.households_reviewed, 0);

    // Enumerators cannot approve or certify; approvers cannot record.
    let denied = approve(&mut enumerator, &poor, 80)
        .await
        .expect_err("enumerator approves");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = record(&mut approver, &ids[1], input(2022, 1_500_000, &[]))
        .await
        .expect_err("approver records");
    assert_eq!(denied.code(), Code::PermissionDenied);
    // A draft cannot be certified before the village meeting.
    let early = certify(&mut approver, &poor)
        .await
        .expect_err("certify a draft");
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert_eq!(reason(&early), "REVIEW_STATE");
    // Less than half the meeting agreeing sends it back.
    let low = approve(&mut approver, &poor, 49)
        .await
        .expect_err("49% agreement");
    assert_eq!(low.code(), Code::FailedPrecondition);
    assert_eq!(reason(&low), "AGREEMENT_BELOW_HALF");

    let poor = approve(&mut approver, &poor, 50)
        .await
        .expect("approve at 50%");
    assert_eq!(poor.state, pb::ReviewState::Approved as i32);
    let poor = certify(&mut approver, &poor).await.expect("certify");
    assert_eq!(poor.state, pb::ReviewState::Certified as i32);
    assert_eq!(
        poor.certification
            .as_ref()
            .expect("certification")
            .decision_number,
        "2022/QĐ-UBND"
    );

    let near = record(
        &mut enumerator,
        &ids[1],
        input(2022, 1_500_000, &["latrine", "telecom_use"]),
    )
    .await
    .expect("record");
    assert_eq!(class(&near), pb::PovertyClass::NearPoor);
    let near = approve(&mut approver, &near, 70).await.expect("approve");
    certify(&mut approver, &near).await.expect("certify");
    // One đồng above the line: average living standard, whatever the deprivations.
    let mut admin = server.reviews(Role::Admin, &["20"]).await;
    let avg = certified(&mut admin, &ids[2], input(2022, 1_500_001, POOR3)).await;
    assert_eq!(class(&avg), pb::PovertyClass::AverageLiving);
    let rich = certified(&mut admin, &ids[3], input(2022, 5_000_000, &[])).await;
    assert_eq!(class(&rich), pb::PovertyClass::NotPoor);

    for unit in ["06067", "181", "20"] {
        let s = summary(&mut admin, unit, 2022).await.expect("summary");
        assert_eq!(s.households_reviewed, 4, "{unit}");
        let p = s.poor.as_ref().expect("poor");
        assert_eq!(
            (p.count, p.total, p.percent.as_str()),
            (1, 4, "25"),
            "{unit}"
        );
        let n = s.near_poor.as_ref().expect("near poor");
        assert_eq!((n.count, n.percent.as_str()), (1, "25"));
        assert_eq!(
            s.standard.as_ref().expect("standard").code,
            "decree-07-2021"
        );
        let latrine = s
            .deprivations
            .iter()
            .find(|d| d.indicator_code == "latrine")
            .expect("latrine");
        // Deprived among all reviewed (poor, near-poor, average) vs among poor and near-poor.
        assert_eq!(
            (latrine.households, latrine.poor, latrine.near_poor),
            (3, 1, 1)
        );
        let among = latrine.poor_or_near_poor.as_ref().expect("share");
        assert_eq!(
            (among.count, among.total, among.percent.as_str()),
            (2, 2, "100")
        );
        // Two of four are MPI-poor (≥ 3 of 12): the poor one and the average one.
        let mpi = s.mpi.as_ref().expect("mpi");
        assert_eq!((mpi.households, mpi.mpi_poor), (4, 2));
        assert!((mpi.headcount - 0.5).abs() < 1e-12);
        assert!((mpi.m0 - 0.5 * 3.0 / 12.0).abs() < 1e-12);
        assert_eq!(transition_count(&s, pb::Transition::FirstReview), 4);
        // All four are Tày/Nùng households.
        assert_eq!(s.ethnic_minority_households, 4);
    }
    // The province summary decomposes by district, the district's by commune.
    let province = summary(&mut admin, "20", 2022).await.expect("summary");
    let units: Vec<&str> = province
        .mpi
        .as_ref()
        .expect("mpi")
        .subgroups
        .iter()
        .filter(|g| g.kind == "unit")
        .map(|g| g.key.as_str())
        .collect();
    assert_eq!(units, ["181"]);
    assert_tallies_equal_recount(&server, &["06067", "181", "20"], &[2022]).await;
}

#[tokio::test]
async fn transitions_over_four_years() {
    let server = TestServer::start().await;
    let ids = households(&server, "06067", 3).await;
    let mut admin = server.reviews(Role::Admin, &["*"]).await;
    // Household 0: poor → near-poor → not poor → poor again.
    let chain0 = [
        (2021, 1_000_000, POOR3, pb::Transition::FirstReview),
        (
            2022,
            1_400_000,
            &["latrine"][..],
            pb::Transition::EscapedPoverty,
        ),
        (2023, 3_000_000, &[][..], pb::Transition::EscapedNearPoverty),
        (2024, 900_000, POOR3, pb::Transition::RePoor),
    ];
    // Household 1: not poor → near-poor → poor → poor.
    let chain1 = [
        (2021, 2_500_000, &[][..], pb::Transition::FirstReview),
        (2022, 1_200_000, &[][..], pb::Transition::NewlyNearPoor),
        (2023, 1_100_000, POOR3, pb::Transition::NewlyPoor),
        (2024, 1_100_000, POOR3, pb::Transition::RemainedPoor),
    ];
    // Household 2: near-poor → near-poor → above the line.
    let chain2 = [
        (2021, 1_300_000, &[][..], pb::Transition::FirstReview),
        (2022, 1_300_000, &[][..], pb::Transition::RemainedNearPoor),
        (2023, 2_000_000, &[][..], pb::Transition::EscapedNearPoverty),
    ];
    for (id, chain) in [
        (&ids[0], &chain0[..]),
        (&ids[1], &chain1[..]),
        (&ids[2], &chain2[..]),
    ] {
        for (year, income, deprived, expected) in chain {
            let r = certified(&mut admin, id, input(*year, *income, deprived)).await;
            assert_eq!(transition(&r), *expected, "{year}");
        }
    }
    let s2024 = summary(&mut admin, "181", 2024).await.expect("summary");
    assert_eq!(transition_count(&s2024, pb::Transition::RePoor), 1);
    assert_eq!(transition_count(&s2024, pb::Transition::RemainedPoor), 1);
    assert_eq!(s2024.households_reviewed, 2);
    let s2023 = summary(&mut admin, "181", 2023).await.expect("summary");
    assert_eq!(transition_count(&s2023, pb::Transition::NewlyPoor), 1);
    assert_eq!(
        transition_count(&s2023, pb::Transition::EscapedNearPoverty),
        2
    );
    assert_eq!(transition_count(&s2023, pb::Transition::RemainedNotPoor), 0);

    // Correcting an earlier year re-derives the later ones: household 2's 2021
    // corrected to poor turns its 2022 "remained near-poor" into "escaped poverty".
    let before = history(&mut admin, &ids[2], 2021).await;
    let first = &before[0];
    let revised = admin
        .revise_review(pb::ReviseReviewRequest {
            review_id: first.id.clone(),
            etag: first.etag.clone(),
            review: Some(input(2021, 1_300_000, POOR3)),
            request_id: String::new(),
        })
        .await
        .expect("revise")
        .into_inner()
        .review
        .expect("review");
    assert_eq!(revised.revision, 2);
    assert_eq!(revised.supersedes_review_id, first.id);
    // Until the correction is certified the first revision still counts.
    let s2021 = summary(&mut admin, "06067", 2021).await.expect("summary");
    assert_eq!(s2021.poor.as_ref().expect("poor").count, 1);
    let revised = approve(&mut admin, &revised, 90).await.expect("approve");
    certify(&mut admin, &revised).await.expect("certify");
    let s2021 = summary(&mut admin, "06067", 2021).await.expect("summary");
    assert_eq!(s2021.poor.as_ref().expect("poor").count, 2);
    assert_eq!(s2021.near_poor.as_ref().expect("near").count, 0);
    assert_eq!(s2021.households_reviewed, 3);
    let s2022 = summary(&mut admin, "06067", 2022).await.expect("summary");
    assert_eq!(transition_count(&s2022, pb::Transition::EscapedPoverty), 2);
    assert_eq!(
        transition_count(&s2022, pb::Transition::RemainedNearPoor),
        0
    );

    // Both revisions stay readable; the old one is superseded.
    let after = history(&mut admin, &ids[2], 2021).await;
    let states: Vec<(i32, i32)> = after.iter().map(|r| (r.revision, r.state)).collect();
    assert_eq!(
        states,
        [
            (2, pb::ReviewState::Certified as i32),
            (1, pb::ReviewState::Superseded as i32)
        ]
    );
    assert_tallies_equal_recount(&server, &["06067", "181", "20"], &[2021, 2022, 2023, 2024]).await;
}

#[tokio::test]
async fn a_household_as_it_stood_when_reviewed() {
    let server = TestServer::start().await;
    let mut households_client = server.admin().await;
    let mut admin = server.reviews(Role::Admin, &["*"]).await;
    let h = create(
        &mut households_client,
        household_in("06067", "2020-01-15", "Hoàng Văn Đức", "020085001234"),
    )
    .await
    .expect("create");
    certified(&mut admin, &h.id, input(2022, 1_000_000, POOR3)).await;

    // The household changes afterwards: a new member, a new village.
    let mut changed = h.clone();
    changed.members.push(member(
        "Hoàng Thị Lan",
        pb::Relation::Child,
        "2019-02-01",
        pb::Sex::Female,
        "02",
        "",
    ));
    changed.address.as_mut().expect("address").village = "Bản Mới".into();
    let changed = update(
        &mut households_client,
        changed,
        &["members", "address.village"],
        "",
    )
    .await
    .expect("update");
    assert_eq!(changed.members.len(), 4);
    certified(&mut admin, &h.id, input(2023, 1_000_000, POOR3)).await;

    let at = |year| {
        let mut admin = admin.clone();
        let id = h.id.clone();
        async move {
            admin
                .get_household_at_year(pb::GetHouseholdAtYearRequest {
                    household_id: id,
                    year,
                })
                .await
                .map(|r| r.into_inner())
        }
    };
    let then = at(2022).await.expect("2022");
    let then_household = then.household.expect("household");
    assert_eq!(then_household.members.len(), 3);
    assert_eq!(
        then_household.address.as_ref().expect("address").village,
        "Bản Nà Lại"
    );
    assert_eq!(then_household.version, 1);
    // Personal fields of the kept version decrypt like the live ones.
    assert_eq!(then_household.members[0].citizen_id, "020085001234");
    assert_eq!(
        then.review.expect("review").input.expect("input").year,
        2022
    );
    let now = at(2023).await.expect("2023").household.expect("household");
    assert_eq!((now.members.len(), now.version), (4, 2));
    assert_eq!(
        at(2021).await.expect_err("no review").code(),
        Code::NotFound
    );
    // Viewers see the kept version's CCCDs masked, like the live ones.
    let mut viewer = server.reviews(Role::Viewer, &["20"]).await;
    let masked = viewer
        .get_household_at_year(pb::GetHouseholdAtYearRequest {
            household_id: h.id.clone(),
            year: 2022,
        })
        .await
        .expect("viewer")
        .into_inner()
        .household
        .expect("household");
    assert_ne!(masked.members[0].citizen_id, "020085001234");
}

#[tokio::test]
async fn invalid_reviews_name_every_field_and_write_nothing() {
    let server = TestServer::start().await;
    let ids = households(&server, "06067", 1).await;
    let mut admin = server.reviews(Role::Admin, &["*"]).await;
    let mut bad = input(2019, 1_000_000, &["latrine", "latrine", "swimming_pool"]);
    bad.kind = 0;
    bad.reviewer = " ".into();
    let status = record(&mut admin, &ids[0], bad).await.expect_err("bad");
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields = violated_fields(&status);
    // 2019 has no standard, so its indicators cannot be checked; the rest can.
    for f in ["review.year", "review.kind", "review.reviewer"] {
        assert!(
            fields.contains(&f.to_owned()),
            "{f} missing from {fields:?}"
        );
    }

    let mut bad = input(2022, 1_000_000, &["latrine", "latrine", "swimming_pool"]);
    bad.score_a = Some(100);
    bad.score_b = Some(40);
    bad.reviewed_on = "2099-01-01".into();
    let status = record(&mut admin, &ids[0], bad).await.expect_err("bad");
    let fields = violated_fields(&status);
    for f in [
        "review.deprived_indicators[1]",
        "review.deprived_indicators[2]",
        "review.score_a",
        "review.reviewed_on",
    ] {
        assert!(
            fields.contains(&f.to_owned()),
            "{f} missing from {fields:?}"
        );
    }
    let mut future = input(2030, 1_000_000, &[]);
    future.reviewed_on = String::new();
    let status = record(&mut admin, &ids[0], future)
        .await
        .expect_err("future year");
    assert_eq!(violated_fields(&status), ["review.year"]);
    let mut mismatch = input(2022, 1_000_000, POOR3);
    mismatch.score_b = Some(20);
    let status = record(&mut admin, &ids[0], mismatch)
        .await
        .expect_err("score B");
    assert_eq!(violated_fields(&status), ["review.score_b"]);

    let reviews = admin
        .list_reviews(pb::ListReviewsRequest {
            household_id: ids[0].clone(),
            year: 0,
        })
        .await
        .expect("list")
        .into_inner()
        .reviews;
    assert!(
        reviews.is_empty(),
        "a refused review was written: {reviews:?}"
    );

    // Score A where income is not measured: at the rural bound with 3 deprivations.
    let mut scored = input(2022, 0, POOR3);
    scored.income_per_person_month = None;
    scored.score_a = Some(140);
    scored.score_b = Some(30);
    let r = record(&mut admin, &ids[0], scored).await.expect("score A");
    assert_eq!(class(&r), pb::PovertyClass::Poor);
    // A second review of the same year is refused: correct the first instead.
    let twice = record(&mut admin, &ids[0], input(2022, 1_000_000, &[]))
        .await
        .expect_err("twice");
    assert_eq!(twice.code(), Code::AlreadyExists);
    // A stale etag is refused.
    let approved = approve(&mut admin, &r, 60).await.expect("approve");
    let stale = certify(&mut admin, &r).await.expect_err("stale etag");
    assert_eq!(stale.code(), Code::Aborted);
    certify(&mut admin, &approved)
        .await
        .expect("certify with the fresh etag");
}

#[tokio::test]
async fn summaries_keep_to_the_callers_scope() {
    let server = TestServer::start().await;
    let ids = households(&server, "06067", 1).await;
    let mut admin = server.reviews(Role::Admin, &["*"]).await;
    certified(&mut admin, &ids[0], input(2022, 1_000_000, POOR3)).await;

    let mut district = server.reviews(Role::Viewer, &["181"]).await;
    assert_eq!(
        summary(&mut district, "181", 2022)
            .await
            .expect("own district")
            .households_reviewed,
        1
    );
    assert_eq!(
        summary(&mut district, "06067", 2022)
            .await
            .expect("own commune")
            .households_reviewed,
        1
    );
    // The province is wider than the district: no partial province figure.
    let wider = summary(&mut district, "20", 2022)
        .await
        .expect_err("province");
    assert_eq!(wider.code(), Code::PermissionDenied);
    let mut other = server.reviews(Role::Viewer, &["178"]).await;
    assert_eq!(
        summary(&mut other, "181", 2022)
            .await
            .expect_err("other district")
            .code(),
        Code::PermissionDenied
    );
    // Nor its reviews or history.
    let denied = other
        .list_reviews(pb::ListReviewsRequest {
            household_id: ids[0].clone(),
            year: 0,
        })
        .await
        .expect_err("other district's history");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let bad = summary(&mut admin, "99999", 2015)
        .await
        .expect_err("bad request");
    assert_eq!(violated_fields(&bad), ["unit_code", "year"]);
    // The standards are readable by every role.
    let standards = district
        .list_poverty_standards(pb::ListPovertyStandardsRequest {})
        .await
        .expect("standards")
        .into_inner()
        .standards;
    assert_eq!(standards.len(), 2);
    assert_eq!(standards[0].indicators.len(), 12);
    assert!(standards[1].provisional);
}

#[tokio::test]
async fn a_series_is_each_years_summary_and_names_a_bad_span() {
    let server = TestServer::start().await;
    let ids = households(&server, "06067", 2).await;
    let mut enumerator = server.reviews(Role::Enumerator, &["181"]).await;
    let mut approver = server.reviews(Role::Approver, &["181"]).await;
    for (year, income) in [(2022, 1_200_000), (2023, 3_000_000)] {
        let r = record(&mut enumerator, &ids[0], input(year, income, POOR3))
            .await
            .expect("record");
        let r = approve(&mut approver, &r, 80).await.expect("approve");
        certify(&mut approver, &r).await.expect("certify");
    }
    let series = approver
        .get_poverty_series(pb::GetPovertySeriesRequest {
            unit_code: "181".into(),
            from_year: 2021,
            to_year: 2023,
            unassigned_from: String::new(),
        })
        .await
        .expect("series")
        .into_inner()
        .summaries;
    let mut each = vec![];
    for year in 2021..=2023 {
        each.push(summary(&mut approver, "181", year).await.expect("summary"));
    }
    assert_eq!(series, each);
    assert_eq!(
        series
            .iter()
            .map(|s| s.households_reviewed)
            .collect::<Vec<_>>(),
        [0, 1, 1]
    );
    assert_eq!(series[1].poor.as_ref().expect("poor").count, 1);
    assert_eq!(series[2].poor.as_ref().expect("poor").count, 0);

    for (from, to, field) in [
        (2023, 2021, "to_year"),
        (2021, 2041, "to_year"),
        (2019, 2022, "from_year"),
        (2022, 2031, "to_year"),
    ] {
        let bad = approver
            .get_poverty_series(pb::GetPovertySeriesRequest {
                unit_code: "181".into(),
                from_year: from,
                to_year: to,
                unassigned_from: String::new(),
            })
            .await
            .expect_err("a bad span");
        assert_eq!(bad.code(), Code::InvalidArgument, "{from}–{to}");
        assert_eq!(violated_fields(&bad), [field], "{from}–{to}");
    }
    let refused = approver
        .get_poverty_series(pb::GetPovertySeriesRequest {
            unit_code: "20".into(),
            from_year: 2022,
            to_year: 2023,
            unassigned_from: String::new(),
        })
        .await
        .expect_err("the province is outside a district's scope");
    assert_eq!(refused.code(), Code::PermissionDenied);
}

/// A year after the 2025 reform is reported by the units in force at its
/// end: the province's breakdown for 2025 lists only communes, each holding
/// every household of its old communes whenever registered, and equal to
/// that commune asked on its own; a district, or a commune merged away, says
/// it no longer exists and names where its households are. 2024 still
/// breaks down by district.
#[tokio::test]
async fn a_year_after_the_reform_is_reported_by_the_units_in_force() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    let mut reviews = server.reviews(Role::Admin, &["20"]).await;
    let mut ids = vec![];
    // Registered before the reform in old communes merged into 05977 (Đông
    // Kinh) and into 06073, and one registered after it in 05977 itself.
    for (i, (commune, registered)) in [
        ("05980", "2020-01-15"),
        ("05992", "2020-01-15"),
        ("06247", "2021-03-01"),
        ("06067", "2020-01-15"),
        ("05977", "2025-08-01"),
    ]
    .iter()
    .enumerate()
    {
        let h = household_in(commune, registered, &format!("Hoàng Văn Cải {i}"), "");
        ids.push(create(&mut admin, h).await.expect("create").id);
    }
    for (i, id) in ids.iter().enumerate() {
        let income = if i % 2 == 0 { 1_000_000 } else { 3_000_000 };
        let after = certified(&mut reviews, id, input(2025, income, POOR3)).await;
        if i < 4 {
            let before = certified(&mut reviews, id, input(2024, income, POOR3)).await;
            // Each review names the commune of registration and the one in
            // force on its date.
            assert_eq!(before.commune_in_force, before.commune_code);
            assert_eq!(after.commune_code, before.commune_code);
        }
        let in_force = if i == 3 { "06073" } else { "05977" };
        assert_eq!(after.commune_in_force, in_force, "review of household {i}");
    }
    let end = chrono::NaiveDate::from_ymd_opt(2025, 12, 31).expect("date");
    let catalog = sustain_domain::admin::catalog();
    let province = summary(&mut reviews, "20", 2025).await.expect("2025");
    assert_eq!(province.households_reviewed, 5);
    let units: Vec<&pb::MpiSubgroup> = province
        .mpi
        .as_ref()
        .expect("mpi")
        .subgroups
        .iter()
        .filter(|g| g.kind == "unit")
        .collect();
    let keys: Vec<&str> = units.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["05977", "06073"], "communes in force only");
    for g in &units {
        let unit = catalog
            .get(&g.key, end)
            .expect("in force at the end of 2025");
        assert_eq!(unit.level, sustain_domain::admin::Level::Commune);
        let alone = summary(&mut reviews, &g.key, 2025).await.expect("commune");
        assert_eq!(
            alone.households_reviewed, g.households,
            "{} asked alone agrees with the breakdown",
            g.key
        );
        assert_eq!(g.label, alone.unit_name);
    }
    assert_eq!(units.iter().map(|g| g.households).sum::<i64>(), 5);
    assert_eq!(
        units[0].households, 4,
        "Đông Kinh holds its old communes' households too"
    );

    for gone in ["181", "178", "06067", "05992"] {
        let refused = summary(&mut reviews, gone, 2025)
            .await
            .expect_err("not in force at the end of 2025");
        assert_eq!(
            refused.code(),
            Code::FailedPrecondition,
            "{gone}: {refused:?}"
        );
        assert_eq!(reason(&refused), "UNIT_NOT_IN_FORCE");
        assert!(
            refused.message().contains("05977") || refused.message().contains("06073"),
            "{gone}: names its successors: {}",
            refused.message()
        );
    }
    let by_district = summary(&mut reviews, "20", 2024).await.expect("2024");
    let keys: Vec<String> = by_district
        .mpi
        .expect("mpi")
        .subgroups
        .into_iter()
        .filter(|g| g.kind == "unit")
        .map(|g| g.key)
        .collect();
    assert_eq!(
        keys,
        ["178", "181", "183"],
        "before the reform, by district"
    );
    assert_eq!(
        summary(&mut reviews, "181", 2024)
            .await
            .expect("2024")
            .households_reviewed,
        1
    );
    assert_tallies_equal_recount(&server, &["20", "05977", "06073", "178"], &[2024, 2025]).await;
}

/// The non-minority subgroup counts Kinh-headed households only (a Hoa head
/// makes a household an ethnic-minority one), and says so.
#[tokio::test]
async fn the_non_minority_subgroup_is_labelled_as_it_counts() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    let mut reviews = server.reviews(Role::Admin, &["20"]).await;
    for (ethnicity, name) in [("01", "Nguyễn Văn Kinh"), ("04", "Lý Văn Hoa")] {
        let mut h = household(name, "");
        for m in &mut h.members {
            m.ethnicity_code = ethnicity.into();
        }
        let id = create(&mut admin, h).await.expect("create").id;
        certified(&mut reviews, &id, input(2024, 3_000_000, &[])).await;
    }
    let s = summary(&mut reviews, "20", 2024).await.expect("summary");
    assert_eq!(s.ethnic_minority_households, 1, "the Hoa household");
    let groups = s.mpi.expect("mpi").subgroups;
    let non_minority = groups
        .iter()
        .find(|g| g.kind == "ethnic_minority" && g.key == "false")
        .expect("subgroup");
    assert_eq!(non_minority.households, 1);
    assert_eq!(non_minority.label, "Kinh");
}

/// A review scored by Circular 07's score A above the line is not folded
/// into NOT_POOR: score A cannot tell average living (an income band) from
/// above it, so it is its own class and its own figure in the summary.
#[tokio::test]
async fn score_a_above_the_line_is_its_own_figure() {
    let server = TestServer::start().await;
    let ids = households(&server, "06067", 2).await;
    let mut reviews = server.reviews(Role::Admin, &["20"]).await;
    let mut by_score = input(2024, 0, &[]);
    by_score.income_per_person_month = None;
    by_score.score_a = Some(200);
    let scored = certified(&mut reviews, &ids[0], by_score).await;
    assert_eq!(class(&scored), pb::PovertyClass::AboveLineIncomeNotMeasured);
    let measured = certified(&mut reviews, &ids[1], input(2024, 9_000_000, &[])).await;
    assert_eq!(class(&measured), pb::PovertyClass::NotPoor);
    let s = summary(&mut reviews, "06067", 2024).await.expect("summary");
    let figure = |c: pb::PovertyClass| {
        s.classes
            .iter()
            .find(|f| f.poverty_class == c as i32)
            .and_then(|f| f.households.as_ref())
            .map_or(-1, |h| h.count)
    };
    assert_eq!(figure(pb::PovertyClass::AboveLineIncomeNotMeasured), 1);
    assert_eq!(figure(pb::PovertyClass::NotPoor), 1);
    assert_eq!(figure(pb::PovertyClass::AverageLiving), 0);
}

/// A household registered in a rural commune (Xã Mai Pha, 05992) that the
/// 2025 reform merged into a ward (Phường Đông Kinh, 05977) is reviewed in
/// 2025 against the urban line by default, in 2024 still the rural one; a
/// reviewer may set the area against the default with a reason (and only
/// with one); the summary says how many reviews changed area.
#[tokio::test]
async fn a_review_records_the_area_whose_line_it_was_classified_under() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    let mut reviews = server.reviews(Role::Admin, &["20"]).await;
    let mut ids = vec![];
    for i in 0..2 {
        let h = household_in("05992", "2020-01-15", &format!("Lương Văn Khu {i}"), "");
        ids.push(create(&mut admin, h).await.expect("create").id);
    }
    // 1.8 million a person: above the rural line (1.5), within the urban (2.0).
    let before = certified(&mut reviews, &ids[0], input(2024, 1_800_000, POOR3)).await;
    assert_eq!(before.area, pb::Residence::Rural as i32);
    assert_eq!(class(&before), pb::PovertyClass::AverageLiving);
    let after = certified(&mut reviews, &ids[0], input(2025, 1_800_000, POOR3)).await;
    assert_eq!(
        after.residence,
        pb::Residence::Rural as i32,
        "the household's own"
    );
    assert_eq!(after.area, pb::Residence::Urban as i32, "the ward's line");
    assert_eq!(class(&after), pb::PovertyClass::Poor);
    assert!(after.area_reason.is_empty());

    // Set against the default: only with a reason.
    let mut kept_rural = input(2025, 1_800_000, POOR3);
    kept_rural.area = pb::Residence::Rural as i32;
    let refused = record(&mut reviews, &ids[1], kept_rural.clone())
        .await
        .expect_err("no reason");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["review.area_reason"]);
    kept_rural.area_reason = "the village stays farmland; guidance awaited".into();
    let overridden = certified(&mut reviews, &ids[1], kept_rural).await;
    assert_eq!(overridden.area, pb::Residence::Rural as i32);
    assert_eq!(class(&overridden), pb::PovertyClass::AverageLiving);
    assert_eq!(
        overridden.area_reason,
        "the village stays farmland; guidance awaited"
    );
    assert_eq!(
        overridden.input.as_ref().expect("input").area,
        pb::Residence::Rural as i32
    );

    let s = summary(&mut reviews, "05977", 2025).await.expect("summary");
    assert_eq!(s.households_reviewed, 2);
    assert_eq!(s.area_changed, 1, "one review took the ward's line");
    assert_eq!(
        summary(&mut reviews, "20", 2025)
            .await
            .expect("province")
            .area_changed,
        1
    );
    assert_eq!(
        summary(&mut reviews, "05992", 2024)
            .await
            .expect("2024")
            .area_changed,
        0
    );
    assert_tallies_equal_recount(&server, &["20", "05977", "05992"], &[2024, 2025]).await;
}

/// Households of a commune the reform split (06622 Bính Xá, into 06613 and
/// 06625) are placed by the village the province assigns, never guessed:
/// until then they are their own row of the province's 2025 figures, and
/// no part counts them.
#[tokio::test]
async fn a_split_communes_households_are_placed_by_village_and_the_rest_reported_unassigned() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    let mut reviews = server.reviews(Role::Admin, &["20"]).await;
    let mut province = server.households(Role::Admin, &["20"]).await;
    let in_village = |commune: &str, registered: &str, village: &str, i: usize| {
        let mut h = household_in(commune, registered, &format!("Vi Văn Tách {i}"), "");
        if let Some(a) = h.address.as_mut() {
            a.village = village.into();
        }
        h
    };
    let mut ids = vec![];
    for (i, (commune, registered, village)) in [
        ("06622", "2020-01-15", "Thôn Bản Chắt"),
        ("06622", "2021-06-01", "thôn Bản Chắt"),
        ("06622", "2020-01-15", "Thôn Khe Lạn"),
        ("06625", "2020-01-15", "Bản Pò"),
        ("06625", "2025-08-01", "Bản Mới"),
    ]
    .iter()
    .enumerate()
    {
        let h = create(&mut admin, in_village(commune, registered, village, i))
            .await
            .expect("create");
        let current = Some(h.current_commune_code.clone());
        // Only the household registered in the new 06625 is placed.
        let expected = if i == 4 { "06625" } else { "" };
        assert_eq!(current.as_deref(), Some(expected), "household {i}");
        ids.push(h.id);
    }
    for id in &ids {
        let after = certified(&mut reviews, id, input(2025, 1_000_000, POOR3)).await;
        if id != &ids[4] {
            assert_eq!(after.commune_in_force, "", "not yet assigned: no part");
            let before = certified(&mut reviews, id, input(2024, 1_000_000, POOR3)).await;
            assert_eq!(before.commune_in_force, before.commune_code);
        }
    }
    let breakdown = |s: &pb::PovertySummary| -> Vec<(String, String, i64)> {
        s.mpi
            .as_ref()
            .expect("mpi")
            .subgroups
            .iter()
            .filter(|g| g.kind == "unit" || g.kind == "unassigned")
            .map(|g| (g.kind.clone(), g.key.clone(), g.households))
            .collect()
    };
    let row = |kind: &str, key: &str, n: i64| (kind.to_owned(), key.to_owned(), n);
    let s = summary(&mut reviews, "20", 2025).await.expect("2025");
    assert_eq!(
        breakdown(&s),
        [
            row("unit", "06625", 1),
            row("unassigned", "06622", 3),
            row("unassigned", "06625", 1),
        ]
    );
    let label = s
        .mpi
        .as_ref()
        .and_then(|m| m.subgroups.iter().find(|g| g.kind == "unassigned"))
        .map(|g| g.label.clone());
    assert_eq!(
        label.as_deref(),
        Some("from 06622 Xã Bính Xá, not yet assigned")
    );
    // The row asked alone: the split commune's households no part holds.
    let unassigned = |from: &str| pb::GetPovertySummaryRequest {
        unit_code: "20".into(),
        year: 2025,
        unassigned_from: from.into(),
    };
    let row_alone = reviews
        .get_poverty_summary(unassigned("06622"))
        .await
        .expect("unassigned")
        .into_inner()
        .summary
        .expect("summary");
    assert_eq!(row_alone.households_reviewed, 3);
    assert_eq!(row_alone.unassigned_from, "06622");
    let refused = reviews
        .get_poverty_summary(unassigned("06067"))
        .await
        .expect_err("not split");
    assert_eq!(violated_fields(&refused), ["unassigned_from"]);
    let gone = summary(&mut reviews, "06622", 2025)
        .await
        .expect_err("ended");
    assert!(
        gone.message().contains("not yet assigned"),
        "{}",
        gone.message()
    );
    for part in ["06613", "06625"] {
        let alone = summary(&mut reviews, part, 2025).await.expect("part");
        let expected = if part == "06625" { 1 } else { 0 };
        assert_eq!(
            alone.households_reviewed, expected,
            "{part} guesses nothing"
        );
    }

    let list = |c: &str| pb::ListVillageAssignmentsRequest {
        commune_code: c.into(),
    };
    let listed = province
        .list_village_assignments(list("06622"))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.part_codes, ["06613", "06625"]);
    assert!(listed.assignments.is_empty());
    let villages: Vec<(String, i64)> = listed
        .unassigned
        .iter()
        .map(|v| (v.village.clone(), v.households))
        .collect();
    assert_eq!(
        villages,
        [
            ("Thôn Bản Chắt".to_owned(), 2),
            ("Thôn Khe Lạn".to_owned(), 1)
        ]
    );

    let assign =
        |commune: &str, pairs: &[(&str, &str)], request_id: &str| pb::AssignVillagesRequest {
            commune_code: commune.into(),
            assignments: pairs
                .iter()
                .map(|(village, part)| pb::VillageAssignment {
                    village: (*village).into(),
                    successor_code: (*part).into(),
                    ..Default::default()
                })
                .collect(),
            request_id: request_id.into(),
        };
    // Bad input is named and changes nothing.
    let refused = province
        .assign_villages(assign(
            "06067",
            &[
                ("Thôn Bản Chắt", "06073"),
                ("", "06613"),
                ("thon ban chat", ""),
            ],
            "",
        ))
        .await
        .expect_err("bad");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&refused),
        [
            "commune_code",
            "assignments[1].village",
            "assignments[2].village"
        ],
        "not a split commune; no village; the first village again"
    );
    let refused = province
        .assign_villages(assign(
            "06622",
            &[("Thôn Bản Chắt", "06073"), ("thon ban chat", "06613")],
            "",
        ))
        .await
        .expect_err("bad");
    assert_eq!(
        violated_fields(&refused),
        ["assignments[0].successor_code", "assignments[1].village"]
    );
    // The province's admins only.
    for (role, scope) in [(Role::Admin, "189"), (Role::Enumerator, "20")] {
        let mut other = server.households(role, &[scope]).await;
        let refused = other
            .assign_villages(assign("06622", &[("Thôn Bản Chắt", "06613")], ""))
            .await
            .expect_err("not the province's admin");
        assert_eq!(refused.code(), Code::PermissionDenied, "{role:?} {scope}");
    }
    assert_eq!(
        summary(&mut reviews, "06613", 2025)
            .await
            .expect("part")
            .households_reviewed,
        0,
        "nothing moved"
    );

    // Assigned: the village's households move, however the village is spelt,
    // and a retry gets the first answer.
    let first = province
        .assign_villages(assign("06622", &[("THÔN BẢN CHẮT", "06613")], "assign-1"))
        .await
        .expect("assigned")
        .into_inner();
    assert_eq!(first.households_moved, 2);
    assert_eq!(first.assignments.len(), 1);
    assert_eq!(first.assignments[0].successor_code, "06613");
    assert_eq!(first.assignments[0].updated_by, "test-admin");
    let again = province
        .assign_villages(assign("06622", &[("THÔN BẢN CHẮT", "06613")], "assign-1"))
        .await
        .expect("retried")
        .into_inner();
    assert_eq!(again, first);
    for (i, id) in ids.iter().enumerate().take(3) {
        let h = get(&mut admin, id).await.expect("get");
        let current = h.current_commune_code;
        assert_eq!(current, if i < 2 { "06613" } else { "" }, "household {i}");
    }
    let s = summary(&mut reviews, "20", 2025).await.expect("2025");
    assert_eq!(
        breakdown(&s),
        [
            row("unit", "06613", 2),
            row("unit", "06625", 1),
            row("unassigned", "06622", 1),
            row("unassigned", "06625", 1),
        ]
    );
    let part = summary(&mut reviews, "06613", 2025).await.expect("part");
    assert_eq!(part.households_reviewed, 2, "the part counts them now");
    let moved = history(&mut reviews, &ids[0], 2025).await;
    assert_eq!(moved[0].commune_in_force, "06613");
    assert_eq!(moved[0].commune_code, "06622");

    // A household registered since in an assigned village is placed at once.
    let h = create(
        &mut admin,
        in_village("06622", "2022-03-01", "Thôn Bản Chắt", 9),
    )
    .await
    .expect("create");
    assert_eq!(Some(h.current_commune_code.as_str()), Some("06613"));
    // Taken back: its households are unassigned again.
    let back = province
        .assign_villages(assign("06622", &[("Thôn Bản Chắt", "")], ""))
        .await
        .expect("taken back")
        .into_inner();
    assert_eq!(back.households_moved, 3);
    assert!(back.assignments.is_empty());
    let s = summary(&mut reviews, "20", 2025).await.expect("2025");
    assert_eq!(
        breakdown(&s),
        [
            row("unit", "06625", 1),
            row("unassigned", "06622", 3),
            row("unassigned", "06625", 1),
        ]
    );
    assert_tallies_equal_recount(
        &server,
        &["20", "06613", "06625", "06622", "189"],
        &[2024, 2025],
    )
    .await;

    // A database from before: every such household guessed into the part
    // that kept the code, else the first. The migration takes them back.
    use sea_orm::{ConnectionTrait, Statement};
    let db = sustain_db::connect(&server.url).await.expect("db");
    for sql in [
        "UPDATE household SET current_commune_code = CASE commune_code WHEN '06622' THEN '06613' ELSE '06625' END \
         WHERE current_commune_code = ''",
        "UPDATE review SET current_commune_code = CASE commune_code WHEN '06622' THEN '06613' ELSE '06625' END \
         WHERE current_commune_code = ''",
        // Whatever the tallies held, the migration counts them again.
        "DELETE FROM review_tally",
        "DELETE FROM review_tally_province",
        "DROP TABLE village_assignment",
        "DELETE FROM seaql_migrations WHERE version = 'm20261205_100001_village_assignments'",
    ] {
        db.execute_unprepared(sql).await.expect(sql);
    }
    let guessed: i64 = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM household WHERE current_commune_code = ''",
        ))
        .await
        .expect("count")
        .expect("row")
        .try_get("", "n")
        .expect("n");
    assert_eq!(guessed, 0, "as an old database had them");
    sustain_registry::connect_and_migrate(&server.url)
        .await
        .expect("migrated again");
    let s = summary(&mut reviews, "20", 2025).await.expect("2025");
    assert_eq!(
        breakdown(&s),
        [
            row("unit", "06625", 1),
            row("unassigned", "06622", 3),
            row("unassigned", "06625", 1),
        ]
    );
    assert_tallies_equal_recount(
        &server,
        &["20", "06613", "06625", "06622", "189"],
        &[2024, 2025],
    )
    .await;
}
