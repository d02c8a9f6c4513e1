//! Prometheus metrics, one registry per process: the conventional
//! `grpc_server_*` families (the names of go-grpc-prometheus, which
//! dashboards expect) counted by a tower layer on every server, and each sync
//! peer's cursor, lag, conflicts and alarm, read from the pullers' board at
//! scrape time. `GET /metrics` on `metrics_listen` serves them as text.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// One sync peer as the metrics show it.
#[derive(Debug, Clone)]
pub struct PeerGauge {
    pub peer: String,
    pub cursor: i64,
    pub peer_head: i64,
    pub applied: i64,
    pub conflicts: i64,
    pub connected: bool,
    /// At the peer's head now; else since when it has not been (`None`: never).
    pub caught_up: bool,
    pub caught_up_at: Option<Instant>,
    pub alarmed: bool,
}

/// What the metrics read sync peers from at scrape time (the pullers'
/// board), so they need not know replication.
pub trait PeerGauges: Send + Sync {
    fn gauges(&self) -> Vec<PeerGauge>;
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    started: IntCounterVec,
    handled: IntCounterVec,
    handling: HistogramVec,
    sync_cursor: IntGaugeVec,
    sync_peer_head: IntGaugeVec,
    sync_lag_records: IntGaugeVec,
    sync_lag_seconds: GaugeVec,
    sync_applied: IntGaugeVec,
    sync_conflicts: IntGaugeVec,
    sync_connected: IntGaugeVec,
    sync_alarm: IntGaugeVec,
    boards: Mutex<Vec<(&'static str, Weak<dyn PeerGauges>)>>,
    /// `/pkg.Service/Method` → its gRPC type, from the descriptor sets.
    kinds: HashMap<String, &'static str>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

const CALL: &[&str] = &["grpc_type", "grpc_service", "grpc_method"];
const PEER: &[&str] = &["service", "peer"];

/// Seconds: from a cached read to a province-wide export.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn method_kinds() -> HashMap<String, &'static str> {
    use prost::Message;
    let mut kinds = HashMap::new();
    for set in [
        sustain_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ] {
        let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
            continue;
        };
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let name = service.name.unwrap_or_default();
                for m in service.method {
                    let kind = match (
                        m.client_streaming.unwrap_or(false),
                        m.server_streaming.unwrap_or(false),
                    ) {
                        (false, false) => "unary",
                        (true, false) => "client_stream",
                        (false, true) => "server_stream",
                        (true, true) => "bidi_stream",
                    };
                    kinds.insert(
                        format!("/{package}.{name}/{}", m.name.unwrap_or_default()),
                        kind,
                    );
                }
            }
        }
    }
    kinds
}

impl Metrics {
    fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            prometheus::Result::Ok(c)
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGaugeVec::new(Opts::new(name, help), PEER)?;
            registry.register(Box::new(g.clone()))?;
            prometheus::Result::Ok(g)
        };
        let started = counter(
            "grpc_server_started_total",
            "Total number of RPCs started on the server.",
            CALL,
        )?;
        let handled = counter(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
        )?;
        let handling = HistogramVec::new(
            HistogramOpts::new(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            )
            .buckets(BUCKETS.to_vec()),
            CALL,
        )?;
        registry.register(Box::new(handling.clone()))?;
        let sync_lag_seconds = GaugeVec::new(
            Opts::new(
                "sustain_sync_lag_seconds",
                "Seconds since this instance was last caught up with the peer (-1: never).",
            ),
            PEER,
        )?;
        registry.register(Box::new(sync_lag_seconds.clone()))?;
        Ok(Metrics {
            started,
            handled,
            handling,
            sync_cursor: gauge(
                "sustain_sync_cursor",
                "The last sequence of the peer's feed applied here.",
            )?,
            sync_peer_head: gauge(
                "sustain_sync_peer_head",
                "The peer's newest feed sequence, as last seen.",
            )?,
            sync_lag_records: gauge(
                "sustain_sync_lag_records",
                "Sequences between the cursor and the peer's head.",
            )?,
            sync_lag_seconds,
            sync_applied: gauge(
                "sustain_sync_applied",
                "Changes applied from the peer since this process started.",
            )?,
            sync_conflicts: gauge(
                "sustain_sync_conflicts",
                "Conflicts kept from the peer since this process started.",
            )?,
            sync_connected: gauge(
                "sustain_sync_connected",
                "1 while the feed from the peer is open.",
            )?,
            sync_alarm: gauge(
                "sustain_sync_alarm",
                "1 while the peer's data does not verify here (the ledger's chain).",
            )?,
            registry,
            boards: Mutex::new(vec![]),
            kinds: method_kinds(),
        })
    }

    /// Labels of a call to `path` (`/pkg.Service/Method`).
    fn call_labels(&self, path: &str) -> [String; 3] {
        let kind = self.kinds.get(path).copied().unwrap_or("unary");
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("unknown", "unknown"));
        [kind.to_owned(), service.to_owned(), method.to_owned()]
    }

    /// Shows the peers on `board` as `service`'s, while it lives.
    pub fn watch_sync(&self, service: &'static str, board: Arc<dyn PeerGauges>) {
        if let Ok(mut boards) = self.boards.lock() {
            boards.push((service, Arc::downgrade(&board)));
        }
    }

    fn refresh_sync(&self) {
        let Ok(mut boards) = self.boards.lock() else {
            return;
        };
        boards.retain(|(_, b)| b.strong_count() > 0);
        for (service, board) in boards.iter() {
            let Some(board) = board.upgrade() else {
                continue;
            };
            for p in board.gauges() {
                let labels = [*service, p.peer.as_str()];
                self.sync_cursor.with_label_values(&labels).set(p.cursor);
                self.sync_peer_head
                    .with_label_values(&labels)
                    .set(p.peer_head);
                self.sync_lag_records
                    .with_label_values(&labels)
                    .set((p.peer_head - p.cursor).max(0));
                let lag = match (p.caught_up, p.caught_up_at) {
                    (true, _) => 0.0,
                    (false, Some(at)) => at.elapsed().as_secs_f64(),
                    (false, None) => -1.0,
                };
                self.sync_lag_seconds.with_label_values(&labels).set(lag);
                self.sync_applied.with_label_values(&labels).set(p.applied);
                self.sync_conflicts
                    .with_label_values(&labels)
                    .set(p.conflicts);
                self.sync_connected
                    .with_label_values(&labels)
                    .set(i64::from(p.connected));
                self.sync_alarm
                    .with_label_values(&labels)
                    .set(i64::from(p.alarmed));
            }
        }
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        self.refresh_sync();
        let mut out = vec![];
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| match Metrics::new() {
    Ok(m) => Some(m),
    Err(e) => {
        tracing::error!(error = %e, "metrics could not be set up");
        None
    }
});

