//! A lean WebSocket client for the events load generator: RFC 6455 over a
//! plain TCP stream, with no per-frame allocation and no wrapper layers, so
//! that 10,000 of them cost the shared cores as little as a client can (the
//! server is what is measured). It does what a client must: the upgrade
//! handshake (checking `Sec-WebSocket-Accept`), masked client frames,
//! answering pings, and reading every frame the server sends from its own
//! socket. It does not reassemble fragmented messages (the events socket
//! never sends them) and refuses them instead.
//!
//! Clients connect with tokio ([`LeanWs::connect`]); then [`read_all`] reads
//! all of one shard's sockets from one thread with `epoll` (mio), a batch of
//! ready sockets per wait.

use std::io::{self, Read, Write};
use std::ops::Range;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 4096;
/// The reader thread's one read buffer.
const SCRATCH: usize = 64 * 1024;
/// The reader's pause when no socket is ready.
const POLL_NAP: Duration = Duration::from_millis(1);

pub const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Bytes read from a socket and not yet parsed into frames.
#[derive(Default)]
pub struct FrameBuf {
    buf: Vec<u8>,
    start: usize,
}

impl FrameBuf {
    /// The next whole frame in the buffer: its opcode and where its payload
    /// is, or `None` if more bytes are needed.
    fn next_frame(&mut self) -> io::Result<Option<(u8, Range<usize>)>> {
        let b = &self.buf[self.start..];
        if b.len() < 2 {
            return Ok(None);
        }
        if b[0] & 0x80 == 0 {
            return Err(bad("a fragmented frame (the events socket sends none)"));
        }
        if b[1] & 0x80 != 0 {
            return Err(bad("a masked frame from the server"));
        }
        let (head, len) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (4, usize::from(u16::from_be_bytes([b[2], b[3]]))),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                let n = usize::try_from(u64::from_be_bytes(n)).map_err(|_| bad("huge frame"))?;
                (10, n)
            }
            126 | 127 => return Ok(None),
            n => (2, usize::from(n)),
        };
        if b.len() < head + len {
            return Ok(None);
        }
        let at = self.start + head;
        self.start = at + len;
        Ok(Some((b[0] & 0x0f, at..at + len)))
    }

    fn payload(&self, r: Range<usize>) -> &[u8] {
        &self.buf[r]
    }

    /// Drops the parsed bytes.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Appends bytes read elsewhere, dropping the parsed ones first.
    fn push(&mut self, read: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(read);
    }

    /// Room for the next read: drops the parsed bytes first.
    fn spare(&mut self) -> &mut Vec<u8> {
        self.compact();
        self.buf.reserve(READ_CHUNK);
        &mut self.buf
    }
}

/// A masked client frame.
fn client_frame(mask: [u8; 4], opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// A connected, upgraded events socket (tokio), for the handshake phase.
pub struct LeanWs {
    stream: TcpStream,
    frames: FrameBuf,
    mask: [u8; 4],
}

impl LeanWs {
    /// Connects to `ws://{addr}{path}` with `Origin: http://{addr}`.
    pub async fn connect(addr: &str, path: &str, n: usize) -> io::Result<LeanWs> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        // A fixed but per-client key and mask are enough for a load test.
        let key = base64_16(n);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: {key}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut buf = Vec::with_capacity(READ_CHUNK);
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 16 * 1024 {
                return Err(bad("response headers too long"));
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(bad("closed during the handshake"));
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 101") {
            let status = head.lines().next().unwrap_or("").to_string();
            return Err(bad(format!("upgrade refused: {status}")));
        }
        let accept = derive_accept_key(key.as_bytes()).to_ascii_lowercase();
        if !head.contains(&format!("sec-websocket-accept: {accept}")) {
            return Err(bad("wrong Sec-WebSocket-Accept"));
        }
        let m = (n as u32).wrapping_mul(2_654_435_761).to_be_bytes();
        Ok(LeanWs {
            stream,
            frames: FrameBuf { buf, start: end },
            mask: [m[0] | 1, m[1], m[2], m[3]],
        })
    }

    /// Sends one masked frame.
    pub async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let f = client_frame(self.mask, opcode, payload);
        self.stream.write_all(&f).await
    }

    /// Reads until a text frame for which `done` holds (answering pings).
    pub async fn until_text(&mut self, done: impl Fn(&[u8]) -> bool) -> io::Result<()> {
        loop {
            while let Some((op, r)) = self.frames.next_frame()? {
                match op {
                    TEXT if done(self.frames.payload(r.clone())) => return Ok(()),
                    PING => {
                        let p = self.frames.payload(r).to_vec();
                        self.send(PONG, &p).await?;
                    }
                    CLOSE => return Err(bad("closed by the server")),
                    _ => {}
                }
            }
            if self.stream.read_buf(self.frames.spare()).await? == 0 {
                return Err(bad("closed"));
            }
        }
    }

    /// The socket (blocking mode off) and what was read past the last frame.
    pub fn into_std(self) -> io::Result<(std::net::TcpStream, FrameBuf, [u8; 4])> {
        let s = self.stream.into_std()?;
        s.set_nonblocking(true)?;
        let mut frames = self.frames;
        frames.compact();
        frames.buf.shrink_to_fit();
        Ok((s, frames, self.mask))
    }
}

