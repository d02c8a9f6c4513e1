//! Health follows the database: a ledger whose PostgreSQL stops answering
//! reports NOT_SERVING (so probes and balancers send it no calls) and SERVING
//! again once the database is back, with the `health` command saying the same.
//! The database sits behind a TCP proxy the test takes down and brings back.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sustain_platform::cli::HealthArgs;
use sustain_platform::config::Config;
use sustain_testkit::TestDatabase;
use sustain_testkit::proxy::Proxy;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn status(ledger: &Ledger, service: &str) -> Option<ServingStatus> {
    let channel = ledger.server.channel().await.ok()?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .ok()?
        .into_inner();
    ServingStatus::try_from(answer.status).ok()
}

async fn until(ledger: &Ledger, want: ServingStatus) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if status(ledger, "").await == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("health never became {want:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_while_the_database_is_down_and_serving_once_it_is_back() {
    let db = TestDatabase::new().await.expect("database");
    if !db.is_postgres() {
        // SQLite is a file in the process: it has no outage to simulate.
        eprintln!("runs against PostgreSQL (SUSTAIN_TEST_DATABASE_URL); nothing to do on SQLite");
        return;
    }
    let (head, rest) = db.url.split_once('@').expect("user@host");
    let (host, name) = rest.split_once('/').expect("host/database");
    let target = tokio::net::lookup_host(host)
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let link = Proxy::start(target).await.expect("proxy");
    let through = format!("{head}@{}/{name}", link.addr);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut config = Config::defaults(0);
    config.shutdown_grace_secs = 0;
    let server = Ledger::serve(listener, config, &through).await;
    let ledger = Ledger { server, db };
    let probe = HealthArgs {
        args: Default::default(),
        addr: Some(ledger.server.addr.to_string()),
        service: String::new(),
        timeout_ms: 2000,
    };
    assert_eq!(status(&ledger, "").await, Some(ServingStatus::Serving));
    assert!(probe.probe("ledger", 0).await);

    link.set_down(true);
    link.cut();
    until(&ledger, ServingStatus::NotServing).await;
    assert_eq!(
        status(&ledger, "sustain.ledger.v1.TransferService").await,
        Some(ServingStatus::NotServing)
    );
    assert!(
        !probe.probe("ledger", 0).await,
        "the probe command fails too"
    );
    assert_eq!(
        status(&ledger, "liveness").await,
        Some(ServingStatus::Serving),
        "alive all the same: a restart would not bring the database back"
    );
    // Calls meanwhile fail fast, as unavailable (retry later), and write
    // nothing.
    let mut accounts = ledger
        .accounts(sustain_platform::Role::Finance, &["20"])
        .await;
    let mut chain = ledger.chain(sustain_platform::Role::Finance, &["20"]).await;
    for attempt in 0..2 {
        let asked = Instant::now();
        let read = chain
            .get_chain_head(sustain_proto::ledger::v1::GetChainHeadRequest::default())
            .await
            .expect_err("no database");
        let write = accounts
            .create_account(sustain_proto::ledger::v1::CreateAccountRequest {
                account: Some(account(
                    sustain_proto::ledger::v1::AccountKind::Source,
                    sustain_proto::ledger::v1::FundingSource::LocalBudget,
                    "20",
                    "",
                    0,
                )),
                request_id: format!("outage-{attempt}"),
            })
            .await
            .expect_err("no database");
        println!(
            "outage: read {:?}, write {:?}, both in {:?}",
            read.code(),
            write.code(),
            asked.elapsed()
        );
        assert_eq!(read.code(), tonic::Code::Unavailable, "{read:?}");
        assert_eq!(write.code(), tonic::Code::Unavailable, "{write:?}");
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{:?}",
            asked.elapsed()
        );
    }

    link.set_down(false);
    until(&ledger, ServingStatus::Serving).await;
    assert_eq!(
        status(&ledger, "sustain.ledger.v1.TransferService").await,
        Some(ServingStatus::Serving)
    );
    assert!(probe.probe("ledger", 0).await);
    // And it answers calls again.
    let head = ledger
        .chain(sustain_platform::Role::Finance, &["20"])
        .await
        .get_chain_head(sustain_proto::ledger::v1::GetChainHeadRequest::default())
        .await
        .expect("the ledger answers once the database is back");
    assert_eq!(head.into_inner().sequence, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_size_limit_is_refused_and_changes_nothing() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut config = Config::defaults(0);
    config.shutdown_grace_secs = 0;
    config.limits.max_request_bytes = 64 * 1024;
    let ledger = Ledger::start_on(listener, config).await;
    let mut accounts = ledger
        .accounts(sustain_platform::Role::Finance, &["20"])
        .await;
    let mut big = account(
        sustain_proto::ledger::v1::AccountKind::Source,
        sustain_proto::ledger::v1::FundingSource::LocalBudget,
        "20",
        "",
        0,
    );
    big.name = "x".repeat(100 * 1024);
    let refused = accounts
        .create_account(sustain_proto::ledger::v1::CreateAccountRequest {
            account: Some(big),
            request_id: String::new(),
        })
        .await
        .expect_err("100 KiB over a 64 KiB limit");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert_eq!(
        ledger
            .chain(sustain_platform::Role::Finance, &["20"])
            .await
            .get_chain_head(sustain_proto::ledger::v1::GetChainHeadRequest::default())
            .await
            .expect("head")
            .into_inner()
            .sequence,
        0,
        "nothing was written"
    );
}
