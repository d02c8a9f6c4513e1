//! Every query of the programmes service. Here, for every table alike:
//! guarded updates (the row changes only if it is still at the version read)
//! and pages in key order; in the modules, each record's own reads and
//! writes, the running tallies and the summary's grouped reads.

pub mod catalog;
pub mod livelihood;
pub mod sector;
pub mod summary;
pub mod tally;
pub mod training;

use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect,
};
use sustain_platform::error::ServiceError;

/// The row of `E` whose `key_column` is `key`, if there is one.
pub async fn by_key<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    key_column: &str,
    key: &str,
) -> Result<Option<E::Model>, ServiceError> {
    Ok(E::find()
        .filter(Expr::col(Alias::new(key_column)).eq(key))
        .one(conn)
        .await?)
}

/// Writes a new row.
pub async fn insert<M, A>(conn: &impl ConnectionTrait, row: M) -> Result<(), ServiceError>
where
    M: IntoActiveModel<A>,
    A: ActiveModelTrait,
{
    <A::Entity as EntityTrait>::insert(row.into_active_model())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// How many rows `E`'s table holds.
pub async fn count<E>(conn: &impl ConnectionTrait) -> Result<i64, ServiceError>
where
    E: EntityTrait,
    E::Model: Sync,
{
    use sea_orm::PaginatorTrait;
    Ok(E::find().count(conn).await? as i64)
}

/// Writes `row` over the stored one if that is still at `expected` version;
/// `false` when someone else changed it first.
pub async fn save_guarded<E>(
    conn: &impl ConnectionTrait,
    row: E::Model,
    key_column: &str,
    key: &str,
    expected: i64,
) -> Result<bool, ServiceError>
where
    E: EntityTrait,
    E::Model: IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: ActiveModelTrait<Entity = E>,
{
    let active = row.into_active_model().reset_all();
    let result = E::update_many()
        .set(active)
        .filter(Expr::col(Alias::new(key_column)).eq(key))
        .filter(Expr::col(Alias::new("version")).eq(expected))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Up to `limit` rows matching `condition`, in key order after `after`.
pub async fn page<E>(
    conn: &impl ConnectionTrait,
    condition: Condition,
    key_column: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<E::Model>, ServiceError>
where
    E: EntityTrait,
{
    let key = || Expr::col(Alias::new(key_column));
    let mut query = E::find().filter(condition);
    if let Some(after) = after {
        query = query.filter(key().gt(after));
    }
    Ok(query.order_by_asc(key()).limit(limit).all(conn).await?)
}

/// Rows that are not archived, unless archived ones were asked for.
pub fn live(include_archived: bool) -> Condition {
    if include_archived {
        Condition::all()
    } else {
        Condition::all().add(Expr::col(Alias::new("state")).eq(crate::convert::ACTIVE))
    }
}

/// Rows whose catalog code is `code` or lies under it (`NTP-SPR.3` holds
/// `NTP-SPR.3.1`). `code` has passed `catalog::check_code`: no LIKE wildcards.
pub fn project_within(column: &str, code: &str) -> Condition {
    Condition::any()
        .add(Expr::col(Alias::new(column)).eq(code))
        .add(Expr::col(Alias::new(column)).like(format!("{code}.%")))
}
