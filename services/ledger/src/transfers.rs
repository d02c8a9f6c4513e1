//! Transfers: made singly or in linked batches (all legs or none), pending
//! ones posted or voided once, reversals that move posted money back. Every
//! write locks the chain head first, checks each leg with the domain rules
//! against the balances as they stand, then writes the transfers, the new
//! balances and the chain entries in the same transaction.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, NaiveDate};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use sustain_db::begin_write;
use sustain_domain::Violations;
use sustain_domain::ledger::{self, AccountKind, Phase, Refusal};
use sustain_platform::Caller;
use sustain_platform::api::{
    Page, known_unit, new_id, now, optional_date, page_size, required_id, text, today,
};
use sustain_platform::error::ServiceError;
use sustain_proto::ledger::v1 as pb;
use tonic::{Request, Response, Status};

use crate::accounts::{checked_project, placement_of, readable};
use crate::chain::{self, Chain};
use crate::convert::{rules_of, transfer_to_proto};
use crate::model::{account, transfer};
use crate::store;
use crate::{READ, WRITE, check};

use sustain_domain::ledger::transfer_state::{PENDING, POSTED, VOIDED};

/// Most legs in one linked batch.
pub const MAX_LEGS: usize = 1_000;
const MAX_MEMO_CHARS: usize = 500;

/// One leg as asked for, checked field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub id: String,
    pub debit: String,
    pub credit: String,
    pub amount: i64,
    pub pending: bool,
    pub reverses: Option<String>,
    /// `None`: today, as stored when first made.
    pub value_date: Option<NaiveDate>,
    pub memo: String,
}

impl Leg {
    /// Whether a stored transfer is this leg made before (a retry).
    fn made_as(&self, t: &transfer::Model) -> bool {
        t.debit_account_id == self.debit
            && t.credit_account_id == self.credit
            && t.amount == self.amount
            && t.pending == self.pending
            && t.reverses_id == self.reverses
            && self.value_date.is_none_or(|d| d == t.value_date)
            && t.memo == self.memo
    }
}

/// The legs of a CreateTransfers request; every bad field named.
pub fn checked_legs(
    request: &pb::CreateTransfersRequest,
    today: NaiveDate,
) -> Result<Vec<Leg>, ServiceError> {
    let mut v = Violations::new();
    if request.transfers.is_empty() {
        v.add("transfers", "is required");
    } else if request.transfers.len() > MAX_LEGS {
        v.add("transfers", format!("at most {MAX_LEGS} in one batch"));
    }
    let mut seen = HashSet::new();
    let mut legs = Vec::with_capacity(request.transfers.len());
    for (i, t) in request.transfers.iter().enumerate() {
        let field = |name: &str| format!("transfers[{i}].{name}");
        let id = required_id(&t.id, &field("id"), &mut v);
        if !id.is_empty() && !seen.insert(id.clone()) {
            v.add(field("id"), "is listed twice");
        }
        let debit = required_id(&t.debit_account_id, &field("debit_account_id"), &mut v);
        let credit = required_id(&t.credit_account_id, &field("credit_account_id"), &mut v);
        if !debit.is_empty()
            && let Err(r) = ledger::two_accounts(&debit, &credit)
        {
            v.add(field("credit_account_id"), r.to_string());
        }
        if t.amount_vnd <= 0 {
            v.add(field("amount_vnd"), "must be a positive number of đồng");
        }
        let reverses = (!t.reverses_id.trim().is_empty())
            .then(|| required_id(&t.reverses_id, &field("reverses_id"), &mut v));
        if reverses.is_some() && t.pending {
            v.add(field("pending"), "a reversal is posted at once");
        }
        let value_date = optional_date(&t.value_date, &field("value_date"), &mut v);
        if value_date.is_some_and(|d| d > today) {
            v.add(field("value_date"), "must not be in the future");
        } else if value_date.is_some_and(|d| d.year() < 2000) {
            v.add(field("value_date"), "must be in 2000 or later");
        }
        let memo = text(&t.memo, &field("memo"), MAX_MEMO_CHARS, false, &mut v);
        for (name, set) in [
            ("state", t.state != 0),
            ("batch_id", !t.batch_id.is_empty()),
            ("sequence", t.sequence != 0),
        ] {
            if set {
                v.add(field(name), "is output only");
            }
        }
        legs.push(Leg {
            id,
            debit,
            credit,
            amount: t.amount_vnd,
            pending: t.pending,
            reverses,
            value_date,
            memo,
        });
    }
    check(v)?;
    Ok(legs)
}

