//! The hash chain over the ledger's journal. Every change (an account opened,
//! a transfer made, a pending transfer posted or voided) appends one entry
//! whose hash covers the previous hash and the change's canonical bytes. The
//! bytes are rebuilt from the stored account and transfer rows when the chain
//! is verified, so an amount altered in the database breaks the chain at the
//! entry that recorded it.

use chrono::Utc;
use sea_orm::ConnectionTrait;
use sustain_domain::ledger::{GENESIS, chain_hash};
use sustain_platform::auth::Caller;
use sustain_platform::error::ServiceError;
use sustain_platform::journal::{self, Change};
use sustain_proto::ledger::v1 as pb;
use tonic::{Request, Response, Status};

use crate::CHAIN;
use crate::model::{account, entry, transfer};
use crate::store;

pub const ACCOUNT: &str = "account";
pub const TRANSFER: &str = "transfer";
pub const POST: &str = "post";
pub const VOID: &str = "void";

/// The canonical bytes of an account's opening: every field that defines it.
pub fn account_bytes(sequence: i64, a: &account::Model) -> Vec<u8> {
    serde_json::json!([
        sequence,
        ACCOUNT,
        a.id,
        a.kind,
        a.source,
        a.name,
        a.project_code,
        a.year,
        a.unit_code,
        a.guarded,
        a.purpose,
        a.reference_id
    ])
    .to_string()
    .into_bytes()
}

/// The canonical bytes of a transfer as made.
pub fn transfer_bytes(sequence: i64, t: &transfer::Model) -> Vec<u8> {
    serde_json::json!([
        sequence,
        TRANSFER,
        t.id,
        t.batch_id,
        t.leg,
        t.debit_account_id,
        t.credit_account_id,
        t.amount,
        t.pending,
        t.reverses_id.clone().unwrap_or_default(),
        t.value_date.to_string(),
        t.memo
    ])
    .to_string()
    .into_bytes()
}

/// The canonical bytes of a pending transfer's resolution.
pub fn resolution_bytes(sequence: i64, t: &transfer::Model) -> Vec<u8> {
    let action = if t.state == sustain_domain::ledger::transfer_state::POSTED {
        POST
    } else {
        VOID
    };
    serde_json::json!([
        sequence,
        action,
        t.id,
        t.amount,
        t.resolved_on.map(|d| d.to_string()).unwrap_or_default()
    ])
    .to_string()
    .into_bytes()
}

/// The record type a chain entry travels under to the upstream.
pub const LINK_RECORD: &str = "ledger_link";

/// One entry of an instance's chain as it travels to the upstream: the link
/// and the record as it stood after the change, from which the upstream
/// rebuilds the entry's bytes and checks the hash itself.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Link {
    /// The instance whose chain this is.
    pub instance: String,
    pub sequence: i64,
    /// account, transfer, post or void.
    pub kind: String,
    pub record_id: String,
    pub hash: String,
    /// The account or transfer row after the change.
    pub record: serde_json::Value,
}

impl Link {
    /// The id a link travels under: unique across instances.
    pub fn id(instance: &str, sequence: i64) -> String {
        format!("{instance}/{sequence}")
    }
}

/// An appended entry's record, for the outbox.
#[derive(Debug)]
struct Pending {
    unit: String,
    record: serde_json::Value,
}

/// The chain's head locked for one write transaction, and the entries it
/// appends; [`Chain::save`] writes them and moves the head.
#[derive(Debug)]
pub struct Chain {
    pub sequence: i64,
    hash: [u8; 32],
    entries: Vec<entry::Model>,
    records: Vec<Pending>,
}

fn decode(hash: &str) -> Option<[u8; 32]> {
    hex::decode(hash).ok()?.try_into().ok()
}

impl Chain {
    /// Locks the head: writes to the ledger queue here, one at a time (SQLite
    /// transactions are already one at a time).
    pub async fn lock(conn: &impl ConnectionTrait) -> Result<Chain, ServiceError> {
        let row = store::chain::head(conn, true).await?;
        let hash = decode(&row.hash)
            .ok_or_else(|| ServiceError::Internal("the chain head is not a hash".into()))?;
        Ok(Chain {
            sequence: row.sequence,
            hash,
            entries: vec![],
            records: vec![],
        })
    }

