//! A district's ledger chain at the province: it arrives entry by entry, each
//! checked to chain on the one before; the province's copy agrees with the
//! district's head; and when the district rewrites its history so well that
//! its own verification still passes, the province raises the alarm and keeps
//! the original.

mod common;

use common::*;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use sustain_domain::ledger::{GENESIS, chain_hash};
use sustain_ledger::chain;
use sustain_ledger::model::{account, entry, head, replica_entry, transfer};
use sustain_platform::Role;
use sustain_platform::config::Config;
use sustain_proto::ledger::v1 as pb;
use sustain_proto::sync::v1 as sync_pb;
use sustain_proto::sync::v1::sync_service_client::SyncServiceClient;
use sustain_testkit::proxy::Proxy;
use sustain_testkit::server::Bearer;
use sustain_testkit::token;
use sustain_testkit::{eventually, peer, sync_config};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;

use pb::AccountKind::{Allocation, Expenditure, Source};

const P3: &str = "NTP-SPR.3";

fn province_config(district_url: String) -> Config {
    let mut c = sync_config("province", "20");
    c.metrics_listen = Some(sustain_testkit::free_addr().expect("a free port"));
    c.sync.downstream = vec![peer("district-181", district_url, &["181"])];
    c
}

async fn own_head(ledger: &Ledger) -> pb::GetChainHeadResponse {
    ledger
        .chain(Role::Finance, &["20"])
        .await
        .get_chain_head(pb::GetChainHeadRequest::default())
        .await
        .expect("head")
        .into_inner()
}

