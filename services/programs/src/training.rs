//! The TrainingService adapter: courses and their trainees. Trainees are
//! members of registered households; one registry call per batch checks each
//! member belongs to the household named, in the caller's scope, and reads the
//! household's standing when the course began.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, NaiveDate};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use sustain_domain::Violations;
use sustain_domain::country;
use sustain_platform::Caller;
use sustain_platform::api::{new_id, now, optional_date, parse_date, required_id, text, today};
use sustain_platform::crypto::FieldCipher;
use sustain_platform::error::{ServiceError, checked};
use sustain_platform::journal::{self, IdempotencyKey};
use sustain_platform::placement::Placement;
use sustain_proto::programs::v1 as pb;
use tonic::{Request, Response, Status};

use crate::WRITE;
use crate::catalog::{self, check_code};
use crate::convert::{ACTIVE, MAX_NAME_CHARS, archived, check, class_to_proto, meta};
use crate::model::{course, trainee};
use crate::records::{self, Record, record};
use crate::registry::{Named, Registry, credentials_of, placement_of, standing_code};
use crate::store::{self, Narrow};

record!(course, "course");
record!(trainee, "trainee");

/// Most trainees one call may add.
pub const MAX_TRAINEES_PER_CALL: usize = 1000;
const COURSE_PATHS: &[&str] = &[
    "name",
    "kind",
    "start_date",
    "end_date",
    "official_participants",
];
const TRAINEE_PATHS: &[&str] = &["completed", "employment"];

pub fn kind_code(k: pb::CourseKind) -> Option<&'static str> {
    match k {
        pb::CourseKind::Vocational => Some("vocational"),
        pb::CourseKind::Technical => Some("technical"),
        pb::CourseKind::Capacity => Some("capacity"),
        pb::CourseKind::Unspecified => None,
    }
}

pub fn kind_from_code(code: &str) -> pb::CourseKind {
    match code {
        "vocational" => pb::CourseKind::Vocational,
        "technical" => pb::CourseKind::Technical,
        "capacity" => pb::CourseKind::Capacity,
        _ => pb::CourseKind::Unspecified,
    }
}

pub fn employment_code(k: pb::EmploymentKind) -> Option<&'static str> {
    match k {
        pb::EmploymentKind::None => Some("none"),
        pb::EmploymentKind::NewJob => Some("new_job"),
        pb::EmploymentKind::WorkAbroad => Some("work_abroad"),
        pb::EmploymentKind::Unspecified => None,
    }
}

fn employment_from_code(code: &str) -> pb::EmploymentKind {
    match code {
        "new_job" => pb::EmploymentKind::NewJob,
        "work_abroad" => pb::EmploymentKind::WorkAbroad,
        _ => pb::EmploymentKind::None,
    }
}

/// The checked fields of a course.
#[derive(Debug, Clone)]
struct CourseFields {
    project_code: String,
    kind: &'static str,
    name: String,
    placement: Placement,
    start_date: NaiveDate,
    end_date: Option<NaiveDate>,
    official_participants: i32,
}

fn course_fields(c: &pb::Course, today: NaiveDate, v: &mut Violations) -> Option<CourseFields> {
    let before = v.len();
    let project_code = check_code(&c.project_code, "course.project_code", v);
    let kind = pb::CourseKind::try_from(c.kind).ok().and_then(kind_code);
    if kind.is_none() {
        v.add("course.kind", "must be VOCATIONAL, TECHNICAL or CAPACITY");
    }
    let name = text(&c.name, "course.name", MAX_NAME_CHARS, true, v);
    let start_date = parse_date(&c.start_date, "course.start_date", v);
    let end_date = optional_date(&c.end_date, "course.end_date", v);
    if let (Some(s), Some(e)) = (start_date, end_date)
        && e < s
    {
        v.add("course.end_date", "is before start_date");
    }
    let placement = if c.unit_code.trim().is_empty() {
        v.add("course.unit_code", "is required");
        None
    } else {
        Placement::of_unit(c.unit_code.trim(), start_date.unwrap_or(today), today)
            .map_err(|e| v.add("course.unit_code", e))
            .ok()
    };
    if c.official_participants < 0 {
        v.add("course.official_participants", "must not be negative");
    }
    if v.len() > before {
        return None;
    }
    Some(CourseFields {
        project_code,
        kind: kind?,
        name,
        placement: placement?,
        start_date: start_date?,
        end_date,
        official_participants: c.official_participants,
    })
}

