//! The programme tracking service: the programme structure of Decision
//! 90/QĐ-TTg, livelihood and production models with the households enrolled in
//! them (their class read from the registry), and the programme summaries.
//! `run` is everything `sustain-programs serve` does.

pub mod catalog;
pub mod convert;
pub mod demo;
pub mod livelihood;
pub mod migration;
pub mod model;
pub mod outreach;
pub mod records;
pub mod registry;
pub mod replica;
pub mod sector;
pub mod store;
pub mod summary;
pub mod support;
pub mod training;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use sustain_platform::Role;
use sustain_platform::config::{Config, Secrets};
use sustain_platform::serve::{self, ServiceSet};
use sustain_proto::programs::v1::catalog_service_server::CatalogServiceServer;
use sustain_proto::programs::v1::communication_service_server::CommunicationServiceServer;
use sustain_proto::programs::v1::inspection_service_server::InspectionServiceServer;
use sustain_proto::programs::v1::livelihood_service_server::LivelihoodServiceServer;
use sustain_proto::programs::v1::programme_summary_service_server::ProgrammeSummaryServiceServer;
use sustain_proto::programs::v1::sector_report_service_server::SectorReportServiceServer;
use sustain_proto::programs::v1::support_service_server::SupportServiceServer;
use sustain_proto::programs::v1::training_service_server::TrainingServiceServer;
use tokio::net::TcpListener;

pub use migration::Migrator;

/// Default port of the programmes service.
pub const DEFAULT_PORT: u16 = 50052;
/// Name of the service in configuration and file names.
pub const SERVICE: &str = "programs";

/// Who reads programme records and figures.
pub const READ: &[Role] = &[
    Role::Viewer,
    Role::Enumerator,
    Role::Approver,
    Role::Finance,
    Role::Admin,
    Role::Sync,
];
/// Who records models, enrolments and outcomes.
pub const WRITE: &[Role] = &[Role::Enumerator, Role::Admin];
/// Who withdraws records.
pub const ARCHIVE: &[Role] = &[Role::Approver, Role::Admin];
/// Who adds to the programme structure.
pub const WRITE_CATALOG: &[Role] = &[Role::Admin];

/// Connects, brings the schema up to date and seeds the programme structure.
pub async fn connect_and_migrate(database_url: &str) -> anyhow::Result<DatabaseConnection> {
    let db = sustain_db::connect(database_url)
        .await
        .context("cannot open the programmes database")?;
    Migrator::up(&db, None)
        .await
        .context("migrating the programmes database")?;
    catalog::seed(&db)
        .await
        .context("seeding the programme structure")?;
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
    let registry = registry::Registry::new(&config.registry, config.tls.load()?.as_ref())
        .context("registry.url")?;
    let catalog = CatalogServiceServer::new(catalog::CatalogApi {
        db: db.clone(),
        cipher: cipher.clone(),
    });
    let livelihood = LivelihoodServiceServer::new(livelihood::LivelihoodApi {
        db: db.clone(),
        cipher: cipher.clone(),
        registry: registry.clone(),
    });
    let training = TrainingServiceServer::new(training::TrainingApi {
        db: db.clone(),
        cipher: cipher.clone(),
        registry: registry.clone(),
    });
    let support = SupportServiceServer::new(support::SupportApi {
        db: db.clone(),
        cipher: cipher.clone(),
        registry: registry.clone(),
    });
    let communication = CommunicationServiceServer::new(outreach::CommunicationApi {
        db: db.clone(),
        cipher: cipher.clone(),
    });
    let inspections = InspectionServiceServer::new(outreach::InspectionApi {
        db: db.clone(),
        cipher: cipher.clone(),
    });
    let sector = SectorReportServiceServer::new(sector::SectorReportApi {
        db: db.clone(),
        cipher: cipher.clone(),
    });
    let sync = sustain_sync::wire(
        SERVICE,
        &db,
        config,
        secrets,
        std::sync::Arc::new(replica::ProgramsReplica {
            cipher: cipher.clone(),
        }),
    )?;
    let summary = ProgrammeSummaryServiceServer::new(summary::SummaryApi {
        db,
        registry,
        cache: summary::SummaryCache::new(),
    });
    let routes = sustain_platform::guarded_routes!(auth, config.limits; catalog, livelihood, summary, training, support, communication, inspections, sector, sync.server);
    Ok(ServiceSet::new(
        config,
        routes,
        vec![
            "sustain.programs.v1.CatalogService",
            "sustain.programs.v1.LivelihoodService",
            "sustain.programs.v1.ProgrammeSummaryService",
            "sustain.programs.v1.TrainingService",
            "sustain.programs.v1.SupportService",
            "sustain.programs.v1.CommunicationService",
            "sustain.programs.v1.InspectionService",
            "sustain.programs.v1.SectorReportService",
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
    tracing::info!(address = %listener.local_addr()?, registry = %config.registry.url, "programs serving");
    serve::serve(
        listener,
        services,
        shutdown,
        Duration::from_secs(config.shutdown_grace_secs),
    )
    .await?;
    Ok(())
}
