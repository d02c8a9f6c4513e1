//! A taken-over instance's change feed: it serves whatever the attacker puts
//! in it, to whoever pulls, holding the stream open as a followed feed does.
//! For the rogue-peer tests of every service.

use std::sync::Arc;

use sustain_proto::sync::v1 as spb;

/// The feed; [`RogueFeed::send`] puts changes in it (each with a `seq`).
#[derive(Debug, Clone)]
pub struct RogueFeed {
    changes: Arc<tokio::sync::watch::Sender<Vec<spb::Change>>>,
}

impl Default for RogueFeed {
    fn default() -> RogueFeed {
        RogueFeed {
            changes: Arc::new(tokio::sync::watch::channel(vec![]).0),
        }
    }
}

impl RogueFeed {
    /// Replaces what the feed holds; a puller gets those past its cursor.
    pub fn send(&self, changes: Vec<spb::Change>) {
        self.changes.send_replace(changes);
    }

    /// Serves the feed on `listener` (over TLS with `tls`) until dropped.
    pub fn serve(
        &self,
        listener: tokio::net::TcpListener,
        tls: Option<tonic::transport::ServerTlsConfig>,
    ) -> tokio::task::JoinHandle<()> {
        let feed = spb::sync_service_server::SyncServiceServer::new(self.clone());
        tokio::spawn(async move {
            let mut server = tonic::transport::Server::builder();
            if let Some(tls) = tls {
                server = match server.tls_config(tls) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            }
            let _ = server
                .add_service(feed)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        })
    }
}

/// A change of `record_type` `record_id` naming `owner_unit`, at `seq`.
pub fn change(
    seq: i64,
    record_type: &str,
    record_id: &str,
    owner_unit: &str,
    version: i64,
    state: String,
) -> spb::Change {
    spb::Change {
        seq,
        record_type: record_type.into(),
        record_id: record_id.into(),
        owner_unit: owner_unit.into(),
        version,
        action: "update".into(),
        state,
        recorded_at: None,
    }
}

fn refused<T>() -> Result<tonic::Response<T>, tonic::Status> {
    Err(tonic::Status::unimplemented(
        "a rogue feed answers pulls only",
    ))
}

#[tonic::async_trait]
impl spb::sync_service_server::SyncService for RogueFeed {
    type PullStream =
        tokio_stream::wrappers::ReceiverStream<Result<spb::PullResponse, tonic::Status>>;

    async fn pull(
        &self,
        request: tonic::Request<spb::PullRequest>,
    ) -> Result<tonic::Response<Self::PullStream>, tonic::Status> {
        let mut after = request.into_inner().after_seq;
        let mut changes = self.changes.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let batch: Vec<spb::Change> = changes
                    .borrow_and_update()
                    .iter()
                    .filter(|c| c.seq > after)
                    .cloned()
                    .collect();
                let head = batch.last().map_or(after, |c| c.seq);
                let response = spb::PullResponse {
                    changes: batch,
                    last_seq: head,
                    head_seq: head,
                };
                if tx.send(Ok(response)).await.is_err() {
                    return;
                }
                after = head;
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(tonic::Response::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
    }

    async fn get_sync_status(
        &self,
        _: tonic::Request<spb::GetSyncStatusRequest>,
    ) -> Result<tonic::Response<spb::GetSyncStatusResponse>, tonic::Status> {
        refused()
    }
    async fn sync_now(
        &self,
        _: tonic::Request<spb::SyncNowRequest>,
    ) -> Result<tonic::Response<spb::SyncNowResponse>, tonic::Status> {
        refused()
    }
    async fn list_owners(
        &self,
        _: tonic::Request<spb::ListOwnersRequest>,
    ) -> Result<tonic::Response<spb::ListOwnersResponse>, tonic::Status> {
        refused()
    }
    async fn hand_over(
        &self,
        _: tonic::Request<spb::HandOverRequest>,
    ) -> Result<tonic::Response<spb::HandOverResponse>, tonic::Status> {
        refused()
    }
    async fn list_conflicts(
        &self,
        _: tonic::Request<spb::ListConflictsRequest>,
    ) -> Result<tonic::Response<spb::ListConflictsResponse>, tonic::Status> {
        refused()
    }
    async fn resolve_conflict(
        &self,
        _: tonic::Request<spb::ResolveConflictRequest>,
    ) -> Result<tonic::Response<spb::ResolveConflictResponse>, tonic::Status> {
        refused()
    }
}
