//! The ReviewService adapter: the annual review of a household from draft through
//! the village meeting's approval to the commune's certification, corrections as
//! new revisions, history and point-in-time reads, the certified summaries, and
//! the bulk import. Every mutation runs in one transaction with its journal
//! entries and tally changes.

pub mod convert;
pub mod import;
pub mod standing;
pub mod summary;

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use sustain_domain::Violations;
use sustain_domain::admin::{self, Location};
use sustain_domain::poverty::{self, Standards};
use sustain_platform::api::{new_id, now, required_id};
use sustain_platform::error::ServiceError;
use sustain_platform::journal::{self, Change, IdempotencyKey};
use sustain_platform::{Caller, Role};
use sustain_proto::registry::v1 as pb;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{etag, household_to_proto, parse_date, today};
use crate::model::review;
use crate::store::reviews as store;
use crate::store::tally::{self, TallyDelta};
use crate::store::{self as households, HouseholdRecord, Vault};
use convert::{Assessment, assess, review_to_proto, standard_to_proto};

const READ: &[Role] = &[
    Role::Viewer,
    Role::Enumerator,
    Role::Approver,
    Role::Admin,
    Role::Sync,
];
const RECORD: &[Role] = &[Role::Enumerator, Role::Admin];
const DECIDE: &[Role] = &[Role::Approver, Role::Admin];
/// Importing certified reviews is certifying them.
pub const IMPORT: &[Role] = &[Role::Approver, Role::Admin];

const MAX_DECISION_CHARS: usize = 100;

#[derive(Debug, Clone)]
pub struct ReviewApi {
    pub db: DatabaseConnection,
    pub vault: Vault,
    pub standards: Arc<crate::standards::StandardsCell>,
}

/// Where a review was counted, for scope checks.
fn location_of(r: &review::Model) -> Location {
    Location {
        province_code: r.province_code.clone(),
        district_code: (!r.district_code.is_empty()).then(|| r.district_code.clone()),
        commune_code: r.commune_code.clone(),
        current_commune_code: r.current_commune_code.clone(),
    }
}

/// Where `household` is, for the area of its review.
fn place_of(household: &HouseholdRecord) -> convert::Place<'_> {
    convert::Place {
        location: &household.location,
        residence: household.residence,
        registered_on: household.registered_on,
    }
}

/// A new review row of `household` from an assessment.
pub fn new_review(
    household: &HouseholdRecord,
    a: &Assessment,
    revision: i32,
    transition: &str,
    supersedes: Option<String>,
    at: DateTime<Utc>,
) -> review::Model {
    let l = &household.location;
    review::Model {
        id: new_id(),
        household_id: household.id.clone(),
        year: a.year,
        revision,
        kind: a.kind.to_owned(),
        state: store::DRAFT.to_owned(),
        standard_code: a.standard_code.clone(),
        province_code: l.province_code.clone(),
        district_code: l.district_code.clone().unwrap_or_default(),
        commune_code: l.commune_code.clone(),
        current_commune_code: l.current_commune_code.clone(),
        residence: household.residence.code().to_owned(),
        area: a.area.code().to_owned(),
        area_reason: a.area_reason.clone(),
        ethnic_minority: household.ethnic_minority,
        income: a.income,
        score_a: a.score_a,
        deprived_bits: i32::from(a.deprived.bits()),
        deprivation_count: a.deprived.count() as i32,
        class: a.class.code().to_owned(),
        transition: transition.to_owned(),
        mpi_poor: a.mpi_poor,
        household_version: household.version,
        reviewer: a.reviewer.clone(),
        reviewed_on: a.reviewed_on,
        meeting_date: None,
        agreement_percent: None,
        approved_by: None,
        approved_at: None,
        decision_number: None,
        decision_date: None,
        certified_by: None,
        certified_at: None,
        supersedes,
        version: 1,
        created_at: at,
        updated_at: at,
    }
}