fn apply_course(row: &mut course::Model, f: CourseFields) {
    row.project_code = f.project_code;
    row.kind = f.kind.to_owned();
    row.name = f.name;
    row.unit_code = f.placement.unit_code;
    row.province_code = f.placement.province_code;
    row.district_code = f.placement.district_code;
    row.commune_code = f.placement.commune_code;
    row.current_commune_code = f.placement.current_commune_code;
    row.start_year = f.start_date.year();
    row.start_date = f.start_date;
    row.end_date = f.end_date;
    row.official_participants = f.official_participants;
}

fn course_to_proto(row: &course::Model, counts: (i64, i64)) -> pb::Course {
    pb::Course {
        id: row.id.clone(),
        project_code: row.project_code.clone(),
        kind: kind_from_code(&row.kind) as i32,
        name: row.name.clone(),
        unit_code: row.unit_code.clone(),
        start_date: row.start_date.to_string(),
        end_date: row.end_date.map(|d| d.to_string()).unwrap_or_default(),
        official_participants: row.official_participants,
        trainees: counts.0,
        completed: counts.1,
        meta: Some(meta(
            &row.state,
            row.version,
            row.archive_reason.as_deref(),
            row.created_at,
            row.updated_at,
        )),
    }
}

fn trainee_to_proto(row: &trainee::Model) -> pb::Trainee {
    pb::Trainee {
        id: row.id.clone(),
        course_id: row.course_id.clone(),
        household_id: row.household_id.clone(),
        member_id: row.member_id.clone(),
        completed: row.completed,
        employment: Some(pb::Employment {
            kind: employment_from_code(&row.employment) as i32,
            destination_country: row.destination_country.clone().unwrap_or_default(),
            started_on: row.employed_on.map(|d| d.to_string()).unwrap_or_default(),
        }),
        class_at_enrolment: class_to_proto(&row.class) as i32,
        commune_code: row.commune_code.clone().unwrap_or_default(),
        meta: Some(meta(
            &row.state,
            row.version,
            row.archive_reason.as_deref(),
            row.created_at,
            row.updated_at,
        )),
    }
}

/// Checks an employment as sent.
fn employment_fields(
    e: &pb::Employment,
    course_start: NaiveDate,
    today: NaiveDate,
    v: &mut Violations,
) -> (String, Option<String>, Option<NaiveDate>) {
    let kind = pb::EmploymentKind::try_from(e.kind)
        .ok()
        .and_then(employment_code);
    if kind.is_none() {
        v.add(
            "trainee.employment.kind",
            "must be NONE, NEW_JOB or WORK_ABROAD",
        );
    }
    let country = e.destination_country.trim().to_owned();
    match kind {
        Some("work_abroad") if !country::is_alpha2(&country) => v.add(
            "trainee.employment.destination_country",
            "must be an ISO 3166-1 alpha-2 code (JP, KR, TW, …) for work abroad",
        ),
        Some("work_abroad") => {}
        _ if !country.is_empty() => v.add(
            "trainee.employment.destination_country",
            "is only for work abroad",
        ),
        _ => {}
    }
    let started = optional_date(&e.started_on, "trainee.employment.started_on", v);
    if let Some(d) = started {
        if d < course_start {
            v.add(
                "trainee.employment.started_on",
                format!("is before the course began ({course_start})"),
            );
        } else if d > today {
            v.add("trainee.employment.started_on", "must not be in the future");
        }
    }
    (
        kind.unwrap_or("none").to_owned(),
        (kind == Some("work_abroad")).then_some(country),
        started,
    )
}

#[derive(Debug, Clone)]
pub struct TrainingApi {
    pub db: DatabaseConnection,
    pub cipher: FieldCipher,
    pub registry: Registry,
}

impl TrainingApi {
    async fn course_project(
        &self,
        conn: &impl ConnectionTrait,
        caller: &Caller,
        code: &str,
    ) -> Result<(), ServiceError> {
        catalog::usable(conn, caller, code, "course.project_code").await?;
        Ok(())
    }

    async fn with_counts(&self, row: &course::Model) -> Result<pb::Course, ServiceError> {
        let counts =
            store::training::trainee_counts(&self.db, std::slice::from_ref(&row.id)).await?;
        Ok(course_to_proto(
            row,
            counts.get(&row.id).copied().unwrap_or_default(),
        ))
    }
}

