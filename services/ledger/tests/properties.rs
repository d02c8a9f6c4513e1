//! Random operation sequences against the ledger's store on a real database:
//! allocate, commit, post, void, reverse, retry with the same id, linked
//! batches and two writers on one account at once. After every operation the
//! books balance (Σ debits = Σ credits, posted and pending), no guarded
//! account has given more than it received, every stored balance equals the
//! sum of its transfers; after every sequence the chain verifies.
//!
//! PROPTEST_CASES sets the number of sequences (default 1,000 on SQLite,
//! 150 on PostgreSQL, where every operation is a network round trip).

use proptest::prelude::*;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult};
use sustain_db::begin_write;
use sustain_domain::ledger::{AccountKind, FundingSource};
use sustain_ledger::model::{account, transfer};
use sustain_ledger::transfers::{self, Leg};
use sustain_platform::api::{new_id, now};
use sustain_platform::auth::{Caller, Scope};
use sustain_platform::{Role, error::ServiceError};
use sustain_testkit::TestDatabase;

#[derive(Debug, Clone)]
enum Op {
    /// A transfer between two of the sequence's accounts (by index).
    Move {
        from: usize,
        to: usize,
        amount: i64,
        pending: bool,
    },
    /// A linked batch of moves.
    Batch(Vec<(usize, usize, i64)>),
    /// Resolve the k-th pending transfer made so far.
    Resolve { k: usize, post: bool },
    /// Reverse part of the k-th posted transfer.
    Reverse { k: usize, amount: i64 },
    /// Send the k-th transfer made again, unchanged.
    Retry { k: usize },
    /// Two disbursements from one account at the same moment.
    Race {
        from: usize,
        to: usize,
        a: i64,
        b: i64,
    },
}

const ACCOUNTS: [AccountKind; 6] = [
    AccountKind::Source,
    AccountKind::Plan,
    AccountKind::Allocation,
    AccountKind::Allocation,
    AccountKind::Expenditure,
    AccountKind::Expenditure,
];

fn op() -> impl Strategy<Value = Op> {
    let idx = || 0..ACCOUNTS.len();
    let amount = || 1..400i64;
    prop_oneof![
        4 => (idx(), idx(), amount(), any::<bool>())
            .prop_map(|(from, to, amount, pending)| Op::Move { from, to, amount, pending }),
        1 => prop::collection::vec((idx(), idx(), amount()), 1..5).prop_map(Op::Batch),
        2 => (0..16usize, any::<bool>()).prop_map(|(k, post)| Op::Resolve { k, post }),
        1 => (0..16usize, amount()).prop_map(|(k, amount)| Op::Reverse { k, amount }),
        1 => (0..16usize).prop_map(|k| Op::Retry { k }),
        1 => (idx(), idx(), amount(), amount()).prop_map(|(from, to, a, b)| Op::Race { from, to, a, b }),
    ]
}

fn caller() -> Caller {
    Caller {
        issuer: "local".into(),
        subject: "property".into(),
        role: Role::Finance,
        scope: Scope::nationwide(),
    }
}

/// Refusals the rules are allowed to give; anything else is a bug.
fn expected_refusal(e: &ServiceError) -> bool {
    matches!(
        e,
        ServiceError::InvalidArgument(_)
            | ServiceError::FailedPrecondition { .. }
            | ServiceError::AlreadyExists { .. }
    )
}

async fn open_accounts(db: &DatabaseConnection) -> Vec<String> {
    let txn = begin_write(db).await.expect("txn");
    let mut ids = vec![];
    for kind in ACCOUNTS {
        let row = account::Model {
            id: new_id(),
            kind: kind.code().into(),
            source: FundingSource::CentralInvestment.code().into(),
            name: "property".into(),
            project_code: "NTP-SPR.3".into(),
            year: 2024,
            unit_code: "20".into(),
            province_code: "20".into(),
            district_code: None,
            commune_code: None,
            current_commune_code: None,
            guarded: kind.guarded_by_default(),
            purpose: String::new(),
            reference_id: String::new(),
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
            sequence: 0,
            created_at: now(),
        };
        ids.push(
            sustain_ledger::accounts::open(&txn, &caller(), row)
                .await
                .expect("open")
                .id,
        );
    }
    txn.commit().await.expect("commit");
    ids
}

