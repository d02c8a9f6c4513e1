//! One background task per peer: pull its feed from the stored cursor with
//! `follow`, apply each batch, and on any failure wait (doubling up to
//! `sync.retry_max_ms`, or until woken) and start again from the cursor.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use sustain_proto::sync::v1 as pb;
use sustain_proto::sync::v1::sync_service_client::SyncServiceClient;
use tokio::sync::Notify;

use super::apply::{self, Peer, Replica};
use sustain_platform::auth::{BearerToken, Caller, Role, Scope, TokenIssuer};
use sustain_platform::config::{PeerConfig, SyncConfig};

/// Changes applied between refreshes of the planner's statistics.
const ANALYZE_EVERY: usize = 50_000;

/// Largest batch message a puller accepts.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// What is known of one peer, for the status RPC and the metrics.
#[derive(Debug, Clone, Default)]
pub struct PeerState {
    pub peer: String,
    pub is_upstream: bool,
    pub url: String,
    pub cursor: i64,
    pub peer_head: i64,
    pub applied: i64,
    pub conflicts: i64,
    pub last_error: String,
    pub last_success: Option<chrono::DateTime<chrono::Utc>>,
    /// When this instance was last at the peer's head (`None`: not yet).
    pub caught_up_at: Option<Instant>,
    pub caught_up: bool,
    pub connected: bool,
    /// The peer's data does not verify here: see [`Replica::check_peer`].
    pub alarm: String,
}

/// Every peer's state, shared by the pullers and the status RPC.
#[derive(Debug)]
pub struct Board {
    peers: Mutex<Vec<PeerState>>,
    /// Wakes every puller waiting to retry.
    pub wake: Notify,
    /// Moves when who owns what changes: every puller reconnects with the
    /// scope it may now ask for.
    pub rescope: tokio::sync::watch::Sender<u64>,
}

impl Board {
    /// Tells every puller to reconnect with the scope ownership now gives.
    pub fn rescope(&self) {
        self.rescope.send_modify(|n| *n += 1);
    }
}

impl sustain_platform::metrics::PeerGauges for Board {
    fn gauges(&self) -> Vec<sustain_platform::metrics::PeerGauge> {
        self.snapshot()
            .into_iter()
            .map(|p| sustain_platform::metrics::PeerGauge {
                peer: p.peer,
                cursor: p.cursor,
                peer_head: p.peer_head,
                applied: p.applied,
                conflicts: p.conflicts,
                connected: p.connected,
                caught_up: p.caught_up,
                caught_up_at: p.caught_up_at,
                alarmed: !p.alarm.is_empty(),
            })
            .collect()
    }
}

impl Board {
    pub fn snapshot(&self) -> Vec<PeerState> {
        self.peers.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn update(&self, peer: &str, f: impl FnOnce(&mut PeerState)) {
        if let Ok(mut peers) = self.peers.lock()
            && let Some(p) = peers.iter_mut().find(|p| p.peer == peer)
        {
            f(p);
        }
    }
}

/// Starts a puller per configured peer; returns the shared board and the tasks.
pub fn start(
    db: DatabaseConnection,
    config: &SyncConfig,
    issuer: TokenIssuer,
    replica: Arc<dyn Replica>,
    tls: Option<sustain_platform::tls::Tls>,
) -> (Arc<Board>, Vec<tokio::task::JoinHandle<()>>) {
    let board = Arc::new(Board {
        peers: Mutex::new(vec![]),
        wake: Notify::new(),
        rescope: tokio::sync::watch::channel(0).0,
    });
    let mut tasks = vec![];
    if !config.enabled() {
        return (board, tasks);
    }
    let peers: Vec<(PeerConfig, bool)> = config
        .peers()
        .filter(|(_, is_upstream)| !is_upstream || replica.pulls_upstream())
        .map(|(p, u)| (p.clone(), u))
        .collect();
    if let Ok(mut board_peers) = board.peers.lock() {
        for (peer, is_upstream) in &peers {
            board_peers.push(PeerState {
                peer: peer.name.clone(),
                is_upstream: *is_upstream,
                url: peer.url.clone(),
                ..PeerState::default()
            });
        }
    }
    for (peer, is_upstream) in peers {
        let puller = Puller {
            db: db.clone(),
            peer,
            is_upstream,
            me: config.instance.clone(),
            issuer: issuer.clone(),
            replica: Arc::clone(&replica),
            board: Arc::clone(&board),
            batch: config.batch_size,
            retry_max: Duration::from_millis(config.retry_max_ms),
            tls: tls.clone(),
        };
        tasks.push(tokio::spawn(puller.run()));
    }
    (board, tasks)
}

struct Puller {
    db: DatabaseConnection,
    peer: PeerConfig,
    is_upstream: bool,
    me: String,
    issuer: TokenIssuer,
    replica: Arc<dyn Replica>,
    board: Arc<Board>,
    batch: u32,
    retry_max: Duration,
    tls: Option<sustain_platform::tls::Tls>,
}

impl Puller {
    async fn run(self) {
        let mut wait = Duration::from_millis(100);
        loop {
            match self.follow().await {
                // Ownership changed: reconnect at once with the new scope.
                Ok(()) => {
                    wait = Duration::from_millis(100);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(peer = %self.peer.name, error = %e, "sync pull failed; retrying");
                    self.board.update(&self.peer.name, |p| {
                        p.last_error = e.to_string();
                        p.connected = false;
                    });
                }
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.board.wake.notified() => {}
            }
            wait = (wait * 2).min(self.retry_max);
        }
    }

