//! Token keys. An instance signs with its own Ed25519 key, kept as a PKCS#8 PEM
//! file (what `openssl genpkey -algorithm ed25519` writes, or the `keys`
//! command), and publishes the public half as a JWKS that the other instances
//! trust. A trusted issuer is a name, its JWKS (a file, or inline keys) and the
//! most its tokens may grant. Keys are found by `kid`; a `kid` not seen yet
//! makes the set read its files again (at most every [`RELOAD_EVERY`]), so an
//! issuer that rotates its key is followed without a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use super::Scope;

/// The shortest time between two reads of the trusted JWKS files.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("{0}")]
    Invalid(String),
}

fn file_error(path: &Path, problem: impl std::fmt::Display) -> KeyError {
    KeyError::File {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

/// This instance's private signing key.
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.kid)
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate() -> SigningKey {
        SigningKey::from_dalek(ed25519_dalek::SigningKey::from_bytes(&rand::random()))
    }

    fn from_dalek(key: ed25519_dalek::SigningKey) -> SigningKey {
        let kid = public_jwk(&key.verifying_key(), String::new())
            .thumbprint(ThumbprintHash::SHA256)
            .unwrap_or_else(|_| hex::encode(key.verifying_key().as_bytes()));
        SigningKey { key, kid }
    }

    /// Reads a PKCS#8 PEM Ed25519 private key.
    pub fn from_pem(text: &str) -> Result<SigningKey, KeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(text)
            .map(SigningKey::from_dalek)
            .map_err(|e| KeyError::Invalid(format!("not a PKCS#8 PEM Ed25519 private key: {e}")))
    }

    /// Reads the key file at `path`.
    pub fn read(path: &Path) -> Result<SigningKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
        SigningKey::from_pem(&text).map_err(|e| file_error(path, e))
    }

    /// The PKCS#8 PEM text of the private key.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| KeyError::Invalid(format!("cannot encode the key: {e}")))
    }

    /// The key's id: the RFC 7638 thumbprint of its public JWK.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK, with its `kid`.
    pub fn public(&self) -> Jwk {
        public_jwk(&self.key.verifying_key(), self.kid.clone())
    }

    pub(crate) fn encoding_key(&self) -> Result<EncodingKey, KeyError> {
        let der = self
            .key
            .to_pkcs8_der()
            .map_err(|e| KeyError::Invalid(format!("cannot encode the key: {e}")))?;
        Ok(EncodingKey::from_ed_der(der.as_bytes()))
    }
}

fn public_jwk(key: &ed25519_dalek::VerifyingKey, kid: String) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            key_id: (!kid.is_empty()).then_some(kid),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: B64URL.encode(key.as_bytes()),
        }),
    }
}

/// The key at `path`, made there first (with its JWKS beside it) when there
/// is none: development mode's own key.
pub fn load_or_create(path: &Path) -> Result<SigningKey, KeyError> {
    if path.exists() {
        return SigningKey::read(path);
    }
    let key = SigningKey::generate();
    write_private(path, &key.to_pem()?).map_err(|e| file_error(path, e))?;
    let jwks = jwks_beside(path);
    write_public(&jwks, &jwks_json(&[key.public()])).map_err(|e| file_error(&jwks, e))?;
    Ok(key)
}

/// The JWKS published beside the key file `key` (`NAME.key` → `NAME.jwks.json`).
pub fn jwks_beside(key: &Path) -> PathBuf {
    key.with_extension("jwks.json")
}

/// A JWKS document holding `keys`, as JSON.
pub fn jwks_json(keys: &[Jwk]) -> String {
    serde_json::to_string_pretty(&JwkSet {
        keys: keys.to_vec(),
    })
    .unwrap_or_else(|_| "{\"keys\":[]}".into())
}

/// Writes `text` to `path` readable by its owner only, atomically: a reader
/// sees the old file or the whole new one, never a part, and never a moment
/// in which the key is readable by others.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    write_atomically(path, text, 0o600)
}

/// Writes a public file (a JWKS, a certificate) atomically.
pub fn write_public(path: &Path, text: &str) -> std::io::Result<()> {
    write_atomically(path, text, 0o644)
}

