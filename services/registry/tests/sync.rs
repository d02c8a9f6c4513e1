//! Province ↔ district sync over real servers: a province and two districts,
//! each a registry over its own database, linked through TCP proxies the tests
//! cut and stall. Household and review records flow up; handovers flow down.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use sea_orm::{ConnectionTrait, Database, EntityTrait, Statement};
use sustain_platform::Role;
use sustain_platform::config::Config;
use sustain_proto::registry::v1 as pb;
use sustain_proto::sync::v1 as spb;
use sustain_proto::sync::v1::sync_service_client::SyncServiceClient;
use sustain_testkit::proxy::Proxy;
use sustain_testkit::server::Running;
use sustain_testkit::{TestDatabase, peer, token};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const PROVINCE: &str = "province";
const A: &str = "district-181";
const B: &str = "district-185";
/// A commune of district 181 (Bình Gia), handed to 185 in the handover test.
const HANDED: &str = "06070";

type Sync = SyncServiceClient<InterceptedService<Channel, Bearer>>;

/// One instance: a registry over its own database.
struct Instance {
    addr: SocketAddr,
    db: TestDatabase,
    /// The server; stopped when the instance is dropped.
    _running: Running,
}

impl Instance {
    async fn start(
        listener: tokio::net::TcpListener,
        config: Config,
        db: TestDatabase,
    ) -> Instance {
        let mut config = config;
        config.database_url = db.url.clone();
        let running = registry_on(listener, config).await;
        Instance {
            addr: running.addr,
            db,
            _running: running,
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    async fn households(&self, role: Role, scope: &[&str]) -> Households {
        pb::household_service_client::HouseholdServiceClient::with_interceptor(
            self.channel().await,
            Bearer(token(role, scope)),
        )
    }

    async fn reviews(&self, role: Role, scope: &[&str]) -> Reviews {
        pb::review_service_client::ReviewServiceClient::with_interceptor(
            self.channel().await,
            Bearer(token(role, scope)),
        )
    }

    async fn sync_as(&self, bearer: String) -> Sync {
        SyncServiceClient::with_interceptor(self.channel().await, Bearer(bearer))
    }

    async fn sync_admin(&self) -> Sync {
        self.sync_as(token(Role::Admin, &["*"])).await
    }
}

/// A province and two districts, each link through a proxy per direction.
struct Province {
    province: Instance,
    a: Instance,
    b: Instance,
    /// Province pulling from A, A pulling from the province.
    a_up: Proxy,
    a_down: Proxy,
    /// The province pulling from B; kept open for the instances' lifetime.
    _b_up: Proxy,
    b_down: Proxy,
}

fn config(name: &str, scope: &[&str], batch: u32) -> Config {
    let mut c = Config::defaults(0);
    c.shutdown_grace_secs = 0;
    c.cache_poll_ms = 50;
    c.sync.instance = name.into();
    c.sync.scope = scope.iter().map(|s| (*s).to_owned()).collect();
    c.sync.poll_ms = 50;
    c.sync.retry_max_ms = 300;
    c.sync.batch_size = batch;
    c
}

impl Province {
    async fn start(batch: u32) -> Province {
        let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
        let (lp, la, lb) = (
            bind().await.expect("bind"),
            bind().await.expect("bind"),
            bind().await.expect("bind"),
        );
        let (p_addr, a_addr, b_addr) = (
            lp.local_addr().expect("addr"),
            la.local_addr().expect("addr"),
            lb.local_addr().expect("addr"),
        );
        let a_up = Proxy::start(a_addr).await.expect("proxy");
        let a_down = Proxy::start(p_addr).await.expect("proxy");
        let b_up = Proxy::start(b_addr).await.expect("proxy");
        let b_down = Proxy::start(p_addr).await.expect("proxy");

        let mut p = config(PROVINCE, &["20"], batch);
        p.sync.downstream = vec![peer(A, a_up.url(), &["181"]), peer(B, b_up.url(), &["185"])];
        let mut a = config(A, &["181"], batch);
        a.sync.upstream = Some(peer(PROVINCE, a_down.url(), &[]));
        let mut b = config(B, &["185"], batch);
        b.sync.upstream = Some(peer(PROVINCE, b_down.url(), &[]));

        let province = Instance::start(lp, p, TestDatabase::new().await.expect("db")).await;
        let a = Instance::start(la, a, TestDatabase::new().await.expect("db")).await;
        let b = Instance::start(lb, b, TestDatabase::new().await.expect("db")).await;
        Province {
            province,
            a,
            b,
            a_up,
            a_down,
            _b_up: b_up,
            b_down,
        }
    }
}

/// Waits until `check` holds, up to `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not within {limit:?}");
}

async fn found(client: &mut Households, id: &str) -> bool {
    get(client, id).await.is_ok()
}

/// Every row of every registry table, as text, sorted: what must be equal on
/// both sides of a link. Sealed fields are left out (their ciphertext has a
/// fresh nonce each time it is sealed), members' citizen IDs compared by their
/// lookup hash, old household versions by key.
async fn tables(url: &str) -> BTreeMap<&'static str, Vec<String>> {
    let db = Database::connect(url).await.expect("connect");
    let mut out = BTreeMap::new();
    for (table, select) in [
        ("household", "SELECT * FROM household"),
        // Each side seals personal fields with its own keys (fresh nonces
        // even where the keys agree): compared through the lookup hash.
        (
            "member",
            "SELECT id, household_id, position, full_name, birth_date, sex, relation, citizen_id_hash, health_insurance FROM member",
        ),
        ("review", "SELECT * FROM review"),
        ("review_tally", "SELECT * FROM review_tally"),
        (
            "review_tally_province",
            "SELECT * FROM review_tally_province",
        ),
        (
            "household_version",
            "SELECT household_id, version FROM household_version",
        ),
    ] {
        let rows = db
            .query_all_raw(Statement::from_string(db.get_database_backend(), select))
            .await
            .expect("select");
        let mut texts: Vec<String> = rows.iter().map(row_text).collect();
        texts.sort();
        out.insert(table, texts);
    }
    db.close().await.expect("close");
    out
}

