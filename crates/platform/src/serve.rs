//! Serving a service: its routes plus the standard health service and server
//! reflection (v1 and v1alpha, so grpcurl 1.8 and Python's client work with no
//! proto files), a span per RPC, and graceful shutdown — report NOT_SERVING, keep
//! answering in-flight calls for a grace period, then stop.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// What a service hands to [`serve`].
#[derive(Debug)]
pub struct ServiceSet {
    pub routes: Routes,
    /// Fully-qualified gRPC service names, reported by the health service.
    pub names: Vec<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    services: ServiceSet,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in &services.names {
        reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(sustain_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(sustain_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let names = services.names.clone();
    let drain = async move {
        shutdown.await;
        mark_not_serving(&reporter, &names).await;
        tracing::info!(
            grace_secs = grace.as_secs_f64(),
            "shutting down: NOT_SERVING, draining"
        );
        tokio::time::sleep(grace).await;
    };

    Server::builder()
        .trace_fn(|request| {
            let request_id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            tracing::info_span!("rpc", method = %request.uri().path(), request_id)
        })
        .add_routes(services.routes)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), drain)
        .await?;
    tracing::info!("stopped");
    Ok(())
}

async fn mark_not_serving(reporter: &HealthReporter, names: &[&'static str]) {
    reporter
        .set_service_status("", ServingStatus::NotServing)
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
