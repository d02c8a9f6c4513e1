//! The suite in one process: every service on its own port and database,
//! configured as each would be alone, calling each other over their gRPC
//! ports exactly as separate deployments do. `sustain up` and the gateway
//! benchmark both start it from here.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use sustain_platform::config::{Config, Secrets, ServeArgs, SyncConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Where each service listens.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub registry: SocketAddr,
    pub programs: SocketAddr,
    pub ledger: SocketAddr,
    pub gateway: SocketAddr,
    /// The gateway's HTTP reports.
    pub reports: SocketAddr,
}

/// The bound sockets, bound before anything starts so that a port in use
/// fails at once (and port 0 is resolved before the services are told of
/// each other).
#[derive(Debug)]
pub struct Listeners {
    registry: TcpListener,
    programs: TcpListener,
    ledger: TcpListener,
    gateway: TcpListener,
    reports: TcpListener,
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

impl Listeners {
    pub async fn bind(at: &Addresses) -> anyhow::Result<Listeners> {
        Ok(Listeners {
            registry: bind(at.registry).await?,
            programs: bind(at.programs).await?,
            ledger: bind(at.ledger).await?,
            gateway: bind(at.gateway).await?,
            reports: bind(at.reports).await?,
        })
    }

    pub fn addresses(&self) -> anyhow::Result<Addresses> {
        Ok(Addresses {
            registry: self.registry.local_addr()?,
            programs: self.programs.local_addr()?,
            ledger: self.ledger.local_addr()?,
            gateway: self.gateway.local_addr()?,
            reports: self.reports.local_addr()?,
        })
    }
}

/// Each service's configuration.
#[derive(Debug, Clone)]
pub struct Configs {
    pub registry: Config,
    pub programs: Config,
    pub ledger: Config,
    pub gateway: Config,
}

/// The same peers, each `by` ports after its registry's.
fn ports_up(sync: &SyncConfig, by: u16) -> anyhow::Result<SyncConfig> {
    let mut shifted = sync.clone();
    let peers = shifted
        .upstream
        .iter_mut()
        .chain(shifted.downstream.iter_mut());
    for peer in peers {
        let (host, port) = peer
            .url
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.trim_end_matches('/').parse::<u16>().ok()?)))
            .ok_or_else(|| {
                anyhow::anyhow!("sync peer {}: {:?} has no port", peer.name, peer.url)
            })?;
        peer.url = format!("{host}:{}", port + by);
    }
    Ok(shifted)
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

impl Configs {
    pub fn new(args: &ServeArgs, at: &Addresses) -> anyhow::Result<Configs> {
        let registry = config_for(
            sustain_registry::SERVICE,
            sustain_registry::DEFAULT_PORT,
            args,
            at.registry,
        )?;
        let mut programs = config_for(
            sustain_programs::SERVICE,
            sustain_programs::DEFAULT_PORT,
            args,
            at.programs,
        )?;
        programs.registry.url = format!("http://{}", at.registry);
        let mut ledger = config_for(
            sustain_ledger::SERVICE,
            sustain_ledger::DEFAULT_PORT,
            args,
            at.ledger,
        )?;
        let mut gateway = config_for(
            sustain_gateway::SERVICE,
            sustain_gateway::DEFAULT_PORT,
            args,
            at.gateway,
        )?;
        gateway.registry.url = format!("http://{}", at.registry);
        gateway.programs.url = format!("http://{}", at.programs);
        gateway.ledger.url = format!("http://{}", at.ledger);
        gateway.http_listen = at.reports;
        // The `[sync]` section names the peers' registries; their programmes
        // services answer one port up and their ledgers two (the
        // `--port-base` layout). The gateway keeps no records.
        programs.sync = ports_up(&registry.sync, 1)?;
        ledger.sync = ports_up(&registry.sync, 2)?;
        gateway.sync = sustain_platform::config::SyncConfig::default();
        // It keeps no records, but verifies the instance's tokens as the
        // instance's: under the instance's name.
        gateway.auth.issuer = registry.auth.issuer.clone();
        // One process, one registry of metrics: the registry's listener
        // serves every service's.
        for c in [&mut programs, &mut ledger, &mut gateway] {
            c.metrics_listen = None;
        }
        // The reports' address came from `--reports`: judged as a loaded one is.
        gateway.validate()?;
        let urls = [
            &registry.database_url,
            &programs.database_url,
            &ledger.database_url,
        ];
        anyhow::ensure!(
            urls[0] != urls[1] && urls[1] != urls[2] && urls[0] != urls[2],
            "each service needs a database of its own; unset SUSTAIN_DATABASE_URL (each then takes a SQLite file under data_dir) or run the services separately"
        );
        Ok(Configs {
            registry,
            programs,
            ledger,
            gateway,
        })
    }

    /// The file that says the demo at `scale` is loaded.
    /// Applies `change` to every service's configuration.
    pub fn for_each(&mut self, change: impl Fn(&mut Config)) {
        for c in [
            &mut self.registry,
            &mut self.programs,
            &mut self.ledger,
            &mut self.gateway,
        ] {
            change(c);
        }
    }

