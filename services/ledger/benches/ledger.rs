//! Ledger benchmarks, printed as a table (`cargo bench -p sustain-ledger`).
//!
//! The ledger served on a loopback port, called through the gRPC client:
//!
//! 1. Single transfers, one per call, from one client and from eight at once.
//! 2. Linked batches of 100 transfers, from one client and from four at once.
//! 3. The same rows written the database's plain way in the same run (multi-row
//!    INSERTs of 100 into a copy of the transfer table, one transaction each):
//!    the baseline the batched figure is a ratio of.
//! 4. VerifyChain over the whole journal: entries/s.
//!
//! SQLite, and PostgreSQL too when SUSTAIN_TEST_DATABASE_URL is set;
//! BENCH_BACKEND=sqlite or postgres runs one of them. BENCH_SCALE multiplies
//! the number of transfers (default 1).

use std::time::Instant;

use sea_orm::ConnectionTrait;
use sustain_platform::Role;
use sustain_platform::config::Config;
use sustain_proto::ledger::v1 as pb;
use sustain_proto::ledger::v1::account_service_client::AccountServiceClient;
use sustain_proto::ledger::v1::chain_service_client::ChainServiceClient;
use sustain_proto::ledger::v1::transfer_service_client::TransferServiceClient;
use sustain_testkit::server::{Bearer, Running};
use sustain_testkit::{TestDatabase, token};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Authed = InterceptedService<Channel, Bearer>;

const ALLOCATIONS: usize = 50;

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn leg(debit: &str, credit: &str, amount: i64) -> pb::Transfer {
    pb::Transfer {
        id: id(),
        debit_account_id: debit.into(),
        credit_account_id: credit.into(),
        amount_vnd: amount,
        ..Default::default()
    }
}

