//! Review benchmarks, printed as a table (`cargo bench -p sustain-registry --bench reviews`).
//!
//! 1. Import: the demo dataset (BENCH_IMPORT_HOUSEHOLDS households in 2021, default
//!    the full 192,750, about 205,600 households and 795,000 reviews) streamed
//!    through ImportHouseholds to a `sustain-registry serve` child process, beside
//!    the cheapest way the same database can take the same rows in the same run:
//!    on PostgreSQL `COPY … FROM STDIN` of the household, member and review rows
//!    as the import stored them (into copies of the tables with the same
//!    keys and indexes); on SQLite `INSERT INTO copy SELECT … WHERE true`
//!    into copies made from the tables' own definitions, row by row (the
//!    WHERE rules out SQLite's page-for-page copy between identical tables,
//!    which no loader of outside rows can use). The server's resident memory
//!    is sampled while it imports.
//! 2. Province summary for one year over that population: GetPovertySummary p50/p99
//!    through the client; and at the query level the maintained tallies beside
//!    the plain GROUP BY over the reviews (`tally::recount`), after checking that
//!    both give the same rows for every year.
//!
//! SQLite always; PostgreSQL too when SUSTAIN_TEST_DATABASE_URL is set.
//! BENCH_REGISTRY_BIN names another server binary to measure in place of
//! this build's.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Bearer;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use sustain_clients::demo::{Demo, YEARS};
use sustain_proto::registry::v1 as pb;
use sustain_proto::registry::v1::review_service_client::ReviewServiceClient;
use sustain_registry::store::tally;
use sustain_testkit::TestDatabase;
use tonic::transport::Channel;

const BATCH: usize = 1_000;
const SUMMARY_CALLS: usize = 200;
const RECOUNTS: usize = 20;

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1000.0
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

