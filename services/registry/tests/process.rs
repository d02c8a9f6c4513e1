//! The real `sustain-registry` binary as a process: development-mode start-up, a full
//! run of calls at trace level, SIGTERM drain — and no personal data in its logs.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use common::*;
use sustain_proto::registry::v1 as pb;
use sustain_proto::registry::v1::household_service_client::HouseholdServiceClient;
use tonic::transport::Channel;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_drains_and_never_logs_personal_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sustain_testkit::TestDatabase::new().await.expect("db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sustain-registry"))
        .args([
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--database-url")
        .arg(&db.url)
        .env("RUST_LOG", "trace")
        .env("SUSTAIN_SHUTDOWN_GRACE_SECS", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut banner = String::new();
    let mut token = String::new();
    // Lines: "sustain-registry (development mode) on ADDR", a caption, the token.
    while token.is_empty() {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).expect("read") > 0,
            "binary exited early"
        );
        if line.starts_with("sustain-registry") {
            banner = line;
        } else if line.starts_with("ey") {
            token = line.trim().to_owned();
        }
    }
    // Keep both pipes drained while the calls run: trace logs would fill them.
    let out_reader = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stdout.read_to_string(&mut rest);
        rest
    });
    let mut stderr = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    let addr = banner
        .trim()
        .rsplit(' ')
        .next()
        .expect("address")
        .to_owned();
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = HouseholdServiceClient::with_interceptor(channel, Bearer(token));

    let citizen_ids = ["020085001234", "020187004321"];
    let mut h = household("Nguyễn Văn A", citizen_ids[0]);
    h.members[1] = member(
        "Hoàng Thị Mai",
        pb::Relation::Spouse,
        "1987-07-15",
        pb::Sex::Female,
        "07",
        citizen_ids[1],
    );
    let created = create(&mut client, h.clone()).await.expect("create");
    let err = create(&mut client, h).await.expect_err("duplicate");
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    let mut bad = household("X", "020085001299");
    bad.members[0].birth_date = "1990-01-01".into();
    create(&mut client, bad).await.expect_err("mismatch");
    get(&mut client, &created.id).await.expect("get");
    client
        .list_households(pb::ListHouseholdsRequest {
            filter: Some(pb::HouseholdFilter {
                citizen_id: citizen_ids[1].into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("lookup");

    // SIGTERM: the process reports, drains and exits 0.
    drop(client);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");

    let logs = out_reader.join().expect("stdout") + &err_reader.join().expect("stderr");
    assert!(
        logs.contains("household created"),
        "logs were captured at trace level"
    );
    assert!(logs.contains("NOT_SERVING"), "shutdown was reported");
    for id in citizen_ids {
        assert!(!logs.contains(id), "citizen ID {id} leaked into the logs");
    }
    assert!(
        !logs.contains("020085001299"),
        "rejected citizen ID leaked into the logs"
    );
    assert!(
        !logs.contains("Hoàng Thị Mai"),
        "names stay out of the logs"
    );
}