/// The course and the (household, member) pairs a batch of trainees names:
/// every bad field named, a member listed twice refused.
fn asked_trainees(
    request: &pb::BatchCreateTraineesRequest,
) -> Result<(String, Vec<(String, String)>), ServiceError> {
    let mut v = Violations::new();
    let course_id = required_id(&request.course_id, "course_id", &mut v);
    if request.trainees.is_empty() {
        v.add("trainees", "is required");
    } else if request.trainees.len() > MAX_TRAINEES_PER_CALL {
        v.add(
            "trainees",
            format!("at most {MAX_TRAINEES_PER_CALL} per call"),
        );
    }
    let mut seen = HashSet::new();
    let asked: Vec<(String, String)> = request
        .trainees
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let household = required_id(
                &t.household_id,
                &format!("trainees[{i}].household_id"),
                &mut v,
            );
            let member = required_id(&t.member_id, &format!("trainees[{i}].member_id"), &mut v);
            if !member.is_empty() && !seen.insert(member.clone()) {
                v.add(format!("trainees[{i}].member_id"), "is listed twice");
            }
            (household, member)
        })
        .collect();
    check(v)?;
    Ok((course_id, asked))
}

/// FAILED_PRECONDITION unless `course` takes trainees: live, and not a
/// capacity course (its officials are counted, not enrolled).
fn takes_trainees(course: &course::Model) -> Result<(), ServiceError> {
    if course.is_archived() {
        return Err(archived("course", &course.id));
    }
    if course.kind == "capacity" {
        return Err(ServiceError::FailedPrecondition {
            reason: "CAPACITY_COURSE",
            message: "capacity courses train officials: count them in official_participants".into(),
        });
    }
    Ok(())
}

/// Names each trainee whose member is not of the household the registry
/// answered for.
fn members_belong(
    asked: &[(String, String)],
    standings: &HashMap<String, sustain_proto::registry::v1::HouseholdStanding>,
) -> Result<(), ServiceError> {
    let mut v = Violations::new();
    for (i, (h, m)) in asked.iter().enumerate() {
        let belongs = standings
            .get(h)
            .is_some_and(|s| s.members.iter().any(|x| &x.id == m));
        if !belongs {
            v.add(
                format!("trainees[{i}].member_id"),
                "is not a member of that household",
            );
        }
    }
    check(v)
}

/// ALREADY_EXISTS when any of the members already attends `course_id`.
async fn refuse_taken(
    conn: &impl ConnectionTrait,
    course_id: &str,
    asked: &[(String, String)],
) -> Result<(), ServiceError> {
    let members: Vec<String> = asked.iter().map(|(_, m)| m.clone()).collect();
    let taken = store::training::attending(conn, course_id, &members).await?;
    if taken.is_empty() {
        return Ok(());
    }
    Err(ServiceError::AlreadyExists {
        reason: "ALREADY_TRAINEE",
        message: format!(
            "member(s) {} already attend course {course_id}",
            taken.join(", ")
        ),
        metadata: vec![("course_id", course_id.to_owned())],
    })
}

/// The trainee rows of a batch: each placed where its household lives, with
/// its standing in the course's year.
fn new_trainees(
    course: &course::Model,
    asked: &[(String, String)],
    standings: &HashMap<String, sustain_proto::registry::v1::HouseholdStanding>,
) -> Vec<trainee::Model> {
    let at = now();
    asked
        .iter()
        .filter_map(|(h, m)| {
            let s = standings.get(h)?;
            let p = placement_of(s);
            Some(trainee::Model {
                id: new_id(),
                course_id: course.id.clone(),
                course_kind: course.kind.clone(),
                year: course.start_year,
                household_id: h.clone(),
                member_id: m.clone(),
                class: standing_code(s.standing).to_owned(),
                unit_code: p.unit_code,
                province_code: p.province_code,
                district_code: p.district_code,
                commune_code: p.commune_code,
                current_commune_code: p.current_commune_code,
                completed: false,
                employment: "none".to_owned(),
                destination_country: None,
                employed_on: None,
                state: ACTIVE.to_owned(),
                archive_reason: None,
                version: 1,
                created_at: at,
                updated_at: at,
            })
        })
        .collect()
}

