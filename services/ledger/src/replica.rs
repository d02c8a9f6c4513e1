//! The chains of the instances below, kept at their upstream. Every entry of
//! a district's chain arrives with the record it covers; the upstream
//! rebuilds the entry's bytes from that record and checks that the entry
//! chains on the one before, so it holds an independently verified copy.
//! After each batch it asks the district for its own hash at the last entry
//! held here: a district that rewrote its history (even consistently, so that
//! its own verification passes) no longer agrees, and the alarm is raised.
//! An alarm stays, in `ledger_replica_head`, until an operator has looked.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use sustain_db::WriteTxn;
use sustain_domain::ledger::{GENESIS, chain_hash};
use sustain_platform::auth::BearerToken;
use sustain_platform::error::ServiceError;
use sustain_proto::ledger::v1 as pb;
use sustain_proto::ledger::v1::chain_service_client::ChainServiceClient;
use sustain_sync::Topology;
use sustain_sync::apply::{Incoming, Replica};

use crate::chain::{self, LINK_RECORD, Link};
use crate::model::{account, replica_entry, replica_head, transfer};
use crate::store;

/// The ledger's side of sync: it takes the chains of the instances below and
/// nothing from above.
#[derive(Debug, Clone, Copy, Default)]
pub struct LedgerReplica;

/// The verified head of an instance's chain before anything arrived.
fn empty_head(instance: &str) -> replica_head::Model {
    replica_head::Model {
        instance: instance.to_owned(),
        sequence: 0,
        hash: hex::encode(GENESIS),
        alarm: String::new(),
        alarm_at: None,
        checked_at: None,
    }
}

/// The bytes the entry `link` was hashed over, rebuilt from its record; why
/// not, when the record does not fit the entry.
fn link_bytes(link: &Link) -> Result<Vec<u8>, String> {
    let unreadable = |e: serde_json::Error| {
        format!(
            "its record does not read: {}",
            sustain_sync::apply::unreadable(&e)
        )
    };
    match link.kind.as_str() {
        chain::ACCOUNT => {
            let a: account::Model =
                serde_json::from_value(link.record.clone()).map_err(unreadable)?;
            if a.id != link.record_id || a.sequence != link.sequence {
                return Err(format!("it names account {} of entry {}", a.id, a.sequence));
            }
            Ok(chain::account_bytes(link.sequence, &a))
        }
        chain::TRANSFER => {
            let t: transfer::Model =
                serde_json::from_value(link.record.clone()).map_err(unreadable)?;
            if t.id != link.record_id || t.sequence != link.sequence {
                return Err(format!(
                    "it names transfer {} of entry {}",
                    t.id, t.sequence
                ));
            }
            Ok(chain::transfer_bytes(link.sequence, &t))
        }
        chain::POST | chain::VOID => {
            let t: transfer::Model =
                serde_json::from_value(link.record.clone()).map_err(unreadable)?;
            let state = if link.kind == chain::POST {
                sustain_domain::ledger::transfer_state::POSTED
            } else {
                sustain_domain::ledger::transfer_state::VOIDED
            };
            if t.id != link.record_id
                || t.resolve_sequence != Some(link.sequence)
                || t.state != state
            {
                return Err(format!(
                    "it names transfer {} {} at entry {:?}",
                    t.id, t.state, t.resolve_sequence
                ));
            }
            Ok(chain::resolution_bytes(link.sequence, &t))
        }
        other => Err(format!("unknown entry kind {other:?}")),
    }
}

/// Checks that `link` is the entry after `head` and chains on it.
fn check_link(head: &replica_head::Model, link: &Link) -> Result<(), String> {
    let expected = head.sequence + 1;
    if link.sequence != expected {
        return Err(format!(
            "entry {expected} never arrived: entry {} came after {}",
            link.sequence, head.sequence
        ));
    }
    let bytes = link_bytes(link).map_err(|p| format!("entry {expected} does not fit: {p}"))?;
    let previous: [u8; 32] = hex::decode(&head.hash)
        .ok()
        .and_then(|h| h.try_into().ok())
        .unwrap_or(GENESIS);
    if hex::encode(chain_hash(&previous, &bytes)) != link.hash {
        return Err(format!(
            "entry {expected} ({} {}) does not chain on entry {}: its record or its hash was altered",
            link.kind, link.record_id, head.sequence
        ));
    }
    Ok(())
}

