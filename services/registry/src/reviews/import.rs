//! Bulk import of households with their reviews. Each batch is checked row by
//! row (a bad row is rejected with its field violations, the good rows go in),
//! then written in one transaction with multi-row INSERTs, journal entries and
//! tally changes, and only then acknowledged. Rows are keyed by the source's
//! external key: a household already imported under its key is never written
//! again (an import does not overwrite; UpdateHousehold does), and only review
//! years it does not have yet are added, so re-sending a file changes nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use sustain_db::{Bulk, Checkpointer, SqliteRows, WriteTxn, insert_built, insert_rows};
use sustain_domain::Violations;
use sustain_domain::household::Household;
use sustain_domain::poverty::{self, Class, Standards};
use sustain_platform::Caller;
use sustain_platform::error::ServiceError;
use sustain_platform::journal::{self, Change};
use sustain_proto::registry::v1 as pb;
use tokio::sync::oneshot;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::convert::{Assessment, Place, assess};
use super::{journal_change, new_review};
use crate::convert::{household_from_proto, parse_date, today};
use crate::households::journal_change as household_change;
use crate::model::{household, import_key, member, review};
use crate::store::reviews::{self as store, CERTIFIED};
use crate::store::tally::TallyDelta;
use crate::store::{self as households, HouseholdRecord, Vault};

/// Most rows one request (one batch) may carry.
pub const MAX_ROWS_PER_BATCH: usize = 2_000;
const MAX_KEY_CHARS: usize = 128;

/// One review of a row, checked.
#[derive(Debug, Clone)]
struct RowReview {
    assessment: Assessment,
    certified: Option<(String, NaiveDate)>,
}

/// One row that passed its checks.
#[derive(Debug, Clone)]
struct CheckedRow {
    index: usize,
    key: String,
    reviews: Vec<RowReview>,
}

#[derive(Debug, Clone)]
pub struct Importer {
    db: DatabaseConnection,
    vault: Vault,
    standards: Arc<Standards>,
    /// On SQLite, checkpoints the WAL beside the batches' commits.
    checkpointer: Checkpointer,
}

/// How an import stream that broke off at its `batch`th message ends: the
/// batches before it are written and answered, this one and any after it
/// are not. A message that does not decode or is over the size limit is the
/// client's to fix: INVALID_ARGUMENT or RESOURCE_EXHAUSTED, never INTERNAL.
fn broken_stream(batch: u64, status: &Status) -> Status {
    let code = match status.code() {
        tonic::Code::Internal | tonic::Code::Unknown => tonic::Code::InvalidArgument,
        tonic::Code::OutOfRange => tonic::Code::ResourceExhausted,
        other => other,
    };
    Status::new(
        code,
        format!(
            "import stream broke off at batch {batch}: {}; the batches before it are written and answered, batch {batch} and any after it are not: send them again (smaller, if over the limit)",
            status.message()
        ),
    )
}

/// A household's key in the source system as it is kept: trimmed, and a key
/// that is a UUID in its one spelling, so that a file re-exported with the
/// keys spelled another way finds the households it made.
fn external_key(raw: &str) -> String {
    sustain_platform::api::canonical_id(raw).unwrap_or_else(|| raw.trim().to_owned())
}

/// The row a result answers: its number in the file and its key.
#[derive(Debug, Clone)]
pub struct RowRef {
    pub row_number: i64,
    pub external_key: String,
}

/// What became of one row of a batch.
#[derive(Debug, Clone)]
pub struct RowResult {
    pub row: RowRef,
    pub outcome: RowOutcome,
}

#[derive(Debug, Clone)]
pub enum RowOutcome {
    /// Refused, every bad field named; nothing of it was written.
    Rejected(Violations),
    /// In the registry: a new household, or one imported before with
    /// `reviews_written` review years it lacked (none: unchanged).
    Written {
        household_id: String,
        reviews_written: i32,
        new_household: bool,
    },
}

