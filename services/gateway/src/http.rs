//! Reports over HTTP, for people and spreadsheets rather than programs: the
//! report page (HTML, charts as SVG), the dashboard as JSON (the protobuf's
//! canonical JSON, so the figures read as the services answered), and the
//! poverty table (units as rows, years as columns, the unit's own total last)
//! as CSV and XLSX. The same bearer
//! tokens as gRPC; in development mode a request without one reads as the
//! development admin.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use sustain_platform::Caller;
use sustain_platform::auth::Authenticator;
use sustain_platform::error::ServiceError;
use sustain_proto::gateway::v1 as pb;
use tonic::metadata::{MetadataMap, MetadataValue};

use crate::READ;
use crate::dashboard::ReportApi;
use crate::reports::Asked;
use crate::table::Table;

#[derive(Clone)]
pub struct Http {
    pub api: ReportApi,
    pub auth: Arc<Authenticator>,
    /// Used when a request carries no token, in development mode only.
    pub dev_token: Option<String>,
    pub pool: DescriptorPool,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("gateway http")
    }
}

/// Where each report is served, and as what.
const REPORT_ROUTES: [(&str, Kind, Format); 9] = [
    ("/api/v1/reports/poverty", Kind::Poverty, Format::Json),
    ("/api/v1/reports/programmes", Kind::Programmes, Format::Json),
    ("/api/v1/reports/funding", Kind::Funding, Format::Json),
    ("/api/v1/poverty.csv", Kind::Poverty, Format::Csv),
    ("/api/v1/poverty.xlsx", Kind::Poverty, Format::Xlsx),
    ("/api/v1/programmes.csv", Kind::Programmes, Format::Csv),
    ("/api/v1/programmes.xlsx", Kind::Programmes, Format::Xlsx),
    ("/api/v1/funding.csv", Kind::Funding, Format::Csv),
    ("/api/v1/funding.xlsx", Kind::Funding, Format::Xlsx),
];

pub fn router(http: Http) -> Router {
    let mut router = Router::new()
        .route("/api/v1/dashboard", get(dashboard))
        .route("/reports", get(report_page))
        .route("/reports/lang-son", get(seed_page));
    for (path, kind, format) in REPORT_ROUTES {
        router = router.route(path, report_route(kind, format));
    }
    router
        .layer(axum::middleware::map_response(guarded))
        .with_state(http)
}

/// What every answer carries: its type is not to be guessed, only its own
/// styles and inline charts run, it is framed nowhere, and it holds
/// personal data that no cache may keep.
async fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// An error as JSON: the gRPC code's name, the message and the bad fields.
struct Problem(tonic::Status);

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Problem {
        Problem(e.into())
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        use tonic::Code;
        use tonic_types::StatusExt;
        let status = match self.0.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let violations: Vec<serde_json::Value> = self
            .0
            .get_error_details()
            .bad_request()
            .map(|b| {
                b.field_violations
                    .iter()
                    .map(|v| serde_json::json!({"field": v.field, "description": v.description}))
                    .collect()
            })
            .unwrap_or_default();
        let body = serde_json::json!({
            "code": format!("{:?}", self.0.code()),
            "message": self.0.message(),
            "field_violations": violations,
        });
        (status, axum::Json(body)).into_response()
    }
}

impl Http {
    /// The caller, and the metadata that carries its token on to the services.
    fn caller(&self, headers: &HeaderMap) -> Result<(Caller, MetadataMap), Problem> {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let Some(token) = sent.or_else(|| self.dev_token.clone()) else {
            return Err(
                ServiceError::Unauthenticated("send Authorization: Bearer <token>".into()).into(),
            );
        };
        let caller = self.auth.verify(&token)?;
        let mut md = MetadataMap::new();
        let value: MetadataValue<_> = format!("Bearer {token}")
            .parse()
            .map_err(|_| ServiceError::Unauthenticated("the token is not ASCII".into()))?;
        md.insert("authorization", value);
        for key in ["traceparent", "tracestate"] {
            if let Some(v) = headers.get(key).and_then(|v| v.to_str().ok())
                && let Ok(v) = v.parse()
            {
                md.insert(key, v);
            }
        }
        Ok((caller, md))
    }
}

