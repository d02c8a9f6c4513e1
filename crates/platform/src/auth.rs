//! Who is calling and what they may touch. Callers present a bearer JWT carrying a
//! role and a scope of administrative unit codes; the interceptor turns a valid
//! token into a [`Caller`] in the request's extensions, and every handler asks the
//! caller for the role and the unit it needs before it reads or writes.
//!
//! Each instance signs its own tokens with its own Ed25519 key ([`keys`]) and
//! trusts a set of issuers, each with the public keys it signs with and the most
//! it may grant: a token is worth at most its issuer's units, whatever its
//! `scope` says, so one district's key gives nothing beyond that district. A
//! peer instance's sync calls must also come over mutual TLS with a certificate
//! that names the instance the token speaks for. A shared HS256 secret remains
//! for a single instance in development.

pub mod keys;
pub mod remote;
pub mod revocation;

pub use chrono::Duration;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sustain_domain::admin::{self, Location};
use tonic::{Request, Status};

use crate::error::ServiceError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads records and figures in scope.
    Viewer,
    /// Enters and corrects households and reviews.
    Enumerator,
    /// Approves and certifies reviews; archives records.
    Approver,
    /// Works the funding ledger.
    Finance,
    /// Everything within scope.
    Admin,
    /// A peer instance replicating data.
    Sync,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Enumerator => "enumerator",
            Role::Approver => "approver",
            Role::Finance => "finance",
            Role::Admin => "admin",
            Role::Sync => "sync",
        }
    }
}

/// The units a caller may see: a list of unit codes, each covering everything below
/// it, or the whole country (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    codes: Vec<String>,
}

/// The scope code that means the whole country.
pub const NATIONWIDE: &str = "*";

impl Scope {
    pub fn new(codes: Vec<String>) -> Scope {
        Scope { codes }
    }

    pub fn nationwide() -> Scope {
        Scope {
            codes: vec![NATIONWIDE.into()],
        }
    }

    pub fn is_nationwide(&self) -> bool {
        self.codes.iter().any(|c| c == NATIONWIDE)
    }

    pub fn codes(&self) -> &[String] {
        &self.codes
    }

    /// True when a record placed at `location` lies inside the scope.
    pub fn covers(&self, location: &Location) -> bool {
        self.is_nationwide() || self.codes.iter().any(|c| location.is_within(c))
    }

    /// True when everything under `code` is certainly inside the scope, so a filter
    /// on `code` needs no scope condition beside it. Exact, never loose: the unit is
    /// a scope code itself, or every version of it lies under one by its parents.
    pub fn contains_unit(&self, code: &str) -> bool {
        self.is_nationwide()
            || self
                .codes
                .iter()
                .any(|c| c == code || admin::catalog().lies_within(code, c))
    }

    /// What of `self` lies inside `cap`: each code of the scope inside one of
    /// the cap's, or the cap's code where the scope's holds it (a nationwide
    /// scope under a district's cap is that district). Empty: nothing.
    pub fn capped_by(&self, cap: &Scope) -> Scope {
        let mut codes: Vec<String> = vec![];
        let mut keep = |code: &String| {
            if !codes.contains(code) {
                codes.push(code.clone());
            }
        };
        for mine in &self.codes {
            for bound in &cap.codes {
                if bound == NATIONWIDE {
                    keep(mine);
                } else if mine == NATIONWIDE || Scope::new(vec![mine.clone()]).contains_unit(bound)
                {
                    keep(bound);
                } else if cap_contains(bound, mine) {
                    keep(mine);
                }
            }
        }
        Scope { codes }
    }

