//! The three reports: poverty, programmes and funding for a unit over a
//! period, each the owning service's figures, and on request the same counts
//! unit by unit (the province's tables: units as rows, years as columns).
//! Breakdown rows copy fields out of the services' summaries; nothing is
//! added up here.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use sustain_domain::admin;
use sustain_platform::Caller;
use sustain_platform::error::ServiceError;
use sustain_proto::gateway::v1 as pb;
use sustain_proto::ledger::v1 as ledger;
use sustain_proto::programs::v1 as programs;
use sustain_proto::registry::v1 as registry;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::READ;
use crate::dashboard::{MAX_YEARS, ReportApi};

/// Backend calls one breakdown keeps in flight.
const IN_FLIGHT: usize = 16;

/// A report's unit, period and breakdown, checked against the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub unit: String,
    pub from: i32,
    pub to: i32,
    pub breakdown: pb::Breakdown,
}

impl Asked {
    pub fn check(
        caller: &Caller,
        unit: &str,
        from: i32,
        to: i32,
        breakdown: i32,
        what: &str,
    ) -> Result<Asked, ServiceError> {
        caller.require("read reports", READ)?;
        let breakdown = pb::Breakdown::try_from(breakdown).map_err(|_| {
            let mut v = sustain_domain::Violations::new();
            v.add("breakdown", "is not a known breakdown");
            ServiceError::from(v)
        })?;
        let (unit, from, to) =
            sustain_platform::api::checked_period(caller, unit, from, to, MAX_YEARS, what)?;
        Ok(Asked {
            unit,
            from,
            to,
            breakdown,
        })
    }

    /// The day the period's units are taken at: its last day, or today.
    fn end(&self) -> chrono::NaiveDate {
        let today = sustain_platform::api::today();
        chrono::NaiveDate::from_ymd_opt(self.to, 12, 31)
            .filter(|d| *d < today)
            .unwrap_or(today)
    }

    /// The units of the breakdown, by code, with their names.
    pub fn units(&self) -> Vec<(String, String)> {
        let catalog = admin::catalog();
        let end = self.end();
        let mut units: Vec<(String, String)> = match self.breakdown {
            pb::Breakdown::Unspecified => vec![],
            pb::Breakdown::Children => catalog
                .children(Some(&self.unit), end)
                .into_iter()
                .map(|u| (u.code.clone(), u.name.clone()))
                .collect(),
            pb::Breakdown::Communes => catalog
                .communes_under(&self.unit, end)
                .into_iter()
                .map(|u| (u.code.clone(), u.name.clone()))
                .collect(),
        };
        units.sort();
        units
    }

    /// After the reform, the communes it split that lie under the unit, by
    /// code, named for the row of their households not yet assigned to a
    /// part (which no unit of the breakdown holds).
    pub fn unassigned_sources(&self) -> Vec<(String, String)> {
        if self.breakdown == pb::Breakdown::Unspecified || self.end() < admin::reform_date() {
            return vec![];
        }
        let catalog = admin::catalog();
        let before = admin::reform_date().pred_opt().unwrap_or_default();
        catalog
            .split_codes()
            .into_iter()
            .filter(|code| catalog.lies_within(code, &self.unit))
            .map(|code| {
                let name = catalog
                    .get(code, before)
                    .map(|u| u.name.clone())
                    .unwrap_or_default();
                (
                    code.to_owned(),
                    format!("Từ {code} {name}, chưa phân về đơn vị mới"),
                )
            })
            .collect()
    }

    /// The unit's own name at the end of the period.
    fn unit_name(&self) -> String {
        admin::catalog()
            .get(&self.unit, self.end())
            .map(|u| u.name.clone())
            .unwrap_or_default()
    }
}

/// Runs `one` for every unit of the breakdown, a few at a time, in unit
/// order; the first refusal ends the breakdown.
async fn rows<R, F, Fut>(units: Vec<(String, String)>, one: F) -> Result<Vec<R>, Status>
where
    F: Fn(String, String) -> Fut,
    Fut: std::future::Future<Output = Result<R, Status>>,
{
    futures::stream::iter(units)
        .map(|(code, name)| one(code, name))
        .buffered(IN_FLIGHT)
        .try_collect()
        .await
}

