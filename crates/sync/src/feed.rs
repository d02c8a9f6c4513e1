//! The sending side: a peer's pull is answered from the outbox, the changes
//! this instance holds that the caller may see and did not send itself, in
//! sequence order, as a bounded server stream.

use std::collections::HashMap;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use sustain_proto::sync::v1 as pb;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::Topology;
use sustain_platform::auth::{Caller, Role};
use sustain_platform::error::ServiceError;
use sustain_platform::journal::{self, outbox};

/// Batches larger than this are cut to it, whatever the puller asks.
pub const MAX_BATCH: u32 = 5000;

/// How a feed answers.
#[derive(Debug, Clone)]
pub struct FeedLimits {
    /// Changes per batch when the puller asks for none.
    pub default_batch: u32,
    /// How often a followed feed looks for new commits.
    pub poll: Duration,
}

/// Checks a pull and starts streaming its batches.
pub async fn pull(
    db: &DatabaseConnection,
    replica: std::sync::Arc<dyn super::apply::Replica>,
    caller: &Caller,
    request: pb::PullRequest,
    limits: &FeedLimits,
) -> Result<ReceiverStream<Result<pb::PullResponse, Status>>, ServiceError> {
    caller.require("pull the change feed", &[Role::Sync])?;
    let mut v = sustain_domain::Violations::new();
    if request.after_seq < 0 {
        v.add("after_seq", "must be 0 or a sequence already received");
    }
    if request.max_batch < 0 {
        v.add("max_batch", "must be 0 (the server's default) or more");
    }
    sustain_platform::error::check(v)?;
    let topology = Topology::load(db).await?;
    if !topology.is_replicated() {
        return Err(ServiceError::FailedPrecondition {
            reason: "SYNC_OFF",
            message: "this instance runs alone (sync.instance is not set); it has no feed".into(),
        });
    }
    let own = topology.own_units();
    if !caller.scope.is_nationwide() && !own.iter().any(|u| caller.scope.overlaps_unit(u)) {
        return Err(ServiceError::PermissionDenied {
            reason: "OUT_OF_SCOPE",
            message: format!(
                "the caller's scope shares no ground with instance {} ({})",
                topology.me,
                own.join(", ")
            ),
        });
    }
    let batch = match request.max_batch {
        0 => limits.default_batch,
        n => (n as u32).min(MAX_BATCH),
    }
    .clamp(1, MAX_BATCH);
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let sender = Sender {
        db: db.clone(),
        replica,
        caller: caller.clone(),
        batch,
        follow: request.follow,
        poll: limits.poll,
        visible: HashMap::new(),
    };
    tokio::spawn(sender.run(request.after_seq, tx));
    Ok(ReceiverStream::new(rx))
}

struct Sender {
    db: DatabaseConnection,
    replica: std::sync::Arc<dyn super::apply::Replica>,
    caller: Caller,
    batch: u32,
    follow: bool,
    poll: Duration,
    /// Owner units already judged against the caller's scope.
    visible: HashMap<String, bool>,
}

type Tx = tokio::sync::mpsc::Sender<Result<pb::PullResponse, Status>>;

impl Sender {
    async fn run(mut self, mut cursor: i64, tx: Tx) {
        // The first batch goes out even when empty: it tells the puller the
        // head, so a peer with nothing to send still shows as caught up.
        let mut first = true;
        loop {
            let batch = match self.next_batch(cursor).await {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            let full = batch.full;
            let advanced = batch.response.last_seq > cursor;
            cursor = batch.response.last_seq;
            // Nothing new scanned: nothing to say.
            if (advanced || first) && tx.send(Ok(batch.response)).await.is_err() {
                return; // The puller went away.
            }
            first = false;
            if full {
                continue;
            }
            if !self.follow {
                return;
            }
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    async fn next_batch(&mut self, cursor: i64) -> Result<Batch, ServiceError> {
        // The head first: every sequence up to it is committed (they are handed out
        // under one row lock in commit order), so scanning to it misses nothing.
        let head = journal::head(&self.db).await?;
        if head <= cursor {
            return Ok(Batch {
                response: pb::PullResponse {
                    changes: vec![],
                    last_seq: cursor,
                    head_seq: head,
                },
                full: false,
            });
        }
        let mut rows = super::store::feed_page(
            &self.db,
            cursor,
            head,
            &self.caller.subject,
            u64::from(self.batch),
        )
        .await?;
        let mut full = rows.len() == self.batch as usize;
        // A handover ends its batch: the puller reconnects with the scope it
        // gives before reading what follows (the records handed to it).
        if let Some(i) = rows.iter().position(|r| {
            r.record_type == super::OWNER_RECORD && self.caller.scope.overlaps_unit(&r.owner_unit)
        }) && i + 1 < rows.len()
        {
            rows.truncate(i + 1);
            full = true;
        }
        let last_seq = if full {
            rows.last().map_or(head, |r| r.seq)
        } else {
            head
        };
        let mut changes = Vec::with_capacity(rows.len());
        for row in rows {
            let scope = &self.caller.scope;
            let visible = *self
                .visible
                .entry(row.owner_unit.clone())
                .or_insert_with(|| scope.overlaps_unit(&row.owner_unit));
            if visible {
                let mut change = to_proto(row);
                change.state = self.replica.open_for_peer(&change).map_err(|e| {
                    ServiceError::Internal(format!(
                        "{} {} cannot be opened to send: {e}",
                        change.record_type, change.record_id
                    ))
                })?;
                changes.push(change);
            }
        }
        Ok(Batch {
            response: pb::PullResponse {
                changes,
                last_seq,
                head_seq: head,
            },
            full,
        })
    }
}

struct Batch {
    response: pb::PullResponse,
    full: bool,
}

fn to_proto(row: outbox::Model) -> pb::Change {
    pb::Change {
        seq: row.seq,
        record_type: row.record_type,
        record_id: row.record_id,
        owner_unit: row.owner_unit,
        version: row.version,
        action: row.action,
        state: row.state,
        recorded_at: Some(prost_types::Timestamp {
            seconds: row.recorded_at.timestamp(),
            nanos: row.recorded_at.timestamp_subsec_nanos() as i32,
        }),
    }
}
