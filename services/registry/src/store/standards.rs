//! The poverty standards set a province keeps: one row, replaced whole.

use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait};
use sustain_platform::error::ServiceError;

use crate::model::standard_set;

/// The stored set `id`, if one was set.
pub async fn find(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<standard_set::Model>, ServiceError> {
    Ok(standard_set::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await?)
}

/// Writes `row` in place of the set it replaces.
pub async fn replace(
    conn: &impl ConnectionTrait,
    row: standard_set::Model,
) -> Result<(), ServiceError> {
    standard_set::Entity::delete_by_id(row.id.clone())
        .exec(conn)
        .await?;
    standard_set::ActiveModel::from(row).insert(conn).await?;
    Ok(())
}
