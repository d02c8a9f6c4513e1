//! The receiving side: a batch from a peer's feed is applied and the peer's
//! cursor moved in one transaction. A change is applied when it is newer than
//! what is held here and the sender may make it ([`authorise`]): it owns the
//! record's unit as the record is held here now and as the change would place
//! it, the record is of a kind that flows from that peer, and the id inside
//! the record is the one the change names. The upstream speaks for everything
//! above this instance. Anything else is kept as a conflict with both versions
//! and the reason, never written over.

use sea_orm::{ConnectionTrait, DatabaseConnection};
use sustain_proto::sync::v1 as pb;

use super::{OWNER_RECORD, Topology, store, sync_owner};
use sustain_db::WriteTxn;
use sustain_platform::auth::Caller;
use sustain_platform::error::ServiceError;
use sustain_platform::journal::{self, Change};

/// A change as applied here, with the version of the record held before.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub change: pb::Change,
    /// `None` when this instance held no copy.
    pub held: Option<i64>,
}

impl Incoming {
    /// The record's state as `T`; INTERNAL naming it when it does not read.
    pub fn read<T: serde::de::DeserializeOwned>(&self) -> Result<T, ServiceError> {
        self.read_from(&self.change.state)
    }

    /// `text`, the record's state as the replica unwrapped it, as `T`.
    pub fn read_from<T: serde::de::DeserializeOwned>(&self, text: &str) -> Result<T, ServiceError> {
        serde_json::from_str(text).map_err(|e| {
            ServiceError::Internal(format!(
                "{} {} version {} does not read: {}",
                self.change.record_type,
                self.change.record_id,
                self.change.version,
                unreadable(&e)
            ))
        })
    }

    /// A change is let in by the record and unit it names; the record inside
    /// must be that record and lie there too, or a peer could write another
    /// record, or into ground it does not own, by naming its own. `id` and
    /// `unit`: what the record's state says.
    pub fn require_placed(&self, id: &str, unit: &str) -> Result<(), ServiceError> {
        if id != self.change.record_id {
            return Err(ServiceError::FailedPrecondition {
                reason: "RECORD_ID_MISMATCH",
                message: format!(
                    "{} {} carries the record {id}",
                    self.change.record_type, self.change.record_id
                ),
            });
        }
        if unit != self.change.owner_unit {
            return Err(ServiceError::FailedPrecondition {
                reason: "UNIT_MISMATCH",
                message: format!(
                    "{} {} names unit {} but lies in {unit}",
                    self.change.record_type, self.change.record_id, self.change.owner_unit
                ),
            });
        }
        Ok(())
    }

    /// [`Incoming::require_placed`] for a record filed by an address (a
    /// household, a review): the province and district must hold its
    /// commune, and the current commune must carry that commune on (or be
    /// empty: a split commune's village not assigned yet). Else a peer could
    /// file its own commune's household under another district's figures.
    pub fn require_filed(
        &self,
        id: &str,
        at: &sustain_domain::admin::Location,
    ) -> Result<(), ServiceError> {
        self.require_placed(id, &at.commune_code)?;
        let catalog = sustain_domain::admin::catalog();
        let above = catalog.ancestors_or_self(&at.commune_code);
        let carried_on = at.current_commune_code.is_empty()
            || at.current_commune_code == at.commune_code
            || catalog
                .successors_at(&at.commune_code, chrono::Utc::now().date_naive())
                .iter()
                .any(|u| u.code == at.current_commune_code);
        let misfiled = [
            ("province_code", Some(&at.province_code)),
            ("district_code", at.district_code.as_ref()),
        ]
        .into_iter()
        .find_map(|(column, code)| {
            code.filter(|c| !above.contains(*c))
                .map(|c| format!("{column} {c}"))
        })
        .or_else(|| {
            (!carried_on).then(|| format!("current_commune_code {}", at.current_commune_code))
        });
        match misfiled {
            None => Ok(()),
            Some(filed) => Err(ServiceError::FailedPrecondition {
                reason: "PLACEMENT_MISMATCH",
                message: format!(
                    "{} {} of commune {} is filed under {filed}, which does not hold it",
                    self.change.record_type, self.change.record_id, at.commune_code
                ),
            }),
        }
    }