async fn district_copy(
    province: &Ledger,
    scope: &[&str],
) -> Result<pb::GetChainHeadResponse, tonic::Status> {
    province
        .chain(Role::Finance, scope)
        .await
        .get_chain_head(pb::GetChainHeadRequest {
            at_sequence: 0,
            instance: "district-181".into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn scrape(addr: std::net::SocketAddr) -> prometheus_parse::Scrape {
    let body = sustain_testkit::scrape(addr).await.expect("scraped");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("parsed")
}

async fn peer_alarm(province: &Ledger) -> String {
    let channel = province.server.channel().await.expect("connect");
    let mut sync = SyncServiceClient::new(InterceptedService::new(
        channel,
        Bearer(token(Role::Admin, &["20"])),
    ));
    let status = sync
        .get_sync_status(sync_pb::GetSyncStatusRequest::default())
        .await
        .expect("status")
        .into_inner();
    status
        .peers
        .iter()
        .find(|p| p.peer == "district-181")
        .map(|p| p.alarm.clone())
        .expect("district-181 is a peer")
}

/// Rewrites the district's history as a careful forger would: a transfer's
/// amount changed, and every hash from its entry to the head recomputed, so
/// the district's own verification still passes.
async fn forge(url: &str, transfer_id: &str, amount: i64) {
    let db = sustain_db::connect(url).await.expect("connect");
    transfer::Entity::update_many()
        .col_expr(transfer::Column::Amount, amount.into())
        .filter(transfer::Column::Id.eq(transfer_id))
        .exec(&db)
        .await
        .expect("amount changed");
    let entries = entry::Entity::find()
        .order_by_asc(entry::Column::Sequence)
        .all(&db)
        .await
        .expect("entries");
    let mut hash = GENESIS;
    for e in entries {
        let bytes = match e.kind.as_str() {
            chain::ACCOUNT => {
                let a = account::Entity::find_by_id(e.record_id.clone())
                    .one(&db)
                    .await
                    .expect("read")
                    .expect("account");
                chain::account_bytes(e.sequence, &a)
            }
            kind => {
                let t = transfer::Entity::find_by_id(e.record_id.clone())
                    .one(&db)
                    .await
                    .expect("read")
                    .expect("transfer");
                if kind == chain::TRANSFER {
                    chain::transfer_bytes(e.sequence, &t)
                } else {
                    chain::resolution_bytes(e.sequence, &t)
                }
            }
        };
        hash = chain_hash(&hash, &bytes);
        entry::Entity::update_many()
            .col_expr(entry::Column::Hash, hex::encode(hash).into())
            .filter(entry::Column::Sequence.eq(e.sequence))
            .exec(&db)
            .await
            .expect("rehashed");
    }
    head::Entity::update_many()
        .col_expr(head::Column::Hash, hex::encode(hash).into())
        .filter(head::Column::Id.eq(1))
        .exec(&db)
        .await
        .expect("head moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_district_chain_is_verified_at_the_province_and_a_rewritten_one_raises_the_alarm() {
    let district_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let province_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut district_config = sync_config("district-181", "181");
    district_config.sync.upstream = Some(peer(
        "province",
        format!("http://{}", province_listener.local_addr().expect("addr")),
        &[],
    ));
    let district = Ledger::start_on(district_listener, district_config).await;
    // The province pulls through a proxy that can cut the link.
    let link = Proxy::start(district.server.addr).await.expect("proxy");
    let first = province_config(link.url());
    let metrics_at = first.metrics_listen.expect("metrics");
    let province = Ledger::start_on(province_listener, first).await;

    // The district's money: its own source, an allocation, a commune's spending.
    let mut accounts = district.accounts(Role::Finance, BINH_GIA).await;
    let source = central(&mut accounts, Source, "181", "", 0).await;
    let allocation = central(&mut accounts, Allocation, "181", P3, 2024).await;
    let spent = central(&mut accounts, Expenditure, "06067", P3, 2024).await;
    let mut transfers = district.transfers(Role::Finance, BINH_GIA).await;
    let funded = send(&mut transfers, vec![leg(&source, &allocation, 900_000_000)])
        .await
        .expect("allocated");
    let mut pending = leg(&allocation, &spent, 300_000_000);
    pending.pending = true;
    let pending = send(&mut transfers, vec![pending])
        .await
        .expect("committed");
    transfers
        .post_transfer(pb::PostTransferRequest {
            id: pending[0].id.clone(),
            ..Default::default()
        })
        .await
        .expect("posted");

    // Entry by entry the province's copy reaches the district's head.
    let theirs = own_head(&district).await;
    assert_eq!(
        theirs.sequence, 6,
        "three accounts, two transfers, a posting"
    );
    eventually(
        "the province holds the district's chain to its head",
        || async {
            district_copy(&province, &["20"])
                .await
                .is_ok_and(|c| c.sequence == theirs.sequence && c.hash == theirs.hash)
        },
    )
    .await;
    assert_eq!(peer_alarm(&province).await, "");
    // The province's own chain covers the whole province: a district's scope
    // reads the copy of its own chain there, not the province's.
    let mut from_181 = province.chain(Role::Finance, BINH_GIA).await;
    for refused in [
        from_181
            .get_chain_head(pb::GetChainHeadRequest::default())
            .await
            .map(|_| ()),
        from_181
            .verify_chain(pb::VerifyChainRequest::default())
            .await
            .map(|_| ()),
    ] {
        assert_eq!(
            refused.expect_err("not the whole province").code(),
            tonic::Code::PermissionDenied
        );
    }
    assert!(district_copy(&province, BINH_GIA).await.is_ok());
    let copy = district_copy(&province, &["20"]).await.expect("copy");
    assert_eq!(copy.alarm, "");
    // Only the province's own ground reads it: district 185 does not.
    let refused = district_copy(&province, &["185"])
        .await
        .expect_err("out of scope");
    assert_eq!(refused.code(), Code::PermissionDenied);
    // The province's own chain is untouched by the district's.
    assert_eq!(own_head(&province).await.sequence, 0);

    // The district cannot open an account on ground it does not own: the
    // province keeps that ledger.
    let mut admin = district.accounts(Role::Admin, &["20"]).await;
    let elsewhere = admin
        .create_account(pb::CreateAccountRequest {
            account: Some(account(
                Allocation,
                pb::FundingSource::LocalBudget,
                "185",
                P3,
                2024,
            )),
            request_id: String::new(),
        })
        .await
        .expect_err("185 is not the district's");
    assert_eq!(elsewhere.code(), Code::FailedPrecondition);
    assert!(
        elsewhere.message().contains("province"),
        "{}",
        elsewhere.message()
    );

    // The district rewrites its first allocation, consistently: its own check passes.
    forge(&district.db.url, &funded[0].id, 90_000_000).await;
    let verified = district
        .chain(Role::Finance, BINH_GIA)
        .await
        .verify_chain(pb::VerifyChainRequest::default())
        .await
        .expect("verify")
        .into_inner();
    assert!(
        verified.valid,
        "the forgery is self-consistent: {verified:?}"
    );
    assert_ne!(verified.hash, theirs.hash);

    // The province compares on every (re)connection and after every batch.
    link.cut();
    eventually("the province raises the alarm", || async {
        !peer_alarm(&province).await.is_empty()
    })
    .await;
    let alarm = peer_alarm(&province).await;
    assert!(
        alarm.contains("rewritten") && alarm.contains("entry 6"),
        "{alarm}"
    );

    // A later entry, chained on the forged history, does not chain on the
    // copy held here: kept, unverified, and the head stays where it was.
    send(&mut transfers, vec![leg(&allocation, &spent, 1_000_000)])
        .await
        .expect("spent");
    let province_db = sustain_db::connect(&province.db.url)
        .await
        .expect("connect");
    eventually("the later entry arrives", || async {
        replica_entry::Entity::find_by_id(("district-181".to_owned(), 7))
            .one(&province_db)
            .await
            .expect("read")
            .is_some()
    })
    .await;
    let later = replica_entry::Entity::find_by_id(("district-181".to_owned(), 7))
        .one(&province_db)
        .await
        .expect("read")
        .expect("entry 7");
    assert!(!later.verified);
    let copy = district_copy(&province, &["20"]).await.expect("copy");
    assert_eq!(
        (copy.sequence, copy.hash.as_str()),
        (6, theirs.hash.as_str())
    );
    assert!(
        copy.alarm.contains("rewritten"),
        "the first alarm stays: {}",
        copy.alarm
    );
    // The province still holds the amount as it was first recorded.
    let original = replica_entry::Entity::find()
        .filter(replica_entry::Column::RecordId.eq(funded[0].id.clone()))
        .one(&province_db)
        .await
        .expect("read")
        .expect("the allocation's entry");
    let record: serde_json::Value = serde_json::from_str(&original.record).expect("json");
    assert_eq!(record["amount"], 900_000_000);

    // Prometheus sees the same: the alarm, the cursor, and the calls made.
    let scraped = scrape(metrics_at).await;
    let sample = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scraped
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    let peer = [("service", "ledger"), ("peer", "district-181")];
    assert_eq!(sample("sustain_sync_alarm", &peer), 1.0);
    assert!(sample("sustain_sync_cursor", &peer) >= 6.0);
    assert_eq!(sample("sustain_sync_connected", &peer), 1.0);
    let head_calls = |code: &str| {
        sample(
            "grpc_server_handled_total",
            &[
                ("grpc_service", "sustain.ledger.v1.ChainService"),
                ("grpc_method", "GetChainHead"),
                ("grpc_type", "unary"),
                ("grpc_code", code),
            ],
        )
    };
    assert!(head_calls("OK") >= 2.0, "{}", head_calls("OK"));
    assert!(head_calls("PermissionDenied") >= 1.0);
    assert!(
        sample(
            "grpc_server_started_total",
            &[
                ("grpc_service", "sustain.sync.v1.SyncService"),
                ("grpc_method", "Pull"),
                ("grpc_type", "server_stream"),
            ],
        ) >= 1.0
    );
    assert!(
        scraped
            .samples
            .iter()
            .any(|s| s.metric == "grpc_server_handling_seconds"),
        "the latency histogram"
    );

    // The alarm outlives a restart of the province.
    let province = province.restart(province_config(link.url())).await;
    eventually("the alarm is shown again", || async {
        peer_alarm(&province).await.contains("rewritten")
    })
    .await;
}

/// A taken-over district's feed sends links that are not its chain's: one
/// claiming district 185's chain, one rewriting an entry of the province's own
/// chain under the district's unit. Both are kept as conflicts; the province's
/// chain and its copies are as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_district_cannot_send_links_of_another_chain() {
    use sustain_testkit::rogue::{RogueFeed, change};
    let rogue_at = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let rogue = RogueFeed::default();
    let rogue_url = format!("http://{}", rogue_at.local_addr().expect("addr"));
    let _feed = rogue.serve(rogue_at, None);
    let province_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let province = Ledger::start_on(province_listener, province_config(rogue_url)).await;

    // The province's own chain: one account.
    let mut accounts = province.accounts(Role::Finance, &["20"]).await;
    central(&mut accounts, Source, "20", "", 0).await;
    let before = own_head(&province).await;
    let db = sustain_db::connect(&province.db.url)
        .await
        .expect("connect");
    let first = entry::Entity::find_by_id(1)
        .one(&db)
        .await
        .expect("read")
        .expect("the province's first entry");
    let link = |instance: &str| {
        serde_json::json!({
            "instance": instance, "sequence": 1, "kind": first.kind, "record_id": first.record_id,
            "hash": "00".repeat(32), "record": {},
        })
        .to_string()
    };
    rogue.send(vec![
        change(
            1,
            chain::LINK_RECORD,
            "district-185/1",
            "181",
            1,
            link("district-185"),
        ),
        change(
            2,
            chain::LINK_RECORD,
            "province/1",
            "181",
            1,
            link("province"),
        ),
    ]);

    let mut sync = SyncServiceClient::new(InterceptedService::new(
        province.server.channel().await.expect("connect"),
        Bearer(token(Role::Admin, &["*"])),
    ));
    let list = |mut sync: SyncServiceClient<
        InterceptedService<tonic::transport::Channel, Bearer>,
    >| async move {
        sync.list_conflicts(sync_pb::ListConflictsRequest {
            include_resolved: false,
        })
        .await
        .map(|r| r.into_inner().conflicts)
        .unwrap_or_default()
    };
    eventually("both links are kept as conflicts", || {
        let sync = sync.clone();
        async move { list(sync).await.len() == 2 }
    })
    .await;
    let kept = list(sync.clone()).await;
    let reason = |id: &str| {
        kept.iter()
            .find(|c| c.record_id == id)
            .map_or(String::new(), |c| c.reason.clone())
    };
    for (id, claimed) in [
        ("district-185/1", "district-185"),
        ("province/1", "province"),
    ] {
        let why = reason(id);
        assert!(
            why.contains("claims the chain of") && why.contains(claimed),
            "{id}: {why}"
        );
    }
    // Nothing was written: no copy of 185's chain, the province's own as it was.
    let copies = replica_entry::Entity::find()
        .all(&db)
        .await
        .expect("copies");
    assert!(copies.is_empty(), "{copies:?}");
    assert_eq!(own_head(&province).await.hash, before.hash);
    let verified = province
        .chain(Role::Finance, &["20"])
        .await
        .verify_chain(pb::VerifyChainRequest::default())
        .await
        .expect("verify")
        .into_inner();
    assert!(verified.valid, "{verified:?}");
    let _ = sync
        .sync_now(sync_pb::SyncNowRequest {})
        .await
        .expect("an admin of the whole province");
}
