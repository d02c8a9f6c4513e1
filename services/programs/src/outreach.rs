//! The CommunicationService and InspectionService adapters: communication
//! activities counted per activity, and inspections with follow-up actions
//! whose open and overdue state is derived from their dates.

use chrono::{Datelike, NaiveDate};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use sustain_domain::Violations;
use sustain_platform::Caller;
use sustain_platform::api::{new_id, now, optional_date, parse_date, text, today};
use sustain_platform::crypto::FieldCipher;
use sustain_platform::error::checked;
use sustain_platform::journal::{self, IdempotencyKey};
use sustain_platform::placement::Placement;
use sustain_proto::programs::v1 as pb;
use tonic::{Request, Response, Status};

use crate::WRITE;
use crate::catalog::{self, check_code};
use crate::convert::{ACTIVE, MAX_NAME_CHARS, meta};
use crate::model::{communication_activity as activity, inspection};
use crate::records::{self, record};
use crate::store::Narrow;

record!(communication_activity, "communication_activity");
record!(inspection, "inspection");

/// Project 6, where communication belongs unless another item is named.
pub const COMMUNICATION_PROJECT: &str = "NTP-SPR.6";
/// Project 7's monitoring and evaluation, where inspections belong by default.
pub const INSPECTION_PROJECT: &str = "NTP-SPR.7.2";
pub const MAX_FINDINGS_CHARS: usize = 5000;
pub const MAX_FOLLOW_UPS: usize = 50;
const ACTIVITY_PATHS: &[&str] = &["kind", "title", "held_on", "count", "participants"];
const INSPECTION_PATHS: &[&str] = &["inspecting_body", "held_on", "findings", "follow_ups"];

pub fn activity_kind_code(k: pb::ActivityKind) -> Option<&'static str> {
    match k {
        pb::ActivityKind::Article => Some("article"),
        pb::ActivityKind::Leaflet => Some("leaflet"),
        pb::ActivityKind::Dialogue => Some("dialogue"),
        pb::ActivityKind::Training => Some("training"),
        pb::ActivityKind::Unspecified => None,
    }
}

fn activity_kind_from_code(code: &str) -> pb::ActivityKind {
    match code {
        "article" => pb::ActivityKind::Article,
        "leaflet" => pb::ActivityKind::Leaflet,
        "dialogue" => pb::ActivityKind::Dialogue,
        "training" => pb::ActivityKind::Training,
        _ => pb::ActivityKind::Unspecified,
    }
}

fn project_or(raw: &str, default: &str, field: &str, v: &mut Violations) -> String {
    if raw.trim().is_empty() {
        default.to_owned()
    } else {
        check_code(raw, field, v)
    }
}

fn placed(unit: &str, on: Option<NaiveDate>, field: &str, v: &mut Violations) -> Option<Placement> {
    if unit.trim().is_empty() {
        v.add(field, "is required");
        return None;
    }
    let today = today();
    Placement::of_unit(unit.trim(), on.unwrap_or(today), today)
        .map_err(|e| v.add(field, e))
        .ok()
}

fn held_on(raw: &str, field: &str, v: &mut Violations) -> Option<NaiveDate> {
    let d = parse_date(raw, field, v)?;
    if d > today() {
        v.add(field, "must not be in the future");
    }
    Some(d)
}

macro_rules! place_row {
    ($row:expr, $p:expr) => {{
        let p = $p;
        $row.unit_code = p.unit_code;
        $row.province_code = p.province_code;
        $row.district_code = p.district_code;
        $row.commune_code = p.commune_code;
        $row.current_commune_code = p.current_commune_code;
    }};
}

// ---- communication ----

struct ActivityFields {
    project_code: String,
    kind: &'static str,
    title: String,
    placement: Placement,
    held_on: NaiveDate,
    count: i64,
    participants: i64,
}

