//! One trace across two processes: the gateway (the real binary, a child
//! process) answers a poverty report by asking the registry (served by this
//! test process); both export their spans over OTLP to a collector in this
//! test, and the registry's span is the child of the gateway's in the same
//! trace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use sustain_platform::Role;
use sustain_platform::config::{Config, LogFormat};
use sustain_proto::gateway::v1 as gw;
use sustain_proto::gateway::v1::report_service_client::ReportServiceClient;
use sustain_testkit::server::{Bearer, Running};
use sustain_testkit::{FIELD_KEY, JWT_SECRET, LOOKUP_KEY, TestDatabase, free_addr, token};
use tonic::service::interceptor::InterceptedService;

/// A span as received: its process, trace, own id, parent and name.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    trace: Vec<u8>,
    span: Vec<u8>,
    parent: Vec<u8>,
    name: String,
}

#[derive(Debug, Clone, Default)]
struct Collector(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().expect("lock");
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    got.push(Received {
                        service: service.clone(),
                        trace: span.trace_id,
                        span: span.span_id,
                        parent: span.parent_span_id,
                        name: span.name,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_trace_spans_the_gateway_and_the_registry() {
    // The collector.
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let otlp = format!("http://{}", listener.local_addr().expect("addr"));
    let serving = collector.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(serving))
            .serve_with_incoming(tokio_stream_incoming(listener))
            .await
    });

    // This process is the registry, exporting as such.
    let telemetry = sustain_platform::telemetry::init_service(
        LogFormat::Text,
        "warn",
        Some(&otlp),
        "sustain-registry",
    )
    .expect("telemetry");
    let db = TestDatabase::new().await.expect("database");
    let mut config = Config::defaults(0);
    config.database_url = db.url.clone();
    config.shutdown_grace_secs = 0;
    let registry = Running::start(
        move |listener, stopped| async move {
            let secrets = sustain_testkit::secrets();
            sustain_registry::run(&config, &secrets, listener, async {
                let _ = stopped.await;
            })
            .await
        },
        "sustain.registry.v1.ReviewService",
    )
    .await
    .expect("registry");

    // The gateway binary, exporting to the same collector.
    let gateway_at = free_addr().expect("a port");
    let nowhere = free_addr().expect("a port");
    let mut gateway = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_sustain-gateway"))
            .arg("serve")
            .env_clear()
            .env("SUSTAIN_LISTEN", gateway_at.to_string())
            .env(
                "SUSTAIN_HTTP_LISTEN",
                free_addr().expect("a port").to_string(),
            )
            .env("SUSTAIN_REGISTRY__URL", format!("http://{}", registry.addr))
            .env("SUSTAIN_PROGRAMS__URL", format!("http://{nowhere}"))
            .env("SUSTAIN_LEDGER__URL", format!("http://{nowhere}"))
            .env("SUSTAIN_OTLP_ENDPOINT", &otlp)
            .env("SUSTAIN_LOG_FILTER", "warn")
            .env("SUSTAIN_AUTH__JWT_SECRET", B64.encode(JWT_SECRET))
            .env("SUSTAIN_CRYPTO__FIELD_KEY", B64.encode(FIELD_KEY))
            .env("SUSTAIN_CRYPTO__LOOKUP_KEY", B64.encode(LOOKUP_KEY))
            .env("SUSTAIN_SHUTDOWN_GRACE_SECS", "0")
            .spawn()
            .expect("the gateway starts"),
    );

    let start = Instant::now();
    let channel = loop {
        if let Ok(c) = tonic::transport::Channel::from_shared(format!("http://{gateway_at}"))
            .expect("url")
            .connect()
            .await
        {
            break c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the gateway never listened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut reports = ReportServiceClient::new(InterceptedService::new(
        channel,
        Bearer(token(Role::Viewer, &["20"])),
    ));
    let report = reports
        .get_poverty_report(gw::GetPovertyReportRequest {
            unit_code: "20".into(),
            from_year: 2024,
            to_year: 2024,
            breakdown: 0,
        })
        .await
        .expect("the report");
    assert_eq!(
        report
            .get_ref()
            .report
            .as_ref()
            .map(|r| r.unit_code.as_str()),
        Some("20")
    );

    // Both processes send what they hold: the gateway on SIGTERM, this one on shutdown.
    let pid = gateway.0.id();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let start = Instant::now();
    let exited = loop {
        if let Some(status) = gateway.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the gateway ignored SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exited.success(), "{exited:?}");
    telemetry.shutdown();

    let spans = collector.0.lock().expect("lock").clone();
    let by_id: HashMap<Vec<u8>, &Received> = spans.iter().map(|s| (s.span.clone(), s)).collect();
    let gateway_span = spans
        .iter()
        .find(|s| {
            s.service == "sustain-gateway" && s.name.ends_with("ReportService/GetPovertyReport")
        })
        .unwrap_or_else(|| panic!("no gateway span in {spans:#?}"));
    let registry_span = spans
        .iter()
        .find(|s| s.service == "sustain-registry" && s.trace == gateway_span.trace)
        .unwrap_or_else(|| panic!("no registry span in the gateway's trace: {spans:#?}"));
    assert!(
        registry_span.name.starts_with("sustain.registry.v1."),
        "{registry_span:?}"
    );
    assert_eq!(
        by_id.get(&registry_span.parent).map(|p| p.service.as_str()),
        Some("sustain-gateway"),
        "the registry's span is the gateway's child"
    );
    drop(registry);
}

/// The gateway process, killed if the test ends early.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tokio_stream_incoming(
    listener: tokio::net::TcpListener,
) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener)
}
