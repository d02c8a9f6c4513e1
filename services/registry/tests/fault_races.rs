//! Fault suite, idempotency races: bursts of identical mutations with one
//! `request_id`, sent at the same moment, as a client that retries on a
//! timeout (or a proxy that duplicates) sends them. Every copy must get the
//! first answer: one household made, one update applied, no INTERNAL, no
//! ALREADY_EXISTS, no STALE_ETAG. On PostgreSQL the copies really run side by
//! side; on SQLite they queue on the one writer. Prints a table of what each
//! burst got. `SUSTAIN_FAULT_PROFILE=long` sends more bursts.

mod common;

use std::collections::BTreeMap;

use common::*;
use sustain_proto::registry::v1 as pb;

/// Bursts per mutation and copies per burst.
fn profile() -> (usize, usize) {
    match std::env::var("SUSTAIN_FAULT_PROFILE").as_deref() {
        Ok("long") => (10, 50),
        _ => (3, 50),
    }
}

/// How the copies of one burst were answered: `ok:<id or etag>` or the code.
fn tally<T>(
    answers: Vec<Result<T, tonic::Status>>,
    what: impl Fn(&T) -> String,
) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for a in answers {
        let key = match a {
            Ok(v) => format!("ok:{}", what(&v)),
            Err(s) => format!("{:?}: {}", s.code(), s.message()),
        };
        *seen.entry(key).or_insert(0) += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_copy_of_a_burst_gets_the_first_answer() {
    let server = TestServer::start().await;
    let (bursts, copies) = profile();
    let mut rows = vec![];
    for burst in 0..bursts {
        // CreateHousehold, with a citizen ID (a unique index the copies would
        // otherwise collide on).
        let request = pb::CreateHouseholdRequest {
            household: Some(household(
                &format!("Hoàng Văn Đua {burst}"),
                &format!("02008500{burst:04}"),
            )),
            request_id: format!("burst-create-{burst}"),
        };
        let mut sends = vec![];
        for _ in 0..copies {
            let mut client = server.admin().await;
            let request = request.clone();
            sends.push(tokio::spawn(async move {
                client
                    .create_household(request)
                    .await
                    .map(|r| r.into_inner().household.expect("household"))
            }));
        }
        let mut answers = vec![];
        for s in sends {
            answers.push(s.await.expect("task"));
        }
        let created = tally(answers, |h: &pb::Household| h.id.clone());
        rows.push(("CreateHousehold", burst, created.clone()));
        assert_eq!(created.len(), 1, "every copy answered alike: {created:?}");
        let (answer, n) = created.iter().next().expect("one answer");
        assert!(answer.starts_with("ok:"), "{created:?}");
        assert_eq!(*n, copies);
        let id = answer.trim_start_matches("ok:").to_owned();

        // UpdateHousehold at the etag read before the burst.
        let before = get(&mut server.admin().await, &id).await.expect("get");
        let mut changed = before.clone();
        changed.address.as_mut().expect("address").village = format!("Bản Đua {burst}");
        let request = pb::UpdateHouseholdRequest {
            household: Some(changed),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["address.village".into()],
            }),
            request_id: format!("burst-update-{burst}"),
        };
        let mut sends = vec![];
        for _ in 0..copies {
            let mut client = server.admin().await;
            let request = request.clone();
            sends.push(tokio::spawn(async move {
                client
                    .update_household(request)
                    .await
                    .map(|r| r.into_inner().household.expect("household"))
            }));
        }
        let mut answers = vec![];
        for s in sends {
            answers.push(s.await.expect("task"));
        }
        let updated = tally(answers, |h: &pb::Household| h.etag.clone());
        rows.push(("UpdateHousehold", burst, updated.clone()));
        assert_eq!(updated.len(), 1, "every copy answered alike: {updated:?}");
        assert!(updated.keys().all(|k| k.starts_with("ok:")), "{updated:?}");
        let after = get(&mut server.admin().await, &id).await.expect("get");
        let version = |h: &pb::Household| -> i64 {
            h.etag
                .trim_start_matches('v')
                .parse()
                .expect("etag v<version>")
        };
        assert_eq!(version(&after), version(&before) + 1, "applied once");
    }
    let households = count(&mut server.admin().await, None).await;
    println!("\nidempotency races ({copies} copies a burst)");
    println!("{:<16} {:>5}  answers", "mutation", "burst");
    for (what, burst, answers) in &rows {
        let shown: Vec<String> = answers
            .iter()
            .map(|(k, n)| {
                format!(
                    "{n}× {}",
                    if k.starts_with("ok:") {
                        "OK (the first answer)"
                    } else {
                        k
                    }
                )
            })
            .collect();
        println!("{what:<16} {burst:>5}  {}", shown.join(", "));
    }
    println!("households made: {households} (expected {bursts})");
    assert_eq!(households, bursts as i64, "one household a burst");
}
