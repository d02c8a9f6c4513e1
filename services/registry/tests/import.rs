//! Bulk import over the real stream: good and bad rows, a re-sent import, a stream
//! cut half-way and resumed, scope, adding a later year, and the CLI importing an
//! XLSX file with broken rows.

mod common;

use std::collections::BTreeSet;

use common::*;
use sustain_clients::demo::Demo;
use sustain_clients::import_client::{ImportOptions, import};
use sustain_clients::import_file::{COLUMNS, CsvWriter};
use sustain_platform::Role;
use sustain_proto::registry::v1 as pb;
use sustain_testkit::token;
use tonic::Code;

fn review(year: i32, income: i64, deprived: &[&str]) -> pb::ImportedReview {
    pb::ImportedReview {
        review: Some(pb::ReviewInput {
            year,
            kind: pb::ReviewKind::Periodic as i32,
            deprived_indicators: deprived.iter().map(|d| (*d).to_owned()).collect(),
            income_per_person_month: Some(income),
            reviewer: "Lý Văn Sáu".into(),
            ..Default::default()
        }),
        state: pb::ReviewState::Certified as i32,
        decision_number: format!("{year}/QĐ-UBND"),
        decision_date: format!("{year}-12-10"),
    }
}

fn row(
    n: i64,
    key: &str,
    commune: &str,
    citizen_id: &str,
    reviews: Vec<pb::ImportedReview>,
) -> pb::ImportRow {
    pb::ImportRow {
        row_number: n,
        external_key: key.into(),
        household: Some(household_in(
            commune,
            "2015-03-01",
            &format!("Nông Văn {n}"),
            citizen_id,
        )),
        reviews,
    }
}

const POOR3: &[&str] = &["latrine", "domestic_water", "telecom_use"];

/// Sends each batch as one request; the responses, in order.
async fn send(
    client: &mut Reviews,
    batches: Vec<Vec<pb::ImportRow>>,
) -> Result<Vec<pb::ImportHouseholdsResponse>, tonic::Status> {
    let requests = batches
        .into_iter()
        .map(|rows| pb::ImportHouseholdsRequest { rows });
    let mut stream = client
        .import_households(tokio_stream::iter(requests))
        .await?
        .into_inner();
    let mut out = vec![];
    while let Some(r) = stream.message().await? {
        out.push(r);
    }
    Ok(out)
}

fn outcomes(responses: &[pb::ImportHouseholdsResponse]) -> Vec<pb::ImportOutcome> {
    responses
        .iter()
        .flat_map(|r| &r.results)
        .map(|r| pb::ImportOutcome::try_from(r.outcome).expect("outcome"))
        .collect()
}

async fn province_summary(server: &TestServer, year: i32) -> pb::PovertySummary {
    server
        .reviews(Role::Viewer, &["20"])
        .await
        .get_poverty_summary(pb::GetPovertySummaryRequest {
            unit_code: "20".into(),
            year,
            unassigned_from: String::new(),
        })
        .await
        .expect("summary")
        .into_inner()
        .summary
        .expect("summary")
}

