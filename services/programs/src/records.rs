//! What every programme record has in common, and the handler steps they share:
//! the record is placed at a unit, is read only within the caller's scope,
//! changes only at the etag the caller read, is archived rather than deleted,
//! and every change is journalled in the same transaction.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Condition;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, IntoActiveModel};
use serde::Serialize;
use sustain_platform::Caller;
use sustain_platform::api::{Page, etag, now};
use sustain_platform::crypto::FieldCipher;
use sustain_platform::error::ServiceError;
use sustain_platform::journal::{self, Change, IdempotencyKey};
use sustain_platform::placement::Placement;
use sustain_proto::programs::v1 as pb;

use crate::convert::{MAX_REASON_CHARS, archived, check, stale};
use crate::store::{Narrow, save_guarded};

/// A row of a programme table with the standard columns: `id`, `unit_code`
/// and the placement columns, `state`, `archive_reason`, `version`,
/// `updated_at`.
pub trait Record: Clone + Serialize + Send + Sync + Sized + 'static {
    type Entity: EntityTrait<Model = Self>;
    /// The resource's name in messages and the journal.
    const KIND: &'static str;
    fn id(&self) -> &str;
    fn version(&self) -> i64;
    fn is_archived(&self) -> bool;
    fn placement(&self) -> Placement;
    /// The next version of the row, changed at `at`.
    fn bump(&mut self, at: DateTime<Utc>);
    fn archive(&mut self, reason: String);
}