    /// [`Incoming::require_placed`] for a record placed at a unit with the
    /// units above it: each placement column must name the unit or one
    /// above it, so a peer cannot file its own unit's record under another
    /// unit's figures.
    pub fn require_placement(
        &self,
        id: &str,
        placement: &sustain_platform::placement::Placement,
    ) -> Result<(), ServiceError> {
        self.require_placed(id, &placement.unit_code)?;
        let above = sustain_domain::admin::catalog().ancestors_or_self(&placement.unit_code);
        let columns = [
            ("province_code", Some(&placement.province_code)),
            ("district_code", placement.district_code.as_ref()),
            ("commune_code", placement.commune_code.as_ref()),
            (
                "current_commune_code",
                placement.current_commune_code.as_ref(),
            ),
        ];
        for (column, code) in columns {
            // Empty: a split commune's household whose village is not assigned yet.
            if let Some(code) = code.filter(|c| !c.is_empty())
                && !above.contains(code)
            {
                return Err(ServiceError::FailedPrecondition {
                    reason: "PLACEMENT_MISMATCH",
                    message: format!(
                        "{} {} of unit {} is filed under {column} {code}, which does not hold it",
                        self.change.record_type, self.change.record_id, placement.unit_code
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Why a state does not read, without the value that did not: serde's
/// message quotes it, and a state is personal data (a name in a date's
/// place), while the reason goes to the log and into the kept conflict.
pub fn unreadable(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "cannot be read",
        serde_json::error::Category::Syntax => "is not JSON",
        serde_json::error::Category::Data => "has a field of the wrong type or value, or lacks one",
        serde_json::error::Category::Eof => "ends too soon",
    };
    format!("{what} (line {}, column {})", e.line(), e.column())
}

/// What a service does with its records arriving from a peer.
#[tonic::async_trait]
pub trait Replica: Send + Sync + 'static {
    /// Writes the changes, in feed order, each newer than the copy held; fails
    /// on a state it cannot read (the batch is then retried change by change).
    async fn write(&self, txn: &WriteTxn, changes: &[Incoming]) -> Result<(), ServiceError>;

    /// Whether this service takes anything from the upstream (the ledger
    /// does not: a district's chain flows up, the province's stays there).
    fn pulls_upstream(&self) -> bool {
        true
    }

    /// A record's state as it crosses to a peer: what this instance sealed
    /// with its own keys opened, since the peer keeps it under its own (the
    /// link is mutual TLS outside loopback). Default: as stored.
    fn open_for_peer(&self, change: &pb::Change) -> Result<String, ServiceError> {
        Ok(change.state.clone())
    }

    /// A peer's state as it is kept here: sealed with this instance's keys,
    /// the inverse of [`Replica::open_for_peer`]. Default: as it came.
    fn seal_from_peer(&self, change: &pb::Change) -> Result<String, ServiceError> {
        Ok(change.state.clone())
    }

    /// Record types that only the upstream may send (the poverty standards,
    /// the province's catalogue): a peer below that sends one is refused
    /// whatever unit it names.
    fn downward_only(&self) -> &'static [&'static str] {
        &[]
    }

    /// Checks what is held of `peer`'s data against the peer itself, after
    /// each batch applied from it: `Some(alarm)` when they disagree.
    async fn check_peer(
        &self,
        _db: &DatabaseConnection,
        _peer: &str,
        _channel: tonic::transport::Channel,
        _bearer: sustain_platform::auth::BearerToken,
    ) -> Result<Option<String>, ServiceError> {
        Ok(None)
    }
}

/// What one applied batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub applied: usize,
    /// Of them, handovers.
    pub owners: usize,
    pub skipped: usize,
    pub conflicts: usize,
}

/// The peer a batch came from.
#[derive(Debug, Clone)]
pub struct Peer {
    pub name: String,
    /// The upstream speaks for every unit it sends down.
    pub is_upstream: bool,
}

/// Why `peer` may not make `change`, or `None` when it may. `held_unit`:
/// where the copy held here lies, if one is held. The same rule lets a change
/// in from a feed and lets an operator take it from a kept conflict, so
/// `TAKE_INCOMING` can never force what the sender had no right to send.
pub fn authorise(
    topology: &Topology,
    replica: &dyn Replica,
    peer: &Peer,
    change: &pb::Change,
    held_unit: Option<&str>,
) -> Option<String> {
    if peer.is_upstream {
        return None;
    }
    if change.record_type == OWNER_RECORD
        || replica
            .downward_only()
            .contains(&change.record_type.as_str())
    {
        return Some(format!(
            "{} records flow only down from {:?}; {:?} may not send them",
            change.record_type,
            if topology.upstream.is_empty() {
                &topology.me
            } else {
                &topology.upstream
            },
            peer.name
        ));
    }
    let owner = topology.owner_of(&change.owner_unit);
    if owner != peer.name {
        return Some(format!(
            "unit {} belongs to {owner:?} here, not to {:?} which sent it",
            change.owner_unit, peer.name
        ));
    }
    if let Some(held) = held_unit {
        let owner = topology.owner_of(held);
        if owner != peer.name {
            return Some(format!(
                "{} {} is held here in unit {held}, which belongs to {owner:?}, not to {:?} which sent it",
                change.record_type, change.record_id, peer.name
            ));
        }
    }
    None
}

/// The last sequence of `peer`'s feed applied here (0 before the first).
pub async fn cursor(conn: &impl ConnectionTrait, peer: &str) -> Result<i64, ServiceError> {
    store::cursor(conn, peer).await
}

/// Applies one batch pulled after `after`; ABORTED when the stored cursor is
/// no longer `after` (another puller applied it: start again from the cursor).
/// A batch that fails as a whole is applied change by change, and a change
/// that fails alone is kept as a conflict, so one bad record never stops a peer.
pub async fn apply_batch(
    db: &DatabaseConnection,
    replica: &dyn Replica,
    peer: &Peer,
    caller: &Caller,
    after: i64,
    batch: &pb::PullResponse,
) -> Result<Applied, ServiceError> {
    // Sealed with this instance's keys before anything is kept, a conflict
    // included: no personal data rests here as it crossed.
    let mut unsealable = Unsealable::new();
    let batch = &pb::PullResponse {
        changes: batch
            .changes
            .iter()
            .map(|c| kept_here(replica, c, &mut unsealable))
            .collect(),
        ..*batch
    };
    let whole = Part {
        changes: &batch.changes,
        last_seq: batch.last_seq,
        unsealable: &unsealable,
    };
    match apply_in_one(db, replica, peer, caller, after, whole).await {
        Ok(done) => Ok(done),
        Err(e @ (ServiceError::Aborted { .. } | ServiceError::Unavailable(_))) => Err(e),
        Err(e) if batch.changes.len() <= 1 => keep_failed(db, peer, after, batch, &e).await,
        Err(e) => {
            tracing::warn!(peer = %peer.name, error = %e, "batch failed as a whole; applying change by change");
            let mut total = Applied::default();
            let mut at = after;
            for (i, change) in batch.changes.iter().enumerate() {
                let last = if i + 1 == batch.changes.len() {
                    batch.last_seq
                } else {
                    change.seq
                };
                let one = std::slice::from_ref(change);
                let part = Part {
                    changes: one,
                    last_seq: last,
                    unsealable: &unsealable,
                };
                let done = match apply_in_one(db, replica, peer, caller, at, part).await {
                    Ok(done) => done,
                    Err(e @ (ServiceError::Aborted { .. } | ServiceError::Unavailable(_))) => {
                        return Err(e);
                    }
                    Err(e) => {
                        let single = pb::PullResponse {
                            changes: one.to_vec(),
                            last_seq: last,
                            head_seq: batch.head_seq,
                        };
                        keep_failed(db, peer, at, &single, &e).await?
                    }
                };
                total.applied += done.applied;
                total.owners += done.owners;
                total.skipped += done.skipped;
                total.conflicts += done.conflicts;
                at = last;
            }
            Ok(total)
        }
    }
}

/// Changes applied in one transaction, up to `last_seq` of the feed.
struct Part<'a> {
    changes: &'a [pb::Change],
    last_seq: i64,
    unsealable: &'a Unsealable,
}

/// Why the changes of a batch that cannot be sealed here could not, by `seq`.
type Unsealable = std::collections::HashMap<i64, String>;

/// `change` as this instance keeps it. One whose state cannot be sealed here
/// keeps no state at all, and `unsealable` the reason, for the conflict it
/// becomes.
fn kept_here(
    replica: &dyn Replica,
    change: &pb::Change,
    unsealable: &mut Unsealable,
) -> pb::Change {
    let state = replica.seal_from_peer(change).unwrap_or_else(|e| {
        tracing::warn!(record_type = %change.record_type, record_id = %change.record_id, error = %e, "a change from a peer cannot be sealed here");
        unsealable.insert(change.seq, e.to_string());
        String::new()
    });
    pb::Change {
        state,
        ..change.clone()
    }
}

async fn apply_in_one(
    db: &DatabaseConnection,
    replica: &dyn Replica,
    peer: &Peer,
    caller: &Caller,
    after: i64,
    part: Part<'_>,
) -> Result<Applied, ServiceError> {
    let Part {
        changes,
        last_seq,
        unsealable,
    } = part;
    let txn = WriteTxn::begin(db).await?;
    advance(&txn, &peer.name, after, last_seq).await?;
    let topology = Topology::load(&txn).await?;
    let ids: Vec<String> = changes.iter().map(|c| c.record_id.clone()).collect();
    let mut held = store::held_versions(&txn, &ids).await?;
    let mut done = Applied::default();
    let mut owners = vec![];
    let mut records = vec![];
    let mut conflicts = vec![];
    for c in changes {
        let key = (c.record_type.clone(), c.record_id.clone());
        let local = held.get(&key).cloned();
        let held_unit = local.as_ref().map(|h| h.owner_unit.as_str());
        if let Some(refused) = authorise(&topology, replica, peer, c, held_unit) {
            conflicts.push((c.clone(), local, refused));
            continue;
        }
        if let Some(problem) = unsealable.get(&c.seq) {
            conflicts.push((
                c.clone(),
                local,
                format!("could not be sealed here: {problem}"),
            ));
            continue;
        }
        match &local {
            Some(h) if c.version < h.version => {
                done.skipped += 1;
                continue;
            }
            Some(h) if c.version == h.version => {
                let v = h.version;
                // Sealed states differ by their nonces: compared opened.
                let opened = |state: &str| {
                    replica
                        .open_for_peer(&pb::Change {
                            state: state.to_owned(),
                            ..c.clone()
                        })
                        .ok()
                };
                if h.state != c.state
                    && opened(&h.state).is_none_or(|held| Some(held) != opened(&c.state))
                {
                    conflicts.push((
                        c.clone(),
                        local.clone(),
                        format!("version {v} is held here with different content"),
                    ));
                } else {
                    done.skipped += 1;
                }
                continue;
            }
            _ => {}
        }
        held.insert(
            key,
            store::Held {
                version: c.version,
                state: c.state.clone(),
                owner_unit: c.owner_unit.clone(),
            },
        );
        let incoming = Incoming {
            change: c.clone(),
            held: local.map(|h| h.version),
        };
        if c.record_type == OWNER_RECORD {
            owners.push(incoming);
        } else {
            records.push(incoming);
        }
    }
    for o in &owners {
        write_owner(&txn, &o.change).await?;
    }
    if !records.is_empty() {
        replica.write(&txn, &records).await?;
    }
    done.applied = owners.len() + records.len();
    done.owners = owners.len();
    done.conflicts = conflicts.len();
    let journaled: Vec<Change> = owners
        .iter()
        .chain(records.iter())
        .map(|i| journal_change(&i.change))
        .collect();
    journal::record_applied(&txn, caller, &peer.name, journaled).await?;
    for (c, local, reason) in conflicts {
        tracing::warn!(peer = %peer.name, record_type = %c.record_type, record_id = %c.record_id, %reason, "sync conflict kept");
        store_conflict(&txn, &peer.name, &c, local, &reason).await?;
    }
    txn.commit().await?;
    Ok(done)
}

/// Keeps a change that failed alone as a conflict and moves past it.
async fn keep_failed(
    db: &DatabaseConnection,
    peer: &Peer,
    after: i64,
    batch: &pb::PullResponse,
    error: &ServiceError,
) -> Result<Applied, ServiceError> {
    let txn = sustain_db::begin_write(db).await?;
    advance(&txn, &peer.name, after, batch.last_seq).await?;
    let ids: Vec<String> = batch.changes.iter().map(|c| c.record_id.clone()).collect();
    let mut held = store::held_versions(&txn, &ids).await?;
    for c in &batch.changes {
        let local = held.remove(&(c.record_type.clone(), c.record_id.clone()));
        tracing::warn!(peer = %peer.name, record_type = %c.record_type, record_id = %c.record_id, %error, "change could not be applied; kept as a conflict");
        store_conflict(
            &txn,
            &peer.name,
            c,
            local,
            &format!("could not be applied: {error}"),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(Applied {
        conflicts: batch.changes.len(),
        ..Applied::default()
    })
}

/// Moves the peer's cursor from `after` to `to`; ABORTED when it is elsewhere.
async fn advance(
    txn: &impl ConnectionTrait,
    peer: &str,
    after: i64,
    to: i64,
) -> Result<(), ServiceError> {
    let moved = store::advance_cursor(txn, peer, after, to).await?;
    if moved {
        Ok(())
    } else {
        Err(ServiceError::Aborted {
            reason: "CURSOR_MOVED",
            message: format!(
                "the cursor of peer {peer} is no longer at {after}; pull again from it"
            ),
        })
    }
}

pub(crate) fn journal_change(c: &pb::Change) -> Change {
    Change {
        record_type: c.record_type.clone(),
        record_id: c.record_id.clone(),
        owner_unit: c.owner_unit.clone(),
        version: c.version,
        action: c.action.clone(),
        state: c.state.clone(),
    }
}

/// Writes a handover that came down from the upstream.
async fn write_owner(txn: &impl ConnectionTrait, c: &pb::Change) -> Result<(), ServiceError> {
    let row: sync_owner::Model = serde_json::from_str(&c.state).map_err(|e| {
        ServiceError::Internal(format!(
            "owner record {} does not read: {}",
            c.record_id,
            unreadable(&e)
        ))
    })?;
    store::replace_owner(txn, row).await
}

async fn store_conflict(
    txn: &impl ConnectionTrait,
    peer: &str,
    c: &pb::Change,
    local: Option<store::Held>,
    reason: &str,
) -> Result<(), ServiceError> {
    store::keep_conflict(txn, peer, &journal_change(c), local, reason).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Person {
        full_name: String,
        position: i32,
    }

    #[test]
    fn a_state_that_does_not_read_is_named_without_its_content() {
        let incoming = Incoming {
            change: pb::Change {
                record_type: "household".into(),
                record_id: "h-1".into(),
                version: 3,
                state: r#"{"full_name": "Nguyễn Văn Lộc", "position": "Hoàng Thị Mai"}"#.into(),
                ..Default::default()
            },
            held: None,
        };
        let message = incoming
            .read::<Person>()
            .expect_err("a name is no number")
            .to_string();
        assert!(message.contains("household h-1 version 3"), "{message}");
        assert!(message.contains("line 1"), "{message}");
        for personal in ["Hoàng", "Mai", "Nguyễn", "Lộc"] {
            assert!(!message.contains(personal), "{message}");
        }
        let cut = incoming.read_from::<Person>(r#"{"full_name": "Nguyễn"#);
        let message = cut.expect_err("cut short").to_string();
        assert!(
            message.contains("ends too soon") && !message.contains("Nguyễn"),
            "{message}"
        );
    }
}
