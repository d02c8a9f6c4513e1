//! Registry benchmarks, printed as a table (`cargo bench -p sustain-registry`).
//!
//! 1. GetHousehold calls/s through the real client on loopback with many concurrent
//!    callers, beside a bare tonic service (the standard health Check, no auth, no
//!    database) driven by the same load loop in the same run.
//! 2. CreateHousehold calls/s on SQLite and, when `SUSTAIN_TEST_DATABASE_URL` is set,
//!    on PostgreSQL.
//! 3. With BENCH_HOUSEHOLDS (default 200,000) households loaded: p50/p99 of listing one
//!    commune's first page and of a filtered name search.
//!
//! Every loop is bounded in requests; everything runs on 127.0.0.1.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use sea_orm::TransactionTrait;
use sustain_domain::admin;
use sustain_domain::household::{
    Address, HealthInsurance, Household, Member, Relation, Residence, Sex,
};
use sustain_platform::crypto::{FieldCipher, LookupHasher};
use sustain_proto::registry::v1 as pb;
use sustain_registry::store::{self, HouseholdRecord, Vault};
use sustain_testkit::{FIELD_KEY, LOOKUP_KEY};

const CALLERS: usize = 64;
const GET_CALLS: usize = 40_000;
const CREATE_CALLS: usize = 2_000;
const CREATE_CALLERS: usize = 16;
const QUERIES: usize = 300;

/// Runs `total` calls of `f` spread over `callers` concurrent tasks; returns calls/s.
async fn drive<F, Fut>(callers: usize, total: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            let mut i = c;
            while i < total {
                if f(i).await {
                    ok += 1;
                }
                i += callers;
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.expect("task");
    }
    assert_eq!(ok, total, "every call succeeded");
    total as f64 / start.elapsed().as_secs_f64()
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1000.0
}

/// 200 households to read back; returns their ids.
async fn seed(server: &TestServer) -> Vec<String> {
    let mut admin = server.admin().await;
    let mut ids = Vec::new();
    for i in 0..200 {
        let created = create(&mut admin, household(&format!("Hoàng Văn {i}"), "")).await;
        ids.push(created.expect("seed").id);
    }
    ids
}

async fn get_rate(server: &TestServer, ids: &[String]) -> f64 {
    let client = server.admin().await;
    let ids = std::sync::Arc::new(ids.to_vec());
    drive(CALLERS, GET_CALLS, move |i| {
        let mut c = client.clone();
        let id = ids[i % ids.len()].clone();
        async move {
            c.get_household(pb::GetHouseholdRequest { id })
                .await
                .is_ok()
        }
    })
    .await
}

async fn throughput(backend: &str) {
    let server = TestServer::start().await;
    let ids = seed(&server).await;
    let channel = server.channel().await;

    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let echo = drive(CALLERS, GET_CALLS, move |_| {
        let mut c = health.clone();
        async move {
            c.check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_ok()
        }
    })
    .await;

    // Auth and the interceptor without the database: where the rest of a get goes.
    let units = server.units(sustain_platform::Role::Viewer).await;
    let auth_only = drive(CALLERS, GET_CALLS, move |_| {
        let mut c = units.clone();
        async move {
            c.get_admin_unit(pb::GetAdminUnitRequest {
                code: "20".into(),
                as_of: String::new(),
            })
            .await
            .is_ok()
        }
    })
    .await;
    println!(
        "| {backend} | GetAdminUnit (token check, no database), {CALLERS} callers | {auth_only:.0} calls/s | bare tonic {echo:.0} calls/s | ratio {:.2} |",
        auth_only / echo
    );

    let gets = get_rate(&server, &ids).await;
    println!(
        "| {backend} | GetHousehold, {CALLERS} callers, cached | {gets:.0} calls/s | bare tonic (health Check) {echo:.0} calls/s | ratio {:.2} |",
        gets / echo
    );
    // Tokens as a province's instances sign them: Ed25519, each its own key.
    let signed_server =
        TestServer::start_with_key(sustain_platform::auth::keys::SigningKey::generate()).await;
    let signed_ids = seed(&signed_server).await;
    let signed = get_rate(&signed_server, &signed_ids).await;
    println!(
        "| {backend} | GetHousehold, {CALLERS} callers, cached, Ed25519 tokens | {signed:.0} calls/s | bare tonic (health Check) {echo:.0} calls/s | ratio {:.2} |",
        signed / echo
    );
    signed_server.stop().await;
    let uncached_server = TestServer::start_without_cache().await;
    let uncached_ids = seed(&uncached_server).await;
    let uncached = get_rate(&uncached_server, &uncached_ids).await;
    println!(
        "| {backend} | GetHousehold, {CALLERS} callers, cache off | {uncached:.0} calls/s | bare tonic (health Check) {echo:.0} calls/s | ratio {:.2} |",
        uncached / echo
    );
    uncached_server.stop().await;

    let client = server.admin().await;
    let creates = drive(CREATE_CALLERS, CREATE_CALLS, move |i| {
        let mut c = client.clone();
        async move {
            create(&mut c, household(&format!("Lò Văn {i}"), ""))
                .await
                .is_ok()
        }
    })
    .await;
    println!(
        "| {backend} | CreateHousehold, {CREATE_CALLERS} callers | {creates:.0} calls/s | | |"
    );
    server.stop().await;
}