#[tokio::test]
async fn good_rows_go_in_bad_rows_are_named_and_a_resend_changes_nothing() {
    let server = TestServer::start().await;
    let mut admin = server.reviews(Role::Admin, &["20"]).await;
    let mut bad_review = review(2021, 1_000_000, &["latrine", "jacuzzi"]);
    bad_review.decision_number = String::new();
    let batch = vec![
        row(
            2,
            "A-1",
            "06067",
            "020085001234",
            vec![review(2021, 1_000_000, POOR3), review(2022, 1_400_000, &[])],
        ),
        row(3, "A-2", "99999", "", vec![review(2021, 1_000_000, POOR3)]),
        row(4, "A-3", "06067", "", vec![bad_review]),
        // The same CCCD as row 2: one person, one household.
        row(5, "A-4", "06067", "020085001234", vec![]),
        row(6, "A-5", "06070", "", vec![review(2021, 3_000_000, &[])]),
    ];
    let responses = send(&mut admin, vec![batch.clone()]).await.expect("import");
    use pb::ImportOutcome::*;
    assert_eq!(
        outcomes(&responses),
        [Accepted, Rejected, Rejected, Rejected, Accepted]
    );
    let results = &responses[0].results;
    assert_eq!(results[0].reviews_written, 2);
    assert_eq!(results[1].row_number, 3);
    let fields = |i: usize| -> Vec<String> {
        results[i]
            .violations
            .iter()
            .map(|v| v.field.clone())
            .collect()
    };
    assert_eq!(fields(1), ["household.address.commune_code"]);
    assert!(
        fields(2).contains(&"reviews[0].review.deprived_indicators[1]".to_owned()),
        "{:?}",
        fields(2)
    );
    assert!(
        fields(2).contains(&"reviews[0].decision_number".to_owned()),
        "{:?}",
        fields(2)
    );
    assert!(
        fields(3).contains(&"household.members[0].citizen_id".to_owned()),
        "{:?}",
        fields(3)
    );

    // The batch is audited once, naming its outbox range; the hash over the
    // stored states proves they were stored byte for byte as hashed.
    {
        use sea_orm::ConnectionTrait;
        use sha2::{Digest, Sha256};
        let db = sustain_db::connect(&server.url).await.expect("db");
        let audits = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT record_id, state_hash FROM audit_log WHERE action = 'household.import'",
            ))
            .await
            .expect("audit");
        assert_eq!(audits.len(), 1);
        let range: String = audits[0].try_get("", "record_id").expect("range");
        let hash: String = audits[0].try_get("", "state_hash").expect("hash");
        let (first, last) = range.split_once('-').expect("first-last");
        let states = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!("SELECT record_id, state FROM outbox WHERE seq BETWEEN {first} AND {last} ORDER BY seq"),
            ))
            .await
            .expect("outbox");
        // Two households and their three reviews.
        assert_eq!(states.len(), 5);
        let mut batch = Sha256::new();
        for row in &states {
            let state: String = row.try_get("", "state").expect("state");
            batch.update(Sha256::digest(state.as_bytes()));
            assert!(!state.contains("020085001234"), "a CCCD in the outbox");
        }
        assert_eq!(hex::encode(batch.finalize()), hash);
        // The range is the batch's own, and its changes carry the time they
        // were written, the audit entry's.
        let (first, last): (i64, i64) =
            (first.parse().expect("first"), last.parse().expect("last"));
        assert_eq!(last - first + 1, 5);
        let stamped = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT count(*) AS n FROM outbox o JOIN audit_log a ON a.action = 'household.import' \
                     WHERE o.seq BETWEEN {first} AND {last} AND o.recorded_at = a.recorded_at"
                ),
            ))
            .await
            .expect("stamps")
            .expect("a count");
        assert_eq!(stamped.try_get::<i64>("", "n").expect("n"), 5);
        let first_id: String = states[0].try_get("", "record_id").expect("id");
        assert_eq!(first_id, results[0].household_id);
    }

    // An imported household reads back like a created one, and takes updates.
    let mut households = server.admin().await;
    let imported = get(&mut households, &results[0].household_id)
        .await
        .expect("get imported");
    assert_eq!(imported.members.len(), 3);
    assert_eq!(imported.members[0].citizen_id, "020085001234");
    assert!(imported.ethnic_minority);
    assert_eq!(imported.registered_on, "2015-03-01");
    assert!(imported.create_time.is_some());
    let mut moved = imported.clone();
    moved.address.as_mut().expect("address").village = "Bản Mới".into();
    let updated = update(&mut households, moved, &["address.village"], "")
        .await
        .expect("update imported");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.create_time, imported.create_time);

    let s2021 = province_summary(&server, 2021).await;
    assert_eq!(s2021.households_reviewed, 2);
    assert_eq!(s2021.poor.as_ref().expect("poor").count, 1);
    let s2022 = province_summary(&server, 2022).await;
    let escaped = s2022
        .transitions
        .iter()
        .find(|t| t.transition == pb::Transition::EscapedPoverty as i32)
        .expect("t");
    assert_eq!(escaped.households, 1);

    // The same file again: nothing new.
    let again = send(&mut admin, vec![batch]).await.expect("re-import");
    assert_eq!(
        outcomes(&again),
        [Unchanged, Rejected, Rejected, Rejected, Unchanged]
    );
    assert_eq!(again[0].results[0].household_id, results[0].household_id);
    assert_eq!(province_summary(&server, 2021).await, s2021);
    assert_eq!(count(&mut server.admin().await, unit_filter("20")).await, 2);

    // A later file brings 2023 for A-1: only that year is added, its transition
    // follows from the imported years.
    let later = vec![row(
        2,
        "A-1",
        "06067",
        "020085001234",
        vec![review(2023, 900_000, POOR3)],
    )];
    let added = send(&mut admin, vec![later]).await.expect("later year");
    assert_eq!(outcomes(&added), [Accepted]);
    assert_eq!(added[0].results[0].reviews_written, 1);
    let s2023 = province_summary(&server, 2023).await;
    let re_poor = s2023
        .transitions
        .iter()
        .find(|t| t.transition == pb::Transition::RePoor as i32)
        .expect("t");
    assert_eq!(re_poor.households, 1);

    // A batch mixing a household imported before with a new one: only the new
    // one is written (on SQLite the batch's INSERTs are built ahead for the
    // case that every row is new, and must not be used here).
    let mixed = vec![
        row(2, "A-1", "06067", "020085001234", vec![]),
        row(3, "A-6", "06070", "", vec![review(2021, 3_000_000, &[])]),
    ];
    let answered = send(&mut admin, vec![mixed]).await.expect("mixed batch");
    assert_eq!(outcomes(&answered), [Unchanged, Accepted]);
    assert_eq!(count(&mut server.admin().await, unit_filter("20")).await, 3);
    assert_eq!(
        province_summary(&server, 2021).await.households_reviewed,
        s2021.households_reviewed + 1
    );
}