fn refused(i: usize, account: &str, r: Refusal) -> ServiceError {
    match r {
        Refusal::NotPositive => {
            ServiceError::invalid(format!("transfers[{i}].amount_vnd"), r.to_string())
        }
        Refusal::SameAccount | Refusal::Source { .. } | Refusal::Flow { .. } => {
            ServiceError::invalid(format!("transfers[{i}].credit_account_id"), r.to_string())
        }
        Refusal::Overspend { .. } => ServiceError::FailedPrecondition {
            reason: "INSUFFICIENT_FUNDS",
            message: format!(
                "transfers[{i}]: account {account} must not overspend: {r}; nothing was written"
            ),
        },
        Refusal::Overflow => ServiceError::FailedPrecondition {
            reason: "BALANCE_OVERFLOW",
            message: format!("transfers[{i}]: {r}; nothing was written"),
        },
    }
}

/// Makes `legs` as one batch inside `conn`'s transaction, or nothing. A
/// retry of a batch already made returns it as made.
pub async fn create(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    legs: &[Leg],
) -> Result<Vec<transfer::Model>, ServiceError> {
    let mut chain = Chain::lock(conn).await?;
    let account_ids: Vec<String> = legs
        .iter()
        .flat_map(|l| [l.debit.clone(), l.credit.clone()])
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let accounts = store::accounts::by_ids(conn, &account_ids).await?;
    // Scope first: even a retry answers only a caller who may move the money.
    for a in accounts.values() {
        caller.require_placement(&placement_of(a))?;
    }
    let ids: Vec<String> = legs.iter().map(|l| l.id.clone()).collect();
    let existing = store::transfers::by_ids(conn, &ids).await?;
    if !existing.is_empty() {
        return made_before(legs, existing);
    }
    let originals_ids: Vec<String> = legs.iter().filter_map(|l| l.reverses.clone()).collect();
    let originals = store::transfers::by_ids(conn, &originals_ids).await?;
    let reversed = store::transfers::reversed_amounts(conn, &originals_ids).await?;
    let routes = routed(legs, &accounts, &originals)?;
    reversals_within(legs, &originals, reversed)?;
    let mut rules = rules_by_id(&accounts)?;
    let rows = legs_applied(legs, &routes, &accounts, &mut rules, &mut chain)?;
    store::transfers::insert(conn, rows.clone()).await?;
    let touched: HashSet<String> = account_ids.into_iter().collect();
    store::accounts::save_balances(conn, &rules, &touched).await?;
    chain.save(conn, caller).await?;
    Ok(rows)
}

/// A batch whose legs were made before: the batch as made when this is its
/// retry, ALREADY_EXISTS when it is not.
fn made_before(
    legs: &[Leg],
    existing: HashMap<String, transfer::Model>,
) -> Result<Vec<transfer::Model>, ServiceError> {
    let mut batches = HashSet::new();
    for (i, leg) in legs.iter().enumerate() {
        let (reason, why) = match existing.get(&leg.id) {
            Some(t) if leg.made_as(t) => {
                batches.insert(t.batch_id.clone());
                continue;
            }
            Some(_) => (
                "TRANSFER_EXISTS",
                "exists with different content; a new transfer needs a new id",
            ),
            None => (
                "BATCH_PARTLY_MADE",
                "is new but other legs of this batch were made before; send the batch as it was first sent",
            ),
        };
        return Err(ServiceError::AlreadyExists {
            reason,
            message: format!("transfers[{i}]: transfer {} {why}", leg.id),
            metadata: vec![("transfer_id", leg.id.clone())],
        });
    }
    if batches.len() > 1 {
        return Err(ServiceError::AlreadyExists {
            reason: "BATCH_PARTLY_MADE",
            message: "these transfers were made in different batches".into(),
            metadata: vec![],
        });
    }
    let mut made: Vec<transfer::Model> = existing.into_values().collect();
    made.sort_by_key(|t| t.leg);
    if made.len() == legs.len() {
        return Ok(made);
    }
    Err(ServiceError::AlreadyExists {
        reason: "BATCH_PARTLY_MADE",
        message: "the batch was made with other legs; send it as it was first sent".into(),
        metadata: vec![],
    })
}

