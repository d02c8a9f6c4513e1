//! The funding ledger over a real socket and database: money flowing from
//! plan to disbursement with the summary adding up, linked batches applied
//! whole or not at all, retries, two-phase transfers resolved once,
//! reversals, concurrent disbursements that never overspend, tampering found
//! by verification, scope and roles, and every bad field named.

mod common;

use common::*;
use pb::AccountKind::{Allocation, Expenditure, Plan, Source};
use pb::FundingSource::{CentralInvestment, LocalBudget, SocialContribution};
use sea_orm::ConnectionTrait;
use sustain_platform::Role;
use sustain_proto::ledger::v1 as pb;
use tonic::Code;

const P3: &str = "NTP-SPR.3";

#[tokio::test]
async fn money_flows_from_plan_to_disbursement_and_the_summary_adds_up() {
    let ledger = Ledger::start().await;
    let mut province = ledger.accounts(Role::Finance, PROVINCE).await;
    let budget = central(&mut province, Source, "20", "", 0).await;
    let plan = central(&mut province, Plan, "20", P3, 2024).await;
    assert!(plan.must_not_overspend, "plans are always guarded");
    let binh_gia = central(&mut province, Allocation, "181", "NTP-SPR.3.1", 2024).await;
    let trang_dinh = central(&mut province, Allocation, "180", P3, 2024).await;
    let commune = central(&mut province, Allocation, "06067", "NTP-SPR.3.1", 2024).await;
    let spent = central(&mut province, Expenditure, "181", "NTP-SPR.3.1", 2024).await;
    let social = open(
        &mut province,
        account(Source, SocialContribution, "20", "", 0),
    )
    .await;
    let social_alloc = open(
        &mut province,
        account(Allocation, SocialContribution, "181", P3, 2024),
    )
    .await;

    let mut money = ledger.transfers(Role::Finance, PROVINCE).await;
    send(&mut money, vec![leg(&budget, &plan, 1_000)])
        .await
        .expect("plan");
    // An allocation split across two districts: one linked batch.
    let split = send(
        &mut money,
        vec![leg(&plan, &binh_gia, 600), leg(&plan, &trang_dinh, 300)],
    )
    .await
    .expect("allocate");
    assert_eq!(split.len(), 2);
    assert_eq!(split[0].batch_id, split[1].batch_id);
    assert_eq!((split[0].leg, split[1].leg), (0, 1));
    // Binh Gia passes some on to a commune: not allocated twice.
    send(&mut money, vec![leg(&binh_gia, &commune, 100)])
        .await
        .expect("re-allocate");
    send(&mut money, vec![leg(&social, &social_alloc, 80)])
        .await
        .expect("mobilise");

    let mut district = ledger.transfers(Role::Finance, BINH_GIA).await;
    let mut commit = leg(&binh_gia, &spent, 200);
    commit.pending = true;
    let committed = send(&mut district, vec![commit])
        .await
        .expect("commit")
        .remove(0);
    assert_eq!(committed.state, pb::TransferState::Pending as i32);
    let mut spare = leg(&binh_gia, &spent, 100);
    spare.pending = true;
    let spare = send(&mut district, vec![spare])
        .await
        .expect("commit")
        .remove(0);
    let mut accounts = ledger.accounts(Role::Finance, BINH_GIA).await;
    let b = balance(&mut accounts, &binh_gia, "").await;
    assert_eq!((b.debits_pending, b.available), (300, 200));

    let posted = district
        .post_transfer(pb::PostTransferRequest {
            id: committed.id.clone(),
            value_date: "2024-06-01".into(),
        })
        .await
        .expect("post")
        .into_inner()
        .transfer
        .expect("transfer");
    assert_eq!(posted.state, pb::TransferState::Posted as i32);
    district
        .void_transfer(pb::VoidTransferRequest {
            id: spare.id.clone(),
            value_date: String::new(),
        })
        .await
        .expect("void");
    let direct = send(&mut district, vec![leg(&binh_gia, &spent, 50)])
        .await
        .expect("spend")
        .remove(0);
    let mut back = leg(&spent, &binh_gia, 20);
    back.reverses_id = direct.id.clone();
    send(&mut district, vec![back]).await.expect("reverse part");
    let mut too_much = leg(&spent, &binh_gia, 31);
    too_much.reverses_id = direct.id.clone();
    let refused = send(&mut district, vec![too_much])
        .await
        .expect_err("over-reversal");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "REVERSAL_EXCEEDS_ORIGINAL");

    let b = balance(&mut accounts, &binh_gia, "").await;
    assert_eq!(
        (
            b.credits_posted,
            b.debits_posted,
            b.debits_pending,
            b.available
        ),
        (620, 350, 0, 270)
    );
    // As of a day before the commitment was posted it was still pending.
    let before = balance(&mut accounts, &binh_gia, "2024-05-31").await;
    // (the spare one was voided today, so it was pending then too).
    assert_eq!((before.debits_pending, before.debits_posted), (300, 150));
    let early = balance(&mut accounts, &binh_gia, "2024-02-28").await;
    assert_eq!(early, pb::Balance::default());

    let summary = ledger
        .funding(Role::Viewer, PROVINCE)
        .await
        .get_funding_summary(pb::GetFundingSummaryRequest {
            unit_code: "20".into(),
            from_year: 2021,
            to_year: 2025,
        })
        .await
        .expect("summary")
        .into_inner()
        .summary
        .expect("summary");
    let total = summary.total.expect("total");
    assert_eq!(
        (
            total.planned_vnd,
            total.allocated_vnd,
            total.committed_vnd,
            total.disbursed_vnd
        ),
        (1_000, 980, 0, 230)
    );
    assert_eq!(total.disbursement_percent, "23.47");
    assert_eq!(summary.central_budget.expect("central").allocated_vnd, 900);
    assert_eq!(summary.mobilised.expect("mobilised").allocated_vnd, 80);
    let units: Vec<(String, i64)> = summary
        .by_unit
        .iter()
        .map(|u| {
            (
                u.unit_code.clone(),
                u.figures.clone().expect("figures").allocated_vnd,
            )
        })
        .collect();
    assert_eq!(
        units,
        [
            ("180".to_owned(), 300),
            ("181".to_owned(), 680),
            ("20".to_owned(), 0)
        ]
    );
    // For the district, the commune's share is re-allocated inside it.
    let district_summary = ledger
        .funding(Role::Viewer, BINH_GIA)
        .await
        .get_funding_summary(pb::GetFundingSummaryRequest {
            unit_code: "181".into(),
            from_year: 2024,
            to_year: 2024,
        })
        .await
        .expect("summary")
        .into_inner()
        .summary
        .expect("summary")
        .total
        .expect("total");
    assert_eq!(
        (
            district_summary.allocated_vnd,
            district_summary.disbursed_vnd
        ),
        (680, 230)
    );

    let verified = ledger
        .chain(Role::Finance, PROVINCE)
        .await
        .verify_chain(pb::VerifyChainRequest::default())
        .await
        .expect("verify")
        .into_inner();
    assert!(verified.valid, "{}", verified.problem);
    // 8 accounts, 9 transfers made, 2 resolved.
    assert_eq!(verified.entries_checked, 19);
}

