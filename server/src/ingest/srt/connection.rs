//! One admitted SRT connection: a thread reads its messages, and a task
//! feeds them to the stream's live session.

use std::ffi::c_int;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::{ffi, is_mpeg_ts, millis, set_int, CLOSED_BY_CALLER, MAX_CHUNK, PACKET_OVERHEAD};
use crate::ingest::encoder::{refused, EncoderPublish, Reason, Refusal, Transport};
use crate::ingest::IngestHub;

/// What a connection's reading thread reports.
#[derive(Debug)]
pub(super) enum Received {
    /// One SRT message: whole MPEG-TS packets.
    Data(Bytes),
    /// Not MPEG-TS.
    Malformed,
    /// No data for the idle time-out.
    Idle,
    /// The connection broke; `closed` if the caller closed it.
    Broken { closed: bool },
}

/// Reads SRT messages until the connection ends, then closes it.
pub(super) fn read_loop(sock: ffi::SRTSOCKET, tx: mpsc::Sender<Received>, idle: Duration) {
    let _ = set_int(sock, ffi::SRTO_RCVTIMEO, millis(idle).max(1));
    let mut buf = vec![0u8; 1500];
    let mut last = Instant::now();
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { ffi::srt_recvmsg(sock, buf.as_mut_ptr().cast(), buf.len() as c_int) };
        let got = match usize::try_from(n) {
            Ok(n) if n > 0 => buf.get(..n).unwrap_or_default(),
            _ => {
                // SAFETY: reads this thread's last libsrt error.
                let code = unsafe { ffi::srt_getlasterror(std::ptr::null_mut()) };
                let report = if code == ffi::SRT_ETIMEOUT {
                    Received::Idle
                } else {
                    Received::Broken {
                        closed: last.elapsed() < CLOSED_BY_CALLER,
                    }
                };
                let _ = tx.blocking_send(report);
                break;
            }
        };
        last = Instant::now();
        let msg = if is_mpeg_ts(got) {
            Received::Data(Bytes::copy_from_slice(got))
        } else {
            Received::Malformed
        };
        let malformed = matches!(msg, Received::Malformed);
        if tx.blocking_send(msg).is_err() || malformed {
            break;
        }
    }
    // SAFETY: closing our own socket; a second close of an id is harmless.
    unsafe { ffi::srt_close(sock) };
}

/// Feeds one connection's MPEG-TS into the stream's live session.
pub(super) async fn publish(
    hub: Arc<IngestHub>,
    sock: ffi::SRTSOCKET,
    peer: SocketAddr,
    stream_id: String,
    mut rx: mpsc::Receiver<Received>,
) {
    let close = || unsafe {
        // SAFETY: closing the connection's socket ends its reading thread.
        ffi::srt_close(sock);
    };
    let fail = |r: Refusal| {
        refused(Transport::Srt, r.reason);
        tracing::warn!(%peer, stream = %stream_id, reason = r.reason.label(), why = %r.why, "srt publisher closed");
    };
    let mut bridge = match EncoderPublish::start(&hub, Transport::Srt, &stream_id, peer, None).await
    {
        Ok(b) => b,
        Err(r) => {
            fail(r);
            close();
            return;
        }
    };
    let mut pending = None;
    loop {
        let first = match pending.take() {
            Some(m) => m,
            None => match rx.recv().await {
                Some(m) => m,
                None => break,
            },
        };
        match first {
            Received::Data(data) => {
                // Everything already queued goes to the pipeline as one chunk.
                let mut wire = data.len() as u64 + PACKET_OVERHEAD;
                let mut chunk = BytesMut::from(data.as_ref());
                while chunk.len() < MAX_CHUNK {
                    match rx.try_recv() {
                        Ok(Received::Data(more)) => {
                            wire += more.len() as u64 + PACKET_OVERHEAD;
                            chunk.extend_from_slice(&more);
                        }
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if let Err(r) = bridge.send(chunk.freeze(), wire).await {
                    fail(r);
                    close();
                    break;
                }
            }
            Received::Malformed => {
                fail(Refusal {
                    reason: Reason::Protocol,
                    why: "the payload is not MPEG-TS".into(),
                });
                break;
            }
            Received::Idle => {
                fail(Refusal {
                    reason: Reason::Timeout,
                    why: "no data".into(),
                });
                break;
            }
            Received::Broken { closed } => {
                if closed {
                    bridge.end(&hub).await;
                }
                break;
            }
        }
    }
    // A bridge that did not end the stream detaches: the caller may resume.
    drop(bridge);
}
