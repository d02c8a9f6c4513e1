//! Fault suite, malformed input: bytes nobody checked, sent to every method
//! of the registry, the programmes service, the ledger and the gateway as a broken or
//! hostile client sends them. A frame that does not decode is the client's
//! error (INVALID_ARGUMENT, never INTERNAL), one over the size limit is
//! RESOURCE_EXHAUSTED, random frames never get INTERNAL or UNKNOWN, a broken
//! import stream never ends OK, the error metrics count these as the client's
//! and every server stays healthy. Prints a table per service.
//! `SUSTAIN_FAULT_PROFILE=long` sends more random frames.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use prost::Message;
use rand::{Rng, SeedableRng};
use sustain_platform::Role;
use sustain_platform::config::Config;
use sustain_testkit::server::Running;
use sustain_testkit::{FIELD_KEY, JWT_SECRET, LOOKUP_KEY, TestDatabase, raw, token};
use tonic::Code;

/// The size limit the servers here take: small, so an oversized frame is cheap.
const LIMIT: usize = 64 * 1024;

fn random_frames() -> usize {
    match std::env::var("SUSTAIN_FAULT_PROFILE").as_deref() {
        Ok("long") => 200,
        _ => 12,
    }
}

fn config(url: &str) -> Config {
    let mut config = Config::defaults(0);
    config.database_url = url.to_owned();
    config.shutdown_grace_secs = 0;
    config.auth.jwt_secret = Some(B64.encode(JWT_SECRET));
    config.crypto.field_key = Some(B64.encode(FIELD_KEY));
    config.crypto.lookup_key = Some(B64.encode(LOOKUP_KEY));
    config.limits.max_request_bytes = LIMIT;
    config
}

/// Every method of the services in `package`: its path and whether the
/// client streams.
fn methods(package: &str) -> Vec<(String, bool)> {
    let set = prost_types::FileDescriptorSet::decode(sustain_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let mut out = vec![];
    for file in set.file.iter().filter(|f| f.package() == package) {
        for service in &file.service {
            for m in &service.method {
                out.push((
                    format!("/{package}.{}/{}", service.name(), m.name()),
                    m.client_streaming() || m.server_streaming(),
                ));
            }
        }
    }
    out
}

/// One frame's answer, by code.
async fn send(running: &Running, path: &str, streaming: bool, frame: Vec<u8>) -> Code {
    let channel = running.channel().await.expect("connect");
    let bearer = token(Role::Admin, &["*"]);
    if streaming {
        match raw::stream(channel, path, &bearer, vec![frame]).await.1 {
            Ok(()) => Code::Ok,
            Err(s) => s.code(),
        }
    } else {
        match raw::unary(channel, path, &bearer, frame).await {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        }
    }
}

#[derive(Default)]
struct Seen {
    calls: usize,
    codes: BTreeMap<String, usize>,
    wrong: Vec<String>,
}

impl Seen {
    fn saw(&mut self, kind: &str, path: &str, code: Code, fine: bool) {
        self.calls += 1;
        *self.codes.entry(format!("{kind}: {code:?}")).or_insert(0) += 1;
        if !fine {
            self.wrong.push(format!("{kind} to {path}: {code:?}"));
        }
    }
}

async fn hammer(name: &str, running: &Running, package: &str, seed: u64) -> Seen {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut seen = Seen::default();
    let methods = methods(package);
    assert!(!methods.is_empty(), "{package} has methods");
    for (path, streaming) in &methods {
        // Field 1, length-delimited, 255 bytes long, one byte there.
        let truncated = vec![0x0a, 0xff, 0x01, 0x41];
        let code = send(running, path, *streaming, truncated).await;
        seen.saw("truncated", path, code, code == Code::InvalidArgument);
        // A wire type no message has (7).
        let code = send(running, path, *streaming, vec![0x0f, 0x01]).await;
        seen.saw("bad wire type", path, code, code == Code::InvalidArgument);
        let code = send(running, path, *streaming, vec![0x0a; LIMIT + 16]).await;
        seen.saw("oversized", path, code, code == Code::ResourceExhausted);
        for _ in 0..random_frames() {
            let len = rng.random_range(0..512);
            let frame: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let code = send(running, path, *streaming, frame).await;
            seen.saw(
                "random",
                path,
                code,
                !matches!(code, Code::Internal | Code::Unknown | Code::Unavailable),
            );
        }
    }
    // Still serving after all of it.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        running.channel().await.expect("connect"),
    );
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status;
    assert_eq!(
        serving,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
        "{name} still serves"
    );
    println!(
        "\nmalformed input: {name} ({} methods, {} calls)",
        methods.len(),
        seen.calls
    );
    for (what, n) in &seen.codes {
        println!("  {n:>5}  {what}");
    }
    println!("  wrong answers: {}", seen.wrong.len());
    seen
}

