//! Resealing the states kept in sync conflicts when the field key turns:
//! the platform's reseal walks this table beside the services' own.

use sea_orm::{DatabaseConnection, Set};
use sustain_db::WriteTxn;
use sustain_platform::error::ServiceError;
use sustain_platform::reseal::{Step, Table};

use crate::apply::Replica;
use crate::sync_conflict;

/// The states kept in sync conflicts, which a service's replica seals as it
/// seals a peer's state ([`Replica::seal_from_peer`]): opened and sealed
/// again. Walked by id; the progress key is the last id done.
pub struct Conflicts(pub std::sync::Arc<dyn Replica>);

impl std::fmt::Debug for Conflicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conflicts")
    }
}

impl Conflicts {
    /// `state` of the conflict's record sealed again, or `None` when the
    /// replica keeps that record as it came (nothing sealed in it).
    fn again(
        &self,
        row: &sync_conflict::Model,
        state: &str,
        version: i64,
    ) -> Result<Option<String>, ServiceError> {
        if state.is_empty() {
            return Ok(None);
        }
        let change = |state: String| sustain_proto::sync::v1::Change {
            record_type: row.record_type.clone(),
            record_id: row.record_id.clone(),
            owner_unit: row.owner_unit.clone(),
            version,
            state,
            ..Default::default()
        };
        let opened = self.0.open_for_peer(&change(state.to_owned()))?;
        if opened == state {
            return Ok(None);
        }
        self.0.seal_from_peer(&change(opened)).map(Some)
    }
}

#[tonic::async_trait]
impl Table for Conflicts {
    fn name(&self) -> &'static str {
        "sync_conflict"
    }

    async fn count(&self, db: &DatabaseConnection) -> Result<i64, ServiceError> {
        super::store::count_conflicts(db).await
    }

    async fn step(&self, txn: &WriteTxn, after: &str, limit: u64) -> Result<Step, ServiceError> {
        let after: i64 = if after.is_empty() {
            0
        } else {
            after.parse().map_err(|_| {
                ServiceError::Internal(format!("reseal progress of conflicts is {after:?}"))
            })?
        };
        let rows = super::store::conflicts_after(txn, after, limit).await?;
        let mut changed = 0;
        for row in &rows {
            let local = self.again(row, &row.local_state, row.local_version)?;
            let incoming = self.again(row, &row.incoming_state, row.incoming_version)?;
            if local.is_none() && incoming.is_none() {
                continue;
            }
            let mut active = sync_conflict::ActiveModel::from(row.clone());
            if let Some(state) = local {
                active.local_state = Set(state);
            }
            if let Some(state) = incoming {
                active.incoming_state = Set(state);
            }
            super::store::save_conflict(txn, active).await?;
            changed += 1;
        }
        Ok(Step {
            last_key: rows.last().map(|r| r.id.to_string()),
            seen: rows.len() as i64,
            changed,
        })
    }
}
