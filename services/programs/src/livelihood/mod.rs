//! The LivelihoodService adapter: models of Projects 2 and 3 and the households
//! enrolled in them. An enrolment's class is read from the registry's certified
//! reviews in the same call that checks the household exists in the caller's
//! scope; the registry is asked before any transaction opens, so a registry
//! that does not answer leaves nothing written.

pub mod convert;

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, NaiveDate};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use sustain_domain::Violations;
use sustain_domain::programme::MODEL_PROJECTS;
use sustain_platform::Caller;
use sustain_platform::api::{Page, new_id, now, optional_date, required_id, today};
use sustain_platform::crypto::FieldCipher;
use sustain_platform::error::{ServiceError, checked};
use sustain_platform::journal::{self, IdempotencyKey};
use sustain_platform::placement::{self, Placement};
use sustain_proto::programs::v1 as pb;
use sustain_proto::registry::v1 as registry_pb;
use tonic::{Request, Response, Status};

use crate::catalog::{self, check_code};
use crate::convert::{ACTIVE, ARCHIVED, archived, check, class_from_proto};
use crate::model::{enrolment, livelihood_model};
use crate::records::{self, Record, record};
use crate::registry::{Named, Registry};
use crate::store::{self, Narrow, live, page, tally};
use crate::{READ, WRITE};
use convert::{
    ENROLMENT_PATHS, MODEL_PATHS, apply_model_fields, commune_codes, enrolment_to_proto,
    model_fields, model_to_proto, outcome_fields, type_code,
};

/// Most households one BatchCreateEnrolments call may enrol.
pub const MAX_ENROLMENTS_PER_CALL: usize = 1000;

#[derive(Debug, Clone)]
pub struct LivelihoodApi {
    pub db: DatabaseConnection,
    pub cipher: FieldCipher,
    pub registry: Registry,
}

record!(livelihood_model, "livelihood_model");

/// Enrolments sit at the household's commune, as the registry placed it.
impl Record for enrolment::Model {
    type Entity = enrolment::Entity;
    const KIND: &'static str = "enrolment";
    fn id(&self) -> &str {
        &self.id
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn is_archived(&self) -> bool {
        self.state == ARCHIVED
    }
    fn placement(&self) -> Placement {
        Placement {
            unit_code: self
                .commune_code
                .clone()
                .unwrap_or_else(|| self.province_code.clone()),
            province_code: self.province_code.clone(),
            district_code: self.district_code.clone(),
            commune_code: self.commune_code.clone(),
            current_commune_code: self.current_commune_code.clone(),
        }
    }
    fn bump(&mut self, at: chrono::DateTime<chrono::Utc>) {
        self.version += 1;
        self.updated_at = at;
    }
    fn archive(&mut self, reason: String) {
        self.state = ARCHIVED.to_owned();
        self.archive_reason = Some(reason);
    }
}

fn not_found(resource: &'static str, id: &str) -> ServiceError {
    ServiceError::NotFound {
        resource,
        id: id.to_owned(),
    }
}

impl LivelihoodApi {
    /// The catalog item a model hangs under; it must lie under Project 2 or 3.
    async fn model_project(
        &self,
        conn: &impl ConnectionTrait,
        caller: &Caller,
        code: &str,
    ) -> Result<String, ServiceError> {
        let item = catalog::usable(conn, caller, code, "model.project_code").await?;
        match item.project_code {
            Some(p) if MODEL_PROJECTS.contains(&p.as_str()) => Ok(p),
            _ => Err(ServiceError::invalid(
                "model.project_code",
                "must lie under Project 2 (NTP-SPR.2) or Project 3 (NTP-SPR.3)",
            )),
        }
    }

    async fn visible_model(
        &self,
        conn: &impl ConnectionTrait,
        caller: &Caller,
        id: &str,
    ) -> Result<livelihood_model::Model, ServiceError> {
        let row = store::livelihood::model(conn, id)
            .await?
            .ok_or_else(|| not_found("model", id))?;
        caller.require_unit(&row.unit_code)?;
        Ok(row)
    }

