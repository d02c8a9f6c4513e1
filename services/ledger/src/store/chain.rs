//! The chain: its head, its entries, and the copies held of the chains of
//! the instances below.

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use sustain_platform::error::ServiceError;

use crate::model::{entry, head, replica_entry, replica_head};

/// The chain's head; with `lock`, held until the transaction ends (SQLite
/// write transactions are one at a time already).
pub async fn head(conn: &impl ConnectionTrait, lock: bool) -> Result<head::Model, ServiceError> {
    let mut query = head::Entity::find_by_id(1);
    if lock && conn.get_database_backend() == DbBackend::Postgres {
        query = query.lock_exclusive();
    }
    query
        .one(conn)
        .await?
        .ok_or_else(|| ServiceError::Internal("the ledger has no chain head".into()))
}

/// Writes appended entries and moves the head to `sequence` and `hash`.
pub async fn append(
    conn: &impl ConnectionTrait,
    entries: Vec<entry::Model>,
    sequence: i64,
    hash: String,
) -> Result<(), ServiceError> {
    sustain_db::insert_statements::<entry::Entity>(conn, entries, &[]).await?;
    head::Entity::update_many()
        .col_expr(head::Column::Sequence, sequence.into())
        .col_expr(head::Column::Hash, hash.into())
        .filter(head::Column::Id.eq(1))
        .exec(conn)
        .await?;
    Ok(())
}

/// The entry at `sequence`, if there is one.
pub async fn entry(
    conn: &impl ConnectionTrait,
    sequence: i64,
) -> Result<Option<entry::Model>, ServiceError> {
    Ok(entry::Entity::find_by_id(sequence).one(conn).await?)
}

/// Entries from `from` to `to` in order; at most `limit`.
pub async fn entries(
    conn: &impl ConnectionTrait,
    from: i64,
    to: i64,
    limit: u64,
) -> Result<Vec<entry::Model>, ServiceError> {
    Ok(entry::Entity::find()
        .filter(entry::Column::Sequence.between(from, to))
        .order_by_asc(entry::Column::Sequence)
        .limit(limit)
        .all(conn)
        .await?)
}

/// The head held of `instance`'s chain, if anything arrived from it.
pub async fn replica_head(
    conn: &impl ConnectionTrait,
    instance: &str,
) -> Result<Option<replica_head::Model>, ServiceError> {
    Ok(replica_head::Entity::find_by_id(instance.to_owned())
        .one(conn)
        .await?)
}

/// Writes the head held of an instance's chain.
pub async fn save_replica_head(
    conn: &impl ConnectionTrait,
    head: &replica_head::Model,
) -> Result<(), ServiceError> {
    let row = replica_head::ActiveModel {
        instance: Set(head.instance.clone()),
        sequence: Set(head.sequence),
        hash: Set(head.hash.clone()),
        alarm: Set(head.alarm.clone()),
        alarm_at: Set(head.alarm_at),
        checked_at: Set(head.checked_at),
    };
    replica_head::Entity::insert(row)
        .on_conflict(
            OnConflict::column(replica_head::Column::Instance)
                .update_columns([
                    replica_head::Column::Sequence,
                    replica_head::Column::Hash,
                    replica_head::Column::Alarm,
                    replica_head::Column::AlarmAt,
                    replica_head::Column::CheckedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// The entry at `sequence` of the copy held of `instance`'s chain.
pub async fn replica_entry(
    conn: &impl ConnectionTrait,
    instance: &str,
    sequence: i64,
) -> Result<Option<replica_entry::Model>, ServiceError> {
    Ok(
        replica_entry::Entity::find_by_id((instance.to_owned(), sequence))
            .one(conn)
            .await?,
    )
}

/// Writes entries received of other instances' chains.
pub async fn insert_replica_entries(
    conn: &impl sustain_db::Bulk,
    rows: Vec<replica_entry::Model>,
) -> Result<(), ServiceError> {
    sustain_db::insert_rows::<replica_entry::Entity>(conn, rows, &[]).await?;
    Ok(())
}
