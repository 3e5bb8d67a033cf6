//! The HTTP listener: accepts connections under the per-peer cap and serves
//! each with hyper (HTTP/1.1 with upgrades, or HTTP/2), closing it when it
//! is too slow to send a request head or idle too long between requests.
//!
//! hyper's own header-read timer restarts whenever a keep-alive connection
//! goes idle, so it cannot tell "slow head" from "idle between requests".
//! Here each connection has an [`Activity`] instead: the service marks
//! requests in flight, and the socket ([`Watched`]) notes the first byte read
//! while none is. A watchdog closes the connection at the deadline that
//! follows ([`Activity::deadline`]).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tower::ServiceExt;

use super::{ConnectionLimits, Connections, Permit};

/// What a connection over the per-peer cap is told before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nretry-after: 5\r\nconnection: close\r\n\r\n\
{\"error\":{\"code\":\"too_many_connections\",\"message\":\"too many connections from this address\"}}";

/// What one connection is doing, for its watchdog.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    /// Requests whose response is not yet fully sent.
    in_flight: AtomicU32,
    /// When the last request finished (ms since `epoch`).
    idle_since: AtomicU64,
    /// 1 + when the first byte of a request head arrived while no request
    /// was in flight (ms since `epoch`); 0: none yet.
    head_since: AtomicU64,
    /// Wakes the watchdog when the deadline may have moved.
    changed: Notify,
}

/// Why a watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// The request head did not arrive in time.
    Header,
    /// No next request in time.
    Idle,
}

impl Activity {
    /// A connection that just opened: it owes a request head from now.
    pub fn new(now: Instant) -> Self {
        Activity {
            epoch: now,
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(1),
            changed: Notify::new(),
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Bytes arrived at `now`.
    pub fn read(&self, now: Instant) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Acquire) == 0
            && self
                .head_since
                .compare_exchange(
                    0,
                    self.ms(now).saturating_add(1),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// A request's head was read: it is in flight until its response is sent.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
        InFlight(self.clone())
    }

    /// When the connection is to be closed, and why; `None` while a request
    /// is in flight (or the limit that would apply is off).
    pub fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Expired)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let at = |ms: u64, limit: Duration| {
            self.epoch
                .checked_add(Duration::from_millis(ms))
                .and_then(|t| t.checked_add(limit))
        };
        match self.head_since.load(Ordering::Acquire) {
            0 => limits.idle_timeout.and_then(|limit| {
                at(self.idle_since.load(Ordering::Acquire), limit).map(|t| (t, Expired::Idle))
            }),
            head => limits
                .header_timeout
                .and_then(|limit| at(head - 1, limit).map(|t| (t, Expired::Header))),
        }
    }

    /// Completes when the connection is past its deadline.
    pub async fn expired(&self, limits: &ConnectionLimits) -> Expired {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.deadline(limits) {
                None => changed.await,
                Some((at, why)) => {
                    if Instant::now() >= at {
                        return why;
                    }
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// A request in flight; dropped when its response has been sent (or the
/// request was abandoned).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.idle_since.store(a.ms(Instant::now()), Ordering::Release);
            a.changed.notify_one();
        }
    }
}

