//! The node's two gRPC servers, on two listeners:
//! - the **client listener** (`listen`): `evlog.v1` EventLog and Admin, nothing else;
//! - the **peer listener** (`peer_listen`): `raft.v1` RaftTransport, nothing else. A
//!   client that reaches it finds no client API there, and every Raft message is checked
//!   for this cluster and this node before it is served (see `raft::transport`).
//!
//! Each server stops accepting when the node's shutdown signal turns true and lets the
//! requests in flight finish; [`stop`] waits for that, up to the grace period.

#[cfg(not(madsim))]
pub mod connections;
#[cfg(not(madsim))]
mod wire_status;

use std::net::SocketAddr;
use std::time::Duration;

use evlog_proto::evlog::v1::admin_server::AdminServer;
use evlog_proto::evlog::v1::event_log_server::EventLogServer;
use evlog_proto::evlog::v1::groups_server::GroupsServer;
use evlog_proto::raft::v1::raft_transport_server::RaftTransportServer;
use tokio::sync::watch;

use crate::api::admin::AdminService;
use crate::api::event_log::EventLogService;
use crate::api::groups::GroupsService;
use crate::api::ApiContext;
use crate::config::ServerConfig;
use crate::raft::transport::TransportService;
use crate::NodeError;

/// A running server: ends when it has stopped after the shutdown signal.
pub type ServerHandle = tokio::task::JoinHandle<Result<(), tonic::transport::Error>>;

/// Room for a produce request's framing besides its events' accounted bytes.
const REQUEST_FRAMING_BYTES: usize = 1 << 20;

/// A listener's socket, bound at start-up so that a port in use fails the start, with a
/// clear error, and nobody can take it between the check and the serving.
pub struct Bound {
    /// Read by the simulated server, which binds when it serves.
    #[cfg_attr(not(madsim), allow(dead_code))]
    addr: SocketAddr,
    #[cfg(not(madsim))]
    socket: std::net::TcpListener,
}

/// Binds `listen` (an `IP:PORT` that config validation checked).
pub fn bind(listen: &str) -> Result<Bound, NodeError> {
    let addr: SocketAddr = listen.parse().map_err(|e| NodeError::Listen {
        addr: listen.to_owned(),
        message: format!("{e}"),
    })?;
    #[cfg(not(madsim))]
    {
        let listen_error = |e: std::io::Error| NodeError::Listen {
            addr: addr.to_string(),
            message: e.to_string(),
        };
        let socket = std::net::TcpListener::bind(addr).map_err(listen_error)?;
        socket.set_nonblocking(true).map_err(listen_error)?;
        Ok(Bound { addr, socket })
    }
    #[cfg(madsim)]
    Ok(Bound { addr })
}

/// The HTTP/2 and connection settings both servers share.
fn builder(config: &ServerConfig) -> tonic::transport::Server {
    let ms = Duration::from_millis;
    let window = |bytes: u64| u32::try_from(bytes).unwrap_or(u32::MAX);
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(ms(config.http2_keepalive_interval_ms)))
        .http2_keepalive_timeout(Some(ms(config.http2_keepalive_timeout_ms)))
        .max_concurrent_streams(window(config.http2_streams_per_connection_max))
        .initial_stream_window_size(window(config.http2_stream_window_bytes))
        .initial_connection_window_size(window(config.http2_connection_window_bytes))
        .http2_max_header_list_size(HEADER_LIST_BYTES_MAX)
        .tcp_nodelay(true)
}

/// Largest admin request: a topic name and its config.
const ADMIN_MESSAGE_BYTES_MAX: usize = 64 << 10;

/// Largest group request: a heartbeat listing its owned partitions, a commit of many
/// partitions with their metadata.
const GROUPS_MESSAGE_BYTES_MAX: usize = 4 << 20;

/// Largest header block of a request: gRPC requests carry a handful of short headers.
const HEADER_LIST_BYTES_MAX: u32 = 16 << 10;