/// Raises `alarm` on `instance`'s chain, unless one is raised already.
async fn raise(
    conn: &impl ConnectionTrait,
    head: &mut replica_head::Model,
    alarm: String,
) -> Result<(), ServiceError> {
    if head.alarm.is_empty() {
        head.alarm = alarm;
        head.alarm_at = Some(Utc::now());
    }
    store::chain::save_replica_head(conn, head).await
}

/// The entry `link` as kept: verified when it chains on `head` (which moves
/// on), else kept unverified with the alarm raised on `head`. Once a link
/// fails, nothing after it is trusted.
fn received(
    head: &mut replica_head::Model,
    link: Link,
    now: chrono::DateTime<Utc>,
) -> replica_entry::Model {
    let verified = head.alarm.is_empty()
        && match check_link(head, &link) {
            Ok(()) => {
                head.sequence = link.sequence;
                head.hash = link.hash.clone();
                true
            }
            Err(problem) => {
                tracing::error!(instance = %link.instance, %problem, "ledger chain alarm");
                head.alarm = format!("the chain of {}: {problem}", link.instance);
                head.alarm_at = Some(now);
                false
            }
        };
    replica_entry::Model {
        instance: link.instance,
        sequence: link.sequence,
        kind: link.kind,
        record_id: link.record_id,
        hash: link.hash,
        record: link.record.to_string(),
        verified,
        received_at: now,
    }
}

#[tonic::async_trait]
impl Replica for LedgerReplica {
    async fn write(&self, txn: &WriteTxn, changes: &[Incoming]) -> Result<(), ServiceError> {
        let topology = Topology::load(txn).await?;
        let mut heads: HashMap<String, replica_head::Model> = HashMap::new();
        let mut rows = Vec::with_capacity(changes.len());
        let now = Utc::now();
        for incoming in changes {
            let c = &incoming.change;
            if c.record_type != LINK_RECORD {
                return Err(ServiceError::Internal(format!(
                    "the ledger keeps no {} records",
                    c.record_type
                )));
            }
            let link: Link = incoming.read()?;
            // An instance sends its own chain only: a link must name the
            // instance owning the unit it came in for, under its own id.
            let owner = topology.owner_of(&c.owner_unit);
            if link.instance != owner || c.record_id != Link::id(&link.instance, link.sequence) {
                return Err(ServiceError::FailedPrecondition {
                    reason: "NOT_ITS_CHAIN",
                    message: format!(
                        "link {} claims the chain of {:?}, but unit {} belongs to {owner:?}",
                        c.record_id, link.instance, c.owner_unit
                    ),
                });
            }
            if !heads.contains_key(&link.instance) {
                let held = store::chain::replica_head(txn, &link.instance)
                    .await?
                    .unwrap_or_else(|| empty_head(&link.instance));
                heads.insert(link.instance.clone(), held);
            }
            let Some(head) = heads.get_mut(&link.instance) else {
                continue;
            };
            rows.push(received(head, link, now));
        }
        store::chain::insert_replica_entries(txn, rows).await?;
        for head in heads.values() {
            store::chain::save_replica_head(txn, head).await?;
        }
        Ok(())
    }

    fn pulls_upstream(&self) -> bool {
        false
    }

