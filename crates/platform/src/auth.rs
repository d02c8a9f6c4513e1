//! Who is calling and what they may touch. Callers present a bearer JWT (HS256)
//! carrying a role and a scope of administrative unit codes; the interceptor turns a
//! valid token into a [`Caller`] in the request's extensions, and every handler asks
//! the caller for the role and the unit it needs before it reads or writes.

pub use chrono::Duration;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
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
    pub exp: i64,
}

/// An authenticated caller, put in the request extensions by [`Authenticator`].
#[derive(Debug, Clone)]
pub struct Caller {
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

fn out_of_scope(code: &str) -> ServiceError {
    ServiceError::PermissionDenied {
        reason: "OUT_OF_SCOPE",
        message: format!("unit {code} is outside the caller's administrative scope"),
    }
}

/// Verifies bearer tokens; cheap to clone into an interceptor.
#[derive(Clone)]
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator(..)")
    }
}

impl Authenticator {
    pub fn new(
        secret: &[u8],
        issuer: &str,
        audience: &str,
    ) -> Result<Authenticator, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        Ok(Authenticator {
            key: DecodingKey::from_secret(secret)?,
            validation,
        })
    }

    pub fn verify(&self, token: &str) -> Result<Caller, ServiceError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| ServiceError::Unauthenticated(format!("invalid bearer token: {e}")))?;
        let claims = data.claims;
        if claims.scope.is_empty() {
            return Err(ServiceError::Unauthenticated(
                "token carries an empty scope".into(),
            ));
        }
        Ok(Caller {
            subject: claims.sub,
            role: claims.role,
            scope: Scope::new(claims.scope),
        })
    }

    /// A tonic interceptor: UNAUTHENTICATED without a valid `authorization: Bearer`.
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
                    Status::from(ServiceError::Unauthenticated(
                        "missing `authorization: Bearer <token>` metadata".into(),
                    ))
                })?;
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .ok_or_else(|| {
                    Status::from(ServiceError::Unauthenticated(
                        "authorization metadata must be `Bearer <token>`".into(),
                    ))
                })?;
            let caller = this.verify(token.trim()).map_err(Status::from)?;
            request.extensions_mut().insert(caller);
            Ok(request)
        }
    }
}

/// Mints tokens: development mode, the `token` command and tests.
#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenIssuer(..)")
    }
}

impl TokenIssuer {
    pub fn new(
        secret: &[u8],
        issuer: &str,
        audience: &str,
    ) -> Result<TokenIssuer, jsonwebtoken::errors::Error> {
        Ok(TokenIssuer {
            key: EncodingKey::from_secret(secret)?,
            issuer: issuer.into(),
            audience: audience.into(),
        })
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
            exp: now + ttl.num_seconds(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .map_err(|e| ServiceError::Internal(format!("cannot sign token: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_round_trips_into_a_caller() {
        let issuer = TokenIssuer::new(SECRET, "sustain", "sustain").expect("key");
        let token = issuer
            .issue(
                "clerk-1",
                Role::Enumerator,
                &["181"],
                chrono::Duration::hours(1),
            )
            .expect("signed");
        let caller = Authenticator::new(SECRET, "sustain", "sustain")
            .expect("key")
            .verify(&token)
            .expect("valid");
        assert_eq!(caller.role, Role::Enumerator);
        assert_eq!(caller.scope.codes(), ["181"]);
    }

    #[test]
    fn wrong_key_expired_and_wrong_audience_are_refused() {
        let auth = Authenticator::new(SECRET, "sustain", "sustain").expect("key");
        let other = TokenIssuer::new(b"another-secret-another-secret-!!", "sustain", "sustain")
            .expect("key");
        let forged = other
            .issue("x", Role::Admin, &["*"], chrono::Duration::hours(1))
            .expect("signed");
        assert!(matches!(
            auth.verify(&forged),
            Err(ServiceError::Unauthenticated(_))
        ));

        let issuer = TokenIssuer::new(SECRET, "sustain", "sustain").expect("key");
        let expired = issuer
            .issue("x", Role::Admin, &["*"], chrono::Duration::hours(-2))
            .expect("signed");
        assert!(auth.verify(&expired).is_err());

        let elsewhere = TokenIssuer::new(SECRET, "sustain", "someone-else").expect("key");
        let token = elsewhere
            .issue("x", Role::Admin, &["*"], chrono::Duration::hours(1))
            .expect("signed");
        assert!(auth.verify(&token).is_err());
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
