//! The programme demo over a real registry demo: its summary reproduces the
//! (scaled) report figures exactly, and a second run writes nothing new.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use sustain_platform::config::Config;
use sustain_programs::demo::{self, Clients, LANG_SON};
use sustain_testkit::{FIELD_KEY, JWT_SECRET, LOOKUP_KEY, TestDatabase, token};

#[tokio::test]
async fn the_demo_reproduces_the_reported_figures_and_reruns_idempotently() {
    let registry_db = TestDatabase::new().await.expect("registry database");
    let programs_db = TestDatabase::new().await.expect("programs database");
    let mut config = Config::defaults(0);
    config.database_url = registry_db.url.clone();
    config.auth.jwt_secret = Some(B64.encode(JWT_SECRET));
    config.crypto.field_key = Some(B64.encode(FIELD_KEY));
    config.crypto.lookup_key = Some(B64.encode(LOOKUP_KEY));
    sustain_registry::demo_cli::run(&config, 7, 8_000, None, false)
        .await
        .expect("registry demo");
    let registry = start_registry(&registry_db.url).await;
    let programs = start_programs(&programs_db.url, registry.addr, 5_000).await;
    let mut clients = Clients::new(
        registry.channel().await.expect("connect"),
        programs.channel().await.expect("connect"),
        &token(sustain_platform::Role::Admin, &["*"]),
    )
    .expect("clients");

    let targets = LANG_SON.scaled(50);
    let report = demo::load(&mut clients, 7, &targets, false)
        .await
        .expect("demo");
    let summary = demo::province_summary(&mut clients).await.expect("summary");
    let compared = demo::compare(&targets, &summary);
    let differ: Vec<_> = compared
        .iter()
        .filter(|(_, want, got)| want != got)
        .collect();
    assert!(differ.is_empty(), "{differ:?}");
    assert_eq!(
        report.models,
        targets.p2_models.iter().sum::<u32>() + targets.p3_projects.iter().sum::<u32>()
    );
    let models = summary.models.clone().expect("models");
    assert_eq!(
        models.income_up_30_percent,
        i64::from(targets.p2_households.iter().sum::<u32>())
    );
    assert_eq!(models.profit_in_target, models.income_up_30_percent);

    // Again: every request replays, the figures stay.
    demo::load(&mut clients, 7, &targets, false)
        .await
        .expect("demo again");
    let again = demo::province_summary(&mut clients).await.expect("summary");
    assert_eq!(again, summary);
}
