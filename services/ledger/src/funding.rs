//! The funding summary of a unit and period: planned, allocated, committed
//! and disbursed, by source, Project, year and next-level unit, counted from
//! the transfers by the edge they moved along:
//!
//! - planned: source → plan, less reversals;
//! - allocated: into an allocation of the unit from outside the unit's own
//!   allocations (so re-allocating to a commune is not counted twice), less
//!   reversals;
//! - committed: allocation → expenditure still pending;
//! - disbursed: allocation → expenditure posted, less reversals.
//!
//! Each amount is counted on the account it is about (the plan, the
//! allocation), whose year must lie in the period.

use std::collections::BTreeMap;
use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult, Statement};
use sustain_domain::admin::Level;
use sustain_domain::ledger::{AccountKind, FundingSource};
use sustain_domain::poverty::Rate;
use sustain_domain::programme::project_of;
use sustain_platform::Caller;
use sustain_platform::cache::KeptAtHead;
use sustain_platform::error::ServiceError;
use sustain_platform::placement::Placement;
use sustain_proto::ledger::v1 as pb;
use tonic::{Request, Response, Status};

use crate::READ;
use crate::convert::source_to_proto;
use crate::model::head;
use sustain_domain::ledger::transfer_state::{PENDING, POSTED};

/// Longest period one summary covers.
pub const MAX_YEARS: i32 = 20;

/// Transfers grouped by everything the summary breaks them down by.
#[derive(Debug, FromQueryResult)]
struct Moved {
    d_kind: String,
    c_kind: String,
    reversal: bool,
    state: String,
    source: String,
    d_project: String,
    c_project: String,
    d_year: i32,
    c_year: i32,
    d_province: String,
    d_district: Option<String>,
    d_commune: Option<String>,
    d_current: Option<String>,
    c_province: String,
    c_district: Option<String>,
    c_commune: Option<String>,
    c_current: Option<String>,
    amount: i64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    planned: i128,
    allocated: i128,
    committed: i128,
    disbursed: i128,
}