/// The process's metrics (`None` only if they could not be registered).
pub fn metrics() -> Option<&'static Metrics> {
    METRICS.as_ref()
}

/// Serves `GET /metrics` on `addr` until the task is aborted.
pub async fn serve(addr: SocketAddr) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, "metrics serving");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                metrics().map(Metrics::render).unwrap_or_default(),
            )
        }),
    );
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    }))
}

/// Counts every call through the server: started, handled with its gRPC
/// code, and how long it took until its last frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> GrpcMetricsService<S> {
        GrpcMetricsService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
}

/// One call being counted.
#[derive(Debug)]
struct Call {
    labels: [String; 3],
    start: Instant,
    /// A `grpc-status` sent in the headers (a trailers-only answer).
    header_code: Option<String>,
}

impl Call {
    fn finish(self, code: &str) {
        let Some(m) = metrics() else {
            return;
        };
        let [kind, service, method] = &self.labels;
        m.handled
            .with_label_values(&[kind.as_str(), service, method, code])
            .inc();
        m.handling
            .with_label_values(&[kind.as_str(), service, method])
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// The names of gRPC status codes, as the conventional metrics spell them.
fn code_name(value: &str) -> &'static str {
    match value.trim().parse::<i32>().map(tonic::Code::from) {
        Ok(tonic::Code::Ok) => "OK",
        Ok(tonic::Code::Cancelled) => "Canceled",
        Ok(tonic::Code::InvalidArgument) => "InvalidArgument",
        Ok(tonic::Code::DeadlineExceeded) => "DeadlineExceeded",
        Ok(tonic::Code::NotFound) => "NotFound",
        Ok(tonic::Code::AlreadyExists) => "AlreadyExists",
        Ok(tonic::Code::PermissionDenied) => "PermissionDenied",
        Ok(tonic::Code::ResourceExhausted) => "ResourceExhausted",
        Ok(tonic::Code::FailedPrecondition) => "FailedPrecondition",
        Ok(tonic::Code::Aborted) => "Aborted",
        Ok(tonic::Code::OutOfRange) => "OutOfRange",
        Ok(tonic::Code::Unimplemented) => "Unimplemented",
        Ok(tonic::Code::Internal) => "Internal",
        Ok(tonic::Code::Unavailable) => "Unavailable",
        Ok(tonic::Code::DataLoss) => "DataLoss",
        Ok(tonic::Code::Unauthenticated) => "Unauthenticated",
        _ => "Unknown",
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(|v| code_name(v).to_owned())
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<MeteredBody<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = metrics().map(|m| {
            let labels = m.call_labels(request.uri().path());
            m.started
                .with_label_values(&[labels[0].as_str(), &labels[1], &labels[2]])
                .inc();
            Call {
                labels,
                start: Instant::now(),
                header_code: None,
            }
        });
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await;
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    if let Some(call) = call {
                        call.finish("Unknown");
                    }
                    return Err(e);
                }
            };
            let (parts, body) = response.into_parts();
            let call = call.map(|mut c| {
                c.header_code = grpc_status(&parts.headers);
                c
            });
            Ok(http::Response::from_parts(
                parts,
                MeteredBody { inner: body, call },
            ))
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that finishes its call's count at its trailers (or
    /// its end, or when dropped unfinished: the client went away).
    pub struct MeteredBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }

    impl<B> PinnedDrop for MeteredBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(call) = this.project().call.take() {
                let code = call.header_code.clone().unwrap_or_else(|| "Canceled".into());
                call.finish(&code);
            }
        }
    }
}

impl<B: http_body::Body> http_body::Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(call) = this.call.take()
                {
                    let code = grpc_status(trailers)
                        .or_else(|| call.header_code.clone())
                        .unwrap_or_else(|| "Unknown".into());
                    call.finish(&code);
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = this.call.take() {
                    let code = call.header_code.clone().unwrap_or_else(|| "Unknown".into());
                    call.finish(&code);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = this.call.take() {
                    call.finish("Unknown");
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
