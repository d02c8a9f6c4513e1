//! `sustain-registry demo`: generates the synthetic Lạng Sơn and loads it through
//! the same importer the ImportHouseholds stream uses (generation on one thread,
//! writing on another), then prints the province's certified summaries the way
//! the province reports them.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use sea_orm::ConnectionTrait;
use sustain_domain::poverty::Standards;
use sustain_platform::config::Config;
use sustain_platform::progress::Progress;
use sustain_platform::{Caller, Role, Scope};
use sustain_proto::registry::v1 as pb;

use crate::reviews::import::Importer;
use crate::reviews::import::RowOutcome;
use crate::store::Vault;
use sustain_clients::demo::{Demo, PROVINCE, YEARS};
use sustain_clients::import_file::CsvWriter;

const BATCH: usize = 1_000;

pub async fn run(
    config: &Config,
    seed: u64,
    households: u64,
    out: Option<&Path>,
    progress: bool,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut demo = tokio::task::spawn_blocking(move || Demo::new(seed, households)).await??;
    let total = demo.households();
    let bar = Progress::new("households", total as u64, progress);

    if let Some(path) = out {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer = CsvWriter::new(std::io::BufWriter::new(file))?;
        for i in 0..total {
            writer.write(&demo.row(i))?;
            bar.inc(1);
        }
        writer.finish()?;
        bar.finish();
        println!("wrote {total} households to {}", path.display());
        return Ok(());
    }

    let secrets = config.secrets()?;
    let db = crate::connect_and_migrate(&config.database_url).await?;
    let standards = Arc::new(crate::load_standards(config)?);
    let vault = Vault {
        cipher: secrets.cipher(),
        hasher: secrets.hasher(),
    };
    let importer = Importer::new(db.clone(), vault, Arc::clone(&standards));
    let caller = Caller {
        issuer: "local".into(),
        subject: "demo".into(),
        role: Role::Admin,
        scope: Scope::nationwide(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<pb::ImportRow>>(2);
    let generator = tokio::task::spawn_blocking(move || {
        let mut start = 0;
        while start < total {
            let end = (start + BATCH).min(total);
            let rows = (start..end).map(|i| demo.row(i)).collect();
            if tx.blocking_send(rows).is_err() {
                break;
            }
            start = end;
        }
    });
    let (mut accepted, mut unchanged, mut rejected) = (0u64, 0u64, 0u64);
    let mut answers = importer.pipeline(caller.clone(), rx);
    while let Some(answer) = answers.recv().await {
        let results = answer?;
        let n = results.len() as u64;
        for r in results {
            match r.outcome {
                RowOutcome::Written {
                    new_household,
                    reviews_written,
                    ..
                } if new_household || reviews_written > 0 => accepted += 1,
                RowOutcome::Written { .. } => unchanged += 1,
                RowOutcome::Rejected(v) => {
                    rejected += 1;
                    if rejected <= 5 {
                        eprintln!("rejected {}: {v:?}", r.row.external_key);
                    }
                }
            }
        }
        bar.inc(n);
    }
    generator.await?;
    bar.finish();
    sustain_db::optimize(&db).await?;
    println!(
        "demo (seed {seed}): {total} households, {accepted} loaded, {unchanged} already there, {rejected} rejected, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    print_summaries(&db, &standards, &caller).await
}

/// The province's certified figures, year by year.
pub async fn print_summaries(
    db: &impl ConnectionTrait,
    standards: &Standards,
    caller: &Caller,
) -> anyhow::Result<()> {
    println!();
    println!("Lạng Sơn ({PROVINCE}), certified reviews");
    println!(
        "{:<6}{:>12}{:>22}{:>22}  standard",
        "year", "households", "poor", "near-poor"
    );
    for year in YEARS {
        let ask = crate::reviews::SummaryAsk {
            unit: PROVINCE.into(),
            year,
            unassigned_from: None,
        };
        let s = crate::reviews::poverty_summary(db, standards, caller, &ask).await?;
        let share = |s: &Option<pb::Share>| {
            s.as_ref()
                .map(|s| format!("{} ({}%)", s.count, s.percent))
                .unwrap_or_default()
        };
        println!(
            "{:<6}{:>12}{:>22}{:>22}  {}",
            year,
            s.households_reviewed,
            share(&s.poor),
            share(&s.near_poor),
            s.standard.map(|s| s.code).unwrap_or_default()
        );
        if year == YEARS[0] {
            let mut lines = vec![];
            for (code, label) in [
                ("latrine", "no hygienic latrine"),
                ("domestic_water", "no safe water"),
                ("information_devices", "no access to information"),
                ("telecom_use", "no member using the internet"),
            ] {
                if let Some(d) = s.deprivations.iter().find(|d| d.indicator_code == code) {
                    let among = d.poor_or_near_poor.clone().unwrap_or_default();
                    lines.push(format!(
                        "      {:>7} {label} (of {} poor and near-poor)",
                        among.count, among.total
                    ));
                }
            }
            println!("{}", lines.join("\n"));
        }
    }
    Ok(())
}
