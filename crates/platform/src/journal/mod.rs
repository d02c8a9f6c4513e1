//! The journal every mutation writes in its own transaction: an audit entry (who did
//! what to which record, with a hash of the new state) and an outbox change with a
//! gap-free, commit-ordered sequence number — the change feed sync reads. Also the
//! idempotency table that lets a retried mutation return its first answer.

mod entities;
pub mod migration;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set, Statement,
};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::crypto::FieldCipher;
use crate::error::ServiceError;
use sustain_db::{self as db, Bulk, PgWrite};

pub use entities::{audit_log, idempotency, outbox};

/// One change to one record, as it goes into the audit log and the outbox.
#[derive(Debug, Clone)]
pub struct Change {
    /// e.g. `household`.
    pub record_type: String,
    pub record_id: String,
    /// Code of the administrative unit that owns the record.
    pub owner_unit: String,
    pub version: i64,
    /// e.g. `create`, `update`, `archive`.
    pub action: String,
    /// The record's new state as stored (sensitive fields still encrypted), as
    /// JSON text: see [`state_json`].
    pub state: String,
}

/// A record's state as the journal keeps it: its JSON serialisation, fields in
/// declaration order (deterministic, so the audit hash of a state is stable).
pub fn state_json(state: &impl serde::Serialize) -> String {
    // Rows of plain fields always serialise; "null" keeps the journal writable.
    serde_json::to_string(state).unwrap_or_else(|_| "null".to_owned())
}

/// The outbox sequence of the last committed change: every journaled write
/// moves it in its own transaction, so it versions everything journaled.
pub async fn head(conn: &impl ConnectionTrait) -> Result<i64, ServiceError> {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT seq FROM outbox_head WHERE id = 1",
        ))
        .await?
        .ok_or_else(|| ServiceError::Internal("outbox_head row is missing".into()))?;
    Ok(row.try_get("", "seq")?)
}

/// Appends the audit entry and the outbox change; returns the outbox sequence.
pub async fn record(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    request_id: &str,
    change: Change,
) -> Result<i64, ServiceError> {
    record_many(conn, caller, request_id, vec![change]).await
}

/// Rows per multi-row INSERT: well inside SQLite's and PostgreSQL's bind limits.
const ROWS_PER_INSERT: usize = 1000;

/// How many audit entries a group of changes gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audit {
    /// One per change.
    EachChange,
    /// One for the whole group (a bulk import batch): it names the outbox range
    /// holding the changes and hashes their states together, so every record is
    /// still attributable to the caller without an audit row per record.
    OnePerBatch,
}

/// Appends the outbox changes of many changes made by one request, in order,
/// with their audit entries; returns the last outbox sequence.
pub async fn record_many(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    request_id: &str,
    changes: Vec<Change>,
) -> Result<i64, ServiceError> {
    checked_append(conn, None, caller, request_id, changes, Audit::EachChange).await
}

/// Appends a group of changes made here. Refused with FAILED_PRECONDITION,
/// before anything is written, when a change is to a record another instance
/// owns: every write path journals, so none can write to a replica.
pub async fn record_group(
    conn: &impl Bulk,
    caller: &Caller,
    request_id: &str,
    changes: Vec<Change>,
    audit: Audit,
) -> Result<i64, ServiceError> {
    checked_append(conn, conn.copier(), caller, request_id, changes, audit).await
}

async fn checked_append(
    conn: &impl ConnectionTrait,
    copier: Option<&PgWrite>,
    caller: &Caller,
    request_id: &str,
    changes: Vec<Change>,
    audit: Audit,
) -> Result<i64, ServiceError> {
    if changes.is_empty() {
        return Ok(0);
    }
    check_owners(conn, changes.iter().map(|c| c.owner_unit.as_str())).await?;
    append(conn, copier, caller, request_id, changes, audit, "").await
}