    /// True when a unit and the scope share any ground: the unit is inside the
    /// scope, or the scope is inside the unit (a district caller asking about the
    /// province sees its own part of it).
    pub fn overlaps_unit(&self, code: &str) -> bool {
        self.is_nationwide()
            || self
                .codes
                .iter()
                .any(|c| admin::catalog().overlaps(c, code))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub scope: Vec<String>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
    /// The token's own id, for revoking it before it expires.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
}

/// An authenticated caller, put in the request extensions by [`Authenticator`].
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who vouches for the caller: the `iss` of its token (this instance for
    /// its own work).
    pub issuer: String,
    pub subject: String,
    pub role: Role,
    pub scope: Scope,
}

impl Caller {
    /// Pulls the caller the interceptor attached; its absence is a wiring bug, reported
    /// as UNAUTHENTICATED rather than a panic.
    pub fn from_request<T>(request: &Request<T>) -> Result<Caller, ServiceError> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ServiceError::Unauthenticated("no credentials were presented".into()))
    }

    /// PERMISSION_DENIED unless the caller holds one of `roles`.
    pub fn require(&self, action: &str, roles: &[Role]) -> Result<(), ServiceError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ServiceError::PermissionDenied {
                reason: "ROLE_NOT_ALLOWED",
                message: format!("role {} may not {action}", self.role.as_str()),
            })
        }
    }

    /// PERMISSION_DENIED unless the record's location is in scope.
    pub fn require_location(&self, location: &Location) -> Result<(), ServiceError> {
        if self.scope.covers(location) {
            Ok(())
        } else {
            Err(out_of_scope(&location.commune_code))
        }
    }

    /// PERMISSION_DENIED unless the unit shares ground with the caller's scope.
    pub fn require_unit(&self, code: &str) -> Result<(), ServiceError> {
        if self.scope.overlaps_unit(code) {
            Ok(())
        } else {
            Err(out_of_scope(code))
        }
    }
}

/// True when everything under `code` lies under `bound`.
fn cap_contains(bound: &str, code: &str) -> bool {
    bound == code || admin::catalog().lies_within(code, bound)
}

fn out_of_scope(code: &str) -> ServiceError {
    ServiceError::PermissionDenied {
        reason: "OUT_OF_SCOPE",
        message: format!("unit {code} is outside the caller's administrative scope"),
    }
}

/// The key this instance signs its tokens with.
#[derive(Debug, Clone)]
pub enum TokenKey {
    /// Its own Ed25519 key: what every instance of a province uses.
    Own(Box<keys::SigningKey>),
    /// An HS256 secret: one instance in development only, since whoever
    /// holds it can mint any token.
    Shared(Vec<u8>),
}

/// How tokens are checked: the audience, the clock skew allowed, the longest
/// lifetime a token may claim.
#[derive(Debug, Clone)]
pub struct TokenRules {
    pub audience: String,
    pub leeway_secs: u64,
    pub max_ttl_secs: i64,
}

/// Verifies bearer tokens; cheap to clone into an interceptor.
#[derive(Clone)]
pub struct Authenticator {
    trust: keys::TrustSet,
    /// The HS256 secret and the issuer it speaks for, when one is configured.
    shared: Option<keys::TrustedKey>,
    rules: TokenRules,
    /// Tokens revoked before they expire, checked on every call.
    deny: revocation::DenyList,
    /// Tokens already verified, with the caller they gave: a signature check
    /// on every call of a busy client costs more than the call itself.
    verified: moka::sync::Cache<String, Verified>,
    /// Background work that lives as long as the authenticator (fetching an
    /// identity provider's keys).
    _tasks: std::sync::Arc<Tasks>,
}

/// Tasks aborted when the last holder lets go.
#[derive(Debug, Default)]
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// A verified token: its caller, and what a revocation is judged by.
#[derive(Debug, Clone)]
struct Verified {
    caller: Caller,
    jti: String,
    issuer: String,
    iat: i64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Authenticator({:?})", self.trust)
    }
}

/// UNAUTHENTICATED with `message`.
fn refused(message: impl Into<String>) -> ServiceError {
    ServiceError::Unauthenticated(message.into())
}

/// What a verification failure says, in words a person can act on.
fn token_problem(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "the token is for another audience (aud)".into(),
        ErrorKind::InvalidIssuer => {
            "the token's issuer (iss) is not the one its key belongs to".into()
        }
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("the token lacks the {c} claim"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm is not its key's".into(),
        _ => format!("the token does not read: {e}"),
    }
}

