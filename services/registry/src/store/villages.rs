//! Village assignments of the split communes, and the households and reviews
//! they move.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use sustain_platform::Scope;
use sustain_platform::error::ServiceError;

use crate::model::{household, review, village_assignment};

/// The key of the PostgreSQL advisory lock that serialises reconciliations
/// ("vill").
const LOCK: i64 = 0x7669_6c6c;
/// Rows per `IN (…)` list.
const IDS_PER_STATEMENT: usize = 1000;

/// Holds the villages' lock until the transaction ends (SQLite write
/// transactions are one at a time already).
pub async fn lock(conn: &impl ConnectionTrait) -> Result<(), ServiceError> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({LOCK})"))
            .await?;
    }
    Ok(())
}

/// Every assignment that names a part.
pub async fn assigned(
    conn: &impl ConnectionTrait,
) -> Result<Vec<village_assignment::Model>, ServiceError> {
    Ok(village_assignment::Entity::find()
        .filter(village_assignment::Column::SuccessorCode.ne(""))
        .all(conn)
        .await?)
}

/// The assignments of commune `code` that name a part, by village.
pub async fn assigned_in(
    conn: &impl ConnectionTrait,
    code: &str,
) -> Result<Vec<village_assignment::Model>, ServiceError> {
    Ok(village_assignment::Entity::find()
        .filter(village_assignment::Column::CommuneCode.eq(code))
        .filter(village_assignment::Column::SuccessorCode.ne(""))
        .order_by_asc(village_assignment::Column::VillageKey)
        .all(conn)
        .await?)
}

/// The assignment `id`, if there is one.
pub async fn assignment(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<village_assignment::Model>, ServiceError> {
    Ok(village_assignment::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await?)
}

/// Writes `row` in place of the assignment it replaces.
pub async fn write(
    conn: &impl ConnectionTrait,
    row: village_assignment::Model,
) -> Result<(), ServiceError> {
    village_assignment::Entity::delete_by_id(row.id.clone())
        .exec(conn)
        .await?;
    village_assignment::ActiveModel::from(row)
        .insert(conn)
        .await?;
    Ok(())
}

/// The households of `communes`.
pub async fn households_in(
    conn: &impl ConnectionTrait,
    communes: impl IntoIterator<Item = String>,
) -> Result<Vec<household::Model>, ServiceError> {
    Ok(household::Entity::find()
        .filter(household::Column::CommuneCode.is_in(communes))
        .all(conn)
        .await?)
}

/// The reviews taken in `communes`.
pub async fn reviews_in(
    conn: &impl ConnectionTrait,
    communes: impl IntoIterator<Item = String>,
) -> Result<Vec<review::Model>, ServiceError> {
    Ok(review::Entity::find()
        .filter(review::Column::CommuneCode.is_in(communes))
        .all(conn)
        .await?)
}

/// Puts the households `ids` in `part` (their current commune).
pub async fn move_households(
    conn: &impl ConnectionTrait,
    part: &str,
    ids: &[String],
) -> Result<(), ServiceError> {
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        household::Entity::update_many()
            .col_expr(household::Column::CurrentCommuneCode, Expr::value(part))
            .filter(household::Column::Id.is_in(chunk.iter().cloned()))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// Puts the reviews `ids` in `part` (their current commune).
pub async fn move_reviews(
    conn: &impl ConnectionTrait,
    part: &str,
    ids: &[String],
) -> Result<(), ServiceError> {
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        review::Entity::update_many()
            .col_expr(review::Column::CurrentCommuneCode, Expr::value(part))
            .filter(review::Column::Id.is_in(chunk.iter().cloned()))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// The village and registration day of every active household of commune
/// `code` in `scope` that is in no part yet.
pub async fn unassigned(
    conn: &impl ConnectionTrait,
    scope: &Scope,
    code: &str,
) -> Result<Vec<(String, chrono::NaiveDate)>, ServiceError> {
    let mut query = household::Entity::find()
        .select_only()
        .column(household::Column::Village)
        .column(household::Column::RegisteredOn)
        .filter(household::Column::CommuneCode.eq(code))
        .filter(household::Column::CurrentCommuneCode.eq(""))
        .filter(household::Column::State.eq("active"));
    if let Some(scope) = sustain_platform::placement::in_scope(scope) {
        query = query.filter(scope);
    }
    Ok(query.into_tuple().all(conn).await?)
}
