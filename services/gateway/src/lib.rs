//! The reporting gateway: officials ask one service how poverty moved in a
//! unit, what reached its households and what it cost; the gateway asks the
//! registry, the programmes service and the ledger at once, with the caller's
//! own token, and puts their figures side by side. It computes none of them.
//! `run` is everything `sustain-gateway serve` does.

pub mod dashboard;
pub mod http;
pub mod page;
pub mod reports;
pub mod table;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use sustain_platform::Role;
use sustain_platform::config::{Config, Secrets, UpstreamConfig};
use sustain_platform::serve::{self, ServiceSet};
use sustain_platform::tls::Tls;
use sustain_proto::gateway::v1::report_service_server::ReportServiceServer;
use sustain_proto::ledger::v1::funding_service_client::FundingServiceClient;
use sustain_proto::programs::v1::programme_summary_service_client::ProgrammeSummaryServiceClient;
use sustain_proto::registry::v1::review_service_client::ReviewServiceClient;
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// Default port of the gateway.
pub const DEFAULT_PORT: u16 = 50054;
/// Name of the service in configuration and file names.
pub const SERVICE: &str = "gateway";

/// Who reads reports; each backend then applies its own rules to the same
/// token.
pub const READ: &[Role] = &[Role::Viewer, Role::Approver, Role::Finance, Role::Admin];

/// A lazily connecting channel: the gateway starts whether or not a backend
/// is up, and each call finds out.
fn channel(upstream: &UpstreamConfig, tls: Option<&Tls>) -> anyhow::Result<Channel> {
    let timeout = Duration::from_millis(upstream.timeout_ms);
    Ok(sustain_platform::tls::endpoint(&upstream.url, tls)?
        .connect_timeout(timeout)
        .timeout(timeout)
        .tcp_nodelay(true)
        .connect_lazy())
}

pub fn backends(config: &Config) -> anyhow::Result<dashboard::Backends> {
    let tls = config.tls.load()?;
    let tls = tls.as_ref();
    Ok(dashboard::Backends {
        registry: ReviewServiceClient::new(channel(&config.registry, tls).context("registry.url")?),
        programs: ProgrammeSummaryServiceClient::new(
            channel(&config.programs, tls).context("programs.url")?,
        ),
        ledger: FundingServiceClient::new(channel(&config.ledger, tls).context("ledger.url")?),
        default_deadline: Duration::from_millis(
            config
                .registry
                .timeout_ms
                .max(config.programs.timeout_ms)
                .max(config.ledger.timeout_ms),
        ),
    })
}

/// The gateway's gRPC services, wrapped in the bearer-token check, and its
/// HTTP routes.
pub fn services(secrets: &Secrets, config: &Config) -> anyhow::Result<(ServiceSet, axum::Router)> {
    let auth = config.authenticator(secrets)?;
    let api = dashboard::ReportApi {
        backends: backends(config)?,
    };
    let reports = ReportServiceServer::new(api.clone());
    let dev_token = if config.dev {
        Some(sustain_platform::cli::dev_token(
            config,
            secrets,
            Role::Admin,
        )?)
    } else {
        None
    };
    let pool = prost_reflect::DescriptorPool::decode(sustain_proto::FILE_DESCRIPTOR_SET)
        .context("the descriptor set")?;
    let routes = http::router(http::Http {
        api,
        auth: std::sync::Arc::new(auth.clone()),
        dev_token,
        pool,
    });
    Ok((
        ServiceSet::new(
            config,
            sustain_platform::guarded_routes!(auth, config.limits; reports),
            vec!["sustain.gateway.v1.ReportService"],
        )?,
        routes,
    ))
}

/// Serves gRPC on `listener` and HTTP on `http` until `shutdown` resolves.
pub async fn run(
    config: &Config,
    secrets: &Secrets,
    listener: TcpListener,
    http: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use futures::FutureExt;
    let (services, routes) = services(secrets, config)?;
    tracing::info!(
        address = %listener.local_addr()?,
        http = %http.local_addr()?,
        registry = %config.registry.url,
        programs = %config.programs.url,
        ledger = %config.ledger.url,
        "gateway serving"
    );
    let shutdown = shutdown.shared();
    let stop = shutdown.clone();
    let web = async move {
        // Reports carry personal data: over TLS whenever the service has a
        // certificate (the configuration keeps plain text on loopback).
        if config.tls.enabled() {
            axum::serve(config.tls.https(http)?, routes)
                .with_graceful_shutdown(stop)
                .await
        } else {
            axum::serve(http, routes).with_graceful_shutdown(stop).await
        }
        .context("serving HTTP")
    };
    let grpc = serve::serve(
        listener,
        services,
        shutdown,
        Duration::from_secs(config.shutdown_grace_secs),
    );
    let (g, w) = tokio::join!(grpc, web);
    g?;
    w?;
    Ok(())
}
