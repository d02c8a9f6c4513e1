//! `sustain up`: every service of the suite in one process, each on its own
//! port and database, configured as each would be alone (`--config`, the
//! `SUSTAIN_*` environment and the flags apply to all of them). The services
//! call each other over their gRPC ports exactly as separate deployments do.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sustain_platform::cli::dev_token;
use sustain_platform::config::{Config, ServeArgs};
use sustain_platform::{Role, telemetry};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Debug, Parser)]
#[command(name = "sustain", version, about = "The Sustain suite")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the registry, the programmes service, the ledger and the
    /// reporting gateway until SIGINT/SIGTERM.
    Up {
        #[command(flatten)]
        args: ServeArgs,
        /// The registry's address.
        #[arg(long, default_value = "127.0.0.1:50051")]
        registry: SocketAddr,
        /// The programmes service's address.
        #[arg(long, default_value = "127.0.0.1:50052")]
        programs: SocketAddr,
        /// The ledger's address.
        #[arg(long, default_value = "127.0.0.1:50053")]
        ledger: SocketAddr,
        /// The reporting gateway's address.
        #[arg(long, default_value = "127.0.0.1:50054")]
        gateway: SocketAddr,
        /// Where the gateway serves its reports over HTTP.
        #[arg(long, default_value = "127.0.0.1:8054")]
        reports: SocketAddr,
        /// Load the Lạng Sơn demo on first start: households and reviews,
        /// then the programme records and the money through the services'
        /// APIs. Later starts find it there (a marker under data_dir).
        #[arg(long)]
        demo: bool,
        /// Divide the demo by this (1: the full province, about 200,000
        /// households and several minutes; 50: a quick look).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        demo_scale: u32,
    },
}

