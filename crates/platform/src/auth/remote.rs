//! Keys and claims of an external identity provider (OpenID Connect: Keycloak,
//! as OpenG2P and OpenSPP use). Its JWKS is fetched from its URL at start, again
//! every [`REFRESH_EVERY`], and at once when a token names a key not seen yet,
//! so a provider that rotates its key is followed without a restart. Its tokens
//! carry their role and units in claims of the provider's choosing: a
//! [`ClaimMap`] says which.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::Role;

/// How often the JWKS is fetched when nothing asks sooner.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// The least time between two fetches, however often unknown keys are named.
pub const MIN_GAP: Duration = Duration::from_millis(500);
/// Longest a fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document read.
const MAX_BODY: u64 = 1024 * 1024;

/// Where a provider's tokens say who the caller is and what it may reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimMap {
    /// The claim holding the role: a string or an array of strings, a dotted
    /// path into nested objects (Keycloak's realm roles: `realm_access.roles`).
    pub role_claim: String,
    /// A role counts when it is `role_prefix` + a Sustain role's name
    /// (`sustain-admin` with the prefix `sustain-`); others are ignored.
    #[serde(default)]
    pub role_prefix: String,
    /// The claim holding unit codes: an array, or a string of codes separated
    /// by spaces or commas (a user attribute mapped into the token).
    pub scope_claim: String,
    /// The claim naming the person; default `sub` (`preferred_username` reads
    /// better in logs and the audit trail).
    #[serde(default = "default_subject")]
    pub subject_claim: String,
}

fn default_subject() -> String {
    "sub".into()
}

/// What a provider's token says, read through its [`ClaimMap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub subject: String,
    pub role: Role,
    pub scope: Vec<String>,
}

fn at_path<'a>(claims: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(claims, |v, key| v.get(key))
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::String(s) => s
            .split([' ', ','])
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    }
}

impl ClaimMap {
    /// The caller a provider's token describes; why not, when it does not.
    pub fn read(&self, claims: &serde_json::Value) -> Result<Mapped, String> {
        let subject = at_path(claims, &self.subject_claim)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("the token names no one in {}", self.subject_claim))?
            .to_owned();
        let mut roles: Vec<Role> = at_path(claims, &self.role_claim)
            .map(strings)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r.strip_prefix(self.role_prefix.as_str()))
            .filter_map(|r| serde_json::from_value::<Role>(r.into()).ok())
            // A person is never a peer instance.
            .filter(|r| *r != Role::Sync)
            .collect();
        roles.sort_by_key(|r| r.as_str());
        roles.dedup();
        let role = match roles.as_slice() {
            [one] => *one,
            [] => {
                return Err(format!(
                    "the token carries no Sustain role in {} (names starting {:?})",
                    self.role_claim, self.role_prefix
                ));
            }
            _ => {
                return Err(format!(
                    "the token carries several Sustain roles in {}; give the account one",
                    self.role_claim
                ));
            }
        };
        let scope = at_path(claims, &self.scope_claim)
            .map(strings)
            .unwrap_or_default();
        if scope.is_empty() {
            return Err(format!("the token names no units in {}", self.scope_claim));
        }
        Ok(Mapped {
            subject,
            role,
            scope,
        })
    }
}

/// A provider's published keys, kept current by a background fetcher.
#[derive(Debug, Clone)]
pub struct RemoteKeys {
    url: String,
    keys: Arc<RwLock<Vec<Jwk>>>,
    /// Moves each time a fetch brings keys.
    generation: Arc<AtomicU64>,
    wake: Arc<Notify>,
}