#[tokio::test]
async fn import_needs_the_role_and_keeps_to_the_scope() {
    let server = TestServer::start().await;
    let mut enumerator = server.reviews(Role::Enumerator, &["20"]).await;
    let denied = send(
        &mut enumerator,
        vec![vec![row(2, "B-1", "06067", "", vec![])]],
    )
    .await
    .expect_err("enumerator");
    assert_eq!(denied.code(), Code::PermissionDenied);

    // An approver of Lạng Sơn city (178) cannot import Bình Gia's (181) households.
    let mut city = server.reviews(Role::Approver, &["178"]).await;
    let responses = send(
        &mut city,
        vec![vec![
            row(2, "B-2", "06067", "", vec![]),
            row(3, "B-3", "05971", "", vec![]),
        ]],
    )
    .await
    .expect("import");
    use pb::ImportOutcome::*;
    assert_eq!(outcomes(&responses), [Rejected, Accepted]);
    assert_eq!(
        responses[0].results[0].violations[0].field,
        "household.address.commune_code"
    );

    // Nor add years to a household of 181 that an admin imported.
    let mut admin = server.reviews(Role::Admin, &["*"]).await;
    send(&mut admin, vec![vec![row(2, "B-4", "06067", "", vec![])]])
        .await
        .expect("admin");
    let sneaky = send(
        &mut city,
        vec![vec![row(2, "B-4", "05971", "", vec![review(2021, 1, &[])])]],
    )
    .await
    .expect("import");
    assert_eq!(outcomes(&sneaky), [Rejected]);
    assert_eq!(sneaky[0].results[0].violations[0].field, "external_key");

    // Too many rows in one request ends the stream with INVALID_ARGUMENT.
    let many: Vec<pb::ImportRow> = (0..2_001)
        .map(|i| row(i, &format!("C-{i}"), "05971", "", vec![]))
        .collect();
    let too_big = send(&mut admin, vec![many])
        .await
        .expect_err("too many rows");
    assert_eq!(too_big.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&too_big), ["rows"]);
}

