//! The registry as this service sees it: one call that checks a batch of
//! households. The caller's own bearer token is passed on, so the registry
//! applies the caller's role and scope itself; a registry that does not answer
//! within the configured deadline is UNAVAILABLE, never a partial answer.

use std::time::Duration;

use sustain_platform::config::UpstreamConfig;
use sustain_platform::error::ServiceError;
use sustain_proto::registry::v1 as pb;
use sustain_proto::registry::v1::household_service_client::HouseholdServiceClient;
use sustain_proto::registry::v1::review_service_client::ReviewServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request};

/// Households per registry call (the registry's own limit).
pub const STANDINGS_PER_CALL: usize = 1000;

#[derive(Debug, Clone)]
pub struct Registry {
    client: ReviewServiceClient<Channel>,
    households: HouseholdServiceClient<Channel>,
    /// Member counts by (role, unit, born from, born to), reused for
    /// `count_cache_secs`: the denominator of a summary need not be read anew
    /// for every dashboard refresh, and counting a province's children costs
    /// the registry a scan of them.
    counts: Option<moka::sync::Cache<(String, String, chrono::NaiveDate, chrono::NaiveDate), i64>>,
}

/// The caller's `authorization` metadata, to pass on.
pub type Credentials = MetadataValue<Ascii>;

impl Registry {
    /// A lazily connecting client: the service starts whether or not the
    /// registry is up, and each call finds out.
    pub fn new(
        config: &UpstreamConfig,
        tls: Option<&sustain_platform::tls::Tls>,
    ) -> anyhow::Result<Registry> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let endpoint = sustain_platform::tls::endpoint(&config.url, tls)?
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        let counts = (config.count_cache_secs > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(config.count_cache_secs))
                .build()
        });
        Ok(Registry {
            client: ReviewServiceClient::new(channel.clone()),
            households: HouseholdServiceClient::new(channel),
            counts,
        })
    }

    /// Standings of `ids` in `year`, in order.
    pub async fn standings(
        &self,
        credentials: &Credentials,
        year: i32,
        ids: &[String],
        include_members: bool,
    ) -> Result<Vec<pb::HouseholdStanding>, ServiceError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(STANDINGS_PER_CALL) {
            let mut request = Request::new(pb::BatchGetStandingsRequest {
                year,
                household_ids: chunk.to_vec(),
                include_members,
            });
            request
                .metadata_mut()
                .insert("authorization", credentials.clone());
            let answer = self
                .client
                .clone()
                .batch_get_standings(request)
                .await
                .map_err(registry_error)?
                .into_inner();
            if answer.standings.len() != chunk.len() {
                return Err(ServiceError::Internal(format!(
                    "registry answered {} standings for {} households",
                    answer.standings.len(),
                    chunk.len()
                )));
            }
            out.extend(answer.standings);
        }
        Ok(out)
    }
}

impl Registry {
    /// Members of the households under `unit` born within the dates given.
    /// The caller has been checked to hold all of `unit`; the count is kept per
    /// role, so a role the registry refuses is never answered from the cache.
    pub async fn count_members(
        &self,
        credentials: &Credentials,
        role: sustain_platform::Role,
        unit: &str,
        born_from: chrono::NaiveDate,
        born_to: chrono::NaiveDate,
    ) -> Result<i64, ServiceError> {
        let key = (
            role.as_str().to_owned(),
            unit.to_owned(),
            born_from,
            born_to,
        );
        if let Some(n) = self.counts.as_ref().and_then(|c| c.get(&key)) {
            return Ok(n);
        }
        let n = self
            .count_members_now(credentials, unit, born_from, born_to)
            .await?;
        if let Some(c) = &self.counts {
            c.insert(key, n);
        }
        Ok(n)
    }

    async fn count_members_now(
        &self,
        credentials: &Credentials,
        unit: &str,
        born_from: chrono::NaiveDate,
        born_to: chrono::NaiveDate,
    ) -> Result<i64, ServiceError> {
        let mut request = Request::new(pb::CountMembersRequest {
            filter: Some(pb::HouseholdFilter {
                unit_code: unit.to_owned(),
                ..Default::default()
            }),
            born_from: born_from.to_string(),
            born_to: born_to.to_string(),
        });
        request
            .metadata_mut()
            .insert("authorization", credentials.clone());
        Ok(self
            .households
            .clone()
            .count_members(request)
            .await
            .map_err(registry_error)?
            .into_inner()
            .count)
    }
}

/// The registry's refusal as this service's own: its view of the caller's
/// credentials and scope stands; anything about reaching it is UNAVAILABLE.
fn registry_error(status: tonic::Status) -> ServiceError {
    match status.code() {
        Code::PermissionDenied => ServiceError::PermissionDenied {
            reason: "REGISTRY_DENIED",
            message: format!("the registry refused: {}", status.message()),
        },
        Code::Unauthenticated => {
            ServiceError::Unauthenticated(format!("the registry refused: {}", status.message()))
        }
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::Unknown
        | Code::ResourceExhausted
        | Code::Aborted => ServiceError::Unavailable(format!(
            "registry: {} ({:?})",
            status.message(),
            status.code()
        )),
        _ => ServiceError::Internal(format!(
            "registry: {} ({:?})",
            status.message(),
            status.code()
        )),
    }
}