struct Server {
    child: Child,
    address: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server(url: &str) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    // BENCH_REGISTRY_BIN runs another build of the server (an earlier
    // commit's, say) under the same client and baseline, for a comparison.
    let binary = std::env::var("BENCH_REGISTRY_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_sustain-registry").to_owned());
    let mut child = Command::new(binary)
        .args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--database-url", url])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sustain-registry");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut token = String::new();
    while token.is_empty() {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).expect("read") > 0,
            "server exited"
        );
        if line.starts_with("ey") {
            token = line.trim().to_owned();
        }
    }
    std::thread::spawn(move || {
        let mut sink = String::new();
        while stdout.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    Server {
        child,
        address: format!("http://127.0.0.1:{port}"),
        token,
        _dir: dir,
    }
}

type Client = ReviewServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

async fn client(server: &Server) -> Client {
    for _ in 0..200 {
        if let Ok(channel) = Channel::from_shared(server.address.clone())
            .expect("uri")
            .connect()
            .await
        {
            return ReviewServiceClient::with_interceptor(channel, Bearer(server.token.clone()))
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not come up");
}

struct Imported {
    seconds: f64,
    households: u64,
    reviews: u64,
    rss: Vec<(f64, f64)>,
}

async fn import(server: &Server, batches: &[pb::ImportHouseholdsRequest]) -> Imported {
    let mut client = client(server).await;
    let pid = server.child.id();
    let total = batches.len();
    let samples: std::sync::Arc<std::sync::Mutex<Vec<(f64, f64)>>> = Default::default();
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            loop {
                if let Ok(mut s) = samples.lock() {
                    s.push((start.elapsed().as_secs_f64(), rss_mib(pid)));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let owned: Vec<pb::ImportHouseholdsRequest> = batches.to_vec();
    let start = Instant::now();
    let feeder = tokio::spawn(async move {
        for b in owned {
            if tx.send(b).await.is_err() {
                break;
            }
        }
    });
    let mut stream = client
        .import_households(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("import")
        .into_inner();
    let (mut households, mut reviews, mut acks) = (0u64, 0u64, 0usize);
    while let Some(r) = stream.message().await.expect("ack") {
        acks += 1;
        for result in &r.results {
            assert_eq!(
                result.outcome,
                pb::ImportOutcome::Accepted as i32,
                "{:?}",
                result.violations
            );
            households += 1;
            reviews += result.reviews_written as u64;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    feeder.await.expect("feeder");
    assert_eq!(acks, total);
    sampler.abort();
    let rss = samples.lock().map(|s| s.clone()).unwrap_or_default();
    Imported {
        seconds,
        households,
        reviews,
        rss,
    }
}

/// Copies of household, member and review with the same columns, keys and indexes.
async fn copy_tables(db: &DatabaseConnection) {
    for table in ["household", "member", "review"] {
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(&format!(
                "CREATE TABLE copy_{table} (LIKE {table} INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING CONSTRAINTS)"
            ))
            .await
            .expect("copy table");
            continue;
        }
        // The table's own definition under the copy's name (its primary key
        // too, and its references to the original tables), then its indexes.
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                DbBackend::Sqlite,
                format!(
                    "SELECT sql FROM sqlite_master WHERE tbl_name = '{table}' AND sql IS NOT NULL \
                     ORDER BY type = 'index'"
                ),
            ))
            .await
            .expect("definitions");
        for row in rows {
            let sql: String = row.try_get("", "sql").expect("sql");
            let copy = sql
                .replacen(
                    &format!("CREATE TABLE \"{table}\""),
                    &format!("CREATE TABLE \"copy_{table}\""),
                    1,
                )
                .replacen("INDEX \"", "INDEX \"copy_", 1)
                .replacen(
                    &format!("ON \"{table}\""),
                    &format!("ON \"copy_{table}\""),
                    1,
                );
            assert_ne!(copy, sql, "unexpected definition on {table}: {sql}");
            db.execute_unprepared(&copy).await.expect("copy definition");
        }
    }
}

/// Seconds the database takes to load the same rows the fastest way it offers.
async fn baseline(db: &DatabaseConnection) -> f64 {
    copy_tables(db).await;
    match db.get_database_backend() {
        DbBackend::Postgres => {
            use futures::StreamExt;
            use sea_orm::sqlx::postgres::PgPoolCopyExt;
            let pool = db.get_postgres_connection_pool();
            let mut data = vec![];
            for table in ["household", "member", "review"] {
                let mut out = pool
                    .copy_out_raw(&format!("COPY {table} TO STDOUT"))
                    .await
                    .expect("copy out");
                let mut bytes = vec![];
                while let Some(chunk) = out.next().await {
                    bytes.extend_from_slice(&chunk.expect("chunk"));
                }
                data.push((table, bytes));
            }
            let start = Instant::now();
            for (table, bytes) in &data {
                let mut copy = pool
                    .copy_in_raw(&format!("COPY copy_{table} FROM STDIN"))
                    .await
                    .expect("copy in");
                for chunk in bytes.chunks(1 << 20) {
                    copy.send(chunk).await.expect("send");
                }
                copy.finish().await.expect("finish");
            }
            start.elapsed().as_secs_f64()
        }
        _ => {
            let start = Instant::now();
            // The WHERE keeps SQLite from copying an identical table's pages
            // wholesale (its transfer optimisation, which needs both tables in
            // one database): each row is inserted, as a loader's would be.
            db.execute_unprepared(
                "BEGIN; INSERT INTO copy_household SELECT * FROM household WHERE true; \
                 INSERT INTO copy_member SELECT * FROM member WHERE true; \
                 INSERT INTO copy_review SELECT * FROM review WHERE true; COMMIT;",
            )
            .await
            .expect("insert select");
            start.elapsed().as_secs_f64()
        }
    }
}

async fn summaries(server: &Server, db: &DatabaseConnection) -> [(f64, f64); 3] {
    // The tallies must equal a recount, every year, or the speed means nothing.
    for year in YEARS {
        let mut a = tally::read(db, "20", year, None).await.expect("tally");
        let mut b = tally::recount(db, "20", year, None).await.expect("recount");
        let key = |r: &tally::TallyRow| {
            format!(
                "{}|{}|{}|{}|{}|{}",
                r.child_unit, r.ethnic_minority, r.residence, r.class, r.transition, r.mpi_poor
            )
        };
        a.sort_by_key(key);
        b.sort_by_key(key);
        assert_eq!(a, b, "tallies differ from a recount for {year}");
    }
    let mut client = client(server).await;
    let request = pb::GetPovertySummaryRequest {
        unit_code: "20".into(),
        year: 2021,
        unassigned_from: String::new(),
    };
    let mut rpc = vec![];
    for _ in 0..SUMMARY_CALLS {
        let start = Instant::now();
        let s = client
            .get_poverty_summary(request.clone())
            .await
            .expect("summary");
        rpc.push(start.elapsed());
        assert_eq!(
            s.into_inner()
                .summary
                .expect("summary")
                .poor
                .expect("poor")
                .percent,
            "12.2"
        );
    }
    let mut read = vec![];
    for _ in 0..SUMMARY_CALLS {
        let start = Instant::now();
        tally::read(db, "20", 2021, None).await.expect("tally");
        read.push(start.elapsed());
    }
    let mut recount = vec![];
    for _ in 0..RECOUNTS {
        let start = Instant::now();
        tally::recount(db, "20", 2021, None).await.expect("recount");
        recount.push(start.elapsed());
    }
    [
        (percentile(&mut rpc, 0.5), percentile(&mut rpc, 0.99)),
        (percentile(&mut read, 0.5), percentile(&mut read, 0.99)),
        (
            percentile(&mut recount, 0.5),
            percentile(&mut recount, 0.99),
        ),
    ]
}

#[tokio::main]
async fn main() {
    let households: u64 = std::env::var("BENCH_IMPORT_HOUSEHOLDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(sustain_clients::demo::LANG_SON[0].households);
    // BENCH_IMPORT_BATCH: households per request (at most the server's 2,000).
    let batch: usize = std::env::var("BENCH_IMPORT_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(BATCH);
    let postgres = std::env::var("SUSTAIN_TEST_DATABASE_URL").ok();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "review benchmarks: demo seed 2021, {households} households in 2021, {batch} a request, {cpus} CPUs"
    );

    let start = Instant::now();
    let mut demo = Demo::new(sustain_clients::demo::DEFAULT_SEED, households).expect("demo");
    let rows: Vec<pb::ImportRow> = (0..demo.households()).map(|i| demo.row(i)).collect();
    let batches: Vec<pb::ImportHouseholdsRequest> = rows
        .chunks(batch)
        .map(|c| pb::ImportHouseholdsRequest { rows: c.to_vec() })
        .collect();
    drop(rows);
    println!(
        "generated {} households in {:.1} s (not timed below)",
        demo.households(),
        start.elapsed().as_secs_f64()
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
        let db = TestDatabase::new().await.expect("database");
        let server = spawn_server(&db.url);
        let imported = import(&server, &batches).await;
        let direct = sustain_db::connect(&db.url).await.expect("connect");
        let summary = summaries(&server, &direct).await;
        let base = baseline(&direct).await;
        let rss: Vec<f64> = imported.rss.iter().map(|(_, m)| *m).collect();
        let quarter = |q: usize| rss.get(rss.len() * q / 4).copied().unwrap_or(0.0);
        println!();
        println!("== {name}");
        println!(
            "import: {} households, {} reviews in {:.1} s: {:.0} households/s, {:.0} reviews/s",
            imported.households,
            imported.reviews,
            imported.seconds,
            imported.households as f64 / imported.seconds,
            imported.reviews as f64 / imported.seconds
        );
        println!(
            "baseline ({}): {:.2} s for the same rows; import/baseline speed ratio {:.3}",
            if name == "PostgreSQL" {
                "COPY FROM STDIN"
            } else {
                "INSERT … SELECT"
            },
            base,
            base / imported.seconds
        );
        println!(
            "server RSS during import (MiB) at 0/25/50/75/100%: {:.0} / {:.0} / {:.0} / {:.0} / {:.0} (max {:.0})",
            quarter(0),
            quarter(1),
            quarter(2),
            quarter(3),
            rss.last().copied().unwrap_or(0.0),
            rss.iter().copied().fold(0.0, f64::max)
        );
        println!("province summary 2021 (tallies equal a recount for 2021–2024):");
        println!(
            "  GetPovertySummary RPC   p50 {:>8.2} ms  p99 {:>8.2} ms",
            summary[0].0, summary[0].1
        );
        println!(
            "  tally query             p50 {:>8.2} ms  p99 {:>8.2} ms",
            summary[1].0, summary[1].1
        );
        println!(
            "  plain GROUP BY recount  p50 {:>8.2} ms  p99 {:>8.2} ms",
            summary[2].0, summary[2].1
        );
        println!(
            "  recount / tally p50: {:.0}×; recount / RPC p50: {:.0}×",
            summary[2].0 / summary[1].0,
            summary[2].0 / summary[0].0
        );
        drop(server);
    }
}