fn row_text(row: &sea_orm::QueryResult) -> String {
    let mut parts = vec![];
    for (i, name) in row.column_names().iter().enumerate() {
        let value = if let Ok(v) = row.try_get_by_index::<Option<String>>(i) {
            format!("{v:?}")
        } else if let Ok(v) = row.try_get_by_index::<Option<i64>>(i) {
            format!("{v:?}")
        } else if let Ok(v) = row.try_get_by_index::<Option<i32>>(i) {
            format!("{v:?}")
        } else if let Ok(v) = row.try_get_by_index::<Option<bool>>(i) {
            format!("{v:?}")
        } else if let Ok(v) = row.try_get_by_index::<Option<chrono::DateTime<chrono::Utc>>>(i) {
            format!("{v:?}")
        } else if let Ok(v) = row.try_get_by_index::<Option<chrono::NaiveDate>>(i) {
            format!("{v:?}")
        } else if let Ok(v) = row.try_get_by_index::<Option<Vec<u8>>>(i) {
            format!("{v:?}")
        } else {
            panic!("column {name} of an unexpected type");
        };
        parts.push(format!("{name}={value}"));
    }
    parts.join(",")
}

/// Asserts both databases hold the same rows in every table, naming the first
/// table that differs.
async fn assert_same_tables(left: &str, right: &str) {
    let (l, r) = (tables(left).await, tables(right).await);
    for (table, rows) in &l {
        let other = &r[table];
        assert_eq!(
            rows.len(),
            other.len(),
            "{table}: {} rows against {}",
            rows.len(),
            other.len()
        );
        if let Some((x, y)) = rows.iter().zip(other).find(|(x, y)| x != y) {
            panic!("{table} differs:\n  {x}\n  {y}");
        }
    }
}

async fn status(sync: &mut Sync) -> spb::GetSyncStatusResponse {
    sync.get_sync_status(spb::GetSyncStatusRequest {})
        .await
        .expect("status")
        .into_inner()
}

/// True when every peer of the instance is at the head it last saw.
async fn caught_up(sync: &mut Sync) -> bool {
    status(sync).await.peers.iter().all(|p| {
        p.connected && p.lag_records == 0 && p.peer_head > 0 || p.peer_head == 0 && p.connected
    })
}

