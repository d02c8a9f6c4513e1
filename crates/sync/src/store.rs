//! What this instance's journal says it holds: the version (and state) of a
//! record as its newest outbox change has it, for the receiver's checks and
//! for handing units over. Every write journals its record's new version, so
//! the outbox answers for every service alike.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Statement};
use sustain_domain::admin;
use sustain_proto::sync::v1 as pb;

use super::OWNER_RECORD;
use sustain_platform::error::ServiceError;
use sustain_platform::journal::{Change, outbox};

/// A record as held here: its newest journaled version, state and unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    pub version: i64,
    pub state: String,
    pub owner_unit: String,
}

/// The version and unit of one record held here now, as the journal knows it.
pub(crate) async fn held_version(
    conn: &impl ConnectionTrait,
    record_type: &str,
    record_id: &str,
) -> Result<Option<(i64, String)>, ServiceError> {
    Ok(outbox::Entity::find()
        .filter(outbox::Column::RecordId.eq(record_id))
        .filter(outbox::Column::RecordType.eq(record_type))
        .order_by_desc(outbox::Column::Seq)
        .one(conn)
        .await?
        .map(|r| (r.version, r.owner_unit)))
}

/// The newest version, state and unit of each record of the batch held here,
/// as the journal knows it: every write journals its record's new version.
pub(crate) async fn held_versions(
    conn: &impl ConnectionTrait,
    changes: &[pb::Change],
) -> Result<HashMap<(String, String), Held>, ServiceError> {
    let mut held: HashMap<(String, String), (i64, Held)> = HashMap::new();
    let ids: Vec<String> = changes.iter().map(|c| c.record_id.clone()).collect();
    let backend = conn.get_database_backend();
    for chunk in ids.chunks(1000) {
        let rows = outbox::Entity::find()
            .filter(sustain_platform::db::in_json_list(
                backend,
                "record_id",
                chunk,
            )?)
            .order_by_asc(outbox::Column::Seq)
            .all(conn)
            .await?;
        for r in rows {
            let newer = held
                .get(&(r.record_type.clone(), r.record_id.clone()))
                .is_none_or(|(seq, _)| r.seq >= *seq);
            if newer {
                let record = Held {
                    version: r.version,
                    state: r.state,
                    owner_unit: r.owner_unit,
                };
                held.insert((r.record_type, r.record_id), (r.seq, record));
            }
        }
    }
    Ok(held.into_iter().map(|(k, (_, h))| (k, h)).collect())
}

/// The newest journaled state of every record whose unit lies in `units`.
pub(crate) async fn latest_under(
    conn: &impl ConnectionTrait,
    units: &[String],
) -> Result<Vec<Change>, ServiceError> {
    let backend = conn.get_database_backend();
    let owner_units: Vec<String> = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT DISTINCT owner_unit FROM outbox",
        ))
        .await?
        .iter()
        .filter_map(|r| r.try_get::<String>("", "owner_unit").ok())
        .filter(|u| {
            let above = admin::catalog().ancestors_or_self(u);
            units.iter().any(|h| above.contains(h))
        })
        .collect();
    let mut latest: std::collections::BTreeMap<(String, String), outbox::Model> =
        std::collections::BTreeMap::new();
    for chunk in owner_units.chunks(500) {
        let rows = outbox::Entity::find()
            .filter(sustain_platform::db::in_json_list(
                backend,
                "owner_unit",
                chunk,
            )?)
            .filter(outbox::Column::RecordType.ne(OWNER_RECORD))
            .order_by_asc(outbox::Column::Seq)
            .all(conn)
            .await?;
        for r in rows {
            latest.insert((r.record_type.clone(), r.record_id.clone()), r);
        }
    }
    let mut rows: Vec<outbox::Model> = latest.into_values().collect();
    rows.sort_by_key(|r| r.seq);
    Ok(rows
        .into_iter()
        .map(|r| Change {
            record_type: r.record_type,
            record_id: r.record_id,
            owner_unit: r.owner_unit,
            version: r.version,
            action: "handover".into(),
            state: r.state,
        })
        .collect())
}