    /// The sequence the next entry gets.
    pub fn next(&self) -> i64 {
        self.sequence + 1
    }

    /// Appends the entry `kind` of `record_id` with `bytes` built for
    /// sequence [`Chain::next`]; `record` is the row after the change and
    /// `unit` the unit it is kept for.
    pub fn append(
        &mut self,
        kind: &str,
        record_id: &str,
        bytes: &[u8],
        unit: &str,
        record: &impl serde::Serialize,
    ) -> i64 {
        self.records.push(Pending {
            unit: unit.to_owned(),
            record: serde_json::to_value(record).unwrap_or_default(),
        });
        self.sequence += 1;
        self.hash = chain_hash(&self.hash, bytes);
        self.entries.push(entry::Model {
            sequence: self.sequence,
            kind: kind.to_owned(),
            record_id: record_id.to_owned(),
            hash: hex::encode(self.hash),
            recorded_at: Utc::now(),
        });
        self.sequence
    }

    /// Writes the appended entries and moves the head. An instance with an
    /// upstream also puts each entry in its outbox, so its chain flows up and
    /// the upstream can hold it to account; the journal refuses an entry for
    /// a unit this instance does not own.
    pub async fn save(
        self,
        conn: &impl ConnectionTrait,
        caller: &Caller,
    ) -> Result<(), ServiceError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let topology = sustain_sync::Topology::load(conn).await?;
        if !topology.upstream.is_empty() {
            let changes = self
                .entries
                .iter()
                .zip(self.records)
                .map(|(e, p)| {
                    let link = Link {
                        instance: topology.me.clone(),
                        sequence: e.sequence,
                        kind: e.kind.clone(),
                        record_id: e.record_id.clone(),
                        hash: e.hash.clone(),
                        record: p.record,
                    };
                    Change {
                        record_type: LINK_RECORD.to_owned(),
                        record_id: Link::id(&topology.me, e.sequence),
                        owner_unit: p.unit,
                        version: 1,
                        action: e.kind.clone(),
                        state: journal::state_json(&link),
                    }
                })
                .collect();
            journal::record_many(conn, caller, "", changes).await?;
        }
        store::chain::append(conn, self.entries, self.sequence, hex::encode(self.hash)).await
    }
}

/// Entries verified per read.
const PAGE: u64 = 2_000;

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub checked: i64,
    /// The first bad entry and what is wrong with it.
    pub first_bad: Option<(i64, String)>,
    /// The last good entry.
    pub sequence: i64,
    pub hash: String,
}

/// Recomputes the chain over `from..=to` (to: 0 for the head) from the stored
/// rows.
pub async fn verify(
    conn: &impl ConnectionTrait,
    from: i64,
    to: i64,
) -> Result<Verification, ServiceError> {
    let head = store::chain::head(conn, false).await?;
    let to = if to == 0 {
        head.sequence
    } else {
        to.min(head.sequence)
    };
    let from = from.max(1);
    // The hash before the range: the previous entry's, trusted as stored.
    let mut hash = if from == 1 {
        GENESIS
    } else {
        let previous =
            store::chain::entry(conn, from - 1)
                .await?
                .ok_or_else(|| ServiceError::NotFound {
                    resource: "ledger entry",
                    id: (from - 1).to_string(),
                })?;
        decode(&previous.hash).unwrap_or(GENESIS)
    };
    let mut result = Verification {
        checked: 0,
        first_bad: None,
        sequence: from - 1,
        hash: hex::encode(hash),
    };
    let mut expected = from;
    while expected <= to {
        let entries = store::chain::entries(conn, expected, to, PAGE).await?;
        if entries.is_empty() {
            result.first_bad = Some((expected, "the entry is missing".into()));
            return Ok(result);
        }
        let records = Records::load(conn, &entries).await?;
        for e in &entries {
            let problem = if e.sequence != expected {
                Some(format!("entry {expected} is missing"))
            } else {
                match records.bytes(e) {
                    Err(problem) => Some(problem),
                    Ok(bytes) => {
                        let computed = chain_hash(&hash, &bytes);
                        if hex::encode(computed) == e.hash {
                            hash = computed;
                            None
                        } else {
                            Some(format!(
                                "the {} {} does not match its hash: changed after it was recorded",
                                e.kind, e.record_id
                            ))
                        }
                    }
                }
            };
            if let Some(problem) = problem {
                result.first_bad = Some((expected, problem));
                return Ok(result);
            }
            result.checked += 1;
            result.sequence = e.sequence;
            result.hash = e.hash.clone();
            expected += 1;
        }
    }
    if head.sequence == to && result.hash != head.hash && result.checked > 0 {
        result.first_bad = Some((to, "the head does not match the last entry".into()));
    }
    Ok(result)
}