/// Appends changes applied from `peer`'s feed: no ownership check (they are
/// the peer's), one audit entry for the batch, and the peer as their origin so
/// this instance's feed never sends them back.
pub async fn record_applied(
    conn: &impl Bulk,
    caller: &Caller,
    peer: &str,
    changes: Vec<Change>,
) -> Result<i64, ServiceError> {
    if changes.is_empty() {
        return Ok(0);
    }
    append(
        conn,
        conn.copier(),
        caller,
        "",
        changes,
        Audit::OnePerBatch,
        peer,
    )
    .await
}

/// Appends changes made here again, unchecked: the records of units just
/// handed over, sent out as they stand so the new owner gets them.
pub async fn record_reissued(
    conn: &impl Bulk,
    caller: &Caller,
    request_id: &str,
    changes: Vec<Change>,
) -> Result<i64, ServiceError> {
    if changes.is_empty() {
        return Ok(0);
    }
    append(
        conn,
        conn.copier(),
        caller,
        request_id,
        changes,
        Audit::OnePerBatch,
        "",
    )
    .await
}

/// Refuses with FAILED_PRECONDITION a change to a record another instance
/// owns: every write path journals, so none can write to a replica.
async fn check_owners<'a>(
    conn: &impl ConnectionTrait,
    owners: impl Iterator<Item = &'a str>,
) -> Result<(), ServiceError> {
    crate::ownership::Topology::load(conn)
        .await?
        .check_writes(owners)
}

async fn append(
    conn: &impl ConnectionTrait,
    copier: Option<&PgWrite>,
    caller: &Caller,
    request_id: &str,
    changes: Vec<Change>,
    audit: Audit,
    origin: &str,
) -> Result<i64, ServiceError> {
    let n = changes.len() as i64;
    let last = allocate(conn, n).await?;
    let now = chrono::Utc::now();
    let first = last - n + 1;
    let mut outbox_rows = Vec::with_capacity(changes.len());
    let mut audit_rows = Vec::with_capacity(changes.len());
    let mut batch_hash = Sha256::new();
    let batch_action = format!("{}.{}", changes[0].record_type, changes[0].action);
    for (i, change) in changes.into_iter().enumerate() {
        let digest = Sha256::digest(change.state.as_bytes());
        batch_hash.update(digest);
        if audit == Audit::EachChange {
            audit_rows.push(audit_log::ActiveModel {
                recorded_at: Set(now),
                actor: Set(caller.subject.clone()),
                role: Set(caller.role.as_str().to_owned()),
                action: Set(format!("{}.{}", change.record_type, change.action)),
                record_type: Set(change.record_type.clone()),
                record_id: Set(change.record_id.clone()),
                owner_unit: Set(change.owner_unit.clone()),
                version: Set(change.version),
                state_hash: Set(hex::encode(digest)),
                request_id: Set(request_id.to_owned()),
                ..Default::default()
            });
        }
        outbox_rows.push(outbox_row(first + i as i64, now, change, origin));
    }
    if audit == Audit::OnePerBatch {
        audit_rows.push(batch_audit(
            caller,
            request_id,
            now,
            batch_action,
            (first, last),
            hex::encode(batch_hash.finalize()),
        ));
    }
    db::insert_via::<outbox::Entity>(conn, copier, outbox_rows, &[]).await?;
    while !audit_rows.is_empty() {
        let rest = audit_rows.split_off(audit_rows.len().min(ROWS_PER_INSERT));
        audit_log::Entity::insert_many(std::mem::replace(&mut audit_rows, rest))
            .exec(conn)
            .await?;
    }
    Ok(last)
}

/// Moves the outbox head on by `n` changes; returns the sequence of the last.
/// One counter row, locked by the UPDATE until commit: sequences are handed out
/// in commit order with no gaps, so a reader at cursor N never misses a later
/// commit.
async fn allocate(conn: &impl ConnectionTrait, n: i64) -> Result<i64, ServiceError> {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            match backend {
                sea_orm::DbBackend::Postgres => {
                    "UPDATE outbox_head SET seq = seq + $1 WHERE id = 1 RETURNING seq"
                }
                _ => "UPDATE outbox_head SET seq = seq + ? WHERE id = 1 RETURNING seq",
            },
            [n.into()],
        ))
        .await?
        .ok_or_else(|| ServiceError::Internal("outbox_head row is missing".into()))?;
    Ok(row.try_get("", "seq")?)
}

