//! Configuration, layered as defaults < file < environment (`SUSTAIN_*`, nested with
//! `__`) < command-line flags, and validated before anything listens: a bad setting
//! stops the service at start-up with a message naming it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Flags common to every service's `serve` command; each overrides the file and env.
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:50051.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `sqlite://FILE?mode=rwc` or `postgres://USER@HOST/DB`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Where the SQLite database and development secrets live.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Development mode: generate missing keys and print an admin token. Loopback only.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dev: bool,
    /// `text` or `json`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where the gateway serves its reports over HTTP.
    pub http_listen: SocketAddr,
    /// Where Prometheus scrapes `/metrics` over HTTP; unset: nowhere. One
    /// endpoint covers every service in the process.
    pub metrics_listen: Option<SocketAddr>,
    /// OTLP/gRPC collector the RPC spans go to (`http://host:4317`); unset:
    /// no traces.
    pub otlp_endpoint: Option<String>,
    /// Empty: a SQLite file named after the service under `data_dir`.
    pub database_url: String,
    pub data_dir: PathBuf,
    pub dev: bool,
    pub log_format: LogFormat,
    /// `tracing` env-filter directives; `RUST_LOG` wins when set.
    pub log_filter: String,
    /// Seconds to keep serving in-flight calls after NOT_SERVING on shutdown.
    pub shutdown_grace_secs: u64,
    /// Decoded records kept in memory for reads; 0 turns the cache off.
    pub cache_entries: u64,
    /// How often the cache follows the outbox for writes made by other instances.
    pub cache_poll_ms: u64,
    /// A poverty-standards TOML file replacing the bundled one (registry).
    pub standards_file: Option<PathBuf>,
    /// Where the registry answers, for services that ask it (programs, gateway).
    pub registry: UpstreamConfig,
    /// Where the programmes service and the ledger answer (gateway).
    pub programs: UpstreamConfig,
    pub ledger: UpstreamConfig,
    pub auth: AuthConfig,
    pub crypto: CryptoConfig,
    /// This instance's place among a province's instances; runs alone when
    /// `sync.instance` is empty.
    pub sync: SyncConfig,
    /// Mutual TLS for every gRPC server and client of the service.
    pub tls: crate::tls::TlsConfig,
    /// What one client may ask of a server.
    pub limits: LimitsConfig,
}

/// The gRPC server's limits, each set on purpose (docs/operations.md).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request message a service accepts, in bytes (a page of
    /// households to import stays far below it).
    pub max_request_bytes: usize,
    /// Largest response message a service sends, in bytes (a sync batch of
    /// 5,000 changes is a few MB).
    pub max_response_bytes: usize,
    /// Calls in flight on one connection; past it a call is refused at once
    /// (RESOURCE_EXHAUSTED, load shed) rather than queued.
    pub concurrency_per_connection: usize,
    /// Streams a client may open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Longest a call may take to its answer (for a stream: to its first
    /// message); a shorter `grpc-timeout` from the client wins.
    pub request_timeout_secs: u64,
    /// HTTP/2 pings this often find a dead peer (20 s to answer); TCP
    /// keepalive runs at the same period.
    pub keepalive_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            max_request_bytes: 4 * 1024 * 1024,
            max_response_bytes: 64 * 1024 * 1024,
            concurrency_per_connection: 256,
            max_concurrent_streams: 512,
            request_timeout_secs: 60,
            keepalive_secs: 30,
        }
    }
}

/// Province ↔ district replication of one service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// This instance's name, e.g. `province` or `district-181`; empty: no sync.
    pub instance: String,
    /// Units this instance owns (a province code, district codes, communes).
    pub scope: Vec<String>,
    /// The instance above this one; it owns every unit no row names here.
    pub upstream: Option<PeerConfig>,
    /// The instances below, each owning its scope.
    pub downstream: Vec<PeerConfig>,
    /// Most changes per pulled batch (each applied in one transaction).
    pub batch_size: u32,
    /// How often a followed feed looks for new commits, in milliseconds.
    pub poll_ms: u64,
    /// Longest wait between retries after a failed pull, in milliseconds.
    pub retry_max_ms: u64,
}

