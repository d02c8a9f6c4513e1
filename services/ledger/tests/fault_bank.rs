//! Fault suite, bank: the ledger as its own process, killed with SIGKILL and
//! started again every few seconds while workers send random transfers
//! (single and linked batches, pending ones posted or voided, reversals,
//! overspending attempts) and retry every call that got no answer with the
//! same ids until it gets one. At the end every acknowledged transfer exists
//! exactly once in its last acknowledged state, no refused one exists, every
//! balance equals what the client's history adds up to, the posted balances
//! sum to zero, no guarded account is below zero and the hash chain verifies.
//! Prints the figures as a table. `SUSTAIN_FAULT_PROFILE=long`: two minutes,
//! a kill every 1.5 s.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::{Rng, SeedableRng};
use sustain_platform::Role;
use sustain_proto::ledger::v1 as pb;
use sustain_proto::ledger::v1::account_service_client::AccountServiceClient;
use sustain_proto::ledger::v1::chain_service_client::ChainServiceClient;
use sustain_proto::ledger::v1::transfer_service_client::TransferServiceClient;
use sustain_testkit::process::Process;
use sustain_testkit::server::Bearer;
use sustain_testkit::{FIELD_KEY, JWT_SECRET, LOOKUP_KEY, TestDatabase, token};
use tonic::Code;
use tonic::transport::Channel;

struct Profile {
    run: Duration,
    kill_every: Duration,
    workers: usize,
}

fn profile() -> Profile {
    match std::env::var("SUSTAIN_FAULT_PROFILE").as_deref() {
        Ok("long") => Profile {
            run: Duration::from_secs(120),
            kill_every: Duration::from_millis(1500),
            workers: 8,
        },
        _ => Profile {
            run: Duration::from_secs(12),
            kill_every: Duration::from_millis(2500),
            workers: 4,
        },
    }
}

const P3: &str = "NTP-SPR.3";
const FUNDED: i64 = 40_000_000;

/// What the client was told, transfer by transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Told {
    debit: usize,
    credit: usize,
    amount: i64,
    state: i32,
}

#[derive(Default)]
struct History {
    accounts: Vec<String>,
    transfers: HashMap<String, Told>,
    refused: HashMap<String, String>,
    operations: u64,
    retries: u64,
}

/// Calls until an answer comes: a call cut off by a kill is sent again as it
/// was, with the same ids. `None` when the run ended first.
async fn answered<T, F, Fut>(
    history: &Mutex<History>,
    deadline: Instant,
    mut call: F,
) -> Option<Result<T, tonic::Status>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(10), call()).await {
            Ok(Err(s))
                if matches!(
                    s.code(),
                    Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal
                ) && s.message() != "internal error" => {}
            Ok(answer) => return Some(answer),
            Err(_) => {}
        }
        if let Ok(mut h) = history.lock() {
            h.retries += 1;
        }
        if Instant::now() > deadline + Duration::from_secs(60) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map_or_else(|| format!("{:?}", status.code()), |i| i.reason.clone())
}

const PENDING: i32 = pb::TransferState::Pending as i32;
const POSTED: i32 = pb::TransferState::Posted as i32;
const VOIDED: i32 = pb::TransferState::Voided as i32;