impl Authenticator {
    /// Verifies against `trust` and, when given, an HS256 secret speaking for
    /// `issuer`.
    pub fn new(
        trust: keys::TrustSet,
        shared: Option<(&[u8], &str)>,
        rules: TokenRules,
        deny: revocation::DenyList,
    ) -> Authenticator {
        Authenticator {
            trust,
            deny,
            shared: shared.and_then(|(secret, issuer)| {
                let key = jsonwebtoken::DecodingKey::from_secret(secret).ok()?;
                Some(keys::TrustedKey {
                    issuer: issuer.to_owned(),
                    cap: None,
                    algorithm: Algorithm::HS256,
                    key,
                    claims: None,
                    audience: None,
                })
            }),
            rules,
            verified: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
            _tasks: std::sync::Arc::default(),
        }
    }

    /// With background tasks that stop when it is dropped.
    pub fn with_tasks(mut self, tasks: Vec<tokio::task::JoinHandle<()>>) -> Authenticator {
        self._tasks = std::sync::Arc::new(Tasks(tasks));
        self
    }

    /// An HS256-only authenticator (a single development instance, tests).
    pub fn shared(
        secret: &[u8],
        issuer: &str,
        audience: &str,
    ) -> Result<Authenticator, jsonwebtoken::errors::Error> {
        Ok(Authenticator::new(
            keys::TrustSet::empty(),
            Some((secret, issuer)),
            TokenRules {
                audience: audience.into(),
                leeway_secs: 30,
                max_ttl_secs: 30 * 24 * 3600,
            },
            revocation::DenyList::none(),
        ))
    }

    pub fn verify(&self, token: &str) -> Result<Caller, ServiceError> {
        let verified = match self.verified.get(token) {
            Some(v) => v,
            None => {
                let (verified, exp) = self.verify_uncached(token)?;
                // Kept no longer than the token lives.
                if exp > chrono::Utc::now().timestamp() + 60 {
                    self.verified.insert(token.to_owned(), verified.clone());
                }
                verified
            }
        };
        if let Some(reason) = self.deny.refuses(
            &verified.jti,
            &verified.issuer,
            &verified.caller.subject,
            verified.iat,
        ) {
            return Err(refused(format!("the token has been revoked: {reason}")));
        }
        Ok(verified.caller)
    }

