//! Training, support, communication and inspections against a real registry:
//! members checked, statuses derived, every bad field named, scope held, and
//! the summary's figures matching what was recorded.

mod common;

use common::*;
use sea_orm::{ConnectionTrait, Database, Statement};
use sustain_platform::Role;
use sustain_proto::programs::v1 as pb;
use sustain_proto::programs::v1::communication_service_client::CommunicationServiceClient;
use sustain_proto::programs::v1::inspection_service_client::InspectionServiceClient;
use sustain_proto::programs::v1::support::Details;
use sustain_proto::programs::v1::support_service_client::SupportServiceClient;
use sustain_proto::programs::v1::training_service_client::TrainingServiceClient;
use tonic::Code;

const DISTRICT: &[&str] = &["181"];

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

#[tokio::test]
async fn courses_take_members_of_registered_households_and_count_jobs() {
    let suite = Suite::start().await;
    let ids = households(&suite, &[("06067", Kind::Poor), ("06070", Kind::NearPoor)]).await;
    let first = members_of(&suite, &ids[0]).await;
    let second = members_of(&suite, &ids[1]).await;
    let mut training = client(
        TrainingServiceClient::new,
        suite.programs.channel().await.expect("connect"),
        Role::Enumerator,
        DISTRICT,
    );

    let course = training
        .create_course(pb::CreateCourseRequest {
            course: Some(pb::Course {
                project_code: "NTP-SPR.4.1".into(),
                kind: pb::CourseKind::Vocational as i32,
                name: "Sửa chữa máy nông nghiệp".into(),
                unit_code: "181".into(),
                start_date: "2024-03-01".into(),
                end_date: "2024-06-30".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("course")
        .into_inner()
        .course
        .expect("course");

    let mismatched = training
        .batch_create_trainees(pb::BatchCreateTraineesRequest {
            course_id: course.id.clone(),
            trainees: vec![
                pb::NewTrainee {
                    household_id: ids[0].clone(),
                    member_id: first[0].clone(),
                },
                pb::NewTrainee {
                    household_id: ids[0].clone(),
                    member_id: second[0].clone(),
                },
            ],
            request_id: String::new(),
        })
        .await
        .expect_err("member of another household");
    assert_eq!(violated_fields(&mismatched), ["trainees[1].member_id"]);

    let trainees = training
        .batch_create_trainees(pb::BatchCreateTraineesRequest {
            course_id: course.id.clone(),
            trainees: vec![
                pb::NewTrainee {
                    household_id: ids[0].clone(),
                    member_id: first[0].clone(),
                },
                pb::NewTrainee {
                    household_id: ids[1].clone(),
                    member_id: second[0].clone(),
                },
            ],
            request_id: String::new(),
        })
        .await
        .expect("trainees")
        .into_inner()
        .trainees;
    assert_eq!(
        trainees[0].class_at_enrolment,
        pb::EnrolmentClass::Poor as i32
    );
    assert_eq!(
        trainees[1].class_at_enrolment,
        pb::EnrolmentClass::NearPoor as i32
    );

    let employ =
        |t: &pb::Trainee, kind: pb::EmploymentKind, country: &str| pb::UpdateTraineeRequest {
            trainee: Some(pb::Trainee {
                id: t.id.clone(),
                completed: true,
                employment: Some(pb::Employment {
                    kind: kind as i32,
                    destination_country: country.into(),
                    started_on: "2024-08-01".into(),
                }),
                meta: t.meta.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["completed", "employment"]),
            request_id: String::new(),
        };
    let bad = training
        .update_trainee(employ(&trainees[0], pb::EmploymentKind::WorkAbroad, "XX"))
        .await
        .expect_err("bad country");
    assert_eq!(
        violated_fields(&bad),
        ["trainee.employment.destination_country"]
    );
    training
        .update_trainee(employ(&trainees[0], pb::EmploymentKind::WorkAbroad, "JP"))
        .await
        .expect("abroad");

    let capacity = training
        .create_course(pb::CreateCourseRequest {
            course: Some(pb::Course {
                project_code: "NTP-SPR.7.1".into(),
                kind: pb::CourseKind::Capacity as i32,
                name: "Bồi dưỡng cán bộ giảm nghèo".into(),
                unit_code: "181".into(),
                start_date: "2024-05-01".into(),
                official_participants: 30,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("capacity course")
        .into_inner()
        .course
        .expect("course");
    let officials_only = training
        .batch_create_trainees(pb::BatchCreateTraineesRequest {
            course_id: capacity.id.clone(),
            trainees: vec![pb::NewTrainee {
                household_id: ids[0].clone(),
                member_id: first[0].clone(),
            }],
            request_id: String::new(),
        })
        .await
        .expect_err("capacity courses count officials");
    assert_eq!(officials_only.code(), Code::FailedPrecondition);

    let bad_course = training
        .create_course(pb::CreateCourseRequest {
            course: Some(pb::Course {
                unit_code: "181".into(),
                start_date: "2024-13-01".into(),
                official_participants: -1,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("bad course");
    assert_eq!(
        violated_fields(&bad_course),
        [
            "course.project_code",
            "course.kind",
            "course.name",
            "course.start_date",
            "course.official_participants"
        ]
    );

    let s = programme_summary(&suite, "181", DISTRICT, 2022, 2024)
        .await
        .expect("summary");
    let t = s.training.expect("training");
    assert_eq!(
        (
            t.courses,
            t.trainees,
            t.completed,
            t.working_abroad,
            t.official_participants
        ),
        (2, 2, 1, 1, 30)
    );
    assert_eq!(t.completion_percent, "50");
    assert_eq!(
        t.abroad_by_country,
        [pb::CountryCount {
            country: "JP".into(),
            workers: 1
        }]
    );

    // Another district sees none of it.
    let mut elsewhere = client(
        TrainingServiceClient::new,
        suite.programs.channel().await.expect("connect"),
        Role::Viewer,
        &["182"],
    );
    let hidden = elsewhere
        .get_course(pb::GetCourseRequest {
            id: course.id.clone(),
        })
        .await
        .expect_err("hidden");
    assert_eq!(hidden.code(), Code::PermissionDenied);
    let listed = elsewhere
        .list_trainees(pb::ListTraineesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.trainees.is_empty());
}

#[tokio::test]
async fn support_is_checked_with_the_registry_and_nutrition_status_is_derived() {
    let suite = Suite::start().await;
    let ids = households(
        &suite,
        &[
            ("06067", Kind::Poor),
            ("06070", Kind::Other),
            ("06127", Kind::Poor),
        ],
    )
    .await;
    let members = members_of(&suite, &ids[0]).await;
    let (head, child) = (members[0].clone(), members[1].clone());
    let mut support = client(
        SupportServiceClient::new,
        suite.programs.channel().await.expect("connect"),
        Role::Enumerator,
        DISTRICT,
    );
    let record = |member: &str, on: &str, details: Details| pb::CreateSupportRequest {
        support: Some(pb::Support {
            household_id: ids[0].clone(),
            member_id: member.into(),
            provided_on: on.into(),
            details: Some(details),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let check = support
        .create_support(record(
            &child,
            "2024-08-01",
            Details::Nutrition(pb::NutritionCheck {
                weight_grams: 7_000,
                height_mm: 700,
                ..Default::default()
            }),
        ))
        .await
        .expect("nutrition check")
        .into_inner()
        .support
        .expect("support");
    let Some(Details::Nutrition(n)) = check.details else {
        panic!("nutrition details")
    };
    // A girl of 18 months at 7.0 kg and 70 cm is below −3 SD on both.
    assert_eq!(n.age_months, 18);
    assert_eq!(
        (n.underweight, n.stunted),
        (pb::Deficit::Severe as i32, pb::Deficit::Severe as i32)
    );
    assert!(
        n.weight_for_age_z.starts_with('-'),
        "{}",
        n.weight_for_age_z
    );
    assert_eq!(check.class_at_support, pb::EnrolmentClass::Poor as i32);

    // The head is no under-five child; insurance needs a member; the
    // household must be the caller's.
    let adult = support
        .create_support(record(
            &head,
            "2024-08-01",
            Details::Nutrition(pb::NutritionCheck {
                weight_grams: 7_000,
                height_mm: 700,
                ..Default::default()
            }),
        ))
        .await
        .expect_err("adult");
    assert_eq!(violated_fields(&adult), ["support.provided_on"]);
    let no_member = support
        .create_support(record(
            "",
            "2024-08-01",
            Details::HealthInsurance(pb::HealthInsuranceCard {
                valid_from: "2024-01-01".into(),
                valid_to: "2023-12-31".into(),
            }),
        ))
        .await
        .expect_err("insurance needs a member");
    assert_eq!(
        violated_fields(&no_member),
        ["support.health_insurance.valid_to", "support.member_id"]
    );
    let mut elsewhere = record(
        "",
        "2024-08-01",
        Details::LegalAid(pb::LegalAid {
            matter: "land".into(),
        }),
    );
    elsewhere.support.as_mut().expect("support").household_id = ids[2].clone();
    let denied = support
        .create_support(elsewhere)
        .await
        .expect_err("other district");
    assert_eq!(denied.code(), Code::PermissionDenied);

    support
        .create_support(record(
            &head,
            "2024-02-01",
            Details::HealthInsurance(pb::HealthInsuranceCard {
                valid_from: "2024-01-01".into(),
                valid_to: "2024-12-31".into(),
            }),
        ))
        .await
        .expect("card");
    support
        .create_support(record(
            "",
            "2024-03-01",
            Details::Housing(pb::Housing {
                work: pb::HousingWork::Build as i32,
                amount_vnd: 40_000_000,
                completed_on: "2024-09-01".into(),
            }),
        ))
        .await
        .expect("house");

    // Measurements are health data: stored encrypted.
    let db = Database::connect(&suite.programs_db.url).await.expect("db");
    let stored = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT details_enc FROM support WHERE id = '{}'", check.id),
        ))
        .await
        .expect("query")
        .expect("row");
    let sealed: String = stored.try_get("", "details_enc").expect("column");
    assert!(!sealed.contains("weight"), "{sealed}");

    let s = programme_summary(&suite, "181", DISTRICT, 2022, 2024)
        .await
        .expect("summary");
    let f = s.support.expect("support");
    assert_eq!(
        (
            f.insurance_cards,
            f.houses_built,
            f.houses_completed,
            f.housing_vnd
        ),
        (1, 1, 1, 40_000_000)
    );
    assert_eq!(
        (
            f.nutrition_checks,
            f.underweight,
            f.stunted,
            f.children_measured
        ),
        (1, 1, 1, 1)
    );
    // Two households in 181, each with a child born in 2023.
    assert_eq!(f.children_under_five, 2);
    assert_eq!(f.nutrition_coverage_percent, "50");

    // A key rotation: the measurements sealed with the old key are sealed
    // again with the new one, and then open with it alone.
    {
        use sea_orm::EntityTrait;
        use sustain_platform::crypto::FieldCipher;
        let db = sustain_db::connect(&suite.programs_db.url)
            .await
            .expect("connect");
        let new_key = [43; 32];
        let rotated = FieldCipher::with_previous(&new_key, &[sustain_testkit::FIELD_KEY]);
        let seals = sustain_programs::store::reseal::SupportSeals(rotated);
        let done = sustain_platform::reseal::run(&db, &[&seals], 100, false, |_| {})
            .await
            .expect("resealed");
        // Every record the test made, each sealed again once.
        let total = done[0].total;
        assert!(total >= 1);
        assert_eq!((done[0].done, done[0].changed), (total, total));
        let row = sustain_programs::model::support::Entity::find_by_id(check.id.clone())
            .one(&db)
            .await
            .expect("read")
            .expect("the record");
        let opened = FieldCipher::new(&new_key)
            .decrypt(&row.details_enc, &row.id)
            .expect("opens with the new key alone");
        assert!(opened.contains("7000"), "{opened}");
    }
}

#[tokio::test]
async fn communication_and_inspections_are_counted_with_open_follow_ups() {
    let suite = Suite::start().await;
    let mut comms = client(
        CommunicationServiceClient::new,
        suite.programs.channel().await.expect("connect"),
        Role::Enumerator,
        DISTRICT,
    );
    let activity =
        |kind: pb::ActivityKind, count: i64, participants: i64| pb::CreateActivityRequest {
            activity: Some(pb::CommunicationActivity {
                kind: kind as i32,
                title: "Tuyên truyền giảm nghèo".into(),
                unit_code: "181".into(),
                held_on: "2023-05-10".into(),
                count,
                participants,
                ..Default::default()
            }),
            request_id: String::new(),
        };
    comms
        .create_activity(activity(pb::ActivityKind::Article, 12, 0))
        .await
        .expect("articles");
    comms
        .create_activity(activity(pb::ActivityKind::Leaflet, 5_000, 0))
        .await
        .expect("leaflets");
    comms
        .create_activity(activity(pb::ActivityKind::Dialogue, 0, 80))
        .await
        .expect("dialogue");
    let missing = comms
        .create_activity(activity(pb::ActivityKind::Article, 0, -1))
        .await
        .expect_err("no count");
    assert_eq!(
        violated_fields(&missing),
        ["activity.count", "activity.participants"]
    );

    let mut inspections = client(
        InspectionServiceClient::new,
        suite.programs.channel().await.expect("connect"),
        Role::Enumerator,
        DISTRICT,
    );
    let inspection = inspections
        .create_inspection(pb::CreateInspectionRequest {
            inspection: Some(pb::Inspection {
                inspecting_body: "Ban Chỉ đạo huyện".into(),
                unit_code: "06067".into(),
                held_on: "2024-04-02".into(),
                findings: "Two models behind schedule".into(),
                follow_ups: vec![
                    pb::FollowUp {
                        action: "Re-plan the cattle model".into(),
                        due_on: "2024-06-30".into(),
                        closed_on: "2024-06-20".into(),
                    },
                    pb::FollowUp {
                        action: "Audit the seed purchase".into(),
                        due_on: "2024-07-31".into(),
                        closed_on: String::new(),
                    },
                ],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("inspection")
        .into_inner()
        .inspection
        .expect("inspection");
    assert_eq!(
        (inspection.open_follow_ups, inspection.overdue_follow_ups),
        (1, 1)
    );
    let bad = inspections
        .create_inspection(pb::CreateInspectionRequest {
            inspection: Some(pb::Inspection {
                inspecting_body: "x".into(),
                unit_code: "181".into(),
                held_on: "2024-04-02".into(),
                follow_ups: vec![pb::FollowUp {
                    action: String::new(),
                    due_on: "2024-01-01".into(),
                    closed_on: String::new(),
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("bad follow-up");
    assert_eq!(
        violated_fields(&bad),
        [
            "inspection.follow_ups[0].action",
            "inspection.follow_ups[0].due_on"
        ]
    );

    let s = programme_summary(&suite, "181", DISTRICT, 2022, 2024)
        .await
        .expect("summary");
    let c = s.communication.expect("communication");
    assert_eq!(
        (
            c.activities,
            c.articles,
            c.leaflets,
            c.dialogue_participants
        ),
        (3, 12, 5_000, 80)
    );
    let i = s.inspections.expect("inspections");
    assert_eq!(
        (
            i.inspections,
            i.with_open_follow_ups,
            i.with_overdue_follow_ups
        ),
        (1, 1, 1)
    );

    // Closing the last action closes the inspection's follow-ups.
    let mut closed = inspection.clone();
    closed.follow_ups[1].closed_on = "2024-08-15".into();
    let updated = inspections
        .update_inspection(pb::UpdateInspectionRequest {
            inspection: Some(closed),
            update_mask: mask(&["follow_ups"]),
            request_id: String::new(),
        })
        .await
        .expect("close")
        .into_inner()
        .inspection
        .expect("inspection");
    assert_eq!(updated.open_follow_ups, 0);
    let open_only = inspections
        .list_inspections(pb::ListInspectionsRequest {
            filter: Some(pb::InspectionFilter {
                open_follow_ups_only: true,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(open_only.inspections.is_empty());

    // A commune officer of another district neither reads nor archives it.
    let mut other = client(
        InspectionServiceClient::new,
        suite.programs.channel().await.expect("connect"),
        Role::Approver,
        &["182"],
    );
    let denied = other
        .archive_inspection(pb::ArchiveInspectionRequest {
            id: updated.id.clone(),
            etag: updated.meta.clone().expect("meta").etag,
            reason: "x".into(),
            request_id: String::new(),
        })
        .await
        .expect_err("other district");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut approver = client(
        InspectionServiceClient::new,
        suite.programs.channel().await.expect("connect"),
        Role::Approver,
        DISTRICT,
    );
    approver
        .archive_inspection(pb::ArchiveInspectionRequest {
            id: updated.id.clone(),
            etag: updated.meta.clone().expect("meta").etag,
            reason: "duplicate".into(),
            request_id: String::new(),
        })
        .await
        .expect("archive");
    let s = programme_summary(&suite, "181", DISTRICT, 2022, 2024)
        .await
        .expect("summary");
    assert_eq!(s.inspections.expect("inspections").inspections, 0);
}