#[tokio::test]
async fn a_batch_applies_whole_or_not_at_all_and_retries_return_the_original() {
    let ledger = Ledger::start().await;
    let mut finance = ledger.accounts(Role::Finance, PROVINCE).await;
    let local = open(&mut finance, account(Source, LocalBudget, "20", "", 0)).await;
    let alloc = open(
        &mut finance,
        account(Allocation, LocalBudget, "181", P3, 2024),
    )
    .await;
    let spent = open(
        &mut finance,
        account(Expenditure, LocalBudget, "181", P3, 2024),
    )
    .await;
    let mut money = ledger.transfers(Role::Finance, PROVINCE).await;
    let funded = leg(&local, &alloc, 500);
    send(&mut money, vec![funded.clone()]).await.expect("fund");
    let mut chain = ledger.chain(Role::Finance, PROVINCE).await;
    let head = chain
        .get_chain_head(pb::GetChainHeadRequest::default())
        .await
        .expect("head")
        .into_inner();

    // The second leg would overspend: neither is made.
    let first = leg(&alloc, &spent, 300);
    let second = leg(&alloc, &spent, 201);
    let refused = send(&mut money, vec![first.clone(), second])
        .await
        .expect_err("overspend");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "INSUFFICIENT_FUNDS");
    assert!(
        refused.message().starts_with("transfers[1]"),
        "{}",
        refused.message()
    );
    let missing = money
        .get_transfer(pb::GetTransferRequest {
            id: first.id.clone(),
        })
        .await
        .expect_err("first leg not made");
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(balance(&mut finance, &alloc, "").await.available, 500);
    let after = chain
        .get_chain_head(pb::GetChainHeadRequest::default())
        .await
        .expect("head")
        .into_inner();
    assert_eq!(after, head, "nothing went on the chain");

    // A retry with the same id and content returns the original.
    let again = send(&mut money, vec![funded.clone()])
        .await
        .expect("retry")
        .remove(0);
    assert_eq!(again.id, funded.id);
    assert_eq!(balance(&mut finance, &alloc, "").await.credits_posted, 500);
    // The same id with other content is refused.
    let mut changed = funded.clone();
    changed.amount_vnd = 501;
    let clash = send(&mut money, vec![changed])
        .await
        .expect_err("changed retry");
    assert_eq!(clash.code(), Code::AlreadyExists);
    assert_eq!(reason(&clash), "TRANSFER_EXISTS");

    // Pending: posted once; posting again answers the same, voiding refuses.
    let mut reserve = leg(&alloc, &spent, 400);
    reserve.pending = true;
    let reserved = send(&mut money, vec![reserve])
        .await
        .expect("reserve")
        .remove(0);
    for _ in 0..2 {
        let t = money
            .post_transfer(pb::PostTransferRequest {
                id: reserved.id.clone(),
                value_date: String::new(),
            })
            .await
            .expect("post")
            .into_inner()
            .transfer
            .expect("transfer");
        assert_eq!(t.state, pb::TransferState::Posted as i32);
    }
    let late = money
        .void_transfer(pb::VoidTransferRequest {
            id: reserved.id.clone(),
            value_date: String::new(),
        })
        .await
        .expect_err("void after post");
    assert_eq!(late.code(), Code::FailedPrecondition);
    assert_eq!(reason(&late), "ALREADY_POSTED");
    let b = balance(&mut finance, &alloc, "").await;
    assert_eq!(
        (b.debits_posted, b.debits_pending, b.available),
        (400, 0, 100)
    );
}