/// A service's configuration: the shared layers, its own address and database.
fn config_for(
    service: &str,
    port: u16,
    args: &ServeArgs,
    listen: SocketAddr,
) -> anyhow::Result<Config> {
    let mut args = args.clone();
    args.listen = Some(listen);
    // One database URL cannot serve two services; each takes its default file.
    args.database_url = None;
    Ok(Config::load(service, port, &args)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Up {
        args,
        registry,
        programs,
        ledger,
        gateway,
        reports,
        demo,
        demo_scale,
    } = Cli::parse().command;
    let registry_config = config_for(
        sustain_registry::SERVICE,
        sustain_registry::DEFAULT_PORT,
        &args,
        registry,
    )?;
    let mut programs_config = config_for(
        sustain_programs::SERVICE,
        sustain_programs::DEFAULT_PORT,
        &args,
        programs,
    )?;
    programs_config.registry.url = format!("http://{registry}");
    let ledger_config = config_for(
        sustain_ledger::SERVICE,
        sustain_ledger::DEFAULT_PORT,
        &args,
        ledger,
    )?;
    let mut gateway_config = config_for(
        sustain_gateway::SERVICE,
        sustain_gateway::DEFAULT_PORT,
        &args,
        gateway,
    )?;
    gateway_config.registry.url = format!("http://{registry}");
    gateway_config.programs.url = format!("http://{programs}");
    gateway_config.ledger.url = format!("http://{ledger}");
    gateway_config.http_listen = reports;
    let urls = [
        &registry_config.database_url,
        &programs_config.database_url,
        &ledger_config.database_url,
    ];
    anyhow::ensure!(
        urls[0] != urls[1] && urls[1] != urls[2] && urls[0] != urls[2],
        "each service needs a database of its own; unset SUSTAIN_DATABASE_URL (each then takes a SQLite file under data_dir) or run the services separately"
    );
    telemetry::init(registry_config.log_format, &registry_config.log_filter);
    let secrets = registry_config.secrets()?;
    let registry_listener = TcpListener::bind(registry)
        .await
        .with_context(|| format!("cannot listen on {registry}"))?;
    let programs_listener = TcpListener::bind(programs)
        .await
        .with_context(|| format!("cannot listen on {programs}"))?;
    let ledger_listener = TcpListener::bind(ledger)
        .await
        .with_context(|| format!("cannot listen on {ledger}"))?;
    let gateway_listener = TcpListener::bind(gateway)
        .await
        .with_context(|| format!("cannot listen on {gateway}"))?;
    let reports_listener = TcpListener::bind(reports)
        .await
        .with_context(|| format!("cannot listen on {reports}"))?;
    if registry_config.dev {
        let admin = dev_token(&registry_config, &secrets, Role::Admin)?;
        let finance = dev_token(&registry_config, &secrets, Role::Finance)?;
        println!(
            "sustain (development mode): registry on {registry}, programs on {programs}, ledger on {ledger}, gateway on {gateway}"
        );
        println!(
            "report page: http://{reports}/reports?unit_code=20&from_year=2021&to_year=2024 (no token needed in development mode)"
        );
        println!("admin token (12 h, whole country):\n{admin}");
        println!("finance token for the ledger (12 h, whole country):\n{finance}");
    }
    let marker = registry_config
        .data_dir
        .join(format!("demo-loaded-1-in-{demo_scale}"));
    let load_demo = demo && !marker.exists();
    if load_demo {
        let households = sustain_registry::demo::LANG_SON[0].households / u64::from(demo_scale);
        println!("loading the demo: {households} households and their reviews…");
        sustain_registry::demo_cli::run(
            &registry_config,
            sustain_registry::demo::DEFAULT_SEED,
            households,
            None,
            true,
        )
        .await
        .context("the registry demo")?;
    }
    let (stop_tx, stop) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let signal = async move {
        sustain_platform::serve::shutdown_signal().await;
        let _ = stop_tx.send(true);
    };
    tokio::spawn(signal);
    if load_demo {
        let token = dev_token(&registry_config, &secrets, Role::Admin)?;
        let finance = dev_token(&registry_config, &secrets, Role::Finance)?;
        tokio::spawn(async move {
            match load_services_demo(registry, programs, ledger, &token, &finance, demo_scale).await
            {
                Ok(()) => {
                    let _ = std::fs::write(&marker, "the demo is loaded\n");
                    println!("the demo is loaded: the report page above shows it");
                }
                Err(e) => eprintln!("the demo did not load: {e:#}"),
            }
        });
    }
    let (r, p, l, g) = tokio::join!(
        sustain_registry::run(
            &registry_config,
            &secrets,
            registry_listener,
            stopped(stop.clone())
        ),
        sustain_programs::run(
            &programs_config,
            &secrets,
            programs_listener,
            stopped(stop.clone())
        ),
        sustain_ledger::run(
            &ledger_config,
            &secrets,
            ledger_listener,
            stopped(stop.clone())
        ),
        sustain_gateway::run(
            &gateway_config,
            &secrets,
            gateway_listener,
            reports_listener,
            stopped(stop)
        ),
    );
    r.context("registry")?;
    p.context("programs")?;
    l.context("ledger")?;
    g.context("gateway")?;
    Ok(())
}

/// The programme records and the money, written through the running
/// services' APIs once they answer.
async fn load_services_demo(
    registry: SocketAddr,
    programs: SocketAddr,
    ledger: SocketAddr,
    admin: &str,
    finance: &str,
    scale: u32,
) -> anyhow::Result<()> {
    let connect = |addr: SocketAddr| async move {
        for _ in 0..600 {
            if let Ok(channel) = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
                .connect()
                .await
            {
                return Ok(channel);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        anyhow::bail!("{addr} did not answer")
    };
    let mut clients = sustain_programs::demo::Clients::new(
        connect(registry).await?,
        connect(programs).await?,
        admin,
    )?;
    let targets = sustain_programs::demo::LANG_SON.scaled(scale);
    // The services migrate before they serve: retry until they do.
    let mut tries = 0;
    let report = loop {
        match sustain_programs::demo::load(
            &mut clients,
            sustain_programs::demo::DEFAULT_SEED,
            &targets,
        )
        .await
        {
            Ok(report) => break report,
            Err(e) if tries < 50 => {
                tries += 1;
                tracing::debug!(error = %e, "programme demo not yet");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    };
    println!(
        "demo: {} models, {} enrolments, {} trainees",
        report.models, report.enrolments, report.trainees
    );
    let mut money = sustain_ledger::demo::Clients::new(connect(ledger).await?, finance)?;
    let written =
        sustain_ledger::demo::load(&mut money, sustain_ledger::demo::DEFAULT_SEED).await?;
    println!(
        "demo: {} accounts, {} transfers",
        written.accounts, written.transfers
    );
    Ok(())
}
