//! Serving a service: its routes plus the standard health service and server
//! reflection (v1 and v1alpha, so grpcurl 1.8 and Python's client work with no
//! proto files), a span per RPC, and graceful shutdown — report NOT_SERVING, keep
//! answering in-flight calls for a grace period, then stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// How long in-flight calls may run on after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What a service hands to [`serve`].
#[derive(Debug)]
pub struct ServiceSet {
    pub routes: Routes,
    /// Fully-qualified gRPC service names, reported by the health service.
    pub names: Vec<&'static str>,
    /// Tasks that live as long as the server (cache followers); stopped with it.
    pub background: Vec<tokio::task::JoinHandle<()>>,
    /// The database the services answer from: while it does not answer, the
    /// health service reports NOT_SERVING, and SERVING again once it does.
    pub database: Option<sea_orm::DatabaseConnection>,
    /// Where to serve `/metrics` (`Config::metrics_listen`).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Mutual TLS (`Config::tls`); `None`: plain text.
    pub tls: Option<crate::tls::Tls>,
    /// `Config::limits`.
    pub limits: crate::config::LimitsConfig,
}

impl ServiceSet {
    /// `routes` serving `names`, with the configuration's metrics endpoint,
    /// TLS and limits; no background tasks, no database watched.
    pub fn new(
        config: &crate::config::Config,
        routes: Routes,
        names: Vec<&'static str>,
    ) -> anyhow::Result<ServiceSet> {
        Ok(ServiceSet {
            routes,
            names,
            background: vec![],
            database: None,
            metrics_listen: config.metrics_listen,
            tls: config.tls.load()?,
            limits: config.limits,
        })
    }

    /// With tasks that live as long as the server.
    pub fn with_background(mut self, tasks: Vec<tokio::task::JoinHandle<()>>) -> ServiceSet {
        self.background.extend(tasks);
        self
    }

    /// Reporting NOT_SERVING while `db` does not answer.
    pub fn watching(mut self, db: sea_orm::DatabaseConnection) -> ServiceSet {
        self.database = Some(db);
        self
    }
}

/// Routes over generated gRPC servers, each behind `auth`'s bearer-token
/// check and with `limits`' message sizes:
/// `guarded_routes!(auth, config.limits; households, units, reviews)`.
#[macro_export]
macro_rules! guarded_routes {
    ($auth:expr, $limits:expr; $first:expr $(, $rest:expr)* $(,)?) => {
        ::tonic::service::Routes::new(::tonic::service::interceptor::InterceptedService::new(
            $crate::sized!($first, $limits),
            $auth.interceptor(),
        ))
        $(.add_service(::tonic::service::interceptor::InterceptedService::new(
            $crate::sized!($rest, $limits),
            $auth.interceptor(),
        )))*
    };
}

/// A generated gRPC server with the configured message size limits.
#[macro_export]
macro_rules! sized {
    ($server:expr, $limits:expr) => {
        $server
            .max_decoding_message_size($limits.max_request_bytes)
            .max_encoding_message_size($limits.max_response_bytes)
    };
}

/// The health name a liveness probe asks about.
pub const LIVENESS: &str = "liveness";

/// How often the database is asked whether it answers.
pub const DATABASE_PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long it has to answer.
pub const DATABASE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("metrics endpoint: {0}")]
    Metrics(#[from] std::io::Error),
}