    fn verify_uncached(&self, token: &str) -> Result<(Verified, i64), ServiceError> {
        use jsonwebtoken::Validation;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| refused(format!("invalid bearer token: {}", token_problem(&e))))?;
        let keys::TrustedKey {
            key,
            issuer,
            cap,
            algorithm,
            claims: mapping,
            audience,
        } = if header.alg == Algorithm::HS256 {
            self.shared.clone().ok_or_else(|| {
                refused("invalid bearer token: HS256 tokens are not accepted here")
            })?
        } else {
            let kid = header
                .kid
                .as_deref()
                .ok_or_else(|| refused("invalid bearer token: it names no key (kid)"))?;
            self.trust.find(kid).ok_or_else(|| {
                refused(format!(
                    "invalid bearer token: key {kid} is not trusted here"
                ))
            })?
        };
        if algorithm != header.alg {
            return Err(refused(format!(
                "invalid bearer token: its key signs with {algorithm:?}, not {:?}",
                header.alg
            )));
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[issuer.as_str()]);
        validation.set_audience(&[audience.as_deref().unwrap_or(&self.rules.audience)]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.rules.leeway_secs;
        let raw = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| refused(format!("invalid bearer token: {}", token_problem(&e))))?
            .claims;
        let number = |name: &str| raw.get(name).and_then(serde_json::Value::as_i64);
        let (Some(iat), Some(exp)) = (number("iat"), number("exp")) else {
            return Err(refused("invalid bearer token: it lacks iat or exp"));
        };
        let claims = match &mapping {
            None => serde_json::from_value::<Claims>(raw.clone()).map_err(|e| {
                refused(format!("invalid bearer token: its claims do not read: {e}"))
            })?,
            Some(map) => {
                let mapped = map
                    .read(&raw)
                    .map_err(|e| refused(format!("invalid bearer token: {e}")))?;
                Claims {
                    sub: mapped.subject,
                    role: mapped.role,
                    scope: mapped.scope,
                    iss: issuer.clone(),
                    aud: String::new(),
                    iat,
                    nbf: number("nbf"),
                    exp,
                    jti: raw
                        .get("jti")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                }
            }
        };
        if claims.exp - claims.iat > self.rules.max_ttl_secs {
            return Err(refused(format!(
                "invalid bearer token: it lives {} s, longer than the {} s allowed here",
                claims.exp - claims.iat,
                self.rules.max_ttl_secs
            )));
        }
        if claims.iat > chrono::Utc::now().timestamp() + self.rules.leeway_secs as i64 {
            return Err(refused(
                "invalid bearer token: it was issued in the future (iat)",
            ));
        }
        if claims.scope.is_empty() {
            return Err(refused("token carries an empty scope"));
        }
        // An instance speaks for itself only: a peer's token names its issuer.
        if claims.role == Role::Sync && algorithm != Algorithm::HS256 && claims.sub != issuer {
            return Err(refused(format!(
                "a sync token of {issuer} may only speak for {issuer}, not {:?}",
                claims.sub
            )));
        }
        let asked = Scope::new(claims.scope);
        let scope = match &cap {
            None => asked,
            Some(cap) => {
                let capped = asked.capped_by(cap);
                if capped.codes().is_empty() {
                    return Err(ServiceError::PermissionDenied {
                        reason: "OUT_OF_SCOPE",
                        message: format!(
                            "the token's scope ({}) lies outside what its issuer {issuer} may grant ({})",
                            asked.codes().join(", "),
                            cap.codes().join(", ")
                        ),
                    });
                }
                capped
            }
        };
        Ok((
            Verified {
                caller: Caller {
                    issuer: issuer.clone(),
                    subject: claims.sub,
                    role: claims.role,
                    scope,
                },
                jti: claims.jti,
                issuer,
                iat: claims.iat,
            },
            claims.exp,
        ))
    }

    /// A tonic interceptor: UNAUTHENTICATED without a valid `authorization:
    /// Bearer`; over mutual TLS, a peer instance's call must come with a
    /// certificate that names the instance its token speaks for.
    pub fn interceptor(
        &self,
    ) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + use<> {
        let this = self.clone();
        move |mut request: Request<()>| {
            let header = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    Status::from(refused("missing `authorization: Bearer <token>` metadata"))
                })?;
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .ok_or_else(|| {
                    Status::from(refused("authorization metadata must be `Bearer <token>`"))
                })?;
            let caller = this.verify(token.trim()).map_err(Status::from)?;
            if caller.role == Role::Sync
                && let Some(certs) = request.peer_certs()
            {
                check_peer_certificate(&caller.subject, certs.first().map(|c| c.as_ref()))
                    .map_err(Status::from)?;
            }
            request.extensions_mut().insert(caller);
            Ok(request)
        }
    }
}

/// The names a certificate is issued to: its DNS and URI subject alternative
/// names and its common name.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return vec![];
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) | GeneralName::URI(n) => names.push((*n).to_owned()),
                _ => {}
            }
        }
    }
    names
}

/// UNAUTHENTICATED unless the client certificate `der` is issued to
/// `instance`: a peer's token is worth something only from that peer.
pub fn check_peer_certificate(instance: &str, der: Option<&[u8]>) -> Result<(), ServiceError> {
    let names = der.map(certificate_names).unwrap_or_default();
    if names.iter().any(|n| n == instance) {
        Ok(())
    } else {
        Err(refused(format!(
            "a sync call for instance {instance:?} must come with that instance's client certificate; this one is issued to {}",
            if names.is_empty() {
                "no name".to_owned()
            } else {
                names.join(", ")
            }
        )))
    }
}

/// Mints tokens: the sync pullers, the `token` command, development mode, tests.
#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    header: Header,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenIssuer({})", self.issuer)
    }
}

impl TokenIssuer {
    /// HS256 with a shared secret: a single development instance, tests.
    pub fn shared(
        secret: &[u8],
        issuer: &str,
        audience: &str,
    ) -> Result<TokenIssuer, jsonwebtoken::errors::Error> {
        Ok(TokenIssuer {
            key: EncodingKey::from_secret(secret)?,
            header: Header::new(Algorithm::HS256),
            issuer: issuer.into(),
            audience: audience.into(),
        })
    }

