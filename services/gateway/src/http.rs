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
use axum::routing::get;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use sustain_domain::admin;
use sustain_platform::Caller;
use sustain_platform::auth::Authenticator;
use sustain_platform::error::ServiceError;
use sustain_proto::gateway::v1 as pb;
use tonic::metadata::{MetadataMap, MetadataValue};

use crate::READ;
use crate::dashboard::{ReportApi, checked_request};

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

pub fn router(http: Http) -> Router {
    Router::new()
        .route("/api/v1/dashboard", get(dashboard))
        .route("/api/v1/poverty.csv", get(poverty_csv))
        .route("/api/v1/poverty.xlsx", get(poverty_xlsx))
        .route("/reports", get(report_page))
        .route("/reports/lang-son", get(seed_page))
        .with_state(http)
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

async fn dashboard(
    State(http): State<Http>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let (caller, md) = http.caller(&headers)?;
    let request = period(&query)?;
    let dashboard = http.api.dashboard(&caller, &md, &request).await?;
    let descriptor = http
        .pool
        .get_message_by_name("sustain.gateway.v1.Dashboard")
        .ok_or_else(|| ServiceError::Internal("no Dashboard descriptor".into()))?;
    let message = DynamicMessage::decode(descriptor, dashboard.encode_to_vec().as_slice())
        .map_err(|e| ServiceError::Internal(format!("dashboard JSON: {e}")))?;
    let json = serde_json::to_value(&message)
        .map_err(|e| ServiceError::Internal(format!("dashboard JSON: {e}")))?;
    Ok(axum::Json(json).into_response())
}

/// One row of the poverty table: a unit and, per year, poor households,
/// households reviewed and the rate as the registry wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    pub unit_code: String,
    pub unit_name: String,
    pub years: Vec<(i64, i64, String)>,
}

/// The unit's children (as they stood at the end of the period) and the
/// unit itself last, as the totals row.
async fn poverty_table(
    http: &Http,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(pb::GetDashboardRequest, Vec<TableRow>), Problem> {
    let (caller, md) = http.caller(headers)?;
    caller.require("read reports", READ)?;
    let request = period(query)?;
    let (unit, from, to) = checked_request(&caller, &request)?;
    let today = sustain_platform::api::today();
    let end = chrono::NaiveDate::from_ymd_opt(to, 12, 31)
        .filter(|d| *d < today)
        .unwrap_or(today);
    let mut units: Vec<String> = admin::catalog()
        .children(Some(&unit), end)
        .into_iter()
        .map(|u| u.code.clone())
        .collect();
    units.sort();
    units.push(unit.clone());
    let summaries = http
        .api
        .summaries(&md, &units, from, to)
        .await
        .map_err(Problem)?;
    let rows = units
        .into_iter()
        .zip(summaries)
        .map(|(code, years)| TableRow {
            unit_name: years
                .first()
                .map(|s| s.unit_name.clone())
                .unwrap_or_default(),
            unit_code: code,
            years: years
                .iter()
                .map(|s| {
                    let poor = s.poor.clone().unwrap_or_default();
                    (poor.count, s.households_reviewed, poor.percent)
                })
                .collect(),
        })
        .collect();
    Ok((
        pb::GetDashboardRequest {
            unit_code: unit,
            from_year: from,
            to_year: to,
        },
        rows,
    ))
}

fn header_row(from: i32, to: i32) -> Vec<String> {
    let mut h = vec!["Mã đơn vị".to_owned(), "Đơn vị".to_owned()];
    for y in from..=to {
        h.push(format!("Hộ nghèo {y}"));
        h.push(format!("Hộ được rà soát {y}"));
        h.push(format!("Tỷ lệ hộ nghèo {y} (%)"));
    }
    h
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

async fn poverty_csv(
    State(http): State<Http>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let (p, rows) = poverty_table(&http, &headers, &query).await?;
    let mut out = csv::Writer::from_writer(vec![]);
    let failed = |e: csv::Error| ServiceError::Internal(format!("CSV: {e}"));
    out.write_record(header_row(p.from_year, p.to_year))
        .map_err(failed)?;
    for r in &rows {
        let mut record = vec![r.unit_code.clone(), r.unit_name.clone()];
        for (poor, reviewed, percent) in &r.years {
            record.extend([poor.to_string(), reviewed.to_string(), percent.clone()]);
        }
        out.write_record(record).map_err(failed)?;
    }
    let body = out
        .into_inner()
        .map_err(|e| ServiceError::Internal(format!("CSV: {e}")))?;
    Ok(download(
        body,
        "text/csv; charset=utf-8",
        format!("ho-ngheo-{}-{}-{}.csv", p.unit_code, p.from_year, p.to_year),
    ))
}

/// The table as an XLSX workbook: counts and rates as numbers, the totals
/// row in bold.
pub fn poverty_workbook(
    from: i32,
    to: i32,
    rows: &[TableRow],
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("Hộ nghèo")?;
    let bold = Format::new().set_bold();
    let percent = Format::new().set_num_format("0.00");
    let bold_percent = Format::new().set_bold().set_num_format("0.00");
    for (c, h) in header_row(from, to).iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, h, &bold)?;
    }
    for (i, r) in rows.iter().enumerate() {
        let row = i as u32 + 1;
        let total = i + 1 == rows.len();
        let (text, number) = if total {
            (&bold, &bold_percent)
        } else {
            (&Format::new(), &percent)
        };
        sheet.write_string_with_format(row, 0, &r.unit_code, text)?;
        sheet.write_string_with_format(row, 1, &r.unit_name, text)?;
        for (k, (poor, reviewed, rate)) in r.years.iter().enumerate() {
            let col = 2 + 3 * k as u16;
            sheet.write_number_with_format(row, col, *poor as f64, text)?;
            sheet.write_number_with_format(row, col + 1, *reviewed as f64, text)?;
            match rate.parse::<f64>() {
                Ok(v) => sheet.write_number_with_format(row, col + 2, v, number)?,
                Err(_) => sheet.write_string_with_format(row, col + 2, rate, text)?,
            };
        }
    }
    sheet.set_column_width(1, 28)?;
    book.save_to_buffer()
}

async fn poverty_xlsx(
    State(http): State<Http>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let (p, rows) = poverty_table(&http, &headers, &query).await?;
    let body = poverty_workbook(p.from_year, p.to_year, &rows)
        .map_err(|e| ServiceError::Internal(format!("XLSX: {e}")))?;
    Ok(download(
        body,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        format!(
            "ho-ngheo-{}-{}-{}.xlsx",
            p.unit_code, p.from_year, p.to_year
        ),
    ))
}

/// The report page of a unit and period, as HTML with SVG charts.
async fn report_page(
    State(http): State<Http>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let (caller, md) = http.caller(&headers)?;
    let request = period(&query)?;
    let dashboard = http.api.dashboard(&caller, &md, &request).await?;
    Ok(axum::response::Html(crate::page::render(&dashboard)).into_response())
}

/// Lạng Sơn's reported 2021–2025 figures beside the system's.
async fn seed_page(State(http): State<Http>, headers: HeaderMap) -> Result<Response, Problem> {
    let (caller, md) = http.caller(&headers)?;
    let request = pb::GetDashboardRequest {
        unit_code: "20".into(),
        from_year: 2021,
        to_year: 2025,
    };
    let dashboard = http.api.dashboard(&caller, &md, &request).await?;
    Ok(axum::response::Html(crate::page::render_seed(&dashboard)).into_response())
}
