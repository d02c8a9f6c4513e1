//! A service under test: served on 127.0.0.1:0 in a task, reached over a real
//! socket once its health service answers, stopped cleanly; and the bearer
//! token every client call carries.

use std::future::Future;
use std::net::SocketAddr;

use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::Channel;

/// Adds `authorization: Bearer <token>` to every call; an empty token sends
/// none (a caller without credentials).
#[derive(Debug, Clone)]
pub struct Bearer(pub String);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if self.0.is_empty() {
            return Ok(request);
        }
        let value: MetadataValue<_> = format!("Bearer {}", self.0)
            .parse()
            .map_err(|_| tonic::Status::invalid_argument("the token is not ASCII"))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

/// One server task on a loopback port.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    /// Binds a loopback port, runs `run` on it until stopped, and waits until
    /// the health service reports `health_name` serving.
    pub async fn start<F, Fut>(run: F, health_name: &str) -> anyhow::Result<Running>
    where
        F: FnOnce(tokio::net::TcpListener, oneshot::Receiver<()>) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        Running::start_on(listener, run, health_name).await
    }

    /// The same on a listener bound beforehand: instances that must know each
    /// other's addresses before any of them starts.
    pub async fn start_on<F, Fut>(
        listener: tokio::net::TcpListener,
        run: F,
        health_name: &str,
    ) -> anyhow::Result<Running>
    where
        F: FnOnce(tokio::net::TcpListener, oneshot::Receiver<()>) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, stopped));
        let running = Running {
            addr,
            stop: Some(stop),
            task: Some(task),
        };
        running.wait_ready(health_name).await?;
        Ok(running)
    }

    async fn wait_ready(&self, service: &str) -> anyhow::Result<()> {
        for _ in 0..400 {
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                anyhow::bail!("the server of {service} stopped before it was ready");
            }
            if let Ok(channel) = self.channel().await {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                let asked = tonic_health::pb::HealthCheckRequest {
                    service: service.into(),
                };
                if health.check(asked).await.is_ok() {
                    return Ok(());
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        anyhow::bail!("{service} did not become ready")
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(format!("http://{}", self.addr))?
            .connect()
            .await?)
    }

    /// Stops the server and waits for it; its error, if it failed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
