//! Logging and tracing. Logs: human-readable text or JSON lines, filtered by
//! `RUST_LOG` or the configured filter. Personal data never reaches a log:
//! handlers log ids, never names, citizen IDs or sensitive fields.
//!
//! Traces: with `otlp_endpoint` set, every RPC's span goes to an OpenTelemetry
//! collector over OTLP/gRPC, named after the method, its parent taken from the
//! caller's W3C `traceparent`; the gateway passes its own span on to the
//! services it asks, so one trace spans gateway → backends.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Installs the global subscriber for a command that serves nothing (no
/// traces); a second call (tests) is a no-op.
/// Colours only for a person at a terminal: a log piped to a file or a
/// collector gets plain text (and `NO_COLOR` turns them off anywhere).
fn colours() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours())
        .with_target(true);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Keeps the trace exporter running; [`Telemetry::shutdown`] sends what is
/// left before the process exits.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the exporter (blocks this worker thread briefly).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            let stop = || {
                if let Err(e) = provider.shutdown() {
                    tracing::warn!(error = %e, "the trace exporter did not stop cleanly");
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(stop)
                }
                _ => stop(),
            }
        }
    }
}

/// [`init_service`] as `config` says, for the process `sustain-<service>`.
pub fn for_service(config: &crate::config::Config, service: &str) -> anyhow::Result<Telemetry> {
    init_service(
        config.log_format,
        &config.log_filter,
        config.otlp_endpoint.as_deref(),
        &format!("sustain-{service}"),
    )
}

/// Installs logging and, with `otlp_endpoint`, trace export for a serving
/// process named `service`. Call inside the Tokio runtime.
pub fn init_service(
    format: LogFormat,
    filter: &str,
    otlp_endpoint: Option<&str>,
    service: &str,
) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let (traces, provider) = match otlp_endpoint {
        None => (None, None),
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(Duration::from_secs(5))
                .build()?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(OnRuntime {
                    inner: Arc::new(exporter),
                    runtime: tokio::runtime::Handle::current(),
                })
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(service.to_owned())
                        .build(),
                )
                .build();
            let tracer = provider.tracer("sustain");
            (
                Some(tracing_opentelemetry::layer().with_tracer(tracer)),
                Some(provider),
            )
        }
    };
    // Each layer filters for itself: a quiet log (`warn`) keeps the traces.
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_target(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(colours())
            .with_target(true)
            .with_filter(filter)
            .boxed(),
    };
    let mut layers = vec![logs];
    if let Some(traces) = traces {
        layers.push(
            traces
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
                .boxed(),
        );
    }
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(Telemetry { provider })
}

/// The OTLP exporter speaks gRPC through tonic, which needs the Tokio
/// reactor; the SDK's batch processor exports from a thread of its own, so
/// each export runs as a task on the process's runtime.
#[derive(Debug)]
struct OnRuntime {
    inner: Arc<opentelemetry_otlp::SpanExporter>,
    runtime: tokio::runtime::Handle,
}

impl SpanExporter for OnRuntime {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        let inner = Arc::clone(&self.inner);
        let task = self.runtime.spawn(async move { inner.export(batch).await });
        async move {
            task.await.unwrap_or_else(|e| {
                Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                    e.to_string(),
                ))
            })
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// The span of one RPC, a child of the caller's trace when it sent one.
pub fn rpc_span<B>(request: &http::Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let path = request.uri().path();
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", ""));
    let span = tracing::info_span!(
        "rpc",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        method = %path,
        request_id = %request_id,
    );
    let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
    let _ = span.set_parent(parent);
    span
}

/// Puts the current span's trace context on an outgoing call; false when
/// there is none to put (traces off).
pub fn inject_current(metadata: &mut tonic::metadata::MetadataMap) -> bool {
    use opentelemetry::trace::TraceContextExt;
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return false;
    }
    TraceContextPropagator::new().inject_context(&context, &mut Metadata(metadata));
    true
}