    /// EdDSA with this instance's own key; tokens name it by `kid`.
    pub fn own(
        key: &keys::SigningKey,
        issuer: &str,
        audience: &str,
    ) -> Result<TokenIssuer, keys::KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid().to_owned());
        Ok(TokenIssuer {
            key: key.encoding_key()?,
            header,
            issuer: issuer.into(),
            audience: audience.into(),
        })
    }

    /// Signs with `key` as `issuer`.
    pub fn with(key: &TokenKey, issuer: &str, audience: &str) -> Result<TokenIssuer, ServiceError> {
        match key {
            TokenKey::Own(k) => TokenIssuer::own(k, issuer, audience)
                .map_err(|e| ServiceError::Internal(format!("auth.signing_key: {e}"))),
            TokenKey::Shared(secret) => TokenIssuer::shared(secret, issuer, audience)
                .map_err(|e| ServiceError::Internal(format!("auth.jwt_secret: {e}"))),
        }
    }

    pub fn issue(
        &self,
        subject: &str,
        role: Role,
        scope: &[&str],
        ttl: Duration,
    ) -> Result<String, ServiceError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: subject.into(),
            role,
            scope: scope.iter().map(|s| (*s).to_owned()).collect(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: Some(now),
            exp: now + ttl.num_seconds(),
            jti: uuid::Uuid::now_v7().to_string(),
        };
        jsonwebtoken::encode(&self.header, &claims, &self.key)
            .map_err(|e| ServiceError::Internal(format!("cannot sign token: {e}")))
    }
}

