//! Every query of replication. What this instance's journal says it holds:
//! the version (and state) of a record as its newest outbox change has it,
//! for the receiver's checks and for handing units over (every write
//! journals its record's new version, so the outbox answers for every
//! service alike); the feed's pages; the cursors, owners and conflicts.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, Statement,
};
use sustain_domain::admin;

use super::{OWNER_RECORD, sync_conflict, sync_cursor, sync_owner};
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
    ids: &[String],
) -> Result<HashMap<(String, String), Held>, ServiceError> {
    let mut held: HashMap<(String, String), (i64, Held)> = HashMap::new();
    let backend = conn.get_database_backend();
    for chunk in ids.chunks(1000) {
        let rows = outbox::Entity::find()
            .filter(sustain_db::in_json_list(backend, "record_id", chunk)?)
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
            .filter(sustain_db::in_json_list(backend, "owner_unit", chunk)?)
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

/// Conflicts not settled yet.
pub(crate) async fn open_conflicts(conn: &impl ConnectionTrait) -> Result<i64, ServiceError> {
    use sea_orm::PaginatorTrait;
    Ok(sync_conflict::Entity::find()
        .filter(sync_conflict::Column::Resolution.eq(""))
        .count(conn)
        .await? as i64)
}

/// Every conflict kept (only those not settled, unless `resolved` too), oldest first.
pub(crate) async fn conflicts(
    conn: &impl ConnectionTrait,
    resolved: bool,
) -> Result<Vec<sync_conflict::Model>, ServiceError> {
    let mut query = sync_conflict::Entity::find().order_by_asc(sync_conflict::Column::Id);
    if !resolved {
        query = query.filter(sync_conflict::Column::Resolution.eq(""));
    }
    Ok(query.all(conn).await?)
}

/// Conflicts after id `after`, oldest first; at most `limit`.
pub(crate) async fn conflicts_after(
    conn: &impl ConnectionTrait,
    after: i64,
    limit: u64,
) -> Result<Vec<sync_conflict::Model>, ServiceError> {
    Ok(sync_conflict::Entity::find()
        .filter(sync_conflict::Column::Id.gt(after))
        .order_by_asc(sync_conflict::Column::Id)
        .limit(limit)
        .all(conn)
        .await?)
}

/// How many conflicts are kept, settled or not.
pub(crate) async fn count_conflicts(conn: &impl ConnectionTrait) -> Result<i64, ServiceError> {
    use sea_orm::PaginatorTrait;
    Ok(sync_conflict::Entity::find().count(conn).await? as i64)
}

/// The conflict `id`, if there is one.
pub(crate) async fn conflict(
    conn: &impl ConnectionTrait,
    id: i64,
) -> Result<Option<sync_conflict::Model>, ServiceError> {
    Ok(sync_conflict::Entity::find_by_id(id).one(conn).await?)
}

/// Writes a conflict's changed fields.
pub(crate) async fn save_conflict(
    conn: &impl ConnectionTrait,
    row: sync_conflict::ActiveModel,
) -> Result<sync_conflict::Model, ServiceError> {
    Ok(row.update(conn).await?)
}

/// Keeps `change` from `peer`, refused for `reason`, beside the version held
/// here (`local`), until an operator settles it.
pub(crate) async fn keep_conflict(
    conn: &impl ConnectionTrait,
    peer: &str,
    change: &Change,
    local: Option<Held>,
    reason: &str,
) -> Result<(), ServiceError> {
    let (local_version, local_state) = local.map_or((0, String::new()), |h| (h.version, h.state));
    sync_conflict::ActiveModel {
        peer: Set(peer.to_owned()),
        record_type: Set(change.record_type.clone()),
        record_id: Set(change.record_id.clone()),
        owner_unit: Set(change.owner_unit.clone()),
        local_version: Set(local_version),
        local_state: Set(local_state),
        incoming_version: Set(change.version),
        incoming_state: Set(change.state.clone()),
        incoming_action: Set(change.action.clone()),
        reason: Set(reason.to_owned()),
        recorded_at: Set(chrono::Utc::now()),
        resolution: Set(String::new()),
        resolved_by: Set(String::new()),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// Who owns which units, by unit.
pub(crate) async fn owners(
    conn: &impl ConnectionTrait,
) -> Result<Vec<sync_owner::Model>, ServiceError> {
    Ok(sync_owner::Entity::find()
        .order_by_asc(sync_owner::Column::UnitCode)
        .all(conn)
        .await?)
}

/// The owner row of `unit`, if one was recorded.
pub(crate) async fn owner(
    conn: &impl ConnectionTrait,
    unit: &str,
) -> Result<Option<sync_owner::Model>, ServiceError> {
    Ok(sync_owner::Entity::find_by_id(unit.to_owned())
        .one(conn)
        .await?)
}

/// Writes `row` in place of the unit's owner row.
pub(crate) async fn replace_owner(
    conn: &impl ConnectionTrait,
    row: sync_owner::Model,
) -> Result<(), ServiceError> {
    sync_owner::Entity::delete_by_id(row.unit_code.clone())
        .exec(conn)
        .await?;
    sync_owner::Entity::insert(sync_owner::ActiveModel::from(row))
        .exec(conn)
        .await?;
    Ok(())
}

/// Records this instance's name and upstream.
pub(crate) async fn set_instance(
    conn: &impl ConnectionTrait,
    name: &str,
    upstream: &str,
) -> Result<(), ServiceError> {
    let backend = conn.get_database_backend();
    conn.execute_raw(Statement::from_string(backend, "DELETE FROM sync_instance"))
        .await?;
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        match backend {
            sea_orm::DbBackend::Postgres => {
                "INSERT INTO sync_instance (id, name, upstream) VALUES (1, $1, $2)"
            }
            _ => "INSERT INTO sync_instance (id, name, upstream) VALUES (1, ?, ?)",
        },
        [name.into(), upstream.into()],
    ))
    .await?;
    Ok(())
}

/// The last sequence of `peer`'s feed applied here (0 before the first).
pub(crate) async fn cursor(conn: &impl ConnectionTrait, peer: &str) -> Result<i64, ServiceError> {
    Ok(sync_cursor::Entity::find_by_id(peer.to_owned())
        .one(conn)
        .await?
        .map_or(0, |c| c.seq))
}

/// Moves `peer`'s cursor from `after` to `to`; whether it was still at
/// `after` (the first batch creates the row; a twin creating it too fails on
/// the key).
pub(crate) async fn advance_cursor(
    conn: &impl ConnectionTrait,
    peer: &str,
    after: i64,
    to: i64,
) -> Result<bool, ServiceError> {
    if after == 0 {
        match sync_cursor::Entity::find_by_id(peer.to_owned())
            .one(conn)
            .await?
        {
            None => {
                sync_cursor::ActiveModel {
                    peer: Set(peer.to_owned()),
                    seq: Set(to),
                    updated_at: Set(chrono::Utc::now()),
                }
                .insert(conn)
                .await?;
                return Ok(true);
            }
            Some(c) if c.seq != 0 => return Ok(false),
            Some(_) => {}
        }
    }
    let result = sync_cursor::Entity::update_many()
        .col_expr(
            sync_cursor::Column::Seq,
            sea_orm::sea_query::Expr::value(to),
        )
        .col_expr(
            sync_cursor::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now()),
        )
        .filter(sync_cursor::Column::Peer.eq(peer))
        .filter(sync_cursor::Column::Seq.eq(after))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Journal entries after `cursor` up to `head` not written by `origin`, in
/// order; at most `limit`.
pub(crate) async fn feed_page(
    conn: &impl ConnectionTrait,
    cursor: i64,
    head: i64,
    origin: &str,
    limit: u64,
) -> Result<Vec<outbox::Model>, ServiceError> {
    Ok(outbox::Entity::find()
        .filter(outbox::Column::Seq.gt(cursor))
        .filter(outbox::Column::Seq.lte(head))
        .filter(outbox::Column::Origin.ne(origin))
        .order_by_asc(outbox::Column::Seq)
        .limit(limit)
        .all(conn)
        .await?)
}
