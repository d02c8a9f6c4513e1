//! The HouseholdService adapter: checks role and scope, turns requests into domain
//! values, lets the store persist them and the journal record them, all in one
//! transaction per mutation.

use prost::Message;
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use sustain_domain::Violations;
use sustain_domain::citizen_id::CitizenId;
use sustain_domain::household::Household;
use sustain_domain::text::search_key;

use sustain_platform::api::{Page, new_id, now};
use sustain_platform::cache::RecordCache;
use sustain_platform::error::ServiceError;
use sustain_platform::journal::{self, Change, IdempotencyKey};
use sustain_platform::{Caller, Role, Scope};
use sustain_proto::registry::v1 as pb;
use tonic::{Request, Response, Status};

use crate::convert::{etag, household_from_proto, household_to_proto, page_size, today};
use crate::store::{self, HouseholdRecord, Selection, Vault};

const READ: &[Role] = &[
    Role::Viewer,
    Role::Enumerator,
    Role::Approver,
    Role::Admin,
    Role::Sync,
];
const WRITE: &[Role] = &[Role::Enumerator, Role::Admin];
const COUNT_MEMBERS: &[Role] = &[
    Role::Viewer,
    Role::Enumerator,
    Role::Approver,
    Role::Finance,
    Role::Admin,
    Role::Sync,
];
const ARCHIVE: &[Role] = &[Role::Approver, Role::Admin];

const MAX_REASON_CHARS: usize = 500;
const UPDATE_PATHS: &[&str] = &[
    "address",
    "address.commune_code",
    "address.village",
    "address.residence",
    "members",
];

#[derive(Debug, Clone)]
pub struct HouseholdApi {
    pub db: DatabaseConnection,
    pub vault: Vault,
    /// Read path only: writes always load from the database inside their transaction.
    pub cache: Arc<RecordCache<HouseholdRecord>>,
    /// Member counts by unit, kept per journal head.
    pub member_counts: store::MemberCounts,
}

/// Why a citizen ID cannot be registered again, in words for `caller`: the
/// household that holds it is named only when the caller may see it; the
/// rest is logged for an administrator.
pub async fn taken_reason(
    conn: &impl sea_orm::ConnectionTrait,
    caller: &sustain_platform::Caller,
    field: &str,
    holder: &str,
) -> Result<(String, Option<String>), ServiceError> {
    if store::lies_in(conn, holder, &caller.scope).await? {
        return Ok((
            format!("is already registered to a member of household {holder}"),
            Some(holder.to_owned()),
        ));
    }
    tracing::warn!(field, household_id = %holder, caller = %caller.subject, "citizen ID already registered outside the caller's scope");
    Ok((
        "is already registered to a member of another household, outside your scope (an administrator can see which in the log)".into(),
        None,
    ))
}

impl HouseholdApi {
    /// ALREADY_EXISTS when a citizen ID is registered, naming the other
    /// household only when it lies in the caller's scope.
    async fn check_citizen_ids(
        &self,
        conn: &impl sea_orm::ConnectionTrait,
        caller: &Caller,
        household: &Household,
        except: Option<&str>,
    ) -> Result<(), ServiceError> {
        for (i, m) in household.members.iter().enumerate() {
            let Some(id) = &m.citizen_id else { continue };
            if let Some(other) =
                store::holder_of(conn, &self.vault.citizen_hashes(id), except).await?
            {
                let field = format!("household.members[{i}].citizen_id");
                let (reason, named) = taken_reason(conn, caller, &field, &other).await?;
                let mut metadata = vec![("field", field.clone())];
                metadata.extend(named.map(|id| ("household_id", id)));
                return Err(ServiceError::AlreadyExists {
                    reason: "CITIZEN_ID_REGISTERED",
                    message: format!("{field} {reason}"),
                    metadata,
                });
            }
        }
        Ok(())
    }

