//! Fault suite, import: the registry as its own process, killed with SIGKILL
//! at random moments while the import CLI's client sends a file, and the
//! import run again until it finishes. The households, their keys, citizen
//! IDs and review years are each there once, and the tallies and the
//! province's summaries for every year equal those of the same file imported
//! without interruption. Prints the figures as a table.
//! `SUSTAIN_FAULT_PROFILE=long`: a larger file and more kills.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::{Rng, SeedableRng};
use sea_orm::{ConnectionTrait, Statement};
use sustain_clients::demo::{Demo, YEARS};
use sustain_clients::import_client::{DEFAULT_BATCH_BYTES, ImportOptions, import};
use sustain_clients::import_file::CsvWriter;
use sustain_platform::Role;
use sustain_proto::registry::v1 as pb;
use sustain_testkit::process::Process;
use sustain_testkit::server::Bearer;
use sustain_testkit::{FIELD_KEY, JWT_SECRET, LOOKUP_KEY, TestDatabase, token};
use tonic::transport::Channel;

fn households() -> u64 {
    match std::env::var("SUSTAIN_FAULT_PROFILE").as_deref() {
        Ok("long") => 20_000,
        _ => 2_000,
    }
}

/// What an import left: households, then per year the province's summary.
async fn figures(addr: std::net::SocketAddr) -> (i64, Vec<pb::PovertySummary>) {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let bearer = Bearer(token(Role::Admin, &["20"]));
    let count = pb::household_service_client::HouseholdServiceClient::with_interceptor(
        channel.clone(),
        bearer.clone(),
    )
    .count_households(pb::CountHouseholdsRequest { filter: None })
    .await
    .expect("count")
    .into_inner()
    .count;
    let series = pb::review_service_client::ReviewServiceClient::with_interceptor(channel, bearer)
        .get_poverty_series(pb::GetPovertySeriesRequest {
            unit_code: "20".into(),
            from_year: YEARS[0],
            to_year: YEARS[YEARS.len() - 1],
            unassigned_from: String::new(),
        })
        .await
        .expect("series")
        .into_inner()
        .summaries;
    (count, series)
}

/// Rows that are there more than once, by what must be unique.
async fn duplicates(url: &str) -> Vec<(&'static str, i64)> {
    let db = sustain_db::connect(url).await.expect("connect");
    let backend = db.get_database_backend();
    let mut out = vec![];
    for (what, sql) in [
        (
            "households under two keys",
            "SELECT COUNT(*) AS n FROM (SELECT household_id FROM import_key GROUP BY household_id HAVING COUNT(*) > 1) d",
        ),
        (
            "households without a key",
            "SELECT COUNT(*) AS n FROM household h WHERE NOT EXISTS (SELECT 1 FROM import_key k WHERE k.household_id = h.id)",
        ),
        (
            "citizen IDs held twice",
            "SELECT COUNT(*) AS n FROM (SELECT citizen_id_hash FROM member WHERE citizen_id_hash IS NOT NULL GROUP BY citizen_id_hash HAVING COUNT(*) > 1) d",
        ),
        (
            "review years held twice",
            "SELECT COUNT(*) AS n FROM (SELECT household_id, year, revision FROM review GROUP BY household_id, year, revision HAVING COUNT(*) > 1) d",
        ),
    ] {
        let row = db
            .query_one_raw(Statement::from_string(backend, sql))
            .await
            .expect("query")
            .expect("row");
        out.push((what, row.try_get::<i64>("", "n").expect("n")));
    }
    db.close().await.expect("close");
    out
}

