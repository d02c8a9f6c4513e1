//! The funding ledger service: double-entry accounts and transfers in integer
//! VND, linked batches applied whole, two-phase disbursements, reversals, a
//! hash chain over every change, balances as of any day and the funding
//! summaries. The rules are `sustain_domain::ledger`; this crate stores them.
//! `run` is everything `sustain-ledger serve` does.

pub mod accounts;
pub mod chain;
pub mod convert;
pub mod demo;
pub mod funding;
pub mod migration;
pub mod model;
pub mod replica;
pub mod store;
pub mod transfers;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use sustain_platform::Role;
use sustain_platform::config::{Config, Secrets};
use sustain_platform::serve::{self, ServiceSet};
use sustain_proto::ledger::v1::account_service_server::AccountServiceServer;
use sustain_proto::ledger::v1::chain_service_server::ChainServiceServer;
use sustain_proto::ledger::v1::funding_service_server::FundingServiceServer;
use sustain_proto::ledger::v1::transfer_service_server::TransferServiceServer;
use tokio::net::TcpListener;

pub use migration::Migrator;

/// Default port of the ledger service.
pub const DEFAULT_PORT: u16 = 50053;
/// Name of the service in configuration and file names.
pub const SERVICE: &str = "ledger";

/// Who reads accounts, transfers, balances and funding figures.
pub const READ: &[Role] = &[
    Role::Viewer,
    Role::Approver,
    Role::Finance,
    Role::Admin,
    Role::Sync,
];
/// Who moves money.
pub const WRITE: &[Role] = &[Role::Finance];
/// Who opens accounts.
pub const OPEN: &[Role] = &[Role::Finance, Role::Admin];
/// Who reads and verifies the chain: it spans the whole instance.
pub const CHAIN: &[Role] = &[Role::Finance, Role::Admin, Role::Sync];

pub use sustain_platform::error::check;

/// Connects and brings the schema up to date.
pub async fn connect_and_migrate(database_url: &str) -> anyhow::Result<DatabaseConnection> {
    let db = sustain_db::connect(database_url)
        .await
        .context("cannot open the ledger database")?;
    Migrator::up(&db, None)
        .await
        .context("migrating the ledger database")?;
    sustain_db::optimize(&db)
        .await
        .context("refreshing planner statistics")?;
    Ok(db)
}

/// The service's gRPC services, wrapped in the bearer-token check.
pub fn services(
    db: DatabaseConnection,
    secrets: &Secrets,
    config: &Config,
) -> anyhow::Result<ServiceSet> {
    let database = db.clone();
    let auth = config.authenticator(secrets)?;
    let cipher = secrets.cipher();
    let sync = sustain_sync::wire(
        SERVICE,
        &db,
        config,
        secrets,
        std::sync::Arc::new(replica::LedgerReplica),
    )?;
    let accounts = AccountServiceServer::new(accounts::AccountApi {
        db: db.clone(),
        cipher,
    });
    let transfers = TransferServiceServer::new(transfers::TransferApi { db: db.clone() });
    let chain = ChainServiceServer::new(chain::ChainApi::new(db.clone()));
    let funding = FundingServiceServer::new(funding::FundingApi {
        db,
        cache: funding::SummaryCache::new(),
    });
    let routes = sustain_platform::guarded_routes!(auth, config.limits; accounts, transfers, chain, funding, sync.server);
    Ok(ServiceSet::new(
        config,
        routes,
        vec![
            "sustain.ledger.v1.AccountService",
            "sustain.ledger.v1.TransferService",
            "sustain.ledger.v1.ChainService",
            "sustain.ledger.v1.FundingService",
            sustain_sync::SERVICE_NAME,
        ],
    )?
    .with_background(sync.tasks)
    .watching(database))
}

/// Serves on `listener` until `shutdown` resolves.
pub async fn run(
    config: &Config,
    secrets: &Secrets,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let db = connect_and_migrate(&config.database_url).await?;
    sustain_sync::configure(&db, &config.sync).await?;
    let services = services(db, secrets, config)?;
    tracing::info!(address = %listener.local_addr()?, "ledger serving");
    serve::serve(
        listener,
        services,
        shutdown,
        Duration::from_secs(config.shutdown_grace_secs),
    )
    .await?;
    Ok(())
}
