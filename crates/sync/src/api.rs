//! `sustain.sync.v1.SyncService`, served by every service that keeps records.

use std::sync::Arc;

use sea_orm::{DatabaseConnection, Set};
use sustain_domain::admin;
use sustain_proto::sync::v1 as pb;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::apply::{Incoming, Replica};
use super::feed::{self, FeedLimits};
use super::puller::Board;
use super::{OWNER_RECORD, Topology, sync_conflict, sync_owner};
use sustain_platform::api::timestamp;
use sustain_platform::auth::{Caller, Role};
use sustain_platform::error::ServiceError;
use sustain_platform::journal::{self, Change};

/// Who may ask about and steer this instance's sync.
const OPERATE: &[Role] = &[Role::Admin];
/// Who may read who owns what.
const READ_OWNERS: &[Role] = &[Role::Admin, Role::Viewer, Role::Sync];

pub struct SyncApi {
    pub db: DatabaseConnection,
    pub board: Arc<Board>,
    pub limits: FeedLimits,
    /// Names of the configured peers: the instances units can be handed to.
    pub peers: Vec<String>,
    pub replica: Arc<dyn Replica>,
    /// Seals stored answers of retried handovers.
    pub cipher: sustain_platform::crypto::FieldCipher,
}

impl std::fmt::Debug for SyncApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncApi")
            .field("peers", &self.peers)
            .finish()
    }
}

impl SyncApi {
    /// PERMISSION_DENIED unless the caller's scope shares ground with what this
    /// instance owns (anything, when it runs alone).
    fn require_instance(caller: &Caller, topology: &Topology) -> Result<(), ServiceError> {
        let own = topology.own_units();
        if caller.scope.is_nationwide()
            || own.is_empty()
            || own.iter().any(|u| caller.scope.overlaps_unit(u))
        {
            Ok(())
        } else {
            Err(ServiceError::PermissionDenied {
                reason: "OUT_OF_SCOPE",
                message: format!(
                    "instance {} ({}) is outside the caller's administrative scope",
                    topology.me,
                    own.join(", ")
                ),
            })
        }
    }
}

/// Whether `caller` may read conflict `c`: it holds both versions, so the
/// caller's scope must hold the unit the incoming one names and the unit the
/// copy held here lies in.
async fn readable(
    conn: &impl sea_orm::ConnectionTrait,
    caller: &Caller,
    c: &sync_conflict::Model,
) -> Result<bool, ServiceError> {
    if !caller.scope.contains_unit(&c.owner_unit) {
        return Ok(false);
    }
    if c.local_version == 0 || caller.scope.is_nationwide() {
        return Ok(true);
    }
    let held = super::store::held_version(conn, &c.record_type, &c.record_id).await?;
    Ok(held.is_none_or(|(_, unit)| caller.scope.contains_unit(&unit)))
}

fn owner_to_proto(o: &sync_owner::Model) -> pb::Owner {
    pb::Owner {
        unit_code: o.unit_code.clone(),
        instance: o.instance.clone(),
        since: Some(timestamp(o.since)),
        set_by: o.set_by.clone(),
    }
}

/// A conflict as an admin reads it: both versions opened as they would cross
/// to a peer (they are kept sealed with this instance's keys); a state that
/// does not open is shown as kept.
fn conflict_to_proto(replica: &dyn Replica, c: &sync_conflict::Model) -> pb::Conflict {
    let opened = |state: &str, version: i64| {
        if state.is_empty() {
            return String::new();
        }
        replica
            .open_for_peer(&pb::Change {
                record_type: c.record_type.clone(),
                record_id: c.record_id.clone(),
                owner_unit: c.owner_unit.clone(),
                version,
                state: state.to_owned(),
                ..Default::default()
            })
            .unwrap_or_else(|_| state.to_owned())
    };
    pb::Conflict {
        id: c.id,
        peer: c.peer.clone(),
        record_type: c.record_type.clone(),
        record_id: c.record_id.clone(),
        owner_unit: c.owner_unit.clone(),
        local_version: c.local_version,
        local_state: opened(&c.local_state, c.local_version),
        incoming_version: c.incoming_version,
        incoming_state: opened(&c.incoming_state, c.incoming_version),
        reason: c.reason.clone(),
        recorded_at: Some(timestamp(c.recorded_at)),
        resolution: c.resolution.clone(),
        resolved_by: c.resolved_by.clone(),
    }
}

#[tonic::async_trait]
impl pb::sync_service_server::SyncService for SyncApi {
    type PullStream = ReceiverStream<Result<pb::PullResponse, Status>>;