    pub fn demo_marker(&self, scale: u32) -> PathBuf {
        self.registry
            .data_dir
            .join(format!("demo-loaded-1-in-{scale}"))
    }

    /// The registry's share of the demo (households and reviews), written
    /// straight to its database before it serves.
    pub async fn registry_demo(&self, scale: u32) -> anyhow::Result<()> {
        sustain_registry::demo_cli::run(
            &self.registry,
            sustain_clients::demo::DEFAULT_SEED,
            demo_households(scale),
            None,
            true,
        )
        .await
        .context("the registry demo")?;
        Ok(())
    }
}

/// Waits until the gRPC service at `addr` reports SERVING (the services
/// migrate their databases before they serve), up to a minute.
pub async fn wait_serving(addr: SocketAddr) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    for _ in 0..600 {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect()
            .await
        {
            let answer = HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await;
            if answer.is_ok_and(|a| a.into_inner().status == ServingStatus::Serving as i32) {
                return Ok(());
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("{addr} did not start serving within a minute")
}

/// Once every one of `addrs` serves.
pub async fn wait_all_serving(addrs: &[SocketAddr]) -> anyhow::Result<()> {
    for addr in addrs {
        wait_serving(*addr).await?;
    }
    Ok(())
}

/// What `sustain up` prints last, once everything serves (and the demo, if
/// asked for, is loaded), and again on every start: where to look and, in
/// development mode, the tokens to call with. Tokens stand alone on their
/// lines, so they copy whole.
pub fn banner(at: &Addresses, demo_scale: Option<u32>, tokens: &[(&str, String)]) -> String {
    let rule = "─".repeat(72);
    let mut lines = vec![
        format!("┌{rule}"),
        format!(
            "│ Sustain is up{}",
            if tokens.is_empty() {
                ""
            } else {
                " (development mode: no TLS, tokens below)"
            }
        ),
        "│".to_owned(),
        format!(
            "│ report page:  http://{}/reports?unit_code=20&from_year=2021&to_year=2024",
            at.reports
        ),
    ];
    if let Some(scale) = demo_scale {
        lines.push(format!(
            "│ the demo beside Lạng Sơn's report: http://{}/reports/lang-son?scale={scale}",
            at.reports
        ));
    }
    lines.push(format!(
        "│ gRPC: registry {} · programs {} · ledger {} · gateway {}",
        at.registry, at.programs, at.ledger, at.gateway
    ));
    for (what, token) in tokens {
        lines.push("│".to_owned());
        lines.push(format!("│ {what}:"));
        lines.push(token.clone());
    }
    lines.push("│".to_owned());
    lines.push(
        "│ Ctrl-C stops it. The terminal shows warnings only; --verbose (or RUST_LOG=info) shows each request."
            .to_owned(),
    );
    lines.push(format!("└{rule}"));
    lines.join("\n")
}

/// Households in the demo at `scale` (1: the whole province).
pub fn demo_households(scale: u32) -> u64 {
    sustain_clients::demo::LANG_SON[0].households / u64::from(scale.max(1))
}

/// Serves every service until `stop` turns true.
pub async fn serve(
    configs: &Configs,
    secrets: &Secrets,
    listeners: Listeners,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (r, p, l, g) = tokio::join!(
        sustain_registry::run(
            &configs.registry,
            secrets,
            listeners.registry,
            stopped(stop.clone())
        ),
        sustain_programs::run(
            &configs.programs,
            secrets,
            listeners.programs,
            stopped(stop.clone())
        ),
        sustain_ledger::run(
            &configs.ledger,
            secrets,
            listeners.ledger,
            stopped(stop.clone())
        ),
        sustain_gateway::run(
            &configs.gateway,
            secrets,
            listeners.gateway,
            listeners.reports,
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
pub async fn load_services_demo(
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
    // The services migrate before they serve.
    wait_all_serving(&[registry, programs, ledger]).await?;
    let report = sustain_programs::demo::load(
        &mut clients,
        sustain_programs::demo::DEFAULT_SEED,
        &targets,
        true,
    )
    .await?;
    println!(
        "demo: {} models, {} enrolments, {} trainees",
        report.models, report.enrolments, report.trainees
    );
    let mut money = sustain_ledger::demo::Clients::new(connect(ledger).await?, finance)?;
    let written =
        sustain_ledger::demo::load(&mut money, sustain_ledger::demo::DEFAULT_SEED, scale, true)
            .await?;
    println!(
        "demo: {} accounts, {} transfers",
        written.accounts, written.transfers
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_in_development_mode_refuses_reports_on_a_public_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = ServeArgs {
            dev: true,
            data_dir: Some(dir.path().to_path_buf()),
            ..ServeArgs::default()
        };
        let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let mut at = Addresses {
            registry: local(1),
            programs: local(2),
            ledger: local(3),
            gateway: local(4),
            reports: local(5),
        };
        assert!(Configs::new(&args, &at).is_ok());
        at.reports = SocketAddr::from(([0, 0, 0, 0], 8054));
        let err = Configs::new(&args, &at).expect_err("refused");
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}