    fn selection(
        &self,
        caller: &Caller,
        filter: Option<&pb::HouseholdFilter>,
    ) -> Result<Selection, ServiceError> {
        let filter = filter.cloned().unwrap_or_default();
        let mut v = Violations::new();
        let unit_code = filter.unit_code.trim().to_owned();
        sustain_platform::api::known_unit(&unit_code, "filter.unit_code", &mut v);
        let name = search_key(&filter.name_query);
        if !filter.name_query.trim().is_empty() && name.trim().chars().count() < 2 {
            v.add("filter.name_query", "needs at least 2 letters or digits");
        }
        let citizen_hash = if filter.citizen_id.trim().is_empty() {
            None
        } else {
            match CitizenId::parse(&filter.citizen_id) {
                Ok(id) => Some(self.vault.citizen_hashes(&id)),
                Err(e) => {
                    v.add("filter.citizen_id", e.to_string());
                    None
                }
            }
        };
        if !v.is_empty() {
            return Err(v.into());
        }
        if !unit_code.is_empty() {
            caller.require_unit(&unit_code)?;
        }
        // A unit wholly inside the scope makes the scope condition redundant, and
        // leaving it in steers planners to the wide index.
        let scope = if !unit_code.is_empty() && caller.scope.contains_unit(&unit_code) {
            Scope::nationwide()
        } else {
            caller.scope.clone()
        };
        Ok(Selection {
            scope,
            unit_code: (!unit_code.is_empty()).then_some(unit_code),
            ethnic_minority: filter.ethnic_minority,
            name_folded: (!name.trim().is_empty()).then(|| name.trim().to_owned()),
            citizen_hash,
            include_archived: filter.include_archived,
        })
    }

    /// Writes `record` over the stored version `expected` and journals it; ABORTED
    /// when someone else changed the household in between.
    async fn save_change(
        &self,
        conn: &impl sea_orm::ConnectionTrait,
        caller: &Caller,
        request_id: &str,
        record: &HouseholdRecord,
        previous: &HouseholdRecord,
        action: &'static str,
    ) -> Result<(), ServiceError> {
        let Some(state) = store::update(conn, record, previous.version, &self.vault).await? else {
            return Err(ServiceError::Aborted {
                reason: "STALE_ETAG",
                message: format!("household {} changed meanwhile; read it again", record.id),
            });
        };
        // Reviews taken on the previous version read it back from here.
        store::keep_version(conn, previous, &self.vault).await?;
        journal::record(
            conn,
            caller,
            request_id,
            journal_change(record, action, state),
        )
        .await?;
        Ok(())
    }

    /// A household for reading: from the cache when it is current, else loaded and
    /// offered to the cache. Scope is checked either way.
    async fn read(&self, caller: &Caller, id: &str) -> Result<Arc<HouseholdRecord>, ServiceError> {
        if let Some(record) = self.cache.get(id) {
            caller.require_location(&record.location)?;
            return Ok(record);
        }
        let record = Arc::new(self.load_in_scope(&self.db, caller, id).await?);
        self.cache.offer(&record.id, Arc::clone(&record));
        Ok(record)
    }

    /// Tells the cache a write committed.
    fn written(&self, household: Option<&pb::Household>) {
        if let Some(h) = household {
            self.cache.stale(&h.id, h.version);
        }
    }

    async fn load_in_scope(
        &self,
        conn: &impl sea_orm::ConnectionTrait,
        caller: &Caller,
        id: &str,
    ) -> Result<HouseholdRecord, ServiceError> {
        let Some(canonical) = sustain_platform::api::canonical_id(id) else {
            return Err(ServiceError::invalid("id", "must be a household id (UUID)"));
        };
        let id = canonical.as_str();
        let record =
            store::load(conn, id, &self.vault)
                .await?
                .ok_or_else(|| ServiceError::NotFound {
                    resource: "household",
                    id: id.to_owned(),
                })?;
        caller.require_location(&record.location)?;
        Ok(record)
    }
}

