//! Sync benchmarks, printed (`cargo bench -p sustain-registry --bench sync`).
//!
//! 1. Catch-up: the demo population (BENCH_SYNC_HOUSEHOLDS_2021 households in
//!    2021, default 187,500: about 200,000 households and 775,000 reviews),
//!    moved into district 181's communes and imported into the district's
//!    instance while its province is down; then the province starts and pulls
//!    it all. The time until the province is at the district's head, beside the
//!    district's own import of the same rows in the same run.
//! 2. Steady state: two writers create households at the district as fast as
//!    they can for BENCH_SYNC_SECONDS (default 10). Each household's lag is its
//!    apply time at the province less its write time at the district, both read
//!    from the databases afterwards: p50, p99, max.
//!
//! BENCH_SYNC_BATCH sets `sync.batch_size` (default 1,000).
//! Both instances run in this process on loopback, each over its own database:
//! SQLite always; PostgreSQL too when SUSTAIN_TEST_DATABASE_URL is set.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Bearer, household_in, registry_on};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};
use sustain_clients::demo::Demo;
use sustain_platform::Role;
use sustain_platform::config::{Config, PeerConfig};
use sustain_platform::journal::outbox;
use sustain_proto::registry::v1 as pb;
use sustain_proto::registry::v1::household_service_client::HouseholdServiceClient;
use sustain_proto::registry::v1::review_service_client::ReviewServiceClient;
use sustain_proto::sync::v1 as spb;
use sustain_proto::sync::v1::sync_service_client::SyncServiceClient;
use sustain_testkit::server::Running;
use sustain_testkit::{TestDatabase, token};
use tonic::transport::Channel;

const IMPORT_BATCH: usize = 1_000;
const DISTRICT: &str = "district-181";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(name: &str, scope: &str, url: &str) -> Config {
    let mut c = Config::defaults(0);
    c.database_url = url.to_owned();
    c.shutdown_grace_secs = 0;
    c.sync.instance = name.into();
    c.sync.scope = vec![scope.into()];
    c.sync.batch_size = env_or("BENCH_SYNC_BATCH", 1000) as u32;
    c
}

/// One instance: a registry on a listener bound beforehand.
struct Instance {
    addr: SocketAddr,
    running: Running,
}

