//! Accounts: opened by finance officers for a source, plan, allocation or
//! expenditure of a unit, Project and year; read with their balances, now or
//! as of a past day.

use chrono::NaiveDate;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use sustain_domain::Violations;
use sustain_domain::ledger::AccountKind;
use sustain_domain::programme::{PROGRAMME_CODE, code_within};
use sustain_platform::Caller;
use sustain_platform::api::{
    Page, known_unit, new_id, now, optional_date, page_size, required_id, text, today,
};
use sustain_platform::crypto::FieldCipher;
use sustain_platform::error::{ServiceError, checked};
use sustain_platform::journal::{self, IdempotencyKey};
use sustain_platform::placement::Placement;
use sustain_proto::ledger::v1 as pb;
use tonic::{Request, Response, Status};

use crate::chain::{self, Chain};
use crate::convert::{account_to_proto, balance_to_proto, kind_from_proto, source_from_proto};
use crate::model::account;
use crate::store;
use crate::{OPEN, READ, check};

const MAX_NAME_CHARS: usize = 300;
const MAX_CODE_CHARS: usize = 64;

pub fn placement_of(a: &account::Model) -> Placement {
    Placement {
        unit_code: a.unit_code.clone(),
        province_code: a.province_code.clone(),
        district_code: a.district_code.clone(),
        commune_code: a.commune_code.clone(),
        current_commune_code: a.current_commune_code.clone(),
    }
}

/// A Decision 90 catalogue code, or a province's own code under one: letters,
/// digits, dots and dashes only, so it is safe in a LIKE pattern.
pub fn checked_project(raw: &str, field: &str, v: &mut Violations) -> String {
    let code = raw.trim().to_owned();
    let well_formed = !code.is_empty()
        && code.chars().count() <= MAX_CODE_CHARS
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !well_formed {
        v.add(
            field,
            format!("must be a programme code of at most {MAX_CODE_CHARS} letters, digits, dots and dashes"),
        );
    } else if !code_within(&code, PROGRAMME_CODE) {
        v.add(
            field,
            format!(
                "must be {PROGRAMME_CODE} or a code under it (Decision 90: NTP-SPR.1 … NTP-SPR.7)"
            ),
        );
    }
    code
}

/// An account the caller may read.
pub async fn readable(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    id: &str,
) -> Result<account::Model, ServiceError> {
    let a = store::accounts::find(conn, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound {
            resource: "account",
            id: id.to_owned(),
        })?;
    caller.require_placement(&placement_of(&a))?;
    Ok(a)
}

/// An account as asked for, checked; its placement comes with it.
fn checked_account(
    a: &pb::Account,
    today: NaiveDate,
) -> Result<(account::Model, Placement), ServiceError> {
    let mut v = Violations::new();
    let kind = pb::AccountKind::try_from(a.kind)
        .ok()
        .and_then(kind_from_proto);
    if kind.is_none() {
        v.add(
            "account.kind",
            "is required: source, plan, allocation or expenditure",
        );
    }
    let source = pb::FundingSource::try_from(a.source)
        .ok()
        .and_then(source_from_proto);
    if source.is_none() {
        v.add("account.source", "is required");
    }
    let name = text(&a.name, "account.name", MAX_NAME_CHARS, true, &mut v);
    let unit = a.unit_code.trim().to_owned();
    // A unit as it was in the account's year: 2024 money went to communes the
    // 2025 reform later merged.
    let on = NaiveDate::from_ymd_opt(a.year, 12, 31)
        .filter(|d| a.year >= 2000 && *d < today)
        .unwrap_or(today);
    let placement = if unit.is_empty() {
        v.add("account.unit_code", "is required");
        None
    } else {
        match Placement::of_unit(&unit, on, today) {
            Ok(p) => Some(p),
            Err(reason) => {
                v.add("account.unit_code", reason);
                None
            }
        }
    };
    let is_source = kind == Some(AccountKind::Source);
    let project = if a.project_code.trim().is_empty() && is_source {
        String::new()
    } else if a.project_code.trim().is_empty() {
        v.add("account.project_code", "is required but for sources");
        String::new()
    } else {
        checked_project(&a.project_code, "account.project_code", &mut v)
    };
    if (a.year != 0 || !is_source) && !(2000..=2100).contains(&a.year) {
        v.add(
            "account.year",
            if is_source {
                "must be 0 or a year between 2000 and 2100"
            } else {
                "is required: a year between 2000 and 2100"
            },
        );
    }
    let purpose = pb::SpendingPurpose::try_from(a.purpose).ok();
    if purpose.is_none() {
        v.add("account.purpose", "is not a spending purpose");
    }
    let purpose = purpose
        .map(crate::convert::purpose_code)
        .unwrap_or_default();
    let mut reference = a.reference_id.trim().to_owned();
    if kind != Some(AccountKind::Expenditure) && (!purpose.is_empty() || !reference.is_empty()) {
        v.add(
            "account.purpose",
            "only expenditure says what it is spent on",
        );
    } else if !reference.is_empty() {
        if purpose.is_empty() {
            v.add("account.purpose", "is required with a reference_id");
        }
        reference = sustain_platform::api::required_id(&reference, "account.reference_id", &mut v);
    }
    if !a.id.is_empty() {
        v.add("account.id", "is output only");
    }
    if a.balance.is_some() {
        v.add(
            "account.balance",
            "is output only: balances move only by transfers",
        );
    }
    let ((kind, source), placement) = checked(kind.zip(source).zip(placement), v)?;
    let row = account::Model {
        id: new_id(),
        kind: kind.code().to_owned(),
        source: source.code().to_owned(),
        name,
        project_code: project,
        year: a.year,
        unit_code: placement.unit_code.clone(),
        province_code: placement.province_code.clone(),
        district_code: placement.district_code.clone(),
        commune_code: placement.commune_code.clone(),
        current_commune_code: placement.current_commune_code.clone(),
        guarded: kind.guarded_by_default() || a.must_not_overspend,
        purpose: purpose.to_owned(),
        reference_id: reference,
        debits_pending: 0,
        debits_posted: 0,
        credits_pending: 0,
        credits_posted: 0,
        sequence: 0,
        created_at: now(),
    };
    Ok((row, placement))
}