/// Reflection on `running` lists `services` (all of them when empty, of its
/// own package) beside health and reflection, and nothing of another
/// binary; it describes `google.rpc.BadRequest`; a call to `elsewhere` is
/// UNIMPLEMENTED naming `binary`.
async fn port_says_what_it_serves(
    running: &Running,
    services: &[&str],
    elsewhere: &str,
    binary: &str,
) {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let ask = |request: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut client = ServerReflectionClient::new(running.channel().await.expect("connect"));
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([
            ask(MessageRequest::ListServices(String::new())),
            ask(MessageRequest::FileContainingSymbol(
                "google.rpc.BadRequest".into(),
            )),
        ]))
        .await
        .expect("reflection")
        .into_inner();
    let mut listed: Vec<String> = match answers
        .message()
        .await
        .expect("answer")
        .and_then(|a| a.message_response)
    {
        Some(MessageResponse::ListServicesResponse(l)) => {
            l.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("not a list: {other:?}"),
    };
    listed.sort();
    let own_package = elsewhere
        .trim_start_matches('/')
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    assert!(
        listed.iter().all(|s| !s.starts_with(&own_package)),
        "{listed:?} lists {own_package}, served elsewhere"
    );
    for expected in [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            listed.iter().any(|s| s == expected),
            "{expected} in {listed:?}"
        );
    }
    for service in services {
        assert!(
            listed.iter().any(|s| s == service),
            "{service} in {listed:?}"
        );
    }
    if !services.is_empty() {
        assert_eq!(listed.len(), services.len() + 3, "only these: {listed:?}");
    }
    match answers
        .message()
        .await
        .expect("answer")
        .and_then(|a| a.message_response)
    {
        Some(MessageResponse::FileDescriptorResponse(f)) => {
            assert!(!f.file_descriptor_proto.is_empty())
        }
        other => panic!("google.rpc.BadRequest is not described: {other:?}"),
    }
    let refused = raw::unary(
        running.channel().await.expect("connect"),
        elsewhere,
        &token(Role::Admin, &["*"]),
        vec![],
    )
    .await
    .expect_err("not served here");
    assert_eq!(refused.code(), Code::Unimplemented);
    assert!(
        refused.message().contains(binary) && refused.message().contains("this port"),
        "{elsewhere}: {}",
        refused.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_bytes_to_every_method_are_the_clients_error_and_nothing_falls_over() {
    let dbs = [
        TestDatabase::new().await.expect("db"),
        TestDatabase::new().await.expect("db"),
        TestDatabase::new().await.expect("db"),
    ];
    let secrets = sustain_testkit::secrets;
    let metrics_at = sustain_testkit::free_addr().expect("addr");
    let mut registry_config = config(&dbs[0].url);
    registry_config.metrics_listen = Some(metrics_at);
    let registry = Running::start(
        move |listener, stopped| async move {
            sustain_registry::run(&registry_config, &secrets(), listener, async {
                let _ = stopped.await;
            })
            .await
        },
        "sustain.registry.v1.ReviewService",
    )
    .await
    .expect("registry");
    let mut programs_config = config(&dbs[1].url);
    programs_config.registry.url = format!("http://{}", registry.addr);
    let programs = Running::start(
        move |listener, stopped| async move {
            sustain_programs::run(&programs_config, &secrets(), listener, async {
                let _ = stopped.await;
            })
            .await
        },
        "sustain.programs.v1.LivelihoodService",
    )
    .await
    .expect("programs");
    let ledger_config = config(&dbs[2].url);
    let ledger = Running::start(
        move |listener, stopped| async move {
            sustain_ledger::run(&ledger_config, &secrets(), listener, async {
                let _ = stopped.await;
            })
            .await
        },
        "sustain.ledger.v1.TransferService",
    )
    .await
    .expect("ledger");

    let mut gateway_config = config("sqlite::memory:");
    gateway_config.registry.url = format!("http://{}", registry.addr);
    gateway_config.programs.url = format!("http://{}", programs.addr);
    gateway_config.ledger.url = format!("http://{}", ledger.addr);
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind http");
    let gateway = Running::start(
        move |listener, stopped| async move {
            sustain_gateway::run(&gateway_config, &secrets(), listener, http, async {
                let _ = stopped.await;
            })
            .await
        },
        "sustain.gateway.v1.ReportService",
    )
    .await
    .expect("gateway");

    // Each port lists what it serves, describes the error details its
    // refusals carry, and a call to what another port serves says where.
    let registry_services = [
        "sustain.registry.v1.AdminUnitService",
        "sustain.registry.v1.HouseholdService",
        "sustain.registry.v1.ReviewService",
        "sustain.sync.v1.SyncService",
    ];
    port_says_what_it_serves(
        &registry,
        &registry_services,
        "/sustain.ledger.v1.TransferService/GetTransfer",
        "sustain-ledger",
    )
    .await;
    port_says_what_it_serves(
        &gateway,
        &["sustain.gateway.v1.ReportService"],
        "/sustain.registry.v1.HouseholdService/GetHousehold",
        "sustain-registry",
    )
    .await;
    port_says_what_it_serves(
        &ledger,
        &[],
        "/sustain.programs.v1.CatalogService/ListItems",
        "sustain-programs",
    )
    .await;

    let mut wrong = vec![];
    for (name, running, package, seed) in [
        ("registry", &registry, "sustain.registry.v1", 1),
        ("programmes", &programs, "sustain.programs.v1", 2),
        ("ledger", &ledger, "sustain.ledger.v1", 3),
        ("sync (registry)", &registry, "sustain.sync.v1", 4),
        ("gateway", &gateway, "sustain.gateway.v1", 5),
    ] {
        wrong.extend(hammer(name, running, package, seed).await.wrong);
    }

    // An import stream with a good first batch and a broken second: the
    // first is answered, the stream ends with the client's error, not OK.
    let good = sustain_proto::registry::v1::ImportHouseholdsRequest { rows: vec![] };
    let (answers, end) = raw::stream(
        registry.channel().await.expect("connect"),
        "/sustain.registry.v1.ReviewService/ImportHouseholds",
        &token(Role::Admin, &["*"]),
        vec![good.encode_to_vec(), vec![0x0a, 0xff, 0x01]],
    )
    .await;
    assert_eq!(answers.len(), 1, "the good batch is answered");
    let end = end.expect_err("a broken stream does not end OK");
    assert_eq!(end.code(), Code::InvalidArgument, "{end:?}");
    assert!(end.message().contains("batch 2"), "{}", end.message());

    // The metrics count them as the client's errors, never the server's.
    let metrics = sustain_testkit::scrape(metrics_at).await.expect("metrics");
    let handled: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("grpc_server_handled_total") && l.contains("sustain.registry"))
        .collect();
    assert!(
        handled
            .iter()
            .any(|l| l.contains("grpc_code=\"InvalidArgument\"")),
        "{handled:#?}"
    );
    assert!(
        !handled.iter().any(|l| l.contains("grpc_code=\"Internal\"")),
        "{handled:#?}"
    );
    assert!(wrong.is_empty(), "wrong answers: {wrong:#?}");
}