async fn run(backend: &str, scale: usize) -> anyhow::Result<()> {
    let database = TestDatabase::new().await?;
    let mut config = Config::defaults(0);
    config.database_url = database.url.clone();
    config.shutdown_grace_secs = 0;
    let server = Running::start(
        move |listener, stopped| async move {
            let secrets = sustain_testkit::secrets();
            sustain_ledger::run(&config, &secrets, listener, async {
                let _ = stopped.await;
            })
            .await
        },
        "sustain.ledger.v1.TransferService",
    )
    .await?;
    let authed = || async {
        anyhow::Ok(InterceptedService::new(
            server.channel().await?,
            Bearer(token(Role::Finance, &["20"])),
        ))
    };
    let accounts = AccountServiceClient::new(authed().await?);
    let open = |kind: pb::AccountKind, unit: &str, project: &str, year: i32| {
        let a = pb::Account {
            kind: kind as i32,
            source: pb::FundingSource::CentralInvestment as i32,
            name: format!("{kind:?} {unit}"),
            project_code: project.into(),
            unit_code: unit.into(),
            year,
            ..Default::default()
        };
        let mut client = accounts.clone();
        async move {
            anyhow::Ok(
                client
                    .create_account(pb::CreateAccountRequest {
                        account: Some(a),
                        request_id: String::new(),
                    })
                    .await?
                    .into_inner()
                    .account
                    .unwrap_or_default()
                    .id,
            )
        }
    };
    let source = open(pb::AccountKind::Source, "20", "", 0).await?;
    let plan = open(pb::AccountKind::Plan, "20", "NTP-SPR.3", 2024).await?;
    let mut allocations = vec![];
    let mut spends = vec![];
    for _ in 0..ALLOCATIONS {
        allocations.push(open(pb::AccountKind::Allocation, "181", "NTP-SPR.3", 2024).await?);
        spends.push(open(pb::AccountKind::Expenditure, "181", "NTP-SPR.3", 2024).await?);
    }
    let mut transfers: TransferServiceClient<Authed> = TransferServiceClient::new(authed().await?);
    transfers
        .create_transfers(pb::CreateTransfersRequest {
            transfers: vec![leg(&source, &plan, i64::MAX / 4)],
        })
        .await?;
    transfers
        .create_transfers(pb::CreateTransfersRequest {
            transfers: allocations
                .iter()
                .map(|a| leg(&plan, a, 1_000_000_000_000))
                .collect(),
        })
        .await?;

    // 1. Single transfers.
    let singles = 2_000 * scale;
    let started = Instant::now();
    for i in 0..singles {
        let k = i % ALLOCATIONS;
        transfers
            .create_transfers(pb::CreateTransfersRequest {
                transfers: vec![leg(&allocations[k], &spends[k], 1_000)],
            })
            .await?;
    }
    let single_one = singles as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut tasks = vec![];
    for c in 0..8 {
        let mut client = TransferServiceClient::new(authed().await?);
        let (allocations, spends) = (allocations.clone(), spends.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..singles / 8 {
                let k = (c * 7 + i) % ALLOCATIONS;
                client
                    .create_transfers(pb::CreateTransfersRequest {
                        transfers: vec![leg(&allocations[k], &spends[k], 1_000)],
                    })
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let single_eight = (singles / 8 * 8) as f64 / started.elapsed().as_secs_f64();

    // 2. Linked batches of 100.
    let batches = 200 * scale;
    let batch = |b: usize| -> Vec<pb::Transfer> {
        (0..100)
            .map(|i| {
                let k = (b + i) % ALLOCATIONS;
                leg(&allocations[k], &spends[k], 1_000)
            })
            .collect()
    };
    let started = Instant::now();
    for b in 0..batches {
        transfers
            .create_transfers(pb::CreateTransfersRequest {
                transfers: batch(b),
            })
            .await?;
    }
    let batched_one = (batches * 100) as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut tasks = vec![];
    for c in 0..4 {
        let mut client = TransferServiceClient::new(authed().await?);
        let legs: Vec<Vec<pb::Transfer>> = (0..batches / 4).map(|b| batch(b * 4 + c)).collect();
        tasks.push(tokio::spawn(async move {
            for transfers in legs {
                client
                    .create_transfers(pb::CreateTransfersRequest { transfers })
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let batched_four = (batches / 4 * 4 * 100) as f64 / started.elapsed().as_secs_f64();

    // 3. The plain way: the same number of rows, 100 per INSERT and transaction.
    let db = sustain_db::connect(&database.url).await?;
    db.execute_unprepared(
        "CREATE TABLE plain_transfer AS SELECT * FROM ledger_transfer WHERE 1 = 0",
    )
    .await?;
    let template = <sustain_ledger::model::transfer::Entity as sea_orm::EntityTrait>::find()
        .one(&db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no transfer to copy"))?;
    let started = Instant::now();
    for _ in 0..batches {
        let txn = sustain_db::begin_write(&db).await?;
        let mut sql = String::from(
            "INSERT INTO plain_transfer (id, batch_id, leg, debit_account_id, credit_account_id, amount, pending, memo, state, value_date, sequence, created_at) VALUES ",
        );
        let values: Vec<String> = (0..100)
            .map(|i| {
                format!(
                    "('{}', '{}', {i}, '{}', '{}', 1000, {}, '', 'posted', '{}', {i}, '{}')",
                    id(),
                    template.batch_id,
                    template.debit_account_id,
                    template.credit_account_id,
                    if backend == "PostgreSQL" {
                        "false"
                    } else {
                        "0"
                    },
                    template.value_date,
                    template.created_at.to_rfc3339(),
                )
            })
            .collect();
        sql.push_str(&values.join(", "));
        txn.execute_unprepared(&sql).await?;
        txn.commit().await?;
    }
    let plain = (batches * 100) as f64 / started.elapsed().as_secs_f64();

    // 4. Verification.
    let mut chain = ChainServiceClient::new(authed().await?);
    let started = Instant::now();
    let verified = chain
        .verify_chain(pb::VerifyChainRequest::default())
        .await?
        .into_inner();
    let verify_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        verified.valid,
        "chain does not verify: {}",
        verified.problem
    );

    println!(
        "\n{backend}: {ALLOCATIONS} allocations, chain of {} entries",
        verified.entries_checked
    );
    println!("  single transfers, 1 client           {single_one:>9.0} transfers/s");
    println!("  single transfers, 8 clients          {single_eight:>9.0} transfers/s");
    println!("  linked batches of 100, 1 client      {batched_one:>9.0} transfers/s");
    println!("  linked batches of 100, 4 clients     {batched_four:>9.0} transfers/s");
    println!(
        "  plain INSERTs of 100 (baseline)      {plain:>9.0} rows/s   (batched, 1 client = {:.2} of it)",
        batched_one / plain
    );
    println!(
        "  VerifyChain                          {:>9.0} entries/s ({} entries in {verify_secs:.2} s)",
        verified.entries_checked as f64 / verify_secs,
        verified.entries_checked
    );
    server.stop().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pg = std::env::var(sustain_testkit::DATABASE_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty());
    let scale: usize = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let only = std::env::var("BENCH_BACKEND").unwrap_or_default();
    sustain_testkit::set_database_url(None);
    if only != "postgres" {
        run("SQLite", scale).await?;
    }
    if only == "sqlite" {
        return Ok(());
    }
    if let Some(url) = pg {
        sustain_testkit::set_database_url(Some(url));
        run("PostgreSQL", scale).await?;
    }
    Ok(())
}