#[tokio::test]
async fn concurrent_disbursements_from_one_allocation_never_overspend() {
    let ledger = Ledger::start().await;
    let mut finance = ledger.accounts(Role::Finance, PROVINCE).await;
    let source = central(&mut finance, Source, "20", "", 0).await;
    let alloc = central(&mut finance, Allocation, "181", P3, 2024).await;
    let spent = central(&mut finance, Expenditure, "181", P3, 2024).await;
    let mut money = ledger.transfers(Role::Finance, PROVINCE).await;
    send(&mut money, vec![leg(&source, &alloc, 1_000)])
        .await
        .expect("fund");

    // 40 clients on their own connections each ask for 50: exactly 20 fit.
    let mut tasks = vec![];
    for i in 0..40 {
        let mut client = ledger.transfers(Role::Finance, BINH_GIA).await;
        let mut t = leg(&alloc, &spent, 50);
        t.pending = i % 2 == 0;
        tasks.push(tokio::spawn(
            async move { send(&mut client, vec![t]).await },
        ));
    }
    let mut made = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(_) => made += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert_eq!(reason(&status), "INSUFFICIENT_FUNDS");
            }
        }
    }
    assert_eq!(made, 20);
    let b = balance(&mut finance, &alloc, "").await;
    assert_eq!(b.available, 0);
    assert_eq!(b.debits_posted + b.debits_pending, 1_000);
    let verified = ledger
        .chain(Role::Finance, PROVINCE)
        .await
        .verify_chain(pb::VerifyChainRequest::default())
        .await
        .expect("verify")
        .into_inner();
    assert!(verified.valid, "{}", verified.problem);
}

