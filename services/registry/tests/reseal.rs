//! A key rotation in the registry. Households written under the old field and
//! lookup keys stay readable and findable once new keys are configured with
//! the old ones beside them; a reseal stopped after its first batch (as a
//! `kill -9` would stop it) and run again seals every member, old version,
//! stored answer and kept conflict again, counting each once; after it, the
//! new keys alone read everything.

mod common;

use common::*;
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, EntityTrait};
use sustain_domain::citizen_id::CitizenId;
use sustain_platform::crypto::{FieldCipher, LookupHasher};
use sustain_platform::reseal::{self, Answers, reseal_progress};
use sustain_proto::sync::v1::Change;
use sustain_registry::replica::RegistryReplica;
use sustain_registry::store::reseal::{Members, Versions};
use sustain_registry::store::{self, Vault};
use sustain_sync::apply::Replica;
use sustain_sync::reseal::Conflicts;
use sustain_sync::sync_conflict;
use sustain_testkit::{FIELD_KEY, LOOKUP_KEY};

const NEW_FIELD: [u8; 32] = [41; 32];
const NEW_LOOKUP: [u8; 32] = [42; 32];

fn citizen(n: usize) -> String {
    format!("0200850030{n:02}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_keep_data_readable_and_a_resumed_reseal_moves_all_of_it() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    let mut made = vec![];
    for n in 0..5 {
        let mut h = household(&format!("Nông Văn {n}"), &citizen(n));
        h.members.truncate(1);
        made.push(create(&mut admin, h).await.expect("created"));
    }
    // An update keeps the version it replaces, sealed.
    let mut changed = made[0].clone();
    changed.address.as_mut().expect("address").village = "Bản Mới".into();
    // Sent with a request_id: its answer is kept (sealed) for a retry.
    update(&mut admin, changed, &["address.village"], "rotation-1")
        .await
        .expect("updated");

    let db = sustain_db::connect(&server.url).await.expect("connect");
    let rotated = Vault {
        cipher: FieldCipher::with_previous(&NEW_FIELD, &[FIELD_KEY]),
        hasher: LookupHasher::with_previous(&NEW_LOOKUP, &[LOOKUP_KEY]),
    };
    let only_new = Vault {
        cipher: FieldCipher::new(&NEW_FIELD),
        hasher: LookupHasher::new(&NEW_LOOKUP),
    };
    let id_of = |n: usize| CitizenId::parse(&citizen(n)).expect("a valid CCCD");
    // A conflict kept under the old keys: a peer's version of household 1,
    // sealed as a peer's state is kept, beside the version held here.
    let old_keys = RegistryReplica {
        vault: Vault {
            cipher: FieldCipher::new(&FIELD_KEY),
            hasher: LookupHasher::new(&LOOKUP_KEY),
        },
    };
    let held = sustain_platform::journal::outbox::Entity::find()
        .all(&db)
        .await
        .expect("outbox")
        .into_iter()
        .find(|r| r.record_id == made[1].id)
        .expect("journaled");
    let as_change = |state: String, version: i64| Change {
        record_type: "household".into(),
        record_id: made[1].id.clone(),
        owner_unit: held.owner_unit.clone(),
        version,
        state,
        ..Default::default()
    };
    let opened = old_keys
        .open_for_peer(&as_change(held.state.clone(), 1))
        .expect("opens");
    let incoming = old_keys
        .seal_from_peer(&as_change(opened.replace("Nông Văn 1", "Nông Văn Một"), 2))
        .expect("sealed");
    sync_conflict::ActiveModel {
        peer: Set("district-181".into()),
        record_type: Set("household".into()),
        record_id: Set(made[1].id.clone()),
        owner_unit: Set(held.owner_unit.clone()),
        local_version: Set(1),
        local_state: Set(held.state.clone()),
        incoming_version: Set(2),
        incoming_state: Set(incoming),
        incoming_action: Set("update".into()),
        reason: Set("test".into()),
        recorded_at: Set(chrono::Utc::now()),
        resolution: Set(String::new()),
        resolved_by: Set(String::new()),
        ..Default::default()
    }
    .insert(&db)
    .await
    .expect("conflict kept");
    // Before the reseal: read and found through the previous keys.
    for (n, h) in made.iter().enumerate() {
        let record = store::load(&db, &h.id, &rotated)
            .await
            .expect("read")
            .expect("there");
        assert_eq!(record.members[0].member.citizen_id, Some(id_of(n)));
        let holder = store::holder_of(&db, &rotated.citizen_hashes(&id_of(n)), None)
            .await
            .expect("lookup");
        assert_eq!(holder.as_deref(), Some(h.id.as_str()));
        assert!(
            store::load(&db, &h.id, &only_new).await.is_err(),
            "not yet sealed again"
        );
    }

    // Stopped after its first batch of two, as a kill would stop it.
    let (members, versions) = (Members(rotated.clone()), Versions(rotated.clone()));
    let stopped = {
        let db = db.clone();
        let members = Members(rotated.clone());
        tokio::spawn(async move {
            reseal::run(&db, &[&members], 2, false, |_| {
                panic!("stopped after one batch")
            })
            .await
        })
        .await
    };
    assert!(stopped.is_err(), "the run was cut short");
    let held = reseal_progress::Entity::find_by_id("member".to_owned())
        .one(&db)
        .await
        .expect("read")
        .expect("progress kept with its batch");
    assert_eq!((held.done, held.changed, held.finished), (2, 2, false));
    // Run again: it goes on where it stood.
    let mut reports = vec![];
    let answers = Answers(rotated.cipher.clone());
    let conflicts = Conflicts(std::sync::Arc::new(RegistryReplica {
        vault: rotated.clone(),
    }));
    let done = reseal::run(
        &db,
        &[&members, &versions, &answers, &conflicts],
        2,
        false,
        |p| reports.push(p.clone()),
    )
    .await
    .expect("resealed");
    assert_eq!(done.len(), 4);
    assert_eq!((done[2].done, done[2].changed), (1, 1), "the kept answer");
    assert_eq!((done[3].done, done[3].changed), (1, 1), "the kept conflict");
    assert_eq!(
        (done[0].done, done[0].changed, done[0].total),
        (5, 5, 5),
        "each member once"
    );
    assert_eq!((done[1].done, done[1].changed), (1, 1), "the kept version");
    assert!(reports.iter().all(|p| p.done <= p.total));

    // The new keys alone now read and find everything, old versions included.
    for (n, h) in made.iter().enumerate() {
        let record = store::load(&db, &h.id, &only_new)
            .await
            .expect("read")
            .expect("there");
        assert_eq!(record.members[0].member.citizen_id, Some(id_of(n)));
        let holder = store::holder_of(&db, &[only_new.citizen_hash(&id_of(n))], None)
            .await
            .expect("lookup");
        assert_eq!(holder.as_deref(), Some(h.id.as_str()));
    }
    let old = store::load_version(&db, &made[0].id, 1, &only_new)
        .await
        .expect("the old version opens with the new key")
        .expect("kept");
    assert_eq!(
        old.village,
        made[0].address.as_ref().expect("address").village
    );
    // The answer kept for a retry and both states of the conflict open with
    // the new key alone.
    let answer = sustain_platform::journal::idempotency::Entity::find()
        .one(&db)
        .await
        .expect("read")
        .expect("kept");
    assert!(only_new.cipher.open(&answer.response, &answer.key).is_ok());
    let kept = sync_conflict::Entity::find()
        .one(&db)
        .await
        .expect("read")
        .expect("kept");
    let new_keys = RegistryReplica {
        vault: only_new.clone(),
    };
    let local = new_keys
        .open_for_peer(&as_change(kept.local_state.clone(), 1))
        .expect("the local version opens with the new key");
    let incoming = new_keys
        .open_for_peer(&as_change(kept.incoming_state.clone(), 2))
        .expect("the incoming version opens with the new key");
    assert!(
        local.contains("Nông Văn 1") && local.contains(&citizen(1)),
        "{local}"
    );
    assert!(incoming.contains("Nông Văn Một"), "{incoming}");
    assert!(
        old_keys
            .open_for_peer(&as_change(kept.incoming_state.clone(), 2))
            .is_err(),
        "no longer under the old key"
    );
    // A finished reseal is not run again; a restart does it over, finding nothing to do.
    let again = reseal::run(&db, &[&members], 2, true, |_| {})
        .await
        .expect("again");
    assert_eq!((again[0].done, again[0].changed), (5, 0));
}

/// The `reseal` command itself, killed with SIGKILL part-way through and run
/// again: every member ends sealed with the new key, counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reseal_killed_mid_run_finishes_when_run_again() {
    use base64::Engine;
    use sea_orm::PaginatorTrait;
    let b64 = |k: &[u8]| base64::engine::general_purpose::STANDARD.encode(k);
    let db_handle = sustain_testkit::TestDatabase::new()
        .await
        .expect("database");
    let mut config = sustain_platform::config::Config::defaults(0);
    config.database_url = db_handle.url.clone();
    config.auth.jwt_secret = Some(b64(sustain_testkit::JWT_SECRET));
    config.crypto.field_key = Some(b64(&FIELD_KEY));
    config.crypto.lookup_key = Some(b64(&LOOKUP_KEY));
    // Households under the test keys, the demo's way.
    sustain_registry::demo_cli::run(&config, 7, 300, None, false)
        .await
        .expect("demo households");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rotated.toml");
    std::fs::write(
        &file,
        format!(
            "database_url = \"{url}\"\n[auth]\njwt_secret = \"{jwt}\"\n[crypto]\nfield_key = \"{field}\"\nlookup_key = \"{lookup}\"\nprevious_field_keys = [\"{old_field}\"]\nprevious_lookup_keys = [\"{old_lookup}\"]\n",
            url = db_handle.url,
            jwt = b64(sustain_testkit::JWT_SECRET),
            field = b64(&NEW_FIELD),
            lookup = b64(&NEW_LOOKUP),
            old_field = b64(&FIELD_KEY),
            old_lookup = b64(&LOOKUP_KEY),
        ),
    )
    .expect("config");
    let reseal = |batch: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sustain-registry"))
            .args(["reseal", "--config"])
            .arg(&file)
            .args(["--batch", batch])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn reseal")
    };
    let db = sustain_db::connect(&db_handle.url).await.expect("connect");
    let total = sustain_registry::model::member::Entity::find()
        .count(&db)
        .await
        .expect("count") as i64;
    assert!(total > 300, "{total}");
    // One row a transaction, so that the kill lands part-way.
    let mut child = reseal("1");
    let start = std::time::Instant::now();
    let mut started = None;
    while started.is_none() && start.elapsed() < std::time::Duration::from_secs(60) {
        started = reseal_progress::Entity::find_by_id("member".to_owned())
            .one(&db)
            .await
            .ok()
            .flatten()
            .filter(|p| p.done > 0)
            .map(|p| p.done);
        if started.is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let killed_at = started.expect("the reseal never started");
    let held = reseal_progress::Entity::find_by_id("member".to_owned())
        .one(&db)
        .await
        .expect("read")
        .expect("progress");
    assert!(
        !held.finished && held.done >= killed_at && held.done < total,
        "killed part-way: {held:?}"
    );
    let status = reseal("100").wait().expect("ran again");
    assert!(status.success());
    let held = reseal_progress::Entity::find_by_id("member".to_owned())
        .one(&db)
        .await
        .expect("read")
        .expect("progress");
    assert!(held.finished);
    assert_eq!(
        (held.done, held.changed),
        (total, total),
        "every member once"
    );
    let only_new = FieldCipher::new(&NEW_FIELD);
    for m in sustain_registry::model::member::Entity::find()
        .all(&db)
        .await
        .expect("members")
    {
        assert!(only_new.is_current(&m.ethnicity_enc, &format!("member/{}/ethnicity", m.id)));
    }
}
