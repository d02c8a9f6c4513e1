//! The villages of the communes the 2025 reform divided between successors
//! (Lạng Sơn: 06622 Bính Xá, 06625 Kiên Mộc). Which part a household joined
//! depends on its village, which no code says, so the province assigns each
//! village a part and nothing is guessed: until then the household's
//! `current_commune_code` is empty and figures show it as "not yet assigned".
//!
//! The part a household is in is derived, like the commune carrying on an
//! unsplit one: every instance works it out from the assignments it holds
//! (set at the province, travelling down by sync) and writes it into the
//! household and its reviews, moving the tallies with them, without a new
//! household version. [`reconcile`] is that one step, run by every write that
//! touches a split commune, under one lock on PostgreSQL, so an assignment and
//! a household written at the same time cannot miss each other.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use sea_orm::ConnectionTrait;
use sustain_domain::Violations;
use sustain_domain::admin;
use sustain_domain::household::Household;
use sustain_domain::text::search_key;
use sustain_platform::error::ServiceError;
use sustain_platform::journal::{self, Change, IdempotencyKey};
use sustain_platform::{Caller, Role};
use sustain_proto::registry::v1 as pb;

use crate::convert::{MAX_VILLAGE_CHARS, today};
use crate::model::village_assignment;
use crate::store;
use crate::store::reviews::CERTIFIED;
use crate::store::tally::TallyDelta;

/// The record type an assignment travels as.
pub const RECORD: &str = "village_assignment";
/// Who may assign villages: admins whose scope holds the province.
pub const ASSIGN: &[Role] = &[Role::Admin];
/// Assignments one request may set.
pub const MAX_ASSIGNMENTS: usize = 500;

fn id_of(commune: &str, village_key: &str) -> String {
    format!("{commune}/{village_key}")
}

/// The parts the assignments name, by assignment id.
#[derive(Debug, Clone, Default)]
pub struct Assignments(HashMap<String, String>);

impl Assignments {
    pub async fn load(conn: &impl ConnectionTrait) -> Result<Assignments, ServiceError> {
        let rows = store::villages::assigned(conn).await?;
        Ok(Assignments(
            rows.into_iter().map(|r| (r.id, r.successor_code)).collect(),
        ))
    }

    /// The part, in force on `today`, that `village` of the commune `code` as
    /// it stood on `registered_on` joined; `None` when that commune was not
    /// split or the village is not (or no longer validly) assigned.
    pub fn part(
        &self,
        code: &str,
        village: &str,
        registered_on: chrono::NaiveDate,
        today: chrono::NaiveDate,
    ) -> Option<String> {
        let parts = admin::catalog().split_parts(code, registered_on, today)?;
        let part = self.0.get(&id_of(code, &search_key(village)))?;
        parts.iter().any(|p| &p.code == part).then(|| part.clone())
    }

    /// Places a household of a split commune in the part its village joined;
    /// any other household is left as it is.
    pub fn place(&self, household: &mut Household, today: chrono::NaiveDate) {
        let address = &mut household.address;
        if address.location.current_commune_code.is_empty()
            && let Some(part) = self.part(
                &address.location.commune_code,
                &address.village,
                household.registered_on,
                today,
            )
        {
            address.location.current_commune_code = part;
        }
    }
}

/// [`Assignments::place`] with the assignments read only when the household
/// needs them.
pub async fn place(
    conn: &impl ConnectionTrait,
    household: &mut Household,
) -> Result<(), ServiceError> {
    if household.address.location.current_commune_code.is_empty() {
        Assignments::load(conn).await?.place(household, today());
    }
    Ok(())
}

/// The split communes among `codes` (commune codes of written rows).
pub fn split_among<'a>(codes: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let split = admin::catalog().split_codes();
    codes
        .into_iter()
        .filter(|c| split.contains(c))
        .map(str::to_owned)
        .collect()
}

