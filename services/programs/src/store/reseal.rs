//! The programmes service's part of a key rotation: every support record's
//! details (a child's measurements) sealed again with the current field key
//! (`sustain-programs reseal`); the platform's [`sustain_platform::reseal`]
//! walks the table in resumable batches.

use sea_orm::ActiveModelTrait;
use sustain_db::WriteTxn;
use sustain_platform::error::ServiceError;

use crate::model::support;

/// Every support record's details, sealed with the current key.
#[derive(Debug)]
pub struct SupportSeals(pub sustain_platform::crypto::FieldCipher);

#[tonic::async_trait]
impl sustain_platform::reseal::Table for SupportSeals {
    fn name(&self) -> &'static str {
        "support"
    }

    async fn count(&self, db: &sea_orm::DatabaseConnection) -> Result<i64, ServiceError> {
        crate::store::count::<support::Entity>(db).await
    }

    async fn step(
        &self,
        txn: &WriteTxn,
        after: &str,
        limit: u64,
    ) -> Result<sustain_platform::reseal::Step, ServiceError> {
        let rows = sustain_platform::reseal::rows_after::<support::Entity>(
            txn,
            support::Column::Id,
            after,
            limit,
        )
        .await?;
        let mut changed = 0;
        for row in &rows {
            if self.0.is_current(&row.details_enc, &row.id) {
                continue;
            }
            let details = self
                .0
                .decrypt(&row.details_enc, &row.id)
                .map_err(|e| ServiceError::Internal(format!("support {} details: {e}", row.id)))?;
            let mut active = support::ActiveModel::from(row.clone());
            active.details_enc = sea_orm::ActiveValue::Set(self.0.encrypt(&details, &row.id));
            active.update(txn).await?;
            changed += 1;
        }
        Ok(sustain_platform::reseal::Step {
            last_key: rows.last().map(|r| r.id.clone()),
            seen: rows.len() as i64,
            changed,
        })
    }
}
