//! What every service binary's command line shares: `serve` and `migrate`
//! ([`Binary`]), `token`, `health`, `dev-certs`, `keys`, `revoke` ([`Common`]),
//! and the development token `serve --dev` prints.

use crate::Role;
use crate::auth::{Duration, TokenIssuer};
use crate::config::{Config, Secrets, ServeArgs};

/// `token`: print a bearer token signed with the configured key.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub args: ServeArgs,
    /// The token's role (default: the service's usual caller).
    #[arg(long, value_enum)]
    pub role: Option<Role>,
    /// Unit codes the token may reach (`*` for the whole country).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub scope: Vec<String>,
    #[arg(long, default_value = "operator")]
    pub subject: String,
    #[arg(long, default_value_t = 12)]
    pub ttl_hours: i64,
}

impl TokenArgs {
    /// Mints the token for `service` and prints it.
    pub fn print(
        &self,
        service: &str,
        default_port: u16,
        default_role: Role,
    ) -> anyhow::Result<()> {
        let mut config = Config::load(service, default_port, &self.args)?;
        if config.dev {
            // New keys here would sign tokens the running suite rejects:
            // use the suite's, or say where they were looked for.
            config.data_dir = dev_keys_dir(&config.data_dir, self.args.data_dir.is_some())?;
        }
        let secrets = config.secrets()?;
        let scope: Vec<&str> = self.scope.iter().map(String::as_str).collect();
        let token = issuer(&config, &secrets)?.issue(
            &self.subject,
            self.role.unwrap_or(default_role),
            &scope,
            Duration::hours(self.ttl_hours),
        )?;
        println!("{token}");
        Ok(())
    }
}

/// The file a development server keeps its generated keys in.
const DEV_KEYS: &str = "dev-secrets.toml";

/// Where a development server's keys are: `data_dir` when they are there;
/// otherwise, unless the directory was given outright, the nearest `data`
/// directory above the current one that holds them (a token asked for from
/// a subdirectory of the checkout). Never a new directory: the error names
/// every place looked.
pub fn dev_keys_dir(data_dir: &std::path::Path, given: bool) -> anyhow::Result<std::path::PathBuf> {
    if data_dir.join(DEV_KEYS).is_file() {
        return Ok(data_dir.to_path_buf());
    }
    let mut looked = vec![std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf())];
    if !given && let Ok(here) = std::env::current_dir() {
        for dir in here.ancestors().skip(1) {
            let candidate = dir.join(data_dir);
            if candidate.join(DEV_KEYS).is_file() {
                eprintln!("using the development keys in {}", candidate.display());
                return Ok(candidate);
            }
            looked.push(candidate);
        }
    }
    anyhow::bail!(
        "no development keys ({DEV_KEYS}) in {}: run this where `sustain up --dev` (or `serve --dev`) runs, or pass its --data-dir",
        looked
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub fn issuer(config: &Config, secrets: &Secrets) -> anyhow::Result<TokenIssuer> {
    Ok(config.token_issuer(secrets)?)
}

/// The 12-hour, whole-country token a development server prints, named
/// `dev-<role>`.
pub fn dev_token(config: &Config, secrets: &Secrets, role: Role) -> anyhow::Result<String> {
    Ok(issuer(config, secrets)?.issue(
        &format!("dev-{}", role.as_str()),
        role,
        &["*"],
        Duration::hours(12),
    )?)
}

/// `health`: ask a running service whether it serves, for container probes.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    /// The configuration the service runs with: its port, and its TLS
    /// certificate, which the probe presents.
    #[command(flatten)]
    pub args: ServeArgs,
    /// The service's gRPC address (default: its configured port on loopback).
    #[arg(long)]
    pub addr: Option<String>,
    /// The gRPC service to ask about; empty: the server as a whole.
    #[arg(long, default_value = "")]
    pub service: String,
    /// How long to wait for the answer.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

impl HealthArgs {
    /// The `health` command: exits 0 on SERVING, 1 otherwise.
    pub async fn run(&self, service: &str, default_port: u16) -> anyhow::Result<()> {
        if self.probe(service, default_port).await {
            Ok(())
        } else {
            std::process::exit(1)
        }
    }

    /// Asks `grpc.health.v1.Health/Check`; `Ok(true)` when it says SERVING.
    /// Prints the answer or why there is none.
    pub async fn probe(&self, service: &str, default_port: u16) -> bool {
        let config = match Config::load(service, default_port, &self.args) {
            Ok(c) => c,
            Err(e) => {
                println!("{e}");
                return false;
            }
        };
        let addr = self
            .addr
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{}", config.listen.port()));
        let url = if addr.contains("://") {
            addr
        } else {
            format!("http://{addr}")
        };
        let timeout = std::time::Duration::from_millis(self.timeout_ms);
        let asked = async {
            let tls = config.tls.load()?;
            // The certificate names localhost (`dev-certs` always adds it).
            let endpoint = crate::tls::endpoint(&url, tls.as_ref())?;
            let endpoint = match &tls {
                Some(tls) => endpoint.tls_config(tls.client().domain_name("localhost"))?,
                None => endpoint,
            };
            let channel = endpoint.connect_timeout(timeout).connect().await?;
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            let answer = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: self.service.clone(),
                })
                .await?
                .into_inner();
            anyhow::Ok(answer.status)
        };
        match tokio::time::timeout(timeout, asked).await {
            Ok(Ok(status)) => {
                let status =
                    tonic_health::pb::health_check_response::ServingStatus::try_from(status)
                        .map(|s| s.as_str_name())
                        .unwrap_or("UNKNOWN");
                println!("{url}: {status}");
                status == "SERVING"
            }
            Ok(Err(e)) => {
                println!("{url}: no answer: {e:#}");
                false
            }
            Err(_) => {
                println!("{url}: no answer within {} ms", self.timeout_ms);
                false
            }
        }
    }
}