fn config_file(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let file = dir.join(format!("registry-{}.toml", uuid::Uuid::now_v7()));
    std::fs::write(
        &file,
        format!(
            "database_url = \"{url}\"\nshutdown_grace_secs = 0\n[auth]\njwt_secret = \"{jwt}\"\n[crypto]\nfield_key = \"{field}\"\nlookup_key = \"{lookup}\"\n",
            jwt = B64.encode(JWT_SECRET),
            field = B64.encode(FIELD_KEY),
            lookup = B64.encode(LOOKUP_KEY),
        ),
    )
    .expect("config");
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_import_killed_and_run_again_ends_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ho-ngheo.csv");
    let mut demo = Demo::new(21, households()).expect("demo");
    let total = demo.households();
    let mut out = CsvWriter::new(std::fs::File::create(&file).expect("file")).expect("csv");
    for i in 0..total {
        out.write(&demo.row(i)).expect("row");
    }
    out.finish().expect("written");
    let bearer = token(Role::Admin, &["20"]);
    let options = |server: &'static str, rejected: &str| ImportOptions {
        file: &file,
        server,
        token: &bearer,
        rejected_file: dir.path().join(rejected),
        batch_size: 100,
        batch_bytes: DEFAULT_BATCH_BYTES,
        progress: false,
        tls: None,
    };

    // The control: the same file, nothing killed.
    let control_db = TestDatabase::new().await.expect("database");
    let mut control = Process::new(
        env!("CARGO_BIN_EXE_sustain-registry"),
        config_file(dir.path(), &control_db.url),
        sustain_testkit::free_addr().expect("addr"),
        "sustain.registry.v1.ReviewService",
    );
    control.spawn();
    control.wait_serving().await;
    let control_url: &'static str = format!("http://{}", control.addr).leak();
    let whole = import(options(control_url, "control-rejected.csv"))
        .await
        .expect("control import");
    let expected = figures(control.addr).await;
    control.kill();

    // Killed at random moments, run again until it finishes.
    let db = TestDatabase::new().await.expect("database");
    let mut process = Process::new(
        env!("CARGO_BIN_EXE_sustain-registry"),
        config_file(dir.path(), &db.url),
        sustain_testkit::free_addr().expect("addr"),
        "sustain.registry.v1.ReviewService",
    );
    process.spawn();
    process.wait_serving().await;
    let url: &'static str = format!("http://{}", process.addr).leak();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let (mut runs, mut kills) = (0, 0);
    let last = loop {
        runs += 1;
        let running = import(options(url, "rejected.csv"));
        let after = Duration::from_millis(rng.random_range(150..900));
        tokio::pin!(running);
        let outcome = tokio::select! {
            done = &mut running => Some(done),
            () = tokio::time::sleep(after), if kills < 5 => None,
        };
        match outcome {
            Some(Ok(report)) => break report,
            Some(Err(e)) => {
                // Stopped by the last kill before it noticed: run again.
                assert!(
                    e.downcast_ref::<sustain_clients::import_client::Incomplete>()
                        .is_some()
                        || format!("{e:#}").contains("connect")
                        || format!("{e:#}").contains("import"),
                    "{e:#}"
                );
                process.wait_serving().await;
            }
            None => {
                process.kill();
                kills += 1;
                // Let the client see the cut before the server is back.
                let _ = running.await;
                process.spawn();
                process.wait_serving().await;
            }
        }
        assert!(runs < 40, "the import never finished");
    };
    let got = figures(process.addr).await;
    let doubled = duplicates(&db.url).await;

    println!("\nimport under kill -9 ({total} households)");
    println!("  runs                       {runs:>7}");
    println!("  kills                      {kills:>7}");
    println!(
        "  control: accepted/rejected {:>7} / {}",
        whole.accepted, whole.rejected
    );
    println!(
        "  last run: new/unchanged    {:>7} / {}",
        last.accepted, last.unchanged
    );
    println!("  households (control, here) {:>7} / {}", expected.0, got.0);
    for (what, n) in &doubled {
        println!("  {what:<28} {n:>5}");
    }
    let years_off = expected
        .1
        .iter()
        .zip(&got.1)
        .filter(|(a, b)| a != b)
        .count();
    println!("  yearly summaries that differ {years_off:>5}");

    assert!(kills >= 1, "the import was never cut");
    assert_eq!(got.0, expected.0, "households");
    assert_eq!(got.1, expected.1, "the province's summaries, year by year");
    assert!(doubled.iter().all(|(_, n)| *n == 0), "{doubled:?}");
    assert_eq!(
        last.households, whole.households,
        "the last run saw the whole file"
    );
    assert_eq!(last.rejected, whole.rejected);
}
