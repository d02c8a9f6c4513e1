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