#[tokio::test]
async fn a_tampered_amount_is_found_at_its_entry() {
    let ledger = Ledger::start().await;
    let mut finance = ledger.accounts(Role::Finance, PROVINCE).await;
    let source = central(&mut finance, Source, "20", "", 0).await;
    let plan = central(&mut finance, Plan, "20", P3, 2024).await;
    let mut money = ledger.transfers(Role::Finance, PROVINCE).await;
    let mut made = vec![];
    for amount in [100, 200, 300] {
        made.push(
            send(&mut money, vec![leg(&source, &plan, amount)])
                .await
                .expect("plan")
                .remove(0),
        );
    }
    let mut chain = ledger.chain(Role::Finance, PROVINCE).await;
    let head = chain
        .get_chain_head(pb::GetChainHeadRequest::default())
        .await
        .expect("head")
        .into_inner();
    assert_eq!(head.sequence, 5);

    let db = sustain_db::connect(&ledger.db.url).await.expect("db");
    db.execute_unprepared(&format!(
        "UPDATE ledger_transfer SET amount = 2000 WHERE id = '{}'",
        made[1].id
    ))
    .await
    .expect("tamper");
    let verified = chain
        .verify_chain(pb::VerifyChainRequest::default())
        .await
        .expect("verify")
        .into_inner();
    assert!(!verified.valid);
    assert_eq!(verified.first_bad_sequence, made[1].sequence);
    assert_eq!(
        verified.entries_checked, 3,
        "the entries before it are good"
    );
    assert!(
        verified.problem.contains(&made[1].id),
        "{}",
        verified.problem
    );
    // A range that ends before it still verifies.
    let before = chain
        .verify_chain(pb::VerifyChainRequest {
            from_sequence: 1,
            to_sequence: made[0].sequence,
        })
        .await
        .expect("verify")
        .into_inner();
    assert!(before.valid);

    // A removed entry is a gap.
    db.execute_unprepared(&format!(
        "UPDATE ledger_transfer SET amount = 200 WHERE id = '{}'",
        made[1].id
    ))
    .await
    .expect("restore");
    db.execute_unprepared(&format!(
        "DELETE FROM ledger_entry WHERE sequence = {}",
        made[2].sequence
    ))
    .await
    .expect("remove");
    let gap = chain
        .verify_chain(pb::VerifyChainRequest::default())
        .await
        .expect("verify")
        .into_inner();
    assert!(!gap.valid);
    assert_eq!(gap.first_bad_sequence, made[2].sequence);
}

