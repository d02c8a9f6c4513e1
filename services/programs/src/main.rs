//! `sustain-programs`: serve the programmes service, migrate its database, mint
//! a token, or load the demo programme data through running services.

use anyhow::Context;
use clap::{Parser, Subcommand};
use sustain_platform::auth::Duration;
use sustain_platform::cli::{
    DevCertsArgs, HealthArgs, KeysArgs, ResealArgs, RevokeArgs, TokenArgs, dev_token, issuer,
};
use sustain_platform::config::{Config, ServeArgs};
use sustain_platform::reseal::Answers;
use sustain_platform::{Role, telemetry};
use sustain_programs::{DEFAULT_PORT, SERVICE};
use sustain_sync::reseal::Conflicts;

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
            let config = Config::load(SERVICE, DEFAULT_PORT, &args)?;
            let telemetry = telemetry::for_service(&config, SERVICE)?;
            let secrets = config.secrets()?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            if config.dev {
                let token = dev_token(&config, &secrets, Role::Admin)?;
                println!(
                    "sustain-programs (development mode) on {}, registry at {}",
                    listener.local_addr()?,
                    config.registry.url
                );
                println!("admin token (12 h, whole country):\n{token}");
            }
            let served = sustain_programs::run(
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
            sustain_programs::connect_and_migrate(&config.database_url).await?;
            println!("programmes database is up to date");
            Ok(())
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
        Command::Token(t) => t.print(SERVICE, DEFAULT_PORT, Role::Admin),
        Command::DevCerts(d) => d.run(),
        Command::Keys(k) => k.run(),
        Command::Revoke(r) => r.run(SERVICE, DEFAULT_PORT),
        Command::Reseal(r) => {
            let (config, secrets) = r.load(SERVICE, DEFAULT_PORT)?;
            let db = sustain_programs::connect_and_migrate(&config.database_url).await?;
            let support = sustain_programs::reseal::SupportSeals(secrets.cipher());
            let answers = Answers(secrets.cipher());
            let conflicts = Conflicts(std::sync::Arc::new(
                sustain_programs::replica::ProgramsReplica {
                    cipher: secrets.cipher(),
                },
            ));
            r.run(&db, &[&support, &answers, &conflicts]).await
        }
        Command::Health(h) => h.run(SERVICE, DEFAULT_PORT).await,
    }
}
