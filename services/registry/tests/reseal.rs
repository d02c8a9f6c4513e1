//! A key rotation in the registry. Households written under the old field and
//! lookup keys stay readable and findable once new keys are configured with
//! the old ones beside them; a reseal stopped after its first batch (as a
//! `kill -9` would stop it) and run again seals every member and old version
//! again, counting each once; after it, the new keys alone read everything.

mod common;

use common::*;
use sea_orm::EntityTrait;
use sustain_domain::citizen_id::CitizenId;
use sustain_platform::crypto::{FieldCipher, LookupHasher};
use sustain_platform::reseal::{self, reseal_progress};
use sustain_registry::reseal::{Members, Versions};
use sustain_registry::store::{self, Vault};
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
    update(&mut admin, changed, &["address.village"], "")
        .await
        .expect("updated");

    let db = sustain_platform::db::connect(&server.url)
        .await
        .expect("connect");
    let rotated = Vault {
        cipher: FieldCipher::with_previous(&NEW_FIELD, &[FIELD_KEY]),
        hasher: LookupHasher::with_previous(&NEW_LOOKUP, &[LOOKUP_KEY]),
    };
    let only_new = Vault {
        cipher: FieldCipher::new(&NEW_FIELD),
        hasher: LookupHasher::new(&NEW_LOOKUP),
    };
    let id_of = |n: usize| CitizenId::parse(&citizen(n)).expect("a valid CCCD");
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
    let done = reseal::run(&db, &[&members, &versions], 2, false, |p| {
        reports.push(p.clone())
    })
    .await
    .expect("resealed");
    assert_eq!(done.len(), 2);
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
    // A finished reseal is not run again; a restart does it over, finding nothing to do.
    let again = reseal::run(&db, &[&members], 2, true, |_| {})
        .await
        .expect("again");
    assert_eq!((again[0].done, again[0].changed), (5, 0));
}