pub fn journal_change(r: &review::Model, action: &'static str) -> Change {
    Change {
        record_type: "review".into(),
        record_id: r.id.clone(),
        owner_unit: r.commune_code.clone(),
        version: r.version,
        action: action.into(),
        state: journal::state_json(r),
    }
}

fn required_etag(raw: &str, v: &mut Violations) -> String {
    if raw.trim().is_empty() {
        v.add("etag", "is required: send the etag you read");
    }
    raw.trim().to_owned()
}

fn check_etag(r: &review::Model, sent: &str) -> Result<(), ServiceError> {
    if sent == etag(r.version) {
        Ok(())
    } else {
        Err(ServiceError::Aborted {
            reason: "STALE_ETAG",
            message: format!(
                "etag {sent:?} is stale: review {} is at {}; read it again",
                r.id,
                etag(r.version)
            ),
        })
    }
}

fn wrong_state(r: &review::Model, wanted: &str, action: &str) -> ServiceError {
    ServiceError::FailedPrecondition {
        reason: "REVIEW_STATE",
        message: format!(
            "review {} is {}; only a {wanted} review can be {action}",
            r.id, r.state
        ),
    }
}

fn decision_date(
    raw: &str,
    field: &str,
    not_before: Option<NaiveDate>,
    v: &mut Violations,
) -> Option<NaiveDate> {
    if raw.trim().is_empty() {
        v.add(field, "is required");
        return None;
    }
    let d = parse_date(raw, field, v)?;
    if d > today() {
        v.add(field, "is in the future");
    } else if let Some(earliest) = not_before
        && d < earliest
    {
        v.add(field, format!("is before {earliest}"));
    }
    Some(d)
}

impl ReviewApi {
    async fn household_in_scope(
        &self,
        conn: &impl ConnectionTrait,
        caller: &Caller,
        id: &str,
    ) -> Result<HouseholdRecord, ServiceError> {
        let record = households::load(conn, id, &self.vault)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                resource: "household",
                id: id.to_owned(),
            })?;
        caller.require_location(&record.location)?;
        Ok(record)
    }

    async fn review_in_scope(
        &self,
        conn: &impl ConnectionTrait,
        caller: &Caller,
        id: &str,
    ) -> Result<review::Model, ServiceError> {
        let r = store::find(conn, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                resource: "review",
                id: id.to_owned(),
            })?;
        caller.require_location(&location_of(&r))?;
        Ok(r)
    }

    fn to_proto(&self, r: &review::Model) -> pb::Review {
        let standards = self.standards.latest();
        review_to_proto(r, standards.by_code(&r.standard_code))
    }

    /// Insert, mapping a lost race on (household, year, revision) to ALREADY_EXISTS.
    async fn insert_review(
        &self,
        conn: &impl ConnectionTrait,
        r: &review::Model,
    ) -> Result<(), ServiceError> {
        if store::insert(conn, r).await? {
            Ok(())
        } else {
            Err(ServiceError::AlreadyExists {
                reason: "REVIEW_EXISTS",
                message: format!(
                    "household {} already has revision {} for {}; read it and revise it",
                    r.household_id, r.revision, r.year
                ),
                metadata: vec![("household_id", r.household_id.clone())],
            })
        }
    }
}

/// A certification as asked: the review, the etag it was read at, and the
/// commune chair's decision (its number and date).
struct Certification {
    review_id: String,
    etag: String,
    number: String,
    decided: Option<NaiveDate>,
}

impl Certification {
    fn checked(request: &pb::CertifyReviewRequest) -> Result<Certification, ServiceError> {
        let mut v = Violations::new();
        let review_id = required_id(&request.review_id, "review_id", &mut v);
        let etag = required_etag(&request.etag, &mut v);
        let number = request.decision_number.trim().to_owned();
        if number.is_empty() {
            v.add(
                "decision_number",
                "is required: the commune chair's decision",
            );
        } else if number.chars().count() > MAX_DECISION_CHARS
            || number.chars().any(char::is_control)
        {
            v.add(
                "decision_number",
                format!("must be at most {MAX_DECISION_CHARS} printable characters"),
            );
        }
        let decided = decision_date(&request.decision_date, "decision_date", None, &mut v);
        sustain_platform::error::check(v)?;
        Ok(Certification {
            review_id,
            etag,
            number,
            decided,
        })
    }
}