/// `keys`: an instance's own Ed25519 token signing key and the JWKS its
/// peers trust it by.
#[derive(Debug, Clone, clap::Args)]
pub struct KeysArgs {
    /// The instance (its tokens' issuer); the files are NAME.key and
    /// NAME.jwks.json.
    #[arg(long)]
    pub instance: String,
    /// Directory to write them to.
    #[arg(long, default_value = "keys")]
    pub out: std::path::PathBuf,
    /// Make a new key although one exists. The old public key stays in the
    /// JWKS, so tokens it signed verify until they expire; drop it from the
    /// file once they have.
    #[arg(long)]
    pub rotate: bool,
    /// Also put the JWKS (and, with --tls-host, the CA certificate) here,
    /// where the instances that trust this one read it.
    #[arg(long)]
    pub publish: Option<std::path::PathBuf>,
    /// Also write the instance's development TLS certificate (tls.pem,
    /// tls.key, ca.pem in --out), named for the instance and these hosts and
    /// signed by the development CA in --ca (made there when absent).
    #[arg(long = "tls-host", requires = "ca")]
    pub tls_hosts: Vec<String>,
    /// The development CA's directory (ca.pem, ca.key), for --tls-host.
    #[arg(long)]
    pub ca: Option<std::path::PathBuf>,
}

impl KeysArgs {
    pub fn run(&self) -> anyhow::Result<()> {
        use crate::auth::keys::{self, SigningKey};
        let name = self.instance.trim();
        anyhow::ensure!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "--instance must be a name of letters, digits, - and _"
        );
        let key_path = self.out.join(format!("{name}.key"));
        let jwks_path = keys::jwks_beside(&key_path);
        let held = if key_path.exists() {
            Some(SigningKey::read(&key_path)?)
        } else {
            None
        };
        let mut published = match std::fs::read_to_string(&jwks_path) {
            Ok(text) => {
                serde_json::from_str::<jsonwebtoken::jwk::JwkSet>(&text)
                    .map_err(|e| anyhow::anyhow!("{}: is not a JWKS: {e}", jwks_path.display()))?
                    .keys
            }
            Err(_) => vec![],
        };
        let key = match held {
            Some(key) if !self.rotate => {
                println!("kept {} (key {})", key_path.display(), key.kid());
                key
            }
            _ => {
                let key = SigningKey::generate();
                keys::write_private(&key_path, &key.to_pem()?)?;
                println!(
                    "wrote {} (key {}, readable by its owner only)",
                    key_path.display(),
                    key.kid()
                );
                key
            }
        };
        if !published
            .iter()
            .any(|k| k.common.key_id.as_deref() == Some(key.kid()))
        {
            published.insert(0, key.public());
        }
        let jwks = keys::jwks_json(&published);
        keys::write_public(&jwks_path, &jwks)?;
        println!("wrote {} ({} key(s))", jwks_path.display(), published.len());
        if let Some(dir) = &self.publish {
            let path = dir.join(format!("{name}.jwks.json"));
            keys::write_public(&path, &jwks)?;
            println!("published {}", path.display());
        }
        if let (Some(ca), false) = (&self.ca, self.tls_hosts.is_empty()) {
            let mut hosts = vec![name.to_owned()];
            hosts.extend(self.tls_hosts.iter().cloned());
            let (pem, key) = (self.out.join("tls.pem"), self.out.join("tls.key"));
            if !pem.exists() || self.rotate {
                crate::tls::dev_certificate(ca, name, &hosts, &pem, &key)?;
                println!(
                    "wrote {} for {} (development CA in {})",
                    pem.display(),
                    hosts.join(", "),
                    ca.display()
                );
            }
            let ca_pem = std::fs::read_to_string(ca.join("ca.pem"))?;
            keys::write_public(&self.out.join("ca.pem"), &ca_pem)?;
            if let Some(dir) = &self.publish {
                keys::write_public(&dir.join("ca.pem"), &ca_pem)?;
            }
        }
        println!(
            "[auth] signing_key = \"{}\"   # this instance; give {} to the instances that trust it",
            key_path.display(),
            jwks_path.display()
        );
        Ok(())
    }
}

