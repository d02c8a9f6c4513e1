//! `sustain-ledger`: serve the funding ledger, migrate its database, mint a
//! token, or load the demo's money through a running ledger.

use anyhow::Context;
use clap::{Parser, Subcommand};
use sustain_ledger::{DEFAULT_PORT, SERVICE};
use sustain_platform::auth::Duration;
use sustain_platform::cli::{
    DevCertsArgs, HealthArgs, KeysArgs, ResealArgs, RevokeArgs, TokenArgs, dev_token, issuer,
};
use sustain_platform::config::{Config, ServeArgs};
use sustain_platform::reseal::Answers;
use sustain_platform::{Role, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "sustain-ledger",
    version,
    about = "Sustain funding ledger service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC until SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(ServeArgs),
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
    /// After a field-key rotation, seal the stored answers of retried
    /// requests again with the current key; resumable.
    Reseal(ResealArgs),
    /// Write the money side of the Lạng Sơn demo through the running ledger,
    /// then compare the province's funding summary with the report and
    /// verify the chain. Running it twice writes nothing new.
    Demo {
        #[command(flatten)]
        args: ServeArgs,
        /// The ledger's gRPC address.
        #[arg(long, default_value = "http://127.0.0.1:50053")]
        ledger: String,
        #[arg(long, default_value_t = sustain_ledger::demo::DEFAULT_SEED)]
        seed: u64,
        /// Divide every amount by this, as `sustain up --demo-scale` does.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        scale: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(SERVICE, DEFAULT_PORT, &args)?;
            let telemetry = telemetry::for_service(&config, SERVICE)?;
            let secrets = config.secrets()?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            if config.dev {
                let token = dev_token(&config, &secrets, Role::Finance)?;
                println!(
                    "sustain-ledger (development mode) on {}",
                    listener.local_addr()?
                );
                println!("finance token (12 h, whole country):\n{token}");
            }
            let served = sustain_ledger::run(
                &config,
                &secrets,
                listener,
                sustain_platform::serve::shutdown_signal(),
            )
            .await;
            telemetry.shutdown();
            served
        }
        Command::Migrate(args) => {
            let config = Config::load(SERVICE, DEFAULT_PORT, &args)?;
            telemetry::init(config.log_format, &config.log_filter);
            sustain_ledger::connect_and_migrate(&config.database_url).await?;
            println!("ledger database is up to date");
            Ok(())
        }
        Command::Demo {
            args,
            ledger,
            seed,
            scale,
        } => {
            let config = Config::load(SERVICE, DEFAULT_PORT, &args)?;
            telemetry::init(config.log_format, "warn");
            let secrets = config.secrets()?;
            let token = issuer(&config, &secrets)?.issue(
                "demo",
                Role::Finance,
                &["*"],
                Duration::hours(2),
            )?;
            let channel = tonic::transport::Endpoint::from_shared(ledger.clone())?
                .connect()
                .await
                .with_context(|| format!("cannot reach {ledger}"))?;
            let mut clients = sustain_ledger::demo::Clients::new(channel, &token)?;
            let started = std::time::Instant::now();
            let report = sustain_ledger::demo::load(&mut clients, seed, scale, true).await?;
            println!(
                "demo (seed {seed}): {} accounts, {} transfers in {:.1} s",
                report.accounts,
                report.transfers,
                started.elapsed().as_secs_f64()
            );
            let (rows, verified) = sustain_ledger::demo::compare(&mut clients, scale).await?;
            println!(
                "{:<36} {:>12} {:>12}",
                "Lạng Sơn 2021–2025", "reported", "summary"
            );
            let mut differ = 0;
            for (label, wanted, found) in rows {
                // A divided amount may land a million either side.
                let same = (wanted - found).abs() <= i64::from(scale > 1);
                let mark = if same { "" } else { "  ← differs" };
                differ += usize::from(!same);
                println!("{label:<36} {wanted:>12} {found:>12}{mark}");
            }
            println!("chain verifies: {}", if verified { "yes" } else { "NO" });
            anyhow::ensure!(differ == 0, "{differ} figure(s) differ from the report");
            anyhow::ensure!(verified, "the chain does not verify");
            Ok(())
        }
        Command::Token(t) => t.print(SERVICE, DEFAULT_PORT, Role::Finance),
        Command::DevCerts(d) => d.run(),
        Command::Keys(k) => k.run(),
        Command::Revoke(r) => r.run(SERVICE, DEFAULT_PORT),
        Command::Reseal(r) => {
            let (config, secrets) = r.load(SERVICE, DEFAULT_PORT)?;
            let db = sustain_ledger::connect_and_migrate(&config.database_url).await?;
            r.run(&db, &[&Answers(secrets.cipher())]).await
        }
        Command::Health(h) => h.run(SERVICE, DEFAULT_PORT).await,
    }
}
