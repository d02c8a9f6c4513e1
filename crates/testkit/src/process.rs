//! A service as its own process, to be killed with SIGKILL and started again
//! on the same port and data: for the fault suite.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

/// `binary serve --config config --listen addr`, ready once the health
/// service reports `health_name` serving.
#[derive(Debug)]
pub struct Process {
    pub binary: PathBuf,
    pub config: PathBuf,
    pub addr: SocketAddr,
    pub health_name: &'static str,
    child: Option<std::process::Child>,
}

impl Process {
    /// Not started yet: see [`Process::spawn`].
    pub fn new(
        binary: impl Into<PathBuf>,
        config: impl Into<PathBuf>,
        addr: SocketAddr,
        health_name: &'static str,
    ) -> Process {
        Process {
            binary: binary.into(),
            config: config.into(),
            addr,
            health_name,
            child: None,
        }
    }

    pub fn spawn(&mut self) {
        let child = std::process::Command::new(&self.binary)
            .args(["serve", "--config"])
            .arg(&self.config)
            .args(["--listen", &self.addr.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.binary.display()));
        self.child = Some(child);
    }

    /// SIGKILL, and reaped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until it serves; panics after a minute.
    pub async fn wait_serving(&self) {
        let start = Instant::now();
        loop {
            let ok = async {
                let channel = Channel::from_shared(format!("http://{}", self.addr))
                    .ok()?
                    .connect()
                    .await
                    .ok()?;
                tonic_health::pb::health_client::HealthClient::new(channel)
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: self.health_name.into(),
                    })
                    .await
                    .ok()
            };
            if ok.await.is_some() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{} not up",
                self.binary.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