/// Brings every household of the split communes `communes` and its reviews
/// to the part its village is assigned (none: empty), moving the tallies of
/// its certified reviews with them. Returns the households moved.
pub async fn reconcile(
    conn: &impl ConnectionTrait,
    communes: &BTreeSet<String>,
) -> Result<Vec<String>, ServiceError> {
    if communes.is_empty() {
        return Ok(vec![]);
    }
    store::villages::lock(conn).await?;
    let assignments = Assignments::load(conn).await?;
    let today = today();
    let catalog = admin::catalog();
    let households = store::villages::households_in(conn, communes.iter().cloned()).await?;
    let mut wanted: HashMap<String, String> = HashMap::new();
    let mut moves: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut moved = vec![];
    for h in households {
        if catalog
            .split_parts(&h.commune_code, h.registered_on, today)
            .is_none()
        {
            continue;
        }
        let want = assignments
            .part(&h.commune_code, &h.village, h.registered_on, today)
            .unwrap_or_default();
        if h.current_commune_code != want {
            moves.entry(want.clone()).or_default().push(h.id.clone());
            moved.push(h.id.clone());
        }
        wanted.insert(h.id, want);
    }
    for (part, ids) in &moves {
        store::villages::move_households(conn, part, ids).await?;
    }
    // A review keeps the commune it was taken in; of the reviews taken in the
    // split commune, those of households still there follow them.
    let reviews = store::villages::reviews_in(conn, communes.iter().cloned()).await?;
    let mut delta = TallyDelta::default();
    let mut review_moves: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for mut r in reviews {
        let Some(want) = wanted.get(&r.household_id) else {
            continue;
        };
        if &r.current_commune_code == want {
            continue;
        }
        let certified = r.state == CERTIFIED;
        if certified {
            delta.add(&r, -1);
        }
        r.current_commune_code = want.clone();
        if certified {
            delta.add(&r, 1);
        }
        review_moves.entry(want.clone()).or_default().push(r.id);
    }
    for (part, ids) in &review_moves {
        store::villages::move_reviews(conn, part, ids).await?;
    }
    delta.apply(conn).await?;
    Ok(moved)
}

/// The parts of split commune `code` in force today, by code; a violation
/// on `field` when it is not one.
fn parts_of(code: &str, field: &str, v: &mut Violations) -> Vec<String> {
    let catalog = admin::catalog();
    let parts: Vec<String> = catalog
        .split_at(code, today())
        .map(|p| p.iter().map(|u| u.code.clone()).collect())
        .unwrap_or_default();
    if parts.is_empty() {
        v.add(
            field,
            format!(
                "must be a commune the 2025 reform divided between successors: {}",
                catalog.split_codes().join(", ")
            ),
        );
    }
    parts
}

fn to_proto(r: &village_assignment::Model) -> pb::VillageAssignment {
    pb::VillageAssignment {
        village: r.village.clone(),
        successor_code: r.successor_code.clone(),
        updated_by: r.updated_by.clone(),
        updated_at: r.updated_at.to_rfc3339(),
    }
}

/// The assignments of split commune `code` in force, by village.
async fn assigned(
    conn: &impl ConnectionTrait,
    code: &str,
) -> Result<Vec<pb::VillageAssignment>, ServiceError> {
    Ok(store::villages::assigned_in(conn, code)
        .await?
        .iter()
        .map(to_proto)
        .collect())
}

