//! Every query of the registry. Here, households: mapping between domain
//! values and rows (encrypting personal fields on the way in, decrypting on
//! the way out) and their queries; in the modules, reviews, the tallies,
//! villages and standards. Takes `&impl ConnectionTrait`, so the same
//! functions run on the pool or in a transaction.

pub mod import;
pub mod reseal;
pub mod reviews;
pub mod standards;
pub mod tally;
pub mod villages;

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Alias, Expr, Order, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait,
    FromQueryResult, IdenStatic, Iterable, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use sustain_domain::admin::{Level, Location};
use sustain_domain::citizen_id::CitizenId;
use sustain_domain::household::{HealthInsurance, Household, Member, Relation, Residence, Sex};
use sustain_domain::text::search_key;
use sustain_platform::Scope;
use sustain_platform::cache::KeptAtHead;
use sustain_platform::crypto::{FieldCipher, LookupHasher};
use sustain_platform::error::ServiceError;

use crate::model::{household, household_version, member};

/// Keys for the personal fields.
#[derive(Debug, Clone)]
pub struct Vault {
    pub cipher: FieldCipher,
    pub hasher: LookupHasher,
}

impl Vault {
    pub fn citizen_hash(&self, id: &CitizenId) -> String {
        self.hasher.hash(id.as_str())
    }

    /// Every hash a citizen ID may be stored under while a lookup key is
    /// being rotated (the current one first).
    pub fn citizen_hashes(&self, id: &CitizenId) -> Vec<String> {
        self.hasher.hashes(id.as_str())
    }
}

/// A member as stored, with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub id: String,
    pub member: Member,
}

