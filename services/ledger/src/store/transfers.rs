//! Transfers: found, written, resolved, summed by what reversed them, listed.

use std::collections::HashMap;

use chrono::NaiveDate;
use sea_orm::sea_query::{Condition, Expr, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect,
};
use sustain_db::in_json_list;
use sustain_domain::ledger::transfer_state::{PENDING, VOIDED};
use sustain_platform::auth::Scope;
use sustain_platform::error::ServiceError;
use sustain_platform::placement::selection;

use crate::model::{account, transfer};

/// The transfer `id`, if there is one.
pub async fn find(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<transfer::Model>, ServiceError> {
    Ok(transfer::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await?)
}

/// The transfers of `ids` that exist, by id.
pub async fn by_ids(
    conn: &impl ConnectionTrait,
    ids: &[String],
) -> Result<HashMap<String, transfer::Model>, ServiceError> {
    super::by_ids::<transfer::Entity, _>(conn, ids, |t| t.id.clone()).await
}

/// Writes new transfers.
pub async fn insert(
    conn: &impl ConnectionTrait,
    rows: Vec<transfer::Model>,
) -> Result<(), ServiceError> {
    sustain_db::insert_statements::<transfer::Entity>(conn, rows, &[]).await?;
    Ok(())
}

#[derive(Debug, FromQueryResult)]
struct Reversed {
    reverses_id: String,
    amount: i64,
}

/// How much of each of `originals` has been reversed already.
pub async fn reversed_amounts(
    conn: &impl ConnectionTrait,
    originals: &[String],
) -> Result<HashMap<String, i64>, ServiceError> {
    if originals.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<Reversed> = transfer::Entity::find()
        .select_only()
        .column(transfer::Column::ReversesId)
        .column_as(Expr::cust("CAST(SUM(amount) AS BIGINT)"), "amount")
        .filter(in_json_list(
            conn.get_database_backend(),
            "reverses_id",
            originals,
        )?)
        .filter(transfer::Column::State.ne(VOIDED))
        .group_by(transfer::Column::ReversesId)
        .into_model::<Reversed>()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.reverses_id, r.amount))
        .collect())
}

/// Writes `t`'s resolution if it is still pending; whether it was.
pub async fn save_resolution(
    conn: &impl ConnectionTrait,
    t: &transfer::Model,
) -> Result<bool, ServiceError> {
    let updated = transfer::Entity::update_many()
        .col_expr(transfer::Column::State, Expr::val(t.state.clone()))
        .col_expr(transfer::Column::PostedOn, Expr::val(t.posted_on))
        .col_expr(transfer::Column::ResolvedOn, Expr::val(t.resolved_on))
        .col_expr(
            transfer::Column::ResolveSequence,
            Expr::val(t.resolve_sequence),
        )
        .filter(transfer::Column::Id.eq(t.id.as_str()))
        .filter(transfer::Column::State.eq(PENDING))
        .exec(conn)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// What a list of transfers is narrowed by, every field checked.
#[derive(Debug, Clone, Default)]
pub struct TransferQuery {
    /// Transfers in or out of this account.
    pub account: Option<String>,
    /// Transfers touching an account of this unit.
    pub unit: Option<String>,
    /// Transfers touching an account of this Project or one under it.
    pub project: Option<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// Transfers touching an account in `accounts` (a subquery over accounts).
fn touching(accounts: Condition) -> Condition {
    let ids = Query::select()
        .column(account::Column::Id)
        .from(account::Entity)
        .cond_where(accounts)
        .to_owned();
    Condition::any()
        .add(transfer::Column::DebitAccountId.in_subquery(ids.clone()))
        .add(transfer::Column::CreditAccountId.in_subquery(ids))
}

/// The transfers `query` asks for that touch an account in `scope`, by id
/// after `after`; at most `limit`.
pub async fn list(
    conn: &impl ConnectionTrait,
    scope: &Scope,
    query: &TransferQuery,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<transfer::Model>, ServiceError> {
    let mut condition = Condition::all();
    if let Some(id) = &query.account {
        condition = condition.add(
            Condition::any()
                .add(transfer::Column::DebitAccountId.eq(id.as_str()))
                .add(transfer::Column::CreditAccountId.eq(id.as_str())),
        );
    }
    let mut accounts = selection(scope, query.unit.as_deref());
    if let Some(p) = &query.project {
        accounts = accounts.add(super::accounts::of_project(p));
    }
    condition = condition.add(touching(accounts));
    if let Some(f) = query.from {
        condition = condition.add(transfer::Column::ValueDate.gte(f));
    }
    if let Some(t) = query.to {
        condition = condition.add(transfer::Column::ValueDate.lte(t));
    }
    if let Some(after) = after {
        condition = condition.add(transfer::Column::Id.gt(after));
    }
    Ok(transfer::Entity::find()
        .filter(condition)
        .order_by_asc(transfer::Column::Id)
        .limit(limit)
        .all(conn)
        .await?)
}