#[tonic::async_trait]
impl pb::training_service_server::TrainingService for TrainingApi {
    async fn create_course(
        &self,
        request: Request<pb::CreateCourseRequest>,
    ) -> Result<Response<pb::CreateCourseResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("create courses", WRITE)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(&caller, "CreateCourse", &request.request_id, &request)?;
        let request_id = request.request_id.clone();
        let mut v = Violations::new();
        let fields = course_fields(&request.course.unwrap_or_default(), today(), &mut v);
        let fields = checked(fields, v)?;
        caller.require_placement(&fields.placement)?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            self.course_project(&txn, &caller, &fields.project_code)
                .await?;
            let at = now();
            let mut row = course::Model {
                id: new_id(),
                project_code: String::new(),
                kind: String::new(),
                name: String::new(),
                unit_code: String::new(),
                province_code: String::new(),
                district_code: None,
                commune_code: None,
                current_commune_code: None,
                start_date: fields.start_date,
                end_date: None,
                start_year: 0,
                official_participants: 0,
                state: ACTIVE.to_owned(),
                archive_reason: None,
                version: 1,
                created_at: at,
                updated_at: at,
            };
            apply_course(&mut row, fields);
            records::insert(&txn, &caller, &request_id, &row).await?;
            Ok((
                pb::CreateCourseResponse {
                    course: Some(course_to_proto(&row, (0, 0))),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn get_course(
        &self,
        request: Request<pb::GetCourseRequest>,
    ) -> Result<Response<pb::GetCourseResponse>, Status> {
        let row = records::fetched::<course::Model, _>(&self.db, &request, "read courses").await?;
        Ok(Response::new(pb::GetCourseResponse {
            course: Some(self.with_counts(&row).await?),
        }))
    }

    async fn list_courses(
        &self,
        request: Request<pb::ListCoursesRequest>,
    ) -> Result<Response<pb::ListCoursesResponse>, Status> {
        let list = records::list_order(request, "read courses")?;
        let filter = &list.filter;
        let mut v = Violations::new();
        let project = (!filter.project_code.trim().is_empty())
            .then(|| check_code(&filter.project_code, "filter.project_code", &mut v));
        let kind = pb::CourseKind::try_from(filter.kind)
            .ok()
            .and_then(kind_code);
        if filter.kind != 0 && kind.is_none() {
            v.add("filter.kind", "is not a course kind");
        }
        let narrow = Narrow::default()
            .year("start_year", filter.year)
            .project("project_code", project.as_deref())
            .is("kind", kind);
        let (rows, next) = list.page::<course::Model>(&self.db, v, narrow).await?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let counts = store::training::trainee_counts(&self.db, &ids).await?;
        Ok(Response::new(pb::ListCoursesResponse {
            courses: rows
                .iter()
                .map(|r| course_to_proto(r, counts.get(&r.id).copied().unwrap_or_default()))
                .collect(),
            next_page_token: next,
        }))
    }

    async fn update_course(
        &self,
        request: Request<pb::UpdateCourseRequest>,
    ) -> Result<Response<pb::UpdateCourseResponse>, Status> {
        let records::Update {
            caller,
            key,
            request_id,
            id,
            etag,
            paths,
            sent,
        } = records::update_order(request, "change courses", "UpdateCourse", COURSE_PATHS)?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            let stored =
                records::changeable::<course::Model>(&txn, &caller, &id, etag.trim()).await?;
            let mut merged = course_to_proto(&stored, (0, 0));
            for path in &paths {
                match path.as_str() {
                    "name" => merged.name = sent.name.clone(),
                    "kind" => merged.kind = sent.kind,
                    "start_date" => merged.start_date = sent.start_date.clone(),
                    "end_date" => merged.end_date = sent.end_date.clone(),
                    "official_participants" => {
                        merged.official_participants = sent.official_participants
                    }
                    _ => {}
                }
            }
            let mut v = Violations::new();
            let fields = course_fields(&merged, today(), &mut v);
            let fields = checked(fields, v)?;
            let expected = stored.version;
            let mut row = stored;
            apply_course(&mut row, fields);
            row.bump(now());
            records::save(&txn, &caller, &request_id, &row, expected, "update").await?;
            let counts =
                store::training::trainee_counts(&txn, std::slice::from_ref(&row.id)).await?;
            Ok((
                pb::UpdateCourseResponse {
                    course: Some(course_to_proto(
                        &row,
                        counts.get(&row.id).copied().unwrap_or_default(),
                    )),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn archive_course(
        &self,
        request: Request<pb::ArchiveCourseRequest>,
    ) -> Result<Response<pb::ArchiveCourseResponse>, Status> {
        let (caller, key, order) =
            records::archive_order(request, "archive courses", "ArchiveCourse")?;
        let answer = records::archive::<course::Model, _>(
            &self.db,
            &self.cipher,
            &caller,
            key,
            order,
            |row| pb::ArchiveCourseResponse {
                course: Some(course_to_proto(row, (0, 0))),
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    async fn batch_create_trainees(
        &self,
        request: Request<pb::BatchCreateTraineesRequest>,
    ) -> Result<Response<pb::BatchCreateTraineesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("add trainees", WRITE)?;
        let credentials = credentials_of(&request)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(
            &caller,
            "BatchCreateTrainees",
            &request.request_id,
            &request,
        )?;
        let request_id = request.request_id.clone();
        let (course_id, asked) = asked_trainees(&request)?;
        if let Some(previous) = journal::answered(&self.db, &self.cipher, key.as_ref()).await? {
            return Ok(Response::new(previous));
        }
        let course = records::readable::<course::Model>(&self.db, &caller, &course_id).await?;
        takes_trainees(&course)?;
        let named = Named::each(
            asked.iter().map(|(h, _)| (h.clone(), course.start_year)),
            |i| format!("trainees[{i}].household_id"),
        );
        let standings = self
            .registry
            .checked(&credentials, &named, true, |_| None)
            .await?;
        members_belong(&asked, &standings)?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            refuse_taken(&txn, &course.id, &asked).await?;
            let rows = new_trainees(&course, &asked, &standings);
            let changes = rows.iter().map(|r| records::change(r, "create")).collect();
            let protos = rows.iter().map(trainee_to_proto).collect();
            sustain_db::insert_rows::<trainee::Entity>(&txn, rows, &[]).await?;
            journal::record_many(&txn, &caller, &request_id, changes).await?;
            Ok((pb::BatchCreateTraineesResponse { trainees: protos }, txn))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn get_trainee(
        &self,
        request: Request<pb::GetTraineeRequest>,
    ) -> Result<Response<pb::GetTraineeResponse>, Status> {
        let row =
            records::fetched::<trainee::Model, _>(&self.db, &request, "read trainees").await?;
        Ok(Response::new(pb::GetTraineeResponse {
            trainee: Some(trainee_to_proto(&row)),
        }))
    }

    async fn list_trainees(
        &self,
        request: Request<pb::ListTraineesRequest>,
    ) -> Result<Response<pb::ListTraineesResponse>, Status> {
        let list = records::list_order(request, "read trainees")?;
        let filter = &list.filter;
        let mut v = Violations::new();
        let course_id = (!filter.course_id.trim().is_empty())
            .then(|| required_id(&filter.course_id, "filter.course_id", &mut v));
        let employment = pb::EmploymentKind::try_from(filter.employment)
            .ok()
            .and_then(employment_code);
        if filter.employment != 0 && employment.is_none() {
            v.add("filter.employment", "is not an employment kind");
        }
        let narrow = Narrow::default()
            .is("course_id", course_id)
            .year("year", filter.year)
            .is("employment", employment);
        let (rows, next) = list.page::<trainee::Model>(&self.db, v, narrow).await?;
        Ok(Response::new(pb::ListTraineesResponse {
            trainees: rows.iter().map(trainee_to_proto).collect(),
            next_page_token: next,
        }))
    }

    async fn update_trainee(
        &self,
        request: Request<pb::UpdateTraineeRequest>,
    ) -> Result<Response<pb::UpdateTraineeResponse>, Status> {
        let records::Update {
            caller,
            key,
            request_id,
            id,
            etag,
            paths,
            sent,
        } = records::update_order(
            request,
            "record training outcomes",
            "UpdateTrainee",
            TRAINEE_PATHS,
        )?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            let stored =
                records::changeable::<trainee::Model>(&txn, &caller, &id, etag.trim()).await?;
            let course = records::load::<course::Model>(&txn, &stored.course_id)
                .await?
                .ok_or_else(|| ServiceError::Internal(format!("trainee {id} has no course")))?;
            let expected = stored.version;
            let mut row = stored;
            let mut v = Violations::new();
            if paths.iter().any(|p| p == "completed") {
                row.completed = sent.completed;
            }
            if paths.iter().any(|p| p == "employment") {
                let (kind, country, started) = employment_fields(
                    &sent.employment.clone().unwrap_or_default(),
                    course.start_date,
                    today(),
                    &mut v,
                );
                row.employment = kind;
                row.destination_country = country;
                row.employed_on = started;
            }
            check(v)?;
            row.bump(now());
            records::save(&txn, &caller, &request_id, &row, expected, "update").await?;
            Ok((
                pb::UpdateTraineeResponse {
                    trainee: Some(trainee_to_proto(&row)),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn archive_trainee(
        &self,
        request: Request<pb::ArchiveTraineeRequest>,
    ) -> Result<Response<pb::ArchiveTraineeResponse>, Status> {
        let (caller, key, order) =
            records::archive_order(request, "archive trainees", "ArchiveTrainee")?;
        let answer = records::archive::<trainee::Model, _>(
            &self.db,
            &self.cipher,
            &caller,
            key,
            order,
            |row| pb::ArchiveTraineeResponse {
                trainee: Some(trainee_to_proto(row)),
            },
        )
        .await?;
        Ok(Response::new(answer))
    }
}