    async fn one_model(
        &self,
        row: livelihood_model::Model,
    ) -> Result<pb::LivelihoodModel, ServiceError> {
        let counts =
            store::livelihood::enrolled_counts(&self.db, std::slice::from_ref(&row.id)).await?;
        Ok(model_to_proto(
            &row,
            counts.get(&row.id).copied().unwrap_or(0),
        ))
    }
}

/// Checks the enrolments asked for; each household once, dated inside the model.
fn new_enrolments(
    request: &pb::BatchCreateEnrolmentsRequest,
    today: chrono::NaiveDate,
    v: &mut Violations,
) -> Vec<(String, chrono::NaiveDate)> {
    if request.enrolments.is_empty() {
        v.add("enrolments", "is required");
    } else if request.enrolments.len() > MAX_ENROLMENTS_PER_CALL {
        v.add(
            "enrolments",
            format!("at most {MAX_ENROLMENTS_PER_CALL} per call"),
        );
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(request.enrolments.len());
    for (i, e) in request.enrolments.iter().enumerate() {
        let field = format!("enrolments[{i}].household_id");
        let id = required_id(&e.household_id, &field, v);
        if !id.is_empty() && !seen.insert(id.clone()) {
            v.add(field, "is listed twice");
        }
        let date_field = format!("enrolments[{i}].enrolled_on");
        let on = optional_date(&e.enrolled_on, &date_field, v).unwrap_or(today);
        if on > today {
            v.add(date_field, "must not be in the future");
        } else if on.year() < tally::FIRST_YEAR {
            v.add(
                date_field,
                format!("must be in {} or later", tally::FIRST_YEAR),
            );
        }
        out.push((id, on));
    }
    out
}

/// True when the household lives where the model works.
fn lives_in_model_area(
    s: &registry_pb::HouseholdStanding,
    model: &livelihood_model::Model,
) -> bool {
    let communes = commune_codes(model);
    if communes.is_empty() {
        let u = &model.unit_code;
        &s.province_code == u
            || &s.district_code == u
            || &s.commune_code == u
            || &s.current_commune_code == u
    } else {
        communes
            .iter()
            .any(|c| c == &s.commune_code || c == &s.current_commune_code)
    }
}

/// Names each enrolment dated outside the model's period.
fn within_period(
    model: &livelihood_model::Model,
    asked: &[(String, NaiveDate)],
) -> Result<(), ServiceError> {
    let mut v = Violations::new();
    for (i, (_, on)) in asked.iter().enumerate() {
        if *on < model.start_date || model.end_date.is_some_and(|end| *on > end) {
            v.add(
                format!("enrolments[{i}].enrolled_on"),
                format!(
                    "lies outside the model's period ({} to {})",
                    model.start_date,
                    model.end_date.map_or("open".to_owned(), |d| d.to_string())
                ),
            );
        }
    }
    check(v)
}

/// ALREADY_EXISTS naming the households of `asked` already in `model_id`.
async fn refuse_enrolled(
    conn: &impl ConnectionTrait,
    model_id: &str,
    asked: &[(String, NaiveDate)],
) -> Result<(), ServiceError> {
    let ids: Vec<String> = asked.iter().map(|(id, _)| id.clone()).collect();
    let taken = store::livelihood::already_enrolled(conn, model_id, &ids).await?;
    if !taken.is_empty() {
        return Err(ServiceError::AlreadyExists {
            reason: "ALREADY_ENROLLED",
            message: format!(
                "{} household(s) are already enrolled in model {}: {}",
                taken.len(),
                model_id,
                taken.join(", ")
            ),
            metadata: vec![("model_id", model_id.to_owned())],
        });
    }
    Ok(())
}

/// The enrolment rows of a batch: each household placed where it lives and
/// classed by its standing in the year it joins.
fn new_enrolments_of(
    model: &livelihood_model::Model,
    asked: &[(String, NaiveDate)],
    standings: &HashMap<String, sustain_proto::registry::v1::HouseholdStanding>,
) -> Vec<enrolment::Model> {
    let at = now();
    asked
        .iter()
        .filter_map(|(id, on)| {
            let s = standings.get(id)?;
            let class = crate::registry::standing_code(s.standing);
            Some(enrolment::Model {
                id: new_id(),
                model_id: model.id.clone(),
                project_code: model.project_code.clone(),
                project_root: model.project_root.clone(),
                household_id: id.clone(),
                enrolled_on: *on,
                year: on.year(),
                class: class.to_owned(),
                review_year: s.review_year,
                province_code: s.province_code.clone(),
                district_code: (!s.district_code.is_empty()).then(|| s.district_code.clone()),
                commune_code: Some(s.commune_code.clone()),
                current_commune_code: Some(s.current_commune_code.clone()),
                ethnic_minority: s.ethnic_minority,
                income_before_vnd: None,
                income_after_vnd: None,
                yearly_profit_vnd: None,
                measured_on: None,
                state: ACTIVE.to_owned(),
                archive_reason: None,
                version: 1,
                created_at: at,
                updated_at: at,
            })
        })
        .collect()
}

/// Writes new enrolments of `model_id`, moves the tallies and the reach
/// with them, and journals them.
async fn enrol(
    txn: &impl sustain_db::Bulk,
    caller: &Caller,
    request_id: &str,
    model_id: &str,
    rows: Vec<enrolment::Model>,
) -> Result<(), ServiceError> {
    let changes = rows.iter().map(|r| records::change(r, "create")).collect();
    let mut sums = tally::SumsDelta::default();
    for r in &rows {
        sums.add(r, 1);
    }
    let enrolled: Vec<String> = rows.iter().map(|r| r.household_id.clone()).collect();
    insert_enrolments(txn, model_id, rows).await?;
    sums.apply(txn).await?;
    tally::refresh_reach(txn, &enrolled).await?;
    journal::record_many(txn, caller, request_id, changes).await?;
    Ok(())
}

/// Inserts the batch; a household enrolled by a concurrent batch meanwhile is
/// ALREADY_EXISTS, not an internal error.
async fn insert_enrolments(
    conn: &impl sustain_db::Bulk,
    model_id: &str,
    rows: Vec<enrolment::Model>,
) -> Result<(), ServiceError> {
    match sustain_db::insert_rows::<enrolment::Entity>(conn, rows, &[]).await {
        Ok(()) => Ok(()),
        Err(e) if sustain_db::is_unique_violation(&e) => Err(ServiceError::AlreadyExists {
            reason: "ALREADY_ENROLLED",
            message: format!(
                "a household of this batch was enrolled in model {} meanwhile",
                model_id
            ),
            metadata: vec![("model_id", model_id.to_owned())],
        }),
        Err(e) => Err(e.into()),
    }
}

#[tonic::async_trait]
impl pb::livelihood_service_server::LivelihoodService for LivelihoodApi {
    async fn create_model(
        &self,
        request: Request<pb::CreateModelRequest>,
    ) -> Result<Response<pb::CreateModelResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("create models", WRITE)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(&caller, "CreateModel", &request.request_id, &request)?;
        let request_id = request.request_id.clone();
        let m = request.model.unwrap_or_default();
        let mut v = Violations::new();
        let fields = model_fields(&m, "model", today(), &mut v);
        if !m.project_code.trim().is_empty() {
            check_code(&m.project_code, "model.project_code", &mut v);
        }
        let fields = checked(fields, v)?;
        caller.require_placement(&fields.placement)?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            let root = self
                .model_project(&txn, &caller, &fields.project_code)
                .await?;
            let at = now();
            let mut row = livelihood_model::Model {
                id: new_id(),
                project_code: String::new(),
                project_root: String::new(),
                name: String::new(),
                model_type: String::new(),
                unit_code: String::new(),
                province_code: String::new(),
                district_code: None,
                commune_code: None,
                current_commune_code: None,
                commune_codes: String::new(),
                start_date: fields.start_date,
                end_date: None,
                start_year: 0,
                end_year: 0,
                budget_vnd: 0,
                jobs_created: 0,
                state: ACTIVE.to_owned(),
                archive_reason: None,
                version: 1,
                created_at: at,
                updated_at: at,
            };
            apply_model_fields(&mut row, fields, root);
            store::insert(&txn, row.clone()).await?;
            journal::record(&txn, &caller, &request_id, records::change(&row, "create")).await?;
            Ok((
                pb::CreateModelResponse {
                    model: Some(model_to_proto(&row, 0)),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn get_model(
        &self,
        request: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::GetModelResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read models", READ)?;
        let mut v = Violations::new();
        let id = required_id(&request.get_ref().id, "id", &mut v);
        check(v)?;
        let row = self.visible_model(&self.db, &caller, &id).await?;
        Ok(Response::new(pb::GetModelResponse {
            model: Some(self.one_model(row).await?),
        }))
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read models", READ)?;
        let request = request.into_inner();
        let filter = request.filter.clone().unwrap_or_default();
        let mut v = Violations::new();
        let unit = filter.unit_code.trim();
        let size = records::list_filter(unit, filter.year, request.page_size, &mut v);
        let project = (!filter.project_code.trim().is_empty())
            .then(|| check_code(&filter.project_code, "filter.project_code", &mut v));
        let model_type = pb::ModelType::try_from(filter.r#type)
            .ok()
            .and_then(type_code);
        if filter.r#type != 0 && model_type.is_none() {
            v.add("filter.type", "is not a model type");
        }
        check(v)?;
        if !unit.is_empty() {
            caller.require_unit(unit)?;
        }
        let list_page = Page::asked(
            size,
            &request.page_token,
            prost::Message::encode_to_vec(&filter),
        )?;
        let narrow =
            store::livelihood::models_visible(&caller.scope, (!unit.is_empty()).then_some(unit))
                .and(live(filter.include_archived))
                .running("start_year", "end_year", filter.year)
                .project("project_code", project.as_deref())
                .is("model_type", model_type);
        let (rows, next) =
            page::<livelihood_model::Entity>(&self.db, narrow, "id", &list_page, |r| r.id.as_str())
                .await?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let counts = store::livelihood::enrolled_counts(&self.db, &ids).await?;
        Ok(Response::new(pb::ListModelsResponse {
            models: rows
                .iter()
                .map(|r| model_to_proto(r, counts.get(&r.id).copied().unwrap_or(0)))
                .collect(),
            next_page_token: next,
        }))
    }

    async fn update_model(
        &self,
        request: Request<pb::UpdateModelRequest>,
    ) -> Result<Response<pb::UpdateModelResponse>, Status> {
        let records::Update {
            caller,
            key,
            request_id,
            id,
            etag,
            paths,
            sent,
        } = records::update_order(request, "change models", "UpdateModel", MODEL_PATHS)?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            let stored =
                records::changeable::<livelihood_model::Model>(&txn, &caller, &id, &etag).await?;
            // The stored model with the masked fields replaced, checked whole.
            let mut merged = model_to_proto(&stored, 0);
            for path in &paths {
                match path.as_str() {
                    "name" => merged.name = sent.name.clone(),
                    "type" => merged.r#type = sent.r#type,
                    "commune_codes" => merged.commune_codes = sent.commune_codes.clone(),
                    "start_date" => merged.start_date = sent.start_date.clone(),
                    "end_date" => merged.end_date = sent.end_date.clone(),
                    "budget_vnd" => merged.budget_vnd = sent.budget_vnd,
                    "jobs_created" => merged.jobs_created = sent.jobs_created,
                    _ => {}
                }
            }
            let mut v = Violations::new();
            let fields = model_fields(&merged, "model", today(), &mut v);
            let fields = checked(fields, v)?;
            let expected = stored.version;
            let root = stored.project_root.clone();
            let mut row = stored;
            apply_model_fields(&mut row, fields, root);
            row.version = expected + 1;
            row.updated_at = now();
            records::save(&txn, &caller, &request_id, &row, expected, "update").await?;
            let counts =
                store::livelihood::enrolled_counts(&txn, std::slice::from_ref(&row.id)).await?;
            Ok((
                pb::UpdateModelResponse {
                    model: Some(model_to_proto(
                        &row,
                        counts.get(&row.id).copied().unwrap_or(0),
                    )),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn archive_model(
        &self,
        request: Request<pb::ArchiveModelRequest>,
    ) -> Result<Response<pb::ArchiveModelResponse>, Status> {
        let (caller, key, order) =
            records::archive_order(request, "archive models", "ArchiveModel")?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            let mut row = records::changeable::<livelihood_model::Model>(
                &txn,
                &caller,
                &order.id,
                &order.etag,
            )
            .await?;
            let expected = row.version;
            row.archive(order.reason);
            row.bump(now());
            records::save(&txn, &caller, &order.request_id, &row, expected, "archive").await?;
            let counts =
                store::livelihood::enrolled_counts(&txn, std::slice::from_ref(&row.id)).await?;
            Ok((
                pb::ArchiveModelResponse {
                    model: Some(model_to_proto(
                        &row,
                        counts.get(&row.id).copied().unwrap_or(0),
                    )),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn batch_create_enrolments(
        &self,
        request: Request<pb::BatchCreateEnrolmentsRequest>,
    ) -> Result<Response<pb::BatchCreateEnrolmentsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("enrol households", WRITE)?;
        let credentials = crate::registry::credentials_of(&request)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(
            &caller,
            "BatchCreateEnrolments",
            &request.request_id,
            &request,
        )?;
        let request_id = request.request_id.clone();
        let today = today();
        let mut v = Violations::new();
        let model_id = required_id(&request.model_id, "model_id", &mut v);
        let asked = new_enrolments(&request, today, &mut v);
        check(v)?;
        // A retry of a committed batch answers from the journal without asking
        // the registry again.
        if let Some(previous) = journal::answered(&self.db, &self.cipher, key.as_ref()).await? {
            return Ok(Response::new(previous));
        }
        let model = self.visible_model(&self.db, &caller, &model_id).await?;
        if model.state == ARCHIVED {
            return Err(archived("model", &model_id).into());
        }
        within_period(&model, &asked)?;
        let named = Named::each(asked.iter().map(|(id, on)| (id.clone(), on.year())), |i| {
            format!("enrolments[{i}].household_id")
        });
        let standings = self
            .registry
            .checked(&credentials, &named, false, |s| {
                (!lives_in_model_area(s, &model)).then(|| {
                    format!(
                        "the household lives in commune {}, where the model does not work",
                        s.commune_code
                    )
                })
            })
            .await?;

        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            refuse_enrolled(&txn, &model.id, &asked).await?;
            let rows = new_enrolments_of(&model, &asked, &standings);
            let protos = rows.iter().map(enrolment_to_proto).collect();
            enrol(&txn, &caller, &request_id, &model.id, rows).await?;
            Ok((
                pb::BatchCreateEnrolmentsResponse { enrolments: protos },
                txn,
            ))
        })
        .await?;
        tracing::info!(count = answer.enrolments.len(), "households enrolled");
        Ok(Response::new(answer))
    }

    async fn get_enrolment(
        &self,
        request: Request<pb::GetEnrolmentRequest>,
    ) -> Result<Response<pb::GetEnrolmentResponse>, Status> {
        let row =
            records::fetched::<enrolment::Model, _>(&self.db, &request, "read enrolments").await?;
        Ok(Response::new(pb::GetEnrolmentResponse {
            enrolment: Some(enrolment_to_proto(&row)),
        }))
    }

    async fn list_enrolments(
        &self,
        request: Request<pb::ListEnrolmentsRequest>,
    ) -> Result<Response<pb::ListEnrolmentsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read enrolments", READ)?;
        let request = request.into_inner();
        let filter = request.filter.clone().unwrap_or_default();
        let mut v = Violations::new();
        let unit = filter.unit_code.trim();
        let size = records::list_filter(unit, filter.year, request.page_size, &mut v);
        let model_id = (!filter.model_id.trim().is_empty())
            .then(|| required_id(&filter.model_id, "filter.model_id", &mut v));
        let project = (!filter.project_code.trim().is_empty())
            .then(|| check_code(&filter.project_code, "filter.project_code", &mut v));
        let class = pb::EnrolmentClass::try_from(filter.class_at_enrolment)
            .ok()
            .and_then(class_from_proto);
        if filter.class_at_enrolment != 0 && class.is_none() {
            v.add("filter.class_at_enrolment", "is not a class");
        }
        check(v)?;
        if !unit.is_empty() {
            caller.require_unit(unit)?;
        }
        let list_page = Page::asked(
            size,
            &request.page_token,
            prost::Message::encode_to_vec(&filter),
        )?;
        let narrow = Narrow::default()
            .and(live(filter.include_archived))
            .and(placement::selection(
                &caller.scope,
                (!unit.is_empty()).then_some(unit),
            ))
            .is("model_id", model_id)
            .year("year", filter.year)
            .project("project_code", project.as_deref())
            .is("class", class.map(|c| c.code()));
        let (rows, next) =
            page::<enrolment::Entity>(&self.db, narrow, "id", &list_page, |r| r.id.as_str())
                .await?;
        Ok(Response::new(pb::ListEnrolmentsResponse {
            enrolments: rows.iter().map(enrolment_to_proto).collect(),
            next_page_token: next,
        }))
    }

    async fn update_enrolment(
        &self,
        request: Request<pb::UpdateEnrolmentRequest>,
    ) -> Result<Response<pb::UpdateEnrolmentResponse>, Status> {
        let records::Update {
            caller,
            key,
            request_id,
            id,
            etag,
            sent,
            ..
        } = records::update_order(
            request,
            "record outcomes",
            "UpdateEnrolment",
            ENROLMENT_PATHS,
        )?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            let stored = records::changeable::<enrolment::Model>(&txn, &caller, &id, &etag).await?;
            let expected = stored.version;
            let before = stored.clone();
            let mut row = stored;
            match &sent.outcome {
                // The mask names the outcome and none is sent: it is cleared.
                None => {
                    row.income_before_vnd = None;
                    row.income_after_vnd = None;
                    row.yearly_profit_vnd = None;
                    row.measured_on = None;
                }
                Some(o) => {
                    let mut v = Violations::new();
                    let (outcome, measured_on) =
                        checked(outcome_fields(o, row.enrolled_on, today(), &mut v), v)?;
                    row.income_before_vnd = Some(outcome.income_before);
                    row.income_after_vnd = Some(outcome.income_after);
                    row.yearly_profit_vnd = Some(outcome.yearly_profit);
                    row.measured_on = Some(measured_on);
                }
            }
            row.version = expected + 1;
            row.updated_at = now();
            records::save(&txn, &caller, &request_id, &row, expected, "update").await?;
            let mut sums = tally::SumsDelta::default();
            sums.add(&before, -1);
            sums.add(&row, 1);
            sums.apply(&txn).await?;
            Ok((
                pb::UpdateEnrolmentResponse {
                    enrolment: Some(enrolment_to_proto(&row)),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn archive_enrolment(
        &self,
        request: Request<pb::ArchiveEnrolmentRequest>,
    ) -> Result<Response<pb::ArchiveEnrolmentResponse>, Status> {
        let (caller, key, order) =
            records::archive_order(request, "archive enrolments", "ArchiveEnrolment")?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            let row = records::archive_row::<enrolment::Model>(&txn, &caller, order).await?;
            // It counted until now.
            let mut sums = tally::SumsDelta::default();
            sums.add(&row, -1);
            sums.apply(&txn).await?;
            tally::refresh_reach(&txn, std::slice::from_ref(&row.household_id)).await?;
            Ok((
                pb::ArchiveEnrolmentResponse {
                    enrolment: Some(enrolment_to_proto(&row)),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }
}
