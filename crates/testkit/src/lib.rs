//! Test support shared by the services' integration tests: a fresh, empty database
//! per test (SQLite in a temporary directory, or a new PostgreSQL database when
//! `SUSTAIN_TEST_DATABASE_URL` names a server), tokens for any role and scope,
//! and services run on loopback ports ([`server`]).

pub mod process;
pub mod proxy;
pub mod raw;
pub mod rogue;
pub mod server;

use sea_orm::{ConnectionTrait, Database};
use sustain_platform::Role;
use sustain_platform::auth::TokenIssuer;

/// The environment variable that switches the suite to PostgreSQL, e.g.
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub const DATABASE_URL_ENV: &str = "SUSTAIN_TEST_DATABASE_URL";

/// The HMAC secret every test server and token shares.
pub const JWT_SECRET: &[u8] = b"sustain-test-secret-sustain-test-secret";
pub const FIELD_KEY: [u8; 32] = [0x5a; 32];
pub const LOOKUP_KEY: [u8; 32] = [0xa5; 32];

/// A database that lives as long as the value: a temporary SQLite file, or a
/// PostgreSQL database created for this test and dropped afterwards.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    admin_url: Option<String>,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

static OVERRIDE: std::sync::Mutex<Option<Option<String>>> = std::sync::Mutex::new(None);

/// Overrides [`DATABASE_URL_ENV`] for this process (`None`: SQLite), for harnesses
/// that compare backends in one run.
pub fn set_database_url(url: Option<String>) {
    if let Ok(mut o) = OVERRIDE.lock() {
        *o = Some(url);
    }
}

fn database_url() -> Option<String> {
    if let Some(forced) = OVERRIDE.lock().ok().and_then(|o| o.clone()) {
        return forced;
    }
    std::env::var(DATABASE_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty())
}

impl TestDatabase {
    pub async fn new() -> anyhow::Result<TestDatabase> {
        let name = format!("sustain_t_{}", uuid::Uuid::now_v7().simple());
        match database_url() {
            Some(admin_url) => {
                let admin = Database::connect(&admin_url).await?;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await?;
                admin.close().await?;
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b);
                Ok(TestDatabase {
                    url: format!("{base}/{name}"),
                    admin_url: Some(admin_url.clone()),
                    name,
                    _dir: None,
                })
            }
            None => {
                let dir = tempfile::tempdir()?;
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("test.sqlite").display()
                );
                Ok(TestDatabase {
                    url,
                    admin_url: None,
                    name,
                    _dir: Some(dir),
                })
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.admin_url.is_some()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(admin_url) = self.admin_url.clone() else {
            return;
        };
        let name = self.name.clone();
        // Best effort, on a thread of its own: Drop may run inside or outside a runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(admin) = Database::connect(&admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A valid token for `role` over `scope`, signed with [`JWT_SECRET`].
pub fn token(role: Role, scope: &[&str]) -> String {
    token_for(&format!("test-{}", role.as_str()), role, scope)
}

/// A valid token naming its subject: a sync peer's is its instance name.
pub fn token_for(subject: &str, role: Role, scope: &[&str]) -> String {
    TokenIssuer::shared(JWT_SECRET, "sustain", "sustain")
        .expect("the test secret is a valid HMAC key")
        .issue(subject, role, scope, chrono_hours(1))
        .expect("test tokens sign")
}

fn chrono_hours(h: i64) -> sustain_platform::auth::Duration {
    sustain_platform::auth::Duration::hours(h)
}

/// `GET /metrics` from `addr` over plain HTTP/1.1: the body.
pub async fn scrape(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP answer: {answer}"))?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
    Ok(body.to_owned())
}

/// A loopback address nothing listens on right now.
pub fn free_addr() -> anyhow::Result<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Waits until `check` holds, asking every 50 ms; panics naming `what` after
/// 10 s. For effects that cross a process or a sync link, never a timing claim.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(10) {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 10 s");
}

/// The keys every test server runs with: [`JWT_SECRET`], [`FIELD_KEY`],
/// [`LOOKUP_KEY`].
pub fn secrets() -> sustain_platform::config::Secrets {
    sustain_platform::config::Secrets {
        token_key: sustain_platform::auth::TokenKey::Shared(JWT_SECRET.to_vec()),
        field_key: FIELD_KEY,
        lookup_key: LOOKUP_KEY,
        previous_field_keys: vec![],
        previous_lookup_keys: vec![],
    }
}

/// A service's configuration as instance `name` owning `scope`, polling and
/// retrying quickly, stopping at once: the base of every multi-instance test.
pub fn sync_config(name: &str, scope: &str) -> sustain_platform::config::Config {
    let mut c = sustain_platform::config::Config::defaults(0);
    c.shutdown_grace_secs = 0;
    c.sync.instance = name.into();
    c.sync.scope = vec![scope.into()];
    c.sync.poll_ms = 50;
    c.sync.retry_max_ms = 300;
    c
}

/// Peer `name` at `url`, owning `scope` (empty for an upstream).
pub fn peer(name: &str, url: String, scope: &[&str]) -> sustain_platform::config::PeerConfig {
    sustain_platform::config::PeerConfig {
        name: name.into(),
        url,
        scope: scope.iter().map(|s| (*s).to_owned()).collect(),
    }
}
