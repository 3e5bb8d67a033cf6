//! One events connection's outgoing bytes.
//!
//! A room's fan-out thread ([`super::fanout`]) hands every frame to each
//! connection's [`Outbox`], which writes it straight into the socket with a
//! non-blocking `write` when nothing is queued before it: the common case,
//! and the whole cost of a delivery (no task wakes, no copy, no framing per
//! client). What the socket does not take at once is queued, and the
//! connection's own task, woken once, writes the rest when the socket is
//! writable again, under the send timeout.
//!
//! Order: everything for one connection goes through its outbox (room
//! frames, the connection's own events, tungstenite's pongs), and bytes are
//! written strictly in the order they were queued, whole frames at a time,
//! so frames never interleave.
//!
//! A connection that falls more than `limit` room frames behind is *lagged*:
//! its queued room frames are dropped (a partly written one is finished) and
//! later ones skipped until its task has sent it a resync
//! ([`Outbox::resume`]).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;

/// Queued frames written in one system call at most.
const MAX_IOV: usize = 64;

/// A frame waiting for the socket.
#[derive(Debug)]
struct Item {
    bytes: Bytes,
    /// A room frame (counts toward the lag limit), not the connection's own.
    room: bool,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Item>,
    /// Bytes of the front item already written.
    offset: usize,
    /// Room frames in `queue`.
    room_frames: usize,
    /// Not open yet: room frames queue until the welcome is out.
    held: bool,
    /// Room frames skipped since the connection lagged; 0 when it has not.
    skipped: u64,
    /// A resync has been asked for and not yet queued.
    resyncing: bool,
    /// A rules change went out since the task last looked.
    settings: bool,
    /// The socket failed a write; nothing more is written.
    broken: bool,
    /// The connection is ending; room frames are no longer taken.
    closed: bool,
}

impl State {
    /// Queues a frame of which `offset` bytes are already written (only
    /// ever the front one).
    fn push(&mut self, bytes: Bytes, offset: usize, room: bool) {
        if self.queue.is_empty() {
            self.offset = offset;
        }
        if room {
            self.room_frames += 1;
        }
        self.queue.push_back(Item { bytes, room });
    }
}

/// What a [`Outbox::flush`] found besides the bytes it wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Signals {
    /// The connection fell behind and skipped this many room frames; it
    /// needs a resync.
    pub lagged: Option<u64>,
    /// A rules change went out: the connection checks its moderator status.
    pub settings: bool,
}

/// Why a flush failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushError {
    /// The socket took nothing for the whole timeout.
    TooSlow,
    /// The socket is gone.
    Gone,
}

/// One connection's outgoing side; shared by its task and the fan-out.
#[derive(Debug)]
pub struct Outbox {
    write: OwnedWriteHalf,
    state: Mutex<State>,
    notify: Notify,
    /// Room frames that may wait before the connection is lagged.
    limit: usize,
}