/// One row's result as the import answers it.
fn row_result_to_proto(r: RowResult) -> pb::ImportRowResult {
    let (outcome, household_id, reviews_written, violations) = match r.outcome {
        RowOutcome::Rejected(v) => (
            pb::ImportOutcome::Rejected,
            String::new(),
            0,
            v.into_vec()
                .into_iter()
                .map(|f| pb::RowViolation {
                    field: f.field,
                    description: f.description,
                })
                .collect(),
        ),
        RowOutcome::Written {
            household_id,
            reviews_written,
            new_household,
        } => (
            if new_household || reviews_written > 0 {
                pb::ImportOutcome::Accepted
            } else {
                pb::ImportOutcome::Unchanged
            },
            household_id,
            reviews_written,
            vec![],
        ),
    };
    pb::ImportRowResult {
        row_number: r.row.row_number,
        external_key: r.row.external_key,
        outcome: outcome as i32,
        household_id,
        reviews_written,
        violations,
    }
}

fn rejected(row: &RowRef, v: Violations) -> RowResult {
    RowResult {
        row: row.clone(),
        outcome: RowOutcome::Rejected(v),
    }
}

impl Importer {
    pub fn new(db: DatabaseConnection, vault: Vault, standards: Arc<Standards>) -> Importer {
        Importer {
            checkpointer: Checkpointer::new(db.clone()),
            db,
            vault,
            standards,
        }
    }

    /// Answers each request of the stream once its batch is committed. A failed
    /// batch ends the stream with its error; the batches before it stay committed.
    pub fn serve(
        self,
        caller: Caller,
        mut inbound: Streaming<pb::ImportHouseholdsRequest>,
    ) -> ReceiverStream<Result<pb::ImportHouseholdsResponse, Status>> {
        let (batch_tx, batch_rx) = tokio::sync::mpsc::channel(1);
        let (broke_tx, broke_rx) = oneshot::channel::<Status>();
        let subject = caller.subject.clone();
        tokio::spawn(async move {
            let mut read = 0u64;
            loop {
                match inbound.message().await {
                    Ok(Some(request)) => {
                        read += 1;
                        if batch_tx.send(request.rows).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        tracing::warn!(%status, caller = %subject, batch = read + 1, "import stream broke off");
                        let _ = broke_tx.send(broken_stream(read + 1, &status));
                        break;
                    }
                }
            }
        });
        let mut answers = self.pipeline(caller, batch_rx);
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tokio::spawn(async move {
            while let Some(answer) = answers.recv().await {
                let failed = answer.is_err();
                let response = answer
                    .map(|results| pb::ImportHouseholdsResponse {
                        results: results.into_iter().map(row_result_to_proto).collect(),
                    })
                    .map_err(Status::from);
                if tx.send(response).await.is_err() || failed {
                    return;
                }
            }
            // Every batch read is answered; a stream that broke off after
            // them ends with its error, never with OK.
            if let Ok(status) = broke_rx.await {
                let _ = tx.send(Err(status)).await;
            }
        });
        ReceiverStream::new(rx)
    }