#[tokio::test]
async fn a_stream_cut_half_way_resumes_without_loss_or_duplicates() {
    let server = TestServer::start().await;
    let rows: Vec<pb::ImportRow> = (0..60)
        .map(|i| {
            row(
                i + 2,
                &format!("D-{i}"),
                "06067",
                "",
                vec![review(2021, 1_000_000 + i, POOR3)],
            )
        })
        .collect();
    let batches: Vec<Vec<pb::ImportRow>> = rows.chunks(20).map(<[_]>::to_vec).collect();

    // First attempt: batch 1 is acknowledged, batch 2 is sent, then the
    // connection drops before its answer.
    {
        let mut client = server.reviews(Role::Admin, &["20"]).await;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut stream = client
            .import_households(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("start")
            .into_inner();
        tx.send(pb::ImportHouseholdsRequest {
            rows: batches[0].clone(),
        })
        .await
        .expect("send 1");
        let ack = stream.message().await.expect("ack").expect("ack");
        assert_eq!(ack.results.len(), 20);
        tx.send(pb::ImportHouseholdsRequest {
            rows: batches[1].clone(),
        })
        .await
        .expect("send 2");
        drop(stream);
        drop(client);
    }
    let after_cut = count(&mut server.admin().await, unit_filter("20")).await;
    assert!(
        (20..=40).contains(&after_cut),
        "acknowledged rows must survive: {after_cut}"
    );

    // Resume: send the whole file again.
    let mut client = server.reviews(Role::Admin, &["20"]).await;
    let responses = send(&mut client, batches).await.expect("resume");
    let outcomes = outcomes(&responses);
    assert!(
        outcomes[..20]
            .iter()
            .all(|o| *o == pb::ImportOutcome::Unchanged)
    );
    assert!(
        outcomes[40..]
            .iter()
            .all(|o| *o == pb::ImportOutcome::Accepted)
    );
    assert_eq!(
        count(&mut server.admin().await, unit_filter("20")).await,
        60
    );
    let s = province_summary(&server, 2021).await;
    assert_eq!(
        (s.households_reviewed, s.poor.expect("poor").count),
        (60, 60)
    );
}

/// Breaks household `index` of the sheet in one way; the reason must mention `expect`.
fn break_row(lines: &mut [Vec<String>], kind: usize) -> &'static str {
    let col = |name: &str| COLUMNS.iter().position(|c| *c == name).expect("column");
    let review_line = lines
        .iter()
        .position(|l| l[col("row_type")] == "review")
        .expect("a review line");
    match kind {
        0 => {
            lines
                .iter_mut()
                .for_each(|l| l[col("commune_code")] = "99999".into());
            "commune_code"
        }
        1 => {
            lines[0][col("birth_date")] = "2031-02-30".into();
            "birth_date"
        }
        2 => {
            lines[0][col("citizen_id")] = "12345".into();
            "citizen_id"
        }
        3 => {
            lines[review_line][col("deprived_indicators")] = "latrine swimming_pool".into();
            "deprived_indicators"
        }
        4 => {
            lines[review_line][col("income_per_person_month")] = "nhiều".into();
            "income_per_person_month"
        }
        5 => {
            lines[review_line][col("year")] = "2019".into();
            "year"
        }
        6 => {
            // No head: the file's column is named, not the request's field.
            lines[0][col("relation")] = "child".into();
            "relation"
        }
        7 => {
            lines[0][col("sex")] = "?".into();
            "sex"
        }
        8 => {
            lines[review_line][col("decision_date")] = "10/12/2021".into();
            "decision_date"
        }
        _ => {
            lines[0][col("full_name")] = String::new();
            "full_name"
        }
    }
}

#[tokio::test]
async fn the_cli_imports_an_xlsx_of_a_thousand_households_with_ten_broken() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ho-ngheo.xlsx");

    let mut demo = Demo::new(7, 1_000).expect("demo");
    let total = demo.households();
    assert!(total >= 1_000);
    let broken: BTreeSet<usize> = (0..10).map(|k| 37 + k * 97).collect();
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (c, name) in COLUMNS.iter().enumerate() {
        sheet.write_string(0, c as u16, *name).expect("header");
    }
    let mut line = 1u32;
    let mut expected_columns = vec![];
    for i in 0..1_000 {
        let mut lines = CsvWriter::<Vec<u8>>::lines(&demo.row(i));
        if broken.contains(&i) {
            expected_columns.push(break_row(&mut lines, expected_columns.len()));
        }
        for cells in lines {
            for (c, value) in cells.iter().enumerate() {
                // Numbers as numbers, the way a spreadsheet holds them.
                match value.parse::<i64>() {
                    Ok(n) if COLUMNS[c] == "income_per_person_month" || COLUMNS[c] == "year" => {
                        sheet.write_number(line, c as u16, n as f64).expect("cell");
                    }
                    _ => {
                        sheet.write_string(line, c as u16, value).expect("cell");
                    }
                }
            }
            line += 1;
        }
    }
    workbook.save(&path).expect("save");

    let token = token(Role::Admin, &["20"]);
    let rejected_file = dir.path().join("rejected.csv");
    let address = format!("http://{}", server.addr);
    let options = || ImportOptions {
        file: &path,
        server: &address,
        token: &token,
        rejected_file: rejected_file.clone(),
        batch_size: 128,
        batch_bytes: sustain_clients::import_client::DEFAULT_BATCH_BYTES,
        progress: false,
        tls: None,
    };
    let report = import(options()).await.expect("import");
    assert_eq!(
        (report.households, report.accepted, report.rejected),
        (1_000, 990, 10),
        "{report:?}"
    );

    let mut reader = csv::Reader::from_path(&rejected_file).expect("rejected file");
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    let keys: BTreeSet<String> = records.iter().map(|r| r[1].to_owned()).collect();
    assert_eq!(keys.len(), 10, "{records:?}");
    let expected_keys: BTreeSet<String> = broken.iter().map(|i| format!("demo-7-{i:06}")).collect();
    assert_eq!(keys, expected_keys);
    for column in &expected_columns {
        assert!(
            records.iter().any(|r| &r[2] == *column),
            "no rejection names {column}: {records:?}"
        );
    }
    assert!(
        records
            .iter()
            .all(|r| !r[4].is_empty() && r[0].parse::<u32>().is_ok())
    );
    assert_eq!(
        count(&mut server.admin().await, unit_filter("20")).await,
        990
    );

    // Again: everything already there, the same ten refused.
    let again = import(options()).await.expect("again");
    assert_eq!(
        (again.accepted, again.unchanged, again.rejected),
        (0, 990, 10)
    );
    assert_eq!(
        count(&mut server.admin().await, unit_filter("20")).await,
        990
    );
}

