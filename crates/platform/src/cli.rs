//! What every service binary's command line shares: the `token` command and
//! the development token `serve --dev` prints.

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
        let config = Config::load(service, default_port, &self.args)?;
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

pub fn issuer(config: &Config, secrets: &Secrets) -> anyhow::Result<TokenIssuer> {
    Ok(TokenIssuer::new(
        &secrets.jwt_secret,
        &config.auth.issuer,
        &config.auth.audience,
    )?)
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
    /// The service's gRPC address (default: this service's port on loopback).
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
    /// Asks `grpc.health.v1.Health/Check`; `Ok(true)` when it says SERVING.
    /// Prints the answer or why there is none.
    pub async fn probe(&self, default_port: u16) -> bool {
        let addr = self
            .addr
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{default_port}"));
        let url = if addr.contains("://") {
            addr
        } else {
            format!("http://{addr}")
        };
        let timeout = std::time::Duration::from_millis(self.timeout_ms);
        let asked = async {
            let channel = tonic::transport::Endpoint::from_shared(url.clone())?
                .connect_timeout(timeout)
                .connect()
                .await?;
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