/// A client-side interceptor that sends `authorization: Bearer <token>` on
/// every call, for the demo loaders and other callers of the services.
#[derive(Debug, Clone)]
pub struct BearerToken(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl BearerToken {
    pub fn new(token: &str) -> Result<BearerToken, ServiceError> {
        format!("Bearer {token}")
            .parse()
            .map(BearerToken)
            .map_err(|_| ServiceError::Unauthenticated("the token is not ASCII".into()))
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        r.metadata_mut().insert("authorization", self.0.clone());
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_round_trips_into_a_caller() {
        let issuer = TokenIssuer::shared(SECRET, "sustain", "sustain").expect("key");
        let token = issuer
            .issue(
                "clerk-1",
                Role::Enumerator,
                &["181"],
                chrono::Duration::hours(1),
            )
            .expect("signed");
        let caller = Authenticator::shared(SECRET, "sustain", "sustain")
            .expect("key")
            .verify(&token)
            .expect("valid");
        assert_eq!(caller.role, Role::Enumerator);
        assert_eq!(caller.scope.codes(), ["181"]);
    }

    #[test]
    fn wrong_key_expired_and_wrong_audience_are_refused() {
        let auth = Authenticator::shared(SECRET, "sustain", "sustain").expect("key");
        let other = TokenIssuer::shared(b"another-secret-another-secret-!!", "sustain", "sustain")
            .expect("key");
        let forged = other
            .issue("x", Role::Admin, &["*"], chrono::Duration::hours(1))
            .expect("signed");
        assert!(matches!(
            auth.verify(&forged),
            Err(ServiceError::Unauthenticated(_))
        ));

        let issuer = TokenIssuer::shared(SECRET, "sustain", "sustain").expect("key");
        let expired = issuer
            .issue("x", Role::Admin, &["*"], chrono::Duration::hours(-2))
            .expect("signed");
        assert!(auth.verify(&expired).is_err());

        let elsewhere = TokenIssuer::shared(SECRET, "sustain", "someone-else").expect("key");
        let token = elsewhere
            .issue("x", Role::Admin, &["*"], chrono::Duration::hours(1))
            .expect("signed");
        assert!(auth.verify(&token).is_err());
    }

    /// An instance's key, trusted as `issuer` worth at most `cap`.
    fn instance(issuer: &str, cap: &[&str]) -> (keys::SigningKey, keys::Issuer) {
        let key = keys::SigningKey::generate();
        let trusted = keys::Issuer {
            name: issuer.into(),
            cap: Some(Scope::new(cap.iter().map(|c| (*c).to_owned()).collect())),
            jwks: None,
            keys: vec![key.public()],
            remote: None,
            claims: None,
            audience: None,
        };
        (key, trusted)
    }

    fn rules() -> TokenRules {
        TokenRules {
            audience: "sustain".into(),
            leeway_secs: 30,
            max_ttl_secs: 24 * 3600,
        }
    }

    fn sign(claims: &serde_json::Value, key: &keys::SigningKey) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid().into());
        jsonwebtoken::encode(&header, claims, &key.encoding_key().expect("key")).expect("signs")
    }

    #[test]
    fn a_token_is_worth_at_most_its_issuers_units() {
        let (province, p_trust) = instance("province", &["20"]);
        let (district, d_trust) = instance("district-181", &["181"]);
        let auth = Authenticator::new(
            keys::TrustSet::new(vec![p_trust, d_trust]).expect("trust"),
            None,
            rules(),
            revocation::DenyList::none(),
        );
        let at_district = TokenIssuer::own(&district, "district-181", "sustain").expect("key");
        // The district's key, asking for the whole country or the province.
        for asked in [&["*"][..], &["20"], &["181", "185"]] {
            let token = at_district
                .issue("clerk", Role::Admin, asked, Duration::hours(1))
                .expect("signed");
            let caller = auth.verify(&token).expect("valid, capped");
            assert_eq!(caller.scope.codes(), ["181"], "asked {asked:?}");
        }
        // Another district's units are beyond it altogether.
        let token = at_district
            .issue("clerk", Role::Admin, &["185"], Duration::hours(1))
            .expect("signed");
        assert!(matches!(
            auth.verify(&token),
            Err(ServiceError::PermissionDenied { .. })
        ));
        // The province's key reaches the province, and a commune within.
        let at_province = TokenIssuer::own(&province, "province", "sustain").expect("key");
        let token = at_province
            .issue("officer", Role::Viewer, &["*"], Duration::hours(1))
            .expect("signed");
        assert_eq!(auth.verify(&token).expect("valid").scope.codes(), ["20"]);
        let token = at_province
            .issue("officer", Role::Viewer, &["06067"], Duration::hours(1))
            .expect("signed");
        assert_eq!(auth.verify(&token).expect("valid").scope.codes(), ["06067"]);
        // The district's key cannot pass as the province.
        let posing = TokenIssuer::own(&district, "province", "sustain").expect("key");
        let token = posing
            .issue("officer", Role::Admin, &["20"], Duration::hours(1))
            .expect("signed");
        let err = auth.verify(&token).expect_err("issuer is not the key's");
        assert!(err.to_string().contains("issuer"), "{err}");
    }

    #[test]
    fn forged_stale_and_foreign_tokens_are_refused() {
        let (district, trusted) = instance("district-181", &["181"]);
        let (stranger, _) = instance("district-185", &["185"]);
        let auth = Authenticator::new(
            keys::TrustSet::new(vec![trusted]).expect("trust"),
            Some((SECRET, "sustain")),
            rules(),
            revocation::DenyList::none(),
        );
        let now = chrono::Utc::now().timestamp();
        let claims = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut c = serde_json::json!({
                "sub": "clerk", "role": "admin", "scope": ["181"], "iss": "district-181",
                "aud": "sustain", "iat": now, "nbf": now, "exp": now + 3600,
            });
            f(&mut c);
            c
        };
        assert!(auth.verify(&sign(&claims(&|_| {}), &district)).is_ok());
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "expired",
                sign(
                    &claims(&|c| {
                        c["exp"] = (now - 3600).into();
                        c["iat"] = (now - 7200).into();
                    }),
                    &district,
                ),
                "expired",
            ),
            (
                "not yet valid",
                sign(&claims(&|c| c["nbf"] = (now + 3600).into()), &district),
                "not valid yet",
            ),
            (
                "wrong audience",
                sign(&claims(&|c| c["aud"] = "elsewhere".into()), &district),
                "audience",
            ),
            (
                "lives too long",
                sign(
                    &claims(&|c| c["exp"] = (now + 90 * 24 * 3600).into()),
                    &district,
                ),
                "longer than",
            ),
            (
                "signed by an unknown key",
                sign(&claims(&|_| {}), &stranger),
                "not trusted",
            ),
            (
                "a sync token speaking for another",
                sign(
                    &claims(&|c| {
                        c["role"] = "sync".into();
                        c["sub"] = "province".into();
                    }),
                    &district,
                ),
                "speak for",
            ),
        ];
        for (what, token, says) in cases {
            let err = auth.verify(&token).expect_err(what);
            assert!(err.to_string().contains(says), "{what}: {err}");
        }
        // alg none, and a signature from another key under this one's kid.
        let unsigned = {
            let b64 = |v: &serde_json::Value| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
            };
            format!(
                "{}.{}.",
                b64(&serde_json::json!({"alg": "none", "typ": "JWT", "kid": district.kid()})),
                b64(&claims(&|_| {}))
            )
        };
        assert!(auth.verify(&unsigned).is_err(), "alg none");
        let mut forged = sign(&claims(&|_| {}), &stranger);
        let (head, _) = sign(&claims(&|_| {}), &district)
            .split_once('.')
            .map(|(h, r)| (h.to_owned(), r.to_owned()))
            .expect("jwt");
        forged = format!("{head}.{}", forged.split_once('.').expect("jwt").1);
        let err = auth
            .verify(&forged)
            .expect_err("signature from another key");
        assert!(err.to_string().contains("signature"), "{err}");
        // An HS256 token made with the shared secret but claiming a trusted
        // issuer's key is judged as HS256: it speaks for `sustain` only.
        let hs = TokenIssuer::shared(SECRET, "district-181", "sustain")
            .expect("key")
            .issue("x", Role::Admin, &["*"], Duration::hours(1))
            .expect("signed");
        assert!(
            auth.verify(&hs).is_err(),
            "HS256 under another issuer's name"
        );
    }

    #[test]
    fn a_certificate_names_its_instance() {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::tls::dev_certs(dir.path(), "district-181", &["registry".into()]).expect("certs");
        let pem = std::fs::read_to_string(dir.path().join("district-181.pem")).expect("pem");
        let der = {
            use base64::Engine;
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .expect("base64")
        };
        assert!(certificate_names(&der).contains(&"district-181".to_owned()));
        assert!(check_peer_certificate("district-181", Some(&der)).is_ok());
        let err = check_peer_certificate("province", Some(&der)).expect_err("another's name");
        assert!(err.to_string().contains("district-181"), "{err}");
        assert!(check_peer_certificate("province", None).is_err());
    }

    #[test]
    fn scope_covers_locations_below_its_units() {
        let in_binh_gia = Location {
            province_code: "20".into(),
            district_code: Some("181".into()),
            commune_code: "06067".into(),
            current_commune_code: "06067".into(),
        };
        assert!(Scope::new(vec!["181".into()]).covers(&in_binh_gia));
        assert!(Scope::new(vec!["20".into()]).covers(&in_binh_gia));
        assert!(Scope::nationwide().covers(&in_binh_gia));
        assert!(!Scope::new(vec!["182".into()]).covers(&in_binh_gia));
        assert!(Scope::new(vec!["181".into()]).overlaps_unit("20"));
        assert!(Scope::new(vec!["20".into()]).contains_unit("06067"));
        assert!(Scope::new(vec!["181".into()]).contains_unit("181"));
        // New 05977 took in communes of districts 178 and 183: not inside 178.
        assert!(!Scope::new(vec!["178".into()]).contains_unit("05977"));
        assert!(!Scope::new(vec!["181".into()]).contains_unit("20"));
        assert!(!Scope::new(vec!["181".into()]).overlaps_unit("182"));
    }

    #[test]
    fn roles_are_checked() {
        let caller = Caller {
            issuer: "sustain".into(),
            subject: "v".into(),
            role: Role::Viewer,
            scope: Scope::nationwide(),
        };
        assert!(caller.require("read", &[Role::Viewer, Role::Admin]).is_ok());
        assert!(matches!(
            caller.require("create households", &[Role::Enumerator]),
            Err(ServiceError::PermissionDenied { .. })
        ));
    }
}