/// `revoke`: refuse a token, or every token of a subject issued so far,
/// before they expire, on every service of the instance.
#[derive(Debug, Clone, clap::Args)]
pub struct RevokeArgs {
    /// The instance's configuration: where its list lies (`auth.revocations`).
    #[command(flatten)]
    pub args: ServeArgs,
    /// The token's id (its `jti` claim).
    #[arg(long, required_unless_present_any = ["subject", "list"])]
    pub jti: Option<String>,
    /// Every token of this subject issued until now.
    #[arg(long, conflicts_with = "jti")]
    pub subject: Option<String>,
    /// Whose subject (an issuer's name); default: any issuer's.
    #[arg(long, requires = "subject")]
    pub issuer: Option<String>,
    /// Why: kept with the entry and shown to the caller refused.
    #[arg(long, default_value = "revoked by an operator")]
    pub reason: String,
    /// Print the list instead.
    #[arg(long)]
    pub list: bool,
}

impl RevokeArgs {
    pub fn run(&self, service: &str, default_port: u16) -> anyhow::Result<()> {
        use crate::auth::revocation::{DenyFile, Revoked};
        let config = Config::load(service, default_port, &self.args)?;
        let path = config.revocations_path();
        let mut list = DenyFile::read(&path).map_err(anyhow::Error::msg)?;
        if !self.list {
            list.revoked.push(Revoked {
                jti: self.jti.clone().unwrap_or_default(),
                subject: self.subject.clone().unwrap_or_default(),
                issuer: self.issuer.clone().unwrap_or_default(),
                at: chrono::Utc::now().timestamp(),
                reason: self.reason.clone(),
            });
            list.write(&path).map_err(anyhow::Error::msg)?;
            println!(
                "revoked; every service reading {} refuses it within a second",
                path.display()
            );
        }
        for r in &list.revoked {
            let what = if r.jti.is_empty() {
                format!(
                    "subject {} of {}",
                    r.subject,
                    if r.issuer.is_empty() {
                        "any issuer"
                    } else {
                        &r.issuer
                    }
                )
            } else {
                format!("token {}", r.jti)
            };
            let at = chrono::DateTime::from_timestamp(r.at, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            println!("{at}  {what}: {}", r.reason);
        }
        Ok(())
    }
}

/// `reseal`: after a key rotation, seal again with the current keys what the
/// previous ones sealed; resumable, with progress.
#[derive(Debug, Clone, clap::Args)]
pub struct ResealArgs {
    /// The configuration the service runs with: its database and keys.
    #[command(flatten)]
    pub args: ServeArgs,
    /// Rows per transaction.
    #[arg(long, default_value_t = 500)]
    pub batch: u64,
    /// Start over although an earlier reseal finished.
    #[arg(long)]
    pub restart: bool,
}

impl ResealArgs {
    /// The configuration and keys of `service`, with logging set up.
    pub fn load(&self, service: &str, default_port: u16) -> anyhow::Result<(Config, Secrets)> {
        let config = Config::load(service, default_port, &self.args)?;
        crate::telemetry::init(config.log_format, &config.log_filter);
        let secrets = config.secrets()?;
        Ok((config, secrets))
    }

