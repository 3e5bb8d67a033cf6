//! SRT ingest: encoders (OBS, vMix, FFmpeg, hardware) publish MPEG-TS over
//! SRT to `srt://HOST:PORT` with the access-control stream id
//! `#!::r=<stream key>,m=publish`, or `#!::r=<stream id>,m=publish` and the
//! stream key as the SRT passphrase (the stream is then AES-encrypted and
//! the key never crosses the network).
//!
//! The protocol is Debian's libsrt (the reference implementation that
//! FFmpeg, OBS and vMix use; why not `srt-tokio`: `docs/protocol.md`),
//! bound in its `ffi` module. Its listen callback decides each caller during the
//! handshake, so a refusal reaches the encoder in SRT's own terms, as a
//! rejection code it prints:
//! - 1400 (bad request): the stream id is not in the access-control form;
//! - 1405 (bad mode): `m` is not `publish`;
//! - 1401 (unauthorized): a wrong key; 1404 (not found): no such stream;
//! - 1409 (conflict): another publisher is live on the stream;
//! - 1402 (overload): `--srt-max-connections` callers are connected.
//!
//! A wrong passphrase is refused by libsrt itself (`BADSECRET`, on the caller's
//! side); the server counts a handshake that fails after it set the
//! passphrase as `wrong_key`, one that fails otherwise as `protocol`, and
//! one still unfinished after 30 s as `timeout`. After the
//! handshake, payload that is not MPEG-TS (`protocol`), a sustained rate
//! over `--ingest-max-bitrate` (`bitrate`) or no data for
//! `--ingest-idle-timeout` (`timeout`) close the connection. Each refusal is
//! logged and counted in `onair_ingest_refusals_total{transport="srt",reason}`.
//!
//! The MPEG-TS goes through [`EncoderPublish`](super::encoder::EncoderPublish) into the same live session
//! as every other source. SRT has no "unpublish": a caller that closes its
//! connection (an SRT shutdown, right after its last data) ends the stream;
//! one that falls silent until libsrt's peer idle time-out (5 s) dropped,
//! and may resume within `--ingest-resume-grace` as a new period. Until
//! libsrt notices the silence, a reconnecting caller is refused with 1409
//! (encoders retry).
//!
//! Threads: libsrt runs its own; the listen callback runs on libsrt's
//! receive thread and checks the key against the database there (bounded
//! by [`KEY_CHECK_TIMEOUT`]); one thread per listener accepts, one per
//! connection reads, and an async task per connection feeds the pipeline.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::encoder::{check_key, refused, Reason, Transport};
use super::IngestHub;
use crate::auth::playback::PlaybackSigner;

mod access;
mod connection;
mod ffi;

pub use access::{is_mpeg_ts, parse_stream_id, AccessRequest, StreamIdError};
use connection::{publish, read_loop};

/// The listen callback gives the database this long to check a key.
pub const KEY_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that broke within this long of its last data was closed by
/// the caller (an SRT shutdown): the stream ended. libsrt notices a silent
/// peer only after 5 s.
const CLOSED_BY_CALLER: Duration = Duration::from_secs(2);
/// Packets buffered between a connection's reading thread and its task.
const PACKET_QUEUE: usize = 1024;
/// Largest chunk handed to the pipeline at once.
const MAX_CHUNK: usize = 64 * 1024;
/// IP, UDP and SRT headers of one data packet, counted against the bitrate.
const PACKET_OVERHEAD: u64 = 20 + 8 + 16;
/// One MPEG-TS packet.
const TS_PACKET: usize = 188;

/// SRT listener settings.
#[derive(Debug, Clone)]
pub struct SrtConfig {
    /// SRT's receive latency: how long lost packets may take to be resent
    /// (at least 4× the round trip to the encoder).
    pub latency: Duration,
    /// Concurrent SRT connections; more are refused (1402).
    pub max_connections: usize,
    /// Derives the encoder keys the owner is shown
    /// ([`PlaybackSigner::stream_key`]); without it only `<id>_<ingest
    /// token>` keys are accepted, and no passphrase.
    pub keys: Option<PlaybackSigner>,
}

impl Default for SrtConfig {
    fn default() -> Self {
        SrtConfig {
            latency: Duration::from_millis(120),
            max_connections: 64,
            keys: None,
        }
    }
}