fn activity_fields(a: &pb::CommunicationActivity, v: &mut Violations) -> Option<ActivityFields> {
    let before = v.len();
    let project_code = project_or(
        &a.project_code,
        COMMUNICATION_PROJECT,
        "activity.project_code",
        v,
    );
    let kind = pb::ActivityKind::try_from(a.kind)
        .ok()
        .and_then(activity_kind_code);
    if kind.is_none() {
        v.add(
            "activity.kind",
            "must be ARTICLE, LEAFLET, DIALOGUE or TRAINING",
        );
    }
    let title = text(&a.title, "activity.title", MAX_NAME_CHARS, true, v);
    let on = held_on(&a.held_on, "activity.held_on", v);
    let placement = placed(&a.unit_code, on, "activity.unit_code", v);
    match kind {
        Some("article" | "leaflet") if a.count <= 0 => {
            v.add(
                "activity.count",
                "is required (at least 1) for articles and leaflets",
            );
        }
        Some("dialogue" | "training") if a.participants <= 0 => {
            v.add(
                "activity.participants",
                "is required (at least 1) for dialogues and trainings",
            );
        }
        _ => {}
    }
    if a.count < 0 {
        v.add("activity.count", "must not be negative");
    }
    if a.participants < 0 {
        v.add("activity.participants", "must not be negative");
    }
    if v.len() > before {
        return None;
    }
    Some(ActivityFields {
        project_code,
        kind: kind?,
        title,
        placement: placement?,
        held_on: on?,
        count: a.count,
        participants: a.participants,
    })
}

fn apply_activity(row: &mut activity::Model, f: ActivityFields) {
    row.project_code = f.project_code;
    row.kind = f.kind.to_owned();
    row.title = f.title;
    place_row!(row, f.placement);
    row.year = f.held_on.year();
    row.held_on = f.held_on;
    row.count = f.count;
    row.participants = f.participants;
}

fn activity_to_proto(row: &activity::Model) -> pb::CommunicationActivity {
    pb::CommunicationActivity {
        id: row.id.clone(),
        project_code: row.project_code.clone(),
        kind: activity_kind_from_code(&row.kind) as i32,
        title: row.title.clone(),
        unit_code: row.unit_code.clone(),
        held_on: row.held_on.to_string(),
        count: row.count,
        participants: row.participants,
        meta: Some(meta(
            &row.state,
            row.version,
            row.archive_reason.as_deref(),
            row.created_at,
            row.updated_at,
        )),
    }
}

#[derive(Debug, Clone)]
pub struct CommunicationApi {
    pub db: DatabaseConnection,
    pub cipher: FieldCipher,
}