fn citizen_id(n: u32) -> String {
    format!("0200850{n:05}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_household_made_in_a_district_reaches_the_province_and_replicas_refuse_writes() {
    let p = Province::start(100).await;
    let mut a = p.a.households(Role::Enumerator, &["181"]).await;
    let created = create(&mut a, household("Hoàng Văn Thắng", &citizen_id(1)))
        .await
        .expect("created in 181");

    let mut at_province = p.province.households(Role::Admin, &["20"]).await;
    // How fast is the benchmark's to say (docs/benchmarks.md); here, that it comes.
    eventually(Duration::from_secs(5), "household at the province", || {
        let id = created.id.clone();
        let mut c = at_province.clone();
        async move { found(&mut c, &id).await }
    })
    .await;
    let copy = get(&mut at_province, &created.id).await.expect("copy");
    assert_eq!(copy.etag, created.etag);
    assert_eq!(copy.members.len(), created.members.len());
    assert_eq!(
        copy.members[0].citizen_id, created.members[0].citizen_id,
        "sealed fields read with the shared keys"
    );

    // The province holds a copy: writes to it are refused, naming the owner.
    let mut province_writer = p.province.households(Role::Admin, &["20"]).await;
    let refused = create(
        &mut province_writer,
        household("Lý Thị Hoa", &citizen_id(2)),
    )
    .await
    .expect_err("181 belongs to the district");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "REPLICA");
    assert!(refused.message().contains(A), "{}", refused.message());
    let mut stale = copy.clone();
    stale.address.as_mut().expect("address").village = "Bản Khác".into();
    let refused = update(&mut province_writer, stale, &["address.village"], "")
        .await
        .expect_err("a replica");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    // ... and so are the district's writes outside its scope, naming the province.
    let mut a_admin = p.a.households(Role::Admin, &["*"]).await;
    let refused = create(
        &mut a_admin,
        household_in("06325", "2022-05-01", "Vi Văn Lợi", &citizen_id(3)),
    )
    .await
    .expect_err("185 is not the district's");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains(PROVINCE),
        "{}",
        refused.message()
    );

    // The other district never sees it.
    let mut at_b_admin = p.b.households(Role::Admin, &["*"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        get(&mut at_b_admin, &created.id)
            .await
            .expect_err("not B's")
            .code(),
        Code::NotFound
    );

    // A review certified in the district moves the province's figures alike.
    let mut reviews = p.a.reviews(Role::Admin, &["181"]).await;
    let r = reviews
        .record_review(pb::RecordReviewRequest {
            household_id: created.id.clone(),
            review: Some(pb::ReviewInput {
                year: 2024,
                kind: pb::ReviewKind::Periodic as i32,
                deprived_indicators: vec![
                    "latrine".into(),
                    "domestic_water".into(),
                    "telecom_use".into(),
                ],
                income_per_person_month: Some(1_200_000),
                score_a: None,
                score_b: None,
                reviewer: "Lý Văn Sáu".into(),
                reviewed_on: "2024-10-15".into(),
                area: 0,
                area_reason: String::new(),
            }),
            request_id: String::new(),
        })
        .await
        .expect("recorded")
        .into_inner()
        .review
        .expect("review");
    let r = reviews
        .approve_review(approval(&r, 80))
        .await
        .expect("approved")
        .into_inner()
        .review
        .expect("review");
    reviews
        .certify_review(certification(&r))
        .await
        .expect("certified");
    let summary_at = |instance: &Instance| {
        let addr = instance.addr;
        async move {
            let channel = Channel::from_shared(format!("http://{addr}"))
                .expect("uri")
                .connect()
                .await
                .expect("connect");
            let mut c = pb::review_service_client::ReviewServiceClient::with_interceptor(
                channel,
                Bearer(token(Role::Viewer, &["20"])),
            );
            c.get_poverty_summary(pb::GetPovertySummaryRequest {
                unit_code: "181".into(),
                year: 2024,
                unassigned_from: String::new(),
            })
            .await
            .expect("summary")
            .into_inner()
            .summary
            .expect("summary")
        }
    };
    let there = summary_at(&p.a).await;
    assert_eq!(there.households_reviewed, 1, "the district's own figure");
    assert_eq!(there.poor.as_ref().map(|p| p.count), Some(1));
    eventually(Duration::from_secs(5), "the review at the province", || {
        let summary = summary_at(&p.province);
        let want = there.clone();
        async move { summary.await == want }
    })
    .await;
    let mut sync = p.province.sync_admin().await;
    eventually(Duration::from_secs(5), "province caught up", || {
        let mut s = sync.clone();
        async move { caught_up(&mut s).await }
    })
    .await;
    assert_same_tables(&p.a.db.url, &p.province.db.url).await;
    let s = status(&mut sync).await;
    assert_eq!(s.instance, PROVINCE);
    assert_eq!(s.open_conflicts, 0);
    let a_status = s.peers.iter().find(|x| x.peer == A).expect("A listed");
    assert!(
        a_status.applied >= 4,
        "household, review ×3 states: {a_status:?}"
    );
    assert_eq!(a_status.direction, "downstream");
    assert!(a_status.last_error.is_empty(), "{a_status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_credentials_reach_only_their_own_ground() {
    let p = Province::start(100).await;
    let pull = |after_seq| spb::PullRequest {
        after_seq,
        max_batch: 0,
        follow: false,
    };
    // District A's sync token on district B's feed.
    let a_token = sustain_testkit::token_for(A, Role::Sync, &["181"]);
    let mut b_feed = p.b.sync_as(a_token.clone()).await;
    let refused = b_feed.pull(pull(0)).await.expect_err("not A's ground");
    assert_eq!(refused.code(), Code::PermissionDenied);
    // The same token on the province's feed is fine.
    let mut p_feed = p.province.sync_as(a_token).await;
    let mut stream = p_feed.pull(pull(0)).await.expect("pull").into_inner();
    while stream.message().await.expect("batch").is_some() {}
    // Only sync peers pull; an admin does not.
    let mut admin = p.province.sync_admin().await;
    assert_eq!(
        admin.pull(pull(0)).await.expect_err("not a peer").code(),
        Code::PermissionDenied
    );
    // A bad cursor is named.
    let refused = p_feed_bad(&p).await;
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), vec!["after_seq", "max_batch"]);
    // Status, owners and conflicts are for the instance's own admins.
    let mut other = p.a.sync_as(token(Role::Admin, &["185"])).await;
    assert_eq!(
        other
            .get_sync_status(spb::GetSyncStatusRequest {})
            .await
            .expect_err("scope")
            .code(),
        Code::PermissionDenied
    );
    // A district's admin shares ground with the province but does not hold
    // all of it: the province's status speaks of every district.
    let mut district_admin = p.province.sync_as(token(Role::Admin, &["181"])).await;
    assert_eq!(
        district_admin
            .get_sync_status(spb::GetSyncStatusRequest {})
            .await
            .expect_err("not the whole province")
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        district_admin
            .sync_now(spb::SyncNowRequest {})
            .await
            .expect_err("not the whole province")
            .code(),
        Code::PermissionDenied
    );
    let mut viewer = p.a.sync_as(token(Role::Viewer, &["181"])).await;
    assert_eq!(
        viewer
            .get_sync_status(spb::GetSyncStatusRequest {})
            .await
            .expect_err("role")
            .code(),
        Code::PermissionDenied
    );
    let owners = viewer
        .list_owners(spb::ListOwnersRequest {})
        .await
        .expect("owners")
        .into_inner();
    assert_eq!(owners.instance, A);
    assert_eq!(owners.default_owner, PROVINCE);
    assert_eq!(
        owners
            .owners
            .iter()
            .map(|o| (o.unit_code.as_str(), o.instance.as_str()))
            .collect::<Vec<_>>(),
        vec![("181", A)]
    );
    // Only the top instance hands over.
    let mut a_admin = p.a.sync_admin().await;
    let refused = a_admin
        .hand_over(spb::HandOverRequest {
            unit_codes: vec![HANDED.into()],
            to_instance: B.into(),
            reason: "test".into(),
            request_id: String::new(),
        })
        .await
        .expect_err("a district");
    assert_eq!(refused.code(), Code::FailedPrecondition);
}