/// On PostgreSQL two batches of a stream are written at once. Batches that
/// collide (the second re-sends the first's households, the third names its
/// members' citizen IDs under new keys) still answer as if written in turn.
#[tokio::test]
async fn batches_written_together_answer_as_if_written_in_turn() {
    let server = TestServer::start().await;
    let mut admin = server.reviews(Role::Admin, &["20"]).await;
    let first: Vec<pb::ImportRow> = (0..300)
        .map(|i| {
            row(
                i + 2,
                &format!("T-{i}"),
                "06067",
                &format!("02008500{i:04}"),
                vec![review(2021, 1_000_000, POOR3)],
            )
        })
        .collect();
    let again = first.clone();
    let same_people: Vec<pb::ImportRow> = (0..50)
        .map(|i| {
            row(
                i + 400,
                &format!("U-{i}"),
                "06070",
                &format!("02008500{i:04}"),
                vec![],
            )
        })
        .collect();
    let responses = send(&mut admin, vec![first, again, same_people])
        .await
        .expect("import");
    assert_eq!(responses.len(), 3);
    use pb::ImportOutcome::*;
    let each = |i: usize| outcomes(&responses[i..=i]);
    let why = |i: usize| &responses[i].results[0].violations;
    assert!(each(0).iter().all(|o| *o == Accepted), "{:?}", why(0));
    assert!(each(1).iter().all(|o| *o == Unchanged), "{:?}", why(1));
    assert!(each(2).iter().all(|o| *o == Rejected), "{:?}", each(2));
    assert!(
        responses[2].results[0].violations[0]
            .description
            .contains("already registered"),
        "{:?}",
        responses[2].results[0].violations
    );

    // A small batch right behind a full one, re-sending the full one's last
    // household, then one naming its head's citizen ID under a new key: the
    // small ones must not overtake the full one.
    let full: Vec<pb::ImportRow> = (0..2_000)
        .map(|i| {
            row(
                i + 1_000,
                &format!("V-{i}"),
                "06067",
                &format!("02008501{i:04}"),
                vec![review(2021, 1_000_000, POOR3)],
            )
        })
        .collect();
    let last = vec![full[1_999].clone()];
    let same_person = vec![row(5_000, "W-1", "06070", "020085011999", vec![])];
    let responses = send(&mut admin, vec![full, last, same_person])
        .await
        .expect("import behind a full batch");
    let each = |i: usize| outcomes(&responses[i..=i]);
    let why = |i: usize| &responses[i].results[0].violations;
    assert!(each(0).iter().all(|o| *o == Accepted), "{:?}", why(0));
    assert_eq!(each(1), [Unchanged], "{:?}", why(1));
    assert_eq!(each(2), [Rejected]);

    let summary = province_summary(&server, 2021).await;
    assert_eq!(summary.households_reviewed, 2_300);
    server.stop().await;
}

