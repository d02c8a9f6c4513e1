//! `sustain-registry`: serve the registry, migrate its database, mint a token,
//! import a household file through a running registry, or load the demo dataset.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sustain_platform::cli::{Binary, Common, ResealArgs};
use sustain_platform::config::{Config, ServeArgs};
use sustain_platform::reseal::Answers;
use sustain_platform::serve::shutdown_signal;
use sustain_platform::{Role, telemetry};
use sustain_registry::{DEFAULT_PORT, SERVICE};
use sustain_sync::reseal::Conflicts;

const BINARY: Binary = Binary {
    service: SERVICE,
    default_port: DEFAULT_PORT,
    role: Role::Admin,
    dev_role: Role::Admin,
    database: "registry",
};

#[derive(Debug, Parser)]
#[command(
    name = "sustain-registry",
    version,
    about = "Sustain household registry service"
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
    /// After a key rotation: seal members' fields, their lookup hashes and
    /// old household versions again with the current keys (resumable).
    Reseal(ResealArgs),
    /// Import households and reviews from a CSV or XLSX file through a running
    /// registry's ImportHouseholds stream; rejected rows go to a CSV with reasons.
    Import {
        /// The .csv or .xlsx file (layout: docs/import-format.md).
        file: PathBuf,
        /// The registry's gRPC address.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        server: String,
        /// Bearer token of an approver or admin (see `token`); or SUSTAIN_TOKEN.
        #[arg(long, env = "SUSTAIN_TOKEN", hide_env_values = true)]
        token: String,
        /// Where to write the rejected rows; default: FILE with `.rejected.csv`.
        #[arg(long)]
        rejected: Option<PathBuf>,
        /// Households per batch (each batch is committed and acknowledged).
        #[arg(long, default_value_t = sustain_clients::import_client::DEFAULT_BATCH)]
        batch: usize,
        /// Largest batch in bytes: keep it under the registry's
        /// `limits.max_request_bytes` (4 MiB unless set otherwise).
        #[arg(long, default_value_t = sustain_clients::import_client::DEFAULT_BATCH_BYTES)]
        batch_bytes: usize,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// With a registry speaking mutual TLS: this client's certificate,
        /// its key and the CA (PEM files).
        #[arg(long, requires_all = ["tls_key", "tls_ca"])]
        tls_cert: Option<PathBuf>,
        #[arg(long, requires_all = ["tls_cert", "tls_ca"])]
        tls_key: Option<PathBuf>,
        #[arg(long, requires_all = ["tls_cert", "tls_key"])]
        tls_ca: Option<PathBuf>,
    },
    /// Load the synthetic Lạng Sơn (2021–2024 reviews, the province's reported
    /// figures) into the configured database, then print its summaries. Loading
    /// twice changes nothing. With --out, write the import file instead.
    Demo {
        #[command(flatten)]
        args: ServeArgs,
        #[arg(long, default_value_t = sustain_clients::demo::DEFAULT_SEED)]
        seed: u64,
        /// Households in 2021 (1 to 5,000,000); the figures scale with it.
        #[arg(long, default_value_t = sustain_clients::demo::LANG_SON[0].households,
              value_parser = clap::value_parser!(u64).range(1..=5_000_000))]
        households: u64,
        /// Write the dataset as an import CSV here instead of loading it.
        #[arg(long)]
        out: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
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
                    |_, addr| format!("sustain-registry (development mode) on {addr}"),
                    |config, secrets, listener| async move {
                        sustain_registry::run(&config, &secrets, listener, shutdown_signal()).await
                    },
                )
                .await
        }
        Command::Migrate(args) => {
            BINARY
                .migrate(&args, |url| async move {
                    sustain_registry::connect_and_migrate(&url).await
                })
                .await
        }
        Command::Reseal(r) => {
            let (config, secrets) = r.load(SERVICE, DEFAULT_PORT)?;
            let db = sustain_registry::connect_and_migrate(&config.database_url).await?;
            let vault = sustain_registry::store::Vault {
                cipher: secrets.cipher(),
                hasher: secrets.hasher(),
            };
            let members = sustain_registry::store::reseal::Members(vault.clone());
            let versions = sustain_registry::store::reseal::Versions(vault.clone());
            let answers = Answers(secrets.cipher());
            let conflicts = Conflicts(std::sync::Arc::new(
                sustain_registry::replica::RegistryReplica { vault },
            ));
            r.run(&db, &[&members, &versions, &answers, &conflicts])
                .await
        }
        Command::Import {
            file,
            server,
            token,
            rejected,
            batch,
            batch_bytes,
            quiet,
            tls_cert,
            tls_key,
            tls_ca,
        } => {
            let rejected_file = rejected.unwrap_or_else(|| file.with_extension("rejected.csv"));
            let tls = sustain_platform::tls::TlsConfig {
                cert: tls_cert,
                key: tls_key,
                ca: tls_ca,
            }
            .load()?;
            let imported = sustain_clients::import_client::import(
                sustain_clients::import_client::ImportOptions {
                    file: &file,
                    server: &server,
                    token: &token,
                    rejected_file: rejected_file.clone(),
                    batch_size: batch,
                    batch_bytes,
                    progress: !quiet,
                    tls: tls.as_ref(),
                },
            )
            .await;
            let report = match imported {
                Ok(report) => report,
                Err(e) => {
                    if let Some(partial) =
                        e.downcast_ref::<sustain_clients::import_client::Incomplete>()
                        && partial.done.rejected > 0
                    {
                        eprintln!("rejected rows and reasons: {}", rejected_file.display());
                    }
                    return Err(e);
                }
            };
            println!(
                "{} households: {} accepted, {} unchanged, {} rejected; {} reviews written",
                report.households,
                report.accepted,
                report.unchanged,
                report.rejected,
                report.reviews_written
            );
            // Scripts notice: any rejected row makes the import fail, and
            // the last line says so.
            if report.rejected > 0 {
                eprintln!(
                    "import incomplete: {} of {} households rejected; the rows and their reasons are in {}",
                    report.rejected,
                    report.households,
                    rejected_file.display()
                );
                std::process::exit(2);
            }
            Ok(())
        }
        Command::Demo {
            args,
            seed,
            households,
            out,
            quiet,
        } => {
            let config = Config::load(SERVICE, DEFAULT_PORT, &args)?;
            telemetry::init(config.log_format, "warn");
            sustain_registry::demo_cli::run(&config, seed, households, out.as_deref(), !quiet).await
        }
        Command::Common(c) => BINARY.common(c).await,
    }
}