fn outbox_row(
    seq: i64,
    recorded_at: chrono::DateTime<chrono::Utc>,
    change: Change,
    origin: &str,
) -> outbox::Model {
    outbox::Model {
        seq,
        recorded_at,
        record_type: change.record_type,
        record_id: change.record_id,
        owner_unit: change.owner_unit,
        version: change.version,
        action: change.action,
        state: change.state,
        origin: origin.to_owned(),
    }
}

/// The one audit entry of a group journaled [`Audit::OnePerBatch`]: it names
/// the outbox range `seqs` and hashes the group's states together.
fn batch_audit(
    caller: &Caller,
    request_id: &str,
    recorded_at: chrono::DateTime<chrono::Utc>,
    action: String,
    (first, last): (i64, i64),
    state_hash: String,
) -> audit_log::ActiveModel {
    audit_log::ActiveModel {
        recorded_at: Set(recorded_at),
        actor: Set(caller.subject.clone()),
        role: Set(caller.role.as_str().to_owned()),
        action: Set(action),
        record_type: Set("outbox".to_owned()),
        record_id: Set(format!("{first}-{last}")),
        owner_unit: Set(String::new()),
        version: Set(last - first + 1),
        state_hash: Set(state_hash),
        request_id: Set(request_id.to_owned()),
        ..Default::default()
    }
}

/// A group of changes made here whose outbox rows are built ahead for SQLite
/// ([`db::SqliteRows`]), audited [`Audit::OnePerBatch`]: the bulk import builds
/// a batch's while the batch before it writes, so SQLite's one writer does not
/// wait while 5,000 outbox rows are built. Their sequence numbers and time are
/// only known once written: the rows hold offsets from the group's first
/// sequence, and [`record_prepared`] puts the real values in place.
#[derive(Debug, Clone)]
pub struct PreparedGroup {
    rows: db::SqliteRows,
    len: i64,
    owners: std::collections::BTreeSet<String>,
    action: String,
    state_hash: String,
}

/// Where the sequence and the time sit in each outbox row.
fn outbox_layout() -> (usize, usize) {
    use sea_orm::{IdenStatic, Iterable};
    let columns: Vec<&str> = outbox::Column::iter().map(|c| c.as_str()).collect();
    let at = |c: outbox::Column| {
        columns
            .iter()
            .position(|x| *x == c.as_str())
            .unwrap_or_default()
    };
    (at(outbox::Column::Seq), at(outbox::Column::RecordedAt))
}

/// Builds the outbox rows of `changes` (in order) for [`record_prepared`] on
/// SQLite.
pub fn prepare_group(changes: Vec<Change>) -> PreparedGroup {
    let action = changes
        .first()
        .map(|c| format!("{}.{}", c.record_type, c.action))
        .unwrap_or_default();
    let len = changes.len() as i64;
    let mut owners = std::collections::BTreeSet::new();
    let mut batch_hash = Sha256::new();
    let placeholder = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let rows = changes
        .into_iter()
        .enumerate()
        .map(|(i, change)| {
            batch_hash.update(Sha256::digest(change.state.as_bytes()));
            if !owners.contains(&change.owner_unit) {
                owners.insert(change.owner_unit.clone());
            }
            outbox_row(i as i64, placeholder, change, "")
        })
        .collect();
    PreparedGroup {
        rows: db::SqliteRows::of::<outbox::Entity>(rows),
        len,
        owners,
        action,
        state_hash: hex::encode(batch_hash.finalize()),
    }
}