/// Bulk rows go in by COPY on PostgreSQL (INSERTs on SQLite): text that COPY
/// would read as its own syntax (tab, newline, backslash, `\N`) comes back as
/// written, NULLs stay NULL, and a transaction dropped without commit leaves
/// nothing behind. On SQLite, rows built ahead (`SqliteRows`, written through
/// SQLite's own statements instead of sqlx) are stored value for value as
/// sea-orm stores them.
#[tokio::test]
async fn bulk_rows_come_back_as_written_and_an_unfinished_write_leaves_nothing() {
    use sea_orm::{ActiveModelTrait, EntityTrait};
    use sustain_db::{SqliteRows, WriteTxn, insert_built, insert_rows};
    use sustain_registry::model::household;

    let server = TestServer::start().await;
    let db = sustain_db::connect(&server.url).await.expect("connect");
    let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6);
    let row = household::Model {
        id: "bulk-1".into(),
        province_code: "20".into(),
        district_code: None,
        commune_code: "06055".into(),
        current_commune_code: "06055".into(),
        village: "Thôn\tBản \\N Mới".into(),
        residence: "rural".into(),
        registered_on: chrono::NaiveDate::from_ymd_opt(2021, 3, 4).expect("date"),
        head_name: "Hoàng Văn\\A".into(),
        names_folded: "hoang van\na\r".into(),
        ethnic_minority: true,
        state: "active".into(),
        archive_reason: Some("\\N".into()),
        version: 1,
        created_at: now,
        updated_at: now,
    };

    let read = |id: &'static str| household::Entity::find_by_id(id).one(&db);
    let txn = WriteTxn::begin(&db).await.expect("begin");
    insert_rows::<household::Entity>(&txn, vec![row.clone()], &[])
        .await
        .expect("insert");
    drop(txn);
    assert_eq!(
        read("bulk-1").await.expect("read"),
        None,
        "a write never committed left its row"
    );

    let txn = WriteTxn::begin(&db).await.expect("begin");
    insert_rows::<household::Entity>(&txn, vec![row.clone()], &[])
        .await
        .expect("insert");
    txn.commit().await.expect("commit");
    assert_eq!(read("bulk-1").await.expect("read"), Some(row.clone()));

    if db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        server.stop().await;
        return;
    }
    // The same row built ahead, and once more through sea-orm's own insert.
    let built = household::Model {
        id: "bulk-2".into(),
        ..row.clone()
    };
    for commit in [false, true] {
        let txn = WriteTxn::begin(&db).await.expect("begin");
        insert_built(
            &txn,
            vec![SqliteRows::of::<household::Entity>(vec![built.clone()])],
        )
        .await
        .expect("insert built");
        if commit {
            txn.commit().await.expect("commit");
        } else {
            drop(txn);
            assert_eq!(
                read("bulk-2").await.expect("read"),
                None,
                "built rows of a write never committed are left"
            );
        }
    }
    let orm = household::Model {
        id: "bulk-3".into(),
        ..row.clone()
    };
    household::ActiveModel::from(orm.clone())
        .insert(&db)
        .await
        .expect("insert through sea-orm");
    assert_eq!(read("bulk-2").await.expect("read"), Some(built));
    {
        // Byte for byte, with each value's storage class.
        use sea_orm::{ConnectionTrait, IdenStatic, Iterable};
        let stored = |id: &'static str| {
            let db = &db;
            async move {
                let columns: Vec<String> = household::Column::iter()
                    .filter(|c| c.as_str() != "id")
                    .map(|c| format!("typeof({0}) || ':' || quote({0})", c.as_str()))
                    .collect();
                let row = db
                    .query_one_raw(sea_orm::Statement::from_sql_and_values(
                        sea_orm::DbBackend::Sqlite,
                        format!(
                            "SELECT {} AS v FROM household WHERE id = ?",
                            columns.join(" || ' ' || ")
                        ),
                        [id.into()],
                    ))
                    .await
                    .expect("read raw")
                    .expect("a row");
                row.try_get::<String>("", "v").expect("v")
            }
        };
        let built = stored("bulk-2").await;
        assert!(built.contains("integer:1"), "{built}");
        assert_eq!(built, stored("bulk-3").await);
    }
    server.stop().await;
}

/// A message over the registry's size limit in the middle of the stream: the
/// batch before it is written and answered, the stream then ends with an
/// error naming the batch (it used to end OK, the rest silently dropped), and
/// nothing after it is written.
#[tokio::test]
async fn a_stream_broken_by_an_oversized_batch_ends_with_an_error_naming_it() {
    let server = TestServer::start().await;
    let mut client = server.reviews(Role::Admin, &["20"]).await;
    let mut huge = row(2, "big-2", "06067", "", vec![]);
    huge.household.as_mut().expect("household").members[0].full_name = "Nông".repeat(1_200_000);
    let error = send(
        &mut client,
        vec![
            vec![row(1, "ok-1", "06067", "", vec![])],
            vec![huge],
            vec![row(3, "after-3", "06067", "", vec![])],
        ],
    )
    .await;
    // The first batch's answer arrives before the error; `send` keeps only
    // the error, so read the stream by hand too.
    let status = error.expect_err("a broken stream is not OK");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("batch 2") && status.message().contains("send them again"),
        "{}",
        status.message()
    );
    // Batch 1 is written, batch 3 is not.
    assert_eq!(
        count(&mut server.admin().await, unit_filter("20")).await,
        1,
        "only the batch before the broken one"
    );
    let mut stream = client
        .import_households(tokio_stream::iter(vec![
            pb::ImportHouseholdsRequest {
                rows: vec![row(1, "ok-1", "06067", "", vec![])],
            },
            pb::ImportHouseholdsRequest {
                rows: vec![{
                    let mut r = row(2, "big-2", "06067", "", vec![]);
                    r.household.as_mut().expect("household").members[0].full_name =
                        "x".repeat(5 << 20);
                    r
                }],
            },
        ]))
        .await
        .expect("stream")
        .into_inner();
    let first = stream.message().await.expect("answered").expect("one");
    assert_eq!(outcomes(&[first]), [pb::ImportOutcome::Unchanged]);
    let end = stream.message().await.expect_err("ends with the error");
    assert_eq!(end.code(), Code::ResourceExhausted);
}