    async fn pull(
        &self,
        request: Request<pb::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let caller = Caller::from_request(&request)?;
        let stream = feed::pull(
            &self.db,
            std::sync::Arc::clone(&self.replica),
            &caller,
            request.into_inner(),
            &self.limits,
        )
        .await?;
        Ok(Response::new(stream))
    }

    async fn get_sync_status(
        &self,
        request: Request<pb::GetSyncStatusRequest>,
    ) -> Result<Response<pb::GetSyncStatusResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read the sync status", OPERATE)?;
        let topology = Topology::load(&self.db).await?;
        topology.require_whole(&caller, "the sync status")?;
        let open = super::store::open_conflicts(&self.db).await?;
        let head = journal::head(&self.db).await?;
        let peers = self
            .board
            .snapshot()
            .into_iter()
            .map(|p| pb::PeerStatus {
                lag_records: (p.peer_head - p.cursor).max(0),
                lag_seconds: match (p.caught_up, p.caught_up_at) {
                    (true, _) => 0.0,
                    (false, Some(at)) => at.elapsed().as_secs_f64(),
                    (false, None) => -1.0,
                },
                direction: if p.is_upstream {
                    "upstream"
                } else {
                    "downstream"
                }
                .into(),
                peer: p.peer,
                url: p.url,
                cursor: p.cursor,
                peer_head: p.peer_head,
                applied: p.applied,
                last_error: p.last_error,
                last_success_at: p.last_success.map(timestamp),
                connected: p.connected,
                alarm: p.alarm,
            })
            .collect();
        Ok(Response::new(pb::GetSyncStatusResponse {
            instance: topology.me.clone(),
            scope: topology.own_units(),
            peers,
            open_conflicts: open,
            head_seq: head,
        }))
    }

    async fn sync_now(
        &self,
        request: Request<pb::SyncNowRequest>,
    ) -> Result<Response<pb::SyncNowResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("start a sync", OPERATE)?;
        let topology = Topology::load(&self.db).await?;
        topology.require_whole(&caller, "the sync status")?;
        self.board.wake.notify_waiters();
        Ok(Response::new(pb::SyncNowResponse {
            peers_woken: self.board.snapshot().len() as i32,
        }))
    }

    async fn list_owners(
        &self,
        request: Request<pb::ListOwnersRequest>,
    ) -> Result<Response<pb::ListOwnersResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read who owns which units", READ_OWNERS)?;
        let topology = Topology::load(&self.db).await?;
        Self::require_instance(&caller, &topology)?;
        let owners = super::store::owners(&self.db).await?;
        Ok(Response::new(pb::ListOwnersResponse {
            default_owner: if topology.upstream.is_empty() {
                topology.me.clone()
            } else {
                topology.upstream.clone()
            },
            instance: topology.me,
            owners: owners.iter().map(owner_to_proto).collect(),
        }))
    }

    async fn hand_over(
        &self,
        request: Request<pb::HandOverRequest>,
    ) -> Result<Response<pb::HandOverResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("hand units over", OPERATE)?;
        let request = request.into_inner();
        let key = journal::IdempotencyKey::new(&caller, "HandOver", &request.request_id, &request)?;
        let handover = Handover::checked(&request)?;
        for code in &handover.units {
            if !caller.scope.contains_unit(code) {
                return Err(ServiceError::PermissionDenied {
                    reason: "OUT_OF_SCOPE",
                    message: format!("unit {code} is not wholly inside the caller's scope"),
                }
                .into());
            }
        }
        let peers = self.peers.clone();
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            let rows = handover
                .apply(&txn, &caller, &peers, &request.request_id)
                .await?;
            Ok((
                pb::HandOverResponse {
                    owners: rows.iter().map(owner_to_proto).collect(),
                },
                txn,
            ))
        })
        .await?;
        // Pullers reconnect with the scopes the handover gave.
        self.board.rescope();
        Ok(Response::new(answer))
    }

    async fn list_conflicts(
        &self,
        request: Request<pb::ListConflictsRequest>,
    ) -> Result<Response<pb::ListConflictsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read sync conflicts", OPERATE)?;
        let request = request.into_inner();
        let rows = super::store::conflicts(&self.db, request.include_resolved).await?;
        let mut conflicts = vec![];
        for c in &rows {
            if readable(&self.db, &caller, c).await? {
                conflicts.push(conflict_to_proto(self.replica.as_ref(), c));
            }
        }
        Ok(Response::new(pb::ListConflictsResponse { conflicts }))
    }

    async fn resolve_conflict(
        &self,
        request: Request<pb::ResolveConflictRequest>,
    ) -> Result<Response<pb::ResolveConflictResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("resolve sync conflicts", OPERATE)?;
        let (id, resolution) = checked_resolution(request.get_ref())?;
        let txn = sustain_db::WriteTxn::begin(&self.db)
            .await
            .map_err(ServiceError::from)?;
        let found = self.unsettled(&txn, &caller, id).await?;
        if resolution == TAKE_INCOMING {
            self.take_incoming(&txn, &caller, &found).await?;
        }
        let mut active: sync_conflict::ActiveModel = found.into();
        active.resolution = Set(resolution.to_owned());
        active.resolved_by = Set(caller.subject.clone());
        let settled = super::store::save_conflict(&txn, active).await?;
        txn.commit().await.map_err(ServiceError::from)?;
        tracing::info!(conflict = settled.id, resolution, caller = %caller.subject, "sync conflict settled");
        Ok(Response::new(pb::ResolveConflictResponse {
            conflict: Some(conflict_to_proto(self.replica.as_ref(), &settled)),
        }))
    }
}

