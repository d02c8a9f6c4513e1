//! `sustain-gateway`: serve the reporting gateway, or mint a token.

use anyhow::Context;
use clap::{Parser, Subcommand};
use sustain_gateway::{DEFAULT_PORT, SERVICE};
use sustain_platform::cli::{DevCertsArgs, HealthArgs, KeysArgs, RevokeArgs, TokenArgs, dev_token};
use sustain_platform::config::{Config, ServeArgs};
use sustain_platform::{Role, telemetry};

#[derive(Debug, Parser)]
#[command(name = "sustain-gateway", version, about = "Sustain reporting gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC until SIGINT/SIGTERM.
    Serve(ServeArgs),
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => {
            let config = Config::load(SERVICE, DEFAULT_PORT, &args)?;
            let telemetry = telemetry::for_service(&config, SERVICE)?;
            let secrets = config.secrets()?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            let http = tokio::net::TcpListener::bind(config.http_listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.http_listen))?;
            if config.dev {
                let token = dev_token(&config, &secrets, Role::Admin)?;
                println!(
                    "sustain-gateway (development mode) on {}, report page at http://{}/reports?unit_code=20&from_year=2021&to_year=2024",
                    listener.local_addr()?,
                    http.local_addr()?
                );
                println!("admin token (12 h, whole country):\n{token}");
            }
            let served = sustain_gateway::run(
                &config,
                &secrets,
                listener,
                http,
                sustain_platform::serve::shutdown_signal(),
            )
            .await;
            telemetry.shutdown();
            served
        }
        Command::Token(t) => t.print(SERVICE, DEFAULT_PORT, Role::Viewer),
        Command::DevCerts(d) => d.run(),
        Command::Keys(k) => k.run(),
        Command::Revoke(r) => r.run(SERVICE, DEFAULT_PORT),
        Command::Health(h) => h.run(SERVICE, DEFAULT_PORT).await,
    }
}
