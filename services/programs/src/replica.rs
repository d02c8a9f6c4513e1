//! The programmes service's side of sync: programme records and the
//! province's catalogue items arriving from a peer's feed, written as they
//! were stored there, with the enrolment tallies moved as a local write would
//! move them (an active enrolment counts; its households' reach is refreshed).

use std::collections::BTreeSet;

use sea_orm::{ActiveModelBehavior, ActiveModelTrait, EntityTrait, IntoActiveModel};
use serde::de::DeserializeOwned;
use sustain_db::WriteTxn;
use sustain_platform::error::ServiceError;
use sustain_sync::apply::{Incoming, Replica};

use crate::convert::ACTIVE;
use crate::model::{
    communication_activity, course, enrolment, inspection, livelihood_model, programme_item,
    sector_report, support, trainee,
};
use crate::records::Record;
use crate::store::tally;

#[derive(Debug)]
pub struct ProgramsReplica {
    /// This instance's key: a support record's details are sealed with it,
    /// and cross to a peer opened (inside mutual TLS).
    pub cipher: sustain_platform::crypto::FieldCipher,
}

/// A support record's sealed details and the field they travel as.
const SEALED: &str = "details_enc";
const OPEN: &str = "details";

/// `state` with `from` moved to `to` through `f` (a support record's details
/// opened or sealed); a state already in the other form stays as it is.
fn convert(
    state: &str,
    from: &str,
    to: &str,
    f: impl FnOnce(&str, &str) -> Result<String, ServiceError>,
) -> Result<String, ServiceError> {
    let mut value: serde_json::Value = serde_json::from_str(state).map_err(|e| {
        ServiceError::Internal(format!(
            "support state does not read: {}",
            sustain_sync::apply::unreadable(&e)
        ))
    })?;
    let id = value
        .get("id")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ServiceError::Internal("a support state has no id".into()))?;
    let Some(row) = value.as_object_mut() else {
        return Ok(state.to_owned());
    };
    let Some(serde_json::Value::String(text)) = row.remove(from) else {
        return Ok(state.to_owned());
    };
    row.insert(to.to_owned(), serde_json::Value::String(f(&text, &id)?));
    Ok(value.to_string())
}

/// Writes `row` as the record's new version: inserted when none was held,
/// else written over the held one.
async fn put<E, A>(txn: &WriteTxn, row: E::Model, held: Option<i64>) -> Result<(), ServiceError>
where
    E: EntityTrait<ActiveModel = A>,
    E::Model: IntoActiveModel<A>,
    A: ActiveModelTrait<Entity = E> + ActiveModelBehavior + Send,
{
    let active = row.into_active_model();
    match held {
        None => {
            E::insert(active).exec_without_returning(txn).await?;
        }
        Some(_) => {
            active.reset_all().update(txn).await?;
        }
    }
    Ok(())
}

async fn put_record<R>(txn: &WriteTxn, c: &Incoming) -> Result<R, ServiceError>
where
    R: Record + DeserializeOwned + IntoActiveModel<<R::Entity as EntityTrait>::ActiveModel>,
    <R::Entity as EntityTrait>::ActiveModel:
        ActiveModelTrait<Entity = R::Entity> + ActiveModelBehavior + Send,
{
    let row: R = c.read()?;
    c.require_placement(row.id(), &row.placement())?;
    put::<R::Entity, _>(txn, row.clone(), c.held).await?;
    Ok(row)
}

