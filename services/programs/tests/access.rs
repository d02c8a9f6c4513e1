//! Every role in and out of scope against each service's reads, writes,
//! archives and summaries: allowed where the roles table says, refused with
//! PERMISSION_DENIED everywhere else, and a refused write changes nothing.

mod common;

use common::*;
use sustain_platform::Role;
use sustain_proto::programs::v1 as pb;
use sustain_proto::programs::v1::communication_service_client::CommunicationServiceClient;
use sustain_proto::programs::v1::inspection_service_client::InspectionServiceClient;
use sustain_proto::programs::v1::support::Details;
use sustain_proto::programs::v1::support_service_client::SupportServiceClient;
use sustain_proto::programs::v1::training_service_client::TrainingServiceClient;
use tonic::Code;

const ROLES: [Role; 6] = [
    Role::Viewer,
    Role::Enumerator,
    Role::Approver,
    Role::Finance,
    Role::Admin,
    Role::Sync,
];
const READ: [Role; 6] = ROLES;
const WRITE: [Role; 2] = [Role::Enumerator, Role::Admin];
const ARCHIVE: [Role; 2] = [Role::Approver, Role::Admin];

/// Allowed: anything but PERMISSION_DENIED (a write may still fail on its own
/// terms, e.g. a stale etag). Refused: PERMISSION_DENIED.
fn judge<T>(what: &str, role: Role, scope: &str, allowed: bool, result: Result<T, tonic::Status>) {
    match (allowed, result) {
        (true, Err(s)) if s.code() == Code::PermissionDenied => {
            panic!("{what}: {role:?} in {scope} was refused: {}", s.message())
        }
        (false, Ok(_)) => panic!("{what}: {role:?} in {scope} was let through"),
        (false, Err(s)) if s.code() != Code::PermissionDenied => {
            panic!(
                "{what}: {role:?} in {scope} got {:?}, not PERMISSION_DENIED",
                s.code()
            )
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_role_in_and_out_of_scope() {
    let suite = Suite::start().await;
    let ids = households(&suite, &[("06067", Kind::Poor)]).await;
    let members = members_of(&suite, &ids[0]).await;
    let admin_scope = ["181"];
    let mut admin = suite.livelihood(Role::Admin, &admin_scope).await;
    let model = create_model(&mut admin, livestock_model("Nuôi bò"))
        .await
        .expect("model");
    let enrolment = enrol(&mut admin, &model.id, &ids, "2024-03-01")
        .await
        .expect("enrol")
        .remove(0);
    let channel = suite.programs.channel().await.expect("connect");
    let mut training = client(
        TrainingServiceClient::new,
        channel.clone(),
        Role::Admin,
        &admin_scope,
    );
    let course = training
        .create_course(pb::CreateCourseRequest {
            course: Some(pb::Course {
                project_code: "NTP-SPR.4.1".into(),
                kind: pb::CourseKind::Vocational as i32,
                name: "Hàn".into(),
                unit_code: "181".into(),
                start_date: "2024-03-01".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("course")
        .into_inner()
        .course
        .expect("course");
    let mut support = client(
        SupportServiceClient::new,
        channel.clone(),
        Role::Admin,
        &admin_scope,
    );
    let card = support
        .create_support(pb::CreateSupportRequest {
            support: Some(pb::Support {
                household_id: ids[0].clone(),
                member_id: members[0].clone(),
                provided_on: "2024-02-01".into(),
                details: Some(Details::HealthInsurance(pb::HealthInsuranceCard {
                    valid_from: "2024-01-01".into(),
                    valid_to: "2024-12-31".into(),
                })),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("support")
        .into_inner()
        .support
        .expect("support");
    let mut inspections = client(
        InspectionServiceClient::new,
        channel.clone(),
        Role::Admin,
        &admin_scope,
    );
    let inspection = inspections
        .create_inspection(pb::CreateInspectionRequest {
            inspection: Some(pb::Inspection {
                inspecting_body: "Ban Chỉ đạo huyện".into(),
                unit_code: "181".into(),
                held_on: "2024-04-02".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("inspection")
        .into_inner()
        .inspection
        .expect("inspection");

    for role in ROLES {
        for (scope, inside) in [("181", true), ("182", false)] {
            let read = READ.contains(&role) && inside;
            let write = WRITE.contains(&role) && inside;
            let archive = ARCHIVE.contains(&role) && inside;
            let mut l = suite.livelihood(role, &[scope]).await;
            judge(
                "GetModel",
                role,
                scope,
                read,
                l.get_model(pb::GetModelRequest {
                    id: model.id.clone(),
                })
                .await,
            );
            judge(
                "GetEnrolment",
                role,
                scope,
                read,
                l.get_enrolment(pb::GetEnrolmentRequest {
                    id: enrolment.id.clone(),
                })
                .await,
            );
            let listed = l
                .list_enrolments(pb::ListEnrolmentsRequest::default())
                .await
                .expect("list is never refused");
            assert_eq!(
                listed.into_inner().enrolments.len(),
                usize::from(read),
                "{role:?} in {scope} lists"
            );
            let mut m = livestock_model("Nuôi dê");
            m.unit_code = "181".into();
            judge(
                "CreateModel",
                role,
                scope,
                write,
                create_model(&mut l, m).await,
            );
            // A stale etag: allowed callers get ABORTED, so nothing changes either way.
            let stale = pb::RecordMeta {
                etag: "v0".into(),
                ..Default::default()
            };
            judge(
                "UpdateEnrolment",
                role,
                scope,
                write,
                l.update_enrolment(pb::UpdateEnrolmentRequest {
                    enrolment: Some(pb::Enrolment {
                        id: enrolment.id.clone(),
                        meta: Some(stale.clone()),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["outcome".into()],
                    }),
                    request_id: String::new(),
                })
                .await,
            );
            judge(
                "ArchiveModel",
                role,
                scope,
                archive,
                l.archive_model(pb::ArchiveModelRequest {
                    id: model.id.clone(),
                    etag: "v0".into(),
                    reason: "x".into(),
                    request_id: String::new(),
                })
                .await,
            );
            let mut t = client(TrainingServiceClient::new, channel.clone(), role, &[scope]);
            judge(
                "GetCourse",
                role,
                scope,
                read,
                t.get_course(pb::GetCourseRequest {
                    id: course.id.clone(),
                })
                .await,
            );
            let mut s = client(SupportServiceClient::new, channel.clone(), role, &[scope]);
            judge(
                "GetSupport",
                role,
                scope,
                read,
                s.get_support(pb::GetSupportRequest {
                    id: card.id.clone(),
                })
                .await,
            );
            judge(
                "ArchiveSupport",
                role,
                scope,
                archive,
                s.archive_support(pb::ArchiveSupportRequest {
                    id: card.id.clone(),
                    etag: "v0".into(),
                    reason: "x".into(),
                    request_id: String::new(),
                })
                .await,
            );
            let mut i = client(
                InspectionServiceClient::new,
                channel.clone(),
                role,
                &[scope],
            );
            judge(
                "GetInspection",
                role,
                scope,
                read,
                i.get_inspection(pb::GetInspectionRequest {
                    id: inspection.id.clone(),
                })
                .await,
            );
            let mut c = client(
                CommunicationServiceClient::new,
                channel.clone(),
                role,
                &[scope],
            );
            judge(
                "CreateActivity",
                role,
                scope,
                write,
                c.create_activity(pb::CreateActivityRequest {
                    activity: Some(pb::CommunicationActivity {
                        kind: pb::ActivityKind::Article as i32,
                        title: "Bài viết".into(),
                        unit_code: "181".into(),
                        held_on: "2024-05-01".into(),
                        count: 1,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await,
            );
            let mut summary = suite.summary(role, &[scope]).await;
            judge(
                "GetProgrammeSummary",
                role,
                scope,
                read,
                summary
                    .get_programme_summary(pb::GetProgrammeSummaryRequest {
                        unit_code: "181".into(),
                        from_year: 2022,
                        to_year: 2024,
                    })
                    .await,
            );
        }
    }
    // Nothing a refused or stale call attempted was written.
    let mut l = suite.livelihood(Role::Admin, &admin_scope).await;
    let after = l
        .get_model(pb::GetModelRequest {
            id: model.id.clone(),
        })
        .await
        .expect("model")
        .into_inner()
        .model
        .expect("model");
    assert_eq!(after.meta.expect("meta").version, 1);
}