    /// Runs `tables` on `db`, printing progress; a run stopped at any point
    /// goes on where it stood when run again.
    pub async fn run(
        &self,
        db: &sea_orm::DatabaseConnection,
        tables: &[&dyn crate::reseal::Table],
    ) -> anyhow::Result<()> {
        let mut last = std::time::Instant::now();
        let done = crate::reseal::run(db, tables, self.batch, self.restart, |p| {
            if p.finished || last.elapsed() >= std::time::Duration::from_secs(2) {
                last = std::time::Instant::now();
                let percent = if p.total > 0 {
                    100 * p.done / p.total
                } else {
                    100
                };
                println!(
                    "{}: {} of {} rows ({percent}%), {} sealed again{}",
                    p.job,
                    p.done,
                    p.total,
                    p.changed,
                    if p.finished { ", done" } else { "" }
                );
            }
        })
        .await?;
        println!(
            "reseal finished: {} table(s); the previous keys may now be dropped from crypto.previous_* once the outbox no longer needs them (docs/operations.md)",
            done.len()
        );
        Ok(())
    }
}

/// `dev-certs`: a development CA and a certificate signed by it.
#[derive(Debug, Clone, clap::Args)]
pub struct DevCertsArgs {
    /// Directory for ca.pem, ca.key (made once, then reused), NAME.pem, NAME.key.
    #[arg(long, default_value = "certs")]
    pub out: std::path::PathBuf,
    /// The certificate's name (its file names and common name).
    #[arg(long, default_value = "sustain")]
    pub name: String,
    /// Host names and addresses it is valid for (repeat; localhost and
    /// 127.0.0.1 are always added).
    #[arg(long = "host")]
    pub hosts: Vec<String>,
}

impl DevCertsArgs {
    pub fn run(&self) -> anyhow::Result<()> {
        for path in crate::tls::dev_certs(&self.out, &self.name, &self.hosts)? {
            println!("wrote {}", path.display());
        }
        println!(
            "[tls] cert = \"{0}/{1}.pem\", key = \"{0}/{1}.key\", ca = \"{0}/ca.pem\"  (development only)",
            self.out.display(),
            self.name
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_token_is_signed_with_the_suites_keys_or_not_at_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("elsewhere");
        let err = dev_keys_dir(&empty, true).expect_err("no keys there");
        assert!(err.to_string().contains("elsewhere"), "{err}");
        assert!(!empty.exists(), "nothing is made where nothing was");
        let suite = dir.path().join("data");
        std::fs::create_dir_all(&suite).expect("dir");
        std::fs::write(suite.join(DEV_KEYS), "").expect("keys");
        assert_eq!(dev_keys_dir(&suite, true).expect("found"), suite);
    }
}

/// The commands every service binary has beside `serve`, `migrate` and its
/// own: flattened into each binary's command line.
#[derive(Debug, clap::Subcommand)]
pub enum Common {
    /// Print a bearer token signed with the configured key.
    Token(TokenArgs),
    /// Ask a running service whether it serves (exit 0) or not (exit 1): the
    /// containers' readiness and liveness probe.
    Health(HealthArgs),
    /// Write a development CA and a certificate it signed, for `[tls]`.
    DevCerts(DevCertsArgs),
    /// Write this instance's token signing key and its public JWKS, or rotate it.
    Keys(KeysArgs),
    /// Revoke a token (by jti) or a subject's tokens before they expire.
    Revoke(RevokeArgs),
}

/// One service binary, as the commands every binary has need it: its
/// configuration section, default port, the role of its development token,
/// and what its database is called in messages.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    pub service: &'static str,
    pub default_port: u16,
    /// The role `token` gives unless told otherwise.
    pub role: Role,
    /// The role of the token `serve --dev` prints.
    pub dev_role: Role,
    /// "registry": "registry database is up to date".
    pub database: &'static str,
}

impl Binary {
    pub fn config(&self, args: &ServeArgs) -> anyhow::Result<Config> {
        Ok(Config::load(self.service, self.default_port, args)?)
    }

    /// `serve`: the configuration, telemetry, the listener on `listen`; in
    /// development mode `banner` (given where it listens) and a development
    /// token; then `run` until SIGINT or SIGTERM.
    pub async fn serve<Fut>(
        &self,
        args: &ServeArgs,
        banner: impl FnOnce(&Config, std::net::SocketAddr) -> String,
        run: impl FnOnce(Config, Secrets, tokio::net::TcpListener) -> Fut,
    ) -> anyhow::Result<()>
    where
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        use anyhow::Context;
        let config = self.config(args)?;
        let telemetry = crate::telemetry::for_service(&config, self.service)?;
        let secrets = config.secrets()?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        if config.dev {
            let token = dev_token(&config, &secrets, self.dev_role)?;
            println!("{}", banner(&config, listener.local_addr()?));
            println!(
                "{} token (12 h, whole country):\n{token}",
                self.dev_role.as_str()
            );
        }
        let served = run(config, secrets, listener).await;
        telemetry.shutdown();
        served
    }

    /// `migrate`: brings the database up to date with `migrate` and says so.
    pub async fn migrate<Fut, T>(
        &self,
        args: &ServeArgs,
        migrate: impl FnOnce(String) -> Fut,
    ) -> anyhow::Result<()>
    where
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        let config = self.config(args)?;
        crate::telemetry::init(config.log_format, &config.log_filter);
        migrate(config.database_url.clone()).await?;
        println!("{} database is up to date", self.database);
        Ok(())
    }

    /// The commands every binary has.
    pub async fn common(&self, command: Common) -> anyhow::Result<()> {
        match command {
            Common::Token(t) => t.print(self.service, self.default_port, self.role),
            Common::Health(h) => h.run(self.service, self.default_port).await,
            Common::DevCerts(d) => d.run(),
            Common::Keys(k) => k.run(),
            Common::Revoke(r) => r.run(self.service, self.default_port),
        }
    }
}
