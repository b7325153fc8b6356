//! Who may hold a connection to a listener, and for how long (real networks only: the
//! simulator has its own transport).
//!
//! The accept loop ([`accept`]) admits a connection only under its listener's limits,
//! total and per IP address; one over a limit is closed at once. An admitted connection
//! is a [`Connection`]: the TCP stream plus a watch on its traffic that closes it when
//! - it has not sent the HTTP/2 preface within the handshake timeout (a socket that
//!   sends nothing, or not HTTP/2), or
//! - no HEADERS or DATA frame went either way for the idle timeout (an open channel
//!   nobody uses; a subscription is not idle: its heartbeats are DATA).
//!
//! Frozen and vanished peers are hyper's part: HTTP/2 keepalive pings, configured by the
//! server builder. Together no kind of idle or half-open connection can pile up and
//! stop a node from serving others.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};

/// The client preface every HTTP/2 connection starts with (RFC 9113, 3.4).
const PREFACE_BYTES: usize = 24;

/// Connections accepted but not yet taken by the server.
const ACCEPTED_BACKLOG: usize = 64;

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The config name of `total_max`, for the refusal's log line.
    pub total_name: &'static str,
    pub total_max: usize,
    /// `None`: no per-address limit (the peer listener: peers are few and known).
    pub per_ip_max: Option<usize>,
    pub handshake_timeout: Duration,
    /// `None`: idle connections stay (the peer listener: an idle peer connection is a
    /// quiet partition).
    pub idle_timeout: Option<Duration>,
}

/// Open connections of one listener, in all and by remote IP.
#[derive(Debug, Default)]
struct Census {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// Holds one admitted connection's place in the census; gives it back on drop.
#[derive(Debug)]
struct Place {
    census: Arc<Mutex<Census>>,
    ip: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut census = self.census.lock().expect("census poisoned");
        census.total -= 1;
        if let Some(count) = census.by_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                census.by_ip.remove(&self.ip);
            }
        }
    }
}

/// Why a connection was not admitted, if it was not.
fn admit(
    census: &Arc<Mutex<Census>>,
    ip: IpAddr,
    limits: &ConnectionLimits,
) -> Result<Place, String> {
    let mut held = census.lock().expect("census poisoned");
    if held.total >= limits.total_max {
        return Err(format!(
            "{} connections are open ({})",
            held.total, limits.total_name
        ));
    }
    let from_ip = held.by_ip.get(&ip).copied().unwrap_or(0);
    if let Some(per_ip_max) = limits.per_ip_max {
        if from_ip >= per_ip_max {
            return Err(format!(
                "{from_ip} connections are open from {ip} (server.connections_per_ip_max)"
            ));
        }
    }
    held.total += 1;
    held.by_ip.insert(ip, from_ip + 1);
    Ok(Place {
        census: census.clone(),
        ip,
    })
}

/// Accepts connections on `listener` until `shutdown`, handing the admitted ones to the
/// returned channel (the server's incoming stream).
pub fn accept(
    listener: TcpListener,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) -> mpsc::Receiver<io::Result<Connection>> {
    let (tx, rx) = mpsc::channel(ACCEPTED_BACKLOG);
    let census = Arc::new(Mutex::new(Census::default()));
    crate::rt::spawn(async move {
        loop {
            let accepted = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, mostly: wait a little, keep serving.
                    crate::throttle::warn_every(
                        "accept failed",
                        format_args!("cannot accept a connection: {e}; raise the open-files limit"),
                    );
                    crate::rt::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match admit(&census, remote.ip(), &limits) {
                Ok(place) => {
                    let _ = stream.set_nodelay(true);
                    let connection = Connection::new(stream, place, &limits);
                    if tx.send(Ok(connection)).await.is_err() {
                        return;
                    }
                }
                Err(why) => crate::throttle::warn_every(
                    "connection refused",
                    format_args!("closed a connection from {remote} at once: {why}"),
                ),
            }
        }
    });
    rx
}