/// Opens `row` inside `conn`'s transaction: its entry goes on the chain.
pub async fn open(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    mut row: account::Model,
) -> Result<account::Model, ServiceError> {
    let mut chain = Chain::lock(conn).await?;
    row.sequence = chain.next();
    chain.append(
        chain::ACCOUNT,
        &row.id,
        &chain::account_bytes(row.sequence, &row),
        &row.unit_code,
        &row,
    );
    store::accounts::insert(conn, row.clone()).await?;
    chain.save(conn, caller).await?;
    Ok(row)
}

/// A list of accounts as asked for, every field checked.
fn checked_list(
    r: &pb::ListAccountsRequest,
) -> Result<(store::accounts::AccountQuery, Page), ServiceError> {
    let filter = r.filter.clone().unwrap_or_default();
    let mut v = Violations::new();
    let size = page_size(r.page_size, &mut v).unwrap_or_default();
    let unit = known_unit(&filter.unit_code, "filter.unit_code", &mut v);
    let kind = pb::AccountKind::try_from(filter.kind)
        .ok()
        .and_then(kind_from_proto);
    if filter.kind != 0 && kind.is_none() {
        v.add("filter.kind", "is not an account kind");
    }
    let source = pb::FundingSource::try_from(filter.source)
        .ok()
        .and_then(source_from_proto);
    if filter.source != 0 && source.is_none() {
        v.add("filter.source", "is not a funding source");
    }
    let project = (!filter.project_code.trim().is_empty())
        .then(|| checked_project(&filter.project_code, "filter.project_code", &mut v));
    if filter.year != 0 && !(2000..=2100).contains(&filter.year) {
        v.add("filter.year", "must be between 2000 and 2100");
    }
    let reference = (!filter.reference_id.trim().is_empty())
        .then(|| required_id(&filter.reference_id, "filter.reference_id", &mut v));
    check(v)?;
    let page = Page::asked(size, &r.page_token, prost::Message::encode_to_vec(&filter))?;
    let query = store::accounts::AccountQuery {
        unit,
        kind,
        source,
        project,
        year: (filter.year != 0).then_some(filter.year),
        reference,
    };
    Ok((query, page))
}

#[derive(Debug, Clone)]
pub struct AccountApi {
    pub db: DatabaseConnection,
    pub cipher: FieldCipher,
}

#[tonic::async_trait]
impl pb::account_service_server::AccountService for AccountApi {
    async fn create_account(
        &self,
        request: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::CreateAccountResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("open accounts", OPEN)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(&caller, "CreateAccount", &request.request_id, &request)?;
        let sent = request.account.clone().unwrap_or_default();
        let (row, placement) = checked_account(&sent, today())?;
        caller.require_placement(&placement)?;
        let answer = journal::run_once(&self.db, &self.cipher, key, |txn| async move {
            let row = open(&txn, &caller, row).await?;
            Ok((
                pb::CreateAccountResponse {
                    account: Some(account_to_proto(&row)),
                },
                txn,
            ))
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::GetAccountResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read accounts", READ)?;
        let mut v = Violations::new();
        let id = required_id(&request.get_ref().id, "id", &mut v);
        check(v)?;
        let a = readable(&self.db, &caller, &id).await?;
        Ok(Response::new(pb::GetAccountResponse {
            account: Some(account_to_proto(&a)),
        }))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read accounts", READ)?;
        let (query, page) = checked_list(request.get_ref())?;
        if let Some(unit) = &query.unit {
            caller.require_unit(unit)?;
        }
        let rows = store::accounts::list(
            &self.db,
            &caller.scope,
            &query,
            page.after.as_deref(),
            page.limit(),
        )
        .await?;
        let (rows, next) = page.cut(rows, |a| a.id.as_str());
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: rows.iter().map(account_to_proto).collect(),
            next_page_token: next,
        }))
    }

    async fn get_balance(
        &self,
        request: Request<pb::GetBalanceRequest>,
    ) -> Result<Response<pb::GetBalanceResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read balances", READ)?;
        let r = request.get_ref();
        let mut v = Violations::new();
        let id = required_id(&r.account_id, "account_id", &mut v);
        let as_of = optional_date(&r.as_of, "as_of", &mut v);
        check(v)?;
        let a = readable(&self.db, &caller, &id).await?;
        let (on, balance) = match as_of {
            None => (today(), crate::convert::balance_of(&a)),
            Some(on) => (on, store::accounts::balance_as_of(&self.db, &id, on).await?),
        };
        Ok(Response::new(pb::GetBalanceResponse {
            account_id: id,
            as_of: on.to_string(),
            balance: Some(balance_to_proto(&balance)),
        }))
    }
}
