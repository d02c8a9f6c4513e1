//! Livelihood models and enrolments against a real registry: classes read from
//! certified reviews, scope, the registry down or hanging, outcomes, summaries
//! equal to a recount, and every bad field named.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sustain_platform::Role;
use sustain_proto::programs::v1 as pb;
use tonic::Code;

const DISTRICT: &[&str] = &["181"];

async fn summary(
    suite: &Suite,
    unit: &str,
    scope: &[&str],
) -> Result<pb::ModelFigures, tonic::Status> {
    suite
        .summary(Role::Viewer, scope)
        .await
        .get_programme_summary(pb::GetProgrammeSummaryRequest {
            unit_code: unit.into(),
            from_year: 2022,
            to_year: 2025,
        })
        .await
        .map(|r| {
            r.into_inner()
                .summary
                .expect("summary")
                .models
                .expect("models")
        })
}

fn class_counts(f: &pb::ModelFigures) -> Vec<(pb::EnrolmentClass, i64)> {
    f.households_by_class
        .iter()
        .map(|c| {
            (
                pb::EnrolmentClass::try_from(c.class_at_enrolment).expect("class"),
                c.households,
            )
        })
        .collect()
}

#[tokio::test]
async fn enrolment_reads_each_class_from_certified_reviews_and_the_summary_recounts() {
    let suite = Suite::start().await;
    let ids = households(
        &suite,
        &[
            ("06067", Kind::Poor),
            ("06067", Kind::NearPoor),
            ("06070", Kind::RecentlyEscaped),
            ("06067", Kind::Other),
            ("06070", Kind::NeverReviewed),
        ],
    )
    .await;
    let mut clerk = suite.livelihood(Role::Enumerator, DISTRICT).await;
    let model = create_model(&mut clerk, livestock_model("Nuôi trâu sinh sản"))
        .await
        .expect("model");
    let enrolled = enrol(&mut clerk, &model.id, &ids, "2024-03-01")
        .await
        .expect("enrol");
    let classes: Vec<_> = enrolled
        .iter()
        .map(|e| {
            (
                pb::EnrolmentClass::try_from(e.class_at_enrolment).expect("class"),
                e.review_year,
            )
        })
        .collect();
    assert_eq!(
        classes,
        [
            (pb::EnrolmentClass::Poor, 2023),
            (pb::EnrolmentClass::NearPoor, 2023),
            (pb::EnrolmentClass::RecentlyEscaped, 2023),
            (pb::EnrolmentClass::Other, 2023),
            (pb::EnrolmentClass::Other, 0),
        ]
    );
    assert_eq!(enrolled[2].commune_code, "06070");

    // Enrolled in 2022, the escaping household was still poor.
    let mut other_model = livestock_model("Trồng hồi");
    other_model.r#type = pb::ModelType::Forestry as i32;
    let other = create_model(&mut clerk, other_model).await.expect("model");
    let early = enrol(&mut clerk, &other.id, &ids[2..3], "2022-06-01")
        .await
        .expect("enrol");
    assert_eq!(early[0].class_at_enrolment, pb::EnrolmentClass::Poor as i32);
    assert_eq!(early[0].review_year, 2022);

    let got = clerk
        .get_model(pb::GetModelRequest {
            id: model.id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .model
        .expect("model");
    assert_eq!(got.enrolled_households, 5);

    let figures = summary(&suite, "181", DISTRICT).await.expect("summary");
    assert_eq!(figures.models, 2);
    assert_eq!(figures.enrolments, 6);
    assert_eq!(figures.enrolled_households, 5);
    // Recount from the list, page by page.
    let listed = all_enrolments(
        &mut clerk,
        pb::EnrolmentFilter {
            unit_code: "181".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(listed.len() as i64, figures.enrolments);
    let mut recount: std::collections::BTreeMap<i32, std::collections::BTreeSet<String>> =
        Default::default();
    for e in &listed {
        recount
            .entry(e.class_at_enrolment)
            .or_default()
            .insert(e.household_id.clone());
    }
    let recounted: Vec<_> = recount
        .into_iter()
        .map(|(c, hs)| {
            (
                pb::EnrolmentClass::try_from(c).expect("class"),
                hs.len() as i64,
            )
        })
        .collect();
    assert_eq!(class_counts(&figures), recounted);
    assert_eq!(
        class_counts(&figures),
        [
            (pb::EnrolmentClass::Poor, 2),
            (pb::EnrolmentClass::NearPoor, 1),
            (pb::EnrolmentClass::RecentlyEscaped, 1),
            (pb::EnrolmentClass::Other, 2),
        ]
    );
    let by_type: Vec<_> = figures
        .by_type
        .iter()
        .map(|t| (t.r#type, t.models))
        .collect();
    assert_eq!(
        by_type,
        [
            (pb::ModelType::Livestock as i32, 1),
            (pb::ModelType::Forestry as i32, 1)
        ]
    );
    assert_eq!(figures.budget_vnd, 2_400_000_000);
    assert_eq!(figures.jobs_created, 50);

    // Filters: by class and by year.
    let poor = all_enrolments(
        &mut clerk,
        pb::EnrolmentFilter {
            class_at_enrolment: pb::EnrolmentClass::Poor as i32,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(poor.len(), 2);
    let in_2022 = all_enrolments(
        &mut clerk,
        pb::EnrolmentFilter {
            year: 2022,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(in_2022.len(), 1);

    // Archived enrolments stop counting.
    let mut approver = suite.livelihood(Role::Approver, DISTRICT).await;
    approver
        .archive_enrolment(pb::ArchiveEnrolmentRequest {
            id: early[0].id.clone(),
            etag: early[0].meta.clone().expect("meta").etag,
            reason: "entered twice".into(),
            request_id: String::new(),
        })
        .await
        .expect("archive");
    let after = summary(&suite, "181", DISTRICT).await.expect("summary");
    assert_eq!(after.enrolments, 5);
}

#[tokio::test]
async fn outcomes_are_computed_not_typed_in() {
    let suite = Suite::start().await;
    let ids = households(&suite, &[("06067", Kind::Poor), ("06067", Kind::NearPoor)]).await;
    let mut clerk = suite.livelihood(Role::Enumerator, DISTRICT).await;
    let model = create_model(&mut clerk, livestock_model("Nuôi lợn đen"))
        .await
        .expect("model");
    let enrolled = enrol(&mut clerk, &model.id, &ids, "2023-04-01")
        .await
        .expect("enrol");

    let record = |e: &pb::Enrolment, before: i64, after: i64, profit: i64, on: &str| {
        pb::UpdateEnrolmentRequest {
            enrolment: Some(pb::Enrolment {
                id: e.id.clone(),
                outcome: Some(pb::Outcome {
                    income_before_vnd: before,
                    income_after_vnd: after,
                    yearly_profit_vnd: profit,
                    measured_on: on.into(),
                    ..Default::default()
                }),
                meta: e.meta.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["outcome".into()],
            }),
            request_id: String::new(),
        }
    };
    let lifted = clerk
        .update_enrolment(record(
            &enrolled[0],
            40_000_000,
            56_000_000,
            35_000_000,
            "2024-12-01",
        ))
        .await
        .expect("outcome")
        .into_inner()
        .enrolment
        .expect("enrolment");
    let o = lifted.outcome.expect("outcome");
    assert_eq!(o.income_change_percent, "40");
    assert!(o.income_up_30_percent && o.profit_in_target);

    // Every bad field named, nothing changed.
    let bad = clerk
        .update_enrolment(record(&enrolled[1], -1, -5, 0, "2023-01-01"))
        .await
        .expect_err("bad outcome");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&bad),
        [
            "enrolment.outcome.income_before_vnd",
            "enrolment.outcome.income_after_vnd",
            "enrolment.outcome.measured_on"
        ]
    );
    // A base income too small to measure a change against is refused.
    let tiny = clerk
        .update_enrolment(record(&enrolled[1], 500_000, 40_000_000, 0, "2024-12-01"))
        .await
        .expect_err("tiny base");
    assert_eq!(
        violated_fields(&tiny),
        ["enrolment.outcome.income_before_vnd"]
    );
    // A stale etag is refused.
    let stale = clerk
        .update_enrolment(record(&enrolled[0], 1, 2, 3, "2024-12-01"))
        .await
        .expect_err("stale");
    assert_eq!(stale.code(), Code::Aborted);

    let modest = clerk
        .update_enrolment(record(
            &enrolled[1],
            50_000_000,
            60_000_000,
            20_000_000,
            "2024-12-01",
        ))
        .await
        .expect("outcome")
        .into_inner()
        .enrolment
        .expect("enrolment")
        .outcome
        .expect("outcome");
    assert_eq!(modest.income_change_percent, "20");
    assert!(!modest.income_up_30_percent && !modest.profit_in_target);

    let figures = summary(&suite, "181", DISTRICT).await.expect("summary");
    assert_eq!(figures.outcomes_measured, 2);
    assert_eq!(figures.income_up_30_percent, 1);
    assert_eq!(figures.profit_in_target, 1);
    assert_eq!(figures.average_income_change_percent, "30");
}

#[tokio::test]
async fn households_outside_scope_or_the_model_area_are_refused_and_nothing_is_written() {
    let suite = Suite::start().await;
    let ids = households(
        &suite,
        &[
            ("06067", Kind::Poor),
            ("06127", Kind::Poor), // district 182
            ("06079", Kind::Poor), // district 181, outside the model's communes
        ],
    )
    .await;
    let mut clerk = suite.livelihood(Role::Enumerator, DISTRICT).await;
    let model = create_model(&mut clerk, livestock_model("Nuôi dê"))
        .await
        .expect("model");

    let denied = enrol(&mut clerk, &model.id, &ids[0..2], "2024-03-01")
        .await
        .expect_err("out of scope");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied.message().contains("enrolments[1].household_id"),
        "{}",
        denied.message()
    );

    let unknown = uuid::Uuid::now_v7().to_string();
    let refused = enrol(
        &mut clerk,
        &model.id,
        &[ids[0].clone(), ids[2].clone(), unknown, ids[0].clone()],
        "2024-03-01",
    )
    .await
    .expect_err("bad batch");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["enrolments[3].household_id"]);
    let refused = enrol(
        &mut clerk,
        &model.id,
        &[
            ids[0].clone(),
            ids[2].clone(),
            uuid::Uuid::now_v7().to_string(),
        ],
        "2024-03-01",
    )
    .await
    .expect_err("bad batch");
    assert_eq!(
        violated_fields(&refused),
        ["enrolments[1].household_id", "enrolments[2].household_id"]
    );
    let early = enrol(&mut clerk, &model.id, &ids[0..1], "2021-01-01")
        .await
        .expect_err("before the model");
    assert_eq!(violated_fields(&early), ["enrolments[0].enrolled_on"]);

    assert!(
        all_enrolments(&mut clerk, pb::EnrolmentFilter::default())
            .await
            .is_empty()
    );

    enrol(&mut clerk, &model.id, &ids[0..1], "2024-03-01")
        .await
        .expect("enrol");
    let twice = enrol(&mut clerk, &model.id, &ids[0..1], "2024-04-01")
        .await
        .expect_err("twice");
    assert_eq!(twice.code(), Code::AlreadyExists);
    assert_eq!(reason(&twice), "ALREADY_ENROLLED");

    // Another district's clerk sees neither the model nor the enrolment.
    let mut elsewhere = suite.livelihood(Role::Enumerator, &["182"]).await;
    let hidden = elsewhere
        .get_model(pb::GetModelRequest {
            id: model.id.clone(),
        })
        .await
        .expect_err("hidden");
    assert_eq!(hidden.code(), Code::PermissionDenied);
    assert!(
        all_enrolments(&mut elsewhere, pb::EnrolmentFilter::default())
            .await
            .is_empty()
    );
    let listed = elsewhere
        .list_models(pb::ListModelsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.models.is_empty());
    // A commune officer sees the district's model its households enrol in.
    let mut commune = suite.livelihood(Role::Viewer, &["06067"]).await;
    let seen = commune
        .list_models(pb::ListModelsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(seen.models.len(), 1);
    // Summaries need the whole unit in scope.
    let partial = summary(&suite, "20", DISTRICT)
        .await
        .expect_err("province from a district");
    assert_eq!(partial.code(), Code::PermissionDenied);
    // Viewers read but do not write.
    let mut viewer = suite.livelihood(Role::Viewer, DISTRICT).await;
    let no = create_model(&mut viewer, livestock_model("x"))
        .await
        .expect_err("viewer");
    assert_eq!(no.code(), Code::PermissionDenied);
    let no = enrol(&mut viewer, &model.id, &ids[0..1], "2024-03-01")
        .await
        .expect_err("viewer");
    assert_eq!(no.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn registry_down_or_hanging_is_unavailable_and_nothing_is_written() {
    let mut suite = Suite::start().await;
    let ids = households(&suite, &[("06067", Kind::Poor)]).await;
    let mut clerk = suite.livelihood(Role::Enumerator, DISTRICT).await;
    let model = create_model(&mut clerk, livestock_model("Nuôi gà"))
        .await
        .expect("model");

    suite
        .registry
        .take()
        .expect("registry")
        .stop()
        .await
        .expect("stopped cleanly");
    let down = enrol(&mut clerk, &model.id, &ids, "2024-03-01")
        .await
        .expect_err("registry down");
    assert_eq!(down.code(), Code::Unavailable);
    assert!(
        all_enrolments(&mut clerk, pb::EnrolmentFilter::default())
            .await
            .is_empty()
    );

    // A registry that accepts connections and never answers: the deadline holds.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut open = vec![];
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let programs = start_programs(&suite.programs_db.url, silent_addr, 400).await;
    let mut clerk = sustain_proto::programs::v1::livelihood_service_client::LivelihoodServiceClient::with_interceptor(
        programs.channel().await.expect("connect"),
        Bearer(sustain_testkit::token(Role::Enumerator, DISTRICT)),
    );
    let started = Instant::now();
    let hung = enrol(&mut clerk, &model.id, &ids, "2024-03-01")
        .await
        .expect_err("registry hangs");
    assert_eq!(hung.code(), Code::Unavailable);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        all_enrolments(&mut clerk, pb::EnrolmentFilter::default())
            .await
            .is_empty()
    );
    held.abort();
}

#[tokio::test]
async fn bad_models_name_every_field() {
    let suite = Suite::start().await;
    let mut clerk = suite.livelihood(Role::Enumerator, DISTRICT).await;
    let bad = pb::LivelihoodModel {
        project_code: "NTP-SPR.2".into(),
        name: " ".into(),
        r#type: 0,
        unit_code: "181".into(),
        commune_codes: vec!["06127".into(), "9".into()],
        start_date: "2024-05-01".into(),
        end_date: "2024-01-01".into(),
        budget_vnd: -1,
        jobs_created: -2,
        ..Default::default()
    };
    let status = create_model(&mut clerk, bad).await.expect_err("bad model");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        [
            "model.name",
            "model.type",
            "model.end_date",
            "model.commune_codes[0]",
            "model.commune_codes[1]",
            "model.budget_vnd",
            "model.jobs_created"
        ]
    );
    let mut housing = livestock_model("Nhà");
    housing.project_code = "NTP-SPR.5".into();
    let status = create_model(&mut clerk, housing)
        .await
        .expect_err("not a model project");
    assert_eq!(violated_fields(&status), ["model.project_code"]);
    let mut elsewhere = livestock_model("Elsewhere");
    elsewhere.unit_code = "182".into();
    elsewhere.commune_codes = vec![];
    let status = create_model(&mut clerk, elsewhere)
        .await
        .expect_err("other district");
    assert_eq!(status.code(), Code::PermissionDenied);
    let listed = clerk
        .list_models(pb::ListModelsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.models.is_empty());

    // An update replaces only the masked fields, checked whole.
    let model = create_model(&mut clerk, livestock_model("Nuôi bò"))
        .await
        .expect("model");
    let updated = clerk
        .update_model(pb::UpdateModelRequest {
            model: Some(pb::LivelihoodModel {
                id: model.id.clone(),
                jobs_created: 40,
                name: "ignored".into(),
                meta: model.meta.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["jobs_created".into()],
            }),
            request_id: String::new(),
        })
        .await
        .expect("update")
        .into_inner()
        .model
        .expect("model");
    assert_eq!(
        (updated.jobs_created, updated.name.as_str()),
        (40, "Nuôi bò")
    );
    let unknown_path = clerk
        .update_model(pb::UpdateModelRequest {
            model: Some(pb::LivelihoodModel {
                id: model.id.clone(),
                meta: updated.meta.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["unit_code".into()],
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("unit is fixed");
    assert_eq!(violated_fields(&unknown_path), ["update_mask"]);
}

#[tokio::test]
async fn the_catalog_holds_decision_90_and_a_province_adds_its_own() {
    let suite = Suite::start().await;
    let mut catalog = suite.catalog(Role::Admin, &["20"]).await;
    let items = catalog
        .list_programme_items(pb::ListProgrammeItemsRequest {
            page_size: 500,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .items;
    assert_eq!(items.len(), sustain_domain::programme::DECISION_90.len());
    let projects = catalog
        .list_programme_items(pb::ListProgrammeItemsRequest {
            parent_code: "NTP-SPR".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .items;
    assert_eq!(projects.len(), 7);

    let own = catalog
        .create_programme_item(pb::CreateProgrammeItemRequest {
            item: Some(pb::ProgrammeItem {
                code: "LS-3.1-CATTLE".into(),
                parent_code: "NTP-SPR.3.1".into(),
                level: pb::ItemLevel::Activity as i32,
                name: "Lạng Sơn cattle breeding support".into(),
                owner_unit_code: "20".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create")
        .into_inner()
        .item
        .expect("item");
    assert_eq!(own.project_code, "NTP-SPR.3");

    let seeded = catalog
        .update_programme_item(pb::UpdateProgrammeItemRequest {
            item: Some(pb::ProgrammeItem {
                code: "NTP-SPR.2".into(),
                name: "renamed".into(),
                meta: Some(pb::RecordMeta {
                    etag: "v1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: None,
            request_id: String::new(),
        })
        .await
        .expect_err("seeded is read-only");
    assert_eq!(seeded.code(), Code::FailedPrecondition);

    // Another province neither sees Lạng Sơn's own item nor adds under it.
    let mut cao_bang = suite.catalog(Role::Admin, &["04"]).await;
    let hidden = cao_bang
        .get_programme_item(pb::GetProgrammeItemRequest {
            code: own.code.clone(),
        })
        .await
        .expect_err("hidden");
    assert_eq!(hidden.code(), Code::NotFound);

    // A model under the province's own activity counts as a Project 3 project.
    let mut clerk = suite.livelihood(Role::Enumerator, DISTRICT).await;
    let mut model = livestock_model("Bò lai");
    model.project_code = own.code.clone();
    create_model(&mut clerk, model)
        .await
        .expect("model under own item");
    let figures = summary(&suite, "181", DISTRICT).await.expect("summary");
    assert_eq!((figures.models, figures.project3_models), (1, 1));

    let mut clerk_catalog = suite.catalog(Role::Enumerator, &["20"]).await;
    let no = clerk_catalog
        .create_programme_item(pb::CreateProgrammeItemRequest {
            item: Some(pb::ProgrammeItem::default()),
            request_id: String::new(),
        })
        .await
        .expect_err("enumerators do not edit the catalog");
    assert_eq!(no.code(), Code::PermissionDenied);
}

/// The summary's enrolment figures come from running tallies; after every
/// kind of write they equal a recount from the enrolments, for every unit
/// level and for periods that cut the enrolment years differently.
#[tokio::test]
async fn tallies_equal_a_recount_after_every_kind_of_write() {
    let suite = Suite::start().await;
    let ids = households(
        &suite,
        &[
            ("06067", Kind::Poor),
            ("06067", Kind::NearPoor),
            ("06070", Kind::RecentlyEscaped),
            ("06070", Kind::Other),
            ("06067", Kind::Poor),
        ],
    )
    .await;
    let db = sustain_db::connect(&suite.programs_db.url)
        .await
        .expect("programs database");
    let check = |step: &'static str| {
        let db = db.clone();
        async move {
            for unit in ["20", "181", "06067", "06070"] {
                for (from, to) in [
                    (2022, 2022),
                    (2022, 2025),
                    (2023, 2024),
                    (2024, 2024),
                    (2025, 2025),
                ] {
                    let tallied = sustain_programs::summary::model_figures(&db, unit, from, to)
                        .await
                        .expect("tallied");
                    let recounted =
                        sustain_programs::summary::recount_model_figures(&db, unit, from, to)
                            .await
                            .expect("recounted");
                    assert_eq!(tallied, recounted, "{step}: {unit} {from}–{to}");
                }
            }
        }
    };
    let mut clerk = suite.livelihood(Role::Enumerator, DISTRICT).await;
    let livestock = create_model(&mut clerk, livestock_model("Nuôi bò"))
        .await
        .expect("model");
    let mut production = livestock_model("Dự án trồng thạch đen");
    production.project_code = "NTP-SPR.3.1".into();
    production.r#type = pb::ModelType::Crop as i32;
    let production = create_model(&mut clerk, production).await.expect("model");
    check("models only").await;

    let first = enrol(&mut clerk, &livestock.id, &ids[..3], "2022-05-01")
        .await
        .expect("enrol");
    let second = enrol(&mut clerk, &production.id, &ids[1..], "2024-02-01")
        .await
        .expect("enrol");
    check("enrolled").await;
    let both = summary(&suite, "181", DISTRICT).await.expect("summary");
    assert_eq!(both.enrolments, 7);
    assert_eq!(both.enrolled_households, 5, "households in both count once");

    let outcome = |e: &pb::Enrolment, before: i64, after: i64| pb::UpdateEnrolmentRequest {
        enrolment: Some(pb::Enrolment {
            id: e.id.clone(),
            outcome: Some(pb::Outcome {
                income_before_vnd: before,
                income_after_vnd: after,
                yearly_profit_vnd: 40_000_000,
                measured_on: "2025-01-10".into(),
                ..Default::default()
            }),
            meta: e.meta.clone(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["outcome".into()],
        }),
        request_id: String::new(),
    };
    let measured = clerk
        .update_enrolment(outcome(&first[0], 30_000_000, 45_000_000))
        .await
        .expect("outcome")
        .into_inner()
        .enrolment
        .expect("enrolment");
    clerk
        .update_enrolment(outcome(&second[2], 40_000_000, 41_000_000))
        .await
        .expect("outcome");
    check("outcomes").await;
    // Measured again: the old outcome stops counting.
    clerk
        .update_enrolment(outcome(&measured, 30_000_000, 33_000_000))
        .await
        .expect("outcome again");
    check("outcome corrected").await;
    let corrected = summary(&suite, "181", DISTRICT).await.expect("summary");
    assert_eq!(corrected.outcomes_measured, 2);
    assert_eq!(corrected.income_up_30_percent, 0);
    assert_eq!(corrected.average_income_change_percent, "6.25");

    // Archiving: ids[1] keeps its 2024 enrolment, so it stays in 2022–2025
    // but leaves 2022; ids[4] had only this one and leaves altogether.
    let mut approver = suite.livelihood(Role::Approver, DISTRICT).await;
    for e in [&first[1], &second[3]] {
        approver
            .archive_enrolment(pb::ArchiveEnrolmentRequest {
                id: e.id.clone(),
                etag: e.meta.clone().expect("meta").etag,
                reason: "enrolled by mistake".into(),
                request_id: String::new(),
            })
            .await
            .expect("archive");
    }
    check("archived").await;
    let after = summary(&suite, "181", DISTRICT).await.expect("summary");
    assert_eq!(after.enrolments, 5);
    assert_eq!(after.enrolled_households, 4);
    let only_2022 = sustain_programs::summary::model_figures(&db, "181", 2022, 2022)
        .await
        .expect("2022");
    assert_eq!(only_2022.enrolled_households, 2);

    // Two batches of the same households into two models at once: the
    // households' reach is updated one transaction after the other.
    let mut models = vec![];
    for name in ["Nuôi dê", "Nuôi gà"] {
        models.push(
            create_model(&mut clerk, livestock_model(name))
                .await
                .expect("model"),
        );
    }
    let mut other_clerk = suite.livelihood(Role::Enumerator, DISTRICT).await;
    let (a, b) = tokio::join!(
        enrol(&mut clerk, &models[0].id, &ids, "2025-03-01"),
        enrol(&mut other_clerk, &models[1].id, &ids, "2025-03-01"),
    );
    a.expect("first batch");
    b.expect("second batch");
    check("concurrent batches").await;
    let in_2025 = sustain_programs::summary::model_figures(&db, "181", 2025, 2025)
        .await
        .expect("2025");
    assert_eq!((in_2025.enrolments, in_2025.enrolled_households), (10, 5));

    // Built from scratch, the tallies are the same as kept.
    sustain_programs::store::tally::rebuild(&db)
        .await
        .expect("rebuild");
    check("rebuilt").await;
}

#[tokio::test]
async fn a_summary_asked_again_after_each_write_is_never_stale() {
    let suite = Suite::start().await;
    let ids = households(&suite, &[("06067", Kind::Poor), ("06067", Kind::NearPoor)]).await;
    let figures = |s: pb::ProgrammeSummary| {
        let m = s.models.expect("models");
        (m.models, m.enrolments, m.enrolled_households)
    };
    let read = || async {
        figures(
            programme_summary(&suite, "181", &["181"], 2022, 2024)
                .await
                .expect("summary"),
        )
    };
    assert_eq!(read().await, (0, 0, 0));
    // Asked twice with nothing between: the same answer.
    assert_eq!(read().await, (0, 0, 0));
    let mut client = suite.livelihood(Role::Admin, &["181"]).await;
    let model = create_model(&mut client, livestock_model("Nuôi bò sinh sản"))
        .await
        .expect("model");
    assert_eq!(read().await, (1, 0, 0));
    enrol(&mut client, &model.id, &ids, "2023-04-01")
        .await
        .expect("enrol");
    assert_eq!(read().await, (1, 2, 2));
    create_model(&mut client, livestock_model("Nuôi dê"))
        .await
        .expect("second model");
    assert_eq!(read().await, (2, 2, 2));
}
