//! `sustain-gateway`: serve the reporting gateway, or mint a token.

use anyhow::Context;
use clap::{Parser, Subcommand};
use sustain_gateway::{DEFAULT_PORT, SERVICE};
use sustain_platform::Role;
use sustain_platform::cli::{Binary, Common};
use sustain_platform::config::ServeArgs;
use sustain_platform::serve::shutdown_signal;

const BINARY: Binary = Binary {
    service: SERVICE,
    default_port: DEFAULT_PORT,
    role: Role::Viewer,
    dev_role: Role::Admin,
    database: "gateway",
};

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
    #[command(flatten)]
    Common(Common),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => {
            let config = BINARY.config(&args)?;
            let http = tokio::net::TcpListener::bind(config.http_listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.http_listen))?;
            let pages = http.local_addr()?;
            BINARY
                .serve(
                    &args,
                    |_, addr| {
                        format!(
                            "sustain-gateway (development mode) on {addr}, report page at http://{pages}/reports?unit_code=20&from_year=2021&to_year=2024"
                        )
                    },
                    |config, secrets, listener| async move {
                        sustain_gateway::run(&config, &secrets, listener, http, shutdown_signal())
                            .await
                    },
                )
                .await
        }
        Command::Common(c) => BINARY.common(c).await,
    }
}