/// The CLI against a registry that takes at most 64 KiB a request: batches
/// sized by rows alone break the stream, and the CLI says so, exits with an
/// error and counts only what was answered (it used to report success with
/// the rest unwritten); sized by bytes, the same file imports whole.
#[tokio::test]
async fn the_cli_sizes_batches_by_bytes_and_never_reports_an_unanswered_batch_as_done() {
    let mut config = sustain_platform::config::Config::defaults(0);
    config.shutdown_grace_secs = 0;
    config.limits.max_request_bytes = 64 * 1024;
    let server = TestServer::start_with(config).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ho-ngheo.csv");
    let mut demo = Demo::new(11, 300).expect("demo");
    let total = demo.households().min(300);
    let mut out = CsvWriter::new(std::fs::File::create(&path).expect("file")).expect("csv");
    for i in 0..total {
        out.write(&demo.row(i)).expect("row");
    }
    out.finish().expect("written");

    let token = token(Role::Admin, &["20"]);
    let address = format!("http://{}", server.addr);
    let options = |batch_bytes: usize| ImportOptions {
        file: &path,
        server: &address,
        token: &token,
        rejected_file: dir.path().join("rejected.csv"),
        batch_size: 1_000,
        batch_bytes,
        progress: false,
        tls: None,
    };
    let error = import(options(8 << 20))
        .await
        .expect_err("a batch over the limit is not success");
    let incomplete = error
        .downcast_ref::<sustain_clients::import_client::Incomplete>()
        .unwrap_or_else(|| panic!("an incomplete import: {error:#}"));
    assert!(incomplete.why.contains("batch 1"), "{incomplete}");
    assert_eq!(incomplete.done.households, 0, "{incomplete}");
    assert_eq!(incomplete.first_unwritten_line, Some(2), "{incomplete}");
    assert_eq!(count(&mut server.admin().await, unit_filter("20")).await, 0);

    let report = import(options(32 * 1024)).await.expect("imports whole");
    assert_eq!(report.households, total as u64, "{report:?}");
    assert_eq!(
        report.accepted + report.rejected,
        total as u64,
        "{report:?}"
    );
    assert_eq!(
        count(&mut server.admin().await, unit_filter("20")).await,
        report.accepted as i64
    );
}

/// A file can set a review's area against the default, with its reason; an
/// area that is neither rural nor urban is refused, naming the column, and
/// never taken for the default.
#[tokio::test]
async fn an_import_file_sets_a_reviews_area_only_as_written() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("area.csv");
    let mut out = CsvWriter::new(std::fs::File::create(&path).expect("file")).expect("csv");
    for (i, (area, reason)) in [("urban", "ward since 2025"), ("rural", "")]
        .iter()
        .enumerate()
    {
        let mut r = row(
            i as i64 + 1,
            &format!("area-{i}"),
            "06067",
            "",
            vec![review(2024, 1_800_000, POOR3)],
        );
        let input = r.reviews[0].review.as_mut().expect("review");
        input.area = if *area == "urban" {
            pb::Residence::Urban
        } else {
            pb::Residence::Rural
        } as i32;
        input.area_reason = (*reason).into();
        out.write(&r).expect("row");
    }
    out.finish().expect("written");
    // And one with a typo in the area, written by hand.
    let mut text = std::fs::read_to_string(&path).expect("read");
    let typo = text
        .lines()
        .find(|l| l.starts_with("area-1,review"))
        .expect("a review line")
        .replace(",rural,", ",rurl,")
        .replace("area-1", "area-2");
    let member = text
        .lines()
        .find(|l| l.starts_with("area-1,member"))
        .expect("a member line")
        .replace("area-1", "area-2")
        .replace("020085", "020099");
    text.push_str(&format!("{member}\n{typo}\n"));
    std::fs::write(&path, text).expect("write");

    let token = token(Role::Admin, &["20"]);
    let address = format!("http://{}", server.addr);
    let rejected_file = dir.path().join("rejected.csv");
    let report = import(ImportOptions {
        file: &path,
        server: &address,
        token: &token,
        rejected_file: rejected_file.clone(),
        batch_size: 10,
        batch_bytes: sustain_clients::import_client::DEFAULT_BATCH_BYTES,
        progress: false,
        tls: None,
    })
    .await
    .expect("import");
    assert_eq!((report.accepted, report.rejected), (1, 2), "{report:?}");
    let rejected = std::fs::read_to_string(&rejected_file).expect("rejected");
    assert!(
        rejected.contains("area-1") && rejected.contains("area_reason"),
        "{rejected}"
    );
    assert!(
        rejected.contains("area-2") && rejected.contains("rurl"),
        "{rejected}"
    );
    let mut reviews = server.reviews(Role::Admin, &["20"]).await;
    let s = reviews
        .get_poverty_summary(pb::GetPovertySummaryRequest {
            unit_code: "06067".into(),
            year: 2024,
            unassigned_from: String::new(),
        })
        .await
        .expect("summary")
        .into_inner()
        .summary
        .expect("summary");
    assert_eq!(s.households_reviewed, 1);
    assert_eq!(s.area_changed, 1, "the urban line, as the file said");
}