/// Each leg's edge as the domain allowed it; every leg naming a missing
/// account, a refused edge or a reversal that does not move the money back
/// is named.
fn routed(
    legs: &[Leg],
    accounts: &HashMap<String, account::Model>,
    originals: &HashMap<String, transfer::Model>,
) -> Result<Vec<ledger::Routed>, ServiceError> {
    let mut v = Violations::new();
    let mut routes = Vec::with_capacity(legs.len());
    for (i, leg) in legs.iter().enumerate() {
        let field = |name: &str| format!("transfers[{i}].{name}");
        let route = |id: &str, name: &str, v: &mut Violations| {
            let a = accounts.get(id);
            if a.is_none() {
                v.add(field(name), "no such account");
            }
            a.and_then(|a| {
                AccountKind::from_code(&a.kind).map(|kind| ledger::Route {
                    id: &a.id,
                    kind,
                    source: &a.source,
                })
            })
        };
        let (d, c) = (
            route(&leg.debit, "debit_account_id", &mut v),
            route(&leg.credit, "credit_account_id", &mut v),
        );
        if let (Some(d), Some(c)) = (d, c) {
            match ledger::route(&d, &c, leg.reverses.is_some()) {
                Ok(r) => routes.push(r),
                Err(r) => v.add(field("credit_account_id"), r.to_string()),
            }
        }
        if let Some(original) = &leg.reverses {
            match originals.get(original) {
                None => v.add(field("reverses_id"), "no such transfer"),
                Some(o) if o.debit_account_id != leg.credit || o.credit_account_id != leg.debit => {
                    v.add(
                        field("reverses_id"),
                        format!(
                            "a reversal moves the money back: debit {} and credit {}",
                            o.credit_account_id, o.debit_account_id
                        ),
                    )
                }
                Some(_) => {}
            }
        }
    }
    check(v)?;
    if routes.len() != legs.len() {
        return Err(ServiceError::Internal(
            "an account has an unknown kind".into(),
        ));
    }
    Ok(routes)
}

/// FAILED_PRECONDITION unless every reversal takes back posted money, no more
/// than is left of it after what `reversed` took back before.
fn reversals_within(
    legs: &[Leg],
    originals: &HashMap<String, transfer::Model>,
    mut reversed: HashMap<String, i64>,
) -> Result<(), ServiceError> {
    for (i, leg) in legs.iter().enumerate() {
        let Some(original) = leg.reverses.as_ref().and_then(|o| originals.get(o)) else {
            continue;
        };
        if original.state != POSTED {
            return Err(ServiceError::FailedPrecondition {
                reason: "NOT_POSTED",
                message: format!(
                    "transfers[{i}]: transfer {} is {}; only posted money is reversed (void a pending one)",
                    original.id, original.state
                ),
            });
        }
        let done = reversed.entry(original.id.clone()).or_default();
        if original.amount - *done < leg.amount {
            return Err(ServiceError::FailedPrecondition {
                reason: "REVERSAL_EXCEEDS_ORIGINAL",
                message: format!(
                    "transfers[{i}]: {} VND of transfer {} is left to reverse; {} asked",
                    original.amount - *done,
                    original.id,
                    leg.amount
                ),
            });
        }
        *done += leg.amount;
    }
    Ok(())
}