/// An admitted connection: the stream, its place in the census, and the watch on its
/// traffic (handshake and idle timeouts).
pub struct Connection {
    stream: TcpStream,
    _place: Place,
    watch: Activity,
}

impl Connection {
    fn new(stream: TcpStream, place: Place, limits: &ConnectionLimits) -> Self {
        Self {
            stream,
            _place: place,
            watch: Activity::new(limits.handshake_timeout, limits.idle_timeout),
        }
    }
}

impl tonic::transport::server::Connected for Connection {
    /// Nothing: no handler asks who is calling (the census and its logs know the remote).
    type ConnectInfo = ();

    fn connect_info(&self) {}
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.watch.read(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // Nothing to read: the moment to check the timeouts (hyper always keeps a
            // read pending, so this runs while the connection is quiet).
            Poll::Pending => match this.watch.poll_expired(cx) {
                Poll::Ready(why) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            this.watch.written(&buf[..n]);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The traffic of one connection as far as its timeouts care: whether the HTTP/2
/// preface has arrived, and when a request or response last moved (a HEADERS or DATA
/// frame in either direction; pings, settings and window updates do not count).
struct Activity {
    preface_left: usize,
    from_peer: FrameScanner,
    to_peer: FrameScanner,
    last_active: Instant,
    idle_timeout: Option<Duration>,
    timer: Pin<Box<Sleep>>,
}

impl Activity {
    fn new(handshake_timeout: Duration, idle_timeout: Option<Duration>) -> Self {
        let now = Instant::now();
        Self {
            preface_left: PREFACE_BYTES,
            from_peer: FrameScanner::default(),
            to_peer: FrameScanner::default(),
            last_active: now,
            idle_timeout,
            timer: Box::pin(tokio::time::sleep_until(now + handshake_timeout)),
        }
    }

    fn read(&mut self, mut bytes: &[u8]) {
        if self.preface_left > 0 {
            let preface = bytes.len().min(self.preface_left);
            self.preface_left -= preface;
            bytes = &bytes[preface..];
            if self.preface_left == 0 {
                self.last_active = Instant::now();
                if let Some(idle_timeout) = self.idle_timeout {
                    self.timer.as_mut().reset(self.last_active + idle_timeout);
                }
            }
        }
        if self.from_peer.scan(bytes) {
            self.last_active = Instant::now();
        }
    }

    fn written(&mut self, bytes: &[u8]) {
        if self.to_peer.scan(bytes) {
            self.last_active = Instant::now();
        }
    }

    /// Ready with the reason once a timeout has passed.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<String> {
        loop {
            if self.preface_left == 0 && self.idle_timeout.is_none() {
                return Poll::Pending;
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self.preface_left > 0 {
                return Poll::Ready("no HTTP/2 preface within the handshake timeout".into());
            }
            let idle_timeout = self.idle_timeout.expect("checked above");
            // The timer is set for the last activity it knew of; move it if there was more.
            let deadline = self.last_active + idle_timeout;
            if deadline <= Instant::now() {
                return Poll::Ready(format!("idle for {idle_timeout:?}"));
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

/// Follows the HTTP/2 frames in one direction of a connection (after the preface):
/// 9-byte headers (24-bit length, type, flags, stream id), then the payload.
#[derive(Debug, Default)]
struct FrameScanner {
    header: [u8; 9],
    header_filled: usize,
    payload_left: usize,
}

/// Frame types that carry a request or a response: DATA and HEADERS.
fn carries_traffic(frame_type: u8) -> bool {
    matches!(frame_type, 0x0 | 0x1)
}

impl FrameScanner {
    /// Consumes `bytes`; true if a DATA or HEADERS frame began in them.
    fn scan(&mut self, mut bytes: &[u8]) -> bool {
        let mut traffic = false;
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let skip = bytes.len().min(self.payload_left);
                self.payload_left -= skip;
                bytes = &bytes[skip..];
                continue;
            }
            let take = bytes.len().min(9 - self.header_filled);
            self.header[self.header_filled..self.header_filled + take]
                .copy_from_slice(&bytes[..take]);
            self.header_filled += take;
            bytes = &bytes[take..];
            if self.header_filled == 9 {
                let length =
                    u32::from_be_bytes([0, self.header[0], self.header[1], self.header[2]]);
                self.payload_left = length as usize;
                traffic |= carries_traffic(self.header[3]);
                self.header_filled = 0;
            }
        }
        traffic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(frame_type: u8, payload: usize) -> Vec<u8> {
        let len = (payload as u32).to_be_bytes();
        let mut bytes = vec![len[1], len[2], len[3], frame_type, 0, 0, 0, 0, 1];
        bytes.extend(std::iter::repeat_n(0u8, payload));
        bytes
    }

    #[test]
    fn the_scanner_sees_traffic_in_data_and_headers_only_across_any_split() {
        // Goal: pings and settings keep no connection alive, requests do, however the
        // bytes are split into reads. Method: a PING then a DATA frame, fed byte by byte.
        let mut stream = frame(0x6, 8);
        stream.extend(frame(0x4, 12));
        let quiet = stream.len();
        stream.extend(frame(0x0, 100));
        let mut scanner = FrameScanner::default();
        let seen: Vec<bool> = stream.iter().map(|b| scanner.scan(&[*b])).collect();
        assert!(
            !seen[..quiet].iter().any(|t| *t),
            "PING and SETTINGS are not traffic"
        );
        assert!(seen[quiet..].iter().any(|t| *t), "DATA is traffic");
        let mut whole = FrameScanner::default();
        assert!(whole.scan(&stream));
        assert_eq!((whole.header_filled, whole.payload_left), (0, 0));
    }

    #[test]
    fn limits_admit_up_to_the_total_and_per_ip_and_free_on_drop() {
        let limits = ConnectionLimits {
            total_name: "server.connections_max",
            total_max: 3,
            per_ip_max: Some(2),
            handshake_timeout: Duration::from_secs(1),
            idle_timeout: Some(Duration::from_secs(1)),
        };
        let census = Arc::new(Mutex::new(Census::default()));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = admit(&census, a, &limits).unwrap();
        let _second = admit(&census, a, &limits).unwrap();
        let refused = admit(&census, a, &limits).unwrap_err();
        assert!(
            refused.contains("server.connections_per_ip_max"),
            "{refused}"
        );
        let _third = admit(&census, b, &limits).unwrap();
        let refused = admit(&census, b, &limits).unwrap_err();
        assert!(refused.contains("server.connections_max"), "{refused}");
        drop(first);
        assert!(
            admit(&census, a, &limits).is_ok(),
            "a closed connection frees its place"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_expires_at_the_handshake_and_a_quiet_one_when_idle() {
        let mut silent = Activity::new(Duration::from_secs(5), Some(Duration::from_secs(60)));
        tokio::time::advance(Duration::from_secs(6)).await;
        let expired = std::future::poll_fn(|cx| silent.poll_expired(cx)).await;
        assert!(expired.contains("preface"), "{expired}");

        let mut quiet = Activity::new(Duration::from_secs(5), Some(Duration::from_secs(60)));
        quiet.read(&[0u8; PREFACE_BYTES]);
        tokio::time::advance(Duration::from_secs(30)).await;
        quiet.written(&frame(0x0, 10));
        tokio::time::advance(Duration::from_secs(40)).await;
        let pending = std::future::poll_fn(|cx| Poll::Ready(quiet.poll_expired(cx))).await;
        assert!(pending.is_pending(), "active 40 s ago: not idle yet");
        tokio::time::advance(Duration::from_secs(21)).await;
        let expired = std::future::poll_fn(|cx| quiet.poll_expired(cx)).await;
        assert!(expired.contains("idle"), "{expired}");
    }
}