/// The resolution that takes the incoming version.
const TAKE_INCOMING: &str = "take_incoming";

/// The conflict and resolution asked for, every bad field named.
fn checked_resolution(
    request: &pb::ResolveConflictRequest,
) -> Result<(i64, &'static str), ServiceError> {
    let mut v = sustain_domain::Violations::new();
    if request.id <= 0 {
        v.add("id", "must be a conflict id");
    }
    let resolution = match pb::Resolution::try_from(request.resolution) {
        Ok(pb::Resolution::KeepLocal) => "keep_local",
        Ok(pb::Resolution::TakeIncoming) => TAKE_INCOMING,
        _ => {
            v.add(
                "resolution",
                "must be RESOLUTION_KEEP_LOCAL or RESOLUTION_TAKE_INCOMING",
            );
            ""
        }
    };
    sustain_platform::error::check(v)?;
    Ok((request.id, resolution))
}

impl SyncApi {
    /// Conflict `id`, when the caller may read it and it is not settled yet.
    async fn unsettled(
        &self,
        txn: &sustain_db::WriteTxn,
        caller: &Caller,
        id: i64,
    ) -> Result<sync_conflict::Model, ServiceError> {
        let not_found = || ServiceError::NotFound {
            resource: "conflict",
            id: id.to_string(),
        };
        let found = super::store::conflict(txn, id)
            .await?
            .ok_or_else(not_found)?;
        if !readable(txn, caller, &found).await? {
            return Err(not_found());
        }
        if !found.resolution.is_empty() {
            return Err(ServiceError::FailedPrecondition {
                reason: "RESOLVED",
                message: format!(
                    "conflict {} was already settled ({})",
                    found.id, found.resolution
                ),
            });
        }
        Ok(found)
    }

    /// Writes the incoming version of `found`, when it is newer than the copy
    /// held now and the sender had the right to send it as ownership stands
    /// now: an operator's choice cannot let in what the peer had no right to
    /// send.
    async fn take_incoming(
        &self,
        txn: &sustain_db::WriteTxn,
        caller: &Caller,
        found: &sync_conflict::Model,
    ) -> Result<(), ServiceError> {
        // Against the copy held now: it may have moved on since the conflict
        // was kept (the owner's own later version arriving).
        let held_now =
            super::store::held_version(txn, &found.record_type, &found.record_id).await?;
        let held = held_now.as_ref().map(|(v, _)| *v);
        if found.incoming_version <= held.unwrap_or(0) {
            return Err(ServiceError::FailedPrecondition {
                reason: "NOT_NEWER",
                message: format!(
                    "the incoming version {} is not newer than the one held now ({}); enter the change again at the owner",
                    found.incoming_version,
                    held.unwrap_or(0)
                ),
            });
        }
        let change = pb::Change {
            seq: 0,
            record_type: found.record_type.clone(),
            record_id: found.record_id.clone(),
            owner_unit: found.owner_unit.clone(),
            version: found.incoming_version,
            action: found.incoming_action.clone(),
            state: found.incoming_state.clone(),
            recorded_at: None,
        };
        let topology = Topology::load(txn).await?;
        let sender = super::apply::Peer {
            is_upstream: !topology.upstream.is_empty() && found.peer == topology.upstream,
            name: found.peer.clone(),
        };
        let held_unit = held_now.as_ref().map(|(_, u)| u.as_str());
        if let Some(refused) = super::apply::authorise(
            &topology,
            self.replica.as_ref(),
            &sender,
            &change,
            held_unit,
        ) {
            return Err(ServiceError::FailedPrecondition {
                reason: "NOT_THE_SENDERS",
                message: format!(
                    "conflict {} cannot be taken: {refused}; keep the local version, or enter the change at the owner",
                    found.id
                ),
            });
        }
        let incoming = Incoming {
            held,
            change: change.clone(),
        };
        self.replica.write(txn, &[incoming]).await?;
        let reissued = vec![super::apply::journal_change(&change)];
        journal::record_reissued(txn, caller, "", reissued).await?;
        Ok(())
    }
}

