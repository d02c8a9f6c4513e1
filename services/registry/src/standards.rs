//! The poverty standards in force: the set stored by `SetPovertyStandards`
//! (and replicated from the province), else the configured file, else the
//! bundled one. Each use checks the stored version, so a set arriving by sync
//! is in force for the next review classified here.

use std::sync::{Arc, RwLock};

use sea_orm::ConnectionTrait;
use sustain_domain::poverty::Standards;
use sustain_platform::error::ServiceError;

use crate::model::standard_set;
use crate::store;

/// The record type the stored set travels as.
pub const RECORD: &str = "poverty_standards";
/// The id of the one stored set.
pub const CURRENT: &str = "current";

#[derive(Debug)]
pub struct StandardsCell {
    fallback: Arc<Standards>,
    fallback_source: &'static str,
    /// The stored set's version (0: none) and the standards in force.
    current: RwLock<(i64, Arc<Standards>)>,
}

/// The standards in force and where they come from.
#[derive(Debug, Clone)]
pub struct InForce {
    pub standards: Arc<Standards>,
    /// The stored set's version; 0 when the fallback is in force.
    pub version: i64,
    pub source: &'static str,
}

impl StandardsCell {
    /// `configured`: whether `fallback` came from `standards_file`.
    pub fn new(fallback: Standards, configured: bool) -> StandardsCell {
        let fallback = Arc::new(fallback);
        StandardsCell {
            current: RwLock::new((0, Arc::clone(&fallback))),
            fallback,
            fallback_source: if configured { "file" } else { "bundled" },
        }
    }

    /// The standards last read, without asking the database (for rendering).
    pub fn latest(&self) -> Arc<Standards> {
        self.current
            .read()
            .map(|c| Arc::clone(&c.1))
            .unwrap_or_else(|_| Arc::clone(&self.fallback))
    }

    /// The standards in force now, re-read when the stored set has changed.
    pub async fn current(&self, conn: &impl ConnectionTrait) -> Result<InForce, ServiceError> {
        let stored = store::standards::find(conn, CURRENT).await?;
        let version = stored.as_ref().map_or(0, |s| s.version);
        if let Ok(c) = self.current.read()
            && c.0 == version
        {
            return Ok(self.in_force(version, Arc::clone(&c.1)));
        }
        let standards = match &stored {
            None => Arc::clone(&self.fallback),
            Some(s) => Arc::new(Standards::parse(&s.standards_toml).map_err(|e| {
                ServiceError::Internal(format!("the stored poverty standards do not read: {e}"))
            })?),
        };
        if let Ok(mut c) = self.current.write() {
            *c = (version, Arc::clone(&standards));
        }
        Ok(self.in_force(version, standards))
    }

    fn in_force(&self, version: i64, standards: Arc<Standards>) -> InForce {
        InForce {
            standards,
            version,
            source: if version == 0 {
                self.fallback_source
            } else {
                "set"
            },
        }
    }
}

/// Who may replace the standards: admins whose scope holds the province.
pub const SET: &[sustain_platform::Role] = &[sustain_platform::Role::Admin];

/// Replaces the standards in force; see `ReviewService.SetPovertyStandards`.
pub async fn set(
    db: &sea_orm::DatabaseConnection,
    cipher: &sustain_platform::crypto::FieldCipher,
    cell: &StandardsCell,
    caller: &sustain_platform::Caller,
    key: Option<sustain_platform::journal::IdempotencyKey>,
    request: sustain_proto::registry::v1::SetPovertyStandardsRequest,
) -> Result<sustain_proto::registry::v1::SetPovertyStandardsResponse, ServiceError> {
    use sustain_domain::admin::{self, Level};
    use sustain_platform::journal::{self, Change};

    let mut v = sustain_domain::Violations::new();
    let province = request.province_code.trim().to_owned();
    let is_province = Level::of_code(&province) == Some(Level::Province)
        && admin::catalog().province(&province).is_some();
    if !is_province {
        v.add("province_code", "must be a province code, e.g. 20");
    }
    let parsed = match Standards::parse(&request.standards_toml) {
        Ok(s) => Some(s),
        Err(e) => {
            v.add("standards_toml", e.to_string());
            None
        }
    };
    // The standards an instance keeps are its own province's: a province
    // elsewhere, however wholly its admin holds it, is not this one's.
    let topology = sustain_sync::Topology::load(db).await?;
    let own_province = topology.own_units().iter().find_map(|u| {
        admin::catalog()
            .ancestors_or_self(u)
            .into_iter()
            .find(|a| Level::of_code(a) == Some(Level::Province))
    });
    if let Some(own) = own_province.filter(|own| is_province && *own != province) {
        v.add(
            "province_code",
            format!("must be this instance's province ({own})"),
        );
    }
    let in_force = cell.current(db).await?;
    if let (Some(new), Some((first, last))) = (&parsed, in_force.standards.years())
        && let Some(year) = (first..=last).find(|y| new.for_year(*y).is_none())
    {
        v.add(
            "standards_toml",
            format!(
                "must still cover every review year now covered ({first}–{last}); {year} is not"
            ),
        );
    }
    sustain_platform::error::check(v)?;
    let parsed = parsed.ok_or_else(|| ServiceError::Internal("standards checked above".into()))?;
    if !caller.scope.contains_unit(&province) {
        return Err(ServiceError::PermissionDenied {
            reason: "OUT_OF_SCOPE",
            message: format!("province {province} is not wholly inside the caller's scope"),
        });
    }
    let sent_etag = request.etag.trim().to_owned();
    let toml = request.standards_toml.clone();
    let request_id = request.request_id.clone();
    journal::run_once(db, cipher, key, |txn| async move {
        let stored = store::standards::find(&txn, CURRENT).await?;
        let held = stored
            .as_ref()
            .map_or(String::new(), |s| crate::convert::etag(s.version));
        if sent_etag != held {
            return Err(ServiceError::Aborted {
                reason: "STALE_ETAG",
                message: format!(
                    "etag {sent_etag:?} is stale: the standards are at {held:?}; list them again"
                ),
            });
        }
        let row = standard_set::Model {
            id: CURRENT.to_owned(),
            province_code: province.clone(),
            standards_toml: toml,
            version: stored.as_ref().map_or(1, |s| s.version + 1),
            updated_at: chrono::Utc::now(),
            updated_by: caller.subject.clone(),
        };
        store::standards::replace(&txn, row.clone()).await?;
        journal::record(
            &txn,
            caller,
            &request_id,
            Change {
                record_type: RECORD.into(),
                record_id: CURRENT.into(),
                owner_unit: province.clone(),
                version: row.version,
                action: "set".into(),
                state: journal::state_json(&row),
            },
        )
        .await?;
        tracing::info!(province = %province, version = row.version, caller = %caller.subject, "poverty standards set");
        Ok((
            sustain_proto::registry::v1::SetPovertyStandardsResponse {
                standards: parsed
                    .all()
                    .iter()
                    .map(crate::reviews::convert::standard_to_proto)
                    .collect(),
                etag: crate::convert::etag(row.version),
            },
            txn,
        ))
    })
    .await
}

/// Writes a set that arrived from the province.
pub async fn write_replica(
    txn: &impl sea_orm::ConnectionTrait,
    incoming: &sustain_sync::apply::Incoming,
) -> Result<(), ServiceError> {
    let row: standard_set::Model = incoming.read()?;
    incoming.require_placed(&row.id, &row.province_code)?;
    Standards::parse(&row.standards_toml)
        .map_err(|e| ServiceError::Internal(format!("poverty standards do not read: {e}")))?;
    store::standards::replace(txn, row).await?;
    Ok(())
}