    /// Imports batches as they arrive, one answer per batch in order. Checking,
    /// encrypting and serialising a batch (CPU) overlaps with writing the previous
    /// one (database): the two stages run on their own tasks, one batch apart.
    pub fn pipeline(
        self,
        caller: Caller,
        mut batches: tokio::sync::mpsc::Receiver<Vec<pb::ImportRow>>,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<RowResult>, ServiceError>> {
        let (prepared_tx, prepared_rx) =
            tokio::sync::mpsc::channel::<Result<Prepared, ServiceError>>(1);
        let (answer_tx, answer_rx) = tokio::sync::mpsc::channel(1);
        let preparer = self.clone();
        let preparing_caller = caller.clone();
        tokio::spawn(async move {
            while let Some(rows) = batches.recv().await {
                let this = preparer.clone();
                let caller = preparing_caller.clone();
                let prepared = match crate::villages::Assignments::load(&this.db).await {
                    Ok(assignments) => tokio::task::spawn_blocking(move || {
                        this.prepare(&caller, rows, &assignments)
                    })
                    .await
                    .unwrap_or_else(|e| {
                        Err(ServiceError::Internal(format!("preparing a batch: {e}")))
                    }),
                    Err(e) => Err(e),
                };
                let failed = prepared.is_err();
                if prepared_tx.send(prepared).await.is_err() || failed {
                    break;
                }
            }
        });
        // PostgreSQL takes a batch on one backend, one core: with a second
        // batch writing beside it the machine's other core works too. SQLite
        // has one writer at a time, so a second would only wait for the lock.
        let in_flight = match self.db.get_database_backend() {
            DbBackend::Postgres => 2,
            _ => 1,
        };
        tokio::spawn(async move {
            let mut before: Option<oneshot::Receiver<()>> = None;
            let mut footprint_before = Footprint::default();
            let writing = caller.clone();
            let writes = ReceiverStream::new(prepared_rx)
                .map(|prepared| {
                    let (done_tx, done_rx) = oneshot::channel();
                    let before = before.replace(done_rx);
                    let footprint = match &prepared {
                        Ok(prepared) if in_flight > 1 => prepared.footprint(),
                        _ => Footprint::default(),
                    };
                    let collides = footprint.meets(&footprint_before);
                    footprint_before = footprint;
                    let this = self.clone();
                    let caller = writing.clone();
                    async move {
                        let answer = match prepared {
                            Ok(prepared) => {
                                this.write_after(&caller, prepared, before, collides).await
                            }
                            Err(e) => Err(e),
                        };
                        let _ = done_tx.send(());
                        answer
                    }
                })
                .buffered(in_flight);
            futures::pin_mut!(writes);
            let mut batches = 0u64;
            while let Some(answer) = writes.next().await {
                let failed = answer.is_err();
                if answer_tx.send(answer).await.is_err() || failed {
                    break;
                }
                batches += 1;
            }
            tracing::info!(batches, caller = %caller.subject, "import ended");
        });
        answer_rx
    }

    /// Writes a batch while the one before it may still be writing, unless the
    /// two name the same external key or citizen ID: such a batch waits for the
    /// one before, so it sees what that one wrote, as if written in turn. (Left
    /// to race, either could commit first: the earlier batch would then find
    /// its own households registered by the later one.) Batches that share
    /// neither touch no common household, so the order they commit in changes
    /// no answer. Should one still fail beside the other (a deadlock over a
    /// tally row), it is written again once the one before has finished; its
    /// first attempt was one transaction, so it left nothing behind.
    async fn write_after(
        &self,
        caller: &Caller,
        batch: Prepared,
        before: Option<oneshot::Receiver<()>>,
        collides: bool,
    ) -> Result<Vec<RowResult>, ServiceError> {
        let Some(mut before) = before else {
            return self.write(caller, batch).await;
        };
        let running = matches!(before.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        if !running {
            return self.write(caller, batch).await;
        }
        if collides {
            let _ = before.await;
            return self.write(caller, batch).await;
        }
        let again = batch.clone();
        match self.write(caller, batch).await {
            Ok(results) => Ok(results),
            Err(e) => {
                tracing::debug!(error = %e, "a batch failed beside the one before it; writing it again");
                let _ = before.await;
                self.write(caller, again).await
            }
        }
    }

    /// Checks and writes one batch; one result per row, in order.
    pub async fn import_batch(
        &self,
        caller: &Caller,
        rows: Vec<pb::ImportRow>,
    ) -> Result<Vec<RowResult>, ServiceError> {
        let assignments = crate::villages::Assignments::load(&self.db).await?;
        let prepared = self.prepare(caller, rows, &assignments)?;
        self.write(caller, prepared).await
    }

    /// Everything about a batch that needs no database: each row checked, and
    /// for each good one the rows it becomes if its key turns out to be new
    /// (encrypted, serialised), so the write only decides and inserts.
    fn prepare(
        &self,
        caller: &Caller,
        rows: Vec<pb::ImportRow>,
        assignments: &crate::villages::Assignments,
    ) -> Result<Prepared, ServiceError> {
        if rows.len() > MAX_ROWS_PER_BATCH {
            return Err(ServiceError::invalid(
                "rows",
                format!("a batch holds at most {MAX_ROWS_PER_BATCH} rows; send more requests"),
            ));
        }
        let today = today();
        let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
        let mut results: Vec<Option<RowResult>> = vec![None; rows.len()];
        let mut prepared = Vec::with_capacity(rows.len());
        let mut keys_seen = HashSet::new();
        let mut ids_seen: HashMap<String, usize> = HashMap::new();
        for (index, row) in rows.iter().enumerate() {
            match self.check(
                caller,
                row,
                today,
                assignments,
                &mut keys_seen,
                &mut ids_seen,
            ) {
                Ok((household, reviews)) => {
                    let hashes = household
                        .members
                        .iter()
                        .map(|m| m.citizen_id.as_ref().map(|id| self.vault.citizen_hash(id)))
                        .collect();
                    // While a lookup key is rotated, an ID may still be held
                    // under an earlier key's hash.
                    let earlier = household
                        .members
                        .iter()
                        .map(|m| {
                            m.citizen_id.as_ref().map_or_else(Vec::new, |id| {
                                self.vault.citizen_hashes(id).split_off(1)
                            })
                        })
                        .collect();
                    let member_ids = household.members.iter().map(|_| new_id()).collect();
                    let record = HouseholdRecord::new(new_id(), household, member_ids, now);
                    let stored = self.stored(caller, &record, &reviews, now);
                    prepared.push(PreparedRow {
                        checked: CheckedRow {
                            index,
                            key: external_key(&row.external_key),
                            reviews,
                        },
                        hashes,
                        earlier,
                        record,
                        stored: Some(stored),
                    });
                }
                Err(v) => results[index] = Some(rejected(&row_ref(row), v)),
            }
        }
        let inserts = match self.db.get_database_backend() {
            DbBackend::Sqlite => Some(sqlite_batch_of(&mut prepared, now)),
            _ => None,
        };
        Ok(Prepared {
            rows: rows.iter().map(row_ref).collect(),
            results,
            prepared,
            inserts,
            now,
        })
    }

    /// The rows a household imported now is stored as, with its reviews.
    fn stored(
        &self,
        caller: &Caller,
        record: &HouseholdRecord,
        reviews: &[RowReview],
        now: DateTime<Utc>,
    ) -> StoredRows {
        let (household_row, member_rows, state) = households::stored_rows(record, &self.vault);
        let new_reviews = reviews_of_new(&caller.subject, record, reviews, now)
            .into_iter()
            .map(|r| {
                let change = journal_change(&r, "import");
                (r, change)
            })
            .collect();
        StoredRows {
            household_row,
            member_rows,
            state,
            new_reviews,
        }
    }

    /// Writes a prepared batch in one transaction; one result per row, in order.
    /// On PostgreSQL the rows go in by COPY.
    async fn write(
        &self,
        caller: &Caller,
        batch: Prepared,
    ) -> Result<Vec<RowResult>, ServiceError> {
        let txn = WriteTxn::begin(&self.db).await?;
        let results = self.write_in(&txn, caller, batch).await?;
        txn.commit_unchecked().await?;
        self.checkpointer.after_commit().await;
        Ok(results)
    }

    async fn write_in(
        &self,
        txn: &impl Bulk,
        caller: &Caller,
        batch: Prepared,
    ) -> Result<Vec<RowResult>, ServiceError> {
        let Prepared {
            rows,
            mut results,
            prepared,
            inserts,
            now,
        } = batch;
        let _backend = txn.get_database_backend();
        let keys: Vec<String> = prepared.iter().map(|p| p.checked.key.clone()).collect();
        let known = crate::store::import::imported(txn, &keys).await?;
        let hashes: Vec<String> = prepared
            .iter()
            .filter(|p| !known.contains_key(&p.checked.key))
            .flat_map(|p| {
                p.hashes
                    .iter()
                    .flatten()
                    .chain(p.earlier.iter().flatten())
                    .cloned()
            })
            .collect();
        let holders = households::holders_of(txn, hashes).await?;
        // Built ahead for the batch as it came, they hold just the rows
        // written now (and their changes) when every key is new and no
        // citizen ID is taken.
        let built = inserts.filter(|_| known.is_empty() && holders.is_empty());

        // Households of a split commune are placed by village once written.
        let split = crate::villages::split_among(
            prepared
                .iter()
                .map(|p| p.record.location.commune_code.as_str()),
        );
        let mut new = NewRows::default();
        let mut existing: Vec<(CheckedRow, String)> = vec![];
        for mut p in prepared {
            let index = p.checked.index;
            if let Some(id) = known.get(&p.checked.key) {
                existing.push((p.checked, id.clone()));
                continue;
            }
            let mut v = Violations::new();
            for (i, hash) in p.hashes.iter().enumerate() {
                let mut under = hash.iter().chain(p.earlier.get(i).into_iter().flatten());
                if let Some(other) = under.find_map(|h| holders.get(h)) {
                    let field = format!("household.members[{i}].citizen_id");
                    let (reason, _) =
                        crate::households::taken_reason(txn, caller, &field, other).await?;
                    v.add(field, reason);
                }
            }
            if !v.is_empty() {
                results[index] = Some(rejected(&rows[index], v));
                continue;
            }
            results[index] = Some(accepted(
                &rows[index],
                &p.record.id,
                p.checked.reviews.len() as i32,
                true,
            ));
            if built.is_some() {
                // Its rows, changes and tally went into the rows built ahead.
                continue;
            }
            // Moved into rows built ahead that turned out unusable: stored again.
            let stored = match p.stored.take() {
                Some(stored) => stored,
                None => self.stored(caller, &p.record, &p.checked.reviews, now),
            };
            new.add(&p, stored, now);
        }
        let (journaled, mut delta) = match built {
            Some(SqliteBatch { rows, journal }) => {
                insert_built(txn, rows).await?;
                (Some(journal), TallyDelta::default())
            }
            None => {
                households::insert_stored(txn, new.households, new.members).await?;
                insert_rows::<import_key::Entity>(txn, new.keys, &[]).await?;
                insert_rows::<review::Entity>(txn, new.reviews, &[]).await?;
                (None, new.delta)
            }
        };
        let mut changes = new.changes;
        changes.extend(new.review_changes);

        // Households imported before: add the review years they lack. Their
        // places and review years are read for the whole batch at once, so a
        // re-sent file costs two queries per batch.
        let existing_ids: Vec<String> = existing.iter().map(|(_, id)| id.clone()).collect();
        let (places, mut years) =
            crate::store::import::places_and_years(txn, &existing_ids).await?;
        for (c, household_id) in existing {
            if !places
                .get(&household_id)
                .is_some_and(|l| caller.scope.covers(l))
            {
                let mut v = Violations::new();
                v.add(
                    "external_key",
                    "names a household outside the importer's administrative scope",
                );
                results[c.index] = Some(rejected(&rows[c.index], v));
                continue;
            }
            let have = years.remove(&household_id).unwrap_or_default();
            if c.reviews.iter().all(|r| have.contains(&r.assessment.year)) {
                results[c.index] = Some(accepted(&rows[c.index], &household_id, 0, false));
                continue;
            }
            let outcome = self
                .add_reviews(txn, caller, &household_id, &c, &have, now, &mut delta)
                .await;
            results[c.index] = Some(match outcome {
                Ok(written) => accepted(&rows[c.index], &household_id, written, false),
                Err(v) => rejected(&rows[c.index], v),
            });
        }

        delta.apply(txn).await?;
        crate::villages::reconcile(txn, &split).await?;
        match journaled {
            Some(group) => journal::record_prepared(txn, caller, "import", group).await?,
            None => {
                journal::record_group(txn, caller, "import", changes, journal::Audit::OnePerBatch)
                    .await?
            }
        };
        Ok(results.into_iter().flatten().collect())
    }

    /// Checks one row without touching the database.
    fn check(
        &self,
        caller: &Caller,
        row: &pb::ImportRow,
        today: NaiveDate,
        assignments: &crate::villages::Assignments,
        keys_seen: &mut HashSet<String>,
        ids_seen: &mut HashMap<String, usize>,
    ) -> Result<(Household, Vec<RowReview>), Violations> {
        let mut v = Violations::new();
        let key = external_key(&row.external_key);
        let key = key.as_str();
        if key.is_empty() {
            v.add("external_key", "is required");
        } else if key.chars().count() > MAX_KEY_CHARS || key.chars().any(char::is_control) {
            v.add(
                "external_key",
                format!("must be at most {MAX_KEY_CHARS} printable characters"),
            );
        } else if !keys_seen.insert(key.to_owned()) {
            v.add("external_key", "appears twice in this batch");
        }
        let mut household = match &row.household {
            Some(h) => household_from_proto(h, "household", today, &mut v),
            None => {
                v.add("household", "is required");
                None
            }
        };
        if let Some(h) = household.as_mut() {
            assignments.place(h, today);
        }
        if let Some(h) = &household {
            if !caller.scope.covers(&h.address.location) {
                v.add(
                    "household.address.commune_code",
                    "is outside the importer's administrative scope",
                );
            }
            for (i, m) in h.members.iter().enumerate() {
                if let Some(id) = &m.citizen_id
                    && let Some(other) =
                        ids_seen.insert(id.as_str().to_owned(), row.row_number as usize)
                {
                    v.add(
                        format!("household.members[{i}].citizen_id"),
                        format!("is also given in row {other} of this import"),
                    );
                }
            }
        }
        let mut reviews = vec![];
        let mut years = HashSet::new();
        for (i, r) in row.reviews.iter().enumerate() {
            let prefix = format!("reviews[{i}]");
            let Some(input) = &r.review else {
                v.add(format!("{prefix}.review"), "is required");
                continue;
            };
            if !years.insert(input.year) {
                v.add(
                    format!("{prefix}.review.year"),
                    "appears twice for this household",
                );
            }
            let certified = match pb::ReviewState::try_from(r.state) {
                Ok(pb::ReviewState::Draft) => None,
                Ok(pb::ReviewState::Certified) => {
                    let number = r.decision_number.trim();
                    if number.is_empty() {
                        v.add(
                            format!("{prefix}.decision_number"),
                            "is required for a certified review",
                        );
                    }
                    let date = if r.decision_date.trim().is_empty() {
                        v.add(
                            format!("{prefix}.decision_date"),
                            "is required for a certified review",
                        );
                        None
                    } else {
                        parse_date(&r.decision_date, &format!("{prefix}.decision_date"), &mut v)
                    };
                    date.map(|d| (number.to_owned(), d))
                }
                _ => {
                    v.add(format!("{prefix}.state"), "must be DRAFT or CERTIFIED");
                    None
                }
            };
            if let Some(h) = household.as_ref()
                && let Some(assessment) = assess(
                    &self.standards,
                    input,
                    &Place {
                        location: &h.address.location,
                        residence: h.address.residence,
                        registered_on: h.registered_on,
                    },
                    today,
                    &format!("{prefix}.review"),
                    &mut v,
                )
            {
                reviews.push(RowReview {
                    assessment,
                    certified,
                });
            }
        }
        match household {
            Some(h) if v.is_empty() => Ok((h, reviews)),
            _ => Err(v),
        }
    }

    /// Adds the review years an already imported household lacks.
    #[allow(clippy::too_many_arguments)]
    async fn add_reviews(
        &self,
        conn: &impl ConnectionTrait,
        caller: &Caller,
        household_id: &str,
        row: &CheckedRow,
        have: &HashSet<i32>,
        now: DateTime<Utc>,
        delta: &mut TallyDelta,
    ) -> Result<i32, Violations> {
        let fail = |e: ServiceError| {
            let mut v = Violations::new();
            v.add(
                "external_key",
                format!("cannot add reviews to its household: {e}"),
            );
            v
        };
        let record = households::load(conn, household_id, &self.vault)
            .await
            .map_err(fail)?
            .ok_or_else(|| fail(ServiceError::Internal("household is missing".into())))?;
        let chain = store::certified_chain(conn, household_id)
            .await
            .map_err(fail)?;
        let mut written = 0;
        let mut entering = vec![];
        for r in row
            .reviews
            .iter()
            .filter(|r| !have.contains(&r.assessment.year))
        {
            let transition =
                store::transition_against(&chain, r.assessment.year, r.assessment.class);
            let mut model = new_review(&record, &r.assessment, 1, transition.code(), None, now);
            certify(&mut model, r, &caller.subject, now);
            if model.state == CERTIFIED {
                entering.push(model.id.clone());
            }
            // Written now (not with the batch) so the chain below sees them.
            store::insert(conn, &model).await.map_err(fail)?;
            journal::record(conn, caller, "import", journal_change(&model, "import"))
                .await
                .map_err(fail)?;
            written += 1;
        }
        if !entering.is_empty() {
            store::rechain(conn, household_id, &entering, now, delta)
                .await
                .map_err(fail)?;
        }
        Ok(written)
    }
}

fn certify(model: &mut review::Model, r: &RowReview, by: &str, now: DateTime<Utc>) {
    if let Some((number, date)) = &r.certified {
        model.state = CERTIFIED.to_owned();
        model.decision_number = Some(number.clone());
        model.decision_date = Some(*date);
        model.certified_by = Some(by.to_owned());
        model.certified_at = Some(now);
    }
}

fn accepted(row: &RowRef, household_id: &str, written: i32, new_household: bool) -> RowResult {
    RowResult {
        row: row.clone(),
        outcome: RowOutcome::Written {
            household_id: household_id.to_owned(),
            reviews_written: written,
            new_household,
        },
    }
}

fn row_ref(row: &pb::ImportRow) -> RowRef {
    RowRef {
        row_number: row.row_number,
        external_key: row.external_key.clone(),
    }
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The reviews of a household imported now: transitions follow from its own
/// certified reviews, in year order.
fn reviews_of_new(
    certifier: &str,
    household: &HouseholdRecord,
    reviews: &[RowReview],
    now: DateTime<Utc>,
) -> Vec<review::Model> {
    let mut sorted: Vec<&RowReview> = reviews.iter().collect();
    sorted.sort_by_key(|r| r.assessment.year);
    // Drafts are placed after the certified reviews before them, which is what
    // they would follow once certified.
    let mut certified_so_far: Vec<Class> = vec![];
    let mut out = Vec::with_capacity(sorted.len());
    for r in sorted {
        let transition = poverty::transition_after(&certified_so_far, r.assessment.class);
        if r.certified.is_some() {
            certified_so_far.push(r.assessment.class);
        }
        let mut model = new_review(household, &r.assessment, 1, transition.code(), None, now);
        certify(&mut model, r, certifier, now);
        out.push(model);
    }
    out
}

/// One good row of a batch, with what it becomes if its key is new.
#[derive(Debug, Clone)]
struct PreparedRow {
    checked: CheckedRow,
    hashes: Vec<Option<String>>,
    /// Per member, the hashes of its citizen ID under the lookup keys
    /// rotated away from (none outside a rotation).
    earlier: Vec<Vec<String>>,
    record: HouseholdRecord,
    /// `None` once moved into the statements built ahead on SQLite.
    stored: Option<StoredRows>,
}

/// The rows a new household is written as (encrypted, serialised).
#[derive(Debug, Clone)]
struct StoredRows {
    household_row: household::Model,
    member_rows: Vec<member::Model>,
    state: String,
    new_reviews: Vec<(review::Model, Change)>,
}

impl PreparedRow {
    /// The row that keeps this household's external key, once it is written.
    fn key_row(&self, now: DateTime<Utc>) -> import_key::Model {
        import_key::Model {
            external_key: self.checked.key.clone(),
            household_id: self.record.id.clone(),
            created_at: now,
        }
    }
}

/// A checked batch, ready to write.
#[derive(Debug, Clone)]
pub struct Prepared {
    rows: Vec<RowRef>,
    results: Vec<Option<RowResult>>,
    prepared: Vec<PreparedRow>,
    /// On SQLite, the rows of every good row's household, members, key and
    /// reviews, their tally upserts and their journal, for when all of them
    /// turn out new: built here, they keep SQLite's one writer from waiting
    /// while they are built.
    inserts: Option<SqliteBatch>,
    now: DateTime<Utc>,
}

/// A batch's writes built ahead, for when every row is a new household.
#[derive(Debug, Clone)]
struct SqliteBatch {
    /// The rows, then the tally upserts of its certified reviews.
    rows: Vec<SqliteRows>,
    journal: journal::PreparedGroup,
}

/// The rows writing every prepared row as a new household, in
/// the order the write path inserts them (households before what refers to
/// them), their journal (the households' changes, then the reviews') and
/// tally changes. Each row's stored rows are moved into them, not copied: a
/// batch is held once; in the rare batch that cannot use them (a key known,
/// a citizen ID taken) the write stores its new rows again.
fn sqlite_batch_of(prepared: &mut [PreparedRow], now: DateTime<Utc>) -> SqliteBatch {
    let mut new = NewRows::default();
    for p in prepared.iter_mut() {
        if let Some(stored) = p.stored.take() {
            new.add(p, stored, now);
        }
    }
    let mut changes = new.changes;
    changes.extend(new.review_changes);
    let mut rows = vec![
        SqliteRows::of::<household::Entity>(new.households),
        SqliteRows::of::<member::Entity>(new.members),
        SqliteRows::of::<import_key::Entity>(new.keys),
        SqliteRows::of::<review::Entity>(new.reviews),
    ];
    rows.extend(new.delta.sqlite_rows());
    SqliteBatch {
        rows,
        journal: journal::prepare_group(changes),
    }
}

/// The rows, changes and tally changes of a batch's new households, in the
/// order they are written.
#[derive(Debug, Default)]
struct NewRows {
    households: Vec<household::Model>,
    members: Vec<member::Model>,
    keys: Vec<import_key::Model>,
    reviews: Vec<review::Model>,
    changes: Vec<Change>,
    review_changes: Vec<Change>,
    delta: TallyDelta,
}

impl NewRows {
    fn add(&mut self, p: &PreparedRow, stored: StoredRows, now: DateTime<Utc>) {
        self.keys.push(p.key_row(now));
        self.changes
            .push(household_change(&p.record, "import", stored.state));
        self.households.push(stored.household_row);
        self.members.extend(stored.member_rows);
        for (r, change) in stored.new_reviews {
            if r.state == CERTIFIED {
                self.delta.add(&r, 1);
            }
            self.review_changes.push(change);
            self.reviews.push(r);
        }
    }
}

impl Prepared {
    fn footprint(&self) -> Footprint {
        Footprint {
            keys: self
                .prepared
                .iter()
                .map(|p| p.checked.key.clone())
                .collect(),
            citizens: self
                .prepared
                .iter()
                .flat_map(|p| p.hashes.iter().flatten().cloned())
                .collect(),
        }
    }
}

/// What a batch could collide on with another: its external keys (a household
/// and its reviews) and its members' citizen ID hashes.
#[derive(Debug, Default)]
struct Footprint {
    keys: HashSet<String>,
    citizens: HashSet<String>,
}

impl Footprint {
    fn meets(&self, other: &Footprint) -> bool {
        !self.keys.is_disjoint(&other.keys) || !self.citizens.is_disjoint(&other.citizens)
    }
}