#[tokio::test]
async fn roles_and_scope_hold_on_every_path() {
    let ledger = Ledger::start().await;
    let mut province = ledger.accounts(Role::Finance, PROVINCE).await;
    let source = central(&mut province, Source, "20", "", 0).await;
    let plan = central(&mut province, Plan, "20", P3, 2024).await;
    let binh_gia = central(&mut province, Allocation, "181", P3, 2024).await;
    let trang_dinh = central(&mut province, Allocation, "180", P3, 2024).await;
    let mut money = ledger.transfers(Role::Finance, PROVINCE).await;
    send(&mut money, vec![leg(&source, &plan, 1_000)])
        .await
        .expect("plan");
    let to_180 = send(&mut money, vec![leg(&plan, &trang_dinh, 400)])
        .await
        .expect("allocate")
        .remove(0);

    // A district officer cannot pull money from the province's plan.
    let mut district = ledger.transfers(Role::Finance, BINH_GIA).await;
    let pulled = send(&mut district, vec![leg(&plan, &binh_gia, 100)])
        .await
        .expect_err("out of scope");
    assert_eq!(pulled.code(), Code::PermissionDenied);
    // Viewers and enumerators move no money; enumerators read none.
    for role in [Role::Viewer, Role::Enumerator, Role::Admin] {
        let mut client = ledger.transfers(role, PROVINCE).await;
        let denied = send(&mut client, vec![leg(&plan, &binh_gia, 1)])
            .await
            .expect_err("role");
        assert_eq!(denied.code(), Code::PermissionDenied, "{role:?}");
    }
    let mut enumerator = ledger.accounts(Role::Enumerator, PROVINCE).await;
    let denied = enumerator
        .get_account(pb::GetAccountRequest {
            id: plan.id.clone(),
        })
        .await
        .expect_err("enumerator");
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Binh Gia sees its own accounts only: get, list, balance, transfers, summary.
    let mut viewer = ledger.accounts(Role::Viewer, BINH_GIA).await;
    for id in [&trang_dinh.id, &plan.id] {
        let other = viewer
            .get_account(pb::GetAccountRequest { id: id.clone() })
            .await
            .expect_err("other unit");
        assert_eq!(other.code(), Code::PermissionDenied);
        let other = viewer
            .get_balance(pb::GetBalanceRequest {
                account_id: id.clone(),
                as_of: String::new(),
            })
            .await
            .expect_err("other unit");
        assert_eq!(other.code(), Code::PermissionDenied);
    }
    let listed = viewer
        .list_accounts(pb::ListAccountsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .accounts;
    assert_eq!(
        listed.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [binh_gia.id.as_str()]
    );
    let mut viewer_money = ledger.transfers(Role::Viewer, BINH_GIA).await;
    let hidden = viewer_money
        .get_transfer(pb::GetTransferRequest {
            id: to_180.id.clone(),
        })
        .await
        .expect_err("other unit's transfer");
    assert_eq!(hidden.code(), Code::PermissionDenied);
    let seen = viewer_money
        .list_transfers(pb::ListTransfersRequest::default())
        .await
        .expect("list")
        .into_inner()
        .transfers;
    assert!(seen.is_empty(), "no transfer touches Binh Gia yet");
    let mut district_funding = ledger.funding(Role::Viewer, BINH_GIA).await;
    let denied = district_funding
        .get_funding_summary(pb::GetFundingSummaryRequest {
            unit_code: "20".into(),
            from_year: 2024,
            to_year: 2024,
        })
        .await
        .expect_err("province summary");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut viewer_chain = ledger.chain(Role::Viewer, PROVINCE).await;
    let denied = viewer_chain
        .get_chain_head(pb::GetChainHeadRequest::default())
        .await
        .expect_err("chain is finance's");
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn bad_input_names_every_field_and_writes_nothing() {
    let ledger = Ledger::start().await;
    let mut finance = ledger.accounts(Role::Finance, PROVINCE).await;
    let bad = finance
        .create_account(pb::CreateAccountRequest {
            account: Some(pb::Account {
                id: "mine".into(),
                unit_code: "99999".into(),
                project_code: "NTP%".into(),
                year: 1990,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("bad account");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&bad),
        [
            "account.kind",
            "account.source",
            "account.name",
            "account.unit_code",
            "account.project_code",
            "account.year",
            "account.id"
        ]
    );
    let source = central(&mut finance, Source, "20", "", 0).await;
    let plan = open(&mut finance, account(Plan, LocalBudget, "20", P3, 2024)).await;
    let spent = central(&mut finance, Expenditure, "20", P3, 2024).await;
    let mut money = ledger.transfers(Role::Finance, PROVINCE).await;
    let mut broken = leg(&source, &source, 0);
    broken.id = "not-an-id".into();
    broken.value_date = "2999-01-01".into();
    broken.state = pb::TransferState::Posted as i32;
    let bad = send(&mut money, vec![broken])
        .await
        .expect_err("bad transfer");
    assert_eq!(
        violated_fields(&bad),
        [
            "transfers[0].id",
            "transfers[0].credit_account_id",
            "transfers[0].amount_vnd",
            "transfers[0].value_date",
            "transfers[0].state"
        ]
    );
    // Money keeps its source, and flows only down the programme.
    let bad = send(
        &mut money,
        vec![leg(&source, &plan, 10), leg(&source, &spent, 10)],
    )
    .await
    .expect_err("source and flow");
    assert_eq!(
        violated_fields(&bad),
        [
            "transfers[0].credit_account_id",
            "transfers[1].credit_account_id"
        ]
    );
    let head = ledger
        .chain(Role::Finance, PROVINCE)
        .await
        .get_chain_head(pb::GetChainHeadRequest::default())
        .await
        .expect("head")
        .into_inner();
    assert_eq!(head.sequence, 3, "only the three accounts");
}

#[tokio::test]
async fn transfers_and_accounts_list_by_account_date_project_and_unit_page_by_page() {
    let ledger = Ledger::start().await;
    let mut finance = ledger.accounts(Role::Finance, PROVINCE).await;
    let source = central(&mut finance, Source, "20", "", 0).await;
    let p3 = central(&mut finance, Allocation, "181", "NTP-SPR.3.1", 2024).await;
    let p5 = central(&mut finance, Allocation, "180", "NTP-SPR.5", 2024).await;
    let mut money = ledger.transfers(Role::Finance, PROVINCE).await;
    let mut made = vec![];
    for (i, (to, date)) in [
        (&p3, "2024-01-10"),
        (&p5, "2024-02-10"),
        (&p3, "2024-03-10"),
        (&p3, "2024-04-10"),
        (&p5, "2024-05-10"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut t = leg(&source, to, 100 + i as i64);
        t.value_date = date.into();
        made.push(send(&mut money, vec![t]).await.expect("transfer").remove(0));
    }
    let list = |filter: pb::TransferFilter| {
        let mut client = money.clone();
        async move {
            let mut ids = vec![];
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_transfers(pb::ListTransfersRequest {
                        filter: Some(filter.clone()),
                        page_size: 2,
                        page_token,
                    })
                    .await
                    .expect("list")
                    .into_inner();
                ids.extend(page.transfers.into_iter().map(|t| t.amount_vnd));
                if page.next_page_token.is_empty() {
                    return ids;
                }
                page_token = page.next_page_token;
            }
        }
    };
    assert_eq!(
        list(pb::TransferFilter::default()).await,
        [100, 101, 102, 103, 104]
    );
    let by_account = pb::TransferFilter {
        account_id: p3.id.clone(),
        ..Default::default()
    };
    assert_eq!(list(by_account).await, [100, 102, 103]);
    let by_dates = pb::TransferFilter {
        from_date: "2024-02-01".into(),
        to_date: "2024-04-10".into(),
        ..Default::default()
    };
    assert_eq!(list(by_dates).await, [101, 102, 103]);
    let by_project = pb::TransferFilter {
        project_code: "NTP-SPR.5".into(),
        ..Default::default()
    };
    assert_eq!(list(by_project).await, [101, 104]);
    let by_unit = pb::TransferFilter {
        unit_code: "181".into(),
        ..Default::default()
    };
    assert_eq!(list(by_unit).await, [100, 102, 103]);
    // A token belongs to its filter.
    let first = money
        .list_transfers(pb::ListTransfersRequest {
            filter: None,
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .expect("list")
        .into_inner();
    let misused = money
        .list_transfers(pb::ListTransfersRequest {
            filter: Some(pb::TransferFilter {
                unit_code: "181".into(),
                ..Default::default()
            }),
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await
        .expect_err("token of another filter");
    assert_eq!(violated_fields(&misused), ["page_token"]);

    let accounts = finance
        .list_accounts(pb::ListAccountsRequest {
            filter: Some(pb::AccountFilter {
                kind: Allocation as i32,
                project_code: "NTP-SPR.3".into(),
                ..Default::default()
            }),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("accounts")
        .into_inner()
        .accounts;
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].id, p3.id);
    assert_eq!(accounts[0].balance.expect("balance").credits_posted, 305);
}

/// The demo money reproduces the report's totals, the chain verifies, and a
/// second run writes nothing.
#[tokio::test]
async fn the_demo_money_matches_the_report_and_runs_twice_without_writing() {
    use sustain_ledger::demo;
    let ledger = Ledger::start().await;
    let channel = ledger.server.channel().await.expect("connect");
    let mut clients = demo::Clients::new(channel, &sustain_testkit::token(Role::Finance, &["*"]))
        .expect("clients");
    let first = demo::load(&mut clients, 7, 1, false).await.expect("demo");
    assert!(
        first.accounts == demo::planned_accounts() && first.transfers > 2_500,
        "{first:?}"
    );
    let (rows, verified) = demo::compare(&mut clients, 1).await.expect("compare");
    assert!(verified);
    for (label, reported, found) in &rows {
        assert_eq!(reported, found, "{label}");
    }
    let mut chain = ledger.chain(Role::Finance, PROVINCE).await;
    let head = chain
        .get_chain_head(pb::GetChainHeadRequest::default())
        .await
        .expect("head")
        .into_inner();
    demo::load(&mut clients, 7, 1, false)
        .await
        .expect("demo again");
    let again = chain
        .get_chain_head(pb::GetChainHeadRequest::default())
        .await
        .expect("head")
        .into_inner();
    assert_eq!(again, head, "the second run wrote nothing");
    // The districts' figures add up to the province's.
    let summary = ledger
        .funding(Role::Viewer, PROVINCE)
        .await
        .get_funding_summary(pb::GetFundingSummaryRequest {
            unit_code: "20".into(),
            from_year: 2021,
            to_year: 2025,
        })
        .await
        .expect("summary")
        .into_inner()
        .summary
        .expect("summary");
    let total = summary.total.expect("total");
    let by_units: i64 = summary
        .by_unit
        .iter()
        .map(|u| u.figures.as_ref().expect("figures").disbursed_vnd)
        .sum();
    assert_eq!(by_units, total.disbursed_vnd);
    assert_eq!(
        summary.by_unit.len(),
        demo::DISTRICTS.len() + 1,
        "the districts and the province's plans"
    );
    assert!(
        total.committed_vnd > 0,
        "2025 has money committed, not yet paid"
    );
}

#[tokio::test]
async fn expenditure_names_what_it_is_spent_on_and_is_found_by_it() {
    let ledger = Ledger::start().await;
    let mut finance = ledger.accounts(Role::Finance, PROVINCE).await;
    let model_id = id();
    let mut spent = account(Expenditure, CentralInvestment, "181", P3, 2024);
    spent.purpose = pb::SpendingPurpose::Model as i32;
    spent.reference_id = model_id.clone();
    let spent = open(&mut finance, spent).await;
    assert_eq!(spent.purpose, pb::SpendingPurpose::Model as i32);
    central(&mut finance, Expenditure, "181", P3, 2024).await;
    let found = finance
        .list_accounts(pb::ListAccountsRequest {
            filter: Some(pb::AccountFilter {
                reference_id: model_id.clone(),
                ..Default::default()
            }),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("list")
        .into_inner()
        .accounts;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, spent.id);
    // Only expenditure says what it is for; a reference needs a purpose.
    let mut plan = account(Plan, CentralInvestment, "20", P3, 2024);
    plan.purpose = pb::SpendingPurpose::Activity as i32;
    let refused = finance
        .create_account(pb::CreateAccountRequest {
            account: Some(plan),
            request_id: String::new(),
        })
        .await
        .expect_err("a plan with a purpose");
    assert_eq!(violated_fields(&refused), ["account.purpose"]);
    let mut loose = account(Expenditure, CentralInvestment, "181", P3, 2024);
    loose.reference_id = "not-an-id".into();
    let refused = finance
        .create_account(pb::CreateAccountRequest {
            account: Some(loose),
            request_id: String::new(),
        })
        .await
        .expect_err("a bad reference");
    assert_eq!(
        violated_fields(&refused),
        ["account.purpose", "account.reference_id"]
    );
}

/// The province's total for 2024: (planned, allocated, committed, disbursed).
async fn totals(ledger: &Ledger) -> (i64, i64, i64, i64) {
    totals_of(ledger, "20").await
}

async fn totals_of(ledger: &Ledger, unit: &str) -> (i64, i64, i64, i64) {
    let t = ledger
        .funding(Role::Viewer, PROVINCE)
        .await
        .get_funding_summary(pb::GetFundingSummaryRequest {
            unit_code: unit.into(),
            from_year: 2024,
            to_year: 2024,
        })
        .await
        .expect("summary")
        .into_inner()
        .summary
        .expect("summary")
        .total
        .expect("total");
    (
        t.planned_vnd,
        t.allocated_vnd,
        t.committed_vnd,
        t.disbursed_vnd,
    )
}

#[tokio::test]
async fn summaries_asked_again_after_every_kind_of_write_are_never_stale() {
    let ledger = Ledger::start().await;
    let mut accounts = ledger.accounts(Role::Finance, PROVINCE).await;
    let budget = central(&mut accounts, Source, "20", "", 0).await;
    let plan = central(&mut accounts, Plan, "20", P3, 2024).await;
    let allocation = central(&mut accounts, Allocation, "181", P3, 2024).await;
    let spent = central(&mut accounts, Expenditure, "181", P3, 2024).await;
    let mut money = ledger.transfers(Role::Finance, PROVINCE).await;
    assert_eq!(totals(&ledger).await, (0, 0, 0, 0));
    // Asked twice with nothing between: the same answer.
    assert_eq!(totals(&ledger).await, (0, 0, 0, 0));
    send(&mut money, vec![leg(&budget, &plan, 1_000)])
        .await
        .expect("plan");
    assert_eq!(totals(&ledger).await, (1_000, 0, 0, 0));
    assert_eq!(totals_of(&ledger, "181").await, (0, 0, 0, 0));
    send(&mut money, vec![leg(&plan, &allocation, 700)])
        .await
        .expect("allocate");
    // The district first this time: the province's summary, counted from the
    // same read of the transfers, must see the write too.
    assert_eq!(totals_of(&ledger, "181").await, (0, 700, 0, 0));
    assert_eq!(totals(&ledger).await, (1_000, 700, 0, 0));
    let mut pending = leg(&allocation, &spent, 300);
    pending.pending = true;
    let pending = send(&mut money, vec![pending])
        .await
        .expect("commit")
        .remove(0);
    assert_eq!(totals(&ledger).await, (1_000, 700, 300, 0));
    assert_eq!(totals_of(&ledger, "181").await, (0, 700, 300, 0));
    money
        .post_transfer(pb::PostTransferRequest {
            id: pending.id.clone(),
            value_date: "2024-06-01".into(),
        })
        .await
        .expect("post");
    assert_eq!(totals_of(&ledger, "181").await, (0, 700, 0, 300));
    assert_eq!(totals(&ledger).await, (1_000, 700, 0, 300));
    let mut spare = leg(&allocation, &spent, 50);
    spare.pending = true;
    let spare = send(&mut money, vec![spare])
        .await
        .expect("commit")
        .remove(0);
    assert_eq!(totals(&ledger).await, (1_000, 700, 50, 300));
    assert_eq!(totals_of(&ledger, "181").await, (0, 700, 50, 300));
    money
        .void_transfer(pb::VoidTransferRequest {
            id: spare.id,
            value_date: String::new(),
        })
        .await
        .expect("void");
    assert_eq!(totals_of(&ledger, "181").await, (0, 700, 0, 300));
    assert_eq!(totals(&ledger).await, (1_000, 700, 0, 300));
}

/// One transfer id in the five spellings a UUID is written in: one transfer,
/// one debit. Each retry gets the first transfer back, under its one stored
/// spelling, and reads find it under any spelling.
#[tokio::test]
async fn a_transfer_id_spelled_five_ways_is_one_transfer() {
    let ledger = Ledger::start().await;
    let mut finance = ledger.accounts(Role::Finance, PROVINCE).await;
    let local = open(&mut finance, account(Source, LocalBudget, "20", "", 0)).await;
    let alloc = open(
        &mut finance,
        account(Allocation, LocalBudget, "181", P3, 2024),
    )
    .await;
    let mut money = ledger.transfers(Role::Finance, PROVINCE).await;
    let uuid = uuid::Uuid::now_v7();
    let spellings = [
        uuid.hyphenated().to_string(),
        uuid.hyphenated().to_string().to_uppercase(),
        uuid.braced().to_string(),
        uuid.simple().to_string(),
        uuid.urn().to_string(),
    ];
    let canonical = uuid.hyphenated().to_string();
    for spelled in &spellings {
        let mut funded = leg(&local, &alloc, 500);
        funded.id = spelled.clone();
        funded.debit_account_id = local.id.to_uppercase();
        let made = send(&mut money, vec![funded]).await.expect("made or found");
        assert_eq!(made[0].id, canonical, "sent as {spelled}");
        let found = money
            .get_transfer(pb::GetTransferRequest {
                id: spelled.clone(),
            })
            .await
            .expect("found under any spelling")
            .into_inner()
            .transfer
            .expect("transfer");
        assert_eq!(found.id, canonical);
    }
    assert_eq!(
        balance(&mut finance, &alloc, "").await.available,
        500,
        "paid once"
    );
}