/// The accounts as the rules see them.
fn rules_by_id(
    accounts: &HashMap<String, account::Model>,
) -> Result<HashMap<String, ledger::Account>, ServiceError> {
    accounts
        .values()
        .map(|a| {
            rules_of(a).map(|r| (a.id.clone(), r)).ok_or_else(|| {
                ServiceError::Internal(format!("account {} has an unknown kind", a.id))
            })
        })
        .collect()
}

/// Applies each leg to the balances in `rules` and appends it to `chain`:
/// the rows to write, or the first leg the balances refuse.
fn legs_applied(
    legs: &[Leg],
    routes: &[ledger::Routed],
    accounts: &HashMap<String, account::Model>,
    rules: &mut HashMap<String, ledger::Account>,
    chain: &mut Chain,
) -> Result<Vec<transfer::Model>, ServiceError> {
    let at = now();
    let today = today();
    let batch_id = new_id();
    let mut rows = Vec::with_capacity(legs.len());
    for (i, (leg, routed)) in legs.iter().zip(routes).enumerate() {
        let (Some(mut d), Some(mut c)) = (
            rules.get(&leg.debit).copied(),
            rules.get(&leg.credit).copied(),
        ) else {
            return Err(ServiceError::Internal("account vanished".into()));
        };
        let phase = if leg.pending {
            Phase::Pending
        } else {
            Phase::Single
        };
        ledger::open(&mut d, &mut c, leg.amount, phase, *routed)
            .map_err(|r| refused(i, &leg.debit, r))?;
        rules.insert(leg.debit.clone(), d);
        rules.insert(leg.credit.clone(), c);
        let value_date = leg.value_date.unwrap_or(today);
        let mut row = transfer::Model {
            id: leg.id.clone(),
            batch_id: batch_id.clone(),
            leg: i as i32,
            debit_account_id: leg.debit.clone(),
            credit_account_id: leg.credit.clone(),
            amount: leg.amount,
            pending: leg.pending,
            reverses_id: leg.reverses.clone(),
            value_date,
            memo: leg.memo.clone(),
            state: if leg.pending { PENDING } else { POSTED }.to_owned(),
            posted_on: (!leg.pending).then_some(value_date),
            resolved_on: None,
            sequence: chain.next(),
            resolve_sequence: None,
            created_at: at,
        };
        let unit = accounts
            .get(&row.debit_account_id)
            .map(|a| a.unit_code.clone())
            .unwrap_or_default();
        row.sequence = chain.append(
            chain::TRANSFER,
            &row.id,
            &chain::transfer_bytes(row.sequence, &row),
            &unit,
            &row,
        );
        rows.push(row);
    }
    Ok(rows)
}