fn synthetic(i: usize, communes: &[String], registered_on: chrono::NaiveDate) -> Household {
    const FAMILY: [&str; 8] = [
        "Nguyễn", "Hoàng", "Lương", "Vi", "Lộc", "Triệu", "Đinh", "Lý",
    ];
    const GIVEN: [&str; 8] = [
        "Văn An",
        "Thị Mai",
        "Văn Bình",
        "Thị Hoa",
        "Văn Cường",
        "Thị Lan",
        "Văn Dũng",
        "Thị Hồng",
    ];
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 29).expect("date");
    let location = admin::catalog()
        .locate_commune(&communes[i % communes.len()], registered_on, today)
        .expect("commune");
    let name = |k: usize| {
        format!(
            "{} {} {}",
            FAMILY[(i / 7 + k) % 8],
            GIVEN[(i + k) % 8],
            i % 997
        )
    };
    let member = |k: usize, relation| Member {
        full_name: name(k),
        birth_date: chrono::NaiveDate::from_ymd_opt(1960 + (i % 40) as i32, 1 + (k % 12) as u32, 1)
            .expect("date"),
        sex: if k.is_multiple_of(2) {
            Sex::Male
        } else {
            Sex::Female
        },
        ethnicity_code: ["01", "02", "07", "09"][i % 4].into(),
        relation,
        citizen_id: None,
        has_disability: false,
        health_insurance: HealthInsurance::Insured,
    };
    Household {
        address: Address {
            location,
            village: format!("Thôn {}", i % 20),
            residence: Residence::Rural,
        },
        registered_on,
        members: vec![
            member(0, Relation::Head),
            member(1, Relation::Spouse),
            member(2, Relation::Child),
        ],
    }
}

async fn queries(backend: &str, households: usize) {
    let server = TestServer::start().await;
    let db = sustain_db::connect(&server.url).await.expect("db");
    let vault = Vault {
        cipher: FieldCipher::new(&FIELD_KEY),
        hasher: LookupHasher::new(&LOOKUP_KEY),
    };
    let registered_on = chrono::NaiveDate::from_ymd_opt(2022, 1, 1).expect("date");
    let communes: Vec<String> = admin::catalog()
        .children(Some("20"), registered_on)
        .iter()
        .flat_map(|d| admin::catalog().children(Some(&d.code), registered_on))
        .map(|c| c.code.clone())
        .collect();
    let load = Instant::now();
    for chunk in (0..households).collect::<Vec<_>>().chunks(2_000) {
        let txn = db.begin().await.expect("txn");
        for &i in chunk {
            let h = synthetic(i, &communes, registered_on);
            let ids = (0..h.members.len())
                .map(|_| uuid::Uuid::now_v7().to_string())
                .collect();
            let record =
                HouseholdRecord::new(uuid::Uuid::now_v7().to_string(), h, ids, chrono::Utc::now());
            store::insert(&txn, &record, &vault).await.expect("insert");
        }
        txn.commit().await.expect("commit");
    }
    let loaded = load.elapsed();
    // As after a restart (SQLite) or an autovacuum pass (PostgreSQL).
    {
        use sea_orm::ConnectionTrait;
        db.execute_unprepared("ANALYZE").await.expect("analyze");
    }

    let mut client = server
        .households(sustain_platform::Role::Viewer, &["20"])
        .await;
    let mut list = Vec::with_capacity(QUERIES);
    let mut search = Vec::with_capacity(QUERIES);
    for q in 0..QUERIES {
        let commune = communes[(q * 13) % communes.len()].clone();
        let t = Instant::now();
        let page = client
            .list_households(pb::ListHouseholdsRequest {
                filter: unit_filter(&commune),
                page_size: 50,
                page_token: String::new(),
            })
            .await
            .expect("list")
            .into_inner();
        list.push(t.elapsed());
        assert!(!page.households.is_empty());
        let district = admin::catalog()
            .get(&commune, registered_on)
            .and_then(|c| c.parent_code.clone())
            .expect("district");
        let t = Instant::now();
        client
            .list_households(pb::ListHouseholdsRequest {
                filter: Some(pb::HouseholdFilter {
                    unit_code: district,
                    name_query: format!("hoang van an {}", q % 997),
                    ..Default::default()
                }),
                page_size: 50,
                page_token: String::new(),
            })
            .await
            .expect("search");
        search.push(t.elapsed());
    }
    println!(
        "| {backend} | {households} households loaded in {:.1} s | list one commune (50): p50 {:.2} ms, p99 {:.2} ms | name search in a district: p50 {:.2} ms, p99 {:.2} ms |",
        loaded.as_secs_f64(),
        percentile(&mut list, 0.5),
        percentile(&mut list, 0.99),
        percentile(&mut search, 0.5),
        percentile(&mut search, 0.99),
    );
    server.stop().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let households: usize = std::env::var("BENCH_HOUSEHOLDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let pg = std::env::var(sustain_testkit::DATABASE_URL_ENV)
        .ok()
        .filter(|v| !v.is_empty());
    println!("| backend | measure | result | baseline | |\n|---|---|---|---|---|");
    runtime.block_on(async {
        sustain_testkit::set_database_url(None);
        throughput("SQLite").await;
        if households > 0 {
            queries("SQLite", households).await;
        }
        if let Some(url) = pg {
            sustain_testkit::set_database_url(Some(url));
            throughput("PostgreSQL").await;
            if households > 0 {
                queries("PostgreSQL", households).await;
            }
        }
    });
}
