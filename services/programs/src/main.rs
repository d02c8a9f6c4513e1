//! `sustain-programs`: serve the programmes service, migrate its database, mint
//! a token, or load the demo programme data through running services.

use anyhow::Context;
use clap::{Parser, Subcommand};
use sustain_platform::auth::Duration;
use sustain_platform::cli::{Binary, Common, ResealArgs, issuer};
use sustain_platform::config::{Config, ServeArgs};
use sustain_platform::reseal::Answers;
use sustain_platform::serve::shutdown_signal;
use sustain_platform::{Role, telemetry};
use sustain_programs::{DEFAULT_PORT, SERVICE};
use sustain_sync::reseal::Conflicts;

const BINARY: Binary = Binary {
    service: SERVICE,
    default_port: DEFAULT_PORT,
    role: Role::Admin,
    dev_role: Role::Admin,
    database: "programmes",
};

#[derive(Debug, Parser)]
#[command(
    name = "sustain-programs",
    version,
    about = "Sustain programme tracking service"
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
    /// After a key rotation: seal support records' details again with the
    /// current key (resumable).
    Reseal(ResealArgs),
    /// Write the programme side of the Lạng Sơn demo through the running
    /// registry (loaded with `sustain-registry demo`) and programmes service,
    /// then compare the province's programme summary with the report's
    /// figures. Running it twice writes nothing new.
    Demo {
        #[command(flatten)]
        args: ServeArgs,
        /// The programmes service's gRPC address (the registry's comes from
        /// the configuration, `registry.url`).
        #[arg(long, default_value = "http://127.0.0.1:50052")]
        programs: String,
        #[arg(long, default_value_t = sustain_programs::demo::DEFAULT_SEED)]
        seed: u64,
        /// Divide every figure by this, for a smaller registry demo.
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
                    |config, addr| {
                        format!(
                            "sustain-programs (development mode) on {addr}, registry at {}",
                            config.registry.url
                        )
                    },
                    |config, secrets, listener| async move {
                        sustain_programs::run(&config, &secrets, listener, shutdown_signal()).await
                    },
                )
                .await
        }
        Command::Migrate(args) => {
            BINARY
                .migrate(&args, |url| async move {
                    sustain_programs::connect_and_migrate(&url).await
                })
                .await
        }
        Command::Demo {
            args,
            programs,
            seed,
            scale,
        } => {
            let config = Config::load(SERVICE, DEFAULT_PORT, &args)?;
            telemetry::init(config.log_format, "warn");
            let secrets = config.secrets()?;
            let token = issuer(&config, &secrets)?.issue(
                "demo",
                Role::Admin,
                &["*"],
                Duration::hours(2),
            )?;
            let connect = |url: String| async move {
                tonic::transport::Endpoint::from_shared(url.clone())?
                    .connect()
                    .await
                    .with_context(|| format!("cannot reach {url}"))
            };
            let registry = connect(config.registry.url.clone()).await?;
            let programs = connect(programs).await?;
            let mut clients = sustain_programs::demo::Clients::new(registry, programs, &token)?;
            let targets = sustain_programs::demo::LANG_SON.scaled(scale);
            let started = std::time::Instant::now();
            let report = sustain_programs::demo::load(&mut clients, seed, &targets, true).await?;
            println!(
                "demo (seed {seed}): {} models, {} enrolments, {} trainees in {:.1} s",
                report.models,
                report.enrolments,
                report.trainees,
                started.elapsed().as_secs_f64()
            );
            let summary = sustain_programs::demo::province_summary(&mut clients).await?;
            let mut differ = 0;
            println!(
                "{:<36} {:>10} {:>10}",
                "Lạng Sơn 2021–2024", "reported", "summary"
            );
            for (label, wanted, found) in sustain_programs::demo::compare(&targets, &summary) {
                let mark = if wanted == found { "" } else { "  ← differs" };
                differ += usize::from(wanted != found);
                println!("{label:<36} {wanted:>10} {found:>10}{mark}");
            }
            anyhow::ensure!(differ == 0, "{differ} figure(s) differ from the report");
            Ok(())
        }
        Command::Reseal(r) => {
            let (config, secrets) = r.load(SERVICE, DEFAULT_PORT)?;
            let db = sustain_programs::connect_and_migrate(&config.database_url).await?;
            let support = sustain_programs::store::reseal::SupportSeals(secrets.cipher());
            let answers = Answers(secrets.cipher());
            let conflicts = Conflicts(std::sync::Arc::new(
                sustain_programs::replica::ProgramsReplica {
                    cipher: secrets.cipher(),
                },
            ));
            r.run(&db, &[&support, &answers, &conflicts]).await
        }
        Command::Common(c) => BINARY.common(c).await,
    }
}