async fn make(db: &DatabaseConnection, legs: &[Leg]) -> Result<Vec<transfer::Model>, ServiceError> {
    let txn = begin_write(db).await?;
    let made = transfers::create(&txn, &caller(), legs).await?;
    txn.commit().await?;
    Ok(made)
}

fn leg(ids: &[String], from: usize, to: usize, amount: i64, pending: bool) -> Leg {
    Leg {
        id: new_id(),
        debit: ids[from].clone(),
        credit: ids[to].clone(),
        amount,
        pending,
        reverses: None,
        value_date: None,
        memo: String::new(),
    }
}

#[derive(Debug, sea_orm::FromQueryResult)]
struct Totals {
    debits_posted: i64,
    credits_posted: i64,
    debits_pending: i64,
    credits_pending: i64,
    overspent: i64,
}

/// The invariants: the books of the whole database balance and no guarded
/// account anywhere has overspent; the sequence's own accounts hold exactly
/// the sums of their transfers.
async fn check_books(db: &DatabaseConnection, ids: &[String]) -> Result<(), TestCaseError> {
    let totals = Totals::find_by_statement(sea_orm::Statement::from_string(
        db.get_database_backend(),
        "SELECT CAST(SUM(debits_posted) AS BIGINT) AS debits_posted, CAST(SUM(credits_posted) AS BIGINT) AS credits_posted, \
         CAST(SUM(debits_pending) AS BIGINT) AS debits_pending, CAST(SUM(credits_pending) AS BIGINT) AS credits_pending, \
         CAST(SUM(CASE WHEN guarded AND credits_posted - debits_posted - debits_pending < 0 THEN 1 ELSE 0 END) AS BIGINT) AS overspent \
         FROM ledger_account",
    ))
    .one(db)
    .await
    .expect("totals")
    .expect("a row");
    prop_assert_eq!(totals.debits_posted, totals.credits_posted);
    prop_assert_eq!(totals.debits_pending, totals.credits_pending);
    prop_assert_eq!(totals.overspent, 0, "a guarded account overspent");
    let far = chrono::NaiveDate::from_ymd_opt(2100, 1, 1).expect("date");
    for id in ids {
        let a = account::Entity::find_by_id(id.clone())
            .one(db)
            .await
            .expect("account")
            .expect("exists");
        let recomputed = sustain_ledger::store::accounts::balance_as_of(db, id, far)
            .await
            .expect("balance");
        prop_assert_eq!(
            recomputed,
            sustain_ledger::convert::balance_of(&a),
            "account {}",
            id
        );
    }
    Ok(())
}