#[tonic::async_trait]
impl Replica for ProgramsReplica {
    async fn write(&self, txn: &WriteTxn, changes: &[Incoming]) -> Result<(), ServiceError> {
        let mut sums = tally::SumsDelta::default();
        let mut reach: BTreeSet<String> = BTreeSet::new();
        for c in changes {
            match c.change.record_type.as_str() {
                "programme_item" => {
                    let row: programme_item::Model = c.read()?;
                    c.require_placed(&row.code, &row.owner_unit)?;
                    put::<programme_item::Entity, _>(txn, row, c.held).await?;
                }
                "enrolment" => {
                    if c.held.is_some()
                        && let Some(old) =
                            crate::records::load::<enrolment::Model>(txn, &c.change.record_id)
                                .await?
                        && old.state == ACTIVE
                    {
                        sums.add(&old, -1);
                    }
                    let row = put_record::<enrolment::Model>(txn, c).await?;
                    if row.state == ACTIVE {
                        sums.add(&row, 1);
                    }
                    reach.insert(row.household_id);
                }
                "livelihood_model" => {
                    put_record::<livelihood_model::Model>(txn, c).await?;
                }
                "course" => {
                    put_record::<course::Model>(txn, c).await?;
                }
                "trainee" => {
                    put_record::<trainee::Model>(txn, c).await?;
                }
                "support" => {
                    put_record::<support::Model>(txn, c).await?;
                }
                "communication_activity" => {
                    put_record::<communication_activity::Model>(txn, c).await?;
                }
                "inspection" => {
                    put_record::<inspection::Model>(txn, c).await?;
                }
                "sector_report" => {
                    put_record::<sector_report::Model>(txn, c).await?;
                }
                other => {
                    return Err(ServiceError::Internal(format!(
                        "the programmes service keeps no {other} records"
                    )));
                }
            }
        }
        sums.apply(txn).await?;
        let households: Vec<String> = reach.into_iter().collect();
        tally::refresh_reach(txn, &households).await
    }

    fn open_for_peer(
        &self,
        change: &sustain_proto::sync::v1::Change,
    ) -> Result<String, ServiceError> {
        match change.record_type.as_str() {
            "support" => convert(&change.state, SEALED, OPEN, |sealed, id| {
                self.cipher
                    .decrypt(sealed, id)
                    .map_err(|e| ServiceError::Internal(format!("support {id} details: {e}")))
            }),
            _ => Ok(change.state.clone()),
        }
    }

    fn seal_from_peer(
        &self,
        change: &sustain_proto::sync::v1::Change,
    ) -> Result<String, ServiceError> {
        match change.record_type.as_str() {
            "support" => convert(&change.state, OPEN, SEALED, |open, id| {
                Ok(self.cipher.encrypt(open, id))
            }),
            _ => Ok(change.state.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sustain_platform::crypto::FieldCipher;
    use sustain_proto::sync::v1::Change;

    #[test]
    fn support_details_cross_opened_and_are_sealed_again_with_the_receivers_key() {
        let (district, province) = (
            ProgramsReplica {
                cipher: FieldCipher::new(&[1; 32]),
            },
            ProgramsReplica {
                cipher: FieldCipher::new(&[2; 32]),
            },
        );
        let details = r#"{"weight_kg":9.5}"#;
        let stored = serde_json::json!({
            "id": "s-1", "kind": "nutrition",
            "details_enc": district.cipher.encrypt(details, "s-1"),
        })
        .to_string();
        let change = |state: String| Change {
            record_type: "support".into(),
            record_id: "s-1".into(),
            state,
            ..Change::default()
        };
        let sent = district
            .open_for_peer(&change(stored.clone()))
            .expect("opened");
        assert!(
            sent.contains("weight_kg") && !sent.contains("details_enc"),
            "{sent}"
        );
        let kept = province
            .seal_from_peer(&change(sent.clone()))
            .expect("sealed");
        let row: serde_json::Value = serde_json::from_str(&kept).expect("json");
        let sealed = row["details_enc"].as_str().expect("sealed");
        assert_eq!(
            province.cipher.decrypt(sealed, "s-1").expect("its key"),
            details
        );
        assert!(
            district.cipher.decrypt(sealed, "s-1").is_err(),
            "not the sender's key"
        );
        // Sent on, it opens to what came.
        assert_eq!(province.open_for_peer(&change(kept)).expect("opened"), sent);
        // Other records pass as they are.
        let other = Change {
            record_type: "course".into(),
            ..change(stored.clone())
        };
        assert_eq!(province.seal_from_peer(&other).expect("as is"), stored);
    }
}