fn poverty_row(code: String, name: String, years: &[registry::PovertySummary]) -> pb::PovertyRow {
    pb::PovertyRow {
        unassigned: false,
        unit_name: years
            .first()
            .map(|s| s.unit_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or(name),
        unit_code: code,
        years: years
            .iter()
            .map(|s| pb::PovertyCell {
                year: s.year,
                households_reviewed: s.households_reviewed,
                poor: s.poor.clone(),
                near_poor: s.near_poor.clone(),
            })
            .collect(),
    }
}

fn programme_cell(year: i32, s: &programs::ProgrammeSummary) -> pb::ProgrammeCell {
    let models = s.models.clone().unwrap_or_default();
    let training = s.training.clone().unwrap_or_default();
    pb::ProgrammeCell {
        year,
        models: models.models,
        enrolled_households: models.enrolled_households,
        model_budget_vnd: models.budget_vnd,
        courses: training.courses,
        trainees: training.trainees,
    }
}

fn funding_row(code: String, name: String, s: &ledger::FundingSummary) -> pb::FundingRow {
    pb::FundingRow {
        unit_code: code,
        unit_name: name,
        years: (s.from_year..=s.to_year)
            .map(|year| pb::FundingCell {
                year,
                figures: Some(
                    s.by_year
                        .iter()
                        .find(|y| y.year == year)
                        .and_then(|y| y.figures.clone())
                        .unwrap_or_default(),
                ),
            })
            .collect(),
    }
}

impl ReportApi {
    pub async fn poverty_report(
        &self,
        md: &MetadataMap,
        asked: &Asked,
    ) -> Result<pb::PovertyReport, Status> {
        let budget = self.budget(md);
        let Asked { unit, from, to, .. } = asked.clone();
        let breakdown = rows(asked.units(), |code, name| async move {
            let years = self.poverty_years(md, &code, from, to, budget).await?;
            Ok(poverty_row(code, name, &years))
        });
        let unit_ref = unit.as_str();
        let unassigned = rows(asked.unassigned_sources(), |code, name| async move {
            let years = self
                .poverty_series(md, unit_ref, &code, from, to, budget)
                .await?;
            Ok(pb::PovertyRow {
                unassigned: true,
                unit_name: name.clone(),
                ..poverty_row(code, name, &years)
            })
        });
        let own = self.poverty_years(md, &unit, from, to, budget);
        let (mut units, unassigned, years) = tokio::try_join!(
            within_budget(budget, breakdown),
            within_budget(budget, unassigned),
            own
        )?;
        units.extend(
            unassigned
                .into_iter()
                .filter(|r| r.years.iter().any(|y| y.households_reviewed > 0)),
        );
        Ok(pb::PovertyReport {
            total: Some(poverty_row(unit.clone(), asked.unit_name(), &years)),
            unit_code: unit,
            from_year: from,
            to_year: to,
            years,
            units,
        })
    }

    pub async fn programme_report(
        &self,
        md: &MetadataMap,
        asked: &Asked,
    ) -> Result<pb::ProgrammeReport, Status> {
        let budget = self.budget(md);
        let Asked { unit, from, to, .. } = asked.clone();
        let series = |code: String, name: String| async move {
            let years = futures::future::try_join_all(
                (from..=to).map(|y| self.programme_summary(md, &code, y, y, budget)),
            )
            .await?;
            Ok::<_, Status>(pb::ProgrammeRow {
                unit_code: code,
                unit_name: name,
                years: (from..=to)
                    .zip(&years)
                    .map(|(y, s)| programme_cell(y, s))
                    .collect(),
            })
        };
        let breakdown = rows(asked.units(), series);
        let own = series(unit.clone(), asked.unit_name());
        let period = self.programme_summary(md, &unit, from, to, budget);
        let (units, total, period) =
            tokio::try_join!(within_budget(budget, breakdown), own, period)?;
        Ok(pb::ProgrammeReport {
            unit_code: unit,
            from_year: from,
            to_year: to,
            period: Some(period),
            units,
            total: Some(total),
        })
    }

    pub async fn funding_report(
        &self,
        md: &MetadataMap,
        asked: &Asked,
    ) -> Result<pb::FundingReport, Status> {
        let budget = self.budget(md);
        let Asked { unit, from, to, .. } = asked.clone();
        let period = self.funding_summary(md, &unit, from, to, budget).await?;
        // Money stays where it was placed: a period that crosses the 2025
        // reform lists the districts that hold money beside the communes of
        // its end, so no đồng drops out of the table.
        let mut listed = asked.units();
        if asked.breakdown == pb::Breakdown::Children {
            let catalog = admin::catalog();
            for u in &period.by_unit {
                if u.unit_code != unit && !listed.iter().any(|(c, _)| *c == u.unit_code) {
                    let name = catalog
                        .versions(&u.unit_code)
                        .last()
                        .map(|v| v.name.clone())
                        .unwrap_or_default();
                    listed.push((u.unit_code.clone(), name));
                }
            }
            listed.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
        }
        let breakdown = rows(listed, |code, name| async move {
            let s = self.funding_summary(md, &code, from, to, budget).await?;
            Ok(funding_row(code, name, &s))
        });
        let units = within_budget(budget, breakdown).await?;
        Ok(pb::FundingReport {
            total: Some(funding_row(unit.clone(), asked.unit_name(), &period)),
            unit_code: unit,
            from_year: from,
            to_year: to,
            period: Some(period),
            units,
        })
    }
}

/// A breakdown, which is many calls, as a whole within the budget.
async fn within_budget<T>(
    budget: Duration,
    work: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    tokio::time::timeout(budget, work)
        .await
        .unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(format!(
                "the breakdown took longer than {} ms",
                budget.as_millis()
            )))
        })
}