/// Reflection listing what this port serves (its services, health and
/// reflection itself) and describing the error-detail types the answers
/// carry (`google.rpc.BadRequest`, `ErrorInfo`), so grpcurl and buf curl
/// print a refusal's reasons instead of base64.
fn reflection(names: &[&'static str]) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(sustain_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .with_service_name("grpc.reflection.v1alpha.ServerReflection");
    for name in names {
        builder = builder.with_service_name(*name);
    }
    builder
}

/// Serves until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    services: ServiceSet,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    // Liveness: the process answers. Its database being down is not cured by
    // a restart, so only shutdown turns this one off.
    reporter
        .set_service_status(LIVENESS, ServingStatus::Serving)
        .await;
    for name in &services.names {
        reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    let reflection_v1 = reflection(&services.names).build_v1()?;
    let reflection_v1alpha = reflection(&services.names).build_v1alpha()?;

    let names = services.names.clone();
    let routes = services.routes;
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let (draining_tx, draining) = tokio::sync::watch::channel(false);
    let mut background = services.background;
    if let Some(addr) = services.metrics_listen {
        background.push(crate::metrics::serve(addr).await?);
    }
    if let Some(db) = services.database {
        background.push(tokio::spawn(watch_database(
            db,
            reporter.clone(),
            names.clone(),
            draining,
        )));
    }
    // Background tasks (cache followers, sync pullers) stop with the server,
    // also when this future is dropped rather than run to its end.
    let _background = AbortOnDrop(background);
    let drain = async move {
        shutdown.await;
        let _ = draining_tx.send(true);
        mark_not_serving(&reporter, &names).await;
        tracing::info!(
            grace_secs = grace.as_secs_f64(),
            "shutting down: NOT_SERVING, draining"
        );
        tokio::time::sleep(grace).await;
        let _ = stopping_tx.send(true);
    };

    let limits = services.limits;
    let keepalive = Duration::from_secs(limits.keepalive_secs);
    let mut builder = Server::builder()
        .concurrency_limit_per_connection(limits.concurrency_per_connection)
        .load_shed(true)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .timeout(Duration::from_secs(limits.request_timeout_secs))
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_keepalive(Some(keepalive))
        // Sync batches and imports move megabytes: windows sized for bulk.
        .initial_stream_window_size(Some(4 * 1024 * 1024))
        .initial_connection_window_size(Some(8 * 1024 * 1024));
    if let Some(tls) = &services.tls {
        builder = builder.tls_config(tls.server())?;
    }
    let server = builder
        // The metrics see the code the client gets.
        .layer(
            tower::ServiceBuilder::new()
                .layer(crate::metrics::GrpcMetricsLayer)
                .layer(ClientErrorsLayer::serving(&services.names)),
        )
        .trace_fn(crate::telemetry::rpc_span)
        .add_routes(routes)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener)
                // Without it, multi-packet responses (a page of households) wait on
                // Nagle + delayed ACK: ~40 ms per call on loopback.
                .with_nodelay(Some(true)),
            drain,
        );
    tokio::pin!(server);
    // In-flight calls get DRAIN_TIMEOUT to finish; a client that never lets go of
    // its connection cannot hold the process up past that.
    let deadline = async {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        result = &mut server => result?,
        () = deadline => tracing::warn!(timeout_secs = DRAIN_TIMEOUT.as_secs(), "connections still open after the drain timeout; closing"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Follows the database's health into the health service: NOT_SERVING while
/// it does not answer (a probe balancer then sends no calls here), SERVING
/// once it does again, until shutdown begins.
async fn watch_database(
    db: sea_orm::DatabaseConnection,
    reporter: HealthReporter,
    names: Vec<&'static str>,
    draining: tokio::sync::watch::Receiver<bool>,
) {
    let mut up = true;
    loop {
        tokio::time::sleep(DATABASE_PROBE_EVERY).await;
        let answered = matches!(
            tokio::time::timeout(DATABASE_PROBE_TIMEOUT, db.ping()).await,
            Ok(Ok(()))
        );
        if *draining.borrow() {
            return;
        }
        if answered == up {
            continue;
        }
        up = answered;
        if up {
            tracing::info!("the database answers again: SERVING");
            reporter
                .set_service_status("", ServingStatus::Serving)
                .await;
            for name in &names {
                reporter
                    .set_service_status(*name, ServingStatus::Serving)
                    .await;
            }
        } else {
            tracing::error!("the database does not answer: NOT_SERVING");
            reporter
                .set_service_status("", ServingStatus::NotServing)
                .await;
            for name in &names {
                reporter
                    .set_service_status(*name, ServingStatus::NotServing)
                    .await;
            }
        }
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

async fn mark_not_serving(reporter: &HealthReporter, names: &[&'static str]) {
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status(LIVENESS, ServingStatus::NotServing)
        .await;
    for name in names {
        reporter
            .set_service_status(*name, ServingStatus::NotServing)
            .await;
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}

/// Bad bytes from a client are the client's error. tonic answers a request
/// that does not decode with INTERNAL (and one over the size limit with
/// OUT_OF_RANGE) before any handler runs; this layer turns those answers
/// into INVALID_ARGUMENT and RESOURCE_EXHAUSTED with a reason a client can
/// act on, so that neither reaches a caller, or the error metrics, as the
/// server's fault.
///
/// A call to a service this port does not serve (UNIMPLEMENTED, with no
/// message from tonic) is answered naming what the port serves and which
/// of the suite's services serves the one asked for.
#[derive(Debug, Clone, Default)]
pub struct ClientErrorsLayer {
    served: Arc<Vec<&'static str>>,
}

impl ClientErrorsLayer {
    /// For a port serving the gRPC services `names`.
    pub fn serving(names: &[&'static str]) -> ClientErrorsLayer {
        ClientErrorsLayer {
            served: Arc::new(names.to_vec()),
        }
    }
}

impl<S> tower::Layer<S> for ClientErrorsLayer {
    type Service = ClientErrors<S>;

    fn layer(&self, inner: S) -> ClientErrors<S> {
        ClientErrors {
            inner,
            served: Arc::clone(&self.served),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientErrors<S> {
    inner: S,
    served: Arc<Vec<&'static str>>,
}

/// Which of the suite's binaries serves the services of a package, and its
/// default port.
const SERVED_BY: &[(&str, &str, u16)] = &[
    (
        "sustain.registry.",
        "the registry (sustain-registry)",
        50051,
    ),
    (
        "sustain.programs.",
        "the programmes service (sustain-programs)",
        50052,
    ),
    ("sustain.ledger.", "the ledger (sustain-ledger)", 50053),
    ("sustain.gateway.", "the gateway (sustain-gateway)", 50054),
];

/// Why `path` (`/package.Service/Method`) is not served here, in words.
fn not_served(path: &str, served: &[&'static str]) -> String {
    let service = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    let here = if served.is_empty() {
        "nothing but health and reflection".to_owned()
    } else {
        served.join(", ")
    };
    if served.contains(&service) {
        return format!(
            "{service} has no method {path}; this port serves {here} (list them with reflection)"
        );
    }
    let elsewhere = SERVED_BY
        .iter()
        .find(|(package, _, _)| service.starts_with(package))
        .map_or_else(
            || "no service of the suite".to_owned(),
            |(_, binary, port)| format!("{binary}, by default on port {port}"),
        );
    let sync = if service == sustain_proto::sync::v1::sync_service_server::SERVICE_NAME {
        " (each service that syncs serves its own)"
    } else {
        ""
    };
    format!(
        "{service} is not served on this port, which serves {here}; {service} is served by {elsewhere}{sync}"
    )
}

/// What tonic's codecs say of a request they could not read.
const UNDECODABLE: &str = "failed to decode Protobuf message";
const OVERSIZED: &str = "decoded message length too large";

/// The status a trailers-only answer carries, recast when it is the
/// client's error; `None` when it is not one of those.
fn recast(headers: &http::HeaderMap, path: &str, served: &[&'static str]) -> Option<tonic::Status> {
    let status = tonic::Status::from_header_map(headers)?;
    match status.code() {
        tonic::Code::Unimplemented if status.message().is_empty() => {
            Some(tonic::Status::unimplemented(not_served(path, served)))
        }
        tonic::Code::Internal if status.message().starts_with(UNDECODABLE) => {
            Some(tonic::Status::invalid_argument(format!(
                "the request is not a valid message of this method: {}",
                status.message()
            )))
        }
        tonic::Code::OutOfRange if status.message().contains(OVERSIZED) => {
            Some(tonic::Status::resource_exhausted(format!(
                "the request is larger than this server takes: {}",
                status.message()
            )))
        }
        _ => None,
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for ClientErrors<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let served = Arc::clone(&self.served);
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            if let Some(status) = recast(response.headers(), &path, &served) {
                tracing::info!(code = ?status.code(), message = %status.message(), "a request that does not read, answered as the client's error");
                let headers = response.headers_mut();
                headers.remove("grpc-message");
                headers.remove("grpc-status-details-bin");
                // A status always makes valid header values.
                let _ = status.add_header(headers);
            }
            Ok(response)
        })
    }
}
