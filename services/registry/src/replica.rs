//! The registry's side of sync: households and reviews arriving from a peer's
//! feed, written as they were stored there but with each member's personal
//! fields, and the journaled state whole, sealed, and looked up, by this
//! instance's own keys (they cross the link opened, inside mutual TLS), with the tallies moved as a local write
//! would move them and the replaced household version kept for point-in-time
//! reads.

use sustain_db::WriteTxn;
use sustain_domain::admin::Location;
use sustain_platform::error::ServiceError;
use sustain_proto::sync::v1::Change;
use sustain_sync::apply::{Incoming, Replica};

use crate::model::{household, member, review};
use crate::store::reviews;
use crate::store::tally::TallyDelta;
use crate::store::{self, Vault};

/// How a household travels: its row and its members' rows.
#[derive(serde::Deserialize)]
struct HouseholdState {
    household: household::Model,
    members: Vec<member::Model>,
}

#[derive(Debug)]
pub struct RegistryReplica {
    pub vault: Vault,
}

/// New rows gathered to be inserted together.
#[derive(Default)]
struct Pending {
    households: Vec<household::Model>,
    members: Vec<member::Model>,
    reviews: Vec<review::Model>,
}

impl Pending {
    async fn flush(&mut self, txn: &WriteTxn) -> Result<(), ServiceError> {
        let households = std::mem::take(&mut self.households);
        let members = std::mem::take(&mut self.members);
        if !households.is_empty() {
            store::insert_stored(txn, households, members).await?;
        }
        let reviews = std::mem::take(&mut self.reviews);
        if !reviews.is_empty() {
            sustain_db::insert_rows::<review::Entity>(txn, reviews, &[]).await?;
        }
        Ok(())
    }
}

/// Where a household or review is filed, as its row says.
fn filed_at(province: &str, district: Option<&str>, commune: &str, current: &str) -> Location {
    Location {
        province_code: province.to_owned(),
        district_code: district.filter(|d| !d.is_empty()).map(str::to_owned),
        commune_code: commune.to_owned(),
        current_commune_code: current.to_owned(),
    }
}

/// Takes a review from a peer: a new one joins the rows written together,
/// a newer version of one held replaces it; certified ones move the tallies.
async fn review(
    txn: &WriteTxn,
    c: &Incoming,
    row: review::Model,
    pending: &mut Pending,
    delta: &mut TallyDelta,
) -> Result<(), ServiceError> {
    c.require_filed(
        &row.id,
        &filed_at(
            &row.province_code,
            Some(&row.district_code),
            &row.commune_code,
            &row.current_commune_code,
        ),
    )?;
    if row.state == reviews::CERTIFIED {
        delta.add(&row, 1);
    }
    let Some(held) = c.held else {
        pending.reviews.push(row);
        return Ok(());
    };
    pending.flush(txn).await?;
    let old = reviews::find(txn, &row.id).await?.ok_or_else(|| {
        ServiceError::Internal(format!("review {} is journaled but missing", row.id))
    })?;
    if old.state == reviews::CERTIFIED {
        delta.add(&old, -1);
    }
    if !reviews::save(txn, &row, held).await? {
        return Err(ServiceError::Aborted {
            reason: "CONCURRENT_REVIEW",
            message: format!("review {} changed here meanwhile", row.id),
        });
    }
    Ok(())
}

#[tonic::async_trait]
impl Replica for RegistryReplica {
    async fn write(&self, txn: &WriteTxn, changes: &[Incoming]) -> Result<(), ServiceError> {
        let mut pending = Pending::default();
        let mut delta = TallyDelta::default();
        // Split communes written to: their households are placed by the
        // assignments held here once the batch is in.
        let mut split = std::collections::BTreeSet::new();
        for c in changes {
            match c.change.record_type.as_str() {
                "household" => {
                    let state = self.household_state(c)?;
                    split.extend(self.household(txn, c, state, &mut pending).await?);
                }
                "review" => {
                    let row: review::Model = c.read()?;
                    split.extend(crate::villages::split_among([row.commune_code.as_str()]));
                    review(txn, c, row, &mut pending, &mut delta).await?;
                }
                crate::standards::RECORD => {
                    pending.flush(txn).await?;
                    crate::standards::write_replica(txn, c).await?;
                }
                crate::villages::RECORD => {
                    split.insert(crate::villages::write_replica(txn, c).await?);
                }
                other => {
                    return Err(ServiceError::Internal(format!(
                        "the registry keeps no {other} records"
                    )));
                }
            }
        }
        pending.flush(txn).await?;
        delta.apply(txn).await?;
        crate::villages::reconcile(txn, &split).await?;
        Ok(())
    }

    fn downward_only(&self) -> &'static [&'static str] {
        &[crate::standards::RECORD, crate::villages::RECORD]
    }

    fn open_for_peer(&self, change: &Change) -> Result<String, ServiceError> {
        match change.record_type.as_str() {
            "household" => store::open_state(&change.state, &change.record_id, &self.vault),
            _ => Ok(change.state.clone()),
        }
    }

    fn seal_from_peer(&self, change: &Change) -> Result<String, ServiceError> {
        match change.record_type.as_str() {
            "household" => {
                store::seal_state_from_peer(&change.state, &change.record_id, &self.vault)
            }
            _ => Ok(change.state.clone()),
        }
    }
}

impl RegistryReplica {
    /// The rows of a household change as sealed here ([`Replica::seal_from_peer`]).
    fn household_state(&self, c: &Incoming) -> Result<HouseholdState, ServiceError> {
        let rows = store::unwrap_state(&c.change.state, &c.change.record_id, &self.vault)?;
        c.read_from(&rows)
    }

    /// Takes a household from a peer: a new one joins the rows written
    /// together, a newer version of one held replaces it. Returns the split
    /// commune it lies in, if it does.
    async fn household(
        &self,
        txn: &WriteTxn,
        c: &Incoming,
        state: HouseholdState,
        pending: &mut Pending,
    ) -> Result<std::collections::BTreeSet<String>, ServiceError> {
        let h = &state.household;
        c.require_filed(
            &h.id,
            &filed_at(
                &h.province_code,
                h.district_code.as_deref(),
                &h.commune_code,
                &h.current_commune_code,
            ),
        )?;
        let split = crate::villages::split_among([h.commune_code.as_str()]);
        if c.held.is_none() {
            pending.households.push(state.household);
            pending.members.extend(state.members);
            return Ok(split);
        }
        pending.flush(txn).await?;
        self.replace_household(txn, state).await?;
        Ok(split)
    }

    /// Writes a newer version of a household held here, keeping the old one.
    async fn replace_household(
        &self,
        txn: &WriteTxn,
        state: HouseholdState,
    ) -> Result<(), ServiceError> {
        let id = state.household.id.clone();
        if let Some(previous) = store::load(txn, &id, &self.vault).await? {
            store::keep_version(txn, &previous, &self.vault).await?;
        }
        store::replace_household(txn, state.household, state.members).await
    }
}