#[tonic::async_trait]
impl pb::communication_service_server::CommunicationService for CommunicationApi {
    async fn create_activity(
        &self,
        request: Request<pb::CreateActivityRequest>,
    ) -> Result<Response<pb::CreateActivityResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("record communication", WRITE)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(&caller, "CreateActivity", &request.request_id, &request)?;
        let request_id = request.request_id.clone();
        let mut v = Violations::new();
        let fields = activity_fields(&request.activity.unwrap_or_default(), &mut v);
        let fields = checked(fields, v)?;
        caller.require_placement(&fields.placement)?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            catalog::usable(&txn, &caller, &fields.project_code, "activity.project_code").await?;
            let at = now();
            let mut row = activity::Model {
                id: new_id(),
                project_code: String::new(),
                kind: String::new(),
                title: String::new(),
                unit_code: String::new(),
                province_code: String::new(),
                district_code: None,
                commune_code: None,
                current_commune_code: None,
                held_on: fields.held_on,
                year: 0,
                count: 0,
                participants: 0,
                state: ACTIVE.to_owned(),
                archive_reason: None,
                version: 1,
                created_at: at,
                updated_at: at,
            };
            apply_activity(&mut row, fields);
            records::insert(&txn, &caller, &request_id, &row).await?;
            Ok((
                pb::CreateActivityResponse {
                    activity: Some(activity_to_proto(&row)),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn get_activity(
        &self,
        request: Request<pb::GetActivityRequest>,
    ) -> Result<Response<pb::GetActivityResponse>, Status> {
        let row = records::fetched::<activity::Model, _>(&self.db, &request, "read communication")
            .await?;
        Ok(Response::new(pb::GetActivityResponse {
            activity: Some(activity_to_proto(&row)),
        }))
    }

    async fn list_activities(
        &self,
        request: Request<pb::ListActivitiesRequest>,
    ) -> Result<Response<pb::ListActivitiesResponse>, Status> {
        let list = records::list_order(request, "read communication")?;
        let filter = &list.filter;
        let mut v = Violations::new();
        let project = (!filter.project_code.trim().is_empty())
            .then(|| check_code(&filter.project_code, "filter.project_code", &mut v));
        let kind = pb::ActivityKind::try_from(filter.kind)
            .ok()
            .and_then(activity_kind_code);
        if filter.kind != 0 && kind.is_none() {
            v.add("filter.kind", "is not an activity kind");
        }
        let narrow = Narrow::default()
            .year("year", filter.year)
            .project("project_code", project.as_deref())
            .is("kind", kind);
        let (rows, next) = list.page::<activity::Model>(&self.db, v, narrow).await?;
        Ok(Response::new(pb::ListActivitiesResponse {
            activities: rows.iter().map(activity_to_proto).collect(),
            next_page_token: next,
        }))
    }

    async fn update_activity(
        &self,
        request: Request<pb::UpdateActivityRequest>,
    ) -> Result<Response<pb::UpdateActivityResponse>, Status> {
        let order = records::update_order(
            request,
            "record communication",
            "UpdateActivity",
            ACTIVITY_PATHS,
        )?;
        let answer = records::update(
            &self.db,
            &self.cipher,
            order,
            |stored: activity::Model, sent, paths| {
                let mut merged = activity_to_proto(&stored);
                for path in paths {
                    match path.as_str() {
                        "kind" => merged.kind = sent.kind,
                        "title" => merged.title = sent.title.clone(),
                        "held_on" => merged.held_on = sent.held_on.clone(),
                        "count" => merged.count = sent.count,
                        "participants" => merged.participants = sent.participants,
                        _ => {}
                    }
                }
                let mut v = Violations::new();
                let fields = checked(activity_fields(&merged, &mut v), v)?;
                let mut row = stored;
                apply_activity(&mut row, fields);
                Ok(row)
            },
            |row| pb::UpdateActivityResponse {
                activity: Some(activity_to_proto(row)),
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    async fn archive_activity(
        &self,
        request: Request<pb::ArchiveActivityRequest>,
    ) -> Result<Response<pb::ArchiveActivityResponse>, Status> {
        let (caller, key, order) =
            records::archive_order(request, "archive communication", "ArchiveActivity")?;
        let answer = records::archive::<activity::Model, _>(
            &self.db,
            &self.cipher,
            &caller,
            key,
            order,
            |row| pb::ArchiveActivityResponse {
                activity: Some(activity_to_proto(row)),
            },
        )
        .await?;
        Ok(Response::new(answer))
    }
}

// ---- inspections ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredFollowUp {
    action: String,
    due_on: NaiveDate,
    closed_on: Option<NaiveDate>,
}

struct InspectionFields {
    project_code: String,
    inspecting_body: String,
    placement: Placement,
    held_on: NaiveDate,
    findings: String,
    follow_ups: Vec<StoredFollowUp>,
}

fn inspection_fields(i: &pb::Inspection, v: &mut Violations) -> Option<InspectionFields> {
    let before = v.len();
    let project_code = project_or(
        &i.project_code,
        INSPECTION_PROJECT,
        "inspection.project_code",
        v,
    );
    let inspecting_body = text(
        &i.inspecting_body,
        "inspection.inspecting_body",
        MAX_NAME_CHARS,
        true,
        v,
    );
    let on = held_on(&i.held_on, "inspection.held_on", v);
    let placement = placed(&i.unit_code, on, "inspection.unit_code", v);
    let findings = text(
        &i.findings,
        "inspection.findings",
        MAX_FINDINGS_CHARS,
        false,
        v,
    );
    if i.follow_ups.len() > MAX_FOLLOW_UPS {
        v.add("inspection.follow_ups", format!("at most {MAX_FOLLOW_UPS}"));
    }
    let today = today();
    let follow_ups: Vec<StoredFollowUp> = i
        .follow_ups
        .iter()
        .enumerate()
        .filter_map(|(n, f)| {
            let path = |x: &str| format!("inspection.follow_ups[{n}].{x}");
            let action = text(&f.action, &path("action"), MAX_NAME_CHARS, true, v);
            let due_on = parse_date(&f.due_on, &path("due_on"), v);
            let closed_on = optional_date(&f.closed_on, &path("closed_on"), v);
            if let (Some(due), Some(held)) = (due_on, on)
                && due < held
            {
                v.add(path("due_on"), "is before the inspection");
            }
            if let Some(closed) = closed_on {
                if on.is_some_and(|held| closed < held) {
                    v.add(path("closed_on"), "is before the inspection");
                } else if closed > today {
                    v.add(path("closed_on"), "must not be in the future");
                }
            }
            Some(StoredFollowUp {
                action,
                due_on: due_on?,
                closed_on,
            })
        })
        .collect();
    if v.len() > before {
        return None;
    }
    Some(InspectionFields {
        project_code,
        inspecting_body,
        placement: placement?,
        held_on: on?,
        findings,
        follow_ups,
    })
}

fn apply_inspection(row: &mut inspection::Model, f: InspectionFields) {
    row.project_code = f.project_code;
    row.inspecting_body = f.inspecting_body;
    place_row!(row, f.placement);
    row.year = f.held_on.year();
    row.held_on = f.held_on;
    row.findings = f.findings;
    let open: Vec<&StoredFollowUp> = f
        .follow_ups
        .iter()
        .filter(|x| x.closed_on.is_none())
        .collect();
    row.open_follow_ups = open.len() as i32;
    row.next_due_on = open.iter().map(|x| x.due_on).min();
    row.follow_ups = serde_json::to_string(&f.follow_ups).unwrap_or_else(|_| "[]".into());
}

fn inspection_to_proto(row: &inspection::Model) -> pb::Inspection {
    let follow_ups: Vec<StoredFollowUp> = serde_json::from_str(&row.follow_ups).unwrap_or_default();
    let today = today();
    let overdue = follow_ups
        .iter()
        .filter(|f| f.closed_on.is_none() && f.due_on < today)
        .count();
    pb::Inspection {
        id: row.id.clone(),
        project_code: row.project_code.clone(),
        inspecting_body: row.inspecting_body.clone(),
        unit_code: row.unit_code.clone(),
        held_on: row.held_on.to_string(),
        findings: row.findings.clone(),
        follow_ups: follow_ups
            .iter()
            .map(|f| pb::FollowUp {
                action: f.action.clone(),
                due_on: f.due_on.to_string(),
                closed_on: f.closed_on.map(|d| d.to_string()).unwrap_or_default(),
            })
            .collect(),
        open_follow_ups: row.open_follow_ups,
        overdue_follow_ups: overdue as i32,
        meta: Some(meta(
            &row.state,
            row.version,
            row.archive_reason.as_deref(),
            row.created_at,
            row.updated_at,
        )),
    }
}

#[derive(Debug, Clone)]
pub struct InspectionApi {
    pub db: DatabaseConnection,
    pub cipher: FieldCipher,
}

#[tonic::async_trait]
impl pb::inspection_service_server::InspectionService for InspectionApi {
    async fn create_inspection(
        &self,
        request: Request<pb::CreateInspectionRequest>,
    ) -> Result<Response<pb::CreateInspectionResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("record inspections", WRITE)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(&caller, "CreateInspection", &request.request_id, &request)?;
        let request_id = request.request_id.clone();
        let mut v = Violations::new();
        let fields = inspection_fields(&request.inspection.unwrap_or_default(), &mut v);
        let fields = checked(fields, v)?;
        caller.require_placement(&fields.placement)?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            catalog::usable(
                &txn,
                &caller,
                &fields.project_code,
                "inspection.project_code",
            )
            .await?;
            let at = now();
            let mut row = inspection::Model {
                id: new_id(),
                project_code: String::new(),
                inspecting_body: String::new(),
                unit_code: String::new(),
                province_code: String::new(),
                district_code: None,
                commune_code: None,
                current_commune_code: None,
                held_on: fields.held_on,
                year: 0,
                findings: String::new(),
                follow_ups: String::new(),
                open_follow_ups: 0,
                next_due_on: None,
                state: ACTIVE.to_owned(),
                archive_reason: None,
                version: 1,
                created_at: at,
                updated_at: at,
            };
            apply_inspection(&mut row, fields);
            records::insert(&txn, &caller, &request_id, &row).await?;
            Ok((
                pb::CreateInspectionResponse {
                    inspection: Some(inspection_to_proto(&row)),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn get_inspection(
        &self,
        request: Request<pb::GetInspectionRequest>,
    ) -> Result<Response<pb::GetInspectionResponse>, Status> {
        let row = records::fetched::<inspection::Model, _>(&self.db, &request, "read inspections")
            .await?;
        Ok(Response::new(pb::GetInspectionResponse {
            inspection: Some(inspection_to_proto(&row)),
        }))
    }

    async fn list_inspections(
        &self,
        request: Request<pb::ListInspectionsRequest>,
    ) -> Result<Response<pb::ListInspectionsResponse>, Status> {
        let list = records::list_order(request, "read inspections")?;
        let filter = &list.filter;
        let v = Violations::new();
        let narrow = Narrow::default()
            .year("year", filter.year)
            .positive("open_follow_ups", filter.open_follow_ups_only);
        let (rows, next) = list.page::<inspection::Model>(&self.db, v, narrow).await?;
        Ok(Response::new(pb::ListInspectionsResponse {
            inspections: rows.iter().map(inspection_to_proto).collect(),
            next_page_token: next,
        }))
    }

    async fn update_inspection(
        &self,
        request: Request<pb::UpdateInspectionRequest>,
    ) -> Result<Response<pb::UpdateInspectionResponse>, Status> {
        let order = records::update_order(
            request,
            "record inspections",
            "UpdateInspection",
            INSPECTION_PATHS,
        )?;
        let answer = records::update(
            &self.db,
            &self.cipher,
            order,
            |stored: inspection::Model, sent, paths| {
                let mut merged = inspection_to_proto(&stored);
                for path in paths {
                    match path.as_str() {
                        "inspecting_body" => merged.inspecting_body = sent.inspecting_body.clone(),
                        "held_on" => merged.held_on = sent.held_on.clone(),
                        "findings" => merged.findings = sent.findings.clone(),
                        "follow_ups" => merged.follow_ups = sent.follow_ups.clone(),
                        _ => {}
                    }
                }
                let mut v = Violations::new();
                let fields = checked(inspection_fields(&merged, &mut v), v)?;
                let mut row = stored;
                apply_inspection(&mut row, fields);
                Ok(row)
            },
            |row| pb::UpdateInspectionResponse {
                inspection: Some(inspection_to_proto(row)),
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    async fn archive_inspection(
        &self,
        request: Request<pb::ArchiveInspectionRequest>,
    ) -> Result<Response<pb::ArchiveInspectionResponse>, Status> {
        let (caller, key, order) =
            records::archive_order(request, "archive inspections", "ArchiveInspection")?;
        let answer = records::archive::<inspection::Model, _>(
            &self.db,
            &self.cipher,
            &caller,
            key,
            order,
            |row| pb::ArchiveInspectionResponse {
                inspection: Some(inspection_to_proto(row)),
            },
        )
        .await?;
        Ok(Response::new(answer))
    }
}
