//! The household registry service: administrative units, households and their
//! members. `run` is everything `sustain-registry serve` does, so tests and the
//! one-command suite start exactly what production starts.

pub mod convert;
pub mod demo_cli;
pub mod households;
pub mod migration;
pub mod model;
pub mod replica;
pub mod reviews;
pub mod standards;
pub mod store;
pub mod units;
pub mod villages;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use sustain_platform::cache::RecordCache;
use sustain_platform::config::{Config, Secrets};
use sustain_platform::serve::{self, ServiceSet};
use sustain_proto::registry::v1::admin_unit_service_server::AdminUnitServiceServer;
use sustain_proto::registry::v1::household_service_server::HouseholdServiceServer;
use sustain_proto::registry::v1::review_service_server::ReviewServiceServer;
use tokio::net::TcpListener;

pub use migration::Migrator;

/// Default port of the registry.
pub const DEFAULT_PORT: u16 = 50051;
/// Name of the service in configuration and file names.
pub const SERVICE: &str = "registry";

/// Connects to the configured database and brings its schema up to date.
pub async fn connect_and_migrate(database_url: &str) -> anyhow::Result<DatabaseConnection> {
    let db = sustain_db::connect(database_url)
        .await
        .with_context(|| "cannot open the registry database")?;
    Migrator::up(&db, None)
        .await
        .context("migrating the registry database")?;
    sustain_db::optimize(&db)
        .await
        .context("refreshing planner statistics")?;
    Ok(db)
}

/// The poverty standards in force: the configured file, else the bundled ones.
pub fn load_standards(config: &Config) -> anyhow::Result<sustain_domain::poverty::Standards> {
    match &config.standards_file {
        None => Ok(sustain_domain::poverty::Standards::bundled().clone()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("standards_file {}", path.display()))?;
            sustain_domain::poverty::Standards::parse(&text)
                .with_context(|| format!("standards_file {}", path.display()))
        }
    }
}

/// The registry's gRPC services, wrapped in the bearer-token check.
pub fn services(
    db: DatabaseConnection,
    secrets: &Secrets,
    config: &Config,
) -> anyhow::Result<ServiceSet> {
    let database = db.clone();
    let auth = config.authenticator(secrets)?;
    let vault = store::Vault {
        cipher: secrets.cipher(),
        hasher: secrets.hasher(),
    };
    let standards = Arc::new(standards::StandardsCell::new(
        load_standards(config)?,
        config.standards_file.is_some(),
    ));
    let cache = Arc::new(RecordCache::new("household", config.cache_entries));
    let follower =
        Arc::clone(&cache).follow(db.clone(), Duration::from_millis(config.cache_poll_ms));
    let sync = sustain_sync::wire(
        SERVICE,
        &db,
        config,
        secrets,
        Arc::new(replica::RegistryReplica {
            vault: vault.clone(),
        }),
    )?;
    let reviews = ReviewServiceServer::new(reviews::ReviewApi {
        db: db.clone(),
        vault: vault.clone(),
        standards,
    });
    let households = HouseholdServiceServer::new(households::HouseholdApi {
        db,
        vault,
        cache,
        member_counts: store::MemberCounts::default(),
    });
    let units = AdminUnitServiceServer::new(units::AdminUnitApi);
    let routes = sustain_platform::guarded_routes!(auth, config.limits; households, units, reviews, sync.server);
    Ok(ServiceSet::new(
        config,
        routes,
        vec![
            "sustain.registry.v1.HouseholdService",
            "sustain.registry.v1.AdminUnitService",
            "sustain.registry.v1.ReviewService",
            sustain_sync::SERVICE_NAME,
        ],
    )?
    .with_background(std::iter::once(follower).chain(sync.tasks).collect())
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
    tracing::info!(address = %listener.local_addr()?, "registry serving");
    serve::serve(
        listener,
        services,
        shutdown,
        Duration::from_secs(config.shutdown_grace_secs),
    )
    .await?;
    Ok(())
}