async fn run_sequence(db: &DatabaseConnection, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let head_before = sustain_ledger::model::head::Entity::find_by_id(1)
        .one(db)
        .await
        .expect("head")
        .expect("a head")
        .sequence;
    let ids = open_accounts(db).await;
    // Everything made in this sequence, by kind of interest.
    let mut made: Vec<Leg> = vec![];
    let mut pending: Vec<String> = vec![];
    let mut posted: Vec<transfer::Model> = vec![];
    // Fund the source's plan so something can flow.
    let seed = leg(&ids, 0, 1, 1_000, false);
    let first = make(db, std::slice::from_ref(&seed)).await.expect("seed");
    posted.extend(first);
    made.push(seed);
    for op in ops {
        let result = match op {
            Op::Move {
                from,
                to,
                amount,
                pending: p,
            } => {
                let l = leg(&ids, from, to, amount, p);
                let r = make(db, std::slice::from_ref(&l)).await;
                if let Ok(rows) = &r {
                    made.push(l);
                    for t in rows {
                        if t.pending {
                            pending.push(t.id.clone());
                        } else {
                            posted.push(t.clone());
                        }
                    }
                }
                r.map(|_| ())
            }
            Op::Batch(moves) => {
                let legs: Vec<Leg> = moves
                    .iter()
                    .map(|(f, t, a)| leg(&ids, *f, *t, *a, false))
                    .collect();
                let r = make(db, &legs).await;
                match &r {
                    Ok(rows) => {
                        made.extend(legs);
                        posted.extend(rows.iter().cloned());
                    }
                    Err(_) => {
                        // All or nothing: no leg of a refused batch exists.
                        for l in &legs {
                            let found = transfer::Entity::find_by_id(l.id.clone())
                                .one(db)
                                .await
                                .expect("read");
                            prop_assert!(found.is_none(), "a leg of a refused batch was written");
                        }
                    }
                }
                r.map(|_| ())
            }
            Op::Resolve { k, post } => match pending.get(k).cloned() {
                None => Ok(()),
                Some(id) => {
                    let txn = begin_write(db).await.expect("txn");
                    let r = transfers::resolve(&txn, &caller(), &id, None, post).await;
                    txn.commit().await.expect("commit");
                    if let Ok(t) = &r
                        && t.state == sustain_domain::ledger::transfer_state::POSTED
                    {
                        posted.push(t.clone());
                    }
                    r.map(|_| ())
                }
            },
            Op::Reverse { k, amount } => match posted.get(k).cloned() {
                None => Ok(()),
                Some(original) => {
                    let l = Leg {
                        id: new_id(),
                        debit: original.credit_account_id.clone(),
                        credit: original.debit_account_id.clone(),
                        amount,
                        pending: false,
                        reverses: Some(original.id.clone()),
                        value_date: None,
                        memo: String::new(),
                    };
                    make(db, &[l]).await.map(|_| ())
                }
            },
            Op::Retry { k } => match made.get(k).cloned() {
                None => Ok(()),
                Some(l) => {
                    let again = make(db, std::slice::from_ref(&l)).await;
                    prop_assert!(
                        again.is_ok(),
                        "a retry of a made transfer failed: {:?}",
                        again.err()
                    );
                    let n = transfer::Entity::find_by_id(l.id.clone())
                        .one(db)
                        .await
                        .expect("read");
                    prop_assert!(n.is_some());
                    Ok(())
                }
            },
            Op::Race { from, to, a, b } => {
                let (la, lb) = (leg(&ids, from, to, a, false), leg(&ids, from, to, b, false));
                let (ra, rb) = tokio::join!(
                    make(db, std::slice::from_ref(&la)),
                    make(db, std::slice::from_ref(&lb))
                );
                for r in [&ra, &rb] {
                    if let Err(e) = r {
                        prop_assert!(expected_refusal(e), "unexpected error in a race: {e:?}");
                    }
                }
                if let Ok(rows) = ra {
                    posted.extend(rows);
                    made.push(la);
                }
                if let Ok(rows) = rb {
                    posted.extend(rows);
                    made.push(lb);
                }
                Ok(())
            }
        };
        if let Err(e) = &result {
            prop_assert!(expected_refusal(e), "unexpected error: {e:?}");
        }
        check_books(db, &ids).await?;
    }
    let verified = sustain_ledger::chain::verify(db, head_before + 1, 0)
        .await
        .expect("verify");
    prop_assert!(
        verified.first_bad.is_none(),
        "chain broken: {:?}",
        verified.first_bad
    );
    Ok(())
}

#[test]
fn no_sequence_of_operations_breaks_an_invariant() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(TestDatabase::new()).expect("database");
    let db = runtime
        .block_on(sustain_ledger::connect_and_migrate(&database.url))
        .expect("migrate");
    let default_cases = if database.is_postgres() { 150 } else { 1_000 };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    runner
        .run(&prop::collection::vec(op(), 1..24), |ops| {
            runtime.block_on(run_sequence(&db, ops))
        })
        .expect("every sequence keeps the invariants");
    let transfers = runtime
        .block_on(db.query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM ledger_transfer",
        )))
        .expect("count")
        .expect("row")
        .try_get::<i64>("", "n")
        .expect("n");
    // The sequences did move money, not only get refused.
    assert!(
        transfers as usize > cases as usize,
        "only {transfers} transfers made"
    );
}