fn write_atomically(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::now_v7().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let written = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// An issuer whose tokens this instance accepts.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// The `iss` its tokens carry.
    pub name: String,
    /// The most its tokens may grant; `None`: whatever they say.
    pub cap: Option<Scope>,
    /// Where its public keys are: a JWKS file read again on an unknown `kid`.
    pub jwks: Option<PathBuf>,
    /// Keys known without a file (this instance's own).
    pub keys: Vec<Jwk>,
    /// An identity provider's keys, fetched from its JWKS URL.
    pub remote: Option<super::remote::RemoteKeys>,
    /// How its tokens name their role and units; `None`: Sustain's own claims.
    pub claims: Option<super::remote::ClaimMap>,
    /// The `aud` its tokens carry; `None`: the instance's audience.
    pub audience: Option<String>,
}

/// A key a token may be signed with, and whose it is.
#[derive(Clone)]
pub struct TrustedKey {
    pub issuer: String,
    pub cap: Option<Scope>,
    pub algorithm: Algorithm,
    pub key: DecodingKey,
    pub claims: Option<super::remote::ClaimMap>,
    pub audience: Option<String>,
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedKey({}, {:?})", self.issuer, self.algorithm)
    }
}

/// Every trusted issuer's keys, by `kid`.
#[derive(Clone)]
pub struct TrustSet {
    issuers: Arc<Vec<Issuer>>,
    keys: Arc<RwLock<HashMap<String, TrustedKey>>>,
    last_read: Arc<Mutex<Instant>>,
    /// The providers' fetch generations the held keys were read at.
    fetched: Arc<Mutex<Vec<u64>>>,
}

impl std::fmt::Debug for TrustSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.issuers.iter().map(|i| i.name.as_str()).collect();
        write!(f, "TrustSet({})", names.join(", "))
    }
}

/// The algorithm a JWK is used with: its own `alg`, else its key type's usual
/// one. Only asymmetric keys are trusted from a JWKS.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(KeyAlgorithm::EdDSA), _) => Algorithm::EdDSA,
        (Some(KeyAlgorithm::RS256), _) => Algorithm::RS256,
        (Some(KeyAlgorithm::ES256), _) => Algorithm::ES256,
        (Some(_), _) => return None,
        (None, AlgorithmParameters::OctetKeyPair(_)) => Algorithm::EdDSA,
        (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
        (None, AlgorithmParameters::EllipticCurve(p)) if p.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        (None, _) => return None,
    };
    // A key published for encryption is not one to verify signatures with.
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    Some(alg)
}

impl TrustSet {
    /// Reads every issuer's keys; an unreadable JWKS file is an error here, at
    /// start-up, and only a warning when it is read again later.
    pub fn new(issuers: Vec<Issuer>) -> Result<TrustSet, KeyError> {
        let keys = read_all(&issuers)?;
        let fetched = generations(&issuers);
        Ok(TrustSet {
            issuers: Arc::new(issuers),
            keys: Arc::new(RwLock::new(keys)),
            last_read: Arc::new(Mutex::new(Instant::now())),
            fetched: Arc::new(Mutex::new(fetched)),
        })
    }

    /// Trusting no one: an instance that verifies only its HS256 secret.
    pub fn empty() -> TrustSet {
        TrustSet {
            issuers: Arc::new(vec![]),
            keys: Arc::new(RwLock::new(HashMap::new())),
            last_read: Arc::new(Mutex::new(Instant::now())),
            fetched: Arc::new(Mutex::new(vec![])),
        }
    }

    /// Starts following every identity provider's JWKS URL; `ca`: the PEM
    /// CA certificates its TLS is checked against (none: the public roots).
    pub fn follow_providers(&self, ca: Option<Vec<u8>>) -> Vec<tokio::task::JoinHandle<()>> {
        self.issuers
            .iter()
            .filter_map(|i| i.remote.as_ref())
            .map(|r| r.follow(ca.clone()))
            .collect()
    }

    /// The key `kid` names; reads the files again first when it is unknown
    /// and they were not read within [`RELOAD_EVERY`].
    pub fn find(&self, kid: &str) -> Option<TrustedKey> {
        if let Some(found) = self.keys.read().ok().and_then(|k| k.get(kid).cloned()) {
            return Some(found);
        }
        // A provider may have rotated: ask each for its keys again.
        for remote in self.issuers.iter().filter_map(|i| i.remote.as_ref()) {
            remote.ask();
        }
        let fetched_since = self.fetched.lock().is_ok_and(|mut seen| {
            let now = generations(&self.issuers);
            let changed = *seen != now;
            *seen = now;
            changed
        });
        let due = fetched_since
            || self.last_read.lock().ok().is_some_and(|mut last| {
                if last.elapsed() >= RELOAD_EVERY {
                    *last = Instant::now();
                    true
                } else {
                    false
                }
            });
        if !due {
            return None;
        }
        match read_all(&self.issuers) {
            Ok(fresh) => {
                let found = fresh.get(kid).cloned();
                if let Ok(mut keys) = self.keys.write() {
                    *keys = fresh;
                }
                found
            }
            Err(e) => {
                tracing::warn!(error = %e, "trusted keys could not be read again; keeping the ones held");
                None
            }
        }
    }