/// Another instance's copy of this service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub name: String,
    /// `http://host:port` of the same service at the peer.
    pub url: String,
    /// The units the peer owns (downstream peers; an upstream owns the rest).
    #[serde(default)]
    pub scope: Vec<String>,
}

impl Default for SyncConfig {
    fn default() -> SyncConfig {
        SyncConfig {
            instance: String::new(),
            scope: vec![],
            upstream: None,
            downstream: vec![],
            batch_size: 1000,
            poll_ms: 100,
            retry_max_ms: 5000,
        }
    }
}

impl SyncConfig {
    /// True when this instance replicates with others.
    pub fn enabled(&self) -> bool {
        !self.instance.is_empty()
    }

    /// The peers this instance pulls from, upstream first.
    pub fn peers(&self) -> impl Iterator<Item = (&PeerConfig, bool)> {
        self.upstream
            .iter()
            .map(|p| (p, true))
            .chain(self.downstream.iter().map(|p| (p, false)))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |field: &'static str, problem: String| ConfigError::Invalid { field, problem };
        if !self.enabled() {
            if self.upstream.is_some() || !self.downstream.is_empty() || !self.scope.is_empty() {
                return Err(invalid(
                    "sync.instance",
                    "is required when sync.scope, sync.upstream or sync.downstream is set".into(),
                ));
            }
            return Ok(());
        }
        let known = |code: &String| sustain_domain::admin::catalog().is_known(code);
        if self.scope.is_empty() {
            return Err(invalid(
                "sync.scope",
                "must name the units this instance owns".into(),
            ));
        }
        if let Some(bad) = self.scope.iter().find(|c| !known(c)) {
            return Err(invalid(
                "sync.scope",
                format!("{bad:?} is not a known unit code"),
            ));
        }
        let mut names = vec![self.instance.as_str()];
        for (peer, upstream) in self.peers() {
            let field = if upstream {
                "sync.upstream"
            } else {
                "sync.downstream"
            };
            if peer.name.trim().is_empty() || names.contains(&peer.name.as_str()) {
                return Err(invalid(
                    field,
                    format!("peer name {:?} is empty or used twice", peer.name),
                ));
            }
            names.push(&peer.name);
            if !(peer.url.starts_with("http://") || peer.url.starts_with("https://"))
                || tonic::transport::Endpoint::from_shared(peer.url.clone()).is_err()
            {
                return Err(invalid(
                    field,
                    format!("{:?} is not an http:// or https:// address", peer.url),
                ));
            }
            if !upstream && peer.scope.is_empty() {
                return Err(invalid(
                    field,
                    format!("peer {} needs the scope it owns", peer.name),
                ));
            }
            if let Some(bad) = peer.scope.iter().find(|c| !known(c)) {
                return Err(invalid(field, format!("{bad:?} is not a known unit code")));
            }
        }
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return Err(invalid(
                "sync.batch_size",
                "must be between 1 and 10000".into(),
            ));
        }
        if self.poll_ms == 0 || self.retry_max_ms == 0 {
            return Err(invalid(
                "sync.poll_ms",
                "poll_ms and retry_max_ms must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Another Sustain service this one calls.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `http://host:port` (or `https://`).
    pub url: String,
    /// Deadline of each call, connecting included; past it the caller gets
    /// UNAVAILABLE and nothing is written.
    pub timeout_ms: u64,
    /// How long an aggregate read from it (the under-five count a programme
    /// summary divides by) is reused, in seconds; 0 asks every time.
    pub count_cache_secs: u64,
}

impl UpstreamConfig {
    /// `fields`: the keys of its url and timeout, for the error.
    fn validate(&self, fields: (&'static str, &'static str)) -> Result<(), ConfigError> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://"))
            || tonic::transport::Endpoint::from_shared(self.url.clone()).is_err()
        {
            return Err(ConfigError::Invalid {
                field: fields.0,
                problem: format!("{:?} is not an http:// or https:// address", self.url),
            });
        }
        if self.timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                field: fields.1,
                problem: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// This instance's Ed25519 private key (PKCS#8 PEM file) that signs its
    /// tokens; `sustain-registry keys` writes one with its JWKS.
    pub signing_key: Option<PathBuf>,
    /// Base64 HMAC key (≥ 32 bytes) that signs and verifies HS256 tokens: a
    /// single instance in development only (refused beside `sync.instance`
    /// outside `dev`, since whoever holds it can mint any token).
    pub jwt_secret: Option<String>,
    /// The `iss` of this instance's tokens; with sync on, its instance name.
    pub issuer: String,
    pub audience: String,
    /// Other issuers whose tokens this instance accepts, each worth at most
    /// its `scope`.
    pub trust: Vec<TrustConfig>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: u64,
    /// Longest lifetime (exp − iat) a token may claim, in seconds.
    pub max_token_ttl_secs: u64,
    /// The deny list of revoked tokens every service of the instance reads
    /// (`revoke` writes it); empty: `revoked-tokens.json` under `data_dir`.
    pub revocations: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            signing_key: None,
            jwt_secret: None,
            issuer: "sustain".into(),
            audience: "sustain".into(),
            trust: vec![],
            leeway_secs: 30,
            max_token_ttl_secs: 24 * 3600,
            revocations: None,
        }
    }
}

/// An issuer this instance trusts: another instance of the province, or an
/// external identity provider.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// The `iss` its tokens carry (an instance name, or the provider's URL).
    pub issuer: String,
    /// A JWKS file with its public keys; read again when a token names a key
    /// not seen yet, so a rotation needs no restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<PathBuf>,
    /// Or the URL an identity provider publishes its JWKS at (https://, or
    /// http:// on loopback); fetched at start, every 5 minutes and when a
    /// token names a key not seen yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// The most its tokens may reach: unit codes, or `*`.
    pub scope: Vec<String>,
    /// The `aud` its tokens carry, when not the instance's `auth.audience`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Where an identity provider's tokens carry role and units; unset: the
    /// issuer is a Sustain instance and its tokens carry `role` and `scope`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<crate::auth::remote::ClaimMap>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct CryptoConfig {
    /// Base64 32-byte AES-256-GCM key for citizen IDs and sensitive fields.
    pub field_key: Option<String>,
    /// Base64 32-byte HMAC key for the citizen-ID lookup hash.
    pub lookup_key: Option<String>,
    /// Field keys rotated away from: they still open what they sealed, until
    /// `reseal` has sealed it again with `field_key`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_field_keys: Vec<String>,
    /// Lookup keys rotated away from: lookups also try them until `reseal`
    /// has hashed every citizen ID again with `lookup_key`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_lookup_keys: Vec<String>,
}

