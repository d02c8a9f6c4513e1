//! A compromised district against its province, over real servers speaking
//! mutual TLS, each instance with its own signing key and certificate: the
//! province and an honest district 185 are real registries; district 181 is
//! taken over, so the attacker holds its key, its certificate and its feed.
//! Every attack is refused and leaves the province's data as it was; the test
//! prints a table of attacks and outcomes.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use sea_orm::{ConnectionTrait, Database, EntityTrait};
use sustain_platform::Role;
use sustain_platform::auth::TokenIssuer;
use sustain_platform::auth::keys::{self, SigningKey};
use sustain_platform::config::{Config, TrustConfig};
use sustain_platform::tls::{Tls, TlsConfig, dev_certs};
use sustain_proto::registry::v1 as pb;
use sustain_proto::sync::v1 as spb;
use sustain_proto::sync::v1::sync_service_client::SyncServiceClient;
use sustain_testkit::TestDatabase;
use sustain_testkit::rogue::{RogueFeed, change};
use tonic::Code;
use tonic::transport::Channel;

const PROVINCE: &str = "province";
const A: &str = "district-181";
const B: &str = "district-185";

/// Each instance's key (`keys/NAME.key`, `keys/NAME.jwks.json`) and
/// certificate (`certs/NAME.pem`), and an operator's certificate.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [PROVINCE, A, B, "operator"] {
            dev_certs(&dir.path().join("certs"), name, &[]).expect("certificate");
        }
        for name in [PROVINCE, A, B] {
            let key = SigningKey::generate();
            keys::write_private(
                &Files::key_at(dir.path(), name),
                &key.to_pem().expect("pem"),
            )
            .expect("key");
            keys::write_public(
                &keys::jwks_beside(&Files::key_at(dir.path(), name)),
                &keys::jwks_json(&[key.public()]),
            )
            .expect("jwks");
        }
        Files { dir }
    }

    fn key_at(dir: &Path, name: &str) -> PathBuf {
        dir.join("keys").join(format!("{name}.key"))
    }

    fn key(&self, name: &str) -> SigningKey {
        SigningKey::read(&Files::key_at(self.dir.path(), name)).expect("key")
    }

    fn jwks(&self, name: &str) -> PathBuf {
        keys::jwks_beside(&Files::key_at(self.dir.path(), name))
    }

    fn tls_config(&self, name: &str) -> TlsConfig {
        let certs = self.dir.path().join("certs");
        TlsConfig {
            cert: Some(certs.join(format!("{name}.pem"))),
            key: Some(certs.join(format!("{name}.key"))),
            ca: Some(certs.join("ca.pem")),
        }
    }

    fn tls(&self, name: &str) -> Tls {
        self.tls_config(name).load().expect("read").expect("tls")
    }

    /// A token signed with `signer`'s key, naming `issuer`.
    fn token(
        &self,
        signer: &str,
        issuer: &str,
        subject: &str,
        role: Role,
        scope: &[&str],
    ) -> String {
        TokenIssuer::own(&self.key(signer), issuer, "sustain")
            .expect("key")
            .issue(subject, role, scope, chrono::Duration::hours(1))
            .expect("signed")
    }
}

/// Instance `name` owning `scope`, signing with its own key, trusting `trust`
/// (issuer, the most it may grant), speaking mutual TLS.
fn config(files: &Files, name: &str, scope: &str, trust: &[(&str, &str)]) -> Config {
    let b64 = |k: &[u8]| base64::engine::general_purpose::STANDARD.encode(k);
    let mut c = Config::defaults(0);
    c.shutdown_grace_secs = 0;
    c.cache_poll_ms = 50;
    c.sync.instance = name.into();
    c.sync.scope = vec![scope.into()];
    c.sync.poll_ms = 50;
    c.sync.retry_max_ms = 300;
    c.auth.signing_key = Some(Files::key_at(files.dir.path(), name));
    c.auth.issuer = name.into();
    c.auth.trust = trust
        .iter()
        .map(|(issuer, cap)| TrustConfig {
            issuer: (*issuer).into(),
            jwks: Some(files.jwks(issuer)),
            jwks_url: None,
            scope: vec![(*cap).into()],
            audience: None,
            claims: None,
        })
        .collect();
    // Each instance its own keys for personal data too.
    c.crypto.field_key = Some(b64(&rand::random::<[u8; 32]>()));
    c.crypto.lookup_key = Some(b64(&rand::random::<[u8; 32]>()));
    c.tls = files.tls_config(name);
    c.auth.revocations = Some(files.dir.path().join(format!("{name}-revoked.json")));
    c
}