impl RemoteKeys {
    pub fn new(url: &str) -> RemoteKeys {
        RemoteKeys {
            url: url.to_owned(),
            keys: Arc::new(RwLock::new(vec![])),
            generation: Arc::new(AtomicU64::new(0)),
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The keys fetched last.
    pub fn keys(&self) -> Vec<Jwk> {
        self.keys.read().map(|k| k.clone()).unwrap_or_default()
    }

    /// Counts the fetches that brought keys: a change says to read them again.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Asks for a fetch now (a token named a key not seen yet).
    pub fn ask(&self) {
        self.wake.notify_one();
    }

    /// Fetches now; the keys stay as they were when it fails.
    pub async fn fetch(&self, ca: Option<&[u8]>) -> Result<usize, String> {
        let url = self.url.clone();
        let ca = ca.map(<[u8]>::to_vec);
        let set = tokio::task::spawn_blocking(move || fetch_jwks(&url, ca.as_deref()))
            .await
            .map_err(|e| e.to_string())??;
        let n = set.keys.len();
        if let Ok(mut keys) = self.keys.write() {
            *keys = set.keys;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(n)
    }

    /// Fetches at once, then every [`REFRESH_EVERY`] or when asked, at most
    /// every [`MIN_GAP`]; runs until aborted.
    pub fn follow(&self, ca: Option<Vec<u8>>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                match this.fetch(ca.as_deref()).await {
                    Ok(n) => {
                        tracing::debug!(url = %this.url, keys = n, "identity provider keys fetched")
                    }
                    Err(e) => {
                        tracing::warn!(url = %this.url, error = %e, "identity provider keys could not be fetched; keeping the ones held")
                    }
                }
                tokio::time::sleep(MIN_GAP).await;
                tokio::select! {
                    () = tokio::time::sleep(REFRESH_EVERY) => {}
                    () = this.wake.notified() => {}
                }
            }
        })
    }
}

fn fetch_jwks(url: &str, ca: Option<&[u8]>) -> Result<JwkSet, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use ureq::tls::{RootCerts, TlsConfig};
    let mut tls = TlsConfig::builder();
    if let Some(pem) = ca {
        let certs: Vec<ureq::tls::Certificate<'static>> = CertificateDer::pem_slice_iter(pem)
            .filter_map(Result::ok)
            .map(|c| ureq::tls::Certificate::from_der(&c).to_owned())
            .collect();
        tls = tls.root_certs(RootCerts::new_with_certs(&certs));
    }
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .tls_config(tls.build())
        .build()
        .new_agent();
    let mut response = agent.get(url).call().map_err(|e| format!("{url}: {e}"))?;
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()
        .map_err(|e| format!("{url}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{url}: is not a JWKS: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keycloak() -> ClaimMap {
        ClaimMap {
            role_claim: "realm_access.roles".into(),
            role_prefix: "sustain-".into(),
            scope_claim: "sustain_units".into(),
            subject_claim: "preferred_username".into(),
        }
    }

    #[test]
    fn a_keycloak_token_maps_to_one_role_and_its_units() {
        let claims = serde_json::json!({
            "sub": "f3c1", "preferred_username": "ly.van.sau",
            "realm_access": {"roles": ["offline_access", "sustain-approver", "uma_authorization"]},
            "sustain_units": "181 06067",
        });
        let mapped = keycloak().read(&claims).expect("maps");
        assert_eq!(mapped.subject, "ly.van.sau");
        assert_eq!(mapped.role, Role::Approver);
        assert_eq!(mapped.scope, ["181", "06067"]);
    }

    #[test]
    fn no_role_two_roles_a_sync_role_or_no_units_are_refused() {
        let with = |roles: serde_json::Value, units: serde_json::Value| serde_json::json!({"preferred_username": "x", "realm_access": {"roles": roles}, "sustain_units": units});
        for (claims, says) in [
            (
                with(
                    serde_json::json!(["offline_access"]),
                    serde_json::json!(["181"]),
                ),
                "no Sustain role",
            ),
            (
                with(
                    serde_json::json!(["sustain-admin", "sustain-viewer"]),
                    serde_json::json!(["181"]),
                ),
                "several",
            ),
            (
                with(
                    serde_json::json!(["sustain-sync"]),
                    serde_json::json!(["181"]),
                ),
                "no Sustain role",
            ),
            (
                with(serde_json::json!(["sustain-viewer"]), serde_json::json!([])),
                "no units",
            ),
        ] {
            let err = keycloak().read(&claims).expect_err(says);
            assert!(err.contains(says), "{err}");
        }
    }
}