async fn p_feed_bad(p: &Province) -> tonic::Status {
    let mut feed = p
        .province
        .sync_as(sustain_testkit::token_for(A, Role::Sync, &["181"]))
        .await;
    feed.pull(spb::PullRequest {
        after_seq: -1,
        max_batch: -5,
        follow: false,
    })
    .await
    .expect_err("bad")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn links_cut_at_random_moments_lose_and_duplicate_nothing() {
    // Small batches: many transactions for the cuts to land in.
    let p = Province::start(7).await;
    let mut a = p.a.households(Role::Enumerator, &["181"]).await;
    let writer = tokio::spawn(async move {
        let mut ids = vec![];
        for n in 0..150u32 {
            let mut h = household(&format!("Nông Văn {n}"), &citizen_id(100 + n));
            if n % 3 == 0 {
                h.address.as_mut().expect("address").commune_code = "06073".into();
            }
            let created = create(&mut a, h).await.expect("created");
            if n % 5 == 0 {
                let mut changed = created.clone();
                changed.address.as_mut().expect("address").village = format!("Bản {n}");
                update(&mut a, changed, &["address.village"], "")
                    .await
                    .expect("updated");
            }
            ids.push(created.id);
        }
        ids
    });
    // Cut the link (both ways) many times while the district writes.
    let mut rng = 0x2545_f491_u64;
    let mut cuts = 0;
    while !writer.is_finished() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        tokio::time::sleep(Duration::from_millis(5 + rng % 60)).await;
        p.a_up.cut();
        if rng.is_multiple_of(3) {
            p.a_down.cut();
        }
        cuts += 1;
    }
    let ids = writer.await.expect("writer");
    assert!(cuts >= 5, "only {cuts} cuts landed");
    // Down for a while: nothing moves; then it heals and catches up exactly.
    p.a_up.set_down(true);
    let mut a_writer = p.a.households(Role::Enumerator, &["181"]).await;
    let late = create(&mut a_writer, household("Hà Văn Cuối", &citizen_id(999)))
        .await
        .expect("late");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut at_province = p.province.households(Role::Admin, &["20"]).await;
    assert_eq!(
        get(&mut at_province, &late.id)
            .await
            .expect_err("link down")
            .code(),
        Code::NotFound
    );
    let mut sync = p.province.sync_admin().await;
    let s = status(&mut sync).await;
    let a_status = s.peers.iter().find(|x| x.peer == A).expect("A");
    assert!(
        !a_status.last_error.is_empty(),
        "the failure shows: {a_status:?}"
    );
    p.a_up.set_down(false);
    sync.sync_now(spb::SyncNowRequest {})
        .await
        .expect("sync now");
    eventually(
        Duration::from_secs(10),
        "the late household at the province",
        || {
            let mut c = at_province.clone();
            let id = late.id.clone();
            async move { found(&mut c, &id).await }
        },
    )
    .await;
    eventually(Duration::from_secs(10), "province caught up", || {
        let mut s = sync.clone();
        async move { caught_up(&mut s).await }
    })
    .await;
    assert_eq!(
        count(&mut at_province, unit_filter("181")).await,
        ids.len() as i64 + 1
    );
    assert_same_tables(&p.a.db.url, &p.province.db.url).await;
    assert_eq!(status(&mut sync).await.open_conflicts, 0);
}

/// The province as a real `sustain-registry` process, configured by file.
fn spawn_province(
    dir: &std::path::Path,
    listen: SocketAddr,
    db_url: &str,
    a_url: &str,
) -> std::process::Child {
    use base64::Engine;
    let b64 = |k: &[u8]| base64::engine::general_purpose::STANDARD.encode(k);
    let file = dir.join("province.toml");
    std::fs::write(
        &file,
        format!(
            r#"listen = "{listen}"
database_url = "{db_url}"
shutdown_grace_secs = 0
# The test's instances share one HS256 secret: development mode only.
dev = true
[auth]
jwt_secret = "{jwt}"
[crypto]
field_key = "{field}"
lookup_key = "{lookup}"
[sync]
instance = "{PROVINCE}"
scope = ["20"]
batch_size = 3
poll_ms = 50
retry_max_ms = 300
[[sync.downstream]]
name = "{A}"
url = "{a_url}"
scope = ["181"]
"#,
            jwt = b64(sustain_testkit::JWT_SECRET),
            field = b64(&sustain_testkit::FIELD_KEY),
            lookup = b64(&sustain_testkit::LOOKUP_KEY),
        ),
    )
    .expect("config");
    std::process::Command::new(env!("CARGO_BIN_EXE_sustain-registry"))
        .arg("serve")
        .arg("--config")
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the province")
}