/// Appends a group built by [`prepare_group`], checked as [`record_group`]
/// checks; returns the last outbox sequence.
pub async fn record_prepared(
    conn: &impl db::Bulk,
    caller: &Caller,
    request_id: &str,
    group: PreparedGroup,
) -> Result<i64, ServiceError> {
    if group.len == 0 {
        return Ok(0);
    }
    check_owners(conn, group.owners.iter().map(String::as_str)).await?;
    let last = allocate(conn, group.len).await?;
    let first = last - group.len + 1;
    let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6);
    let (seq_at, time_at) = outbox_layout();
    let stamp = db::SqliteRows::stored(sea_orm::Value::ChronoDateTimeUtc(Some(now)));
    let mut rows = group.rows;
    for row in rows.rows_mut() {
        let sea_orm::Value::BigInt(Some(offset)) = row[seq_at] else {
            return Err(ServiceError::Internal(
                "a prepared outbox row has no sequence offset".into(),
            ));
        };
        row[seq_at] = sea_orm::Value::BigInt(Some(first + offset));
        row[time_at] = stamp.clone();
    }
    db::insert_built(conn, vec![rows]).await?;
    batch_audit(
        caller,
        request_id,
        now,
        group.action,
        (first, last),
        group.state_hash,
    )
    .insert(conn)
    .await?;
    Ok(last)
}

/// Identifies one mutation for idempotent retries: the caller, the method and the
/// caller's `request_id`, plus a fingerprint of the request's content.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    key: String,
    fingerprint: String,
}

/// `encoded` (a message's top-level fields) less any length-delimited field
/// whose bytes are `value`: a request's content without its own request_id,
/// so that the id spelled another way (a UUID in capitals) is still the same
/// request. Bytes that do not walk as fields are kept whole.
fn without_field_valued(encoded: &[u8], value: &str) -> Vec<u8> {
    use prost::encoding::{WireType, decode_key, decode_varint};
    let mut rest = encoded;
    let mut kept = Vec::with_capacity(encoded.len());
    while !rest.is_empty() {
        let start = rest;
        let Ok((_, wire)) = decode_key(&mut rest) else {
            return encoded.to_vec();
        };
        let (skip, is_value) = match wire {
            WireType::Varint => match decode_varint(&mut rest) {
                Ok(_) => (0, false),
                Err(_) => return encoded.to_vec(),
            },
            WireType::SixtyFourBit => (8, false),
            WireType::ThirtyTwoBit => (4, false),
            WireType::LengthDelimited => match decode_varint(&mut rest) {
                Ok(len) => {
                    let len = len as usize;
                    (len, rest.get(..len) == Some(value.as_bytes()))
                }
                Err(_) => return encoded.to_vec(),
            },
            WireType::StartGroup | WireType::EndGroup => return encoded.to_vec(),
        };
        if rest.len() < skip {
            return encoded.to_vec();
        }
        rest = &rest[skip..];
        if !is_value {
            kept.extend_from_slice(&start[..start.len() - rest.len()]);
        }
    }
    kept
}

/// Longest `request_id` accepted.
pub const MAX_REQUEST_ID_LEN: usize = 128;

impl IdempotencyKey {
    /// `None` when the request carries no `request_id`.
    pub fn new(
        caller: &Caller,
        method: &str,
        request_id: &str,
        request: &impl prost::Message,
    ) -> Result<Option<IdempotencyKey>, ServiceError> {
        if request_id.is_empty() {
            return Ok(None);
        }
        if request_id.len() > MAX_REQUEST_ID_LEN || request_id.chars().any(char::is_control) {
            return Err(ServiceError::invalid(
                "request_id",
                format!("must be at most {MAX_REQUEST_ID_LEN} printable characters"),
            ));
        }
        // Bound to who asked, as vouched for by whom, and with what authority:
        // the same request_id from another issuer's subject of the same name,
        // or from the same subject with another role or scope, is another
        // request, so a replay never stands in for an authorisation check.
        let mut fingerprint = Sha256::new();
        fingerprint.update(without_field_valued(&request.encode_to_vec(), request_id));
        fingerprint.update([0x1f]);
        fingerprint.update(caller.role.as_str());
        for code in caller.scope.codes() {
            fingerprint.update([0x1f]);
            fingerprint.update(code);
        }
        // A request_id that is a UUID is one id however it is spelled.
        let request_id =
            crate::api::canonical_id(request_id).unwrap_or_else(|| request_id.to_owned());
        Ok(Some(IdempotencyKey {
            key: format!(
                "{}\u{1f}{}\u{1f}{method}\u{1f}{request_id}",
                caller.issuer, caller.subject
            ),
            fingerprint: hex::encode(fingerprint.finalize()),
        }))
    }
}

