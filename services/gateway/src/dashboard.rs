//! The dashboard: a unit's poverty series, programme summary and funding
//! summary, asked of the services that own them at the same time, each within
//! the caller's deadline. A section whose service is slow, down or refuses is
//! marked unavailable with the reason; the gateway never fills it in.

use std::time::{Duration, Instant};

use sustain_platform::Caller;
use sustain_platform::error::ServiceError;
use sustain_proto::gateway::v1 as pb;
use sustain_proto::ledger::v1 as ledger;
use sustain_proto::ledger::v1::funding_service_client::FundingServiceClient;
use sustain_proto::programs::v1 as programs;
use sustain_proto::programs::v1::programme_summary_service_client::ProgrammeSummaryServiceClient;
use sustain_proto::registry::v1 as registry;
use sustain_proto::registry::v1::review_service_client::ReviewServiceClient;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::READ;

/// Longest period one dashboard covers.
pub const MAX_YEARS: i32 = 20;
/// Time kept back from the caller's deadline to answer in.
const MARGIN: Duration = Duration::from_millis(50);

/// The services the gateway reads from.
#[derive(Debug, Clone)]
pub struct Backends {
    pub registry: ReviewServiceClient<Channel>,
    pub programs: ProgrammeSummaryServiceClient<Channel>,
    pub ledger: FundingServiceClient<Channel>,
    /// The longest any section may take when the caller sets no deadline.
    pub default_deadline: Duration,
}

/// The caller's deadline from its `grpc-timeout` header (e.g. `5S`, `250m`).
fn caller_deadline(metadata: &MetadataMap) -> Option<Duration> {
    let raw = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (value, unit) = raw.split_at(raw.len().checked_sub(1)?);
    let value: u64 = value.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value.saturating_mul(3600)),
        "M" => Duration::from_secs(value.saturating_mul(60)),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

/// The canonical name of a gRPC status code.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A section's reason for having no figures.
fn unavailable(status: &Status) -> pb::Unavailable {
    pb::Unavailable {
        code: code_name(status.code()).to_owned(),
        reason: status.message().to_owned(),
    }
}

/// A request to a backend carrying the caller's credentials and trace
/// context, with what is left of the deadline. The backend is given a little
/// more than the gateway waits, so that the gateway's own timer decides
/// (DEADLINE_EXCEEDED) rather than the client's (CANCELLED).
pub fn forwarded<T>(message: T, from: &MetadataMap, budget: Duration) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(v) = from.get("authorization") {
        request.metadata_mut().insert("authorization", v.clone());
    }
    // The gateway's own span is the parent when traces are on; otherwise the
    // caller's context passes through unchanged.
    if !sustain_platform::telemetry::inject_current(request.metadata_mut()) {
        for key in ["traceparent", "tracestate"] {
            if let Some(v) = from.get(key) {
                request.metadata_mut().insert(key, v.clone());
            }
        }
    }
    request.set_timeout(budget + Duration::from_millis(25));
    request
}

/// Runs `call` within `budget`; past it, DEADLINE_EXCEEDED. A backend's
/// own refusal keeps its code, its message prefixed with the service's name;
/// a connection lost mid-call is UNAVAILABLE.
pub async fn within<T>(
    service: &str,
    budget: Duration,
    call: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(budget, call).await {
        Ok(Ok(answer)) => Ok(answer),
        // The client reports a connection lost mid-call (a backend killed
        // with the call in flight) as UNKNOWN with the transport error as
        // its source; to the caller that service is unavailable.
        Ok(Err(status))
            if status.code() == Code::Unknown && std::error::Error::source(&status).is_some() =>
        {
            Err(Status::unavailable(format!(
                "{service}: the connection was lost during the call ({})",
                status.message()
            )))
        }
        Ok(Err(status)) => Err(Status::new(
            status.code(),
            format!("{service}: {}", status.message()),
        )),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "{service}: no answer within {} ms",
            budget.as_millis()
        ))),
    }
}

pub fn checked_request(
    caller: &Caller,
    r: &pb::GetDashboardRequest,
) -> Result<(String, i32, i32), ServiceError> {
    sustain_platform::api::checked_period(
        caller,
        &r.unit_code,
        r.from_year,
        r.to_year,
        MAX_YEARS,
        "dashboard",
    )
}

#[derive(Debug, Clone)]
pub struct ReportApi {
    pub backends: Backends,
}

impl ReportApi {
    /// The registry's certified summary of `unit` for each year, oldest
    /// first, in one call (one snapshot).
    pub async fn poverty_years(
        &self,
        md: &MetadataMap,
        unit: &str,
        from: i32,
        to: i32,
        budget: Duration,
    ) -> Result<Vec<registry::PovertySummary>, Status> {
        self.poverty_series(md, unit, "", from, to, budget).await
    }

