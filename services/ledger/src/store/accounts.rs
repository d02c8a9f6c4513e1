//! Accounts: found, opened, listed, their balances saved and summed.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};
use sustain_domain::ledger::{self, AccountKind, Balance, FundingSource};
use sustain_platform::auth::Scope;
use sustain_platform::error::ServiceError;
use sustain_platform::placement::selection;

use crate::model::{account, transfer};

/// The account `id`, if there is one.
pub async fn find(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<account::Model>, ServiceError> {
    Ok(account::Entity::find_by_id(id.to_owned()).one(conn).await?)
}

/// The accounts of `ids` that exist, by id.
pub async fn by_ids(
    conn: &impl ConnectionTrait,
    ids: &[String],
) -> Result<HashMap<String, account::Model>, ServiceError> {
    super::by_ids::<account::Entity, _>(conn, ids, |a| a.id.clone()).await
}

/// Writes a new account.
pub async fn insert(conn: &impl ConnectionTrait, row: account::Model) -> Result<(), ServiceError> {
    account::Entity::insert(row.into_active_model())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Writes the new balances of the `touched` accounts.
pub async fn save_balances(
    conn: &impl ConnectionTrait,
    rules: &HashMap<String, ledger::Account>,
    touched: &HashSet<String>,
) -> Result<(), ServiceError> {
    for id in touched {
        let Some(a) = rules.get(id) else { continue };
        account::Entity::update_many()
            .col_expr(
                account::Column::DebitsPending,
                a.balance.debits_pending.into(),
            )
            .col_expr(
                account::Column::DebitsPosted,
                a.balance.debits_posted.into(),
            )
            .col_expr(
                account::Column::CreditsPending,
                a.balance.credits_pending.into(),
            )
            .col_expr(
                account::Column::CreditsPosted,
                a.balance.credits_posted.into(),
            )
            .filter(account::Column::Id.eq(id.as_str()))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// Accounts of `code` and of the codes under it.
pub fn of_project(code: &str) -> Condition {
    Condition::any()
        .add(account::Column::ProjectCode.eq(code))
        .add(account::Column::ProjectCode.like(format!("{code}.%")))
}

/// What a list of accounts is narrowed by, every field checked.
#[derive(Debug, Clone, Default)]
pub struct AccountQuery {
    pub unit: Option<String>,
    pub kind: Option<AccountKind>,
    pub source: Option<FundingSource>,
    pub project: Option<String>,
    pub year: Option<i32>,
    pub reference: Option<String>,
}

/// The accounts in `scope` that `query` asks for, by id after `after`; at
/// most `limit`.
pub async fn list(
    conn: &impl ConnectionTrait,
    scope: &Scope,
    query: &AccountQuery,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<account::Model>, ServiceError> {
    let mut condition = selection(scope, query.unit.as_deref());
    if let Some(k) = query.kind {
        condition = condition.add(account::Column::Kind.eq(k.code()));
    }
    if let Some(s) = query.source {
        condition = condition.add(account::Column::Source.eq(s.code()));
    }
    if let Some(p) = &query.project {
        condition = condition.add(of_project(p));
    }
    if let Some(year) = query.year {
        condition = condition.add(account::Column::Year.eq(year));
    }
    if let Some(r) = &query.reference {
        condition = condition.add(account::Column::ReferenceId.eq(r.as_str()));
    }
    if let Some(after) = after {
        condition = condition.add(Expr::col(account::Column::Id).gt(after));
    }
    Ok(account::Entity::find()
        .filter(condition)
        .order_by_asc(account::Column::Id)
        .limit(limit)
        .all(conn)
        .await?)
}

#[derive(Debug, FromQueryResult)]
struct Sums {
    debits_pending: i64,
    debits_posted: i64,
    credits_pending: i64,
    credits_posted: i64,
}

/// An account's balance at the end of `on`, summed from its transfers.
pub async fn balance_as_of(
    conn: &impl ConnectionTrait,
    id: &str,
    on: NaiveDate,
) -> Result<Balance, ServiceError> {
    // `id` is a checked UUID and `on` a date: both safe as literals.
    let sum = |side: &str, when: &str| {
        Expr::cust(format!(
            "CAST(COALESCE(SUM(CASE WHEN {side}_account_id = '{id}' AND {when} THEN amount ELSE 0 END), 0) AS BIGINT)"
        ))
    };
    let posted = format!("posted_on IS NOT NULL AND posted_on <= '{on}'");
    let pending = format!(
        "pending AND value_date <= '{on}' AND (resolved_on IS NULL OR resolved_on > '{on}')"
    );
    let s = transfer::Entity::find()
        .select_only()
        .column_as(sum("debit", &pending), "debits_pending")
        .column_as(sum("debit", &posted), "debits_posted")
        .column_as(sum("credit", &pending), "credits_pending")
        .column_as(sum("credit", &posted), "credits_posted")
        .filter(
            Condition::any()
                .add(transfer::Column::DebitAccountId.eq(id))
                .add(transfer::Column::CreditAccountId.eq(id)),
        )
        .into_model::<Sums>()
        .one(conn)
        .await?;
    Ok(s.map(|s| Balance {
        debits_pending: s.debits_pending,
        debits_posted: s.debits_posted,
        credits_pending: s.credits_pending,
        credits_posted: s.credits_posted,
    })
    .unwrap_or_default())
}