fn check_writable(
    record: &HouseholdRecord,
    sent_etag: &str,
    field: &str,
) -> Result<(), ServiceError> {
    if record.archived {
        return Err(ServiceError::FailedPrecondition {
            reason: "HOUSEHOLD_ARCHIVED",
            message: format!("household {} is archived and takes no changes", record.id),
        });
    }
    if sent_etag != etag(record.version) {
        return Err(ServiceError::Aborted {
            reason: "STALE_ETAG",
            message: format!(
                "{field} {sent_etag:?} is stale: household {} is at {}; read it again and reapply",
                record.id,
                etag(record.version)
            ),
        });
    }
    Ok(())
}

/// `state`: the rows as written, so the journal hashes (and a replica copies)
/// exactly what is stored.
pub(crate) fn journal_change(
    record: &HouseholdRecord,
    action: &'static str,
    state: String,
) -> Change {
    Change {
        record_type: "household".into(),
        record_id: record.id.clone(),
        owner_unit: record.owner_unit().to_owned(),
        version: record.version,
        action: action.into(),
        state,
    }
}

/// The household and field mask an update sends, every bad field named.
fn checked_update(
    request: &pb::UpdateHouseholdRequest,
) -> Result<(pb::Household, Vec<String>), ServiceError> {
    let mut v = Violations::new();
    let sent = request.household.clone().unwrap_or_default();
    if request.household.is_none() {
        v.add("household", "is required");
    }
    if sent.id.trim().is_empty() {
        v.add("household.id", "is required");
    }
    if sent.etag.trim().is_empty() {
        v.add("household.etag", "is required: send the etag you read");
    }
    let paths = request
        .update_mask
        .clone()
        .map(|m| m.paths)
        .unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", "must name at least one field");
    }
    for (i, p) in paths.iter().enumerate() {
        if !UPDATE_PATHS.contains(&p.as_str()) {
            v.add(
                format!("update_mask.paths[{i}]"),
                format!(
                    "{p:?} cannot be updated; allowed: {}",
                    UPDATE_PATHS.join(", ")
                ),
            );
        }
    }
    sustain_platform::error::check(v)?;
    Ok((sent, paths))
}

/// The stored household with the masked fields of `sent` in place.
fn masked(current: &HouseholdRecord, sent: &pb::Household, paths: &[String]) -> pb::Household {
    let mut merged = household_to_proto(current, false);
    let sent_address = sent.address.clone().unwrap_or_default();
    let address = merged.address.get_or_insert_with(Default::default);
    for path in paths {
        match path.as_str() {
            "address" => *address = sent_address.clone(),
            "address.commune_code" => address.commune_code = sent_address.commune_code.clone(),
            "address.village" => address.village = sent_address.village.clone(),
            "address.residence" => address.residence = sent_address.residence,
            "members" => merged.members = sent.members.clone(),
            _ => {}
        }
    }
    merged
}

#[tonic::async_trait]
impl pb::household_service_server::HouseholdService for HouseholdApi {
    async fn create_household(
        &self,
        request: Request<pb::CreateHouseholdRequest>,
    ) -> Result<Response<pb::CreateHouseholdResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("create households", WRITE)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(&caller, "CreateHousehold", &request.request_id, &request)?;
        let mut v = Violations::new();
        let household = match &request.household {
            Some(h) => household_from_proto(h, "household", today(), &mut v),
            None => {
                v.add("household", "is required");
                None
            }
        };
        let Some(mut household) = household.filter(|_| v.is_empty()) else {
            return Err(ServiceError::from(v).into());
        };