#[tonic::async_trait]
impl pb::report_service_server::ReportService for ReportApi {
    async fn get_dashboard(
        &self,
        request: Request<pb::GetDashboardRequest>,
    ) -> Result<Response<pb::GetDashboardResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let dashboard = self
            .dashboard(&caller, request.metadata(), request.get_ref())
            .await?;
        Ok(Response::new(pb::GetDashboardResponse {
            dashboard: Some(dashboard),
        }))
    }

    async fn get_poverty_report(
        &self,
        request: Request<pb::GetPovertyReportRequest>,
    ) -> Result<Response<pb::GetPovertyReportResponse>, Status> {
        let asked = asked(&request)?;
        let report = self.poverty_report(request.metadata(), &asked).await?;
        Ok(Response::new(pb::GetPovertyReportResponse {
            report: Some(report),
        }))
    }

    async fn get_programme_report(
        &self,
        request: Request<pb::GetProgrammeReportRequest>,
    ) -> Result<Response<pb::GetProgrammeReportResponse>, Status> {
        let asked = asked(&request)?;
        let report = self.programme_report(request.metadata(), &asked).await?;
        Ok(Response::new(pb::GetProgrammeReportResponse {
            report: Some(report),
        }))
    }

    async fn get_funding_report(
        &self,
        request: Request<pb::GetFundingReportRequest>,
    ) -> Result<Response<pb::GetFundingReportResponse>, Status> {
        let asked = asked(&request)?;
        let report = self.funding_report(request.metadata(), &asked).await?;
        Ok(Response::new(pb::GetFundingReportResponse {
            report: Some(report),
        }))
    }
}

/// The fields the three report requests share.
trait ReportRequest {
    /// What the report is called in errors.
    const WHAT: &'static str;
    /// Unit, first year, last year, breakdown.
    fn parts(&self) -> (&str, i32, i32, i32);
}

impl ReportRequest for pb::GetPovertyReportRequest {
    const WHAT: &'static str = "poverty report";
    fn parts(&self) -> (&str, i32, i32, i32) {
        (
            &self.unit_code,
            self.from_year,
            self.to_year,
            self.breakdown,
        )
    }
}

impl ReportRequest for pb::GetProgrammeReportRequest {
    const WHAT: &'static str = "programme report";
    fn parts(&self) -> (&str, i32, i32, i32) {
        (
            &self.unit_code,
            self.from_year,
            self.to_year,
            self.breakdown,
        )
    }
}

impl ReportRequest for pb::GetFundingReportRequest {
    const WHAT: &'static str = "funding report";
    fn parts(&self) -> (&str, i32, i32, i32) {
        (
            &self.unit_code,
            self.from_year,
            self.to_year,
            self.breakdown,
        )
    }
}

/// A report request checked against its caller.
fn asked<R: ReportRequest>(request: &Request<R>) -> Result<Asked, Status> {
    let caller = Caller::from_request(request)?;
    let (unit, from, to, breakdown) = request.get_ref().parts();
    Ok(Asked::check(&caller, unit, from, to, breakdown, R::WHAT)?)
}