/// `unit_code`, `from_year` and `to_year` from the query; every bad one named.
fn period(query: &HashMap<String, String>) -> Result<pb::GetDashboardRequest, Problem> {
    let mut v = sustain_domain::Violations::new();
    let mut year = |name: &str| match query.get(name).map(|y| y.trim().parse::<i32>()) {
        Some(Ok(y)) => y,
        Some(Err(_)) => {
            v.add(name, "must be a year");
            0
        }
        None => {
            v.add(name, "is required");
            0
        }
    };
    let (from_year, to_year) = (year("from_year"), year("to_year"));
    if !v.is_empty() {
        return Err(ServiceError::from(v).into());
    }
    Ok(pb::GetDashboardRequest {
        unit_code: query.get("unit_code").cloned().unwrap_or_default(),
        from_year,
        to_year,
    })
}

/// `breakdown` from the query: `none`, `children` (the default for tables)
/// or `communes`.
fn breakdown(
    query: &HashMap<String, String>,
    default: pb::Breakdown,
) -> Result<pb::Breakdown, Problem> {
    match query.get("breakdown").map(|b| b.trim()) {
        None | Some("") => Ok(default),
        Some("none") => Ok(pb::Breakdown::Unspecified),
        Some("children") => Ok(pb::Breakdown::Children),
        Some("communes") => Ok(pb::Breakdown::Communes),
        Some(_) => {
            let mut v = sustain_domain::Violations::new();
            v.add("breakdown", "must be none, children or communes");
            Err(ServiceError::from(v).into())
        }
    }
}

/// The caller, its forwarded metadata and the checked report request.
fn asked(
    http: &Http,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    default: pb::Breakdown,
    what: &str,
) -> Result<(MetadataMap, Asked), Problem> {
    let (caller, md) = http.caller(headers)?;
    caller.require("read reports", READ)?;
    let p = period(query)?;
    let b = breakdown(query, default)?;
    let asked = Asked::check(
        &caller,
        &p.unit_code,
        p.from_year,
        p.to_year,
        b as i32,
        what,
    )?;
    Ok((md, asked))
}

/// A message as its canonical protobuf JSON.
fn json<M: Message>(http: &Http, name: &str, message: &M) -> Result<Response, Problem> {
    let descriptor = http
        .pool
        .get_message_by_name(name)
        .ok_or_else(|| ServiceError::Internal(format!("no {name} descriptor")))?;
    let message = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(|e| ServiceError::Internal(format!("{name} JSON: {e}")))?;
    let json = serde_json::to_value(&message)
        .map_err(|e| ServiceError::Internal(format!("{name} JSON: {e}")))?;
    Ok(axum::Json(json).into_response())
}

async fn dashboard(
    State(http): State<Http>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let (caller, md) = http.caller(&headers)?;
    let request = period(&query)?;
    let dashboard = http.api.dashboard(&caller, &md, &request).await?;
    json(&http, "sustain.gateway.v1.Dashboard", &dashboard)
}

/// Which report a download is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Poverty,
    Programmes,
    Funding,
}

/// How a report is downloaded: the report as JSON, or its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Xlsx,
}

