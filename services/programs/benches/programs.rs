//! Programme benchmarks, printed as a table (`cargo bench -p sustain-programs`).
//!
//! Over a registry holding the demo population (BENCH_HOUSEHOLDS households in
//! 2021, default 20,000) and a programmes service calling it over loopback:
//!
//! 1. Enrolment throughput, the registry check included: 50 models × 1,000
//!    households through BatchCreateEnrolments (one registry call per batch),
//!    beside the registry check alone (BatchGetStandings of the same batches)
//!    in the same run.
//! 2. The province's programme summary over 5,000 models and those 50,000
//!    enrolments: GetProgrammeSummary p50/p99 through the client, beside the
//!    same figures read in-process without the registry's under-five count,
//!    the models-and-enrolments part from the tallies beside the same recounted
//!    from the enrolments (checked equal first), and a bare
//!    `SELECT COUNT(*) FROM enrolment`.
//!
//! SQLite, and PostgreSQL too when SUSTAIN_TEST_DATABASE_URL is set;
//! BENCH_BACKEND=sqlite or postgres runs one of them.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use sea_orm::{ConnectionTrait, Database, Statement};
use sustain_platform::Role;
use sustain_platform::config::Config;
use sustain_proto::programs::v1 as pb;
use sustain_proto::registry::v1 as reg;
use sustain_proto::registry::v1::household_service_client::HouseholdServiceClient;
use sustain_proto::registry::v1::review_service_client::ReviewServiceClient;
use sustain_testkit::{FIELD_KEY, JWT_SECRET, LOOKUP_KEY, TestDatabase, token};

const MODELS_ENROLLING: usize = 50;
const BATCH: usize = 1_000;
const MODELS: usize = 5_000;
const SUMMARY_CALLS: usize = 100;

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1000.0
}