impl Figures {
    fn to_proto(self) -> pb::FundingFigures {
        let clamp = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
        let (allocated, disbursed) = (clamp(self.allocated), clamp(self.disbursed));
        pb::FundingFigures {
            planned_vnd: clamp(self.planned),
            allocated_vnd: allocated,
            committed_vnd: clamp(self.committed),
            disbursed_vnd: disbursed,
            disbursement_percent: if allocated > 0 {
                Rate::new(disbursed, allocated).to_string()
            } else {
                String::new()
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Figure {
    Planned,
    Allocated,
    Committed,
    Disbursed,
}

impl Figures {
    fn add(&mut self, figure: Figure, amount: i128) {
        match figure {
            Figure::Planned => self.planned += amount,
            Figure::Allocated => self.allocated += amount,
            Figure::Committed => self.committed += amount,
            Figure::Disbursed => self.disbursed += amount,
        }
    }
}

/// The summary's running sums.
#[derive(Debug, Default)]
struct Summary {
    total: Figures,
    state_budget: Figures,
    central: Figures,
    mobilised: Figures,
    by_source: BTreeMap<FundingSource, Figures>,
    by_project: BTreeMap<String, Figures>,
    by_year: BTreeMap<i32, Figures>,
    by_unit: BTreeMap<String, Figures>,
}

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

/// The transfers of `province` (every province for ""), grouped by
/// everything a summary breaks them down by.
async fn moved(conn: &impl ConnectionTrait, province: &str) -> Result<Vec<Moved>, ServiceError> {
    let backend = conn.get_database_backend();
    let sql = "SELECT da.kind AS d_kind, ca.kind AS c_kind, \
        CASE WHEN t.reverses_id IS NULL THEN 0 ELSE 1 END = 1 AS reversal, t.state AS state, \
        da.source AS source, da.project_code AS d_project, ca.project_code AS c_project, \
        da.year AS d_year, ca.year AS c_year, \
        da.province_code AS d_province, da.district_code AS d_district, da.commune_code AS d_commune, da.current_commune_code AS d_current, \
        ca.province_code AS c_province, ca.district_code AS c_district, ca.commune_code AS c_commune, ca.current_commune_code AS c_current, \
        CAST(SUM(t.amount) AS BIGINT) AS amount \
        FROM ledger_transfer t \
        JOIN ledger_account da ON da.id = t.debit_account_id \
        JOIN ledger_account ca ON ca.id = t.credit_account_id \
        WHERE ($1 = '' OR da.province_code = $1 OR ca.province_code = $1) AND t.state <> 'voided' \
        GROUP BY da.kind, ca.kind, CASE WHEN t.reverses_id IS NULL THEN 0 ELSE 1 END, t.state, da.source, \
        da.project_code, ca.project_code, da.year, ca.year, \
        da.province_code, da.district_code, da.commune_code, da.current_commune_code, \
        ca.province_code, ca.district_code, ca.commune_code, ca.current_commune_code";
    let sql = match backend {
        sea_orm::DbBackend::Postgres => sql.to_owned(),
        _ => sql.replace("$1", "?"),
    };
    let values: Vec<sea_orm::Value> = match backend {
        sea_orm::DbBackend::Postgres => vec![province.into()],
        _ => vec![province.into(); 3],
    };
    Ok(
        Moved::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .all(conn)
            .await?,
    )
}

/// The summary of `unit` over `from..=to`, counted from its province's
/// grouped transfers.
fn count(rows: &[Moved], unit: &str, from: i32, to: i32) -> pb::FundingSummary {
    let level = Level::of_code(unit);
    let mut s = Summary::default();
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
        let (d_in, c_in) = (d.placement.is_within(unit), c.placement.is_within(unit));
        let posted = r.state == POSTED;
        use AccountKind::*;
        // (figure, sign, the side it is about)
        let counted: Option<(Figure, i128, &Side<'_>)> = match (d.kind, c.kind, r.reversal) {
            (Some(Source), Some(Plan), false) if posted && c_in => Some((Figure::Planned, 1, &c)),
            (Some(Plan), Some(Source), true) if posted && d_in => Some((Figure::Planned, -1, &d)),
            (Some(from), Some(Allocation), false)
                if posted && c_in && !(from == Allocation && d_in) =>
            {
                Some((Figure::Allocated, 1, &c))
            }
            (Some(Allocation), Some(back), true)
                if posted && d_in && back != Expenditure && !(back == Allocation && c_in) =>
            {
                Some((Figure::Allocated, -1, &d))
            }
            (Some(Allocation), Some(Expenditure), false) if d_in && r.state == PENDING => {
                Some((Figure::Committed, 1, &d))
            }
            (Some(Allocation), Some(Expenditure), false) if d_in && posted => {
                Some((Figure::Disbursed, 1, &d))
            }
            (Some(Expenditure), Some(Allocation), true) if c_in && posted => {
                Some((Figure::Disbursed, -1, &c))
            }
            _ => None,
        };
        let Some((figure, sign, side)) = counted else {
            continue;
        };
        if !(from..=to).contains(&side.year) {
            continue;
        }
        let amount = sign * i128::from(r.amount);
        let source = FundingSource::from_code(&r.source);
        s.total.add(figure, amount);
        if let Some(src) = source {
            s.by_source.entry(src).or_default().add(figure, amount);
            if src.is_state_budget() {
                s.state_budget.add(figure, amount);
            }
            if src.is_central() {
                s.central.add(figure, amount);
            }
            if matches!(
                src,
                FundingSource::SocialContribution
                    | FundingSource::Enterprise
                    | FundingSource::HouseholdContribution
            ) {
                s.mobilised.add(figure, amount);
            }
        }
        let project = project_of(side.project).unwrap_or_else(|| side.project.to_owned());
        s.by_project.entry(project).or_default().add(figure, amount);
        s.by_year.entry(side.year).or_default().add(figure, amount);
        s.by_unit
            .entry(child_unit(unit, level, &side.placement))
            .or_default()
            .add(figure, amount);
    }
    pb::FundingSummary {
        unit_code: unit.to_owned(),
        from_year: from,
        to_year: to,
        total: Some(s.total.to_proto()),
        state_budget: Some(s.state_budget.to_proto()),
        central_budget: Some(s.central.to_proto()),
        mobilised: Some(s.mobilised.to_proto()),
        by_source: s
            .by_source
            .into_iter()
            .map(|(src, f)| pb::SourceFigures {
                source: source_to_proto(src) as i32,
                figures: Some(f.to_proto()),
            })
            .collect(),
        by_project: s
            .by_project
            .into_iter()
            .map(|(project_code, f)| pb::ProjectFigures {
                project_code,
                figures: Some(f.to_proto()),
            })
            .collect(),
        by_year: s
            .by_year
            .into_iter()
            .map(|(year, f)| pb::YearFigures {
                year,
                figures: Some(f.to_proto()),
            })
            .collect(),
        by_unit: s
            .by_unit
            .into_iter()
            .map(|(unit_code, f)| pb::UnitFigures {
                unit_code,
                figures: Some(f.to_proto()),
            })
            .collect(),
    }
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
    let head = head::Entity::find_by_id(1)
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::Internal("the ledger has no chain head".into()))?;
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
            moved(&reading, &of).await
        })
        .await?;
    let fresh = Arc::new(count(&rows, unit, from, to));
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