/// Serves the client API on `bound` until `shutdown` turns true.
pub fn serve_clients(
    bound: Bound,
    api: ApiContext,
    config: &ServerConfig,
    shutdown: watch::Receiver<bool>,
) -> ServerHandle {
    let message_max = api.limits.request_bytes_max + REQUEST_FRAMING_BYTES;
    let event_log = EventLogServer::new(EventLogService::new(api.clone()))
        .max_decoding_message_size(message_max)
        .max_encoding_message_size(message_max);
    // Answers (a topic list, a description) are not limited: they grow with the cluster.
    let admin = AdminServer::new(AdminService::new(api.clone()))
        .max_decoding_message_size(ADMIN_MESSAGE_BYTES_MAX);
    let groups = GroupsServer::new(GroupsService::new(api))
        .max_decoding_message_size(GROUPS_MESSAGE_BYTES_MAX);
    #[cfg(not(madsim))]
    let (event_log, admin, groups) = (
        wire_status::WireStatus::new(
            event_log,
            format!(
                "produce.request_bytes_max + {} KiB of framing",
                REQUEST_FRAMING_BYTES >> 10
            ),
        ),
        wire_status::WireStatus::new(
            admin,
            format!(
                "admin requests are at most {} KiB",
                ADMIN_MESSAGE_BYTES_MAX >> 10
            ),
        ),
        wire_status::WireStatus::new(
            groups,
            format!(
                "group requests are at most {} MiB",
                GROUPS_MESSAGE_BYTES_MAX >> 20
            ),
        ),
    );
    let router = builder(config)
        .add_service(event_log)
        .add_service(admin)
        .add_service(groups);
    #[cfg(not(madsim))]
    let limits = connections::ConnectionLimits {
        total_name: "server.connections_max",
        total_max: config.connections_max as usize,
        per_ip_max: Some(config.connections_per_ip_max as usize),
        handshake_timeout: Duration::from_millis(config.connection_handshake_timeout_ms),
        idle_timeout: Some(Duration::from_millis(config.connection_idle_timeout_ms)),
    };
    #[cfg(madsim)]
    let limits = ();
    spawn_router(router, bound, limits, shutdown)
}

/// Serves the Raft transport on `bound` until `shutdown` turns true.
pub fn serve_peers(
    bound: Bound,
    transport: TransportService,
    message_max: usize,
    config: &ServerConfig,
    shutdown: watch::Receiver<bool>,
) -> ServerHandle {
    let transport = RaftTransportServer::new(transport)
        .max_decoding_message_size(message_max)
        .max_encoding_message_size(message_max);
    let router = builder(config).add_service(transport);
    #[cfg(not(madsim))]
    let limits = connections::ConnectionLimits {
        total_name: "server.peer_connections_max",
        total_max: config.peer_connections_max as usize,
        per_ip_max: None,
        handshake_timeout: Duration::from_millis(config.connection_handshake_timeout_ms),
        // Peers keep their channels: an idle peer connection is a quiet partition.
        idle_timeout: None,
    };
    #[cfg(madsim)]
    let limits = ();
    spawn_router(router, bound, limits, shutdown)
}

#[cfg(not(madsim))]
fn spawn_router(
    router: tonic::transport::server::Router,
    bound: Bound,
    limits: connections::ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) -> ServerHandle {
    crate::rt::spawn(async move {
        let listener = tokio::net::TcpListener::from_std(bound.socket)
            .expect("a bound non-blocking socket converts to tokio's listener");
        let accepted = connections::accept(listener, limits, shutdown.clone());
        let incoming = tokio_stream::wrappers::ReceiverStream::new(accepted);
        router
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await
    })
}

#[cfg(madsim)]
fn spawn_router(
    router: tonic::transport::server::Router,
    bound: Bound,
    _limits: (),
    mut shutdown: watch::Receiver<bool>,
) -> ServerHandle {
    crate::rt::spawn(async move {
        router
            .serve_with_shutdown(bound.addr, async move {
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