/// A registry serving until dropped.
struct Served {
    addr: SocketAddr,
    db: TestDatabase,
    /// Its field and lookup keys, to read its journal as its feed sends it.
    vault: sustain_registry::store::Vault,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn channel(addr: SocketAddr, tls: &Tls) -> Channel {
    sustain_platform::tls::endpoint(&format!("http://{addr}"), Some(tls))
        .expect("endpoint")
        .tls_config(tls.client().domain_name("localhost"))
        .expect("tls")
        .connect()
        .await
        .expect("connect")
}

async fn serve(listener: tokio::net::TcpListener, mut config: Config, files: &Files) -> Served {
    let db = TestDatabase::new().await.expect("database");
    config.database_url = db.url.clone();
    let addr = listener.local_addr().expect("addr");
    let secrets = config.secrets().expect("keys");
    let vault = sustain_registry::store::Vault {
        cipher: secrets.cipher(),
        hasher: secrets.hasher(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        sustain_registry::run(&config, &secrets, listener, async {
            let _ = stopped.await;
        })
        .await
    });
    let tls = files.tls("operator");
    let start = Instant::now();
    loop {
        let ready = async {
            let channel = sustain_platform::tls::endpoint(&format!("http://{addr}"), Some(&tls))
                .ok()?
                .tls_config(tls.client().domain_name("localhost"))
                .ok()?
                .connect()
                .await
                .ok()?;
            tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest {
                    service: sustain_sync::SERVICE_NAME.into(),
                })
                .await
                .ok()
        };
        if ready.await.is_some() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "registry at {addr} not ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Served {
        addr,
        db,
        vault,
        _stop: stop,
    }
}

/// One attack and what came of it.
struct Outcome {
    attack: &'static str,
    expected: &'static str,
    got: String,
}

