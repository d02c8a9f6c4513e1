//! Province ↔ district replication. Each instance of a service knows its own
//! name, its upstream and who owns which units (`sync_owner`, seeded from
//! configuration and changed only by an audited handover). A write to a record
//! another instance owns is refused in the journal, so no write path can miss
//! the check; a receiver pulls a peer's change feed ([`feed`]) and applies it
//! with its cursor in one transaction ([`apply`]).

pub mod api;
pub mod apply;
mod entities;
pub mod feed;
pub mod migration;
pub mod puller;
pub mod reseal;
mod store;

use std::collections::HashMap;

use sustain_platform::config::SyncConfig;
use sustain_platform::error::ServiceError;

pub use entities::{sync_conflict, sync_cursor};
pub use sustain_platform::ownership::{Topology, sync_owner};

/// The record type a handover travels as.
pub const OWNER_RECORD: &str = "sync_owner";

/// Writes this instance's name and upstream, and the owners configuration
/// gives (its own scope and each downstream peer's) for units not recorded
/// yet. A unit already recorded keeps its owner: handovers change owners,
/// configuration only adds units.
pub async fn configure(
    db: &sea_orm::DatabaseConnection,
    config: &SyncConfig,
) -> Result<(), ServiceError> {
    if !config.enabled() {
        return Ok(());
    }
    let txn = sustain_db::begin_write(db).await?;
    let upstream = config
        .upstream
        .as_ref()
        .map(|p| p.name.clone())
        .unwrap_or_default();
    store::set_instance(&txn, &config.instance, &upstream).await?;
    let existing: HashMap<String, String> = store::owners(&txn)
        .await?
        .into_iter()
        .map(|o| (o.unit_code, o.instance))
        .collect();
    let now = chrono::Utc::now();
    let mut rows: Vec<(String, String)> = config
        .scope
        .iter()
        .map(|u| (u.clone(), config.instance.clone()))
        .collect();
    for peer in &config.downstream {
        rows.extend(peer.scope.iter().map(|u| (u.clone(), peer.name.clone())));
    }
    for (unit, instance) in rows {
        match existing.get(&unit) {
            // Handovers own the table once a unit is in it: configuration
            // only adds units (a district added to the province's file).
            Some(owner) if *owner != instance => tracing::warn!(
                unit = %unit,
                configured = %instance,
                recorded = %owner,
                "sync: unit owned by another instance than configured (a handover moved it); keeping the recorded owner"
            ),
            Some(_) => {}
            None => {
                store::replace_owner(
                    &txn,
                    sync_owner::Model {
                        unit_code: unit,
                        instance,
                        since: now,
                        set_by: "configuration".into(),
                        version: 1,
                    },
                )
                .await?;
            }
        }
    }
    txn.commit().await?;
    Ok(())
}

/// A service's sync, ready to serve: the API and the pullers behind it.
pub struct Wiring {
    pub server: sustain_proto::sync::v1::sync_service_server::SyncServiceServer<api::SyncApi>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Wiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wiring")
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

/// Builds a service's sync from its configuration: the feed and status API,
/// and one puller per peer writing through `replica`. Call [`configure`] first.
pub fn wire(
    service: &'static str,
    db: &sea_orm::DatabaseConnection,
    config: &sustain_platform::config::Config,
    secrets: &sustain_platform::config::Secrets,
    replica: std::sync::Arc<dyn apply::Replica>,
) -> Result<Wiring, ServiceError> {
    let issuer = config.token_issuer(secrets)?;
    let tls = config
        .tls
        .load()
        .map_err(|e| ServiceError::Internal(format!("{e:#}")))?;
    let (board, tasks) = puller::start(
        db.clone(),
        &config.sync,
        issuer,
        std::sync::Arc::clone(&replica),
        tls,
    );
    if let Some(metrics) = sustain_platform::metrics::metrics() {
        metrics.watch_sync(service, board.clone());
    }
    let api = api::SyncApi {
        db: db.clone(),
        board,
        limits: feed::FeedLimits {
            default_batch: config.sync.batch_size,
            poll: std::time::Duration::from_millis(config.sync.poll_ms),
        },
        peers: config.sync.peers().map(|(p, _)| p.name.clone()).collect(),
        replica,
        cipher: secrets.cipher(),
    };
    Ok(Wiring {
        server: sustain_proto::sync::v1::sync_service_server::SyncServiceServer::new(api)
            .max_decoding_message_size(4 * 1024 * 1024),
        tasks,
    })
}

/// The name the sync service is known by to health checks.
pub const SERVICE_NAME: &str = "sustain.sync.v1.SyncService";

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::EntityTrait;

    struct Migrator;

    impl sea_orm_migration::MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn sea_orm_migration::MigrationTrait>> {
            vec![
                Box::new(sustain_platform::journal::migration::CreateJournal),
                Box::new(migration::CreateSync),
            ]
        }
    }

    #[tokio::test]
    async fn configuration_adds_units_and_never_moves_a_recorded_owner() {
        use sea_orm::{ColumnTrait, QueryFilter};
        use sea_orm_migration::MigratorTrait;
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("t.sqlite").display()
        );
        let db = sustain_db::connect(&url).await.expect("connect");
        Migrator::up(&db, None).await.expect("migrate");
        let peer = |name: &str, scope: &str| sustain_platform::config::PeerConfig {
            name: name.into(),
            url: "http://127.0.0.1:1".into(),
            scope: vec![scope.into()],
        };
        let mut config = SyncConfig {
            instance: "province".into(),
            scope: vec!["20".into()],
            downstream: vec![peer("district-181", "181")],
            ..SyncConfig::default()
        };
        configure(&db, &config).await.expect("first start");
        let t = Topology::load(&db).await.expect("load");
        assert_eq!(t.units_of("district-181"), vec!["181"]);
        // A handover moved 181 meanwhile; then a district is added to the file.
        sync_owner::Entity::update_many()
            .col_expr(
                sync_owner::Column::Instance,
                sea_orm::sea_query::Expr::value("district-185"),
            )
            .filter(sync_owner::Column::UnitCode.eq("181"))
            .exec(&db)
            .await
            .expect("handover");
        config.downstream.push(peer("district-185", "185"));
        configure(&db, &config).await.expect("restart");
        let t = Topology::load(&db).await.expect("load");
        assert_eq!(
            t.units_of("district-185"),
            vec!["181", "185"],
            "added, and the handover kept"
        );
        assert!(t.units_of("district-181").is_empty());
        assert_eq!(t.me, "province");
        assert!(t.owns("20") && !t.owns("181"));
    }
}