impl Instance {
    async fn start(listener: tokio::net::TcpListener, config: Config) -> Instance {
        let running = registry_on(listener, config).await;
        Instance {
            addr: running.addr,
            running,
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    async fn stop(self) {
        self.running.stop().await.expect("stopped cleanly");
    }
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

async fn count(db: &sea_orm::DatabaseConnection, table: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .expect("count")
        .expect("a row");
    row.try_get("", "n").expect("n")
}

/// The district's rows: the demo population in district 181's communes.
fn rows(households_2021: u64) -> Vec<pb::ImportHouseholdsRequest> {
    let communes: Vec<String> = sustain_domain::admin::catalog()
        .communes_under(
            "181",
            chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"),
        )
        .into_iter()
        .map(|u| u.code.clone())
        .collect();
    let mut demo = Demo::new(sustain_clients::demo::DEFAULT_SEED, households_2021).expect("demo");
    let reform = sustain_domain::admin::reform_date().to_string();
    let rows: Vec<pb::ImportRow> = (0..demo.households())
        .map(|i| demo.row(i))
        // District 181 ended with the reform: the demo's households
        // registered after it belong to no district instance.
        .filter(|row| {
            row.household
                .as_ref()
                .is_some_and(|h| h.registered_on < reform)
        })
        .enumerate()
        .map(|(i, mut row)| {
            if let Some(a) = row.household.as_mut().and_then(|h| h.address.as_mut()) {
                a.commune_code = communes[i % communes.len()].clone();
            }
            row
        })
        .collect();
    rows.chunks(IMPORT_BATCH)
        .map(|c| pb::ImportHouseholdsRequest { rows: c.to_vec() })
        .collect()
}

async fn import(district: &Instance, batches: &[pb::ImportHouseholdsRequest]) -> (u64, f64) {
    let mut client = ReviewServiceClient::with_interceptor(
        district.channel().await,
        Bearer(token(Role::Admin, &["181"])),
    )
    .max_decoding_message_size(64 * 1024 * 1024)
    .max_encoding_message_size(64 * 1024 * 1024);
    let start = Instant::now();
    let mut answers = client
        .import_households(tokio_stream::iter(batches.to_vec()))
        .await
        .expect("import")
        .into_inner();
    let mut accepted = 0u64;
    while let Some(answer) = answers.message().await.expect("answer") {
        accepted += answer
            .results
            .iter()
            .filter(|r| r.outcome == pb::ImportOutcome::Accepted as i32)
            .count() as u64;
    }
    (accepted, start.elapsed().as_secs_f64())
}

async fn status(province: &Instance) -> spb::GetSyncStatusResponse {
    let mut sync = SyncServiceClient::with_interceptor(
        province.channel().await,
        Bearer(token(Role::Admin, &["*"])),
    );
    sync.get_sync_status(spb::GetSyncStatusRequest {})
        .await
        .expect("status")
        .into_inner()
}

async fn wait_caught_up(province: &Instance, head: i64, limit: Duration) -> f64 {
    let start = Instant::now();
    loop {
        let s = status(province).await;
        if s.peers.first().is_some_and(|p| p.cursor >= head) {
            return start.elapsed().as_secs_f64();
        }
        assert!(
            start.elapsed() < limit,
            "not caught up within {limit:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run(name: &str, batches: &[pb::ImportHouseholdsRequest], seconds: u64) {
    let district_db = TestDatabase::new().await.expect("db");
    let province_db = TestDatabase::new().await.expect("db");
    let lp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ld = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (p_addr, d_addr) = (
        lp.local_addr().expect("addr"),
        ld.local_addr().expect("addr"),
    );
    let mut d = config(DISTRICT, "181", &district_db.url);
    d.sync.upstream = Some(PeerConfig {
        name: "province".into(),
        url: format!("http://{p_addr}"),
        scope: vec![],
    });
    let mut p = config("province", "20", &province_db.url);
    p.sync.downstream = vec![PeerConfig {
        name: DISTRICT.into(),
        url: format!("http://{d_addr}"),
        scope: vec!["181".into()],
    }];
    // The province's port stays closed while the district imports.
    drop(lp);
    let district = Instance::start(ld, d).await;
    let (accepted, import_secs) = import(&district, batches).await;
    let direct_d = sustain_db::connect(&district_db.url)
        .await
        .expect("connect");
    let head = sustain_platform::journal::head(&direct_d)
        .await
        .expect("head");
    let reviews = count(&direct_d, "review").await;

    let lp = tokio::net::TcpListener::bind(p_addr).await.expect("rebind");
    let started = Instant::now();
    let province = Instance::start(lp, p).await;
    let ready = started.elapsed().as_secs_f64();
    let caught = wait_caught_up(&province, head, Duration::from_secs(1800)).await;
    let catch_up = started.elapsed().as_secs_f64();
    let direct_p = sustain_db::connect(&province_db.url)
        .await
        .expect("connect");
    for table in ["household", "member", "review", "review_tally"] {
        assert_eq!(
            count(&direct_p, table).await,
            count(&direct_d, table).await,
            "{table} differs after catch-up"
        );
    }

    // Steady state: two writers as fast as they go.
    let steady_from = sustain_platform::journal::head(&direct_p)
        .await
        .expect("head");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut writers = vec![];
    for w in 0..2 {
        let channel = district.channel().await;
        writers.push(tokio::spawn(async move {
            let mut client = HouseholdServiceClient::with_interceptor(
                channel,
                Bearer(token(Role::Enumerator, &["181"])),
            );
            let mut n = 0u64;
            while Instant::now() < deadline {
                let h = household_in("06067", "2022-05-01", &format!("Bench {w} {n}"), "");
                client
                    .create_household(pb::CreateHouseholdRequest {
                        household: Some(h),
                        request_id: String::new(),
                    })
                    .await
                    .expect("create");
                n += 1;
            }
            n
        }));
    }
    let mut written = 0;
    for w in writers {
        written += w.await.expect("writer");
    }
    let head = sustain_platform::journal::head(&direct_d)
        .await
        .expect("head");
    wait_caught_up(&province, head, Duration::from_secs(60)).await;
    let applied = outbox::Entity::find()
        .filter(outbox::Column::Seq.gt(steady_from))
        .filter(outbox::Column::Origin.eq(DISTRICT))
        .all(&direct_p)
        .await
        .expect("outbox");
    // When each was journaled at the district (the states are sealed: the
    // district's own outbox says when it wrote them).
    let written_at: std::collections::HashMap<(String, i64), chrono::DateTime<chrono::Utc>> =
        outbox::Entity::find()
            .filter(outbox::Column::Seq.gt(head - written as i64))
            .all(&direct_d)
            .await
            .expect("district outbox")
            .into_iter()
            .map(|row| ((row.record_id, row.version), row.recorded_at))
            .collect();
    let mut lags: Vec<f64> = applied
        .iter()
        .filter_map(|row| {
            let written = written_at.get(&(row.record_id.clone(), row.version))?;
            Some((row.recorded_at - *written).num_microseconds()? as f64 / 1000.0)
        })
        .collect();
    assert_eq!(
        lags.len() as u64,
        written,
        "every household written is at the province"
    );

    println!();
    println!("== {name}");
    println!(
        "district import: {accepted} households, {reviews} reviews in {import_secs:.1} s ({:.0} households/s)",
        accepted as f64 / import_secs
    );
    println!(
        "catch-up at the province: {head_changes} changes in {catch_up:.1} s (start-up and migrations {ready:.2} s, pulling {caught:.1} s): {:.0} changes/s; catch-up / import time {:.2}",
        (head as f64 - written as f64) / catch_up,
        catch_up / import_secs,
        head_changes = head - written as i64,
    );
    println!(
        "steady state: {written} households in {seconds} s by 2 writers ({:.0}/s); lag at the province p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        written as f64 / seconds as f64,
        percentile(&mut lags, 0.5),
        percentile(&mut lags, 0.99),
        percentile(&mut lags, 1.0),
    );
    province.stop().await;
    district.stop().await;
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let households_2021 = env_or("BENCH_SYNC_HOUSEHOLDS_2021", 187_500);
    let seconds = env_or("BENCH_SYNC_SECONDS", 10);
    let postgres = std::env::var(sustain_testkit::DATABASE_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty());
    let start = Instant::now();
    let batches = rows(households_2021);
    println!(
        "generated {} households in district 181 in {:.1} s (not timed below); {} cores",
        batches.iter().map(|b| b.rows.len()).sum::<usize>(),
        start.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // BENCH_BACKEND=sqlite or postgres runs one half.
    let only = std::env::var("BENCH_BACKEND").unwrap_or_default();
    let mut backends: Vec<(&str, Option<String>)> = vec![];
    if only != "postgres" {
        backends.push(("SQLite", None));
    }
    if let Some(url) = postgres.filter(|_| only != "sqlite") {
        backends.push(("PostgreSQL", Some(url)));
    }
    for (name, url) in backends {
        sustain_testkit::set_database_url(url);
        run(name, &batches, seconds).await;
    }
}
