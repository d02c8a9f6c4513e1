//! Queries of models and enrolments beyond the shared ones.

use std::collections::HashMap;

use sea_orm::sea_query::Condition;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use sustain_db::in_json_list;
use sustain_domain::admin;
use sustain_platform::Scope;
use sustain_platform::error::ServiceError;
use sustain_platform::placement;

use super::Narrow;

use crate::convert::ACTIVE;
use crate::model::{enrolment, livelihood_model};

pub async fn model(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<livelihood_model::Model>, ServiceError> {
    Ok(livelihood_model::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await?)
}

pub async fn enrolment(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<enrolment::Model>, ServiceError> {
    Ok(enrolment::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await?)
}

/// Active enrolments per model, for the models given.
pub async fn enrolled_counts(
    conn: &impl ConnectionTrait,
    model_ids: &[String],
) -> Result<HashMap<String, i64>, ServiceError> {
    if model_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i64)> = enrolment::Entity::find()
        .select_only()
        .column(enrolment::Column::ModelId)
        .column_as(enrolment::Column::Id.count(), "n")
        .filter(in_json_list(
            conn.get_database_backend(),
            "model_id",
            model_ids,
        )?)
        .filter(enrolment::Column::State.eq(ACTIVE))
        .group_by(enrolment::Column::ModelId)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Which of `household_ids` already have an enrolment (of any state) in the model.
pub async fn already_enrolled(
    conn: &impl ConnectionTrait,
    model_id: &str,
    household_ids: &[String],
) -> Result<Vec<String>, ServiceError> {
    Ok(enrolment::Entity::find()
        .select_only()
        .column(enrolment::Column::HouseholdId)
        .filter(enrolment::Column::ModelId.eq(model_id))
        .filter(in_json_list(
            conn.get_database_backend(),
            "household_id",
            household_ids,
        )?)
        .into_tuple()
        .all(conn)
        .await?)
}

/// Models a caller with `scope` may see, under `unit` when one is given:
/// those whose unit overlaps the scope, so a commune officer sees the
/// district's models its households enrol in.
pub fn models_visible(scope: &Scope, unit: Option<&str>) -> Narrow {
    let mut narrow = Narrow::default();
    if let Some(inside) = placement::in_scope(scope) {
        let above: Vec<String> = scope
            .codes()
            .iter()
            .flat_map(|c| admin::catalog().ancestors_or_self(c))
            .collect();
        narrow = narrow.and(
            Condition::any()
                .add(inside)
                .add(livelihood_model::Column::UnitCode.is_in(above)),
        );
    }
    match unit {
        Some(unit) => narrow.and(placement::under_unit(unit)),
        None => narrow,
    }
}