async fn run(backend: &str) -> anyhow::Result<()> {
    let households: u64 = std::env::var("BENCH_HOUSEHOLDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let registry_db = TestDatabase::new().await?;
    let programs_db = TestDatabase::new().await?;
    let mut config = Config::defaults(0);
    config.database_url = registry_db.url.clone();
    config.auth.jwt_secret = Some(B64.encode(JWT_SECRET));
    config.crypto.field_key = Some(B64.encode(FIELD_KEY));
    config.crypto.lookup_key = Some(B64.encode(LOOKUP_KEY));
    sustain_registry::demo_cli::run(&config, 7, households, None, false).await?;
    let registry = start_registry(&registry_db.url).await;
    let programs = start_programs(&programs_db.url, registry.addr, 5_000).await;
    let admin = token(Role::Admin, &["*"]);

    // Every household of the province, by id.
    let mut hh = HouseholdServiceClient::with_interceptor(
        registry.channel().await.expect("connect"),
        Bearer(admin.clone()),
    );
    let mut ids = vec![];
    let mut page_token = String::new();
    loop {
        let page = hh
            .list_households(reg::ListHouseholdsRequest {
                filter: Some(reg::HouseholdFilter {
                    unit_code: "20".into(),
                    ..Default::default()
                }),
                page_size: 500,
                page_token,
            })
            .await?
            .into_inner();
        ids.extend(page.households.into_iter().map(|h| h.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut livelihood = sustain_proto::programs::v1::livelihood_service_client::LivelihoodServiceClient::with_interceptor(
        programs.channel().await.expect("connect"),
        Bearer(admin.clone()),
    );
    let model = |i: usize| pb::LivelihoodModel {
        project_code: if i.is_multiple_of(3) {
            "NTP-SPR.3.1"
        } else {
            "NTP-SPR.2"
        }
        .into(),
        name: format!("Mô hình {i}"),
        r#type: [1, 1, 1, 2, 3][i % 5],
        unit_code: "20".into(),
        start_date: "2022-03-01".into(),
        end_date: "2025-12-31".into(),
        budget_vnd: 500_000_000,
        jobs_created: 12,
        ..Default::default()
    };
    let mut model_ids = vec![];
    for i in 0..MODELS_ENROLLING {
        model_ids.push(create_model(&mut livelihood, model(i)).await?.id);
    }
    let batches: Vec<Vec<String>> = (0..MODELS_ENROLLING)
        .map(|m| {
            (0..BATCH)
                .map(|k| ids[(m * BATCH + k) % ids.len()].clone())
                .collect()
        })
        .collect();

    // The registry check alone, same batches.
    let mut reviews = ReviewServiceClient::with_interceptor(
        registry.channel().await.expect("connect"),
        Bearer(admin.clone()),
    );
    let started = Instant::now();
    for b in &batches {
        reviews
            .batch_get_standings(reg::BatchGetStandingsRequest {
                year: 2024,
                household_ids: b.clone(),
                include_members: false,
            })
            .await?;
    }
    let check_only = started.elapsed();

    let started = Instant::now();
    for (m, b) in model_ids.iter().zip(&batches) {
        enrol(&mut livelihood, m, b, "2024-03-01").await?;
    }
    let enrolling = started.elapsed();
    let enrolments = (MODELS_ENROLLING * BATCH) as f64;

    // The rest of the 5,000 models, eight calls in flight.
    let mut rest = MODELS_ENROLLING;
    while rest < MODELS {
        let wave: Vec<_> = (rest..(rest + 8).min(MODELS))
            .map(|i| {
                let mut client = livelihood.clone();
                async move { create_model(&mut client, model(i)).await }
            })
            .collect();
        for r in futures::future::join_all(wave).await {
            r?;
        }
        rest += 8;
    }
    if backend == "SQLite" {
        // As `serve` does at start-up after a load.
        let db = Database::connect(&programs_db.url).await?;
        db.execute_unprepared("PRAGMA optimize=0x10002").await?;
    }

    let mut summary = sustain_proto::programs::v1::programme_summary_service_client::ProgrammeSummaryServiceClient::with_interceptor(
        programs.channel().await.expect("connect"),
        Bearer(admin.clone()),
    );
    let request = pb::GetProgrammeSummaryRequest {
        unit_code: "20".into(),
        from_year: 2021,
        to_year: 2024,
    };
    let t = Instant::now();
    let first = summary
        .get_programme_summary(request.clone())
        .await?
        .into_inner()
        .summary
        .unwrap_or_default();
    let first_call = t.elapsed().as_secs_f64() * 1000.0;
    let figures = first.models.clone().unwrap_or_default();
    anyhow::ensure!(
        figures.models == MODELS as i64,
        "summary counts {} models",
        figures.models
    );
    anyhow::ensure!(
        figures.enrolments == enrolments as i64,
        "summary counts {} enrolments",
        figures.enrolments
    );
    let mut through_client = vec![];
    for _ in 0..SUMMARY_CALLS {
        let t = Instant::now();
        summary.get_programme_summary(request.clone()).await?;
        through_client.push(t.elapsed());
    }
    let db = sustain_db::connect(&programs_db.url).await?;
    let today = sustain_platform::api::today();
    // The tallies must equal a recount before their speed means anything.
    let tallied = sustain_programs::summary::model_figures(&db, "20", 2021, 2024).await?;
    let recounted = sustain_programs::summary::recount_model_figures(&db, "20", 2021, 2024).await?;
    anyhow::ensure!(tallied == recounted, "tallies differ from a recount");
    let mut from_tallies = vec![];
    let mut recount = vec![];
    for _ in 0..SUMMARY_CALLS / 5 {
        let t = Instant::now();
        sustain_programs::summary::model_figures(&db, "20", 2021, 2024).await?;
        from_tallies.push(t.elapsed());
        let t = Instant::now();
        sustain_programs::summary::recount_model_figures(&db, "20", 2021, 2024).await?;
        recount.push(t.elapsed());
    }
    let mut local = vec![];
    let mut bare = vec![];
    for _ in 0..SUMMARY_CALLS {
        let t = Instant::now();
        sustain_programs::summary::local_summary(&db, "20", 2021, 2024, today).await?;
        local.push(t.elapsed());
        let t = Instant::now();
        db.query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM enrolment",
        ))
        .await?;
        bare.push(t.elapsed());
    }
    if std::env::var("BENCH_BREAKDOWN").is_ok() {
        use sustain_programs::summary as sm;
        for (name, f) in [
            ("models", 0),
            ("training", 1),
            ("support", 2),
            ("communication", 3),
            ("inspections", 4),
        ] {
            let t = Instant::now();
            for _ in 0..5 {
                match f {
                    0 => {
                        sm::model_figures(&db, "20", 2021, 2024).await?;
                    }
                    1 => {
                        sm::training_figures(&db, "20", 2021, 2024).await?;
                    }
                    2 => {
                        sm::support_figures(&db, "20", 2021, 2024).await?;
                    }
                    3 => {
                        sm::communication_figures(&db, "20", 2021, 2024).await?;
                    }
                    _ => {
                        sm::inspection_figures(&db, "20", 2021, 2024, today).await?;
                    }
                }
            }
            println!(
                "  breakdown {name}: {:.1} ms",
                t.elapsed().as_secs_f64() * 1000.0 / 5.0
            );
        }
    }
    let mut hh_count = vec![];
    for _ in 0..20 {
        let t = Instant::now();
        hh.count_members(reg::CountMembersRequest {
            filter: Some(reg::HouseholdFilter {
                unit_code: "20".into(),
                ..Default::default()
            }),
            born_from: "2020-01-01".into(),
            born_to: "2024-12-31".into(),
        })
        .await?;
        hh_count.push(t.elapsed());
    }

    println!(
        "\n{backend}: registry of {} households, {MODELS} models, {} enrolments",
        ids.len(),
        enrolments
    );
    println!(
        "  enrol {MODELS_ENROLLING} × {BATCH} (registry check included)   {:>8.0} enrolments/s   ({:.2} s)",
        enrolments / enrolling.as_secs_f64(),
        enrolling.as_secs_f64()
    );
    println!(
        "  registry check alone, same batches              {:>8.0} households/s  ({:.2} s, {:.0}% of enrolling)",
        enrolments / check_only.as_secs_f64(),
        check_only.as_secs_f64(),
        100.0 * check_only.as_secs_f64() / enrolling.as_secs_f64()
    );
    println!(
        "  GetProgrammeSummary (province, 2021–2024)       p50 {:>6.2} ms   p99 {:>6.2} ms",
        percentile(&mut through_client, 0.5),
        percentile(&mut through_client, 0.99)
    );
    println!("  the first call (registry count not yet cached)      {first_call:>6.2} ms");
    println!(
        "  the same figures in-process, no registry        p50 {:>6.2} ms",
        percentile(&mut local, 0.5)
    );
    let (tallies_p50, recount_p50) = (
        percentile(&mut from_tallies, 0.5),
        percentile(&mut recount, 0.5),
    );
    println!("  models and enrolments from the tallies          p50 {tallies_p50:>6.2} ms");
    println!(
        "  the same recounted from the enrolments          p50 {recount_p50:>6.2} ms   ({:.0}× slower)",
        recount_p50 / tallies_p50
    );
    println!(
        "  registry CountMembers (under-five, province)    p50 {:>6.2} ms",
        percentile(&mut hh_count, 0.5)
    );
    println!(
        "  SELECT COUNT(*) FROM enrolment                  p50 {:>6.2} ms",
        percentile(&mut bare, 0.5)
    );
    programs.stop().await.expect("stopped cleanly");
    registry.stop().await.expect("stopped cleanly");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pg = std::env::var(sustain_testkit::DATABASE_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty());
    // Warnings (a dependency unavailable, say) on stderr; RUST_LOG for more.
    sustain_platform::telemetry::init(sustain_platform::config::LogFormat::Text, "warn");
    // BENCH_BACKEND=sqlite or postgres runs one half only.
    let only = std::env::var("BENCH_BACKEND").unwrap_or_default();
    sustain_testkit::set_database_url(None);
    if only != "postgres" {
        run("SQLite").await?;
    }
    if only == "sqlite" {
        return Ok(());
    }
    if let Some(url) = pg {
        sustain_testkit::set_database_url(Some(url));
        run("PostgreSQL").await?;
    }
    Ok(())
}
