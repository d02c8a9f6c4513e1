//! Every query the ledger makes. The use cases (`accounts::open`,
//! `transfers::create`, `chain::verify`, the funding summary) and the gRPC
//! handlers above them call these functions and build no SQL themselves.
//! Each takes `&impl ConnectionTrait`, so the same call runs on the pool or
//! inside a write transaction.

pub mod accounts;
pub mod chain;
pub mod funding;
pub mod transfers;

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter};
use sustain_db::in_json_list;
use sustain_platform::error::ServiceError;

/// The rows of `E` whose `id` is in `ids`, by id.
async fn by_ids<E, C>(
    conn: &C,
    ids: &[String],
    id_of: impl Fn(&E::Model) -> String,
) -> Result<HashMap<String, E::Model>, ServiceError>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(E::find()
        .filter(in_json_list(conn.get_database_backend(), "id", ids)?)
        .all(conn)
        .await?
        .into_iter()
        .map(|row| (id_of(&row), row))
        .collect())
}