/// A handover as asked for: units, the instance they go to, and why.
#[derive(Debug)]
struct Handover {
    units: Vec<String>,
    to: String,
    reason: String,
}

impl Handover {
    /// The handover `request` asks for, every bad field named.
    fn checked(request: &pb::HandOverRequest) -> Result<Handover, ServiceError> {
        let mut v = sustain_domain::Violations::new();
        let mut units: Vec<String> = vec![];
        if request.unit_codes.is_empty() {
            v.add("unit_codes", "must name at least one unit");
        }
        for (i, raw) in request.unit_codes.iter().enumerate() {
            let code = raw.trim();
            if !admin::catalog().is_known(code) {
                v.add(format!("unit_codes[{i}]"), "is not a known unit code");
            } else if units.iter().any(|u| u == code) {
                v.add(format!("unit_codes[{i}]"), "is named twice");
            } else {
                units.push(code.to_owned());
            }
        }
        let to = request.to_instance.trim().to_owned();
        if to.is_empty() {
            v.add("to_instance", "is required");
        }
        if request.reason.trim().is_empty() {
            v.add("reason", "is required: the decision that moves the units");
        }
        sustain_platform::error::check(v)?;
        Ok(Handover {
            units,
            to,
            reason: request.reason.trim().to_owned(),
        })
    }

    /// Hands the units over inside `txn`, from the top instance only, to
    /// itself or one of its `peers`: the owner rows change, the handover is
    /// journalled, and every record of the units goes out again as it stands,
    /// for the new owner. Returns the new owner rows.
    async fn apply(
        self,
        txn: &impl sustain_db::Bulk,
        caller: &Caller,
        peers: &[String],
        request_id: &str,
    ) -> Result<Vec<sync_owner::Model>, ServiceError> {
        let Handover { units, to, reason } = self;
        let topology = Topology::load(txn).await?;
        let home = handing_from(&topology, &to, peers)?;
        let now = chrono::Utc::now();
        let mut rows = vec![];
        let mut changes = vec![];
        for unit in &units {
            let previous = super::store::owner(txn, unit).await?;
            let row = sync_owner::Model {
                unit_code: unit.clone(),
                instance: to.clone(),
                since: now,
                set_by: caller.subject.clone(),
                version: previous.as_ref().map_or(1, |p| p.version + 1),
            };
            super::store::replace_owner(txn, row.clone()).await?;
            changes.push(Change {
                record_type: OWNER_RECORD.into(),
                record_id: unit.clone(),
                owner_unit: home.clone(),
                version: row.version,
                action: "handover".into(),
                state: journal::state_json(&row),
            });
            rows.push(row);
        }
        journal::record_many(txn, caller, request_id, changes).await?;
        let reissued = super::store::latest_under(txn, &units).await?;
        tracing::info!(units = ?units, to = %to, %reason, records = reissued.len(), caller = %caller.subject, "units handed over");
        journal::record_reissued(txn, caller, request_id, reissued).await?;
        Ok(rows)
    }
}

/// The unit this (top) instance journals a handover to `to` under; refused
/// when it runs alone, is not the top, or `to` is neither it nor a peer.
fn handing_from(topology: &Topology, to: &str, peers: &[String]) -> Result<String, ServiceError> {
    if !topology.is_replicated() {
        return Err(ServiceError::FailedPrecondition {
            reason: "SYNC_OFF",
            message: "this instance runs alone; there is no one to hand units to".into(),
        });
    }
    if !topology.upstream.is_empty() {
        return Err(ServiceError::FailedPrecondition {
            reason: "NOT_TOP",
            message: format!(
                "only the top instance hands units over; ask {}",
                topology.upstream
            ),
        });
    }
    if to != topology.me && !peers.iter().any(|p| p == to) {
        return Err(ServiceError::invalid(
            "to_instance",
            format!(
                "is not this instance or one of its peers ({})",
                peers.join(", ")
            ),
        ));
    }
    topology
        .own_units()
        .into_iter()
        .next()
        .ok_or_else(|| ServiceError::FailedPrecondition {
            reason: "NO_SCOPE",
            message: "this instance owns no units".into(),
        })
}