async fn worker(
    n: u64,
    channel: Channel,
    history: Arc<Mutex<History>>,
    allocations: Vec<usize>,
    expenditures: Vec<usize>,
    deadline: Instant,
) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(n);
    let money =
        TransferServiceClient::with_interceptor(channel, Bearer(token(Role::Finance, &["20"])));
    let accounts = history.lock().expect("history").accounts.clone();
    let mut mine_pending: Vec<String> = vec![];
    let mut mine_posted: Vec<String> = vec![];
    while Instant::now() < deadline {
        let op = rng.random_range(0..10);
        if op < 2 && !mine_pending.is_empty() {
            // Post or void one of ours.
            let id = mine_pending.swap_remove(rng.random_range(0..mine_pending.len()));
            let post = rng.random_bool(0.6);
            let answer = answered(&history, deadline, || {
                let mut money = money.clone();
                let id = id.clone();
                async move {
                    if post {
                        money
                            .post_transfer(pb::PostTransferRequest {
                                id,
                                value_date: String::new(),
                            })
                            .await
                            .map(|r| r.into_inner().transfer)
                    } else {
                        money
                            .void_transfer(pb::VoidTransferRequest {
                                id,
                                value_date: String::new(),
                            })
                            .await
                            .map(|r| r.into_inner().transfer)
                    }
                }
            })
            .await;
            let Some(answer) = answer else { return };
            let mut h = history.lock().expect("history");
            h.operations += 1;
            match answer {
                Ok(Some(t)) => {
                    if let Some(told) = h.transfers.get_mut(&id) {
                        told.state = t.state;
                    }
                    if t.state == POSTED {
                        mine_posted.push(id);
                    }
                }
                Ok(None) => panic!("a resolve answered no transfer"),
                Err(s) => {
                    // A pending transfer that cannot be posted stays pending.
                    if reason(&s) == "INSUFFICIENT_FUNDS" {
                        mine_pending.push(id);
                    } else {
                        panic!("resolving {id}: {s:?}");
                    }
                }
            }
            continue;
        }
        let mut legs = vec![];
        let reversal = op == 2 && !mine_posted.is_empty();
        if reversal {
            let original = mine_posted[rng.random_range(0..mine_posted.len())].clone();
            let told = history.lock().expect("history").transfers[&original];
            legs.push(pb::Transfer {
                id: uuid::Uuid::now_v7().to_string(),
                debit_account_id: accounts[told.credit].clone(),
                credit_account_id: accounts[told.debit].clone(),
                amount_vnd: told.amount,
                reverses_id: original,
                ..Default::default()
            });
        } else {
            let count = if op == 3 { rng.random_range(2..4) } else { 1 };
            for _ in 0..count {
                let d = allocations[rng.random_range(0..allocations.len())];
                let c = expenditures[rng.random_range(0..expenditures.len())];
                // One in ten asks for more than any allocation holds.
                let amount = if op == 4 {
                    FUNDED + 1
                } else {
                    rng.random_range(1..120_000)
                };
                legs.push(pb::Transfer {
                    id: uuid::Uuid::now_v7().to_string(),
                    debit_account_id: accounts[d].clone(),
                    credit_account_id: accounts[c].clone(),
                    amount_vnd: amount,
                    pending: count == 1 && rng.random_bool(0.3),
                    ..Default::default()
                });
            }
        }
        let request = pb::CreateTransfersRequest {
            transfers: legs.clone(),
        };
        let answer = answered(&history, deadline, || {
            let mut money = money.clone();
            let request = request.clone();
            async move {
                money
                    .create_transfers(request)
                    .await
                    .map(|r| r.into_inner().transfers)
            }
        })
        .await;
        let Some(answer) = answer else { return };
        let index = |id: &str| accounts.iter().position(|a| a == id).expect("ours");
        let mut h = history.lock().expect("history");
        h.operations += 1;
        match answer {
            Ok(made) => {
                assert_eq!(made.len(), legs.len(), "every leg answered");
                for t in made {
                    if t.state == PENDING {
                        mine_pending.push(t.id.clone());
                    } else if !reversal {
                        mine_posted.push(t.id.clone());
                    }
                    h.transfers.insert(
                        t.id.clone(),
                        Told {
                            debit: index(&t.debit_account_id),
                            credit: index(&t.credit_account_id),
                            amount: t.amount_vnd,
                            state: t.state,
                        },
                    );
                }
                if reversal {
                    mine_posted.retain(|id| id != &legs[0].reverses_id);
                }
            }
            Err(s) => {
                let why = reason(&s);
                assert!(
                    matches!(
                        why.as_str(),
                        "INSUFFICIENT_FUNDS" | "REVERSAL_EXCEEDS_ORIGINAL"
                    ),
                    "refused for no good reason: {s:?}"
                );
                for leg in legs {
                    h.refused.insert(leg.id, why.clone());
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_money_survives_kill_9_exactly_once() {
    let profile = profile();
    let db = TestDatabase::new().await.expect("database");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ledger.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{url}\"\nshutdown_grace_secs = 0\n[auth]\njwt_secret = \"{jwt}\"\n[crypto]\nfield_key = \"{field}\"\nlookup_key = \"{lookup}\"\n",
            url = db.url,
            jwt = B64.encode(JWT_SECRET),
            field = B64.encode(FIELD_KEY),
            lookup = B64.encode(LOOKUP_KEY),
        ),
    )
    .expect("config");
    let mut process = Process::new(
        env!("CARGO_BIN_EXE_sustain-ledger"),
        config,
        sustain_testkit::free_addr().expect("addr"),
        "sustain.ledger.v1.TransferService",
    );
    process.spawn();
    process.wait_serving().await;
    let channel = Channel::from_shared(format!("http://{}", process.addr))
        .expect("url")
        .connect_lazy();
    let bearer = || Bearer(token(Role::Finance, &["20"]));

    // Accounts: one source, three guarded allocations, three expenditures.
    let accounts = AccountServiceClient::with_interceptor(channel.clone(), bearer());
    let open = |kind: pb::AccountKind, unit: &str, project: &str, year: i32| {
        let mut accounts = accounts.clone();
        let account = pb::Account {
            kind: kind as i32,
            source: pb::FundingSource::CentralInvestment as i32,
            name: format!("bank {kind:?} {unit}"),
            project_code: project.into(),
            unit_code: unit.into(),
            year,
            ..Default::default()
        };
        async move {
            accounts
                .create_account(pb::CreateAccountRequest {
                    account: Some(account),
                    request_id: String::new(),
                })
                .await
                .expect("account")
                .into_inner()
                .account
                .expect("account")
        }
    };
    let mut all = vec![open(pb::AccountKind::Source, "20", "", 0).await];
    for _ in 0..3 {
        all.push(open(pb::AccountKind::Allocation, "181", P3, 2024).await);
    }
    for _ in 0..3 {
        all.push(open(pb::AccountKind::Expenditure, "181", P3, 2024).await);
    }
    let history = Arc::new(Mutex::new(History {
        accounts: all.iter().map(|a| a.id.clone()).collect(),
        ..History::default()
    }));
    let mut money = TransferServiceClient::with_interceptor(channel.clone(), bearer());
    for alloc in 1..=3 {
        let id = uuid::Uuid::now_v7().to_string();
        money
            .create_transfers(pb::CreateTransfersRequest {
                transfers: vec![pb::Transfer {
                    id: id.clone(),
                    debit_account_id: all[0].id.clone(),
                    credit_account_id: all[alloc].id.clone(),
                    amount_vnd: FUNDED,
                    ..Default::default()
                }],
            })
            .await
            .expect("funded");
        history.lock().expect("history").transfers.insert(
            id,
            Told {
                debit: 0,
                credit: alloc,
                amount: FUNDED,
                state: POSTED,
            },
        );
    }

    let deadline = Instant::now() + profile.run;
    let mut workers = vec![];
    for n in 0..profile.workers {
        workers.push(tokio::spawn(worker(
            n as u64 + 1,
            channel.clone(),
            Arc::clone(&history),
            vec![1, 2, 3],
            vec![4, 5, 6],
            deadline,
        )));
    }
    let mut kills = 0;
    while Instant::now() + profile.kill_every < deadline {
        tokio::time::sleep(profile.kill_every).await;
        process.kill();
        kills += 1;
        process.spawn();
        process.wait_serving().await;
    }
    for w in workers {
        w.await.expect("worker");
    }

    // One more kill with nothing in flight, then everything checked.
    process.kill();
    process.spawn();
    process.wait_serving().await;
    let h = std::mem::take(&mut *history.lock().expect("history"));
    let mut lost = 0;
    let mut wrong = 0;
    for (id, told) in &h.transfers {
        match money
            .get_transfer(pb::GetTransferRequest { id: id.clone() })
            .await
        {
            Ok(t) => {
                let t = t.into_inner().transfer.expect("transfer");
                if t.amount_vnd != told.amount
                    || t.state != told.state
                    || t.debit_account_id != h.accounts[told.debit]
                    || t.credit_account_id != h.accounts[told.credit]
                {
                    wrong += 1;
                }
            }
            Err(s) if s.code() == Code::NotFound => lost += 1,
            Err(s) => panic!("{s:?}"),
        }
    }
    let mut appeared = 0;
    for id in h.refused.keys() {
        match money
            .get_transfer(pb::GetTransferRequest { id: id.clone() })
            .await
        {
            Err(s) if s.code() == Code::NotFound => {}
            _ => appeared += 1,
        }
    }
    // Everything listed is something acknowledged, once.
    let mut listed: BTreeMap<String, usize> = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let page = money
            .list_transfers(pb::ListTransfersRequest {
                filter: None,
                page_size: 500,
                page_token: page_token.clone(),
            })
            .await
            .expect("list")
            .into_inner();
        for t in page.transfers {
            *listed.entry(t.id).or_insert(0) += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let duplicated = listed.values().filter(|n| **n > 1).count();
    let unknown = listed
        .keys()
        .filter(|id| !h.transfers.contains_key(*id))
        .count();

    // Balances against the client's history.
    let mut expected = vec![pb::Balance::default(); h.accounts.len()];
    for told in h.transfers.values() {
        let (d, c) = (told.debit, told.credit);
        match told.state {
            POSTED => {
                expected[d].debits_posted += told.amount;
                expected[c].credits_posted += told.amount;
            }
            PENDING => {
                expected[d].debits_pending += told.amount;
                expected[c].credits_pending += told.amount;
            }
            _ => {}
        }
    }
    let mut accounts = AccountServiceClient::with_interceptor(channel.clone(), bearer());
    let mut off_balance = 0;
    let mut net = 0;
    let mut negative = 0;
    for (i, id) in h.accounts.iter().enumerate() {
        let b = accounts
            .get_balance(pb::GetBalanceRequest {
                account_id: id.clone(),
                as_of: String::new(),
            })
            .await
            .expect("balance")
            .into_inner()
            .balance
            .expect("balance");
        let e = &expected[i];
        if (
            b.debits_posted,
            b.credits_posted,
            b.debits_pending,
            b.credits_pending,
        ) != (
            e.debits_posted,
            e.credits_posted,
            e.debits_pending,
            e.credits_pending,
        ) {
            off_balance += 1;
        }
        net += b.credits_posted - b.debits_posted;
        if (1..=3).contains(&i) && b.available < 0 {
            negative += 1;
        }
    }
    let verified = ChainServiceClient::with_interceptor(channel, bearer())
        .verify_chain(pb::VerifyChainRequest::default())
        .await
        .expect("verify")
        .into_inner();

    let voided = h.transfers.values().filter(|t| t.state == VOIDED).count();
    println!(
        "\nbank under kill -9 ({} workers, {:?})",
        profile.workers, profile.run
    );
    println!("  operations answered      {:>7}", h.operations);
    println!("  calls sent again         {:>7}", h.retries);
    println!("  kills                    {:>7}", kills + 1);
    println!(
        "  transfers acknowledged   {:>7} ({voided} voided)",
        h.transfers.len()
    );
    println!("  transfers refused        {:>7}", h.refused.len());
    println!("  lost                     {lost:>7}");
    println!("  duplicated               {duplicated:>7}");
    println!("  refused yet there        {appeared:>7}");
    println!("  there, never acknowledged {unknown:>6}");
    println!("  wrong state or content   {wrong:>7}");
    println!("  balances off             {off_balance:>7}");
    println!("  Σ posted                 {net:>7}");
    println!("  guarded below zero       {negative:>7}");
    println!(
        "  chain                    {:>7}",
        if verified.valid { "valid" } else { "BROKEN" }
    );

    assert!(kills >= 3, "killed {kills} times");
    assert!(h.operations > 50, "{} operations", h.operations);
    assert_eq!(
        (
            lost,
            duplicated,
            appeared,
            unknown,
            wrong,
            off_balance,
            net,
            negative
        ),
        (0, 0, 0, 0, 0, 0, 0, 0)
    );
    assert!(verified.valid, "{}", verified.problem);
}
