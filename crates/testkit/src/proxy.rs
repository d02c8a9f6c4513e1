//! A TCP proxy between two services, for tests of what a bad link does: it can
//! cut every open connection at once, refuse new ones, and stall the bytes in
//! flight (connections stay open, nothing moves) until released.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug)]
struct State {
    target: SocketAddr,
    /// Bumped by every cut; a connection ends when it moves.
    cuts: watch::Sender<u64>,
    stalled: watch::Sender<bool>,
    down: AtomicBool,
    bytes: AtomicU64,
}

/// A proxy listening on a loopback port, forwarding to `target`.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            target,
            cuts: watch::channel(0).0,
            stalled: watch::channel(false).0,
            down: AtomicBool::new(false),
            bytes: AtomicU64::new(0),
        });
        let accepting = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if accepting.down.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(pump(inbound, Arc::clone(&accepting)));
            }
        });
        Ok(Proxy { addr, state, task })
    }

    /// `http://` address of the proxy, for a peer's configuration.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every open connection now.
    pub fn cut(&self) {
        self.state.cuts.send_modify(|n| *n += 1);
    }

    /// Down: open connections are cut and new ones closed at once. Up: normal.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
        if down {
            self.cut();
        }
    }

    /// Stalled: connections stay open but no byte moves either way.
    pub fn stall(&self, stalled: bool) {
        self.state.stalled.send_replace(stalled);
    }

    /// Bytes forwarded so far, both ways.
    pub fn bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

async fn pump(inbound: TcpStream, state: Arc<State>) {
    let Ok(outbound) = TcpStream::connect(state.target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let mut cuts = state.cuts.subscribe();
    cuts.mark_unchanged();
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    tokio::select! {
        () = copy(in_read, out_write, &state) => {}
        () = copy(out_read, in_write, &state) => {}
        _ = cuts.changed() => {}
    }
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: &State,
) {
    let mut stalled = state.stalled.subscribe();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        state.bytes.fetch_add(n as u64, Ordering::SeqCst);
    }
}