/// [`replay`] for an optional key: the answer a retry already got, or `None`
/// (no key, or nothing made under it yet). Checked before asking other
/// services, so a retry costs them nothing.
pub async fn answered<T: prost::Message + Default>(
    conn: &impl ConnectionTrait,
    cipher: &FieldCipher,
    key: Option<&IdempotencyKey>,
) -> Result<Option<T>, ServiceError> {
    match key {
        Some(key) => replay(conn, cipher, key).await,
        None => Ok(None),
    }
}

/// The stored answer to an earlier identical request, if there was one.
/// Stored answers can hold personal data, so they are kept sealed.
pub async fn replay<T: prost::Message + Default>(
    conn: &impl ConnectionTrait,
    cipher: &FieldCipher,
    key: &IdempotencyKey,
) -> Result<Option<T>, ServiceError> {
    let Some(found) = idempotency::Entity::find_by_id(key.key.clone())
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    if found.fingerprint != key.fingerprint {
        return Err(ServiceError::invalid(
            "request_id",
            "was already used for a different request; use a new request_id",
        ));
    }
    let plain = cipher
        .open(&found.response, &found.key)
        .map_err(|e| ServiceError::Internal(format!("stored response: {e}")))?;
    T::decode(plain.as_slice())
        .map(Some)
        .map_err(|e| ServiceError::Internal(format!("stored response does not decode: {e}")))
}

/// Runs one mutation in a write transaction, exactly once per idempotency key: a
/// retry gets the first answer back and writes nothing, and a failed attempt
/// leaves nothing behind. `work` gets the transaction and hands it back with its
/// answer, so it can be written as plain sequential code.
///
/// The key is claimed before the work, in the same transaction: a twin sent
/// at the same moment waits on the claim (PostgreSQL holds the second INSERT
/// of a key until the first transaction ends; SQLite has one writer) and then
/// returns the first one's answer, instead of doing the work beside it and
/// failing on what the first one wrote (a citizen ID now taken, an etag now
/// stale). When the first fails, nothing of it stays, the claim included, and
/// the twin does the work itself.
pub async fn run_once<T, F, Fut>(
    db: &DatabaseConnection,
    cipher: &FieldCipher,
    key: Option<IdempotencyKey>,
    work: F,
) -> Result<T, ServiceError>
where
    T: prost::Message + Default,
    F: FnOnce(sea_orm::DatabaseTransaction) -> Fut,
    Fut: Future<Output = Result<(T, sea_orm::DatabaseTransaction), ServiceError>>,
{
    let Some(key) = key else {
        let txn = db::begin_write(db).await?;
        let (answer, txn) = work(txn).await?;
        txn.commit().await?;
        return Ok(answer);
    };
    let txn = loop {
        let txn = db::begin_write(db).await?;
        if let Some(previous) = replay::<T>(&txn, cipher, &key).await? {
            return Ok(previous);
        }
        let claim = idempotency::ActiveModel {
            key: Set(key.key.clone()),
            fingerprint: Set(key.fingerprint.clone()),
            response: Set(Vec::new()),
            recorded_at: Set(chrono::Utc::now()),
        }
        .insert(&txn)
        .await;
        match claim {
            Ok(_) => break txn,
            // A twin claimed it first and has committed: its answer, once
            // this transaction is gone, is there to read.
            Err(e) if db::is_unique_violation(&e) => {
                txn.rollback().await?;
                if let Some(previous) = replay::<T>(db, cipher, &key).await? {
                    return Ok(previous);
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    let (answer, txn) = work(txn).await?;
    idempotency::Entity::update_many()
        .col_expr(
            idempotency::Column::Response,
            sea_orm::sea_query::Expr::value(cipher.seal(&answer.encode_to_vec(), &key.key)),
        )
        .filter(idempotency::Column::Key.eq(key.key.clone()))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(answer)
}