impl SrtConfig {
    /// The same settings with every bound in range: at least one
    /// connection, latency 20 ms to 10 s.
    pub fn sanitized(mut self) -> Self {
        self.max_connections = self.max_connections.max(1);
        self.latency = self
            .latency
            .clamp(Duration::from_millis(20), Duration::from_secs(10));
        self
    }
}

/// The SRT listener could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SrtError {
    /// A libsrt call failed.
    #[error("SRT {call}: {message}")]
    Library {
        /// The call.
        call: &'static str,
        /// libsrt's description.
        message: String,
    },
    /// The UDP socket has no local address.
    #[error("SRT socket: {0}")]
    Socket(#[from] std::io::Error),
}

/// A running SRT listener; dropping it stops taking new callers
/// (connections already publishing go on).
#[derive(Debug)]
pub struct SrtListener {
    sock: ffi::SRTSOCKET,
    addr: SocketAddr,
}

impl SrtListener {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for SrtListener {
    fn drop(&mut self) {
        // SAFETY: closing a socket id is safe for any id; the accept thread
        // then sees srt_accept fail and ends.
        unsafe {
            ffi::srt_close(self.sock);
        }
    }
}

/// What the listen callback decided about a caller, for the accept loop.
#[derive(Debug)]
struct Admitted {
    stream_id: String,
    at: Instant,
    /// The caller's address, for the log line of a handshake that fails
    /// after the callback.
    peer: String,
    /// Whether the callback set the stream key as the passphrase.
    passphrase: bool,
}

/// Shared by the listen callback, the accept thread and the connections.
struct Listening {
    /// Weak: the callback's reference is never released, and must not keep
    /// the hub (and its sessions' pipelines) alive.
    hub: Weak<IngestHub>,
    cfg: SrtConfig,
    runtime: tokio::runtime::Handle,
    active: AtomicUsize,
    /// Callers the callback let through, by the socket libsrt accepts them on.
    admitted: Mutex<HashMap<ffi::SRTSOCKET, Admitted>>,
}

fn last_error() -> String {
    // SAFETY: libsrt returns a thread-local, NUL-terminated string (or null).
    unsafe {
        let s = ffi::srt_getlasterror_str();
        if s.is_null() {
            return "unknown error".into();
        }
        CStr::from_ptr(s).to_string_lossy().into_owned()
    }
}

fn check(call: &'static str, ret: c_int) -> Result<(), SrtError> {
    if ret == ffi::SRT_ERROR {
        return Err(SrtError::Library {
            call,
            message: last_error(),
        });
    }
    Ok(())
}

fn set_int(sock: ffi::SRTSOCKET, opt: c_int, value: i32) -> c_int {
    // SAFETY: the option takes an int; the pointer and size describe one.
    unsafe {
        ffi::srt_setsockflag(
            sock,
            opt,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as c_int,
        )
    }
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Takes SRT callers on `socket` (a bound UDP socket, handed to libsrt)
/// until the returned listener is dropped. Must be called inside a tokio
/// runtime, which the connections then use.
pub fn serve(
    socket: std::net::UdpSocket,
    hub: Arc<IngestHub>,
    cfg: SrtConfig,
) -> Result<SrtListener, SrtError> {
    use std::os::fd::IntoRawFd;
    ffi::startup();
    let addr = socket.local_addr()?;
    let cfg = cfg.sanitized();
    // SAFETY: plain libsrt calls on a socket id this function owns; the
    // UDP descriptor is handed over to libsrt, which closes it.
    let sock = unsafe { ffi::srt_create_socket() };
    if sock == ffi::SRT_INVALID_SOCK {
        return Err(SrtError::Library {
            call: "srt_create_socket",
            message: last_error(),
        });
    }
    let listener = SrtListener { sock, addr };
    check(
        "latency",
        set_int(sock, ffi::SRTO_LATENCY, millis(cfg.latency)),
    )?;
    check("rcvsyn", set_int(sock, ffi::SRTO_RCVSYN, 1))?;
    check("bind", unsafe {
        ffi::srt_bind_acquire(sock, socket.into_raw_fd())
    })?;
    check("listen", unsafe { ffi::srt_listen(sock, 16) })?;
    let listening = Arc::new(Listening {
        hub: Arc::downgrade(&hub),
        cfg,
        runtime: tokio::runtime::Handle::current(),
        active: AtomicUsize::new(0),
        admitted: Mutex::new(HashMap::new()),
    });
    // The callback's reference lives as long as the process: libsrt may
    // call it until the listener is closed, and a listener is made once.
    let opaque = Arc::into_raw(listening.clone()) as *mut c_void;
    check("listen callback", unsafe {
        ffi::srt_listen_callback(sock, on_listen, opaque)
    })?;
    let _ = hub.srt_addr.set(addr);
    let sweeping = listening.clone();
    std::thread::Builder::new()
        .name("srt-sweep".into())
        .spawn(move || sweep_loop(sock, sweeping))?;
    std::thread::Builder::new()
        .name("srt-accept".into())
        .spawn(move || accept_loop(sock, listening))?;
    Ok(listener)
}

/// libsrt's listen callback: admits or refuses a caller during the
/// handshake. Never unwinds into C.
extern "C" fn on_listen(
    opaque: *mut c_void,
    ns: ffi::SRTSOCKET,
    _hs_version: c_int,
    peer: *const libc::sockaddr,
    stream_id: *const c_char,
) -> c_int {
    let decided = std::panic::catch_unwind(|| {
        // SAFETY: `opaque` is the leaked Arc<Listening> given in `serve`;
        // `stream_id` is null or a NUL-terminated string libsrt owns for
        // the duration of the call; `peer` is null or a socket address.
        let listening = unsafe { &*(opaque as *const Listening) };
        let raw = if stream_id.is_null() {
            ""
        } else {
            unsafe { CStr::from_ptr(stream_id) }.to_str().unwrap_or("")
        };
        let peer = unsafe { ffi::socket_addr(peer) };
        listening.admit(ns, raw, peer)
    });
    match decided {
        Ok(Ok(())) => 0,
        Ok(Err(code)) => {
            // SAFETY: `ns` is the socket being handshaken.
            unsafe {
                ffi::srt_setrejectreason(ns, code);
            }
            -1
        }
        Err(_) => -1,
    }
}

impl Listening {
    /// Decides a caller; `Err` carries the SRT rejection code.
    fn admit(&self, ns: ffi::SRTSOCKET, raw: &str, peer: Option<SocketAddr>) -> Result<(), c_int> {
        let peer = peer.map(|p| p.to_string()).unwrap_or_default();
        let refuse = |reason: Reason, code: c_int, why: &str| {
            refused(Transport::Srt, reason);
            tracing::warn!(%peer, reason = reason.label(), code, why, "srt caller refused");
            Err(code)
        };
        let Some(hub) = self.hub.upgrade() else {
            return Err(ffi::REJX_DOWN);
        };
        if self.active.load(Ordering::SeqCst) >= self.cfg.max_connections {
            return refuse(
                Reason::TooManyConnections,
                ffi::REJX_OVERLOAD,
                "too many connections",
            );
        }
        let request = match parse_stream_id(raw) {
            Ok(r) => r,
            Err(e) => return refuse(Reason::Protocol, e.code(), &e.to_string()),
        };
        let passphrase = !request.resource.contains('_');
        let stream_id = if !passphrase {
            let checked = self.runtime.block_on(async {
                tokio::time::timeout(
                    KEY_CHECK_TIMEOUT,
                    check_key(&hub, self.cfg.keys.as_ref(), &request.resource),
                )
                .await
            });
            match checked {
                Ok(Ok(id)) => id,
                Ok(Err(r)) if r.reason == Reason::WrongKey => {
                    return refuse(Reason::WrongKey, ffi::REJX_UNAUTHORIZED, &r.why)
                }
                Ok(Err(r)) => return refuse(r.reason, ffi::REJX_ISE, &r.why),
                Err(_) => {
                    return refuse(Reason::Internal, ffi::REJX_ISE, "the key check timed out")
                }
            }
        } else {
            // The stream id alone: the stream key is the passphrase.
            let id = request.resource;
            let hash = self.runtime.block_on(async {
                tokio::time::timeout(KEY_CHECK_TIMEOUT, hub.db.ingest_token_hash(&id)).await
            });
            let hash = match hash {
                Ok(Ok(Some(h))) => h,
                Ok(Ok(None)) => {
                    return refuse(Reason::WrongKey, ffi::REJX_NOTFOUND, "no such stream")
                }
                _ => {
                    return refuse(
                        Reason::Internal,
                        ffi::REJX_ISE,
                        "the server cannot check the key right now",
                    )
                }
            };
            let Some(keys) = &self.cfg.keys else {
                return refuse(
                    Reason::WrongKey,
                    ffi::REJX_UNAUTHORIZED,
                    "this server takes the key in the stream id only",
                );
            };
            let secret = format!("{id}_{}", keys.stream_key(&id, &hash));
            // SAFETY: the option takes a string of the given length.
            let set = unsafe {
                ffi::srt_setsockflag(
                    ns,
                    ffi::SRTO_PASSPHRASE,
                    secret.as_ptr().cast(),
                    secret.len() as c_int,
                )
            };
            if set == ffi::SRT_ERROR {
                return refuse(Reason::Internal, ffi::REJX_ISE, "cannot set the passphrase");
            }
            id
        };
        let live = hub
            .session(&stream_id)
            .is_some_and(|s| s.attached.load(Ordering::SeqCst));
        if live {
            return refuse(
                Reason::AlreadyPublishing,
                ffi::REJX_CONFLICT,
                "another publisher is live on this stream",
            );
        }
        let mut admitted = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        admitted.insert(
            ns,
            Admitted {
                stream_id,
                at: Instant::now(),
                peer,
                passphrase,
            },
        );
        Ok(())
    }
}

/// How often admitted handshakes are looked at.
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// An admitted caller that is neither accepted nor failed after this long
/// abandoned its handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(30);

/// Counts and forgets the handshakes that failed after the listen callback
/// admitted them, which never reach `srt_accept`: a wrong passphrase
/// (libsrt refuses it with `BADSECRET` once the key material is exchanged),
/// or a caller that gave up. Runs until the listener closes.
fn sweep_loop(listener: ffi::SRTSOCKET, listening: Arc<Listening>) {
    // SAFETY (every call below): state queries on socket ids.
    while unsafe { ffi::srt_getsockstate(listener) } == ffi::SRTS_LISTENING {
        std::thread::sleep(SWEEP_EVERY);
        let mut failed = Vec::new();
        listening
            .admitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|&ns, a| {
                let state = unsafe { ffi::srt_getsockstate(ns) };
                let gone = state >= ffi::SRTS_BROKEN;
                if gone || a.at.elapsed() >= HANDSHAKE_LIMIT {
                    failed.push((a.peer.clone(), a.stream_id.clone(), gone, a.passphrase));
                    return false;
                }
                true
            });
        for (peer, stream, gone, passphrase) in failed {
            // libsrt keeps the rejection reason (`BADSECRET`) on the caller's
            // side only: a handshake that fails once its passphrase is set
            // is counted as the key's.
            let (reason, text) = if gone && passphrase {
                (Reason::WrongKey, "wrong or missing passphrase")
            } else if gone {
                (Reason::Protocol, "the handshake failed")
            } else {
                (Reason::Timeout, "the handshake did not finish")
            };
            refused(Transport::Srt, reason);
            tracing::warn!(%peer, %stream, reason = reason.label(), why = text, "srt caller refused");
        }
    }
}

fn accept_loop(listener: ffi::SRTSOCKET, listening: Arc<Listening>) {
    loop {
        // SAFETY: the address buffer is a sockaddr_storage of the given size.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as c_int;
        let sock = unsafe {
            ffi::srt_accept(
                listener,
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        };
        if sock == ffi::SRT_INVALID_SOCK {
            // SAFETY: a state query on a socket id.
            if unsafe { ffi::srt_getsockstate(listener) } != ffi::SRTS_LISTENING {
                tracing::info!("srt listener closed");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let peer = unsafe { ffi::socket_addr((&storage as *const libc::sockaddr_storage).cast()) };
        let admitted = listening
            .admitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&sock);
        let (Some(admitted), Some(hub)) = (admitted, listening.hub.upgrade()) else {
            unsafe { ffi::srt_close(sock) };
            continue;
        };
        listening.active.fetch_add(1, Ordering::SeqCst);
        metrics::counter!("onair_ingest_connections_total", "transport" => "srt").increment(1);
        let peer = peer.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = mpsc::channel(PACKET_QUEUE);
        let idle = hub.limits.idle_timeout;
        let reader = listening.clone();
        let spawned = std::thread::Builder::new()
            .name("srt-read".into())
            .spawn(move || {
                read_loop(sock, tx, idle);
                reader.active.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            listening.active.fetch_sub(1, Ordering::SeqCst);
            unsafe { ffi::srt_close(sock) };
            continue;
        }
        listening
            .runtime
            .spawn(publish(hub, sock, peer, admitted.stream_id, rx));
    }
}

#[cfg(test)]
mod tests;
