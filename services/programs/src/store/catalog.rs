//! The programme catalogue's items.

use sea_orm::sea_query::{Condition, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait};
use sustain_platform::Scope;
use sustain_platform::error::ServiceError;

use super::Narrow;

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

/// Items a caller with `scope` may see: the seeded ones, and those owned by
/// a unit overlapping the scope (`below` lists a unit and the units under it).
pub fn items_visible(scope: &Scope, below: impl Fn(&str) -> Vec<String>) -> Narrow {
    if scope.is_nationwide() {
        return Narrow::default();
    }
    let owners: Vec<String> = scope
        .codes()
        .iter()
        .flat_map(|c| sustain_domain::admin::catalog().ancestors_or_self(c))
        .collect();
    let mut any = Condition::any()
        .add(programme_item::Column::Seeded.eq(true))
        .add(programme_item::Column::OwnerUnit.is_in(owners));
    for code in scope.codes() {
        any = any.add(programme_item::Column::OwnerUnit.is_in(below(code)));
    }
    Narrow::default().and(any)
}