/// Imported households of a split commune (06622) are placed by the village
/// the province assigned, like those created one by one; the rest stay
/// unassigned, and the figures follow.
#[tokio::test]
async fn imported_households_of_a_split_commune_are_placed_by_village() {
    let server = TestServer::start().await;
    server
        .households(Role::Admin, &["20"])
        .await
        .assign_villages(pb::AssignVillagesRequest {
            commune_code: "06622".into(),
            assignments: vec![pb::VillageAssignment {
                village: "Bản Nà Lại".into(),
                successor_code: "06613".into(),
                ..Default::default()
            }],
            request_id: String::new(),
        })
        .await
        .expect("assigned");
    let mut elsewhere = row(
        2,
        "split-2",
        "06622",
        "",
        vec![review(2025, 1_000_000, POOR3)],
    );
    if let Some(a) = elsewhere
        .household
        .as_mut()
        .and_then(|h| h.address.as_mut())
    {
        a.village = "Thôn Khe Lạn".into();
    }
    let rows = vec![
        row(
            1,
            "split-1",
            "06622",
            "",
            vec![review(2025, 1_000_000, POOR3)],
        ),
        elsewhere,
    ];
    let mut importer = server.reviews(Role::Admin, &["20"]).await;
    let answers = send(&mut importer, vec![rows]).await.expect("imported");
    assert_eq!(
        outcomes(&answers),
        [pb::ImportOutcome::Accepted, pb::ImportOutcome::Accepted]
    );
    let s = province_summary(&server, 2025).await;
    let rows: Vec<(String, String, i64)> = s
        .mpi
        .expect("mpi")
        .subgroups
        .into_iter()
        .filter(|g| g.kind == "unit" || g.kind == "unassigned")
        .map(|g| (g.kind, g.key, g.households))
        .collect();
    assert_eq!(
        rows,
        [
            ("unit".to_owned(), "06613".to_owned(), 1),
            ("unassigned".to_owned(), "06622".to_owned(), 1),
        ]
    );
}

/// A CSV as Excel saves it under a Vietnamese locale: a byte-order mark and
/// semicolons. It imports like any other, its rows counted up front.
#[tokio::test]
async fn a_semicolon_csv_with_a_byte_order_mark_imports() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ho-ngheo-excel.csv");
    let mut demo = Demo::new(11, 30).expect("demo");
    let mut out = csv::WriterBuilder::new()
        .delimiter(b';')
        .from_writer(Vec::new());
    out.write_record(COLUMNS).expect("header");
    let mut lines = 0;
    for i in 0..30 {
        for cells in CsvWriter::<Vec<u8>>::lines(&demo.row(i)) {
            out.write_record(&cells).expect("line");
            lines += 1;
        }
    }
    let mut bytes = "\u{feff}".as_bytes().to_vec();
    bytes.extend(out.into_inner().expect("csv"));
    assert!(bytes.contains(&b';'));
    std::fs::write(&path, bytes).expect("write");

    let rows = sustain_clients::import_file::open(&path).expect("opens");
    assert_eq!(rows.total, Some(lines), "the progress knows the rows");
    let token = token(Role::Admin, &["20"]);
    let report = import(ImportOptions {
        file: &path,
        server: &format!("http://{}", server.addr),
        token: &token,
        rejected_file: dir.path().join("rejected.csv"),
        batch_size: 16,
        batch_bytes: sustain_clients::import_client::DEFAULT_BATCH_BYTES,
        progress: false,
        tls: None,
    })
    .await
    .expect("import");
    assert_eq!(
        (report.households, report.accepted, report.rejected),
        (30, 30, 0)
    );
}
