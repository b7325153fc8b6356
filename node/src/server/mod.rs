//! The node's two gRPC servers, on two listeners:
//! - the **client listener** (`listen`): `evlog.v1` EventLog and Admin, nothing else;
//! - the **peer listener** (`peer_listen`): `raft.v1` RaftTransport, nothing else. A
//!   client that reaches it finds no client API there, and every Raft message is checked
//!   for this cluster and this node before it is served (see `raft::transport`).
//!
//! Each server stops accepting when the node's shutdown signal turns true and lets the
//! requests in flight finish; [`stop`] waits for that, up to the grace period.

use std::net::SocketAddr;
use std::time::Duration;

use evlog_proto::evlog::v1::admin_server::AdminServer;
use evlog_proto::evlog::v1::event_log_server::EventLogServer;
use evlog_proto::raft::v1::raft_transport_server::RaftTransportServer;
use tokio::sync::watch;

use crate::api::admin::AdminService;
use crate::api::event_log::EventLogService;
use crate::api::ApiContext;
use crate::raft::transport::TransportService;
use crate::NodeError;

/// A running server: ends when it has stopped after the shutdown signal.
pub type ServerHandle = tokio::task::JoinHandle<Result<(), tonic::transport::Error>>;

/// Room for a produce request's framing besides its events' accounted bytes.
const REQUEST_FRAMING_BYTES: usize = 1 << 20;

/// Parses a listener address and fails fast with a clear error when it cannot be bound
/// (in use, not local).
pub fn probe_listen(listen: &str) -> Result<SocketAddr, NodeError> {
    let addr: SocketAddr = listen.parse().map_err(|e| NodeError::Listen {
        addr: listen.to_owned(),
        message: format!("{e}"),
    })?;
    #[cfg(not(madsim))]
    std::net::TcpListener::bind(addr)
        .map(drop)
        .map_err(|e| NodeError::Listen {
            addr: addr.to_string(),
            message: e.to_string(),
        })?;
    Ok(addr)
}

/// Serves the client API on `addr` until `shutdown` turns true.
pub fn serve_clients(
    addr: SocketAddr,
    api: ApiContext,
    mut shutdown: watch::Receiver<bool>,
) -> ServerHandle {
    let message_max = api.limits.request_bytes_max + REQUEST_FRAMING_BYTES;
    let event_log = EventLogServer::new(EventLogService::new(api.clone()))
        .max_decoding_message_size(message_max)
        .max_encoding_message_size(message_max);
    let admin = AdminServer::new(AdminService::new(api));
    crate::rt::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(event_log)
            .add_service(admin)
            .serve_with_shutdown(addr, async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await
    })
}

/// Serves the Raft transport on `addr` until `shutdown` turns true.
pub fn serve_peers(
    addr: SocketAddr,
    transport: TransportService,
    message_max: usize,
    mut shutdown: watch::Receiver<bool>,
) -> ServerHandle {
    let transport = RaftTransportServer::new(transport)
        .max_decoding_message_size(message_max)
        .max_encoding_message_size(message_max);
    crate::rt::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(transport)
            .serve_with_shutdown(addr, async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await
    })
}

/// Waits for a server to stop after the shutdown signal, up to `grace`.
pub async fn stop(server: ServerHandle, name: &str, grace: Duration) {
    match crate::rt::timeout(grace, server).await {
        Some(Ok(Ok(()))) => {}
        Some(Ok(Err(e))) => tracing::warn!("{name} server ended with: {e}"),
        Some(Err(e)) => tracing::warn!("{name} server task failed: {e}"),
        None => tracing::warn!("{name} requests in flight did not finish within {grace:?}"),
    }
}