/// Reads every client's socket from this thread until each has seen a text
/// frame for which `last` holds, the server closed it, or `deadline`.
/// `on_text(client, payload, at)` sees every text frame as it is read.
pub fn read_all(
    clients: Vec<(std::net::TcpStream, FrameBuf, [u8; 4])>,
    deadline: Instant,
    mut on_text: impl FnMut(usize, &[u8], Instant) -> bool,
) -> io::Result<()> {
    use mio::{Events, Interest, Poll, Token};
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut socks: Vec<(mio::net::TcpStream, FrameBuf, [u8; 4], bool)> = Vec::new();
    for (k, (s, f, m)) in clients.into_iter().enumerate() {
        let mut s = mio::net::TcpStream::from_std(s);
        poll.registry()
            .register(&mut s, Token(k), Interest::READABLE)?;
        socks.push((s, f, m, false));
    }
    // One read buffer for every socket of the thread: a socket's own buffer
    // only ever gets the few hundred bytes a read returned, so the reader
    // touches little memory per delivery (the server shares the caches).
    let mut scratch = vec![0u8; SCRATCH];
    let mut left = socks.len();
    // Bytes already read during the handshake phase come first.
    let mut ready: Vec<usize> = (0..socks.len()).collect();
    while left > 0 {
        for k in ready.drain(..) {
            let (s, frames, mask, done) = &mut socks[k];
            if *done {
                continue;
            }
            // A read that did not fill its buffer emptied the socket: the
            // frames are parsed, and the socket waits for its next edge
            // (epoll reports new data again) instead of a read that would
            // only say "would block".
            let mut drained = false;
            loop {
                let mut finished = false;
                while let Some((op, r)) = frames.next_frame()? {
                    match op {
                        TEXT if on_text(k, frames.payload(r.clone()), Instant::now()) => {
                            finished = true
                        }
                        PING => {
                            let pong = client_frame(*mask, PONG, frames.payload(r));
                            // A small write into an idle socket's buffer.
                            let _ = s.write_all(&pong);
                        }
                        CLOSE => finished = true,
                        _ => {}
                    }
                }
                if finished {
                    *done = true;
                    left -= 1;
                    break;
                }
                if drained {
                    break;
                }
                match s.read(&mut scratch) {
                    Ok(0) => {
                        *done = true;
                        left -= 1;
                        break;
                    }
                    Ok(n) => {
                        frames.push(&scratch[..n]);
                        drained = n < scratch.len();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        if left == 0 {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        // Look for ready sockets without sleeping in epoll: on loopback, the
        // server's write pays for waking a client thread that sleeps there
        // (an inter-processor interrupt), a cost that clients on other
        // machines never put on it. A 1 ms nap between looks instead lets
        // the ready sockets gather; deliveries are timed when read, so the
        // nap counts against the server, never for it.
        poll.poll(&mut events, Some(Duration::ZERO))?;
        if events.is_empty() {
            std::thread::sleep(POLL_NAP);
            continue;
        }
        ready.extend(events.iter().map(|e| e.token().0));
    }
    Ok(())
}

/// 16 bytes derived from `n`, base64-encoded (a `Sec-WebSocket-Key`).
fn base64_16(n: usize) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut raw = [0u8; 18];
    raw[..8].copy_from_slice(&(n as u64).to_le_bytes());
    raw[8..16].copy_from_slice(&(n as u64 ^ 0x5bd1_e995_c6a4_a793).to_be_bytes());
    let mut s = String::with_capacity(24);
    for c in raw.chunks(3) {
        let v = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        for k in 0..4 {
            s.push(A[((v >> (18 - 6 * k)) & 63) as usize] as char);
        }
    }
    // 16 bytes encode to 22 characters and "==".
    s.truncate(22);
    s.push_str("==");
    s
}
