//! The programmes service's side of sync: programme records and the
//! province's catalogue items arriving from a peer's feed, written as they
//! were stored there, with the enrolment tallies moved as a local write would
//! move them (an active enrolment counts; its households' reach is refreshed).

use std::collections::BTreeSet;

use sea_orm::{ActiveModelBehavior, ActiveModelTrait, EntityTrait, IntoActiveModel};
use serde::de::DeserializeOwned;
use sustain_platform::db::WriteTxn;
use sustain_platform::error::ServiceError;
use sustain_platform::sync::apply::{Incoming, Replica};

use crate::convert::ACTIVE;
use crate::livelihood::tally;
use crate::model::{
    communication_activity, course, enrolment, inspection, livelihood_model, programme_item,
    support, trainee,
};
use crate::records::Record;

#[derive(Debug)]
pub struct ProgramsReplica;

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
    c.require_placed(row.id(), &row.placement().unit_code)?;
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
}