/// The rows a page of entries refers to.
struct Records {
    accounts: std::collections::HashMap<String, account::Model>,
    transfers: std::collections::HashMap<String, transfer::Model>,
}

impl Records {
    async fn load(
        conn: &impl ConnectionTrait,
        entries: &[entry::Model],
    ) -> Result<Records, ServiceError> {
        let ids = |kinds: &[&str]| -> Vec<String> {
            entries
                .iter()
                .filter(|e| kinds.contains(&e.kind.as_str()))
                .map(|e| e.record_id.clone())
                .collect()
        };
        let accounts = store::accounts::by_ids(conn, &ids(&[ACCOUNT])).await?;
        let transfers = store::transfers::by_ids(conn, &ids(&[TRANSFER, POST, VOID])).await?;
        Ok(Records {
            accounts,
            transfers,
        })
    }

    fn bytes(&self, e: &entry::Model) -> Result<Vec<u8>, String> {
        let gone = || format!("the {} {} is missing", e.kind, e.record_id);
        match e.kind.as_str() {
            ACCOUNT => {
                let a = self.accounts.get(&e.record_id).ok_or_else(gone)?;
                if a.sequence != e.sequence {
                    return Err(format!("account {} names another entry", a.id));
                }
                Ok(account_bytes(e.sequence, a))
            }
            TRANSFER => {
                let t = self.transfers.get(&e.record_id).ok_or_else(gone)?;
                if t.sequence != e.sequence {
                    return Err(format!("transfer {} names another entry", t.id));
                }
                Ok(transfer_bytes(e.sequence, t))
            }
            POST | VOID => {
                let t = self.transfers.get(&e.record_id).ok_or_else(gone)?;
                if t.resolve_sequence != Some(e.sequence) {
                    return Err(format!("transfer {} names another resolution", t.id));
                }
                Ok(resolution_bytes(e.sequence, t))
            }
            other => Err(format!("unknown entry kind {other:?}")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChainApi {
    pub db: sea_orm::DatabaseConnection,
    /// One verification at a time: it reads the whole chain.
    pub verifying: std::sync::Arc<tokio::sync::Semaphore>,
}

impl ChainApi {
    pub fn new(db: sea_orm::DatabaseConnection) -> ChainApi {
        ChainApi {
            db,
            verifying: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    /// PERMISSION_DENIED unless every unit this instance owns lies in the
    /// caller's scope: its own chain covers them all.
    async fn require_whole_instance(&self, caller: &Caller) -> Result<(), ServiceError> {
        sustain_sync::Topology::load(&self.db)
            .await?
            .require_whole(caller, "the chain")
    }

    /// The copy held here of another instance's chain: its verified head (or
    /// an entry of it) and its alarm. The caller must see the instance's ground.
    async fn replica_head(
        &self,
        caller: &Caller,
        r: &pb::GetChainHeadRequest,
    ) -> Result<pb::GetChainHeadResponse, ServiceError> {
        let topology = sustain_sync::Topology::load(&self.db).await?;
        let units = topology.units_of(&r.instance);
        let unknown = || ServiceError::NotFound {
            resource: "replicated chain",
            id: r.instance.clone(),
        };
        if units.is_empty() {
            return Err(unknown());
        }
        if !caller.scope.is_nationwide() && !units.iter().any(|u| caller.scope.contains_unit(u)) {
            return Err(ServiceError::PermissionDenied {
                reason: "OUT_OF_SCOPE",
                message: format!(
                    "the chain of {} lies outside the caller's scope",
                    r.instance
                ),
            });
        }
        let head = store::chain::replica_head(&self.db, &r.instance)
            .await?
            .ok_or_else(unknown)?;
        if r.at_sequence == 0 {
            return Ok(pb::GetChainHeadResponse {
                sequence: head.sequence,
                hash: head.hash,
                alarm: head.alarm,
            });
        }
        let at = store::chain::replica_entry(&self.db, &r.instance, r.at_sequence)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                resource: "ledger entry",
                id: Link::id(&r.instance, r.at_sequence),
            })?;
        Ok(pb::GetChainHeadResponse {
            sequence: at.sequence,
            hash: at.hash,
            alarm: head.alarm,
        })
    }
}

#[tonic::async_trait]
impl pb::chain_service_server::ChainService for ChainApi {
    async fn get_chain_head(
        &self,
        request: Request<pb::GetChainHeadRequest>,
    ) -> Result<Response<pb::GetChainHeadResponse>, Status> {
        let caller = sustain_platform::Caller::from_request(&request)?;
        caller.require("read the chain head", CHAIN)?;
        let r = request.into_inner();
        if r.at_sequence < 0 {
            return Err(ServiceError::invalid(
                "at_sequence",
                "must be 0 (the head) or an entry's sequence",
            )
            .into());
        }
        if !r.instance.is_empty() {
            return Ok(Response::new(self.replica_head(&caller, &r).await?));
        }
        self.require_whole_instance(&caller).await?;
        let head = store::chain::head(&self.db, false).await?;
        if r.at_sequence == 0 {
            return Ok(Response::new(pb::GetChainHeadResponse {
                sequence: head.sequence,
                hash: head.hash,
                alarm: String::new(),
            }));
        }
        let at = store::chain::entry(&self.db, r.at_sequence)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                resource: "ledger entry",
                id: r.at_sequence.to_string(),
            })?;
        Ok(Response::new(pb::GetChainHeadResponse {
            sequence: at.sequence,
            hash: at.hash,
            alarm: String::new(),
        }))
    }

    async fn verify_chain(
        &self,
        request: Request<pb::VerifyChainRequest>,
    ) -> Result<Response<pb::VerifyChainResponse>, Status> {
        let caller = sustain_platform::Caller::from_request(&request)?;
        caller.require("verify the chain", CHAIN)?;
        let r = request.into_inner();
        let mut v = sustain_domain::Violations::new();
        if r.from_sequence < 0 {
            v.add("from_sequence", "must not be negative");
        }
        if r.to_sequence < 0 {
            v.add("to_sequence", "must not be negative");
        }
        if r.to_sequence != 0 && r.to_sequence < r.from_sequence {
            v.add("to_sequence", "is before from_sequence");
        }
        if !v.is_empty() {
            return Err(ServiceError::from(v).into());
        }
        self.require_whole_instance(&caller).await?;
        let _running = self.verifying.try_acquire().map_err(|_| {
            ServiceError::ResourceExhausted(
                "a verification of this chain is running; ask again when it has finished".into(),
            )
        })?;
        let result = verify(&self.db, r.from_sequence, r.to_sequence).await?;
        let (first_bad_sequence, problem) = result.first_bad.clone().unwrap_or_default();
        Ok(Response::new(pb::VerifyChainResponse {
            valid: result.first_bad.is_none(),
            entries_checked: result.checked,
            first_bad_sequence,
            problem,
            sequence: result.sequence,
            hash: result.hash,
        }))
    }
}