/// Sets villages' parts; see `HouseholdService.AssignVillages`. Returns the
/// answer and the households moved (their cached copies are out of date).
pub async fn assign(
    db: &sea_orm::DatabaseConnection,
    cipher: &sustain_platform::crypto::FieldCipher,
    caller: &Caller,
    key: Option<IdempotencyKey>,
    request: pb::AssignVillagesRequest,
) -> Result<(pb::AssignVillagesResponse, Vec<String>), ServiceError> {
    let mut v = Violations::new();
    let code = request.commune_code.trim().to_owned();
    let parts = parts_of(&code, "commune_code", &mut v);
    if request.assignments.is_empty() {
        v.add("assignments", "must name at least one village");
    } else if request.assignments.len() > MAX_ASSIGNMENTS {
        v.add(
            "assignments",
            format!("must be at most {MAX_ASSIGNMENTS} villages; send more requests"),
        );
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut wanted = vec![];
    for (i, a) in request.assignments.iter().enumerate() {
        let field = format!("assignments[{i}].village");
        let village = a.village.trim();
        let village_key = search_key(village);
        if village_key.is_empty() {
            v.add(&field, "is required: the village as the province names it");
        } else if village.chars().count() > MAX_VILLAGE_CHARS {
            v.add(
                &field,
                format!("must be at most {MAX_VILLAGE_CHARS} characters"),
            );
        } else if let Some(j) = seen.insert(village_key.clone(), i) {
            v.add(
                &field,
                format!("names the same village as assignments[{j}]"),
            );
        }
        let successor = a.successor_code.trim();
        if !successor.is_empty() && !parts.is_empty() && !parts.iter().any(|p| p == successor) {
            v.add(
                format!("assignments[{i}].successor_code"),
                format!(
                    "must be one of the parts of {code} in force today ({}), or empty to take the assignment back",
                    parts.join(", ")
                ),
            );
        }
        wanted.push((village.to_owned(), village_key, successor.to_owned()));
    }
    sustain_platform::error::check(v)?;
    let province = admin::catalog()
        .province_of(&code)
        .ok_or_else(|| ServiceError::Internal(format!("commune {code} lies in no province")))?
        .to_owned();
    if !caller.scope.contains_unit(&province) {
        return Err(ServiceError::PermissionDenied {
            reason: "OUT_OF_SCOPE",
            message: format!(
                "villages are assigned by the province: the caller's scope does not hold province {province}"
            ),
        });
    }
    let moved = Arc::new(Mutex::new(vec![]));
    let moved_here = Arc::clone(&moved);
    let request_id = request.request_id.clone();
    let answer = journal::run_once(db, cipher, key, |txn| async move {
        // Refused before anything is written where another instance owns
        // the province (a district), even when nothing would change.
        sustain_sync::Topology::load(&txn)
            .await?
            .check_writes(std::iter::once(province.as_str()))?;
        let now = chrono::Utc::now();
        let mut changes = vec![];
        for (village, village_key, successor) in wanted {
            let id = id_of(&code, &village_key);
            let held = store::villages::assignment(&txn, &id).await?;
            if held
                .as_ref()
                .map_or(successor.is_empty(), |h| h.successor_code == successor)
            {
                continue;
            }
            let row = village_assignment::Model {
                id: id.clone(),
                province_code: province.clone(),
                commune_code: code.clone(),
                village_key,
                village,
                successor_code: successor,
                version: held.as_ref().map_or(1, |h| h.version + 1),
                updated_at: now,
                updated_by: caller.subject.clone(),
            };
            store::villages::write(&txn, row.clone()).await?;
            changes.push(Change {
                record_type: RECORD.into(),
                record_id: id,
                owner_unit: province.clone(),
                version: row.version,
                action: "assign".into(),
                state: journal::state_json(&row),
            });
        }
        let changed = changes.len();
        journal::record_many(&txn, caller, &request_id, changes).await?;
        let households = reconcile(&txn, &BTreeSet::from([code.clone()])).await?;
        tracing::info!(commune = %code, villages = changed, households_moved = households.len(), caller = %caller.subject, "villages assigned");
        let answer = pb::AssignVillagesResponse {
            assignments: assigned(&txn, &code).await?,
            households_moved: households.len() as i64,
        };
        if let Ok(mut m) = moved_here.lock() {
            *m = households;
        }
        Ok((answer, txn))
    })
    .await?;
    let moved = moved
        .lock()
        .map(|mut m| std::mem::take(&mut *m))
        .unwrap_or_default();
    Ok((answer, moved))
}

/// Writes an assignment that arrived from the province; returns its commune,
/// to be reconciled once the batch is written.
pub async fn write_replica(
    txn: &impl ConnectionTrait,
    incoming: &sustain_sync::apply::Incoming,
) -> Result<String, ServiceError> {
    let row: village_assignment::Model = incoming.read()?;
    incoming.require_placed(&row.id, &row.province_code)?;
    if admin::catalog().province_of(&row.commune_code) != Some(row.province_code.as_str())
        || row.id != id_of(&row.commune_code, &row.village_key)
    {
        return Err(ServiceError::Internal(format!(
            "village assignment {} does not name a commune of province {}",
            row.id, row.province_code
        )));
    }
    let commune = row.commune_code.clone();
    store::villages::write(txn, row).await?;
    Ok(commune)
}

/// A split commune's parts, assignments and unassigned villages; see
/// `HouseholdService.ListVillageAssignments`.
pub async fn list(
    db: &sea_orm::DatabaseConnection,
    caller: &Caller,
    request: pb::ListVillageAssignmentsRequest,
) -> Result<pb::ListVillageAssignmentsResponse, ServiceError> {
    let mut v = Violations::new();
    let code = request.commune_code.trim().to_owned();
    let parts = parts_of(&code, "commune_code", &mut v);
    sustain_platform::error::check(v)?;
    if !caller.scope.overlaps_unit(&code) && !parts.iter().any(|p| caller.scope.overlaps_unit(p)) {
        return Err(ServiceError::PermissionDenied {
            reason: "OUT_OF_SCOPE",
            message: format!(
                "commune {code} and its parts are outside the caller's administrative scope"
            ),
        });
    }
    let unassigned = store::villages::unassigned(db, &caller.scope, &code).await?;
    let today = today();
    let mut counts: BTreeMap<String, (String, i64)> = BTreeMap::new();
    for (village, registered_on) in unassigned {
        if admin::catalog()
            .split_parts(&code, registered_on, today)
            .is_none()
        {
            continue;
        }
        let entry = counts
            .entry(search_key(&village))
            .or_insert_with(|| (village, 0));
        entry.1 += 1;
    }
    Ok(pb::ListVillageAssignmentsResponse {
        part_codes: parts,
        assignments: assigned(db, &code).await?,
        unassigned: counts
            .into_values()
            .map(|(village, households)| pb::VillageCount {
                village,
                households,
            })
            .collect(),
    })
}