    /// [`poverty_years`](Self::poverty_years) of the households under `unit`
    /// of the split commune `unassigned_from` whose village is not yet
    /// assigned to a part (all of `unit`'s when it is empty).
    pub async fn poverty_series(
        &self,
        md: &MetadataMap,
        unit: &str,
        unassigned_from: &str,
        from: i32,
        to: i32,
        budget: Duration,
    ) -> Result<Vec<registry::PovertySummary>, Status> {
        let mut client = self.backends.registry.clone();
        let request = forwarded(
            registry::GetPovertySeriesRequest {
                unit_code: unit.to_owned(),
                from_year: from,
                to_year: to,
                unassigned_from: unassigned_from.to_owned(),
            },
            md,
            budget,
        );
        within("registry", budget, async move {
            Ok(client
                .get_poverty_series(request)
                .await?
                .into_inner()
                .summaries)
        })
        .await
    }

    /// The programmes service's summary of `unit` over the period.
    pub async fn programme_summary(
        &self,
        md: &MetadataMap,
        unit: &str,
        from: i32,
        to: i32,
        budget: Duration,
    ) -> Result<programs::ProgrammeSummary, Status> {
        let mut client = self.backends.programs.clone();
        let request = forwarded(
            programs::GetProgrammeSummaryRequest {
                unit_code: unit.to_owned(),
                from_year: from,
                to_year: to,
            },
            md,
            budget,
        );
        within("programs", budget, async move {
            Ok(client
                .get_programme_summary(request)
                .await?
                .into_inner()
                .summary
                .unwrap_or_default())
        })
        .await
    }

    /// The ledger's funding summary of `unit` over the period.
    pub async fn funding_summary(
        &self,
        md: &MetadataMap,
        unit: &str,
        from: i32,
        to: i32,
        budget: Duration,
    ) -> Result<ledger::FundingSummary, Status> {
        let mut client = self.backends.ledger.clone();
        let request = forwarded(
            ledger::GetFundingSummaryRequest {
                unit_code: unit.to_owned(),
                from_year: from,
                to_year: to,
            },
            md,
            budget,
        );
        within("ledger", budget, async move {
            Ok(client
                .get_funding_summary(request)
                .await?
                .into_inner()
                .summary
                .unwrap_or_default())
        })
        .await
    }
}

impl ReportApi {
    /// What is left of the caller's deadline for the backends.
    pub fn budget(&self, md: &MetadataMap) -> Duration {
        caller_deadline(md)
            .map(|d| d.saturating_sub(MARGIN))
            .unwrap_or(self.backends.default_deadline)
            .min(self.backends.default_deadline)
    }

    /// The dashboard for a checked caller; `md` carries the credentials
    /// passed on.
    pub async fn dashboard(
        &self,
        caller: &Caller,
        md: &MetadataMap,
        request: &pb::GetDashboardRequest,
    ) -> Result<pb::Dashboard, ServiceError> {
        let started = Instant::now();
        caller.require("read reports", READ)?;
        let (unit, from, to) = checked_request(caller, request)?;
        let budget = self.budget(md);
        let (poverty, programmes, funding) = tokio::join!(
            self.poverty_years(md, &unit, from, to, budget),
            self.programme_summary(md, &unit, from, to, budget),
            self.funding_summary(md, &unit, from, to, budget),
        );
        let poverty = match poverty {
            Ok(years) => pb::PovertySection {
                years,
                unavailable: None,
            },
            Err(why) => pb::PovertySection {
                years: vec![],
                unavailable: Some(unavailable(&why)),
            },
        };
        let programmes = match programmes {
            Ok(summary) => pb::ProgrammeSection {
                summary: Some(summary),
                unavailable: None,
            },
            Err(why) => pb::ProgrammeSection {
                summary: None,
                unavailable: Some(unavailable(&why)),
            },
        };
        let funding = match funding {
            Ok(summary) => pb::FundingSection {
                summary: Some(summary),
                unavailable: None,
            },
            Err(why) => pb::FundingSection {
                summary: None,
                unavailable: Some(unavailable(&why)),
            },
        };
        tracing::info!(
            unit = %unit,
            ms = started.elapsed().as_millis() as u64,
            poverty = poverty.unavailable.is_none(),
            programmes = programmes.unavailable.is_none(),
            funding = funding.unavailable.is_none(),
            "dashboard"
        );
        Ok(pb::Dashboard {
            unit_code: unit,
            from_year: from,
            to_year: to,
            poverty: Some(poverty),
            programmes: Some(programmes),
            funding: Some(funding),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_deadline_is_read_from_grpc_timeout() {
        let mut md = MetadataMap::new();
        assert_eq!(caller_deadline(&md), None);
        for (raw, want) in [
            ("5S", Duration::from_secs(5)),
            ("250m", Duration::from_millis(250)),
            ("2M", Duration::from_secs(120)),
            ("7u", Duration::from_micros(7)),
        ] {
            md.insert("grpc-timeout", raw.parse().expect("ascii"));
            assert_eq!(caller_deadline(&md), Some(want), "{raw}");
        }
        for bad in ["", "S", "12x", "-1S"] {
            md.insert("grpc-timeout", bad.parse().expect("ascii"));
            assert_eq!(caller_deadline(&md), None, "{bad}");
        }
    }
}