fn download(body: Vec<u8>, content_type: &'static str, name: String) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// A report for the caller, as JSON or as a table. JSON lists the units
/// below only when asked (`breakdown`); a table lists them by default.
async fn report_download(
    http: Http,
    headers: HeaderMap,
    query: HashMap<String, String>,
    kind: Kind,
    format: Format,
) -> Result<Response, Problem> {
    let default = match format {
        Format::Json => pb::Breakdown::Unspecified,
        Format::Csv | Format::Xlsx => pb::Breakdown::Children,
    };
    let what = match kind {
        Kind::Poverty => "poverty report",
        Kind::Programmes => "programme report",
        Kind::Funding => "funding report",
    };
    let (md, asked) = asked(&http, &headers, &query, default, what)?;
    let api = &http.api;
    let table = match (kind, format) {
        (Kind::Poverty, Format::Json) => {
            let r = api.poverty_report(&md, &asked).await.map_err(Problem)?;
            return json(&http, "sustain.gateway.v1.PovertyReport", &r);
        }
        (Kind::Programmes, Format::Json) => {
            let r = api.programme_report(&md, &asked).await.map_err(Problem)?;
            return json(&http, "sustain.gateway.v1.ProgrammeReport", &r);
        }
        (Kind::Funding, Format::Json) => {
            let r = api.funding_report(&md, &asked).await.map_err(Problem)?;
            return json(&http, "sustain.gateway.v1.FundingReport", &r);
        }
        (Kind::Poverty, _) => Table::poverty(
            &api.poverty_report(&md, &asked).await.map_err(Problem)?,
            asked.breakdown,
        ),
        (Kind::Programmes, _) => Table::programmes(
            &api.programme_report(&md, &asked).await.map_err(Problem)?,
            asked.breakdown,
        ),
        (Kind::Funding, _) => Table::funding(
            &api.funding_report(&md, &asked).await.map_err(Problem)?,
            asked.breakdown,
        ),
    };
    let excel = query.get("excel").is_some_and(|v| v == "1");
    Ok(if format == Format::Csv {
        download(
            table
                .csv(excel)
                .map_err(|e| ServiceError::Internal(format!("CSV: {e}")))?,
            "text/csv; charset=utf-8",
            format!("{}.csv", table.file),
        )
    } else {
        download(
            table
                .xlsx()
                .map_err(|e| ServiceError::Internal(format!("XLSX: {e}")))?,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            format!("{}.xlsx", table.file),
        )
    })
}

fn report_route(kind: Kind, format: Format) -> MethodRouter<Http> {
    get(
        move |State(http): State<Http>,
              headers: HeaderMap,
              Query(query): Query<HashMap<String, String>>| async move {
            report_download(http, headers, query, kind, format).await
        },
    )
}

/// The report page of a unit and period, as HTML with SVG charts.
async fn report_page(
    State(http): State<Http>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let (caller, md) = http.caller(&headers)?;
    // No unit or period asked: where to start, not an error.
    if query.is_empty() {
        caller.require("read reports", READ)?;
        return Ok(
            axum::response::Html(crate::page::render_start(&caller.scope, today())).into_response(),
        );
    }
    let request = period(&query)?;
    let dashboard = http.api.dashboard(&caller, &md, &request).await?;
    Ok(axum::response::Html(crate::page::render(&dashboard)).into_response())
}

fn today() -> chrono::NaiveDate {
    sustain_platform::api::today()
}

/// Lạng Sơn's reported 2021–2025 figures beside the system's.
/// `?scale=N`: the demo runs at 1/N of the province (`sustain up
/// --demo-scale N`), so the report's counts and amounts are divided by N.
async fn seed_page(
    State(http): State<Http>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let scale = match query.get("scale").map(|s| s.trim().parse::<u32>()) {
        None => 1,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return Err(Problem::from(ServiceError::invalid(
                "scale",
                "must be a whole number from 1 to 1000 (the demo's --demo-scale)",
            )));
        }
    };
    let (caller, md) = http.caller(&headers)?;
    let request = pb::GetDashboardRequest {
        unit_code: "20".into(),
        from_year: 2021,
        to_year: 2025,
    };
    let dashboard = http.api.dashboard(&caller, &md, &request).await?;
    Ok(axum::response::Html(crate::page::render_seed(&dashboard, scale)).into_response())
}