/// The transfer `id` and its two accounts; NOT_FOUND when there is none.
async fn with_accounts(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<(transfer::Model, HashMap<String, account::Model>), ServiceError> {
    let t = store::transfers::find(conn, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound {
            resource: "transfer",
            id: id.to_owned(),
        })?;
    let accounts = store::accounts::by_ids(
        conn,
        &[t.debit_account_id.clone(), t.credit_account_id.clone()],
    )
    .await?;
    Ok((t, accounts))
}

/// Posts (`post`) or voids a pending transfer inside `conn`'s transaction.
/// Asking again for what was done returns the transfer as it is.
pub async fn resolve(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    id: &str,
    on: Option<NaiveDate>,
    post: bool,
) -> Result<transfer::Model, ServiceError> {
    let mut chain = Chain::lock(conn).await?;
    let (mut t, accounts) = with_accounts(conn, id).await?;
    for a in accounts.values() {
        caller.require_placement(&placement_of(a))?;
    }
    let wanted = if post { POSTED } else { VOIDED };
    if t.pending && t.state == wanted {
        return Ok(t);
    }
    resolvable(&t, on)?;
    let on = on.unwrap_or_else(today);
    let (Some(d), Some(c)) = (
        accounts.get(&t.debit_account_id),
        accounts.get(&t.credit_account_id),
    ) else {
        return Err(ServiceError::Internal(format!(
            "transfer {id} names a missing account"
        )));
    };
    let (Some(mut dr), Some(mut cr)) = (rules_of(d), rules_of(c)) else {
        return Err(ServiceError::Internal(
            "an account has an unknown kind".into(),
        ));
    };
    ledger::resolve(&mut dr, &mut cr, t.amount, post);
    t.state = wanted.to_owned();
    t.resolved_on = Some(on);
    if post {
        t.posted_on = Some(on);
    }
    let seq = chain.next();
    t.resolve_sequence = Some(seq);
    chain.append(
        if post { chain::POST } else { chain::VOID },
        &t.id,
        &chain::resolution_bytes(seq, &t),
        &d.unit_code,
        &t,
    );
    if !store::transfers::save_resolution(conn, &t).await? {
        return Err(ServiceError::Aborted {
            reason: "CONCURRENT_RESOLUTION",
            message: format!("transfer {id} was resolved meanwhile; read it again"),
        });
    }
    let rules = HashMap::from([(d.id.clone(), dr), (c.id.clone(), cr)]);
    let touched = HashSet::from([d.id.clone(), c.id.clone()]);
    store::accounts::save_balances(conn, &rules, &touched).await?;
    chain.save(conn, caller).await?;
    Ok(t)
}

/// FAILED_PRECONDITION unless `t` is pending: made pending and not resolved
/// yet; INVALID_ARGUMENT when `on` is before its value date.
fn resolvable(t: &transfer::Model, on: Option<NaiveDate>) -> Result<(), ServiceError> {
    let id = &t.id;
    if !t.pending {
        return Err(ServiceError::FailedPrecondition {
            reason: "NOT_PENDING",
            message: format!("transfer {id} was posted when it was made; reverse it instead"),
        });
    }
    if t.state != PENDING {
        return Err(ServiceError::FailedPrecondition {
            reason: if t.state == POSTED {
                "ALREADY_POSTED"
            } else {
                "ALREADY_VOIDED"
            },
            message: format!(
                "transfer {id} is already {}; a pending transfer is resolved once",
                t.state
            ),
        });
    }
    if on.is_some_and(|on| on < t.value_date) {
        return Err(ServiceError::invalid(
            "value_date",
            format!("is before the transfer's own value date ({})", t.value_date),
        ));
    }
    Ok(())
}

/// A list of transfers as asked for, every field checked.
fn checked_list(
    r: &pb::ListTransfersRequest,
) -> Result<(store::transfers::TransferQuery, Page), ServiceError> {
    let filter = r.filter.clone().unwrap_or_default();
    let mut v = Violations::new();
    let size = page_size(r.page_size, &mut v).unwrap_or_default();
    let account = (!filter.account_id.trim().is_empty())
        .then(|| required_id(&filter.account_id, "filter.account_id", &mut v));
    let from = optional_date(&filter.from_date, "filter.from_date", &mut v);
    let to = optional_date(&filter.to_date, "filter.to_date", &mut v);
    if let (Some(f), Some(t)) = (from, to)
        && t < f
    {
        v.add("filter.to_date", "is before filter.from_date");
    }
    let unit = known_unit(&filter.unit_code, "filter.unit_code", &mut v);
    let project = (!filter.project_code.trim().is_empty())
        .then(|| checked_project(&filter.project_code, "filter.project_code", &mut v));
    check(v)?;
    let page = Page::asked(size, &r.page_token, prost::Message::encode_to_vec(&filter))?;
    let query = store::transfers::TransferQuery {
        account,
        unit,
        project,
        from,
        to,
    };
    Ok((query, page))
}

#[derive(Debug, Clone)]
pub struct TransferApi {
    pub db: DatabaseConnection,
}

impl TransferApi {
    async fn readable_transfer(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<transfer::Model, ServiceError> {
        let (t, accounts) = with_accounts(&self.db, id).await?;
        // Readable by whoever may read either side.
        if accounts
            .values()
            .any(|a| caller.scope.covers_placement(&placement_of(a)))
        {
            Ok(t)
        } else {
            Err(ServiceError::PermissionDenied {
                reason: "OUT_OF_SCOPE",
                message: format!(
                    "transfer {id} moves money between accounts outside the caller's scope"
                ),
            })
        }
    }

    async fn resolve_rpc(
        &self,
        caller: Caller,
        id: &str,
        value_date: &str,
        post: bool,
    ) -> Result<transfer::Model, ServiceError> {
        caller.require(
            if post {
                "post transfers"
            } else {
                "void transfers"
            },
            WRITE,
        )?;
        let mut v = Violations::new();
        let id = required_id(id, "id", &mut v);
        let on = optional_date(value_date, "value_date", &mut v);
        if on.is_some_and(|d| d > today()) {
            v.add("value_date", "must not be in the future");
        }
        check(v)?;
        let txn = begin_write(&self.db).await?;
        let t = resolve(&txn, &caller, &id, on, post).await?;
        txn.commit().await?;
        Ok(t)
    }
}

#[tonic::async_trait]
impl pb::transfer_service_server::TransferService for TransferApi {
    async fn create_transfers(
        &self,
        request: Request<pb::CreateTransfersRequest>,
    ) -> Result<Response<pb::CreateTransfersResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("move money", WRITE)?;
        let legs = checked_legs(request.get_ref(), today())?;
        let txn = begin_write(&self.db).await.map_err(ServiceError::from)?;
        let made = create(&txn, &caller, &legs).await?;
        txn.commit().await.map_err(ServiceError::from)?;
        tracing::info!(legs = made.len(), "transfers made");
        Ok(Response::new(pb::CreateTransfersResponse {
            transfers: made.iter().map(transfer_to_proto).collect(),
        }))
    }

    async fn post_transfer(
        &self,
        request: Request<pb::PostTransferRequest>,
    ) -> Result<Response<pb::PostTransferResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let t = self.resolve_rpc(caller, &r.id, &r.value_date, true).await?;
        Ok(Response::new(pb::PostTransferResponse {
            transfer: Some(transfer_to_proto(&t)),
        }))
    }

    async fn void_transfer(
        &self,
        request: Request<pb::VoidTransferRequest>,
    ) -> Result<Response<pb::VoidTransferResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let r = request.get_ref();
        let t = self
            .resolve_rpc(caller, &r.id, &r.value_date, false)
            .await?;
        Ok(Response::new(pb::VoidTransferResponse {
            transfer: Some(transfer_to_proto(&t)),
        }))
    }

    async fn get_transfer(
        &self,
        request: Request<pb::GetTransferRequest>,
    ) -> Result<Response<pb::GetTransferResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read transfers", READ)?;
        let mut v = Violations::new();
        let id = required_id(&request.get_ref().id, "id", &mut v);
        check(v)?;
        let t = self.readable_transfer(&caller, &id).await?;
        Ok(Response::new(pb::GetTransferResponse {
            transfer: Some(transfer_to_proto(&t)),
        }))
    }

    async fn list_transfers(
        &self,
        request: Request<pb::ListTransfersRequest>,
    ) -> Result<Response<pb::ListTransfersResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read transfers", READ)?;
        let (query, page) = checked_list(request.get_ref())?;
        if let Some(unit) = &query.unit {
            caller.require_unit(unit)?;
        }
        if let Some(id) = &query.account {
            readable(&self.db, &caller, id).await?;
        }
        let rows = store::transfers::list(
            &self.db,
            &caller.scope,
            &query,
            page.after.as_deref(),
            page.limit(),
        )
        .await?;
        let (rows, next) = page.cut(rows, |t| t.id.as_str());
        Ok(Response::new(pb::ListTransfersResponse {
            transfers: rows.iter().map(transfer_to_proto).collect(),
            next_page_token: next,
        }))
    }
}