    /// The scope to pull with, as ownership stands: from an upstream, what
    /// lies over this instance's own units; from a downstream peer, its units.
    async fn scope(&self) -> anyhow::Result<Vec<String>> {
        let topology = super::Topology::load(&self.db).await?;
        let scope = if self.is_upstream {
            topology.own_units()
        } else {
            topology.units_of(&self.peer.name)
        };
        if scope.is_empty() {
            anyhow::bail!(
                "no units are recorded for {}",
                if self.is_upstream {
                    &self.me
                } else {
                    &self.peer.name
                }
            );
        }
        Ok(scope)
    }

    /// Checks what is held of the peer's data against the peer; an alarm is
    /// logged and shown in the status until it clears.
    async fn check(&self, channel: tonic::transport::Channel, bearer: BearerToken) {
        match self
            .replica
            .check_peer(&self.db, &self.peer.name, channel, bearer)
            .await
        {
            Ok(alarm) => {
                let alarm = alarm.unwrap_or_default();
                if !alarm.is_empty() {
                    tracing::error!(peer = %self.peer.name, %alarm, "sync alarm");
                }
                self.board.update(&self.peer.name, |p| p.alarm = alarm);
            }
            Err(e) => {
                tracing::warn!(peer = %self.peer.name, error = %e, "checking the peer failed");
                self.board
                    .update(&self.peer.name, |p| p.last_error = format!("check: {e}"));
            }
        }
    }

    /// Pulls with `follow` until the stream fails (an error) or ownership
    /// changes (`Ok`: reconnect with the new scope).
    async fn follow(&self) -> anyhow::Result<()> {
        let peer = Peer {
            name: self.peer.name.clone(),
            is_upstream: self.is_upstream,
        };
        let mut rescoped = self.board.rescope.subscribe();
        rescoped.mark_unchanged();
        let scope = self.scope().await?;
        let caller = Caller {
            issuer: self.me.clone(),
            subject: format!("sync:{}", self.peer.name),
            role: Role::Sync,
            scope: Scope::new(scope.clone()),
        };
        let mut cursor = apply::cursor(&self.db, &self.peer.name).await?;
        let channel = sustain_platform::tls::endpoint(&self.peer.url, self.tls.as_ref())?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            // Bulk catch-up: windows big enough to keep a batch in flight.
            .initial_stream_window_size(Some(8 * 1024 * 1024))
            .initial_connection_window_size(Some(16 * 1024 * 1024))
            .connect()
            .await?;
        let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
        let token = self
            .issuer
            .issue(&self.me, Role::Sync, &scope, chrono::Duration::hours(12))?;
        let bearer = BearerToken::new(&token)?;
        let mut client = SyncServiceClient::with_interceptor(channel.clone(), bearer.clone())
            .max_decoding_message_size(MAX_MESSAGE);
        let mut stream = client
            .pull(pb::PullRequest {
                after_seq: cursor,
                max_batch: self.batch as i32,
                follow: true,
            })
            .await?
            .into_inner();
        self.board.update(&self.peer.name, |p| {
            p.connected = true;
            p.cursor = cursor;
        });
        let mut since_analyze = 0usize;
        let mut checked = false;
        loop {
            let batch = tokio::select! {
                next = stream.message() => match next? {
                    Some(batch) => batch,
                    None => anyhow::bail!("the peer closed the feed"),
                },
                _ = rescoped.changed() => return Ok(()),
            };
            // The feed's opening word when there is nothing new: no transaction.
            let done = if batch.changes.is_empty() && batch.last_seq == cursor {
                apply::Applied::default()
            } else {
                apply::apply_batch(
                    &self.db,
                    self.replica.as_ref(),
                    &peer,
                    &caller,
                    cursor,
                    &batch,
                )
                .await?
            };
            cursor = batch.last_seq;
            // A catch-up grows the tables many times over; planner statistics
            // taken when they were small would send the lookups of held
            // versions to full scans.
            since_analyze += done.applied;
            if since_analyze >= ANALYZE_EVERY {
                since_analyze = 0;
                if let Err(e) = sustain_db::optimize(&self.db).await {
                    tracing::warn!(error = %e, "refreshing planner statistics failed");
                }
            }
            let caught_up = batch.last_seq >= batch.head_seq;
            self.board.update(&self.peer.name, |p| {
                p.cursor = cursor;
                p.peer_head = p.peer_head.max(batch.head_seq);
                p.applied += done.applied as i64;
                p.conflicts += done.conflicts as i64;
                p.last_error.clear();
                p.last_success = Some(chrono::Utc::now());
                p.caught_up = caught_up;
                if caught_up {
                    p.caught_up_at = Some(Instant::now());
                }
            });
            tracing::debug!(peer = %self.peer.name, cursor, applied = done.applied, "sync batch applied");
            if done.applied > 0 || !checked {
                checked = true;
                self.check(channel.clone(), bearer.clone()).await;
            }
            if done.owners > 0 {
                // Units changed hands: every puller here asks again with its new scope.
                self.board.rescope();
                return Ok(());
            }
        }
    }
}