    /// The issuers trusted, by name.
    pub fn issuers(&self) -> impl Iterator<Item = &Issuer> {
        self.issuers.iter()
    }
}

fn generations(issuers: &[Issuer]) -> Vec<u64> {
    issuers
        .iter()
        .filter_map(|i| i.remote.as_ref().map(super::remote::RemoteKeys::generation))
        .collect()
}

fn read_all(issuers: &[Issuer]) -> Result<HashMap<String, TrustedKey>, KeyError> {
    let mut keys = HashMap::new();
    for issuer in issuers {
        let mut jwks = issuer.keys.clone();
        if let Some(remote) = &issuer.remote {
            jwks.extend(remote.keys());
        }
        if let Some(path) = &issuer.jwks {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                // Not published yet (a peer that has not started): its tokens
                // are refused until it is, and the file is read again then.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(issuer = %issuer.name, path = %path.display(), "the issuer's JWKS file is not there yet; its tokens are refused until it is");
                    "{\"keys\":[]}".to_owned()
                }
                Err(e) => return Err(file_error(path, e)),
            };
            let set: JwkSet = serde_json::from_str(&text)
                .map_err(|e| file_error(path, format!("is not a JWKS: {e}")))?;
            jwks.extend(set.keys);
        }
        for jwk in jwks {
            let (Some(kid), Some(algorithm)) = (jwk.common.key_id.clone(), algorithm_of(&jwk))
            else {
                tracing::warn!(issuer = %issuer.name, "a key without kid or with an algorithm not trusted is left out");
                continue;
            };
            let key = DecodingKey::from_jwk(&jwk).map_err(|e| {
                KeyError::Invalid(format!(
                    "issuer {}: key {kid} does not read: {e}",
                    issuer.name
                ))
            })?;
            if let Some(other) = keys.get(&kid).map(|k: &TrustedKey| k.issuer.clone())
                && other != issuer.name
            {
                return Err(KeyError::Invalid(format!(
                    "key {kid} is listed for both {other} and {}",
                    issuer.name
                )));
            }
            keys.insert(
                kid,
                TrustedKey {
                    issuer: issuer.name.clone(),
                    cap: issuer.cap.clone(),
                    algorithm,
                    key,
                    claims: issuer.claims.clone(),
                    audience: issuer.audience.clone(),
                },
            );
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_through_pem_and_keeps_its_kid() {
        let key = SigningKey::generate();
        let again = SigningKey::from_pem(&key.to_pem().expect("pem")).expect("reads");
        assert_eq!(key.kid(), again.kid());
        assert_eq!(key.kid().len(), 43, "a base64url SHA-256 thumbprint");
        assert!(
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
    }

    #[test]
    fn private_files_are_written_whole_and_for_the_owner_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/instance.key");
        write_private(&path, "first").expect("write");
        write_private(&path, "second").expect("overwrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "second");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let left: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_rotated_jwks_is_read_again_for_an_unknown_kid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("province.jwks");
        let first = SigningKey::generate();
        write_public(&path, &jwks_json(&[first.public()])).expect("write");
        let trust = TrustSet::new(vec![Issuer {
            name: "province".into(),
            cap: Some(Scope::new(vec!["20".into()])),
            jwks: Some(path.clone()),
            keys: vec![],
            remote: None,
            claims: None,
            audience: None,
        }])
        .expect("reads");
        assert_eq!(trust.find(first.kid()).expect("known").issuer, "province");
        let second = SigningKey::generate();
        write_public(&path, &jwks_json(&[first.public(), second.public()])).expect("rotate");
        std::thread::sleep(RELOAD_EVERY);
        assert!(
            trust.find(second.kid()).is_some(),
            "picked up without a restart"
        );
        assert!(trust.find("nobody").is_none());
    }
}