impl Outbox {
    /// An outbox for `write`, held until [`Outbox::open`].
    pub fn new(write: OwnedWriteHalf, limit: usize) -> Outbox {
        Outbox {
            write,
            state: Mutex::new(State {
                held: true,
                ..State::default()
            }),
            notify: Notify::new(),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes queued frames until the socket would block. `Ok(true)` when
    /// the queue is empty.
    fn pump(&self, s: &mut State) -> io::Result<bool> {
        while !s.queue.is_empty() {
            let written = if s.queue.len() == 1 {
                self.write.try_write(&s.queue[0].bytes[s.offset..])
            } else {
                let mut iov: [IoSlice<'_>; MAX_IOV] = [IoSlice::new(&[]); MAX_IOV];
                let n = s.queue.len().min(MAX_IOV);
                for (k, item) in s.queue.iter().take(n).enumerate() {
                    iov[k] = IoSlice::new(if k == 0 {
                        &item.bytes[s.offset..]
                    } else {
                        &item.bytes
                    });
                }
                self.write.try_write_vectored(&iov[..n])
            };
            let mut n = match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            };
            while n > 0 {
                let left = s.queue[0].bytes.len() - s.offset;
                if n < left {
                    s.offset += n;
                    break;
                }
                n -= left;
                s.offset = 0;
                if s.queue.pop_front().is_some_and(|i| i.room) {
                    s.room_frames -= 1;
                }
            }
        }
        Ok(true)
    }

    /// Writes `bytes` at once if nothing waits before it, and queues what
    /// the socket did not take (only then is the frame's handle cloned: the
    /// common case touches no shared reference count). Returns whether the
    /// task must be woken to finish the job.
    fn enqueue(&self, s: &mut State, bytes: &Bytes, room: bool) -> bool {
        if !s.queue.is_empty() || s.held {
            // Held until the welcome, or the task was woken when the queue
            // filled and is writing it.
            s.push(bytes.clone(), 0, room);
            return false;
        }
        let offset = match self.write.try_write(bytes) {
            Ok(n) if n == bytes.len() => return false,
            Ok(0) => {
                s.broken = true;
                return true;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => {
                s.broken = true;
                return true;
            }
        };
        s.push(bytes.clone(), offset, room);
        metrics::counter!("onair_events_frames_queued_total").increment(1);
        true
    }

    /// A room frame (the fan-out's call): written now if the socket takes
    /// it, queued if not, skipped while the connection is lagged or closing.
    pub fn offer(&self, bytes: &Bytes, settings: bool) {
        let wake = {
            let mut s = self.lock();
            if s.closed || s.broken {
                return;
            }
            if s.skipped > 0 {
                s.skipped += 1;
                return;
            }
            let mut wake = false;
            if settings {
                s.settings = true;
                wake = true;
            }
            if s.room_frames >= self.limit {
                // Lagged: drop the room frames not yet started.
                let offset = s.offset;
                let mut k = 0;
                let mut dropped = 0u64;
                s.queue.retain(|i| {
                    let keep = !i.room || (k == 0 && offset > 0);
                    k += 1;
                    if !keep {
                        dropped += 1;
                    }
                    keep
                });
                s.room_frames = s.queue.iter().filter(|i| i.room).count();
                s.skipped = dropped + 1;
                true
            } else {
                let woken = self.enqueue(&mut s, bytes, true);
                wake || woken
            }
        };
        if wake {
            self.notify.notify_one();
        }
    }

    /// One of the connection's own frames (its events, pings, tungstenite's
    /// replies), after everything queued before it.
    pub fn push(&self, bytes: Bytes) {
        let wake = {
            let mut s = self.lock();
            if s.broken {
                return;
            }
            self.enqueue(&mut s, &bytes, false)
        };
        if wake {
            self.notify.notify_one();
        }
    }

    /// Opens a held outbox: `first` (the welcome, a replay) goes before the
    /// room frames that queued meanwhile.
    pub fn open(&self, first: Vec<Bytes>) {
        let wake = {
            let mut s = self.lock();
            s.held = false;
            for bytes in first.into_iter().rev() {
                s.queue.push_front(Item { bytes, room: false });
            }
            !s.queue.is_empty()
        };
        if wake {
            self.notify.notify_one();
        }
    }

    /// Marks a resync as asked for, so that the lag is reported once.
    pub fn resyncing(&self) {
        self.lock().resyncing = true;
    }

    /// Ends a lag (the fan-out's call, in the room's frame order): `frames`
    /// (the resync and what followed it) go out, and room frames are taken
    /// again from the next one.
    pub fn resume(&self, frames: &[Bytes]) {
        let wake = {
            let mut s = self.lock();
            s.skipped = 0;
            s.resyncing = false;
            let mut wake = false;
            for bytes in frames {
                wake |= self.enqueue(&mut s, bytes, false);
            }
            wake
        };
        if wake {
            self.notify.notify_one();
        }
    }

    /// Takes no more room frames (the connection is ending).
    pub fn close(&self) {
        self.lock().closed = true;
    }

    /// Waits until the fan-out has something for the task: bytes the socket
    /// did not take at once, a lag, a rules change or a broken socket.
    pub async fn wanted(&self) {
        self.notify.notified().await
    }

    /// Writes everything queued, waiting for the socket up to `timeout` each
    /// time it takes nothing.
    pub async fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        loop {
            {
                let mut s = self.lock();
                if s.broken {
                    return Err(FlushError::Gone);
                }
                match self.pump(&mut s) {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    Err(_) => {
                        s.broken = true;
                        return Err(FlushError::Gone);
                    }
                }
            }
            match tokio::time::timeout(timeout, self.write.writable()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(FlushError::Gone),
                Err(_) => return Err(FlushError::TooSlow),
            }
        }
    }

    /// A lag not yet handled, and whether a rules change went out since the
    /// last call.
    pub fn signals(&self) -> Signals {
        let mut s = self.lock();
        Signals {
            lagged: (s.skipped > 0 && !s.resyncing).then_some(s.skipped),
            settings: std::mem::take(&mut s.settings),
        }
    }
}

/// The connection's socket as tungstenite sees it: reads from the TCP
/// stream (after any bytes the HTTP layer had already read), writes through
/// the outbox, so that its automatic pongs and close replies keep their
/// place among the room's frames. A write is queued whole and never splits.
pub struct SocketIo {
    prefix: Bytes,
    read: OwnedReadHalf,
    outbox: std::sync::Arc<Outbox>,
}

impl SocketIo {
    /// `prefix`: bytes read from the socket before the upgrade finished.
    pub fn new(prefix: Bytes, read: OwnedReadHalf, outbox: std::sync::Arc<Outbox>) -> SocketIo {
        SocketIo {
            prefix,
            read,
            outbox,
        }
    }
}

impl AsyncRead for SocketIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for SocketIo {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.outbox.lock().broken {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        self.outbox.push(Bytes::copy_from_slice(buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The outbox writes at once or its task finishes the job.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// An outbox on a real loopback socket, and the client's end of it.
    async fn pair(limit: usize) -> (Arc<Outbox>, OwnedReadHalf, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (read, write) = server.into_split();
        (Arc::new(Outbox::new(write, limit)), read, client)
    }

    async fn read_exact(client: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        client.read_exact(&mut buf).await.unwrap();
        buf
    }

    #[tokio::test]
    async fn held_frames_follow_the_welcome_and_later_ones_go_straight_out() {
        let (out, _read, mut client) = pair(16).await;
        out.offer(&Bytes::from_static(b"[room 1]"), false);
        out.open(vec![Bytes::from_static(b"[welcome]")]);
        assert_eq!(out.flush(Duration::from_secs(5)).await, Ok(()));
        assert_eq!(out.signals(), Signals::default());
        out.offer(&Bytes::from_static(b"[room 2]"), false);
        out.push(Bytes::from_static(b"[own]"));
        let got = read_exact(&mut client, 30).await;
        assert_eq!(&got[..], b"[welcome][room 1][room 2][own]");
        assert!(out.lock().queue.is_empty(), "written without the task");
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_lags_and_resumes_in_order() {
        const M: usize = 1 << 20;
        let (out, _read, mut client) = pair(8).await;
        out.open(Vec::new());
        // 1 MiB frames fill the socket buffers quickly.
        let big = Bytes::from(vec![b'x'; M]);
        let mut offered = 0;
        while out.lock().skipped == 0 {
            out.offer(&big, false);
            offered += 1;
            assert!(offered < 1000, "never lagged");
        }
        assert!(
            out.lock().room_frames <= 1,
            "only a partly written frame stays"
        );
        let skipped = out.lock().skipped;
        out.offer(&big, false);
        assert_eq!(out.lock().skipped, skipped + 1, "later frames are skipped");
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all
        });
        // The task hears of the lag once.
        out.flush(Duration::from_secs(10)).await.unwrap();
        assert_eq!(out.signals().lagged, Some(skipped + 1));
        out.resyncing();
        assert_eq!(out.signals().lagged, None);
        out.offer(&big, false);
        out.resume(&[Bytes::from_static(b"[resync]")]);
        out.offer(&Bytes::from_static(b"[next]"), false);
        out.flush(Duration::from_secs(10)).await.unwrap();
        drop(out);
        let all = reader.await.unwrap();
        // Whole frames (a partly written one was finished), the resync, and
        // the frames after it: none cut in the middle.
        assert!(
            all.ends_with(b"[resync][next]"),
            "{:?}",
            &all[all.len().saturating_sub(20)..]
        );
        assert_eq!((all.len() - 14) % M, 0);
        assert!(all[..all.len() - 14].iter().all(|b| *b == b'x'));
    }

    #[tokio::test]
    async fn a_socket_that_takes_nothing_times_out() {
        let (out, _read, _client) = pair(1 << 20).await;
        out.open(Vec::new());
        let big = Bytes::from(vec![b'x'; 1 << 20]);
        for _ in 0..64 {
            out.offer(&big, false);
        }
        assert_eq!(
            out.flush(Duration::from_millis(200)).await,
            Err(FlushError::TooSlow)
        );
    }

    #[tokio::test]
    async fn a_closed_peer_breaks_the_outbox() {
        let (out, _read, client) = pair(16).await;
        out.open(Vec::new());
        drop(client);
        let mut result = Ok(());
        for _ in 0..100 {
            out.offer(&Bytes::from(vec![b'x'; 1 << 16]), false);
            result = out.flush(Duration::from_secs(1)).await;
            if result.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(result, Err(FlushError::Gone));
        let queued = out.lock().queue.len();
        out.offer(&Bytes::from_static(b"x"), false);
        assert_eq!(
            out.lock().queue.len(),
            queued,
            "a broken outbox takes nothing"
        );
    }
}
