//! The import command against a registry speaking mutual TLS: with the
//! client's certificate every household goes in; without it, nothing does.

mod common;

use std::time::{Duration, Instant};

use sustain_clients::import_client::{ImportOptions, import};
use sustain_platform::Role;
use sustain_platform::config::Config;
use sustain_platform::tls::{TlsConfig, dev_certs};
use sustain_testkit::{TestDatabase, token};

fn tls_config(dir: &std::path::Path, name: &str) -> TlsConfig {
    TlsConfig {
        cert: Some(dir.join(format!("{name}.pem"))),
        key: Some(dir.join(format!("{name}.key"))),
        ca: Some(dir.join("ca.pem")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_import_command_goes_through_mutual_tls_and_nothing_without_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    dev_certs(dir.path(), "registry", &[]).expect("server certificate");
    dev_certs(dir.path(), "operator", &[]).expect("client certificate");

    // The demo's first 40 households as an import file.
    let file = dir.path().join("households.csv");
    let db = TestDatabase::new().await.expect("database");
    let mut config = Config::defaults(0);
    config.database_url = db.url.clone();
    config.shutdown_grace_secs = 0;
    sustain_registry::demo_cli::run(&config, 7, 40, Some(&file), false)
        .await
        .expect("import file");

    config.tls = tls_config(dir.path(), "registry");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        sustain_registry::run(&config, &common::secrets(), listener, async {
            let _ = stopped.await;
        })
        .await
    });

    let token = token(Role::Admin, &["20"]);
    let client = tls_config(dir.path(), "operator")
        .load()
        .expect("read")
        .expect("tls");
    let options = |tls| ImportOptions {
        file: &file,
        server: &server,
        token: &token,
        rejected_file: dir.path().join("rejected.csv"),
        batch_size: 16,
        batch_bytes: sustain_clients::import_client::DEFAULT_BATCH_BYTES,
        progress: false,
        tls,
    };
    let start = Instant::now();
    let report = loop {
        match import(options(Some(&client))).await {
            Ok(r) => break r,
            Err(e) if start.elapsed() > Duration::from_secs(10) => panic!("{e:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert!(report.households >= 40, "{report:?}");
    assert_eq!(report.accepted, report.households, "{report:?}");
    assert_eq!(report.rejected, 0);
    // The registry is up; without the certificate nothing gets through.
    let plain = import(options(None)).await;
    assert!(plain.is_err(), "plain text is refused: {plain:?}");

    let _ = stop.send(());
    serving.await.expect("joined").expect("served");
}
