//! The AdminUnitService adapter over the bundled unit catalog. Units are public
//! reference data: any authenticated caller may read them, whatever its scope.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::NaiveDate;
use sustain_domain::Violations;
use sustain_domain::admin::{self, AdminUnit, Level};
use sustain_platform::Caller;
use sustain_platform::error::ServiceError;
use sustain_proto::registry::v1 as pb;
use tonic::{Request, Response, Status};

use crate::convert::{page_size, parse_date, today};

#[derive(Debug, Clone, Default)]
pub struct AdminUnitApi;

fn unit_to_proto(u: &AdminUnit) -> pb::AdminUnit {
    pb::AdminUnit {
        code: u.code.clone(),
        name: u.name.clone(),
        level: match u.level {
            Level::Province => pb::AdminLevel::Province,
            Level::District => pb::AdminLevel::District,
            Level::Commune => pb::AdminLevel::Commune,
        } as i32,
        kind: u.kind.clone(),
        parent_code: u.parent_code.clone().unwrap_or_default(),
        valid_from: u.valid_from.map(|d| d.to_string()).unwrap_or_default(),
        valid_until: u.valid_until.map(|d| d.to_string()).unwrap_or_default(),
        successor_codes: u.successors.clone(),
        predecessor_codes: u.predecessors.clone(),
    }
}

fn date_or_today(raw: &str, field: &str, v: &mut Violations) -> Option<NaiveDate> {
    if raw.trim().is_empty() {
        Some(today())
    } else {
        parse_date(raw, field, v)
    }
}

fn known_code(code: &str, field: &str, v: &mut Violations) {
    if !admin::catalog().is_known(code) {
        v.add(field, "is not a known administrative unit code");
    }
}

/// A known unit code and a date (empty: today), or every violation of the two.
fn code_at(code: &str, date: &str, date_field: &str) -> Result<NaiveDate, ServiceError> {
    let mut v = Violations::new();
    known_code(code, "code", &mut v);
    let date = date_or_today(date, date_field, &mut v);
    date.filter(|_| v.is_empty()).ok_or_else(|| v.into())
}

#[tonic::async_trait]
impl pb::admin_unit_service_server::AdminUnitService for AdminUnitApi {
    async fn get_admin_unit(
        &self,
        request: Request<pb::GetAdminUnitRequest>,
    ) -> Result<Response<pb::GetAdminUnitResponse>, Status> {
        Caller::from_request(&request)?;
        let r = request.into_inner();
        let date = code_at(&r.code, &r.as_of, "as_of")?;
        let unit = admin::catalog()
            .get(&r.code, date)
            .ok_or_else(|| ServiceError::NotFound {
                resource: "administrative unit",
                id: format!("{} in force on {date}", r.code),
            })?;
        Ok(Response::new(pb::GetAdminUnitResponse {
            unit: Some(unit_to_proto(unit)),
        }))
    }

    async fn list_admin_units(
        &self,
        request: Request<pb::ListAdminUnitsRequest>,
    ) -> Result<Response<pb::ListAdminUnitsResponse>, Status> {
        Caller::from_request(&request)?;
        let r = request.into_inner();
        let mut v = Violations::new();
        if !r.parent_code.is_empty() {
            known_code(&r.parent_code, "parent_code", &mut v);
        }
        let date = date_or_today(&r.as_of, "as_of", &mut v);
        let size = page_size(r.page_size, &mut v);
        let offset = if r.page_token.is_empty() {
            Some(0)
        } else {
            let parsed = B64
                .decode(&r.page_token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<usize>().ok());
            if parsed.is_none() {
                v.add("page_token", "is not a token this service issued");
            }
            parsed
        };
        let (Some(date), Some(offset), Some(size), true) = (date, offset, size, v.is_empty())
        else {
            return Err(ServiceError::from(v).into());
        };
        let parent = (!r.parent_code.is_empty()).then_some(r.parent_code.as_str());
        let all = admin::catalog().children(parent, date);
        let units: Vec<_> = all
            .iter()
            .skip(offset)
            .take(size)
            .map(|u| unit_to_proto(u))
            .collect();
        let next = offset + units.len();
        Ok(Response::new(pb::ListAdminUnitsResponse {
            units,
            next_page_token: if next < all.len() {
                B64.encode(next.to_string())
            } else {
                String::new()
            },
        }))
    }

    async fn resolve_successor(
        &self,
        request: Request<pb::ResolveSuccessorRequest>,
    ) -> Result<Response<pb::ResolveSuccessorResponse>, Status> {
        Caller::from_request(&request)?;
        let r = request.into_inner();
        let date = code_at(&r.code, &r.at, "at")?;
        let catalog = admin::catalog();
        // A code once divided is answered as divided, even where one of its
        // parts kept the code.
        let successors = catalog
            .split_at(&r.code, date)
            .unwrap_or_else(|| catalog.successors_at(&r.code, date));
        Ok(Response::new(pb::ResolveSuccessorResponse {
            split: successors.len() > 1,
            successors: successors.into_iter().map(unit_to_proto).collect(),
        }))
    }
}
