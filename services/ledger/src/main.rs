//! `sustain-ledger`: serve the funding ledger, migrate its database, mint a
//! token, or load the demo's money through a running ledger.

use anyhow::Context;
use clap::{Parser, Subcommand};
use sustain_ledger::{DEFAULT_PORT, SERVICE};
use sustain_platform::auth::Duration;
use sustain_platform::cli::{Binary, Common, ResealArgs, issuer};
use sustain_platform::config::{Config, ServeArgs};
use sustain_platform::reseal::Answers;
use sustain_platform::serve::shutdown_signal;
use sustain_platform::{Role, telemetry};

const BINARY: Binary = Binary {
    service: SERVICE,
    default_port: DEFAULT_PORT,
    role: Role::Finance,
    dev_role: Role::Finance,
    database: "ledger",
};

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
    #[command(flatten)]
    Common(Common),
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
            BINARY
                .serve(
                    &args,
                    |_, addr| format!("sustain-ledger (development mode) on {addr}"),
                    |config, secrets, listener| async move {
                        sustain_ledger::run(&config, &secrets, listener, shutdown_signal()).await
                    },
                )
                .await
        }
        Command::Migrate(args) => {
            BINARY
                .migrate(&args, |url| async move {
                    sustain_ledger::connect_and_migrate(&url).await
                })
                .await
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
        Command::Reseal(r) => {
            let (config, secrets) = r.load(SERVICE, DEFAULT_PORT)?;
            let db = sustain_ledger::connect_and_migrate(&config.database_url).await?;
            r.run(&db, &[&Answers(secrets.cipher())]).await
        }
        Command::Common(c) => BINARY.common(c).await,
    }
}
