//! `sustain up`: every service of the suite in one process, each on its own
//! port and database, configured as each would be alone (`--config`, the
//! `SUSTAIN_*` environment and the flags apply to all of them). The services
//! call each other over their gRPC ports exactly as separate deployments do.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use sustain::{Addresses, Configs, Listeners, load_services_demo, serve};
use sustain_platform::cli::dev_token;
use sustain_platform::config::ServeArgs;
use sustain_platform::{Role, telemetry};
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
        /// Listen on consecutive ports from here instead: the registry on
        /// BASE+1, programs +2, ledger +3, gateway +4, the report page +5
        /// (several instances on one machine, e.g. a province and districts).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1024..=65000))]
        port_base: Option<u16>,
        /// Load the Lạng Sơn demo on first start: households and reviews,
        /// then the programme records and the money through the services'
        /// APIs. Later starts find it there (a marker under data_dir).
        #[arg(long)]
        demo: bool,
        /// Divide the demo by this (1: the full province, about 200,000
        /// households and several minutes; 50: a quick look).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        demo_scale: u32,
        /// Show every request in the log (the terminal shows warnings only
        /// unless `RUST_LOG` or `log_filter` says otherwise).
        #[arg(long)]
        verbose: bool,
    },
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
        port_base,
        demo,
        demo_scale,
        verbose,
    } = Cli::parse().command;
    let (registry, programs, ledger, gateway, reports) = match port_base {
        None => (registry, programs, ledger, gateway, reports),
        Some(base) => {
            let at = |n: u16| SocketAddr::new(registry.ip(), base + n);
            (at(1), at(2), at(3), at(4), at(5))
        }
    };
    let listeners = Listeners::bind(&Addresses {
        registry,
        programs,
        ledger,
        gateway,
        reports,
    })
    .await?;
    let addresses = listeners.addresses()?;
    let mut configs = Configs::new(&args, &addresses)?;
    // A person at a terminal, not a balancer: an idle suite stops at once.
    if configs.registry.dev {
        configs.for_each(|c| c.shutdown_grace_secs = c.shutdown_grace_secs.min(1));
    }
    // The terminal is for the banner: requests are logged on asking.
    let default_filter = sustain_platform::config::Config::defaults(0).log_filter;
    let filter = if verbose || configs.registry.log_filter != default_filter {
        configs.registry.log_filter.clone()
    } else {
        "warn".to_owned()
    };
    let telemetry = telemetry::init_service(
        configs.registry.log_format,
        &filter,
        configs.registry.otlp_endpoint.as_deref(),
        "sustain",
    )?;
    let secrets = configs.registry.secrets()?;
    let tokens = if configs.registry.dev {
        vec![
            (
                "admin token (12 h, whole country)",
                dev_token(&configs.registry, &secrets, Role::Admin)?,
            ),
            (
                "finance token for the ledger (12 h, whole country)",
                dev_token(&configs.registry, &secrets, Role::Finance)?,
            ),
        ]
    } else {
        vec![]
    };
    let marker = configs.demo_marker(demo_scale);
    let load_demo = demo && !marker.exists();
    if load_demo {
        println!(
            "loading the demo: {} households and their reviews…",
            sustain::demo_households(demo_scale)
        );
        configs.registry_demo(demo_scale).await?;
    }
    let banner = sustain::banner(&addresses, demo.then_some(demo_scale), &tokens);
    let (stop_tx, stop) = watch::channel(false);
    let signal = async move {
        sustain_platform::serve::shutdown_signal().await;
        let _ = stop_tx.send(true);
    };
    tokio::spawn(signal);
    if load_demo {
        let token = dev_token(&configs.registry, &secrets, Role::Admin)?;
        let finance = dev_token(&configs.registry, &secrets, Role::Finance)?;
        tokio::spawn(async move {
            match load_services_demo(registry, programs, ledger, &token, &finance, demo_scale).await
            {
                Ok(()) => {
                    let _ = std::fs::write(&marker, "the demo is loaded\n");
                    println!("the demo is loaded.\n{banner}");
                }
                Err(e) => eprintln!("the demo did not load: {e:#}\n{banner}"),
            }
        });
    } else {
        tokio::spawn(async move {
            let ready = sustain::wait_all_serving(&[registry, programs, ledger, gateway]).await;
            match ready {
                Ok(()) => println!("{banner}"),
                Err(e) => eprintln!("{e:#}"),
            }
        });
    }
    let served = serve(&configs, &secrets, listeners, stop).await;
    telemetry.shutdown();
    served
}