/// A household as stored, personal fields decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdRecord {
    pub id: String,
    pub location: Location,
    pub village: String,
    pub residence: Residence,
    pub registered_on: NaiveDate,
    pub members: Vec<MemberRecord>,
    pub head_name: String,
    pub ethnic_minority: bool,
    pub archived: bool,
    pub archive_reason: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl HouseholdRecord {
    /// The record a new household becomes; member ids are kept when given.
    pub fn new(
        id: String,
        household: Household,
        member_ids: Vec<String>,
        now: DateTime<Utc>,
    ) -> HouseholdRecord {
        let head_name = household
            .head()
            .map(|h| h.full_name.clone())
            .unwrap_or_default();
        let ethnic_minority = household.is_ethnic_minority();
        HouseholdRecord {
            id,
            location: household.address.location,
            village: household.address.village,
            residence: household.address.residence,
            registered_on: household.registered_on,
            members: household
                .members
                .into_iter()
                .zip(member_ids)
                .map(|(member, id)| MemberRecord { id, member })
                .collect(),
            head_name,
            ethnic_minority,
            archived: false,
            archive_reason: None,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    /// The next version of this household with `household`'s contents; the
    /// registration date and creation time stay those of the original.
    pub fn revised(
        &self,
        household: Household,
        member_ids: Vec<String>,
        now: DateTime<Utc>,
    ) -> HouseholdRecord {
        HouseholdRecord {
            registered_on: self.registered_on,
            created_at: self.created_at,
            version: self.version + 1,
            ..HouseholdRecord::new(self.id.clone(), household, member_ids, now)
        }
    }

    /// The next version, archived: readable, but taking no further changes.
    pub fn archived(self, reason: String, now: DateTime<Utc>) -> HouseholdRecord {
        HouseholdRecord {
            archived: true,
            archive_reason: Some(reason),
            version: self.version + 1,
            updated_at: now,
            ..self
        }
    }

    pub fn owner_unit(&self) -> &str {
        &self.location.commune_code
    }
}

impl sustain_platform::cache::Versioned for HouseholdRecord {
    fn version(&self) -> i64 {
        self.version
    }
}

pub(crate) fn context(member_id: &str, field: &str) -> String {
    format!("member/{member_id}/{field}")
}

fn household_row(r: &HouseholdRecord) -> household::Model {
    let names: Vec<String> = r
        .members
        .iter()
        .map(|m| search_key(&m.member.full_name))
        .collect();
    household::Model {
        id: r.id.clone(),
        province_code: r.location.province_code.clone(),
        district_code: r.location.district_code.clone(),
        commune_code: r.location.commune_code.clone(),
        current_commune_code: r.location.current_commune_code.clone(),
        village: r.village.clone(),
        residence: r.residence.code().to_owned(),
        registered_on: r.registered_on,
        head_name: r.head_name.clone(),
        names_folded: format!("|{}|", names.join("|")),
        ethnic_minority: r.ethnic_minority,
        state: if r.archived { "archived" } else { "active" }.to_owned(),
        archive_reason: r.archive_reason.clone(),
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

fn member_rows(r: &HouseholdRecord, vault: &Vault) -> Vec<member::Model> {
    r.members
        .iter()
        .enumerate()
        .map(|(position, m)| {
            let id = &m.id;
            let p = &m.member;
            member::Model {
                id: id.clone(),
                household_id: r.id.clone(),
                position: position as i32,
                full_name: p.full_name.clone(),
                birth_date: p.birth_date,
                sex: p.sex.code().to_owned(),
                relation: p.relation.code().to_owned(),
                ethnicity_enc: vault
                    .cipher
                    .encrypt(&p.ethnicity_code, &context(id, "ethnicity")),
                citizen_id_enc: p
                    .citizen_id
                    .as_ref()
                    .map(|c| vault.cipher.encrypt(c.as_str(), &context(id, "citizen_id"))),
                citizen_id_hash: p.citizen_id.as_ref().map(|c| vault.citizen_hash(c)),
                disability_enc: vault.cipher.encrypt(
                    if p.has_disability { "1" } else { "0" },
                    &context(id, "disability"),
                ),
                health_insurance: p.health_insurance.code().to_owned(),
            }
        })
        .collect()
}

/// The sealed fields of a member row and the plain ones they travel as
/// between instances, each instance keeping them under its own keys.
const SEALED_FIELDS: [(&str, &str, &str); 3] = [
    ("citizen_id_enc", "citizen_id", "citizen_id"),
    ("ethnicity_enc", "ethnicity", "ethnicity_code"),
    ("disability_enc", "disability", "disability"),
];

/// A household's journaled state (`{"household": …, "members": [row, …]}`)
/// with each member's sealed fields opened, for a peer; the lookup hash,
/// keyed by this instance, stays here.
pub fn open_members(state: &str, vault: &Vault) -> Result<String, ServiceError> {
    each_member(state, |id, row| {
        if !row.contains_key("ethnicity_enc") {
            return Ok(()); // Already open.
        }
        for (sealed, context_field, plain) in SEALED_FIELDS {
            let opened = match row.remove(sealed) {
                Some(serde_json::Value::String(text)) => serde_json::Value::String(
                    vault
                        .cipher
                        .decrypt(&text, &context(id, context_field))
                        .map_err(|_| corrupt(context_field, id))?,
                ),
                _ => serde_json::Value::Null,
            };
            row.insert(plain.to_owned(), opened);
        }
        row.remove("citizen_id_hash");
        Ok(())
    })
}

/// The inverse of [`open_members`]: a peer's household state with each
/// member's fields sealed, and looked up, by this instance's keys. A state
/// that came sealed (an older peer sharing the keys) stays as it came.
pub fn seal_members(state: &str, vault: &Vault) -> Result<String, ServiceError> {
    each_member(state, |id, row| {
        if row.contains_key("ethnicity_enc") {
            return Ok(());
        }
        let mut hash = serde_json::Value::Null;
        for (sealed, context_field, plain) in SEALED_FIELDS {
            let value = match row.remove(plain) {
                Some(serde_json::Value::String(text)) => {
                    if plain == "citizen_id" {
                        hash = serde_json::Value::String(vault.hasher.hash(&text));
                    }
                    serde_json::Value::String(
                        vault.cipher.encrypt(&text, &context(id, context_field)),
                    )
                }
                Some(serde_json::Value::Null) | None if plain == "citizen_id" => {
                    serde_json::Value::Null
                }
                _ => {
                    return Err(ServiceError::Internal(format!(
                        "member {id} came without its {plain}"
                    )));
                }
            };
            row.insert(sealed.to_owned(), value);
        }
        row.insert("citizen_id_hash".into(), hash);
        Ok(())
    })
}

/// `state` with `f` applied to each member row: its id and its fields.
fn each_member(
    state: &str,
    mut f: impl FnMut(&str, &mut serde_json::Map<String, serde_json::Value>) -> Result<(), ServiceError>,
) -> Result<String, ServiceError> {
    let mut value: serde_json::Value = serde_json::from_str(state).map_err(|e| {
        ServiceError::Internal(format!(
            "household state does not read: {}",
            sustain_sync::apply::unreadable(&e)
        ))
    })?;
    for m in members_of(&mut value)? {
        let id = member_id(m)?;
        if let Some(row) = m.as_object_mut() {
            f(&id, row)?;
        }
    }
    Ok(value.to_string())
}

fn members_of(value: &mut serde_json::Value) -> Result<&mut Vec<serde_json::Value>, ServiceError> {
    value
        .get_mut("members")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or_else(|| ServiceError::Internal("household state has no members".into()))
}

fn member_id(m: &serde_json::Value) -> Result<String, ServiceError> {
    m.get("id")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ServiceError::Internal("a member in a household state has no id".into()))
}

fn corrupt(what: &str, id: &str) -> ServiceError {
    ServiceError::Internal(format!("stored {what} of {id} cannot be read"))
}

fn member_from_row(row: member::Model, vault: &Vault) -> Result<MemberRecord, ServiceError> {
    let open = |sealed: &str, field: &str| {
        vault
            .cipher
            .decrypt(sealed, &context(&row.id, field))
            .map_err(|_| corrupt(field, &row.id))
    };
    let citizen_id = match &row.citizen_id_enc {
        Some(sealed) => Some(
            CitizenId::parse(&open(sealed, "citizen_id")?)
                .map_err(|_| corrupt("citizen_id", &row.id))?,
        ),
        None => None,
    };
    let member = Member {
        full_name: row.full_name.clone(),
        birth_date: row.birth_date,
        sex: Sex::from_code(&row.sex).ok_or_else(|| corrupt("sex", &row.id))?,
        ethnicity_code: open(&row.ethnicity_enc, "ethnicity")?,
        relation: Relation::from_code(&row.relation).ok_or_else(|| corrupt("relation", &row.id))?,
        citizen_id,
        has_disability: open(&row.disability_enc, "disability")? == "1",
        health_insurance: HealthInsurance::from_code(&row.health_insurance)
            .ok_or_else(|| corrupt("health_insurance", &row.id))?,
    };
    Ok(MemberRecord { id: row.id, member })
}

fn record_from_rows(
    h: household::Model,
    members: Vec<member::Model>,
    vault: &Vault,
) -> Result<HouseholdRecord, ServiceError> {
    Ok(HouseholdRecord {
        location: Location {
            province_code: h.province_code,
            district_code: h.district_code,
            commune_code: h.commune_code,
            current_commune_code: h.current_commune_code,
        },
        residence: Residence::from_code(&h.residence).ok_or_else(|| corrupt("residence", &h.id))?,
        members: members
            .into_iter()
            .map(|m| member_from_row(m, vault))
            .collect::<Result<_, _>>()?,
        village: h.village,
        registered_on: h.registered_on,
        head_name: h.head_name,
        ethnic_minority: h.ethnic_minority,
        archived: h.state == "archived",
        archive_reason: h.archive_reason,
        version: h.version,
        created_at: h.created_at,
        updated_at: h.updated_at,
        id: h.id,
    })
}

/// The rows a household is stored as, personal fields encrypted, as JSON:
/// what an old version is kept as (sealed again whole).
fn rows_state(record: &HouseholdRecord, vault: &Vault) -> String {
    rows_json(&household_row(record), &member_rows(record, vault))
}

#[derive(serde::Serialize)]
struct State<'a> {
    household: &'a household::Model,
    members: &'a [member::Model],
}

fn rows_json(household: &household::Model, members: &[member::Model]) -> String {
    sustain_platform::journal::state_json(&State { household, members })
}

/// A household's state as the journal keeps it: its rows sealed whole with
/// the field key, bound to the household, so that the outbox (which keeps
/// every version as long as the feed does) holds no name, birth date or
/// village in the clear: `{"sealed": "…"}`.
fn state_of(household: &household::Model, members: &[member::Model], vault: &Vault) -> String {
    seal_state(&rows_json(household, members), &household.id, vault)
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedState {
    sealed: String,
}

fn state_context(household_id: &str) -> String {
    format!("household_state/{household_id}")
}

fn seal_state(rows: &str, household_id: &str, vault: &Vault) -> String {
    sustain_platform::journal::state_json(&SealedState {
        sealed: vault.cipher.encrypt(rows, &state_context(household_id)),
    })
}

/// A journaled household state's rows (`{"household": …, "members": [row,
/// …]}`, members' fields still sealed): opened when sealed whole, as it is
/// when journaled before states were sealed. INTERNAL when it is sealed with
/// no key held here or for another household.
pub fn unwrap_state(
    state: &str,
    household_id: &str,
    vault: &Vault,
) -> Result<String, ServiceError> {
    match serde_json::from_str::<SealedState>(state) {
        Ok(SealedState { sealed }) => vault
            .cipher
            .decrypt(&sealed, &state_context(household_id))
            .map_err(|_| {
                ServiceError::Internal(format!(
                    "the state of household {household_id} is sealed with no key held here"
                ))
            }),
        Err(_) => Ok(state.to_owned()),
    }
}

/// A journaled household state as it crosses to a peer: opened whole and
/// each member's fields opened ([`open_members`]); the peer seals it again.
pub fn open_state(state: &str, household_id: &str, vault: &Vault) -> Result<String, ServiceError> {
    open_members(&unwrap_state(state, household_id, vault)?, vault)
}

/// The inverse of [`open_state`]: a peer's household state as it is
/// journaled here, members' fields sealed and the whole sealed by this
/// instance's keys.
pub fn seal_state_from_peer(
    state: &str,
    household_id: &str,
    vault: &Vault,
) -> Result<String, ServiceError> {
    let rows = seal_members(&unwrap_state(state, household_id, vault)?, vault)?;
    Ok(seal_state(&rows, household_id, vault))
}

/// Inserts a new household and its members; returns the journal state.
pub async fn insert(
    conn: &impl ConnectionTrait,
    record: &HouseholdRecord,
    vault: &Vault,
) -> Result<String, ServiceError> {
    let row = household_row(record);
    let members = member_rows(record, vault);
    household::Entity::insert(household::ActiveModel::from(row.clone()))
        .exec(conn)
        .await?;
    insert_members(conn, &members).await?;
    Ok(state_of(&row, &members, vault))
}

/// Rows per multi-row INSERT, within both databases' bind-parameter limits.
const ROWS_PER_INSERT: usize = 1000;

/// The rows a new household is stored as, personal fields encrypted, and its
/// journal state.
pub fn stored_rows(
    record: &HouseholdRecord,
    vault: &Vault,
) -> (household::Model, Vec<member::Model>, String) {
    let row = household_row(record);
    let members = member_rows(record, vault);
    let state = state_of(&row, &members, vault);
    (row, members, state)
}

/// Inserts rows made by [`stored_rows`] in bulk.
pub async fn insert_stored(
    conn: &impl sustain_db::Bulk,
    households: Vec<household::Model>,
    members: Vec<member::Model>,
) -> Result<(), ServiceError> {
    sustain_db::insert_rows::<household::Entity>(conn, households, &[]).await?;
    sustain_db::insert_rows::<member::Entity>(conn, members, &[]).await?;
    Ok(())
}

/// The households holding members with any of these citizen-ID hashes.
pub async fn holders_of(
    conn: &impl ConnectionTrait,
    hashes: Vec<String>,
) -> Result<HashMap<String, String>, ServiceError> {
    let mut found = HashMap::new();
    let backend = conn.get_database_backend();
    for chunk in hashes.chunks(ROWS_PER_INSERT) {
        for m in member::Entity::find()
            .filter(sustain_db::in_json_list(backend, "citizen_id_hash", chunk)?)
            .all(conn)
            .await?
        {
            if let Some(hash) = m.citizen_id_hash {
                found.insert(hash, m.household_id);
            }
        }
    }
    Ok(found)
}

async fn insert_members(
    conn: &impl ConnectionTrait,
    rows: &[member::Model],
) -> Result<(), ServiceError> {
    if !rows.is_empty() {
        member::Entity::insert_many(rows.iter().cloned().map(member::ActiveModel::from))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// Writes a changed household if it is still at `expected_version`: the
/// journal state of what it wrote, `None` when someone else changed it first.
pub async fn update(
    conn: &impl ConnectionTrait,
    record: &HouseholdRecord,
    expected_version: i64,
    vault: &Vault,
) -> Result<Option<String>, ServiceError> {
    let row = household_row(record);
    let members = member_rows(record, vault);
    let state = state_of(&row, &members, vault);
    // From a model every value is Unchanged; mark them Set so the UPDATE writes them.
    let mut active = household::ActiveModel::from(row).reset_all();
    active.id = sea_orm::ActiveValue::NotSet;
    active.created_at = sea_orm::ActiveValue::NotSet;
    let result = household::Entity::update_many()
        .set(active)
        .filter(household::Column::Id.eq(record.id.clone()))
        .filter(household::Column::Version.eq(expected_version))
        .exec(conn)
        .await?;
    if result.rows_affected == 0 {
        return Ok(None);
    }
    member::Entity::delete_many()
        .filter(member::Column::HouseholdId.eq(record.id.clone()))
        .exec(conn)
        .await?;
    insert_members(conn, &members).await?;
    Ok(Some(state))
}

pub async fn load(
    conn: &impl ConnectionTrait,
    id: &str,
    vault: &Vault,
) -> Result<Option<HouseholdRecord>, ServiceError> {
    // One round trip: the household joined to its members, columns prefixed h_ / m_.
    let mut query = Query::select();
    for c in household::Column::iter() {
        query.expr_as(
            Expr::col((household::Entity, c)),
            Alias::new(format!("h_{}", c.as_str())),
        );
    }
    for c in member::Column::iter() {
        query.expr_as(
            Expr::col((member::Entity, c)),
            Alias::new(format!("m_{}", c.as_str())),
        );
    }
    query
        .from(household::Entity)
        .left_join(
            member::Entity,
            Expr::col((member::Entity, member::Column::HouseholdId))
                .equals((household::Entity, household::Column::Id)),
        )
        .and_where(Expr::col((household::Entity, household::Column::Id)).eq(id))
        .order_by((member::Entity, member::Column::Position), Order::Asc);
    let rows = conn.query_all(&query).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let h = household::Model::from_query_result(first, "h_")?;
    let mut members = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<Option<String>>("m_", "id")?.is_some() {
            members.push(member::Model::from_query_result(row, "m_")?);
        }
    }
    record_from_rows(h, members, vault).map(Some)
}

/// Keeps `previous` (the version about to be replaced) for point-in-time reads,
/// sealed whole: its rows as they were, personal fields encrypted inside as well.
pub async fn keep_version(
    conn: &impl ConnectionTrait,
    previous: &HouseholdRecord,
    vault: &Vault,
) -> Result<(), ServiceError> {
    let state = rows_state(previous, vault).into_bytes();
    let context = version_context(&previous.id, previous.version);
    household_version::Entity::insert(household_version::ActiveModel {
        household_id: sea_orm::ActiveValue::Set(previous.id.clone()),
        version: sea_orm::ActiveValue::Set(previous.version),
        sealed: sea_orm::ActiveValue::Set(vault.cipher.seal(&state, &context)),
        recorded_at: sea_orm::ActiveValue::Set(previous.updated_at),
    })
    .exec(conn)
    .await?;
    Ok(())
}

pub(crate) fn version_context(id: &str, version: i64) -> String {
    format!("household_version:{id}:{version}")
}

/// The household as it was at `version`: the live row when it is still at that
/// version, else the sealed copy kept when it changed.
pub async fn load_version(
    conn: &impl ConnectionTrait,
    id: &str,
    version: i64,
    vault: &Vault,
) -> Result<Option<HouseholdRecord>, ServiceError> {
    if let Some(current) = load(conn, id, vault).await?
        && current.version == version
    {
        return Ok(Some(current));
    }
    let Some(kept) = household_version::Entity::find_by_id((id.to_owned(), version))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let plain = vault
        .cipher
        .open(&kept.sealed, &version_context(id, version))
        .map_err(|e| ServiceError::Internal(format!("kept household version: {e}")))?;
    #[derive(serde::Deserialize)]
    struct Kept {
        household: household::Model,
        members: Vec<member::Model>,
    }
    let kept: Kept = serde_json::from_slice(&plain)
        .map_err(|e| ServiceError::Internal(format!("kept household version: {e}")))?;
    record_from_rows(kept.household, kept.members, vault).map(Some)
}

/// The household holding a member with this citizen-ID hash, other than `except`.
pub async fn holder_of(
    conn: &impl ConnectionTrait,
    citizen_hashes: &[String],
    except: Option<&str>,
) -> Result<Option<String>, ServiceError> {
    let mut query = member::Entity::find()
        .filter(member::Column::CitizenIdHash.is_in(citizen_hashes.iter().cloned()));
    if let Some(except) = except {
        query = query.filter(member::Column::HouseholdId.ne(except.to_owned()));
    }
    Ok(query.one(conn).await?.map(|m| m.household_id))
}

/// True when household `id` lies inside `scope`: whether a caller may be told
/// where a citizen ID it tried to register already is.
pub async fn lies_in(
    conn: &impl ConnectionTrait,
    id: &str,
    scope: &Scope,
) -> Result<bool, ServiceError> {
    Ok(household::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await?
        .is_some_and(|h| {
            scope.covers(&Location {
                province_code: h.province_code,
                district_code: h.district_code,
                commune_code: h.commune_code,
                current_commune_code: h.current_commune_code,
            })
        }))
}

/// What a list or count selects. Unit codes pick their column by level.
#[derive(Debug, Clone)]
pub struct Selection {
    pub scope: Scope,
    pub unit_code: Option<String>,
    pub ethnic_minority: Option<bool>,
    /// Already folded, letters, digits and spaces only.
    pub name_folded: Option<String>,
    /// Every hash the citizen ID may be stored under.
    pub citizen_hash: Option<Vec<String>>,
    pub include_archived: bool,
}

fn unit_condition(code: &str) -> Condition {
    match Level::of_code(code) {
        Some(Level::Province) => Condition::all().add(household::Column::ProvinceCode.eq(code)),
        Some(Level::District) => Condition::all().add(household::Column::DistrictCode.eq(code)),
        Some(Level::Commune) => Condition::any()
            .add(household::Column::CommuneCode.eq(code))
            .add(household::Column::CurrentCommuneCode.eq(code)),
        // Not a unit code: matches nothing.
        None => Condition::all().add(household::Column::Id.is_null()),
    }
}

fn condition(s: &Selection) -> Condition {
    let mut all = Condition::all();
    if !s.scope.is_nationwide() {
        let mut any = Condition::any();
        for code in s.scope.codes() {
            any = any.add(unit_condition(code));
        }
        all = all.add(any);
    }
    if let Some(code) = &s.unit_code {
        all = all.add(unit_condition(code));
    }
    if let Some(flag) = s.ethnic_minority {
        all = all.add(household::Column::EthnicMinority.eq(flag));
    }
    if let Some(name) = &s.name_folded {
        all = all.add(household::Column::NamesFolded.contains(name.as_str()));
    }
    if let Some(hashes) = &s.citizen_hash {
        all = all.add(
            household::Column::Id.in_subquery(
                Query::select()
                    .column(member::Column::HouseholdId)
                    .from(member::Entity)
                    .and_where(member::Column::CitizenIdHash.is_in(hashes.iter().cloned()))
                    .to_owned(),
            ),
        );
    }
    if !s.include_archived {
        all = all.add(household::Column::State.eq("active"));
    }
    all
}

/// One page in id order, starting after `after`.
pub async fn list(
    conn: &impl ConnectionTrait,
    selection: &Selection,
    after: Option<&str>,
    limit: u64,
    vault: &Vault,
) -> Result<Vec<HouseholdRecord>, ServiceError> {
    let mut query = household::Entity::find().filter(condition(selection));
    if let Some(after) = after {
        query = query.filter(household::Column::Id.gt(after.to_owned()));
    }
    let rows = query
        .order_by_asc(household::Column::Id)
        .limit(limit)
        .all(conn)
        .await?;
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let ids: Vec<String> = rows.iter().map(|h| h.id.clone()).collect();
    let mut by_household: HashMap<String, Vec<member::Model>> = HashMap::new();
    for m in member::Entity::find()
        .filter(member::Column::HouseholdId.is_in(ids))
        .order_by_asc(member::Column::Position)
        .all(conn)
        .await?
    {
        by_household
            .entry(m.household_id.clone())
            .or_default()
            .push(m);
    }
    rows.into_iter()
        .map(|h| {
            let members = by_household.remove(&h.id).unwrap_or_default();
            record_from_rows(h, members, vault)
        })
        .collect()
}

/// Members of the selected households born within `born` (inclusive bounds).
/// A join, not `IN (households)`: the planner walks the members' birth-date
/// index and looks each household up, instead of first listing every
/// household of a province (docs/benchmarks.md, issue 4).
async fn count_members(
    conn: &impl ConnectionTrait,
    selection: &Selection,
    born: Born,
) -> Result<i64, ServiceError> {
    let mut query = Query::select();
    query
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(member::Entity)
        .inner_join(
            household::Entity,
            Expr::col((household::Entity, household::Column::Id))
                .equals((member::Entity, member::Column::HouseholdId)),
        )
        .cond_where(condition(selection))
        .cond_where(born_in(born));
    let backend = conn.get_database_backend();
    let row = conn.query_one_raw(backend.build(&query)).await?;
    Ok(match row {
        Some(r) => r.try_get::<i64>("", "n")?,
        None => 0,
    })
}

/// Members born in `born`.
fn born_in(born: Born) -> Condition {
    let birth = || Expr::col((member::Entity, member::Column::BirthDate));
    Condition::all()
        .add_option(born.0.map(|from| birth().gte(from)))
        .add_option(born.1.map(|to| birth().lte(to)))
}

/// A window of birth dates, either end open.
type Born = (Option<NaiveDate>, Option<NaiveDate>);

/// Active members by every unit they count under, per birth window, as of
/// one journal head. A programme report by commune asks the under-five count
/// of each of ~80 units for each of five years; counted one by one (50–115 ms
/// each over a province) they ran past every deadline. One count per window
/// answers them all, and it stays right until the head moves: every write to
/// a household or its members journals and moves it.
///
/// A window's count is the members born in it (read from the birth-date
/// index alone) looked up in the placements of the active households, which
/// are read once per head for every window. Joining the households in SQL
/// instead looked each of ~100,000 members' households up again per window:
/// five windows asked at once took SQLite ~3 s on two cores, past the
/// programmes service's deadline.
#[derive(Debug, Clone)]
pub struct MemberCounts {
    placements: KeptAtHead<(), Placements>,
    windows: KeptAtHead<Born, HashMap<String, i64>>,
}

impl Default for MemberCounts {
    fn default() -> MemberCounts {
        MemberCounts {
            placements: KeptAtHead::new(1),
            // Windows kept at one head at most; more are counted afresh.
            windows: KeptAtHead::new(32),
        }
    }
}

impl MemberCounts {
    /// The number of active members of `unit` born in `born`, from the kept
    /// count when there is one at the current head.
    async fn of_unit(
        &self,
        db: &sea_orm::DatabaseConnection,
        unit: &str,
        born: Born,
    ) -> Result<i64, ServiceError> {
        // No connection is held while waiting for another caller's count:
        // the pool is small (four on SQLite), and ~16 callers wait at once.
        // The placements and the members may be read at later heads than
        // `head` (each a state at least as new), never at an earlier one.
        let head = sustain_platform::journal::head(db).await?;
        let (db, placements) = (db.clone(), self.placements.clone());
        let counts =
            self.windows
                .get_or_try_init(head, born, move || async move {
                    let reading = db.clone();
                    let placements = placements
                        .get_or_try_init(head, (), move || async move {
                            Placements::read(&reading).await
                        })
                        .await?;
                    let households = households_of_members_born(&db, born).await?;
                    Ok::<_, ServiceError>(placements.count(households.split_terminator(',')))
                })
                .await?;
        Ok(counts.get(unit).copied().unwrap_or(0))
    }
}

/// `column` of every row, joined by commas, in one value: reading ~100,000
/// ids as that many rows costs the driver several times more than the
/// database. Household ids are UUIDs, which hold no comma.
fn joined(backend: sea_orm::DbBackend, column: &str) -> Expr {
    Expr::cust(match backend {
        sea_orm::DbBackend::Postgres => format!("string_agg({column}, ',')"),
        _ => format!("group_concat({column}, ',')"),
    })
}

/// The household of each member born in `born`, joined by commas (once for
/// each member).
async fn households_of_members_born(
    db: &sea_orm::DatabaseConnection,
    born: Born,
) -> Result<String, ServiceError> {
    let ids: Option<Option<String>> = member::Entity::find()
        .select_only()
        .column_as(joined(db.get_database_backend(), "household_id"), "ids")
        .filter(born_in(born))
        .into_tuple()
        .one(db)
        .await?;
    Ok(ids.flatten().unwrap_or_default())
}

/// Where each active household counts: its province, district, commune and
/// current commune, by household id.
#[derive(Debug, Default)]
struct Placements {
    of: HashMap<String, u32>,
    places: Vec<(String, Option<String>, String, String)>,
}

impl Placements {
    /// One row per placement with the ids of its households.
    async fn read(db: &sea_orm::DatabaseConnection) -> Result<Placements, ServiceError> {
        let rows: Vec<(String, Option<String>, String, String, String)> = household::Entity::find()
            .select_only()
            .columns([
                household::Column::ProvinceCode,
                household::Column::DistrictCode,
                household::Column::CommuneCode,
                household::Column::CurrentCommuneCode,
            ])
            .column_as(joined(db.get_database_backend(), "id"), "ids")
            .filter(household::Column::State.eq("active"))
            .group_by(household::Column::ProvinceCode)
            .group_by(household::Column::DistrictCode)
            .group_by(household::Column::CommuneCode)
            .group_by(household::Column::CurrentCommuneCode)
            .into_tuple()
            .all(db)
            .await?;
        let mut placements = Placements::default();
        for (province, district, commune, current, ids) in rows {
            let at = placements.places.len() as u32;
            placements
                .places
                .push((province, district, commune, current));
            placements
                .of
                .extend(ids.split_terminator(',').map(|id| (id.to_owned(), at)));
        }
        Ok(placements)
    }

    /// Members (one household id each) by every unit they count under, with
    /// the rules of [`unit_condition`]: a household counts in its commune and
    /// in its current commune when they differ. Members of households not
    /// active are not counted.
    fn count<'a>(&self, households: impl Iterator<Item = &'a str>) -> HashMap<String, i64> {
        let mut by_place = vec![0i64; self.places.len()];
        for id in households {
            if let Some(&at) = self.of.get(id) {
                by_place[at as usize] += 1;
            }
        }
        let mut counts: HashMap<String, i64> = HashMap::new();
        for ((province, district, commune, current), n) in self.places.iter().zip(by_place) {
            if n == 0 {
                continue;
            }
            *counts.entry(province.clone()).or_default() += n;
            if let Some(d) = district {
                *counts.entry(d.clone()).or_default() += n;
            }
            if current != commune {
                *counts.entry(current.clone()).or_default() += n;
            }
            *counts.entry(commune.clone()).or_default() += n;
        }
        counts
    }
}

/// [`count_members`], from `kept` when the selection is a whole unit inside
/// the caller's scope (the programme summaries' under-five count); counted
/// directly otherwise.
pub async fn count_members_kept(
    db: &sea_orm::DatabaseConnection,
    kept: &MemberCounts,
    selection: &Selection,
    born: Born,
) -> Result<i64, ServiceError> {
    match selection {
        Selection {
            scope,
            unit_code: Some(unit),
            ethnic_minority: None,
            name_folded: None,
            citizen_hash: None,
            include_archived: false,
        } if scope.is_nationwide() => kept.of_unit(db, unit, born).await,
        _ => count_members(db, selection, born).await,
    }
}

pub async fn count(
    conn: &impl ConnectionTrait,
    selection: &Selection,
) -> Result<i64, ServiceError> {
    let n = household::Entity::find()
        .filter(condition(selection))
        .count(conn)
        .await?;
    Ok(n as i64)
}

/// The household rows of `ids` that exist, by id.
pub async fn households_by_ids(
    conn: &impl ConnectionTrait,
    ids: &[String],
) -> Result<HashMap<String, household::Model>, ServiceError> {
    Ok(household::Entity::find()
        .filter(sustain_db::in_json_list(
            conn.get_database_backend(),
            "id",
            ids,
        )?)
        .all(conn)
        .await?
        .into_iter()
        .map(|h| (h.id.clone(), h))
        .collect())
}

/// The member rows of `households`.
pub async fn member_rows_of(
    conn: &impl ConnectionTrait,
    households: &[String],
) -> Result<Vec<member::Model>, ServiceError> {
    Ok(member::Entity::find()
        .filter(sustain_db::in_json_list(
            conn.get_database_backend(),
            "household_id",
            households,
        )?)
        .all(conn)
        .await?)
}

/// Writes a newer state of a household held here, its members replaced.
pub async fn replace_household(
    conn: &impl sustain_db::Bulk,
    row: household::Model,
    members: Vec<member::Model>,
) -> Result<(), ServiceError> {
    let id = row.id.clone();
    let mut active = household::ActiveModel::from(row).reset_all();
    active.id = sea_orm::ActiveValue::NotSet;
    active.created_at = sea_orm::ActiveValue::NotSet;
    household::Entity::update_many()
        .set(active)
        .filter(household::Column::Id.eq(id.clone()))
        .exec(conn)
        .await?;
    member::Entity::delete_many()
        .filter(member::Column::HouseholdId.eq(id))
        .exec(conn)
        .await?;
    sustain_db::insert_rows::<member::Entity>(conn, members, &[]).await?;
    Ok(())
}