/// A response body that keeps its request in flight until it is sent.
struct Tracked {
    body: axum::body::Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's TCP stream, noting reads in its [`Activity`].
#[derive(Debug)]
pub struct Watched {
    tcp: TcpStream,
    activity: Arc<Activity>,
}

impl Watched {
    /// The TCP stream (after an upgrade, for a handler that writes to it
    /// directly).
    pub fn into_tcp(self) -> TcpStream {
        self.tcp
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read(Instant::now());
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// Accepts connections on `listener` and serves `router` on them until
/// `shutdown` completes; then stops accepting, lets every connection finish
/// its requests in flight, and returns. (Upgraded WebSockets are on their
/// own by then and are not waited for.)
pub async fn serve(
    listener: TcpListener,
    router: Router,
    connections: Arc<Connections>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Told to every connection at shutdown.
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each connection holds a receiver: all gone means all finished.
    let (open_tx, open_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(permit) = connections.admit_http(peer.ip()) else {
            tracing::debug!(%peer, "too many connections from this address: refused");
            // Best effort, never waiting (one non-blocking write into an empty
            // send buffer): the socket is closed either way.
            if let Ok(mut tcp) = tcp.into_std() {
                let _ = std::io::Write::write(&mut tcp, REFUSAL);
            }
            continue;
        };
        // No Nagle delay: responses are written whole, and the events socket
        // writes the frames waiting for a client together, so a small frame
        // sent right after another must not wait for the first one's ACK.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        tokio::spawn(connection(
            tcp,
            peer,
            router.clone(),
            connections.limits,
            permit,
            stop_rx.clone(),
            open_rx.clone(),
        ));
    }
    drop(listener);
    drop(open_rx);
    let _ = stop_tx.send(true);
    open_tx.closed().await;
    Ok(())
}

/// An `accept` failure: a connection that went away before it was taken is
/// nothing; anything else (such as running out of file descriptors) is
/// logged and waited out, as the listener cannot do better.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections; retrying in 1 s");
    metrics::counter!("onair_accept_errors_total").increment(1);
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one connection until it ends, is past its deadline, or shutdown
/// has let its requests finish.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    _permit: Permit,
    mut stop: watch::Receiver<bool>,
    _open: watch::Receiver<()>,
) {
    let activity = Arc::new(Activity::new(Instant::now()));
    let io = TokioIo::new(Watched {
        tcp,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let in_flight = activity.request();
            // The peer address (login throttling, analytics, socket caps).
            req.extensions_mut().insert(ConnectInfo(peer));
            let call = router.clone().oneshot(req);
            async move {
                let res = match call.await {
                    Ok(res) => res,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(res.map(|body| Tracked {
                    body,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The watchdog below keeps time; hyper's own timer is off.
    builder.http1().header_read_timeout(None);
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let expired = activity.expired(&limits);
    tokio::pin!(expired);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            why = &mut expired => {
                let reason = match why {
                    Expired::Header => "header_timeout",
                    Expired::Idle => "idle",
                };
                tracing::debug!(%peer, reason, "connection closed");
                metrics::counter!("onair_http_connections_closed_total", "reason" => reason)
                    .increment(1);
                // Dropping the connection closes the socket.
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                // Shutdown (or the listener is gone): finish what is in flight.
                let _ = changed;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(header: u64, idle: u64) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Some(Duration::from_secs(header)),
            idle_timeout: Some(Duration::from_secs(idle)),
            ..ConnectionLimits::default()
        }
    }

    #[test]
    fn the_deadline_follows_the_connection_through_its_requests() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let l = limits(10, 60);
        let a = Arc::new(Activity::new(t0));
        // A new connection owes its first head within the header timeout,
        // however many bytes trickle in.
        assert_eq!(a.deadline(&l), Some((t0 + s(10), Expired::Header)));
        a.read(t0 + s(5));
        assert_eq!(a.deadline(&l), Some((t0 + s(10), Expired::Header)));
        // A request in flight has no deadline, however long it takes.
        let req = a.request();
        assert_eq!(a.deadline(&l), None);
        a.read(t0 + s(20));
        assert_eq!(a.deadline(&l), None, "body bytes while in flight");
        drop(req);
        // Idle: the keep-alive timeout from the end of the response.
        let (at, why) = a.deadline(&l).expect("idle deadline");
        assert_eq!(why, Expired::Idle);
        assert!(at >= t0 + s(60), "from when the response was sent");
        // The next head's first byte starts the header timeout.
        let first_byte = Instant::now() + s(30);
        a.read(first_byte);
        let (at, why) = a.deadline(&l).expect("head deadline");
        assert_eq!(why, Expired::Header);
        assert!(at <= first_byte + s(10) && at + s(1) > first_byte + s(10));
        a.read(first_byte + s(5));
        assert_eq!(
            a.deadline(&l).map(|d| d.0),
            Some(at),
            "more bytes do not extend it"
        );
        // Two requests in flight (HTTP/2): idle only after both.
        let (r1, r2) = (a.request(), a.request());
        drop(r1);
        assert_eq!(a.deadline(&l), None);
        drop(r2);
        assert_eq!(a.deadline(&l).map(|d| d.1), Some(Expired::Idle));
    }

    #[test]
    fn limits_that_are_off_set_no_deadline() {
        let t0 = Instant::now();
        let off = ConnectionLimits {
            header_timeout: None,
            idle_timeout: None,
            ..ConnectionLimits::default()
        };
        let a = Arc::new(Activity::new(t0));
        assert_eq!(a.deadline(&off), None);
        drop(a.request());
        assert_eq!(a.deadline(&off), None);
    }

    #[tokio::test]
    async fn the_watchdog_fires_at_the_deadline_and_waits_for_requests() {
        let l = ConnectionLimits {
            header_timeout: Some(Duration::from_millis(20)),
            idle_timeout: Some(Duration::from_millis(20)),
            ..ConnectionLimits::default()
        };
        let a = Arc::new(Activity::new(Instant::now()));
        let req = a.request();
        let dog = {
            let a = a.clone();
            tokio::spawn(async move { a.expired(&l).await })
        };
        // In flight for ten times the limits: nothing fires.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!dog.is_finished());
        drop(req);
        assert_eq!(dog.await.expect("watchdog"), Expired::Idle);
    }
}