async fn province_status(addr: SocketAddr) -> Option<spb::GetSyncStatusResponse> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    let mut sync = SyncServiceClient::with_interceptor(channel, Bearer(token(Role::Admin, &["*"])));
    sync.get_sync_status(spb::GetSyncStatusRequest {})
        .await
        .ok()
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_killed_mid_apply_resumes_with_nothing_lost_or_doubled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let province_db = TestDatabase::new().await.expect("db");
    let province_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let la = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let a_up = Proxy::start(la.local_addr().expect("addr"))
        .await
        .expect("proxy");
    let a_down = Proxy::start(province_addr).await.expect("proxy");
    let mut a_config = config(A, &["181"], 3);
    a_config.sync.upstream = Some(peer(PROVINCE, a_down.url(), &[]));
    let district = Instance::start(la, a_config, TestDatabase::new().await.expect("db")).await;
    let mut a = district.households(Role::Enumerator, &["181"]).await;
    let total = 240u32;
    for n in 0..total {
        create(
            &mut a,
            household(&format!("Lương Văn {n}"), &citizen_id(300 + n)),
        )
        .await
        .expect("created");
    }

    // Kill -9 while catching up: 80 batches of 3, each its own transaction.
    let mut kills = 0;
    for round in 0..3 {
        let mut child = spawn_province(dir.path(), province_addr, &province_db.url, &a_up.url());
        let start = Instant::now();
        let mut baseline = None;
        loop {
            if let Some(s) = province_status(province_addr).await
                && let Some(p) = s.peers.first()
                && p.connected
            {
                // Killed once it has applied something since it started.
                match baseline {
                    None => baseline = Some(p.cursor),
                    Some(b) if p.cursor > b || p.lag_records == 0 => break,
                    Some(_) => {}
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "round {round}: the province never applied"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        child.kill().expect("kill -9");
        child.wait().expect("reaped");
        if province_status(province_addr).await.is_none() {
            kills += 1;
        }
    }
    assert_eq!(kills, 3);
    let mut child = spawn_province(dir.path(), province_addr, &province_db.url, &a_up.url());
    let start = Instant::now();
    loop {
        if let Some(s) = province_status(province_addr).await
            && s.peers
                .first()
                .is_some_and(|p| p.connected && p.peer_head > 0 && p.lag_records == 0)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the province never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = province_status(province_addr).await.expect("status");
    assert_eq!(s.open_conflicts, 0);
    child.kill().expect("stop");
    child.wait().expect("reaped");
    assert_same_tables(&district.db.url, &province_db.url).await;
    let rows = tables(&province_db.url).await;
    assert_eq!(rows["household"].len(), total as usize);
    drop(a_down);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handover_moves_communes_and_a_racing_write_becomes_a_conflict() {
    let p = Province::start(100).await;
    let mut a = p.a.households(Role::Enumerator, &["181"]).await;
    let moving = create(
        &mut a,
        household_in(HANDED, "2022-05-01", "Chu Văn Chuyển", &citizen_id(500)),
    )
    .await
    .expect("in the commune to hand over");
    let staying = create(&mut a, household("Chu Văn Ở", &citizen_id(501)))
        .await
        .expect("stays");
    let mut at_province = p.province.households(Role::Admin, &["20"]).await;
    for id in [&moving.id, &staying.id] {
        eventually(Duration::from_secs(5), "at the province", || {
            let mut c = at_province.clone();
            let id = id.clone();
            async move { found(&mut c, &id).await }
        })
        .await;
    }
    // District A has not heard yet (its downlink stalls) and writes on.
    p.a_down.stall(true);
    let mut admin = p.province.sync_admin().await;
    let handed = admin
        .hand_over(spb::HandOverRequest {
            unit_codes: vec![HANDED.into()],
            to_instance: B.into(),
            reason: "Nghị quyết 1675/NQ-UBTVQH15".into(),
            request_id: "handover-1".into(),
        })
        .await
        .expect("handed over")
        .into_inner();
    assert_eq!(handed.owners[0].instance, B);
    let mut racing = get(&mut a, &moving.id).await.expect("A still has it");
    racing.address.as_mut().expect("address").village = "Bản Tranh".into();
    let raced = update(&mut a, racing, &["address.village"], "")
        .await
        .expect("A still thinks it owns it");

    // District B receives the commune's households and may write them.
    let at_b = p.b.households(Role::Enumerator, &["185", HANDED]).await;
    eventually(Duration::from_secs(5), "the handed household at B", || {
        let mut c = at_b.clone();
        let id = moving.id.clone();
        async move { found(&mut c, &id).await }
    })
    .await;
    let mut b_writer = p.b.households(Role::Enumerator, &["185", HANDED]).await;
    let mut mine = get(&mut b_writer, &moving.id).await.expect("B reads it");
    assert_eq!(
        mine.etag, moving.etag,
        "B has the version handed over, not A's racing one"
    );
    mine.address.as_mut().expect("address").village = "Bản Mới".into();
    let b_version = update(&mut b_writer, mine, &["address.village"], "")
        .await
        .expect("B owns it now");
    // B's write reaches the province.
    eventually(Duration::from_secs(5), "B's write at the province", || {
        let mut c = at_province.clone();
        let id = moving.id.clone();
        let etag = b_version.etag.clone();
        async move { get(&mut c, &id).await.is_ok_and(|h| h.etag == etag) }
    })
    .await;
    // A writes again, still unaware: a version newer than the province's copy.
    let mut again = raced.clone();
    again.address.as_mut().expect("address").village = "Bản Tranh Hai".into();
    update(&mut a, again, &["address.village"], "")
        .await
        .expect("A still thinks it owns it");
    // A's racing writes reached the province and were kept as conflicts, not applied.
    let conflicts = eventually_conflicts(&mut admin, 2).await;
    let c = &conflicts[0];
    assert_eq!(c.record_id, moving.id);
    assert_eq!(c.peer, A);
    assert!(c.reason.contains(B), "{}", c.reason);
    // Both versions are kept, and an admin reads them opened (they are kept
    // sealed whole, like every household state journaled here).
    assert!(
        c.incoming_state.contains("Bản Tranh"),
        "{}",
        c.incoming_state
    );
    assert!(c.local_state.contains(&moving.id), "{}", c.local_state);
    assert!(!c.local_state.contains("\"sealed\""), "{}", c.local_state);
    let at_p = get(&mut at_province, &moving.id)
        .await
        .expect("province copy");
    assert_eq!(at_p.etag, b_version.etag, "the owner's version stands");

    // Taking A's first version is refused: it is no newer than the owner's.
    let take = |id: i64| spb::ResolveConflictRequest {
        id,
        resolution: spb::Resolution::TakeIncoming as i32,
    };
    let refused = admin
        .resolve_conflict(take(c.id))
        .await
        .expect_err("not newer");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "NOT_NEWER");
    // Nor can a person take A's second one, newer as it is: A no longer owns
    // the commune, and an operator's choice cannot grant what the sender had
    // no right to send. The owner's version stands, here and at B.
    let later = &conflicts[1];
    assert_eq!(later.incoming_version, 3);
    let refused = admin
        .resolve_conflict(take(later.id))
        .await
        .expect_err("not A's to send any more");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "NOT_THE_SENDERS");
    assert!(refused.message().contains(B), "{}", refused.message());
    for (name, client) in [("province", &at_province), ("B", &at_b)] {
        let mut c = client.clone();
        let held = get(&mut c, &moving.id).await.expect(name);
        assert_eq!(
            held.etag, b_version.etag,
            "{name} keeps the owner's version"
        );
    }
    admin
        .resolve_conflict(spb::ResolveConflictRequest {
            id: later.id,
            resolution: spb::Resolution::KeepLocal as i32,
        })
        .await
        .expect("kept local");

    // Once A hears of the handover its writes there are refused, naming B; its
    // other communes stay its own.
    p.a_down.stall(false);
    let mut a_owners = p.a.sync_admin().await;
    eventually(Duration::from_secs(5), "A learns of the handover", || {
        let mut s = a_owners.clone();
        async move {
            s.list_owners(spb::ListOwnersRequest {})
                .await
                .is_ok_and(|o| {
                    o.into_inner()
                        .owners
                        .iter()
                        .any(|o| o.unit_code == HANDED && o.instance == B)
                })
        }
    })
    .await;
    let fresh = create(
        &mut a,
        household_in(HANDED, "2022-05-01", "Chu Thị Muộn", &citizen_id(502)),
    )
    .await
    .expect_err("no longer A's");
    assert_eq!(fresh.code(), Code::FailedPrecondition);
    assert!(fresh.message().contains(B), "{}", fresh.message());
    create(&mut a, household("Chu Văn Vẫn", &citizen_id(503)))
        .await
        .expect("181 is still A's");

    // The conflict is settled by a person, and stays on record.
    let settled = admin
        .resolve_conflict(spb::ResolveConflictRequest {
            id: c.id,
            resolution: spb::Resolution::KeepLocal as i32,
        })
        .await
        .expect("settled")
        .into_inner()
        .conflict
        .expect("conflict");
    assert_eq!(settled.resolution, "keep_local");
    let open = admin
        .list_conflicts(spb::ListConflictsRequest {
            include_resolved: false,
        })
        .await
        .expect("list")
        .into_inner();
    assert!(open.conflicts.is_empty());
    let all = admin
        .list_conflicts(spb::ListConflictsRequest {
            include_resolved: true,
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(all.conflicts.len(), 2);
    let again = admin
        .resolve_conflict(spb::ResolveConflictRequest {
            id: c.id,
            resolution: spb::Resolution::KeepLocal as i32,
        })
        .await
        .expect_err("already settled");
    assert_eq!(again.code(), Code::FailedPrecondition);
    let _ = a_owners.list_owners(spb::ListOwnersRequest {}).await;
    let _ = &p.b_down;
}

async fn eventually_conflicts(admin: &mut Sync, n: usize) -> Vec<spb::Conflict> {
    let start = Instant::now();
    loop {
        let list = admin
            .list_conflicts(spb::ListConflictsRequest {
                include_resolved: false,
            })
            .await
            .expect("list")
            .into_inner()
            .conflicts;
        if list.len() >= n {
            return list;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{n} conflicts expected, {} seen",
            list.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const BUNDLED_STANDARDS: &str = include_str!("../../../crates/domain/data/poverty-standards.toml");

async fn standards_at(instance: &Instance) -> pb::ListPovertyStandardsResponse {
    instance
        .reviews(Role::Viewer, &["20"])
        .await
        .list_poverty_standards(pb::ListPovertyStandardsRequest {})
        .await
        .expect("standards")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standard_changed_at_the_province_reaches_both_districts() {
    let p = Province::start(100).await;
    let before = standards_at(&p.province).await;
    assert_eq!(before.source, "bundled");
    assert!(before.etag.is_empty());
    // The rural poverty line of 2022–2026 raised from 1.5 to 1.6 million.
    let raised = BUNDLED_STANDARDS.replacen("rural = 1_500_000", "rural = 1_600_000", 1);
    assert_ne!(raised, BUNDLED_STANDARDS);
    let set = |province_code: &str, toml: &str, etag: &str| pb::SetPovertyStandardsRequest {
        province_code: province_code.into(),
        standards_toml: toml.into(),
        etag: etag.into(),
        request_id: String::new(),
    };

    // Bad input is named and changes nothing.
    let mut admin = p.province.reviews(Role::Admin, &["20"]).await;
    let refused = admin
        .set_poverty_standards(set("181", "[[standard]]\ncode = 1", ""))
        .await
        .expect_err("bad");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&refused),
        vec!["province_code", "standards_toml"]
    );
    let only_2027 = BUNDLED_STANDARDS
        .split("[[standard]]")
        .filter(|part| !part.contains("decree-07-2021"))
        .collect::<Vec<_>>()
        .join("[[standard]]");
    let refused = admin
        .set_poverty_standards(set("20", &only_2027, ""))
        .await
        .expect_err("drops 2021–2026");
    assert_eq!(violated_fields(&refused), vec!["standards_toml"]);
    // Another province's admin holds all of it, but it is not this one.
    let mut ha_noi = p.province.reviews(Role::Admin, &["01"]).await;
    let refused = ha_noi
        .set_poverty_standards(set("01", &raised, ""))
        .await
        .expect_err("not this instance's province");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), vec!["province_code"]);
    // Only the province's admins, and only at the province.
    let mut district_admin = p.province.reviews(Role::Admin, &["181"]).await;
    assert_eq!(
        district_admin
            .set_poverty_standards(set("20", &raised, ""))
            .await
            .expect_err("scope")
            .code(),
        Code::PermissionDenied
    );
    let mut viewer = p.province.reviews(Role::Viewer, &["20"]).await;
    assert_eq!(
        viewer
            .set_poverty_standards(set("20", &raised, ""))
            .await
            .expect_err("role")
            .code(),
        Code::PermissionDenied
    );
    let mut at_a = p.a.reviews(Role::Admin, &["20"]).await;
    let refused = at_a
        .set_poverty_standards(set("20", &raised, ""))
        .await
        .expect_err("a district");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains(PROVINCE),
        "{}",
        refused.message()
    );
    assert_eq!(
        standards_at(&p.province).await.source,
        "bundled",
        "nothing changed"
    );

    let done = admin
        .set_poverty_standards(set("20", &raised, ""))
        .await
        .expect("set")
        .into_inner();
    let stale = admin
        .set_poverty_standards(set("20", &raised, ""))
        .await
        .expect_err("stale");
    assert_eq!(stale.code(), Code::Aborted);
    let rural = |s: &pb::ListPovertyStandardsResponse| {
        s.standards
            .iter()
            .find(|x| x.code == "decree-07-2021")
            .and_then(|x| x.poor_line)
            .map(|l| l.rural)
    };
    for district in [&p.a, &p.b] {
        eventually(
            Duration::from_secs(5),
            "the standards at a district",
            || async { rural(&standards_at(district).await) == Some(1_600_000) },
        )
        .await;
        let there = standards_at(district).await;
        assert_eq!(there.source, "set");
        assert_eq!(there.etag, done.etag);
    }

    // A district classifies under the new line: 1.55 million a month with three
    // deprivations is above the old rural line and under the new one, so the
    // household is poor only if the district uses the province's new set.
    let mut households = p.a.households(Role::Admin, &["181"]).await;
    let h = create(
        &mut households,
        household("Triệu Văn Mới", &citizen_id(700)),
    )
    .await
    .expect("created");
    let mut reviews = p.a.reviews(Role::Admin, &["181"]).await;
    let r = reviews
        .record_review(pb::RecordReviewRequest {
            household_id: h.id,
            review: Some(pb::ReviewInput {
                year: 2025,
                kind: pb::ReviewKind::Periodic as i32,
                deprived_indicators: vec![
                    "latrine".into(),
                    "domestic_water".into(),
                    "telecom_use".into(),
                ],
                income_per_person_month: Some(1_550_000),
                score_a: None,
                score_b: None,
                reviewer: "Lý Văn Sáu".into(),
                reviewed_on: "2025-10-15".into(),
                area: 0,
                area_reason: String::new(),
            }),
            request_id: String::new(),
        })
        .await
        .expect("recorded")
        .into_inner()
        .review
        .expect("review");
    assert_eq!(
        r.poverty_class,
        pb::PovertyClass::Poor as i32,
        "under the raised line"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_district_cannot_write_into_ground_it_does_not_own() {
    // Real households to forge from: made at a district of another province set-up.
    let source = Province::start(100).await;
    let mut at_b = source.b.households(Role::Enumerator, &["185"]).await;
    let in_185 = create(
        &mut at_b,
        household_in("06325", "2022-05-01", "Hà Văn Giả", &citizen_id(800)),
    )
    .await
    .expect("made in 185");
    let other = create(
        &mut at_b,
        household_in("06328", "2022-05-01", "Hà Văn Khác", &citizen_id(801)),
    )
    .await
    .expect("made in 185");
    let db = Database::connect(&source.b.db.url).await.expect("connect");
    let states: BTreeMap<String, String> = sustain_platform::journal::outbox::Entity::find()
        .all(&db)
        .await
        .expect("outbox")
        .into_iter()
        .map(|r| (r.record_id, r.state))
        .collect();
    let forged = |seq: i64, id: &str, owner_unit: &str| spb::Change {
        seq,
        record_type: "household".into(),
        record_id: id.into(),
        owner_unit: owner_unit.into(),
        version: 1,
        action: "create".into(),
        state: states[id].clone(),
        recorded_at: None,
    };
    // A district that lies: its feed names its own commune on a household of
    // another district, and sends a household of a commune it does not own.
    let forger = sustain_testkit::rogue::RogueFeed::default();
    forger.send(vec![
        // Names its own commune (06067, district 181) on a household of 185.
        forged(1, &in_185.id, "06067"),
        // Owns up to sending a household of 185.
        forged(2, &other.id, "06328"),
    ]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let forger_addr = listener.local_addr().expect("addr");
    let _feed = forger.serve(listener, None);

    let lp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut p = config(PROVINCE, &["20"], 100);
    p.sync.downstream = vec![peer(A, format!("http://{forger_addr}"), &["181"])];
    let province = Instance::start(lp, p, TestDatabase::new().await.expect("db")).await;
    let mut admin = province.sync_admin().await;
    let conflicts = eventually_conflicts(&mut admin, 2).await;
    let reasons: Vec<&str> = conflicts.iter().map(|c| c.reason.as_str()).collect();
    assert!(reasons[0].contains("06325"), "{reasons:?}");
    assert!(
        reasons[1].contains(PROVINCE),
        "185 is the province's here: {reasons:?}"
    );
    let mut at_province = province.households(Role::Admin, &["*"]).await;
    for id in [&in_185.id, &other.id] {
        assert_eq!(
            get(&mut at_province, id)
                .await
                .expect_err("not written")
                .code(),
            Code::NotFound
        );
    }
}

/// Village assignments are the province's: a district refuses to set one
/// (even one that would change nothing), and the province's reaches every
/// district.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn village_assignments_are_set_at_the_province_and_reach_the_districts() {
    let p = Province::start(100).await;
    let assign = |part: &str| pb::AssignVillagesRequest {
        commune_code: "06622".into(),
        assignments: vec![pb::VillageAssignment {
            village: "Thôn Bản Chắt".into(),
            successor_code: part.into(),
            ..Default::default()
        }],
        request_id: String::new(),
    };
    for part in ["06613", ""] {
        let refused =
            p.a.households(Role::Admin, &["20"])
                .await
                .assign_villages(assign(part))
                .await
                .expect_err("a district");
        assert_eq!(refused.code(), Code::FailedPrecondition, "{part:?}");
        assert!(
            refused.message().contains(PROVINCE),
            "{}",
            refused.message()
        );
    }
    let listed = |instance: &Instance| {
        let instance = instance.addr;
        async move {
            let channel = Channel::from_shared(format!("http://{instance}"))
                .expect("uri")
                .connect()
                .await
                .expect("connect");
            pb::household_service_client::HouseholdServiceClient::with_interceptor(
                channel,
                Bearer(token(Role::Viewer, &["20"])),
            )
            .list_village_assignments(pb::ListVillageAssignmentsRequest {
                commune_code: "06622".into(),
            })
            .await
            .expect("list")
            .into_inner()
            .assignments
        }
    };
    assert!(listed(&p.a).await.is_empty(), "nothing written at A");
    p.province
        .households(Role::Admin, &["20"])
        .await
        .assign_villages(assign("06613"))
        .await
        .expect("assigned at the province");
    for district in [&p.a, &p.b] {
        eventually(
            Duration::from_secs(5),
            "the assignment at a district",
            || async {
                listed(district)
                    .await
                    .iter()
                    .any(|a| a.successor_code == "06613")
            },
        )
        .await;
    }
}
