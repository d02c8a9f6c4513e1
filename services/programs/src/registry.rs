//! The registry as this service sees it: one call that checks a batch of
//! households. The caller's own bearer token is passed on, so the registry
//! applies the caller's role and scope itself; a registry that does not answer
//! within the configured deadline is UNAVAILABLE, never a partial answer.

use std::time::Duration;

use sustain_platform::config::UpstreamConfig;
use sustain_platform::error::ServiceError;
use sustain_proto::registry::v1 as pb;
use sustain_proto::registry::v1::review_service_client::ReviewServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

/// Households per registry call (the registry's own limit).
pub const STANDINGS_PER_CALL: usize = 1000;

#[derive(Debug, Clone)]
pub struct Registry {
    client: ReviewServiceClient<Channel>,
}

/// The caller's `authorization` metadata, to pass on.
pub type Credentials = MetadataValue<Ascii>;

impl Registry {
    /// A lazily connecting client: the service starts whether or not the
    /// registry is up, and each call finds out.
    pub fn new(config: &UpstreamConfig) -> anyhow::Result<Registry> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let endpoint = Endpoint::from_shared(config.url.clone())?
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true);
        Ok(Registry {
            client: ReviewServiceClient::new(endpoint.connect_lazy()),
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