/// What a certification changed.
struct Certified {
    review: review::Model,
    /// Every changed row with its journal action, in order.
    changed: Vec<(review::Model, &'static str)>,
    delta: TallyDelta,
}

/// Certifies the approved review `r`: the household's certified review of
/// that year is superseded, `r` certified, and the household's later reviews
/// re-transitioned from it.
async fn certify(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    r: review::Model,
    order: &Certification,
) -> Result<Certified, ServiceError> {
    if r.state != store::APPROVED {
        return Err(wrong_state(&r, store::APPROVED, "certified"));
    }
    if let (Some(d), Some(m)) = (order.decided, r.meeting_date)
        && d < m
    {
        return Err(ServiceError::invalid(
            "decision_date",
            format!("is before the village meeting of {m}"),
        ));
    }
    let at = now();
    let mut delta = TallyDelta::default();
    let mut changed = vec![];
    for other in store::of_household(conn, &r.household_id, Some(r.year)).await? {
        if other.state == store::CERTIFIED {
            delta.add(&other, -1);
            let superseded = review::Model {
                state: store::SUPERSEDED.to_owned(),
                version: other.version + 1,
                updated_at: at,
                ..other.clone()
            };
            store::update_guarded(conn, &superseded, other.version).await?;
            changed.push((superseded, "supersede"));
        }
    }
    let certified = review::Model {
        state: store::CERTIFIED.to_owned(),
        decision_number: Some(order.number.clone()),
        decision_date: order.decided,
        certified_by: Some(caller.subject.clone()),
        certified_at: Some(at),
        version: r.version + 1,
        updated_at: at,
        ..r.clone()
    };
    store::update_guarded(conn, &certified, r.version).await?;
    let rewritten = store::rechain(
        conn,
        &r.household_id,
        std::slice::from_ref(&r.id),
        at,
        &mut delta,
    )
    .await?;
    let certified = rewritten
        .iter()
        .find(|x| x.id == r.id)
        .cloned()
        .unwrap_or(certified);
    changed.push((certified.clone(), "certify"));
    changed.extend(
        rewritten
            .into_iter()
            .filter(|x| x.id != r.id)
            .map(|x| (x, "retransition")),
    );
    Ok(Certified {
        review: certified,
        changed,
        delta,
    })
}

/// FAILED_PRECONDITION unless `old` is the latest revision of its
/// household's review for its year.
async fn require_latest(
    conn: &impl ConnectionTrait,
    old: &review::Model,
) -> Result<(), ServiceError> {
    let latest = store::of_household(conn, &old.household_id, Some(old.year)).await?;
    if latest.first().is_some_and(|l| l.id != old.id) {
        return Err(ServiceError::FailedPrecondition {
            reason: "REVISION_OUTDATED",
            message: format!("review {} has a newer revision; revise that one", old.id),
        });
    }
    Ok(())
}

/// Supersedes `old` at once when it never counted (it is not certified): its
/// correction replaces it. A certified one keeps counting until its
/// correction is certified.
async fn retire_uncertified(
    conn: &impl sustain_db::Bulk,
    caller: &Caller,
    request_id: &str,
    old: &review::Model,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), ServiceError> {
    if old.state == store::CERTIFIED {
        return Ok(());
    }
    let superseded = review::Model {
        state: store::SUPERSEDED.to_owned(),
        version: old.version + 1,
        updated_at: at,
        ..old.clone()
    };
    store::update_guarded(conn, &superseded, old.version).await?;
    journal::record(
        conn,
        caller,
        request_id,
        journal_change(&superseded, "supersede"),
    )
    .await?;
    Ok(())
}

#[tonic::async_trait]
impl pb::review_service_server::ReviewService for ReviewApi {
    async fn record_review(
        &self,
        request: Request<pb::RecordReviewRequest>,
    ) -> Result<Response<pb::RecordReviewResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("record reviews", RECORD)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(&caller, "RecordReview", &request.request_id, &request)?;
        let mut v = Violations::new();
        let household_id = required_id(&request.household_id, "household_id", &mut v);
        if request.review.is_none() {
            v.add("review", "is required");
        }
        if !v.is_empty() {
            return Err(ServiceError::from(v).into());
        }
        let input = request.review.clone().unwrap_or_default();
        let answer = journal::run_once(&self.db, &self.vault.cipher, key, |txn| async move {
            let household = self.household_in_scope(&txn, &caller, &household_id).await?;
            if household.archived {
                return Err(ServiceError::FailedPrecondition {
                    reason: "HOUSEHOLD_ARCHIVED",
                    message: format!("household {household_id} is archived and is not reviewed"),
                });
            }
            let mut v = Violations::new();
            let standards = self.standards.current(&txn).await?.standards;
            let Some(a) = assess(&standards, &input, &place_of(&household), today(), "review", &mut v)
            else {
                return Err(v.into());
            };
            if let Some(existing) = store::of_household(&txn, &household_id, Some(a.year)).await?.first() {
                return Err(ServiceError::AlreadyExists {
                    reason: "REVIEW_EXISTS",
                    message: format!(
                        "household {household_id} already has a review for {} ({}); correct it with ReviseReview",
                        a.year, existing.id
                    ),
                    metadata: vec![("review_id", existing.id.clone())],
                });
            }
            let chain = store::certified_chain(&txn, &household_id).await?;
            let transition = store::transition_against(&chain, a.year, a.class);
            let r = new_review(&household, &a, 1, transition.code(), None, now());
            self.insert_review(&txn, &r).await?;
            journal::record(&txn, &caller, &request.request_id, journal_change(&r, "record")).await?;
            tracing::info!(review_id = %r.id, household_id = %household_id, year = r.year, caller = %caller.subject, "review recorded");
            Ok((pb::RecordReviewResponse { review: Some(self.to_proto(&r)) }, txn))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn revise_review(
        &self,
        request: Request<pb::ReviseReviewRequest>,
    ) -> Result<Response<pb::ReviseReviewResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("revise reviews", RECORD)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(&caller, "ReviseReview", &request.request_id, &request)?;
        let mut v = Violations::new();
        let review_id = required_id(&request.review_id, "review_id", &mut v);
        let sent_etag = required_etag(&request.etag, &mut v);
        if request.review.is_none() {
            v.add("review", "is required");
        }
        if !v.is_empty() {
            return Err(ServiceError::from(v).into());
        }
        let input = request.review.clone().unwrap_or_default();
        let answer = journal::run_once(&self.db, &self.vault.cipher, key, |txn| async move {
            let old = self.review_in_scope(&txn, &caller, &review_id).await?;
            check_etag(&old, &sent_etag)?;
            let household = self.household_in_scope(&txn, &caller, &old.household_id).await?;
            require_latest(&txn, &old).await?;
            let mut v = Violations::new();
            if input.year != old.year {
                v.add("review.year", format!("a revision keeps its review's year, {}", old.year));
            }
            let standards = self.standards.current(&txn).await?.standards;
            let assessed = assess(&standards, &input, &place_of(&household), today(), "review", &mut v);
            let Some(a) = assessed.filter(|_| v.is_empty()) else {
                return Err(v.into());
            };
            let at = now();
            retire_uncertified(&txn, &caller, &request.request_id, &old, at).await?;
            let chain = store::certified_chain(&txn, &old.household_id).await?;
            let transition = store::transition_against(&chain, a.year, a.class);
            let r = new_review(&household, &a, old.revision + 1, transition.code(), Some(old.id.clone()), at);
            self.insert_review(&txn, &r).await?;
            journal::record(&txn, &caller, &request.request_id, journal_change(&r, "revise")).await?;
            tracing::info!(review_id = %r.id, supersedes = %old.id, caller = %caller.subject, "review revised");
            Ok((pb::ReviseReviewResponse { review: Some(self.to_proto(&r)) }, txn))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn approve_review(
        &self,
        request: Request<pb::ApproveReviewRequest>,
    ) -> Result<Response<pb::ApproveReviewResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("approve reviews", DECIDE)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(&caller, "ApproveReview", &request.request_id, &request)?;
        let mut v = Violations::new();
        let review_id = required_id(&request.review_id, "review_id", &mut v);
        let sent_etag = required_etag(&request.etag, &mut v);
        let meeting_date = decision_date(&request.meeting_date, "meeting_date", None, &mut v);
        if !(0..=100).contains(&request.agreement_percent) {
            v.add("agreement_percent", "must be between 0 and 100");
        }
        if !v.is_empty() {
            return Err(ServiceError::from(v).into());
        }
        let answer = journal::run_once(&self.db, &self.vault.cipher, key, |txn| async move {
            let r = self.review_in_scope(&txn, &caller, &review_id).await?;
            check_etag(&r, &sent_etag)?;
            if r.state != store::DRAFT {
                return Err(wrong_state(&r, store::DRAFT, "approved"));
            }
            if meeting_date.is_some_and(|d| d < NaiveDate::from_ymd_opt(r.year, 1, 1).unwrap_or(d)) {
                return Err(ServiceError::invalid("meeting_date", format!("is before the review year {}", r.year)));
            }
            if !poverty::meeting_approves(request.agreement_percent) {
                return Err(ServiceError::FailedPrecondition {
                    reason: "AGREEMENT_BELOW_HALF",
                    message: format!(
                        "the village meeting agreed {}% (< {}%): the review must be re-scored (ReviseReview)",
                        request.agreement_percent,
                        poverty::MEETING_AGREEMENT_PERCENT
                    ),
                });
            }
            let at = now();
            let next = review::Model {
                state: store::APPROVED.to_owned(),
                meeting_date,
                agreement_percent: Some(request.agreement_percent),
                approved_by: Some(caller.subject.clone()),
                approved_at: Some(at),
                version: r.version + 1,
                updated_at: at,
                ..r.clone()
            };
            store::update_guarded(&txn, &next, r.version).await?;
            journal::record(&txn, &caller, &request.request_id, journal_change(&next, "approve")).await?;
            tracing::info!(review_id = %next.id, caller = %caller.subject, "review approved");
            Ok((pb::ApproveReviewResponse { review: Some(self.to_proto(&next)) }, txn))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn certify_review(
        &self,
        request: Request<pb::CertifyReviewRequest>,
    ) -> Result<Response<pb::CertifyReviewResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("certify reviews", DECIDE)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(&caller, "CertifyReview", &request.request_id, &request)?;
        let order = Certification::checked(&request)?;
        let answer = journal::run_once(&self.db, &self.vault.cipher, key, |txn| async move {
            let r = self
                .review_in_scope(&txn, &caller, &order.review_id)
                .await?;
            check_etag(&r, &order.etag)?;
            let Certified {
                review: certified,
                changed,
                delta,
            } = certify(&txn, &caller, r, &order).await?;
            delta.apply(&txn).await?;
            for (row, action) in &changed {
                journal::record(
                    &txn,
                    &caller,
                    &request.request_id,
                    journal_change(row, action),
                )
                .await?;
            }
            tracing::info!(review_id = %certified.id, caller = %caller.subject, "review certified");
            Ok((
                pb::CertifyReviewResponse {
                    review: Some(self.to_proto(&certified)),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn get_review(
        &self,
        request: Request<pb::GetReviewRequest>,
    ) -> Result<Response<pb::GetReviewResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read reviews", READ)?;
        let mut v = Violations::new();
        let id = required_id(&request.get_ref().id, "id", &mut v);
        if !v.is_empty() {
            return Err(ServiceError::from(v).into());
        }
        let r = self.review_in_scope(&self.db, &caller, &id).await?;
        Ok(Response::new(pb::GetReviewResponse {
            review: Some(self.to_proto(&r)),
        }))
    }

    async fn list_reviews(
        &self,
        request: Request<pb::ListReviewsRequest>,
    ) -> Result<Response<pb::ListReviewsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read reviews", READ)?;
        let request = request.into_inner();
        let mut v = Violations::new();
        let id = required_id(&request.household_id, "household_id", &mut v);
        if request.year < 0 {
            v.add("year", "must not be negative");
        }
        if !v.is_empty() {
            return Err(ServiceError::from(v).into());
        }
        self.household_in_scope(&self.db, &caller, &id).await?;
        let year = (request.year != 0).then_some(request.year);
        let reviews = store::of_household(&self.db, &id, year).await?;
        Ok(Response::new(pb::ListReviewsResponse {
            reviews: reviews.iter().map(|r| self.to_proto(r)).collect(),
        }))
    }

    async fn get_household_at_year(
        &self,
        request: Request<pb::GetHouseholdAtYearRequest>,
    ) -> Result<Response<pb::GetHouseholdAtYearResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read households", READ)?;
        let request = request.into_inner();
        let mut v = Violations::new();
        let id = required_id(&request.household_id, "household_id", &mut v);
        if request.year <= 0 {
            v.add("year", "is required");
        }
        if !v.is_empty() {
            return Err(ServiceError::from(v).into());
        }
        self.household_in_scope(&self.db, &caller, &id).await?;
        let reviews = store::of_household(&self.db, &id, Some(request.year)).await?;
        let review = reviews
            .iter()
            .find(|r| r.state == store::CERTIFIED)
            .or(reviews.first())
            .ok_or_else(|| ServiceError::NotFound {
                resource: "review",
                id: format!("{id} for {}", request.year),
            })?;
        let record = households::load_version(&self.db, &id, review.household_version, &self.vault)
            .await?
            .ok_or_else(|| {
                ServiceError::Internal(format!(
                    "household {id} version {} is not kept",
                    review.household_version
                ))
            })?;
        tracing::info!(household_id = %id, year = request.year, caller = %caller.subject, "household read as of review");
        Ok(Response::new(pb::GetHouseholdAtYearResponse {
            household: Some(household_to_proto(&record, caller.role == Role::Viewer)),
            review: Some(self.to_proto(review)),
        }))
    }

    async fn get_poverty_summary(
        &self,
        request: Request<pb::GetPovertySummaryRequest>,
    ) -> Result<Response<pb::GetPovertySummaryResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read poverty summaries", READ)?;
        let request = request.into_inner();
        let standards = self.standards.current(&self.db).await?.standards;
        let ask = SummaryAsk::checked(&request, &standards)?;
        let summary = poverty_summary(&self.db, &standards, &caller, &ask).await?;
        Ok(Response::new(pb::GetPovertySummaryResponse {
            summary: Some(summary),
        }))
    }

    async fn get_poverty_series(
        &self,
        request: Request<pb::GetPovertySeriesRequest>,
    ) -> Result<Response<pb::GetPovertySeriesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read poverty summaries", READ)?;
        let standards = self.standards.current(&self.db).await?.standards;
        let summaries = poverty_series(&self.db, &standards, &caller, request.get_ref()).await?;
        Ok(Response::new(pb::GetPovertySeriesResponse { summaries }))
    }

    async fn list_poverty_standards(
        &self,
        request: Request<pb::ListPovertyStandardsRequest>,
    ) -> Result<Response<pb::ListPovertyStandardsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read poverty standards", READ)?;
        let in_force = self.standards.current(&self.db).await?;
        Ok(Response::new(pb::ListPovertyStandardsResponse {
            standards: in_force
                .standards
                .all()
                .iter()
                .map(standard_to_proto)
                .collect(),
            etag: if in_force.version == 0 {
                String::new()
            } else {
                etag(in_force.version)
            },
            source: in_force.source.to_owned(),
        }))
    }

    async fn set_poverty_standards(
        &self,
        request: Request<pb::SetPovertyStandardsRequest>,
    ) -> Result<Response<pb::SetPovertyStandardsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("set poverty standards", crate::standards::SET)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(
            &caller,
            "SetPovertyStandards",
            &request.request_id,
            &request,
        )?;
        let answer = crate::standards::set(
            &self.db,
            &self.vault.cipher,
            &self.standards,
            &caller,
            key,
            request,
        )
        .await?;
        Ok(Response::new(answer))
    }

    async fn batch_get_standings(
        &self,
        request: Request<pb::BatchGetStandingsRequest>,
    ) -> Result<Response<pb::BatchGetStandingsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read households", READ)?;
        let request = request.into_inner();
        let ids = standing::validate(&request)?;
        let standings = standing::standings(
            &self.db,
            &caller,
            request.year,
            &ids,
            request.include_members,
        )
        .await?;
        Ok(Response::new(pb::BatchGetStandingsResponse { standings }))
    }

    type ImportHouseholdsStream = ReceiverStream<Result<pb::ImportHouseholdsResponse, Status>>;

    async fn import_households(
        &self,
        request: Request<Streaming<pb::ImportHouseholdsRequest>>,
    ) -> Result<Response<Self::ImportHouseholdsStream>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("import households", IMPORT)?;
        let standards = self.standards.current(&self.db).await?.standards;
        let importer = import::Importer::new(self.db.clone(), self.vault.clone(), standards);
        let stream = importer.serve(caller, request.into_inner());
        Ok(Response::new(stream))
    }
}

/// Longest span of one poverty series.
pub const MAX_SERIES_YEARS: i32 = 20;

/// The certified summary of a unit for each year of a span, read in one
/// transaction so that the years agree with each other.
pub async fn poverty_series(
    db: &DatabaseConnection,
    standards: &Standards,
    caller: &Caller,
    request: &pb::GetPovertySeriesRequest,
) -> Result<Vec<pb::PovertySummary>, ServiceError> {
    let (from, to) = (request.from_year, request.to_year);
    let mut v = Violations::new();
    if from > to {
        v.add("to_year", "must not be before from_year");
    } else if i64::from(to) - i64::from(from) >= i64::from(MAX_SERIES_YEARS) {
        v.add(
            "to_year",
            format!("a series spans at most {MAX_SERIES_YEARS} years"),
        );
    } else if let Some((year, reason)) =
        (from..=to).find_map(|y| standards.covering(y).err().map(|reason| (y, reason)))
    {
        v.add(if year == from { "from_year" } else { "to_year" }, reason);
    }
    if request.unit_code.trim().is_empty() {
        v.add("unit_code", "is required");
    }
    if !v.is_empty() {
        return Err(v.into());
    }
    let txn = sustain_db::begin_snapshot(db).await?;
    let mut summaries = Vec::with_capacity((to - from + 1) as usize);
    for year in from..=to {
        let one = pb::GetPovertySummaryRequest {
            unit_code: request.unit_code.clone(),
            year,
            unassigned_from: request.unassigned_from.clone(),
        };
        let ask = SummaryAsk::checked(&one, standards)?;
        summaries.push(poverty_summary(&txn, standards, caller, &ask).await?);
    }
    txn.commit().await?;
    Ok(summaries)
}

/// A year reported after the 2025 reform is reported by the units in force
/// at its end: a unit that had ended by then (every district, the communes
/// merged away) has no figure of its own for it, which a partial count (or a
/// zero) would hide. FAILED_PRECONDITION naming where its households are.
fn no_longer_in_force(unit: &str, year: i32) -> Result<(), ServiceError> {
    let catalog = admin::catalog();
    let Some(end) = admin::year_end(year) else {
        return Ok(());
    };
    if !admin::reported_after_reform(year) || catalog.get(unit, end).is_some() {
        return Ok(());
    }
    let last = catalog.versions(unit).last();
    let name = last.map(|u| u.name.clone()).unwrap_or_default();
    let communes: Vec<String> = match last.map(|u| u.level) {
        Some(admin::Level::District) => {
            let before = admin::reform_date().pred_opt().unwrap_or(end);
            catalog
                .communes_under(unit, before)
                .iter()
                .map(|c| c.code.clone())
                .collect()
        }
        _ => vec![unit.to_owned()],
    };
    let mut successors: Vec<String> = communes
        .iter()
        .flat_map(|c| {
            catalog
                .split_at(c, end)
                .unwrap_or_else(|| catalog.successors_at(c, end))
        })
        .map(|u| format!("{} {}", u.code, u.name))
        .collect();
    successors.sort();
    successors.dedup();
    // A split commune's households are in the part their village was
    // assigned, or, until it is, in a row of their own.
    for split in communes
        .iter()
        .filter(|c| catalog.split_at(c, end).is_some())
    {
        successors.push(format!(
            "those of {split} whose village is not yet assigned (unassigned_from {split})"
        ));
    }
    Err(ServiceError::FailedPrecondition {
        reason: "UNIT_NOT_IN_FORCE",
        message: format!(
            "{name} ({unit}) no longer exists at the end of {year}: since the reform of 1 July 2025 figures are reported by the units in force; its households are counted in {}",
            if successors.is_empty() {
                "no unit in force".to_owned()
            } else {
                successors.join(", ")
            }
        ),
    })
}

/// A summary as asked for: the unit, the year, and the split commune whose
/// households in no part yet are to be shown apart.
#[derive(Debug, Clone)]
pub struct SummaryAsk {
    pub unit: String,
    pub year: i32,
    pub unassigned_from: Option<String>,
}

impl SummaryAsk {
    /// The summary `request` asks for, every bad field named.
    pub fn checked(
        request: &pb::GetPovertySummaryRequest,
        standards: &Standards,
    ) -> Result<SummaryAsk, ServiceError> {
        let mut v = Violations::new();
        let unit = request.unit_code.trim();
        if unit.is_empty() {
            v.add("unit_code", "is required");
        } else if !admin::catalog().is_known(unit) {
            v.add("unit_code", "is not a known administrative unit code");
        }
        let unassigned_from = request.unassigned_from.trim();
        if !unassigned_from.is_empty() && !admin::catalog().split_codes().contains(&unassigned_from)
        {
            v.add(
                "unassigned_from",
                format!(
                    "must be a commune the 2025 reform divided between successors: {}",
                    admin::catalog().split_codes().join(", ")
                ),
            );
        }
        if let Err(reason) = standards.covering(request.year) {
            v.add("year", reason);
        }
        sustain_platform::error::check(v)?;
        Ok(SummaryAsk {
            unit: unit.to_owned(),
            year: request.year,
            unassigned_from: (!unassigned_from.is_empty()).then(|| unassigned_from.to_owned()),
        })
    }
}

/// The certified summary of a unit and year, checked against the caller's scope:
/// the whole unit must be inside it (a partial figure labelled with the unit's
/// name would mislead).
pub async fn poverty_summary(
    conn: &impl ConnectionTrait,
    standards: &Standards,
    caller: &Caller,
    ask: &SummaryAsk,
) -> Result<pb::PovertySummary, ServiceError> {
    let unit = ask.unit.as_str();
    let standard = standards
        .covering(ask.year)
        .map_err(|reason| ServiceError::invalid("year", reason))?;
    if !caller.scope.contains_unit(unit) {
        return Err(ServiceError::PermissionDenied {
            reason: "OUT_OF_SCOPE",
            message: format!("unit {unit} is not wholly inside the caller's administrative scope"),
        });
    }
    no_longer_in_force(unit, ask.year)?;
    let unassigned_from = ask.unassigned_from.as_deref();
    let rows = tally::read(conn, unit, ask.year, unassigned_from).await?;
    // Figures say which standard they were classified under.
    let standard = rows
        .first()
        .and_then(|r| standards.by_code(&r.standard_code))
        .unwrap_or(standard);
    tracing::info!(unit, year = ask.year, caller = %caller.subject, "poverty summary read");
    let mut summary = summary::build(standard, unit, ask.year, &rows);
    summary.unassigned_from = unassigned_from.unwrap_or_default().to_owned();
    Ok(summary)
}