fn code_of<T>(result: &Result<T, tonic::Status>) -> String {
    match result {
        Ok(_) => "OK".into(),
        Err(s) => format!("{:?}", s.code()),
    }
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{what}: not within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The newest journaled state of each record at `at`, as its feed sends it
/// (households opened): what a district taken over holds and can forge from.
async fn journaled(at: &Served) -> BTreeMap<String, (String, i64, String)> {
    let db = Database::connect(&at.db.url).await.expect("connect");
    let rows = sustain_platform::journal::outbox::Entity::find()
        .all(&db)
        .await
        .expect("outbox");
    db.close().await.expect("close");
    let mut out = BTreeMap::new();
    for r in rows {
        let state = if r.record_type == "household" {
            sustain_registry::store::open_state(&r.state, &r.record_id, &at.vault)
                .expect("opens with its keys")
        } else {
            r.state
        };
        out.insert(r.record_id.clone(), (r.record_type, r.version, state));
    }
    out
}

/// The reason the conflict kept for unit `unit` gives.
fn reason_for_unit(conflicts: &[spb::Conflict], unit: &str) -> String {
    conflicts
        .iter()
        .find(|c| c.owner_unit == unit)
        .map_or("not kept".to_owned(), |c| c.reason.clone())
}

/// A revocation of token `jti`, or of `subject`'s tokens issued until now.
fn revocation(
    jti: String,
    subject: &str,
    reason: &str,
) -> sustain_platform::auth::revocation::Revoked {
    sustain_platform::auth::revocation::Revoked {
        jti,
        subject: subject.into(),
        issuer: String::new(),
        at: chrono::Utc::now().timestamp(),
        reason: reason.into(),
    }
}

/// `state` with every `"commune_code":"FROM"` moved to `to`.
fn moved(state: &str, from: &str, to: &str) -> String {
    state.replace(
        &format!("\"commune_code\":\"{from}\""),
        &format!("\"commune_code\":\"{to}\""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compromised_district_gets_nothing_beyond_its_own_ground() {
    let files = Files::new();
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let (lp, lb, la) = (
        bind().await.expect("bind"),
        bind().await.expect("bind"),
        bind().await.expect("bind"),
    );
    let (p_addr, b_addr, a_addr) = (
        lp.local_addr().expect("addr"),
        lb.local_addr().expect("addr"),
        la.local_addr().expect("addr"),
    );

    // The taken-over district's feed, served with its own certificate.
    let rogue = RogueFeed::default();
    let a_tls = files.tls(A);
    let _feed = rogue.serve(la, Some(a_tls.server()));

    let mut p = config(&files, PROVINCE, "20", &[(A, "181"), (B, "185")]);
    p.sync.downstream = vec![
        sustain_testkit::peer(A, format!("http://{a_addr}"), &["181"]),
        sustain_testkit::peer(B, format!("http://{b_addr}"), &["185"]),
    ];
    let mut b = config(&files, B, "185", &[(PROVINCE, "20")]);
    b.sync.upstream = Some(sustain_testkit::peer(
        PROVINCE,
        format!("http://{p_addr}"),
        &[],
    ));
    let province = serve(lp, p, &files).await;
    let district_b = serve(lb, b, &files).await;

    let operator = files.tls("operator");
    let with = |addr: SocketAddr, token: String| {
        let operator = operator.clone();
        async move {
            let channel = channel(addr, &operator).await;
            (
                pb::household_service_client::HouseholdServiceClient::with_interceptor(
                    channel.clone(),
                    Bearer(token.clone()),
                ),
                pb::review_service_client::ReviewServiceClient::with_interceptor(
                    channel.clone(),
                    Bearer(token.clone()),
                ),
                SyncServiceClient::with_interceptor(channel, Bearer(token)),
            )
        }
    };

    // An honest household and review of district 185 reach the province.
    let (mut at_b, mut reviews_at_b, _) = with(
        b_addr,
        files.token(B, B, "clerk-185", Role::Admin, &["185"]),
    )
    .await;
    let h = create(
        &mut at_b,
        household_in("06325", "2022-05-01", "Hà Văn Thật", "020085000901"),
    )
    .await
    .expect("made in 185");
    let r = reviews_at_b
        .record_review(pb::RecordReviewRequest {
            household_id: h.id.clone(),
            review: Some(pb::ReviewInput {
                year: 2024,
                kind: pb::ReviewKind::Periodic as i32,
                deprived_indicators: vec!["latrine".into()],
                income_per_person_month: Some(900_000),
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
    let province_admin = files.token(PROVINCE, PROVINCE, "officer", Role::Admin, &["20"]);
    let (mut at_p, mut reviews_at_p, mut sync_at_p) = with(province.addr, province_admin).await;
    wait_for("185's household and review at the province", || {
        let (mut households, mut reviews) = (at_p.clone(), reviews_at_p.clone());
        let (h, r) = (h.id.clone(), r.id.clone());
        async move {
            get(&mut households, &h).await.is_ok()
                && reviews
                    .get_review(pb::GetReviewRequest { id: r })
                    .await
                    .is_ok()
        }
    })
    .await;
    let mut table: Vec<Outcome> = vec![];
    // The province keeps 185's household under its own keys: it reads the
    // citizen ID, finds the household by it, and holds neither the number in
    // the clear nor 185's ciphertext.
    let at_province = get(&mut at_p, &h.id).await.expect("replicated");
    assert_eq!(at_province.members[0].citizen_id, "020085000901");
    let found = at_p
        .list_households(pb::ListHouseholdsRequest {
            filter: Some(pb::HouseholdFilter {
                citizen_id: "020085000901".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner()
        .households;
    assert_eq!(found.iter().map(|f| &f.id).collect::<Vec<_>>(), vec![&h.id]);
    let sealed_at = |url: String| async move {
        let db = Database::connect(&url).await.expect("connect");
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT citizen_id_enc FROM member WHERE citizen_id_enc IS NOT NULL",
            ))
            .await
            .expect("members");
        let outbox = sustain_platform::journal::outbox::Entity::find()
            .all(&db)
            .await
            .expect("outbox");
        db.close().await.expect("close");
        let sealed: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String>("", "citizen_id_enc").expect("text"))
            .collect();
        (
            sealed,
            outbox.into_iter().map(|r| r.state).collect::<Vec<_>>(),
        )
    };
    let (at_p_sealed, p_outbox) = sealed_at(province.db.url.clone()).await;
    let (at_b_sealed, _) = sealed_at(district_b.db.url.clone()).await;
    assert!(!at_p_sealed.is_empty());
    assert!(
        at_p_sealed.iter().all(|c| !at_b_sealed.contains(c)),
        "sealed again"
    );
    assert!(
        !p_outbox.iter().any(|state| state.contains("020085000901")),
        "no citizen ID in the clear in the province's journal"
    );
    table.push(Outcome {
        attack: "read 185's personal data with the province's keys",
        expected: "kept under its own keys",
        got: "sealed again at the province".into(),
    });
    let standards_before = reviews_at_p
        .list_poverty_standards(pb::ListPovertyStandardsRequest {})
        .await
        .expect("standards")
        .into_inner();

    // The attacker's feed: 185's records moved into 181, the standards, a
    // handover, and a record under another record's id.
    let states = journaled(&district_b).await;
    let (_, h_version, h_state) = states[&h.id].clone();
    let (_, r_version, r_state) = states[&r.id].clone();
    let other_id = uuid::Uuid::now_v7().to_string();
    let unsealable_id = uuid::Uuid::now_v7().to_string();
    let sealed_id = uuid::Uuid::now_v7().to_string();
    // A household and review of 181's own commune 06067, filed under
    // district 185 (and so counted in 185's figures and lists).
    let misfiled_id = uuid::Uuid::now_v7().to_string();
    let misfiled_review_id = uuid::Uuid::now_v7().to_string();
    let current_06067 = sustain_domain::admin::catalog()
        .locate_commune(
            "06067",
            chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"),
            chrono::Utc::now().date_naive(),
        )
        .expect("06067 lies in 181")
        .current_commune_code;
    let misfiled = |state: &str, id: &str| {
        let mut v: serde_json::Value = serde_json::from_str(state).expect("json");
        let household = v.get("household").is_some();
        {
            let row = if household {
                &mut v["household"]
            } else {
                &mut v
            };
            row["id"] = id.into();
            row["commune_code"] = "06067".into();
            row["current_commune_code"] = current_06067.clone().into();
            assert_eq!(row["district_code"], "185", "filed under 185");
            if !household {
                row["household_id"] = misfiled_id.clone().into();
            }
        }
        if household {
            v["members"] = serde_json::json!([]);
        }
        v.to_string()
    };
    let misfiled_household = misfiled(&h_state, &misfiled_id);
    let misfiled_review = misfiled(&r_state, &misfiled_review_id);
    // A state sealed by another instance's key, bound to this id.
    let sealed_state = sustain_registry::store::seal_state_from_peer(
        &moved(&h_state, "06325", "06067").replace(&h.id, &sealed_id),
        &sealed_id,
        &district_b.vault,
    )
    .expect("sealed at 185");
    rogue.send(vec![
        change(
            1,
            "household",
            &h.id,
            "06067",
            h_version + 1,
            moved(&h_state, "06325", "06067"),
        ),
        change(
            2,
            "review",
            &r.id,
            "06067",
            r_version + 1,
            moved(&r_state, "06325", "06067"),
        ),
        change(
            3,
            "poverty_standards",
            "current",
            "181",
            99,
            serde_json::json!({"id": "current", "province_code": "181", "standards_toml": "",
                "version": 99, "updated_at": "2026-01-01T00:00:00Z", "updated_by": "rogue"})
            .to_string(),
        ),
        change(
            4,
            "sync_owner",
            "185",
            "181",
            9,
            serde_json::json!({"unit_code": "185", "instance": A, "since": "2026-01-01T00:00:00Z",
                "set_by": "rogue", "version": 9})
            .to_string(),
        ),
        change(
            5,
            "household",
            &other_id,
            "06067",
            1,
            moved(&h_state, "06325", "06067"),
        ),
        // 185's household again, sent as the province's: kept, with 185's data in it.
        change(6, "household", &h.id, "20", h_version + 1, h_state.clone()),
        // A household in the form states cross in (fields opened), with a
        // member's ethnicity missing: it cannot be sealed, so it is kept
        // nowhere but as a conflict, without its state.
        change(
            7,
            "household",
            &unsealable_id,
            "06067",
            1,
            serde_json::json!({
                "household": {"id": unsealable_id, "commune_code": "06067"},
                "members": [{"id": "m-1", "full_name": "Hà Thị Giả", "citizen_id": "020085000999",
                    "disability": "0"}],
            })
            .to_string(),
        ),
        // A household as 185's outbox keeps it, sealed whole with 185's key,
        // passed off as the district's own: the receiver takes only what
        // crosses opened, so it is kept nowhere but as a conflict.
        change(8, "household", &sealed_id, "06067", 1, sealed_state.clone()),
        // A village of a split commune assigned from below: assignments are
        // the province's and flow only down.
        change(
            9,
            "village_assignment",
            "06622/ban cha",
            "20",
            1,
            serde_json::json!({"id": "06622/ban cha", "province_code": "20", "commune_code": "06622",
                "village_key": "ban cha", "village": "Bản Chả", "successor_code": "06613",
                "version": 1, "updated_at": "2026-01-01T00:00:00Z", "updated_by": "rogue"})
            .to_string(),
        ),
        change(10, "household", &misfiled_id, "06067", 1, misfiled_household),
        change(11, "review", &misfiled_review_id, "06067", 1, misfiled_review),
    ]);

    let conflicts = {
        let start = Instant::now();
        loop {
            let open = sync_at_p
                .list_conflicts(spb::ListConflictsRequest {
                    include_resolved: false,
                })
                .await
                .expect("conflicts")
                .into_inner()
                .conflicts;
            if open.len() >= 11 {
                break open;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "conflicts: {open:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let reason_for = |seq_id: &str, record_type: &str| {
        conflicts
            .iter()
            .find(|c| c.record_id == seq_id && c.record_type == record_type)
            .map_or("not kept".to_owned(), |c| c.reason.clone())
    };
    let unsealable = conflicts
        .iter()
        .find(|c| c.record_id == unsealable_id)
        .expect("kept as a conflict");
    assert!(
        unsealable.reason.contains("could not be sealed here")
            && !unsealable.incoming_state.contains("020085000999"),
        "{unsealable:?}"
    );
    let foreign = conflicts
        .iter()
        .find(|c| c.record_id == sealed_id)
        .expect("kept as a conflict");
    assert!(
        foreign.reason.contains("sealed with no key held here")
            && foreign.incoming_state.is_empty(),
        "{foreign:?}"
    );
    table.push(Outcome {
        attack: "feed sends a state sealed with another instance's key",
        expected: "kept as a conflict",
        got: format!("conflict: {}", foreign.reason),
    });
    table.push(Outcome {
        attack: "feed sends a state that cannot be sealed",
        expected: "kept as a conflict",
        got: format!("conflict: {}", unsealable.reason),
    });
    for (attack, id, record_type, says) in [
        (
            "feed overwrites 185's household",
            h.id.as_str(),
            "household",
            B,
        ),
        ("feed overwrites 185's review", r.id.as_str(), "review", B),
        (
            "feed changes the poverty standards",
            "current",
            "poverty_standards",
            "flow only down",
        ),
        (
            "feed hands 185 to itself",
            "185",
            "sync_owner",
            "flow only down",
        ),
        (
            "feed assigns a split commune's village",
            "06622/ban cha",
            "village_assignment",
            "flow only down",
        ),
        (
            "feed files its own household under another district",
            misfiled_id.as_str(),
            "household",
            "district_code 185",
        ),
        (
            "feed files its own review under another district",
            misfiled_review_id.as_str(),
            "review",
            "district_code 185",
        ),
        (
            "record_id disagrees with its record",
            other_id.as_str(),
            "household",
            "carries the record",
        ),
    ] {
        let reason = reason_for(id, record_type);
        assert!(reason.contains(says), "{attack}: {reason}");
        table.push(Outcome {
            attack,
            expected: "kept as a conflict",
            got: format!("conflict: {reason}"),
        });
    }
    let claimed = reason_for_unit(&conflicts, "20");
    assert!(claimed.contains(PROVINCE), "{claimed}");
    table.push(Outcome {
        attack: "feed writes as the province",
        expected: "kept as a conflict",
        got: format!("conflict: {claimed}"),
    });
    // A conflict holds both versions, personal data included: only a caller
    // whose scope holds the record's unit reads it.
    let (_, _, mut district_admin) = with(
        province.addr,
        files.token(
            PROVINCE,
            PROVINCE,
            "district-officer",
            Role::Admin,
            &["181"],
        ),
    )
    .await;
    let seen = district_admin
        .list_conflicts(spb::ListConflictsRequest {
            include_resolved: true,
        })
        .await
        .expect("conflicts")
        .into_inner()
        .conflicts;
    assert!(
        !seen.is_empty()
            && seen
                .iter()
                .all(|c| c.owner_unit != "20" && !c.local_state.contains("06325")),
        "a 181 admin reads only conflicts whose both versions lie in 181: {:?}",
        seen.iter()
            .map(|c| (&c.record_type, &c.owner_unit))
            .collect::<Vec<_>>()
    );
    table.push(Outcome {
        attack: "read 185's data in conflicts with a 181 scope",
        expected: "not listed",
        got: format!(
            "{} of {} listed, none holding 185's data",
            seen.len(),
            conflicts.len()
        ),
    });

    // Nothing of it was written.
    let held = get(&mut at_p, &h.id).await.expect("still there");
    assert_eq!(held.etag, h.etag, "the household is as 185 wrote it");
    assert_eq!(
        held.address.as_ref().expect("address").commune_code,
        "06325"
    );
    let review = reviews_at_p
        .get_review(pb::GetReviewRequest { id: r.id.clone() })
        .await
        .expect("review")
        .into_inner()
        .review
        .expect("review");
    assert_eq!(review.commune_code, "06325");
    assert_eq!(
        get(&mut at_p, &other_id)
            .await
            .expect_err("not written")
            .code(),
        Code::NotFound
    );
    let standards_after = reviews_at_p
        .list_poverty_standards(pb::ListPovertyStandardsRequest {})
        .await
        .expect("standards")
        .into_inner();
    assert_eq!(
        standards_before, standards_after,
        "the standards are untouched"
    );
    let assigned = at_p
        .list_village_assignments(pb::ListVillageAssignmentsRequest {
            commune_code: "06622".into(),
        })
        .await
        .expect("assignments")
        .into_inner()
        .assignments;
    assert!(assigned.is_empty(), "no assignment written: {assigned:?}");
    let owners = sync_at_p
        .list_owners(spb::ListOwnersRequest {})
        .await
        .expect("owners")
        .into_inner()
        .owners;
    assert!(
        owners
            .iter()
            .any(|o| o.unit_code == "185" && o.instance == B)
    );

    // An operator cannot force one of them in.
    let h_conflict = conflicts
        .iter()
        .find(|c| c.record_id == h.id)
        .expect("kept")
        .id;
    let taken = sync_at_p
        .resolve_conflict(spb::ResolveConflictRequest {
            id: h_conflict,
            resolution: spb::Resolution::TakeIncoming as i32,
        })
        .await;
    assert_eq!(
        taken.as_ref().err().map(reason),
        Some("NOT_THE_SENDERS".to_owned())
    );
    assert_eq!(get(&mut at_p, &h.id).await.expect("there").etag, h.etag);
    table.push(Outcome {
        attack: "TAKE_INCOMING on the overwrite",
        expected: "FailedPrecondition",
        got: code_of(&taken),
    });

    // Tokens at the province.
    let now = chrono::Utc::now().timestamp();
    let signed = |signer: &str, claims: serde_json::Value| {
        let key = files.key(signer);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(key.kid().into());
        let pem = key.to_pem().expect("pem");
        let der: Vec<u8> = base64::engine::general_purpose::STANDARD
            .decode(
                pem.lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .expect("der");
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ed_der(&der),
        )
        .expect("signed")
    };
    let claims = |iss: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = serde_json::json!({"sub": "x", "role": "admin", "scope": ["*"], "iss": iss,
            "aud": "sustain", "iat": now, "nbf": now, "exp": now + 600});
        f(&mut c);
        c
    };
    let none = {
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.",
            b64(serde_json::json!({"alg": "none", "typ": "JWT"})),
            b64(claims(A, &|_| {}))
        )
    };
    let stranger = {
        let key = SigningKey::generate();
        TokenIssuer::own(&key, A, "sustain")
            .expect("key")
            .issue("x", Role::Admin, &["*"], chrono::Duration::hours(1))
            .expect("signed")
    };
    let hs256 = TokenIssuer::shared(sustain_testkit::JWT_SECRET, "sustain", "sustain")
        .expect("key")
        .issue("x", Role::Admin, &["*"], chrono::Duration::hours(1))
        .expect("signed");
    let attacks: Vec<(&'static str, String, Code)> = vec![
        (
            "181's key, province scope",
            files.token(A, A, "x", Role::Admin, &["20"]),
            Code::PermissionDenied,
        ),
        (
            "181's key, nationwide scope",
            files.token(A, A, "x", Role::Admin, &["*"]),
            Code::PermissionDenied,
        ),
        (
            "181's key, posing as the province",
            files.token(A, PROVINCE, "x", Role::Admin, &["20"]),
            Code::Unauthenticated,
        ),
        ("an unknown key naming 181", stranger, Code::Unauthenticated),
        (
            "expired",
            signed(
                A,
                claims(A, &|c| {
                    c["iat"] = (now - 7200).into();
                    c["exp"] = (now - 3600).into();
                }),
            ),
            Code::Unauthenticated,
        ),
        (
            "not yet valid",
            signed(A, claims(A, &|c| c["nbf"] = (now + 3600).into())),
            Code::Unauthenticated,
        ),
        (
            "wrong audience",
            signed(A, claims(A, &|c| c["aud"] = "elsewhere".into())),
            Code::Unauthenticated,
        ),
        ("alg none", none, Code::Unauthenticated),
        (
            "HS256 with a development secret",
            hs256,
            Code::Unauthenticated,
        ),
    ];
    for (attack, token, expected) in attacks {
        let (mut households, _, _) = with(province.addr, token).await;
        let got = get(&mut households, &h.id).await;
        assert_eq!(
            got.as_ref().err().map(tonic::Status::code),
            Some(expected),
            "{attack}: {got:?}"
        );
        table.push(Outcome {
            attack,
            expected: match expected {
                Code::PermissionDenied => "PermissionDenied",
                _ => "Unauthenticated",
            },
            got: code_of(&got),
        });
    }

    // A token revoked before it expires: by its id, then every token of a
    // subject; the running province refuses them without a restart.
    let revocations = files.dir.path().join(format!("{PROVINCE}-revoked.json"));
    let jti_of = |token: &str| -> String {
        let payload = token.split('.').nth(1).expect("jwt");
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .expect("base64"),
        )
        .expect("json");
        claims["jti"].as_str().expect("jti").to_owned()
    };
    let lost = files.token(PROVINCE, PROVINCE, "laptop", Role::Viewer, &["20"]);
    let left = files.token(PROVINCE, PROVINCE, "leaver", Role::Viewer, &["20"]);
    for token in [&lost, &left] {
        let (mut households, _, _) = with(province.addr, token.clone()).await;
        get(&mut households, &h.id).await.expect("valid before");
    }
    sustain_platform::auth::revocation::DenyFile {
        revoked: vec![
            revocation(jti_of(&lost), "", "laptop lost"),
            revocation(String::new(), "leaver", "left the office"),
        ],
    }
    .write(&revocations)
    .expect("revoke");
    for (attack, token) in [
        ("a revoked token", lost),
        ("a revoked subject's token", left),
    ] {
        let (households, _, _) = with(province.addr, token).await;
        wait_for(attack, || {
            let mut households = households.clone();
            let id = h.id.clone();
            async move {
                get(&mut households, &id).await.is_err_and(|e| {
                    e.code() == Code::Unauthenticated && e.message().contains("revoked")
                })
            }
        })
        .await;
        table.push(Outcome {
            attack,
            expected: "Unauthenticated",
            got: "Unauthenticated (revoked)".into(),
        });
    }
    let fresh = files.token(PROVINCE, PROVINCE, "officer-2", Role::Viewer, &["20"]);
    let (mut households, _, _) = with(province.addr, fresh).await;
    get(&mut households, &h.id)
        .await
        .expect("others' tokens still work");

    // The feed, pulled with 181's certificate.
    let pull_as = |token: String| {
        let a_tls = a_tls.clone();
        async move {
            let mut sync = SyncServiceClient::with_interceptor(
                channel(province.addr, &a_tls).await,
                Bearer(token),
            );
            match sync
                .pull(spb::PullRequest {
                    after_seq: 0,
                    max_batch: 0,
                    follow: false,
                })
                .await
            {
                Err(e) => Err(e),
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    let mut seen = vec![];
                    while let Some(batch) = stream.message().await? {
                        seen.extend(batch.changes);
                    }
                    Ok(seen)
                }
            }
        }
    };
    let pulled = pull_as(files.token(A, A, A, Role::Sync, &["*"])).await;
    let leaked: Vec<String> = pulled
        .as_ref()
        .map(|seen| {
            seen.iter()
                .filter(|c| {
                    !c.owner_unit.is_empty()
                        && !sustain_platform::Scope::new(vec!["181".into()])
                            .contains_unit(&c.owner_unit)
                        && c.owner_unit != "20"
                })
                .map(|c| format!("{} {}", c.record_type, c.owner_unit))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        pulled.is_ok() && leaked.is_empty(),
        "{pulled:?} leaked {leaked:?}"
    );
    assert!(
        !pulled
            .as_ref()
            .expect("pulled")
            .iter()
            .any(|c| c.record_id == h.id),
        "185's household is not in 181's feed"
    );
    table.push(Outcome {
        attack: "pull the whole feed with 181's key",
        expected: "only 181's ground",
        got: format!(
            "{} changes, none beyond 181",
            pulled.as_ref().map_or(0, Vec::len)
        ),
    });
    for (attack, token) in [
        (
            "pull with 185's token over 181's certificate",
            files.token(B, B, B, Role::Sync, &["185"]),
        ),
        (
            "pull as the province with 181's key",
            files.token(A, A, PROVINCE, Role::Sync, &["20"]),
        ),
    ] {
        let got = pull_as(token).await;
        assert_eq!(
            got.as_ref().err().map(tonic::Status::code),
            Some(Code::Unauthenticated),
            "{attack}: {got:?}"
        );
        table.push(Outcome {
            attack,
            expected: "Unauthenticated",
            got: code_of(&got),
        });
    }

    println!("\n{:<48} {:<20} outcome", "attack", "expected");
    for o in &table {
        println!("{:<48} {:<20} {}", o.attack, o.expected, o.got);
    }
    println!("{} attacks, {} refused\n", table.len(), table.len());
}
