//! The funding summary of a unit and period: planned, allocated, committed
//! and disbursed (defined by `sustain_domain::ledger::Figure`), by source,
//! Project, year and next-level unit, counted from one grouped read of the
//! transfers. Each amount is counted on the account it is about (the plan,
//! the allocation), whose year must lie in the period.

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use sustain_domain::admin::Level;
use sustain_domain::ledger::{self, AccountKind, FundingSource, FundingSummary, Movement};
use sustain_domain::programme::project_of;
use sustain_platform::Caller;
use sustain_platform::cache::KeptAtHead;
use sustain_platform::error::ServiceError;
use sustain_platform::placement::Placement;
use sustain_proto::ledger::v1 as pb;
use tonic::{Request, Response, Status};

use crate::READ;
use crate::convert::summary_to_proto;
use crate::store;
use crate::store::funding::Moved;

/// Longest period one summary covers.
pub const MAX_YEARS: i32 = 20;

/// What a summary needs of one side of a transfer.
struct Side<'a> {
    kind: Option<AccountKind>,
    project: &'a str,
    year: i32,
    placement: Placement,
}

fn placement(
    province: &str,
    district: &Option<String>,
    commune: &Option<String>,
    current: &Option<String>,
) -> Placement {
    Placement {
        unit_code: String::new(),
        province_code: province.to_owned(),
        district_code: district.clone(),
        commune_code: commune.clone(),
        current_commune_code: current.clone(),
    }
}

/// The unit one level under `unit` that `p` lies in, or `unit` itself.
fn child_unit(unit: &str, level: Option<Level>, p: &Placement) -> String {
    let below = match level {
        Some(Level::Province) => p
            .district_code
            .clone()
            .or_else(|| p.current_commune_code.clone()),
        Some(Level::District) => p
            .current_commune_code
            .clone()
            .or_else(|| p.commune_code.clone()),
        _ => None,
    };
    below.unwrap_or_else(|| unit.to_owned())
}

/// The province whose transfers can touch `unit` ("" when the unit is unknown).
fn province_of(unit: &str) -> String {
    let today = sustain_platform::api::today();
    match Level::of_code(unit) {
        Some(Level::Province) => unit.to_owned(),
        _ => Placement::of_unit(unit, today, today)
            .map(|p| p.province_code)
            .unwrap_or_default(),
    }
}

/// The summary of `unit` over `from..=to`, counted from its province's
/// grouped transfers.
fn count(rows: &[Moved], unit: &str, from: i32, to: i32) -> FundingSummary {
    let level = Level::of_code(unit);
    let mut s = FundingSummary::default();
    for r in rows {
        let d = Side {
            kind: AccountKind::from_code(&r.d_kind),
            project: &r.d_project,
            year: r.d_year,
            placement: placement(&r.d_province, &r.d_district, &r.d_commune, &r.d_current),
        };
        let c = Side {
            kind: AccountKind::from_code(&r.c_kind),
            project: &r.c_project,
            year: r.c_year,
            placement: placement(&r.c_province, &r.c_district, &r.c_commune, &r.c_current),
        };
        let (Some(debit), Some(credit)) = (d.kind, c.kind) else {
            continue;
        };
        let movement = Movement {
            debit,
            credit,
            reversal: r.reversal,
            state: &r.state,
            debit_inside: d.placement.is_within(unit),
            credit_inside: c.placement.is_within(unit),
        };
        let Some((figure, sign, side)) = movement.counted() else {
            continue;
        };
        let side = match side {
            ledger::Side::Debit => &d,
            ledger::Side::Credit => &c,
        };
        if !(from..=to).contains(&side.year) {
            continue;
        }
        let project = project_of(side.project).unwrap_or_else(|| side.project.to_owned());
        s.count(
            figure,
            sign * i128::from(r.amount),
            FundingSource::from_code(&r.source),
            project,
            side.year,
            child_unit(unit, level, &side.placement),
        );
    }
    s
}

/// What is kept of the ledger by the chain head it was read at: every write
/// that can change a figure (a transfer made, posted or voided) appends to
/// the chain and moves its head in the same transaction.
#[derive(Debug, Clone)]
pub struct SummaryCache {
    /// Summaries by unit, period, day and head.
    summaries: sustain_platform::cache::SummaryCache<pb::FundingSummary>,
    /// A province's grouped transfers. A report by commune asks for one
    /// summary per commune at the same head: they are all counted from one
    /// read of the transfers, not one read each.
    moved: KeptAtHead<String, Vec<Moved>>,
}

impl Default for SummaryCache {
    fn default() -> SummaryCache {
        SummaryCache {
            summaries: sustain_platform::cache::SummaryCache::new(),
            moved: KeptAtHead::new(4),
        }
    }
}

impl SummaryCache {
    pub fn new() -> SummaryCache {
        SummaryCache::default()
    }
}

/// The summary as of the ledger's current head, from the cache when that
/// head's summary has been computed already.
pub async fn current_summary(
    db: &DatabaseConnection,
    cache: &SummaryCache,
    unit: &str,
    from: i32,
    to: i32,
) -> Result<Arc<pb::FundingSummary>, ServiceError> {
    // No connection is held while waiting for another caller's read of the
    // transfers: the pool is small (four on SQLite) and a report asks ~16
    // summaries at once. The read may see a later head than `head`, never an
    // earlier one.
    let head = store::chain::head(db, false).await?;
    let key = (
        unit.to_owned(),
        from,
        to,
        sustain_platform::api::today(),
        head.sequence,
    );
    if let Some(hit) = cache.summaries.get(&key) {
        return Ok(hit);
    }
    let province = province_of(unit);
    let (reading, of) = (db.clone(), province.clone());
    let rows = cache
        .moved
        .get_or_try_init(head.sequence, province, || async move {
            store::funding::moved(&reading, &of).await
        })
        .await?;
    let fresh = Arc::new(summary_to_proto(
        unit,
        from,
        to,
        count(&rows, unit, from, to),
    ));
    cache.summaries.insert(key, Arc::clone(&fresh));
    Ok(fresh)
}

#[derive(Debug, Clone)]
pub struct FundingApi {
    pub db: DatabaseConnection,
    pub cache: SummaryCache,
}

#[tonic::async_trait]
impl pb::funding_service_server::FundingService for FundingApi {
    async fn get_funding_summary(
        &self,
        request: Request<pb::GetFundingSummaryRequest>,
    ) -> Result<Response<pb::GetFundingSummaryResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require("read funding summaries", READ)?;
        let r = request.get_ref();
        let (unit, from, to) = sustain_platform::api::checked_period(
            &caller,
            &r.unit_code,
            r.from_year,
            r.to_year,
            MAX_YEARS,
            "summary",
        )?;
        let summary = current_summary(&self.db, &self.cache, &unit, from, to).await?;
        Ok(Response::new(pb::GetFundingSummaryResponse {
            summary: Some(Arc::unwrap_or_clone(summary)),
        }))
    }
}