/// Keys decoded and checked; what the services actually use.
#[derive(Clone)]
pub struct Secrets {
    /// What this instance signs its tokens with.
    pub token_key: crate::auth::TokenKey,
    pub field_key: [u8; 32],
    pub lookup_key: [u8; 32],
    /// Keys rotated away from (`crypto.previous_*`), newest first.
    pub previous_field_keys: Vec<[u8; 32]>,
    pub previous_lookup_keys: Vec<[u8; 32]>,
}

impl Secrets {
    /// Seals with the field key, opens with it and the previous ones.
    pub fn cipher(&self) -> crate::crypto::FieldCipher {
        crate::crypto::FieldCipher::with_previous(&self.field_key, &self.previous_field_keys)
    }

    /// Hashes with the lookup key, looks up with it and the previous ones.
    pub fn hasher(&self) -> crate::crypto::LookupHasher {
        crate::crypto::LookupHasher::with_previous(&self.lookup_key, &self.previous_lookup_keys)
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: `{field}` {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error("configuration: cannot use data_dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Config {
    pub fn defaults(default_port: u16) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], default_port)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8054)),
            metrics_listen: None,
            otlp_endpoint: None,
            database_url: String::new(),
            data_dir: PathBuf::from("data"),
            dev: false,
            log_format: LogFormat::Text,
            log_filter: "info".into(),
            shutdown_grace_secs: 5,
            cache_entries: 50_000,
            cache_poll_ms: 250,
            standards_file: None,
            registry: UpstreamConfig {
                url: "http://127.0.0.1:50051".into(),
                timeout_ms: 3000,
                count_cache_secs: 60,
            },
            programs: UpstreamConfig {
                url: "http://127.0.0.1:50052".into(),
                timeout_ms: 5000,
                count_cache_secs: 0,
            },
            ledger: UpstreamConfig {
                url: "http://127.0.0.1:50053".into(),
                timeout_ms: 5000,
                count_cache_secs: 0,
            },
            auth: AuthConfig::default(),
            crypto: CryptoConfig::default(),
            sync: SyncConfig::default(),
            tls: crate::tls::TlsConfig::default(),
            limits: LimitsConfig::default(),
        }
    }

    /// Merges the layers for one service and validates the result.
    pub fn load(service: &str, default_port: u16, args: &ServeArgs) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::defaults(default_port)));
        if let Some(file) = &args.config {
            if !file.exists() {
                return Err(ConfigError::Invalid {
                    field: "--config",
                    problem: format!("file {} does not exist", file.display()),
                });
            }
            figment = figment.merge(Toml::file(file));
        }
        let mut config: Config = figment
            // SUSTAIN_TEST_* belongs to the test harness, not to a service.
            .merge(
                Env::prefixed("SUSTAIN_")
                    .filter(|key| !key.as_str().to_ascii_lowercase().starts_with("test_"))
                    .split("__"),
            )
            .merge(Serialized::defaults(args))
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        if config.database_url.is_empty() {
            config.database_url = format!(
                "sqlite://{}?mode=rwc",
                config.data_dir.join(format!("{service}.sqlite")).display()
            );
        }
        // One file serves every service of an instance: a peer's address may
        // name the service and its port, each service reading its own.
        let peers = config
            .sync
            .upstream
            .iter_mut()
            .chain(config.sync.downstream.iter_mut());
        for peer in peers {
            peer.url = peer
                .url
                .replace("{service}", service)
                .replace("{port}", &default_port.to_string());
        }
        // An instance that signs its own tokens signs them as itself.
        if config.sync.enabled()
            && config.signing_key_path().is_some()
            && config.auth.issuer == AuthConfig::default().issuer
        {
            config.auth.issuer = config.sync.instance.clone();
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the settings together; [`Config::load`] calls it, and so must
    /// whoever changes a loaded configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if l.max_request_bytes < 64 * 1024 || l.max_response_bytes < 64 * 1024 {
            return Err(ConfigError::Invalid {
                field: "limits",
                problem: "message sizes below 64 KiB would refuse ordinary calls".into(),
            });
        }
        if l.concurrency_per_connection == 0
            || l.max_concurrent_streams == 0
            || l.request_timeout_secs == 0
            || l.keepalive_secs == 0
        {
            return Err(ConfigError::Invalid {
                field: "limits",
                problem: "concurrency, streams, timeout and keepalive must be above 0".into(),
            });
        }
        if let Some((field, problem)) = self.tls.problem() {
            return Err(ConfigError::Invalid { field, problem });
        }
        if !self.tls.enabled() && !self.dev && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                field: "tls",
                problem: format!(
                    "gRPC in plain text is served on loopback only, not on {}: set tls.cert, tls.key and tls.ca",
                    self.listen
                ),
            });
        }
        // Development mode hands out tokens and serves reports without one:
        // nothing of it may be reachable from another machine.
        let public = std::iter::once(self.http_listen)
            .chain(self.metrics_listen)
            .find(|a| !a.ip().is_loopback());
        if let (true, Some(addr)) = (self.dev, public) {
            return Err(ConfigError::Invalid {
                field: "dev",
                problem: format!("development mode only listens on loopback, not {addr}"),
            });
        }
        if !self.tls.enabled() && !self.http_listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                field: "http_listen",
                problem: format!(
                    "reports carry personal data and are served in plain text on loopback only, not on {}: set tls.cert, tls.key and tls.ca to serve them over HTTPS",
                    self.http_listen
                ),
            });
        }
        if self.dev && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                field: "dev",
                problem: format!(
                    "development mode only listens on loopback, not {}; configure auth.jwt_secret and crypto keys instead",
                    self.listen
                ),
            });
        }
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid {
                field: "database_url",
                problem: "must start with sqlite: or postgres://".into(),
            });
        }
        self.registry
            .validate(("registry.url", "registry.timeout_ms"))?;
        self.programs
            .validate(("programs.url", "programs.timeout_ms"))?;
        self.ledger.validate(("ledger.url", "ledger.timeout_ms"))?;
        self.sync.validate()?;
        self.validate_auth()?;
        if self.cache_poll_ms == 0 {
            return Err(ConfigError::Invalid {
                field: "cache_poll_ms",
                problem: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let invalid =
            |field: &'static str, problem: String| ConfigError::Invalid { field, problem };
        let a = &self.auth;
        if a.signing_key.is_some() && a.jwt_secret.is_some() {
            return Err(invalid(
                "auth",
                "set signing_key or jwt_secret, not both".into(),
            ));
        }
        if self.sync.enabled() && a.jwt_secret.is_some() && !self.dev {
            return Err(invalid(
                "auth.jwt_secret",
                "is for a single instance in development: a secret shared between instances lets any of them mint tokens for all; give each instance its own auth.signing_key (`sustain-registry keys`)".into(),
            ));
        }
        if self.sync.enabled() && a.signing_key.is_some() && a.issuer != self.sync.instance {
            return Err(invalid(
                "auth.issuer",
                format!(
                    "must be the instance's name ({:?}) when it signs with its own key",
                    self.sync.instance
                ),
            ));
        }
        if a.audience.trim().is_empty() || a.issuer.trim().is_empty() {
            return Err(invalid(
                "auth",
                "issuer and audience must not be empty".into(),
            ));
        }
        if a.max_token_ttl_secs == 0 || a.leeway_secs > 300 {
            return Err(invalid(
                "auth",
                "max_token_ttl_secs must be above 0 and leeway_secs at most 300".into(),
            ));
        }
        let known = |code: &String| {
            code == crate::auth::NATIONWIDE || sustain_domain::admin::catalog().is_known(code)
        };
        for t in &a.trust {
            if t.issuer.trim().is_empty() || t.issuer == a.issuer {
                return Err(invalid(
                    "auth.trust",
                    format!("issuer {:?} is empty or this instance's own", t.issuer),
                ));
            }
            match (&t.jwks, &t.jwks_url) {
                (Some(_), None) => {}
                (None, Some(url)) => {
                    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                        .iter()
                        .any(|p| url.starts_with(p));
                    if !(url.starts_with("https://") || loopback) {
                        return Err(invalid(
                            "auth.trust",
                            format!(
                                "issuer {}: jwks_url must be https:// (http:// only on loopback)",
                                t.issuer
                            ),
                        ));
                    }
                }
                _ => {
                    return Err(invalid(
                        "auth.trust",
                        format!(
                            "issuer {}: set jwks (a file) or jwks_url, one of them",
                            t.issuer
                        ),
                    ));
                }
            }
            if t.scope.is_empty() || t.scope.iter().any(|c| !known(c)) {
                return Err(invalid(
                    "auth.trust",
                    format!(
                        "issuer {} needs a scope of known unit codes (or \"*\")",
                        t.issuer
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The issuers this instance trusts: itself (worth at most the units it
    /// owns when it replicates) and each of `auth.trust`.
    pub fn trust_set(&self, secrets: &Secrets) -> Result<crate::auth::keys::TrustSet, ConfigError> {
        use crate::auth::keys::{Issuer, TrustSet};
        use crate::auth::{Scope, TokenKey};
        let mut issuers = vec![];
        if let TokenKey::Own(key) = &secrets.token_key {
            // The JWKS `keys` keeps beside the key still holds the keys it
            // rotated away from: tokens they signed verify until they expire.
            let published = self
                .signing_key_path()
                .as_deref()
                .map(crate::auth::keys::jwks_beside)
                .filter(|p| p.exists());
            issuers.push(Issuer {
                name: self.auth.issuer.clone(),
                cap: self
                    .sync
                    .enabled()
                    .then(|| Scope::new(self.sync.scope.clone())),
                jwks: published,
                keys: vec![key.public()],
                remote: None,
                claims: None,
                audience: None,
            });
        }
        for t in &self.auth.trust {
            issuers.push(Issuer {
                name: t.issuer.clone(),
                cap: Some(Scope::new(t.scope.clone())),
                jwks: t.jwks.clone(),
                keys: vec![],
                remote: t
                    .jwks_url
                    .as_deref()
                    .map(crate::auth::remote::RemoteKeys::new),
                claims: t.claims.clone(),
                audience: t.audience.clone(),
            });
        }
        TrustSet::new(issuers).map_err(|e| ConfigError::Invalid {
            field: "auth.trust",
            problem: e.to_string(),
        })
    }

    /// The file of this instance's own signing key: the configured one, or in
    /// development mode with sync on (and no HS256 secret set) one made under
    /// `data_dir` on first start, so that instances on one machine each have
    /// their own and trust each other by their JWKS files.
    pub fn signing_key_path(&self) -> Option<PathBuf> {
        match &self.auth.signing_key {
            Some(path) => Some(path.clone()),
            None if self.dev && self.sync.enabled() && self.auth.jwt_secret.is_none() => Some(
                self.data_dir
                    .join("keys")
                    .join(format!("{}.key", self.sync.instance)),
            ),
            None => None,
        }
    }

    /// Where the revoked tokens are listed.
    pub fn revocations_path(&self) -> PathBuf {
        self.auth
            .revocations
            .clone()
            .unwrap_or_else(|| self.data_dir.join("revoked-tokens.json"))
    }

    /// Verifies the tokens this instance accepts.
    pub fn authenticator(
        &self,
        secrets: &Secrets,
    ) -> Result<crate::auth::Authenticator, ConfigError> {
        use crate::auth::{Authenticator, TokenKey, TokenRules};
        let shared = match &secrets.token_key {
            TokenKey::Shared(secret) => Some((secret.as_slice(), self.auth.issuer.as_str())),
            TokenKey::Own(_) => None,
        };
        let trust = self.trust_set(secrets)?;
        // Providers' keys are fetched for as long as the authenticator lives;
        // their TLS is checked against the instance's CA when it has one.
        let ca = self.tls.ca.as_ref().and_then(|p| std::fs::read(p).ok());
        let followers = match tokio::runtime::Handle::try_current() {
            Ok(_) => trust.follow_providers(ca),
            Err(_) => vec![],
        };
        Ok(Authenticator::new(
            trust,
            shared,
            TokenRules {
                audience: self.auth.audience.clone(),
                leeway_secs: self.auth.leeway_secs,
                max_ttl_secs: i64::try_from(self.auth.max_token_ttl_secs).unwrap_or(i64::MAX),
            },
            crate::auth::revocation::DenyList::new(self.revocations_path()).map_err(|problem| {
                ConfigError::Invalid {
                    field: "auth.revocations",
                    problem,
                }
            })?,
        )
        .with_tasks(followers))
    }

    /// Mints this instance's tokens.
    pub fn token_issuer(
        &self,
        secrets: &Secrets,
    ) -> Result<crate::auth::TokenIssuer, crate::error::ServiceError> {
        crate::auth::TokenIssuer::with(&secrets.token_key, &self.auth.issuer, &self.auth.audience)
    }

    /// Decodes the keys. Outside development mode every key must be configured; in
    /// development mode missing keys are generated once and kept under `data_dir`, so
    /// a restart can still read what it encrypted.
    pub fn secrets(&self) -> Result<Secrets, ConfigError> {
        let dev_file = self.data_dir.join("dev-secrets.toml");
        let generated = if self.dev {
            Some(load_or_create_dev_secrets(&dev_file)?)
        } else {
            None
        };
        let pick = |configured: &Option<String>, field: &'static str, dev: Option<&String>| {
            configured
                .as_ref()
                .or(dev)
                .ok_or(ConfigError::Invalid {
                    field,
                    problem: "is required outside development mode (--dev)".into(),
                })
                .and_then(|v| {
                    B64.decode(v.trim()).map_err(|_| ConfigError::Invalid {
                        field,
                        problem: "is not valid base64".into(),
                    })
                })
        };
        let key_problem = |e: crate::auth::keys::KeyError| ConfigError::Invalid {
            field: "auth.signing_key",
            problem: e.to_string(),
        };
        let token_key = match self.signing_key_path() {
            Some(path) if self.auth.signing_key.is_none() => crate::auth::TokenKey::Own(Box::new(
                crate::auth::keys::load_or_create(&path).map_err(key_problem)?,
            )),
            Some(path) => crate::auth::TokenKey::Own(Box::new(
                crate::auth::keys::SigningKey::read(&path).map_err(key_problem)?,
            )),
            None => {
                let jwt_secret = pick(
                    &self.auth.jwt_secret,
                    "auth.jwt_secret",
                    generated.as_ref().map(|g| &g.jwt_secret),
                )
                .map_err(|e| match e {
                    ConfigError::Invalid { problem, .. } if problem.starts_with("is required") => {
                        ConfigError::Invalid {
                            field: "auth.signing_key",
                            problem: "is required outside development mode (--dev): the instance's own Ed25519 key (`sustain-registry keys`)".into(),
                        }
                    }
                    other => other,
                })?;
                if jwt_secret.len() < 32 {
                    return Err(ConfigError::Invalid {
                        field: "auth.jwt_secret",
                        problem: "must decode to at least 32 bytes".into(),
                    });
                }
                crate::auth::TokenKey::Shared(jwt_secret)
            }
        };
        let key32 = |bytes: Vec<u8>, field: &'static str| {
            <[u8; 32]>::try_from(bytes).map_err(|_| ConfigError::Invalid {
                field,
                problem: "must decode to exactly 32 bytes".into(),
            })
        };
        let previous = |keys: &[String], field: &'static str| {
            keys.iter()
                .map(|k| {
                    let bytes = B64.decode(k.trim()).map_err(|_| ConfigError::Invalid {
                        field,
                        problem: "holds a key that is not valid base64".into(),
                    })?;
                    key32(bytes, field)
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Secrets {
            token_key,
            previous_field_keys: previous(
                &self.crypto.previous_field_keys,
                "crypto.previous_field_keys",
            )?,
            previous_lookup_keys: previous(
                &self.crypto.previous_lookup_keys,
                "crypto.previous_lookup_keys",
            )?,
            field_key: key32(
                pick(
                    &self.crypto.field_key,
                    "crypto.field_key",
                    generated.as_ref().map(|g| &g.field_key),
                )?,
                "crypto.field_key",
            )?,
            lookup_key: key32(
                pick(
                    &self.crypto.lookup_key,
                    "crypto.lookup_key",
                    generated.as_ref().map(|g| &g.lookup_key),
                )?,
                "crypto.lookup_key",
            )?,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct DevSecrets {
    jwt_secret: String,
    field_key: String,
    lookup_key: String,
}

fn load_or_create_dev_secrets(path: &Path) -> Result<DevSecrets, ConfigError> {
    let io_err = |source| ConfigError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    if let Ok(text) = std::fs::read_to_string(path) {
        return toml_from_str(&text).ok_or(ConfigError::Invalid {
            field: "data_dir",
            problem: format!("{} is not a development secrets file", path.display()),
        });
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    let fresh = DevSecrets {
        jwt_secret: B64.encode(rand::random::<[u8; 32]>()),
        field_key: B64.encode(rand::random::<[u8; 32]>()),
        lookup_key: B64.encode(rand::random::<[u8; 32]>()),
    };
    let text = format!(
        "# Generated by --dev. Never use these keys for real data.\njwt_secret = \"{}\"\nfield_key = \"{}\"\nlookup_key = \"{}\"\n",
        fresh.jwt_secret, fresh.field_key, fresh.lookup_key
    );
    crate::auth::keys::write_private(path, &text).map_err(io_err)?;
    Ok(fresh)
}

fn toml_from_str(text: &str) -> Option<DevSecrets> {
    Figment::from(Toml::string(text)).extract().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_mode_refuses_a_public_address() {
        let args = ServeArgs {
            listen: Some("0.0.0.0:50051".parse().expect("addr")),
            dev: true,
            ..ServeArgs::default()
        };
        let err = Config::load("registry", 50051, &args).expect_err("refused");
        assert!(err.to_string().contains("`dev`"), "{err}");
    }

    #[test]
    fn dev_mode_refuses_public_reports_and_metrics_and_plain_reports_stay_local() {
        for (http, metrics) in [
            ("0.0.0.0:8054", None),
            ("127.0.0.1:8054", Some("0.0.0.0:9090")),
        ] {
            let mut config = Config::defaults(50051);
            config.dev = true;
            config.http_listen = http.parse().expect("addr");
            config.metrics_listen = metrics.map(|m| m.parse().expect("addr"));
            let err = config.validate().expect_err("refused");
            assert!(err.to_string().contains("`dev`"), "{err}");
        }
        let mut config = Config::defaults(50051);
        config.http_listen = "0.0.0.0:8054".parse().expect("addr");
        let err = config.validate().expect_err("plain text in the open");
        assert!(err.to_string().contains("http_listen"), "{err}");
        config.http_listen = "127.0.0.1:8054".parse().expect("addr");
        config.metrics_listen = Some("0.0.0.0:9090".parse().expect("addr"));
        config.database_url = "sqlite://registry.sqlite?mode=rwc".into();
        let allowed = config.validate();
        assert!(
            allowed.is_ok(),
            "metrics hold no personal data: {allowed:?}"
        );
    }

    #[test]
    fn a_development_instance_of_a_province_makes_its_own_signing_key_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::defaults(50051);
        config.dev = true;
        config.data_dir = dir.path().to_path_buf();
        config.sync.instance = "district-181".into();
        config.sync.scope = vec!["181".into()];
        let kid = |secrets: &Secrets| match &secrets.token_key {
            crate::auth::TokenKey::Own(key) => key.kid().to_owned(),
            crate::auth::TokenKey::Shared(_) => panic!("a shared secret beside sync"),
        };
        let first = kid(&config.secrets().expect("made"));
        assert_eq!(kid(&config.secrets().expect("read again")), first);
        let key = dir.path().join("keys/district-181.key");
        let jwks = std::fs::read_to_string(dir.path().join("keys/district-181.jwks.json"))
            .expect("published beside it");
        assert!(jwks.contains(&first));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).expect("key").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Its own tokens verify there, worth its district.
        let secrets = config.secrets().expect("keys");
        config.auth.issuer = "district-181".into();
        let token = config
            .token_issuer(&secrets)
            .expect("issuer")
            .issue(
                "dev-admin",
                crate::Role::Admin,
                &["*"],
                chrono::Duration::hours(1),
            )
            .expect("signed");
        let caller = config
            .authenticator(&secrets)
            .expect("authenticator")
            .verify(&token)
            .expect("valid");
        assert_eq!(caller.scope.codes(), ["181"]);
    }

    #[test]
    fn flags_override_file_and_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:7000\"\nlog_filter = \"debug\"\n",
        )
        .expect("write");
        let args = ServeArgs {
            config: Some(file.clone()),
            listen: Some("127.0.0.1:7001".parse().expect("addr")),
            ..ServeArgs::default()
        };
        let config = Config::load("registry", 50051, &args).expect("loads");
        assert_eq!(config.listen.port(), 7001, "flag beats file");
        assert_eq!(config.log_filter, "debug", "file beats default");
        assert!(config.database_url.ends_with("registry.sqlite?mode=rwc"));
    }

    #[test]
    fn a_peer_address_names_each_service_and_its_port() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[sync]\ninstance = \"district-181\"\nscope = [\"181\"]\n[sync.upstream]\nname = \"province\"\nurl = \"http://province-{service}:{port}\"\n",
        )
        .expect("write");
        let args = ServeArgs {
            config: Some(file),
            ..ServeArgs::default()
        };
        let url = |service: &str, port: u16| {
            Config::load(service, port, &args)
                .expect("loads")
                .sync
                .upstream
                .expect("upstream")
                .url
        };
        assert_eq!(url("registry", 50051), "http://province-registry:50051");
        assert_eq!(url("ledger", 50053), "http://province-ledger:50053");
    }

    #[test]
    fn unknown_keys_and_missing_secrets_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listn = \"127.0.0.1:7000\"\n").expect("write");
        let args = ServeArgs {
            config: Some(file),
            ..ServeArgs::default()
        };
        assert!(
            Config::load("registry", 50051, &args).is_err(),
            "typo is refused"
        );

        let config = Config::defaults(50051);
        let err = config.secrets().expect_err("no keys outside dev");
        assert!(err.to_string().contains("auth.signing_key"), "{err}");
    }

    #[test]
    fn dev_secrets_are_generated_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::defaults(50051);
        config.dev = true;
        config.data_dir = dir.path().to_path_buf();
        let first = config.secrets().expect("generated");
        let second = config.secrets().expect("reloaded");
        assert_eq!(first.field_key, second.field_key);
        let (crate::auth::TokenKey::Shared(a), crate::auth::TokenKey::Shared(b)) =
            (&first.token_key, &second.token_key)
        else {
            panic!("development mode signs with a generated HS256 secret");
        };
        assert_eq!(a, b);
    }
}