/// A household a request names: its id, the year its standing is read for, and
/// the request field that named it (for errors).
#[derive(Debug, Clone)]
pub struct Named {
    pub household_id: String,
    pub year: i32,
    pub field: String,
}

impl Named {
    /// The households of a batch, each with its year; `field` names the
    /// request field of the `i`th.
    pub fn each(
        households: impl IntoIterator<Item = (String, i32)>,
        field: impl Fn(usize) -> String,
    ) -> Vec<Named> {
        households
            .into_iter()
            .enumerate()
            .map(|(i, (household_id, year))| Named {
                household_id,
                year,
                field: field(i),
            })
            .collect()
    }
}

impl Registry {
    /// The standing of the one household `named`, checked as
    /// [`Registry::checked`] checks a batch.
    pub async fn one(
        &self,
        credentials: &Credentials,
        named: Named,
        include_members: bool,
    ) -> Result<pb::HouseholdStanding, ServiceError> {
        let id = named.household_id.clone();
        self.checked(credentials, &[named], include_members, |_| None)
            .await?
            .remove(&id)
            .ok_or_else(|| ServiceError::Internal("no standing for a checked household".into()))
    }

    /// Standings of every household named, by id; PERMISSION_DENIED naming the
    /// fields of those outside the caller's scope, INVALID_ARGUMENT naming
    /// those the registry does not have or has archived, and those a found
    /// household fails `also` for (its reason).
    pub async fn checked(
        &self,
        credentials: &Credentials,
        named: &[Named],
        include_members: bool,
        also: impl Fn(&pb::HouseholdStanding) -> Option<String>,
    ) -> Result<std::collections::HashMap<String, pb::HouseholdStanding>, ServiceError> {
        let mut by_year: std::collections::BTreeMap<i32, Vec<String>> = Default::default();
        for n in named {
            let ids = by_year.entry(n.year).or_default();
            if !ids.contains(&n.household_id) {
                ids.push(n.household_id.clone());
            }
        }
        let mut found = std::collections::HashMap::new();
        for (year, ids) in &by_year {
            for s in self
                .standings(credentials, *year, ids, include_members)
                .await?
            {
                found.insert(s.household_id.clone(), s);
            }
        }
        let mut outside = vec![];
        let mut v = sustain_domain::Violations::new();
        for n in named {
            let standing = found.get(&n.household_id);
            match standing.and_then(|s| pb::StandingLookup::try_from(s.lookup).ok()) {
                Some(pb::StandingLookup::Found) => {
                    if let Some(reason) = standing.and_then(&also) {
                        v.add(&n.field, reason);
                    }
                }
                Some(pb::StandingLookup::OutOfScope) => outside.push(n.field.clone()),
                Some(pb::StandingLookup::Archived) => {
                    v.add(&n.field, "the household is archived in the registry");
                }
                _ => v.add(&n.field, "no such household in the registry"),
            }
        }
        if !outside.is_empty() {
            return Err(ServiceError::PermissionDenied {
                reason: "OUT_OF_SCOPE",
                message: format!(
                    "{} lie outside the caller's administrative scope",
                    outside.join(", ")
                ),
            });
        }
        crate::convert::check(v)?;
        Ok(found)
    }
}

/// The class code an enrolment keeps for a registry standing.
pub fn standing_code(s: i32) -> &'static str {
    use sustain_domain::poverty::Standing;
    match pb::Standing::try_from(s) {
        Ok(pb::Standing::Poor) => Standing::Poor.code(),
        Ok(pb::Standing::NearPoor) => Standing::NearPoor.code(),
        Ok(pb::Standing::RecentlyEscaped) => Standing::RecentlyEscaped.code(),
        _ => Standing::Other.code(),
    }
}

/// Where a registry standing places its household.
pub fn placement_of(s: &pb::HouseholdStanding) -> sustain_platform::placement::Placement {
    sustain_platform::placement::Placement {
        unit_code: s.commune_code.clone(),
        province_code: s.province_code.clone(),
        district_code: (!s.district_code.is_empty()).then(|| s.district_code.clone()),
        commune_code: Some(s.commune_code.clone()),
        current_commune_code: Some(s.current_commune_code.clone()),
    }
}

/// The caller's `authorization` metadata, to pass on to the registry.
pub fn credentials_of<T>(request: &tonic::Request<T>) -> Result<Credentials, ServiceError> {
    request
        .metadata()
        .get("authorization")
        .cloned()
        .ok_or_else(|| ServiceError::Unauthenticated("no credentials were presented".into()))
}