/// Implements [`Record`] for an entity module with the standard columns.
macro_rules! record {
    ($module:ident, $kind:literal) => {
        impl $crate::records::Record for $crate::model::$module::Model {
            type Entity = $crate::model::$module::Entity;
            const KIND: &'static str = $kind;
            fn id(&self) -> &str {
                &self.id
            }
            fn version(&self) -> i64 {
                self.version
            }
            fn is_archived(&self) -> bool {
                self.state == $crate::convert::ARCHIVED
            }
            fn placement(&self) -> sustain_platform::placement::Placement {
                sustain_platform::placement::Placement {
                    unit_code: self.unit_code.clone(),
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
                self.state = $crate::convert::ARCHIVED.to_owned();
                self.archive_reason = Some(reason);
            }
        }
    };
}
pub(crate) use record;

pub async fn load<R: Record>(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<R>, ServiceError> {
    crate::store::by_key::<R::Entity>(conn, "id", id).await
}

fn not_found<R: Record>(id: &str) -> ServiceError {
    ServiceError::NotFound {
        resource: R::KIND,
        id: id.to_owned(),
    }
}

/// A record the caller may read: NOT_FOUND, or PERMISSION_DENIED outside scope.
pub async fn readable<R: Record>(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    id: &str,
) -> Result<R, ServiceError> {
    let row = load::<R>(conn, id)
        .await?
        .ok_or_else(|| not_found::<R>(id))?;
    caller.require_placement(&row.placement())?;
    Ok(row)
}

/// A record the caller may change now: in scope, not archived, at `etag`.
pub async fn changeable<R: Record>(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    id: &str,
    sent_etag: &str,
) -> Result<R, ServiceError> {
    let row = readable::<R>(conn, caller, id).await?;
    if row.is_archived() {
        return Err(archived(R::KIND, id));
    }
    if sent_etag != etag(row.version()) {
        return Err(stale(R::KIND, id));
    }
    Ok(row)
}

pub fn change<R: Record>(row: &R, action: &'static str) -> Change {
    Change {
        record_type: R::KIND.into(),
        record_id: row.id().to_owned(),
        owner_unit: row.placement().unit_code,
        version: row.version(),
        action: action.into(),
        state: journal::state_json(row),
    }
}

pub async fn insert<R>(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    request_id: &str,
    row: &R,
) -> Result<(), ServiceError>
where
    R: Record + IntoActiveModel<<R::Entity as EntityTrait>::ActiveModel>,
{
    crate::store::insert(conn, row.clone()).await?;
    journal::record(conn, caller, request_id, change(row, "create")).await?;
    Ok(())
}

/// Writes `row` (already bumped) over version `expected` and journals it.
pub async fn save<R>(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    request_id: &str,
    row: &R,
    expected: i64,
    action: &'static str,
) -> Result<(), ServiceError>
where
    R: Record + IntoActiveModel<<R::Entity as EntityTrait>::ActiveModel>,
    <R::Entity as EntityTrait>::ActiveModel: sea_orm::ActiveModelTrait<Entity = R::Entity>,
{
    if !save_guarded::<R::Entity>(conn, row.clone(), "id", row.id(), expected).await? {
        return Err(stale(R::KIND, row.id()));
    }
    journal::record(conn, caller, request_id, change(row, action)).await?;
    Ok(())
}

/// What an archive request names, checked.
#[derive(Debug, Clone)]
pub struct ArchiveOrder {
    pub id: String,
    pub etag: String,
    pub reason: String,
    pub request_id: String,
}

impl ArchiveOrder {
    pub fn checked(
        id: &str,
        etag: &str,
        reason: &str,
        request_id: &str,
    ) -> Result<ArchiveOrder, ServiceError> {
        let mut v = sustain_domain::Violations::new();
        let id = sustain_platform::api::required_id(id, "id", &mut v);
        if etag.trim().is_empty() {
            v.add("etag", "is required: send the etag you read");
        }
        let reason = sustain_platform::api::text(reason, "reason", MAX_REASON_CHARS, true, &mut v);
        check(v)?;
        Ok(ArchiveOrder {
            id,
            etag: etag.trim().to_owned(),
            reason,
            request_id: request_id.to_owned(),
        })
    }
}

/// What a get request and an archive request of a programme record carry:
/// every record's messages have the same fields, so one handler step reads
/// them all.
pub trait GetRequest {
    fn id(&self) -> &str;
}

pub trait ArchiveRequest: prost::Message {
    /// id, etag, reason, request_id.
    fn order(&self) -> [&str; 4];
}

macro_rules! record_requests {
    ($($get:ident, $archive:ident;)*) => {$(
        impl GetRequest for pb::$get {
            fn id(&self) -> &str {
                &self.id
            }
        }
        impl ArchiveRequest for pb::$archive {
            fn order(&self) -> [&str; 4] {
                [&self.id, &self.etag, &self.reason, &self.request_id]
            }
        }
    )*};
}

record_requests! {
    GetModelRequest, ArchiveModelRequest;
    GetEnrolmentRequest, ArchiveEnrolmentRequest;
    GetCourseRequest, ArchiveCourseRequest;
    GetTraineeRequest, ArchiveTraineeRequest;
    GetSupportRequest, ArchiveSupportRequest;
    GetActivityRequest, ArchiveActivityRequest;
    GetInspectionRequest, ArchiveInspectionRequest;
    GetSectorReportRequest, ArchiveSectorReportRequest;
}

/// What an update request of a programme record carries: the record (its
/// id and etag under `NOUN`), a field mask and the request id.
pub trait UpdateRequest: prost::Message + Sized {
    type Sent: Default;
    /// The record's field in the request: "course".
    const NOUN: &'static str;
    fn request_id(&self) -> &str;
    fn split(self) -> (String, Option<prost_types::FieldMask>, Self::Sent);
    fn id_and_meta(sent: &Self::Sent) -> (&str, Option<&pb::RecordMeta>);
}

macro_rules! update_requests {
    ($($request:ident, $field:ident, $record:ident;)*) => {$(
        impl UpdateRequest for pb::$request {
            type Sent = pb::$record;
            const NOUN: &'static str = stringify!($field);
            fn request_id(&self) -> &str {
                &self.request_id
            }
            fn split(self) -> (String, Option<prost_types::FieldMask>, pb::$record) {
                (self.request_id, self.update_mask, self.$field.unwrap_or_default())
            }
            fn id_and_meta(sent: &pb::$record) -> (&str, Option<&pb::RecordMeta>) {
                (&sent.id, sent.meta.as_ref())
            }
        }
    )*};
}

update_requests! {
    UpdateModelRequest, model, LivelihoodModel;
    UpdateEnrolmentRequest, enrolment, Enrolment;
    UpdateCourseRequest, course, Course;
    UpdateTraineeRequest, trainee, Trainee;
    UpdateSupportRequest, support, Support;
    UpdateActivityRequest, activity, CommunicationActivity;
    UpdateInspectionRequest, inspection, Inspection;
    UpdateSectorReportRequest, report, SectorReport;
}

/// A checked update request: who asks, its retry key, the record named and
/// the etag it was read at, the mask's paths and the record as sent.
#[derive(Debug)]
pub struct Update<S> {
    pub caller: Caller,
    pub key: Option<IdempotencyKey>,
    pub request_id: String,
    pub id: String,
    pub etag: String,
    pub paths: Vec<String>,
    pub sent: S,
}

/// An update request once the caller may `what` (WRITE): `method` keys
/// retries, the mask may name `allowed` paths only, the record's id and etag
/// are required.
pub fn update_order<Q: UpdateRequest>(
    request: tonic::Request<Q>,
    what: &str,
    method: &str,
    allowed: &[&str],
) -> Result<Update<Q::Sent>, ServiceError> {
    let caller = Caller::from_request(&request)?;
    caller.require(what, crate::WRITE)?;
    let request = request.into_inner();
    let key = IdempotencyKey::new(&caller, method, request.request_id(), &request)?;
    let (request_id, mask, sent) = request.split();
    let paths = crate::convert::mask_paths(mask.as_ref(), allowed)?
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut v = sustain_domain::Violations::new();
    let (raw_id, meta) = Q::id_and_meta(&sent);
    let id = sustain_platform::api::required_id(raw_id, &format!("{}.id", Q::NOUN), &mut v);
    let etag = sent_etag(meta, &format!("{}.meta.etag", Q::NOUN), &mut v);
    check(v)?;
    Ok(Update {
        caller,
        key,
        request_id,
        id,
        etag,
        paths,
        sent,
    })
}

/// Changes a record once per request id: `change` turns the stored row (in
/// scope, live, at the etag sent) and what was sent along the mask's paths
/// into the new row, which is bumped, saved and journalled; `render` answers.
pub async fn update<R, S, T>(
    db: &DatabaseConnection,
    cipher: &FieldCipher,
    order: Update<S>,
    change: impl FnOnce(R, S, &[String]) -> Result<R, ServiceError> + Send,
    render: impl FnOnce(&R) -> T + Send,
) -> Result<T, ServiceError>
where
    R: Record + IntoActiveModel<<R::Entity as EntityTrait>::ActiveModel>,
    <R::Entity as EntityTrait>::ActiveModel: sea_orm::ActiveModelTrait<Entity = R::Entity>,
    S: Send,
    T: prost::Message + Default,
{
    let Update {
        caller,
        key,
        request_id,
        id,
        etag,
        paths,
        sent,
    } = order;
    journal::run_once(db, cipher, key, |txn| async move {
        let stored = changeable::<R>(&txn, &caller, &id, &etag).await?;
        let expected = stored.version();
        let mut row = change(stored, sent, &paths)?;
        row.bump(now());
        save(&txn, &caller, &request_id, &row, expected, "update").await?;
        Ok((render(&row), txn))
    })
    .await
}

/// What a list request of a programme record carries: a filter with a unit,
/// a year and whether to show archived records, a page size and token.
pub trait ListRequest: Sized {
    type Filter: prost::Message + Default;
    fn split(self) -> (Self::Filter, i32, String);
    fn unit_year_archived(filter: &Self::Filter) -> (&str, i32, bool);
}

macro_rules! list_requests {
    ($($request:ident, $filter:ident;)*) => {$(
        impl ListRequest for pb::$request {
            type Filter = pb::$filter;
            fn split(self) -> (pb::$filter, i32, String) {
                (self.filter.unwrap_or_default(), self.page_size, self.page_token)
            }
            fn unit_year_archived(f: &pb::$filter) -> (&str, i32, bool) {
                (f.unit_code.trim(), f.year, f.include_archived)
            }
        }
    )*};
}

list_requests! {
    ListCoursesRequest, CourseFilter;
    ListTraineesRequest, TraineeFilter;
    ListSupportsRequest, SupportFilter;
    ListActivitiesRequest, ActivityFilter;
    ListInspectionsRequest, InspectionFilter;
    ListSectorReportsRequest, SectorReportFilter;
}

/// A list request once the caller may read: its filter, for the record's own
/// conditions, and what every list shares (unit, page), checked in
/// [`Listing::page`] together with the record's own filter fields.
#[derive(Debug)]
pub struct Listing<F> {
    pub filter: F,
    caller: Caller,
    unit: String,
    include_archived: bool,
    size: usize,
    page_token: String,
    violations: sustain_domain::Violations,
}

/// The list request, once the caller may `what` (READ).
pub fn list_order<Q: ListRequest>(
    request: tonic::Request<Q>,
    what: &str,
) -> Result<Listing<Q::Filter>, ServiceError> {
    let caller = Caller::from_request(&request)?;
    caller.require(what, crate::READ)?;
    let (filter, page_size, page_token) = request.into_inner().split();
    let (unit, year, include_archived) = Q::unit_year_archived(&filter);
    let (unit, year_given) = (unit.to_owned(), year);
    let mut violations = sustain_domain::Violations::new();
    let size = list_filter(&unit, year_given, page_size, &mut violations);
    Ok(Listing {
        filter,
        caller,
        unit,
        include_archived,
        size,
        page_token,
        violations,
    })
}

impl<F: prost::Message> Listing<F> {
    /// One page of the live (or, asked, all) records in the caller's scope
    /// and under the filter's unit that meet `condition`, once no filter
    /// field (the shared ones, and the record's own in `v`) is invalid and the
    /// unit lies in the caller's scope.
    pub async fn page<R: Record>(
        self,
        db: &DatabaseConnection,
        v: sustain_domain::Violations,
        narrow: crate::store::Narrow,
    ) -> Result<(Vec<R>, String), ServiceError> {
        let mut violations = self.violations;
        violations.extend(v);
        check(violations)?;
        let unit = (!self.unit.is_empty()).then_some(self.unit.as_str());
        if let Some(unit) = unit {
            self.caller.require_unit(unit)?;
        }
        let condition = crate::store::live(self.include_archived)
            .add(sustain_platform::placement::selection(
                &self.caller.scope,
                unit,
            ))
            .add(narrow.into_condition());
        let filter_key = self.filter.encode_to_vec();
        list_page::<R>(db, condition, &self.page_token, &filter_key, self.size).await
    }
}

/// The record a get request names, once the caller may `what` (READ) and the
/// record lies in its scope.
pub async fn fetched<R: Record, Q: GetRequest>(
    conn: &impl ConnectionTrait,
    request: &tonic::Request<Q>,
    what: &str,
) -> Result<R, ServiceError> {
    let caller = Caller::from_request(request)?;
    caller.require(what, crate::READ)?;
    let mut v = sustain_domain::Violations::new();
    let id = sustain_platform::api::required_id(request.get_ref().id(), "id", &mut v);
    check(v)?;
    readable::<R>(conn, &caller, &id).await
}

/// The caller, its idempotency key and the checked order of an archive
/// request, once the caller may `what` (ARCHIVE); `method` keys retries.
pub fn archive_order<Q: ArchiveRequest>(
    request: tonic::Request<Q>,
    what: &str,
    method: &str,
) -> Result<(Caller, Option<IdempotencyKey>, ArchiveOrder), ServiceError> {
    let caller = Caller::from_request(&request)?;
    caller.require(what, crate::ARCHIVE)?;
    let request = request.into_inner();
    let [id, etag, reason, request_id] = request.order();
    let key = IdempotencyKey::new(&caller, method, request_id, &request)?;
    let order = ArchiveOrder::checked(id, etag, reason, request_id)?;
    Ok((caller, key, order))
}

/// Archives a record exactly once per request id; `to_proto` renders the answer.
pub async fn archive<R, T>(
    db: &DatabaseConnection,
    cipher: &FieldCipher,
    caller: &Caller,
    key: Option<IdempotencyKey>,
    order: ArchiveOrder,
    to_proto: impl FnOnce(&R) -> T + Send,
) -> Result<T, ServiceError>
where
    R: Record + IntoActiveModel<<R::Entity as EntityTrait>::ActiveModel>,
    <R::Entity as EntityTrait>::ActiveModel: sea_orm::ActiveModelTrait<Entity = R::Entity>,
    T: prost::Message + Default,
{
    journal::run_once(db, cipher, key, |txn| async move {
        let row = archive_row::<R>(&txn, caller, order).await?;
        Ok((to_proto(&row), txn))
    })
    .await
}

/// Archives the record `order` names inside a transaction the caller runs,
/// and returns it as archived.
pub async fn archive_row<R>(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    order: ArchiveOrder,
) -> Result<R, ServiceError>
where
    R: Record + IntoActiveModel<<R::Entity as EntityTrait>::ActiveModel>,
    <R::Entity as EntityTrait>::ActiveModel: sea_orm::ActiveModelTrait<Entity = R::Entity>,
{
    let mut row = changeable::<R>(conn, caller, &order.id, &order.etag).await?;
    let expected = row.version();
    row.archive(order.reason);
    row.bump(now());
    save(conn, caller, &order.request_id, &row, expected, "archive").await?;
    Ok(row)
}

/// One page of rows matching `condition` and the token for the next.
pub async fn list_page<R: Record>(
    conn: &impl ConnectionTrait,
    condition: Condition,
    token: &str,
    filter_key: &[u8],
    size: usize,
) -> Result<(Vec<R>, String), ServiceError> {
    let page = Page::asked(size, token, filter_key.to_vec())?;
    crate::store::page::<R::Entity>(conn, Narrow::default().and(condition), "id", &page, |r| {
        r.id()
    })
    .await
}

/// The etag an update sent, trimmed; a violation at `field` when it is missing.
pub fn sent_etag(
    meta: Option<&sustain_proto::programs::v1::RecordMeta>,
    field: &str,
    v: &mut sustain_domain::Violations,
) -> String {
    let etag = meta.map(|m| m.etag.trim().to_owned()).unwrap_or_default();
    if etag.is_empty() {
        v.add(field, "is required: send the etag you read");
    }
    etag
}

/// Checks what every list filter has: the page size (returned), a unit code
/// and a year (0 for any).
pub fn list_filter(
    unit: &str,
    year: i32,
    page_size: i32,
    v: &mut sustain_domain::Violations,
) -> usize {
    let size = sustain_platform::api::page_size(page_size, v).unwrap_or_default();
    sustain_platform::api::known_unit(unit, "filter.unit_code", v);
    if year != 0 && !(2000..=2100).contains(&year) {
        v.add("filter.year", "must be between 2000 and 2100");
    }
    size
}
