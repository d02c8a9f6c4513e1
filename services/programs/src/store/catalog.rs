//! The programme catalogue's items.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, EntityTrait};
use sustain_platform::error::ServiceError;

use crate::model::programme_item;

/// Writes the seeded items a database does not have yet; leaves the others.
pub async fn seed(
    conn: &impl ConnectionTrait,
    rows: Vec<programme_item::ActiveModel>,
) -> Result<(), ServiceError> {
    programme_item::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(programme_item::Column::Code)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// The item `code`, if there is one.
pub async fn item(
    conn: &impl ConnectionTrait,
    code: &str,
) -> Result<Option<programme_item::Model>, ServiceError> {
    Ok(programme_item::Entity::find_by_id(code.to_owned())
        .one(conn)
        .await?)
}
