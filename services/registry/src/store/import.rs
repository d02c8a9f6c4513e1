//! What an import batch reads of what is there already.

use std::collections::{HashMap, HashSet};

use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use sustain_db::in_json_list;
use sustain_domain::admin::Location;
use sustain_platform::error::ServiceError;

use crate::model::{household, import_key, review};

/// Keys per lookup.
const KEYS_PER_QUERY: usize = 500;

/// The households imported before under `keys`: external key → household.
pub async fn imported(
    conn: &impl ConnectionTrait,
    keys: &[String],
) -> Result<HashMap<String, String>, ServiceError> {
    let backend = conn.get_database_backend();
    let mut known = HashMap::new();
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        for k in import_key::Entity::find()
            .filter(in_json_list(backend, "external_key", chunk)?)
            .all(conn)
            .await?
        {
            known.insert(k.external_key, k.household_id);
        }
    }
    Ok(known)
}

/// Where each of the households `ids` lies, and the years it has reviews of.
pub async fn places_and_years(
    conn: &impl ConnectionTrait,
    ids: &[String],
) -> Result<(HashMap<String, Location>, HashMap<String, HashSet<i32>>), ServiceError> {
    let backend = conn.get_database_backend();
    let mut places = HashMap::new();
    let mut years: HashMap<String, HashSet<i32>> = HashMap::new();
    for chunk in ids.chunks(KEYS_PER_QUERY) {
        for h in household::Entity::find()
            .filter(in_json_list(backend, "id", chunk)?)
            .all(conn)
            .await?
        {
            places.insert(
                h.id.clone(),
                Location {
                    province_code: h.province_code,
                    district_code: h.district_code,
                    commune_code: h.commune_code,
                    current_commune_code: h.current_commune_code,
                },
            );
        }
        let rows: Vec<(String, i32)> = review::Entity::find()
            .select_only()
            .column(review::Column::HouseholdId)
            .column(review::Column::Year)
            .filter(in_json_list(backend, "household_id", chunk)?)
            .into_tuple()
            .all(conn)
            .await?;
        for (id, year) in rows {
            years.entry(id).or_default().insert(year);
        }
    }
    Ok((places, years))
}
