//! The registry's part of a key rotation: every member's sealed fields and
//! citizen-ID lookup hash, and every sealed copy of an old household version,
//! sealed again with the current keys (`sustain-registry reseal`). What the
//! previous keys sealed stays readable meanwhile; the platform's
//! [`sustain_platform::reseal`] walks the tables in resumable batches.

use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use sustain_db::WriteTxn;
use sustain_platform::error::ServiceError;
use sustain_platform::reseal::{Step, Table, rows_after};

use crate::model::{household_version, member};
use crate::store::{self, Vault, context, version_context};

/// `text` sealed again with the current key, or `None` when it already is.
fn again(vault: &Vault, text: &str, context: &str) -> Result<Option<String>, ServiceError> {
    if vault.cipher.is_current(text, context) {
        return Ok(None);
    }
    let plain = vault.cipher.decrypt(text, context).map_err(|e| {
        ServiceError::Internal(format!("{context} does not open with any key held: {e}"))
    })?;
    Ok(Some(vault.cipher.encrypt(&plain, context)))
}

/// Members: their sealed fields and their lookup hash.
#[derive(Debug)]
pub struct Members(pub Vault);

#[tonic::async_trait]
impl Table for Members {
    fn name(&self) -> &'static str {
        "member"
    }

    async fn count(&self, db: &sea_orm::DatabaseConnection) -> Result<i64, ServiceError> {
        Ok(member::Entity::find().count(db).await? as i64)
    }

    async fn step(&self, txn: &WriteTxn, after: &str, limit: u64) -> Result<Step, ServiceError> {
        let vault = &self.0;
        let rows = rows_after::<member::Entity>(txn, member::Column::Id, after, limit).await?;
        let mut changed = 0;
        for row in &rows {
            let id = &row.id;
            let mut active = member::ActiveModel::from(row.clone());
            let mut touched = false;
            if let Some(text) = again(vault, &row.ethnicity_enc, &context(id, "ethnicity"))? {
                active.ethnicity_enc = Set(text);
                touched = true;
            }
            if let Some(text) = again(vault, &row.disability_enc, &context(id, "disability"))? {
                active.disability_enc = Set(text);
                touched = true;
            }
            if let Some(sealed) = &row.citizen_id_enc {
                let ctx = context(id, "citizen_id");
                let plain = vault.cipher.decrypt(sealed, &ctx).map_err(|e| {
                    ServiceError::Internal(format!("{ctx} does not open with any key held: {e}"))
                })?;
                if !vault.cipher.is_current(sealed, &ctx) {
                    active.citizen_id_enc = Set(Some(vault.cipher.encrypt(&plain, &ctx)));
                    touched = true;
                }
                let hash = vault.hasher.hash(&plain);
                if row.citizen_id_hash.as_deref() != Some(hash.as_str()) {
                    active.citizen_id_hash = Set(Some(hash));
                    touched = true;
                }
            }
            if touched {
                active.update(txn).await?;
                changed += 1;
            }
        }
        Ok(Step {
            last_key: rows.last().map(|r| r.id.clone()),
            seen: rows.len() as i64,
            changed,
        })
    }
}

/// Sealed copies of old household versions, personal fields inside as well.
#[derive(Debug)]
pub struct Versions(pub Vault);

/// A version's key as a resumable string: household id, then the version
/// zero-padded so that the strings sort as the pairs do.
fn version_key(id: &str, version: i64) -> String {
    format!("{id}/{version:020}")
}

#[tonic::async_trait]
impl Table for Versions {
    fn name(&self) -> &'static str {
        "household_version"
    }

    async fn count(&self, db: &sea_orm::DatabaseConnection) -> Result<i64, ServiceError> {
        Ok(household_version::Entity::find().count(db).await? as i64)
    }

    async fn step(&self, txn: &WriteTxn, after: &str, limit: u64) -> Result<Step, ServiceError> {
        let vault = &self.0;
        let mut query = household_version::Entity::find();
        if let Some((id, version)) = after.split_once('/') {
            let version: i64 = version.parse().unwrap_or(i64::MAX);
            query = query.filter(
                Condition::any()
                    .add(household_version::Column::HouseholdId.gt(id.to_owned()))
                    .add(
                        Condition::all()
                            .add(household_version::Column::HouseholdId.eq(id.to_owned()))
                            .add(household_version::Column::Version.gt(version)),
                    ),
            );
        }
        let rows = query
            .order_by_asc(household_version::Column::HouseholdId)
            .order_by_asc(household_version::Column::Version)
            .limit(limit)
            .all(txn)
            .await?;
        let mut changed = 0;
        for row in &rows {
            let ctx = version_context(&row.household_id, row.version);
            if vault.cipher.seals_current(&row.sealed, &ctx) {
                continue;
            }
            let plain = vault.cipher.open(&row.sealed, &ctx).map_err(|e| {
                ServiceError::Internal(format!("{ctx} does not open with any key held: {e}"))
            })?;
            let state = String::from_utf8(plain)
                .map_err(|_| ServiceError::Internal(format!("{ctx} is not text")))?;
            // The members inside were sealed with the same key: sealed again too.
            let state = store::seal_members(&store::open_members(&state, vault)?, vault)?;
            let mut active = household_version::ActiveModel::from(row.clone());
            active.sealed = Set(vault.cipher.seal(state.as_bytes(), &ctx));
            active.update(txn).await?;
            changed += 1;
        }
        Ok(Step {
            last_key: rows.last().map(|r| version_key(&r.household_id, r.version)),
            seen: rows.len() as i64,
            changed,
        })
    }
}