    async fn check_peer(
        &self,
        db: &DatabaseConnection,
        peer: &str,
        channel: tonic::transport::Channel,
        bearer: BearerToken,
    ) -> Result<Option<String>, ServiceError> {
        let Some(mut head) = store::chain::replica_head(db, peer).await? else {
            return Ok(None);
        };
        if !head.alarm.is_empty() {
            return Ok(Some(head.alarm));
        }
        if head.sequence == 0 {
            return Ok(None);
        }
        let mut client = ChainServiceClient::with_interceptor(channel, bearer);
        let theirs = client
            .get_chain_head(pb::GetChainHeadRequest {
                at_sequence: head.sequence,
                instance: String::new(),
            })
            .await;
        let alarm = match theirs {
            Ok(r) if r.get_ref().hash == head.hash => None,
            Ok(r) => Some(format!(
                "{peer}'s own chain has {} at entry {}, the copy received here {}: its history was rewritten after it was sent",
                r.get_ref().hash,
                head.sequence,
                head.hash
            )),
            Err(s) if s.code() == tonic::Code::NotFound => Some(format!(
                "{peer}'s own chain ends before entry {}, which was received here: entries were removed",
                head.sequence
            )),
            Err(s) => {
                return Err(ServiceError::Unavailable(format!(
                    "reading {peer}'s chain head: {}",
                    s.message()
                )));
            }
        };
        match alarm {
            Some(alarm) => {
                raise(db, &mut head, alarm).await?;
                Ok(Some(head.alarm))
            }
            None => {
                head.checked_at = Some(Utc::now());
                store::chain::save_replica_head(db, &head).await?;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(sequence: i64) -> account::Model {
        account::Model {
            id: "a-1".into(),
            kind: "source".into(),
            source: "local_budget".into(),
            name: "Local budget".into(),
            project_code: String::new(),
            year: 0,
            unit_code: "181".into(),
            province_code: "20".into(),
            district_code: Some("181".into()),
            commune_code: None,
            current_commune_code: None,
            guarded: false,
            purpose: String::new(),
            reference_id: String::new(),
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
            sequence,
            created_at: Utc::now(),
        }
    }

    fn transfer(sequence: i64, amount: i64) -> transfer::Model {
        let day = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).expect("date");
        transfer::Model {
            id: "t-1".into(),
            batch_id: "b-1".into(),
            leg: 0,
            debit_account_id: "a-1".into(),
            credit_account_id: "a-2".into(),
            amount,
            pending: false,
            reverses_id: None,
            value_date: day,
            memo: String::new(),
            state: sustain_domain::ledger::transfer_state::POSTED.into(),
            posted_on: Some(day),
            resolved_on: None,
            sequence,
            resolve_sequence: None,
            created_at: Utc::now(),
        }
    }

    /// A link as the instance below made it, chained on `previous`.
    fn link(
        previous: &str,
        kind: &str,
        bytes: &[u8],
        record: serde_json::Value,
        sequence: i64,
    ) -> Link {
        let previous: [u8; 32] = hex::decode(previous)
            .expect("hex")
            .try_into()
            .expect("32 bytes");
        Link {
            instance: "district-181".into(),
            sequence,
            kind: kind.into(),
            record_id: record["id"].as_str().unwrap_or_default().to_owned(),
            hash: hex::encode(chain_hash(&previous, bytes)),
            record,
        }
    }

    #[test]
    fn a_link_verifies_only_in_place_and_as_recorded() {
        let mut head = empty_head("district-181");
        let a = account(1);
        let opened = link(
            &head.hash,
            chain::ACCOUNT,
            &chain::account_bytes(1, &a),
            serde_json::to_value(&a).expect("json"),
            1,
        );
        assert_eq!(check_link(&head, &opened), Ok(()));
        head.sequence = 1;
        head.hash = opened.hash.clone();

        let t = transfer(2, 900);
        let moved = link(
            &head.hash,
            chain::TRANSFER,
            &chain::transfer_bytes(2, &t),
            serde_json::to_value(&t).expect("json"),
            2,
        );
        assert_eq!(check_link(&head, &moved), Ok(()));

        // The amount altered on the way: the hash no longer covers it.
        let mut altered = moved.clone();
        altered.record["amount"] = 90.into();
        let problem = check_link(&head, &altered).expect_err("altered");
        assert!(problem.contains("does not chain"), "{problem}");

        // A hash recomputed over the altered record does not chain on what
        // is held either, unless the whole history was sent again.
        let other_head = replica_head::Model {
            hash: hex::encode(GENESIS),
            ..head.clone()
        };
        assert!(check_link(&other_head, &moved).is_err());

        // A gap: entry 3 before entry 2.
        let mut skipped = moved.clone();
        skipped.sequence = 3;
        let problem = check_link(&head, &skipped).expect_err("gap");
        assert!(problem.contains("entry 2 never arrived"), "{problem}");

        // A record that names another entry.
        let mut misplaced = moved;
        misplaced.record["sequence"] = 5.into();
        let problem = check_link(&head, &misplaced).expect_err("misplaced");
        assert!(problem.contains("does not fit"), "{problem}");
    }
}