        let answer = journal::run_once(&self.db, &self.vault.cipher, key, |txn| async move {
            // Placed (a split commune's village) before the scope is read.
            crate::villages::place(&txn, &mut household).await?;
            caller.require_location(&household.address.location)?;
            self.check_citizen_ids(&txn, &caller, &household, None).await?;
            let member_ids = household.members.iter().map(|_| new_id()).collect();
            let record = HouseholdRecord::new(new_id(), household, member_ids, now());
            let state = store::insert(&txn, &record, &self.vault).await?;
            journal::record(&txn, &caller, &request.request_id, journal_change(&record, "create", state))
                .await?;
            crate::villages::reconcile(&txn, &crate::villages::split_among([record.owner_unit()])).await?;
            tracing::info!(household_id = %record.id, caller = %caller.subject, "household created");
            let household = Some(household_to_proto(&record, false));
            Ok((pb::CreateHouseholdResponse { household }, txn))
        })
        .await?;
        self.written(answer.household.as_ref());
        Ok(Response::new(answer))
    }

    async fn get_household(
        &self,
        request: Request<pb::GetHouseholdRequest>,
    ) -> Result<Response<pb::GetHouseholdResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read households", READ)?;
        let id = request.into_inner().id;
        let record = self.read(&caller, id.trim()).await?;
        tracing::info!(household_id = %record.id, caller = %caller.subject, "household read");
        Ok(Response::new(pb::GetHouseholdResponse {
            household: Some(household_to_proto(&record, caller.role == Role::Viewer)),
        }))
    }

    async fn list_households(
        &self,
        request: Request<pb::ListHouseholdsRequest>,
    ) -> Result<Response<pb::ListHouseholdsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("list households", READ)?;
        let request = request.into_inner();
        let mut v = Violations::new();
        let Some(page_size) = page_size(request.page_size, &mut v) else {
            return Err(ServiceError::from(v).into());
        };
        let page = Page::asked(
            page_size,
            &request.page_token,
            request.filter.clone().unwrap_or_default().encode_to_vec(),
        )?;
        let selection = self.selection(&caller, request.filter.as_ref())?;
        let records = store::list(
            &self.db,
            &selection,
            page.after.as_deref(),
            page.limit(),
            &self.vault,
        )
        .await?;
        let (records, next_page_token) = page.cut(records, |r| r.id.as_str());
        tracing::info!(count = records.len(), caller = %caller.subject, "households listed");
        let mask = caller.role == Role::Viewer;
        Ok(Response::new(pb::ListHouseholdsResponse {
            households: records
                .iter()
                .map(|r| household_to_proto(r, mask))
                .collect(),
            next_page_token,
        }))
    }

    async fn count_households(
        &self,
        request: Request<pb::CountHouseholdsRequest>,
    ) -> Result<Response<pb::CountHouseholdsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("count households", READ)?;
        let selection = self.selection(&caller, request.get_ref().filter.as_ref())?;
        let count = store::count(&self.db, &selection).await?;
        Ok(Response::new(pb::CountHouseholdsResponse { count }))
    }

    async fn count_members(
        &self,
        request: Request<pb::CountMembersRequest>,
    ) -> Result<Response<pb::CountMembersResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        // A count names nobody: finance reads it for programme coverage too.
        caller.require("count household members", COUNT_MEMBERS)?;
        let request = request.get_ref();
        let mut v = Violations::new();
        let from = sustain_platform::api::optional_date(&request.born_from, "born_from", &mut v);
        let to = sustain_platform::api::optional_date(&request.born_to, "born_to", &mut v);
        if let (Some(f), Some(t)) = (from, to)
            && t < f
        {
            v.add("born_to", "is before born_from");
        }
        if !v.is_empty() {
            return Err(ServiceError::from(v).into());
        }
        let selection = self.selection(&caller, request.filter.as_ref())?;
        let count =
            store::count_members_kept(&self.db, &self.member_counts, &selection, (from, to))
                .await?;
        Ok(Response::new(pb::CountMembersResponse { count }))
    }

    async fn update_household(
        &self,
        request: Request<pb::UpdateHouseholdRequest>,
    ) -> Result<Response<pb::UpdateHouseholdResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("update households", WRITE)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(&caller, "UpdateHousehold", &request.request_id, &request)?;
        let (sent, paths) = checked_update(&request)?;

        let answer = journal::run_once(&self.db, &self.vault.cipher, key, |txn| async move {
            let current = self.load_in_scope(&txn, &caller, sent.id.trim()).await?;
            check_writable(&current, sent.etag.trim(), "household.etag")?;

            // Apply the mask to the stored household, then check the result whole.
            let merged = masked(&current, &sent, &paths);
            let mut v = Violations::new();
            let Some(mut household) = household_from_proto(&merged, "household", today(), &mut v) else {
                return Err(v.into());
            };
            crate::villages::place(&txn, &mut household).await?;
            caller.require_location(&household.address.location)?;
            self.check_citizen_ids(&txn, &caller, &household, Some(&current.id))
                .await?;

            let known: Vec<&str> = current.members.iter().map(|m| m.id.as_str()).collect();
            let member_ids = merged
                .members
                .iter()
                .map(|m| if known.contains(&m.id.as_str()) { m.id.clone() } else { new_id() })
                .collect();
            let record = current.revised(household, member_ids, now());
            self.save_change(&txn, &caller, &request.request_id, &record, &current, "update")
                .await?;
            crate::villages::reconcile(
                &txn,
                &crate::villages::split_among([record.owner_unit(), current.owner_unit()]),
            )
            .await?;
            tracing::info!(household_id = %record.id, caller = %caller.subject, version = record.version, "household updated");
            let household = Some(household_to_proto(&record, false));
            Ok((pb::UpdateHouseholdResponse { household }, txn))
        })
        .await?;
        self.written(answer.household.as_ref());
        Ok(Response::new(answer))
    }

    async fn archive_household(
        &self,
        request: Request<pb::ArchiveHouseholdRequest>,
    ) -> Result<Response<pb::ArchiveHouseholdResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("archive households", ARCHIVE)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(&caller, "ArchiveHousehold", &request.request_id, &request)?;
        let mut v = Violations::new();
        if request.id.trim().is_empty() {
            v.add("id", "is required");
        }
        if request.etag.trim().is_empty() {
            v.add("etag", "is required: send the etag you read");
        }
        let reason = request.reason.trim().to_owned();
        if reason.is_empty() {
            v.add(
                "reason",
                "is required: say why the household leaves the registry",
            );
        } else if reason.chars().count() > MAX_REASON_CHARS {
            v.add(
                "reason",
                format!("must be at most {MAX_REASON_CHARS} characters"),
            );
        }
        if !v.is_empty() {
            return Err(ServiceError::from(v).into());
        }
        let answer = journal::run_once(&self.db, &self.vault.cipher, key, |txn| async move {
            let current = self.load_in_scope(&txn, &caller, request.id.trim()).await?;
            check_writable(&current, request.etag.trim(), "etag")?;
            let record = current.clone().archived(reason, now());
            self.save_change(&txn, &caller, &request.request_id, &record, &current, "archive")
                .await?;
            tracing::info!(household_id = %record.id, caller = %caller.subject, "household archived");
            let household = Some(household_to_proto(&record, false));
            Ok((pb::ArchiveHouseholdResponse { household }, txn))
        })
        .await?;
        self.written(answer.household.as_ref());
        Ok(Response::new(answer))
    }

    async fn assign_villages(
        &self,
        request: Request<pb::AssignVillagesRequest>,
    ) -> Result<Response<pb::AssignVillagesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("assign villages", crate::villages::ASSIGN)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(&caller, "AssignVillages", &request.request_id, &request)?;
        let (answer, moved) =
            crate::villages::assign(&self.db, &self.vault.cipher, &caller, key, request).await?;
        for id in &moved {
            self.cache.forget(id);
        }
        Ok(Response::new(answer))
    }

    async fn list_village_assignments(
        &self,
        request: Request<pb::ListVillageAssignmentsRequest>,
    ) -> Result<Response<pb::ListVillageAssignmentsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read village assignments", READ)?;
        let answer = crate::villages::list(&self.db, &caller, request.into_inner()).await?;
        Ok(Response::new(answer))
    }
}
