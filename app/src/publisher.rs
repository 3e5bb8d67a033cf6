//! The publishing side of the ingest protocol as a sans-IO state machine:
//! recorder chunks and server messages in, frames to send out. The studio page
//! drives it from a `MediaRecorder` and a browser WebSocket; it has no clock,
//! no socket and no browser API, so it is tested natively.
//!
//! Rules it keeps (see `docs/protocol.md`):
//! - every chunk gets the next sequence number and stays buffered until acked,
//!   so nothing is lost across a dropped connection;
//! - after a reconnect, `hello` carries `resume_after` and every chunk from the
//!   server's `next_seq` on is sent again;
//! - a recorder restart is announced before the new recorder's first chunk;
//! - a reconnect that lands on a new session (another node took the stream
//!   after its owner died) gives up the old container's unacked chunks and
//!   asks for a new recorder, whose first chunk gets the server's `next_seq`;
//! - `already_publishing` right after a drop is retried a few times: the
//!   server (or, after a failover, the dead owner's lease) may not have let go
//!   of the old connection yet;
//! - the buffer is bounded: past the limit the publisher stops with an error
//!   instead of growing without end.

use std::collections::VecDeque;

use crate::protocol::close::CloseReason;
use crate::protocol::ingest::{encode_chunk, ClientMessage, ServerMessage, PROTOCOL_VERSION};

/// Something to send on the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A JSON text frame.
    Text(String),
    /// A binary frame: sequence number and chunk.
    Binary(Vec<u8>),
}

/// Where the connection stands, for the status panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No socket yet, or between a drop and the next attempt.
    Disconnected,
    /// `hello` sent, waiting for `ready`.
    Connecting,
    /// Chunks flow.
    Live,
    /// `end` sent, waiting for `ended`.
    Ending,
    /// The stream ended.
    Ended,
    /// The server refused, or the buffer overflowed: the studio must show why.
    Failed,
}

/// Why publishing stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishFailure {
    /// The server closed with a refusal (code and reason).
    #[error("{message} ({code})")]
    Refused {
        /// WebSocket close code.
        code: u16,
        /// Machine-readable reason.
        reason: String,
        /// Text for the broadcaster.
        message: String,
    },
    /// Unacknowledged media exceeded the buffer limit while the server was away.
    #[error("the connection has been down too long: {0} bytes are waiting to be sent")]
    BufferFull(usize),
    /// The server answered something the protocol does not allow.
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
}

/// How many `already_publishing` refusals in a row a reconnect waits out
/// before giving up. With the studio's backoff (0.5 s doubling, capped at
/// 10 s) eight attempts span about 20 to 40 s: longer than a dead owner's
/// lease (`--nats-lease-ttl`, 5 s) and about the resume grace (30 s).
pub const MAX_TAKEOVER_RETRIES: u32 = 8;

/// Close codes after which reconnecting cannot help.
fn is_final(code: u16) -> bool {
    // 1000 is a normal close; 4500 (internal), 1006 (dropped), 4408 (hello
    // too late) and 4429 (too many sockets from this address) may be retried.
    matches!(code, 4000 | 4001 | 4002 | 4004 | 4009 | 4013 | 4015 | 4029)
}

/// Counters for the studio's status panel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Chunks the recorder produced.
    pub chunks: u64,
    /// The highest sequence number the server acknowledged.
    pub acked: Option<u64>,
    /// Chunks waiting for an ack.
    pub pending: usize,
    /// Bytes waiting for an ack.
    pub pending_bytes: usize,
    /// Media bytes sent (resends included).
    pub bytes_sent: u64,
    /// Successful reconnects.
    pub reconnects: u32,
    /// Reconnects that landed on a new session (another node): the old
    /// container's unacked chunks were given up and the recorder restarted.
    pub new_sessions: u32,
    /// Unacked chunks given up that way.
    pub dropped: u64,
}

/// The publishing state machine for one stream.
#[derive(Debug)]
pub struct Publisher {
    token: String,
    mime_type: String,
    capture_start_ms: i64,
    max_pending_bytes: usize,
    phase: Phase,
    /// Unacked chunks, oldest first, each with its sequence number.
    pending: VecDeque<(u64, Vec<u8>)>,
    next_seq: u64,
    /// A recorder restart not yet announced: the capture clock of the new recorder,
    /// and the sequence number of its first chunk.
    period: Option<(i64, u64)>,
    ever_connected: bool,
    ending_after_reconnect: bool,
    /// `already_publishing` refusals since the last `ready`.
    takeover_refusals: u32,
    /// The server started a new session on a reconnect: the page must start
    /// a new recorder (see [`Publisher::take_recorder_restart`]).
    restart_recorder: bool,
    stats: Stats,
    failure: Option<PublishFailure>,
}

impl Publisher {
    /// A publisher for chunks recorded as `mime_type`, captured from
    /// `capture_start_ms` (Unix ms), holding at most `max_pending_bytes` unacked.
    pub fn new(
        token: impl Into<String>,
        mime_type: impl Into<String>,
        capture_start_ms: i64,
        max_pending_bytes: usize,
    ) -> Self {
        Publisher {
            token: token.into(),
            mime_type: mime_type.into(),
            capture_start_ms,
            max_pending_bytes,
            phase: Phase::Disconnected,
            pending: VecDeque::new(),
            next_seq: 0,
            period: None,
            ever_connected: false,
            ending_after_reconnect: false,
            takeover_refusals: 0,
            restart_recorder: false,
            stats: Stats::default(),
            failure: None,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The status counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Why publishing stopped, if it failed.
    pub fn failure(&self) -> Option<&PublishFailure> {
        self.failure.as_ref()
    }

    /// Whether the studio should open a new socket (after a drop) now.
    pub fn wants_connection(&self) -> bool {
        self.phase == Phase::Disconnected
    }

    /// A socket opened: the `hello` to send first.
    pub fn on_open(&mut self) -> Frame {
        self.phase = Phase::Connecting;
        let resume_after = self.stats.acked.filter(|_| self.ever_connected);
        // A restart that happened while we were away is announced in the hello
        // when the new recorder's first chunk is the next the server expects.
        let new_period = self
            .period
            .is_some_and(|(_, first)| Some(first) == resume_after.map(|a| a + 1));
        let capture_start_ms = match (new_period, self.period) {
            (true, Some((clock, _))) => clock,
            _ => self.capture_start_ms,
        };
        if new_period {
            self.period = None;
        }
        Frame::Text(json(&ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            // Empty: the studio of a signed-in owner authenticates by session.
            token: (!self.token.is_empty()).then(|| self.token.clone()),
            mime_type: self.mime_type.clone(),
            capture_start_ms,
            resume_after,
            new_period,
        }))
    }

    /// The recorder produced a chunk: it is buffered, and returned framed if
    /// the connection is live. Empty chunks are ignored.
    pub fn on_chunk(&mut self, chunk: Vec<u8>) -> Vec<Frame> {
        if chunk.is_empty() || matches!(self.phase, Phase::Ended | Phase::Failed) {
            return Vec::new();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.stats.chunks += 1;
        self.stats.pending_bytes += chunk.len();
        self.pending.push_back((seq, chunk));
        self.stats.pending = self.pending.len();
        if self.stats.pending_bytes > self.max_pending_bytes {
            self.fail(PublishFailure::BufferFull(self.stats.pending_bytes));
            return Vec::new();
        }
        if self.phase != Phase::Live {
            return Vec::new();
        }
        let mut out = self.announce_period(seq);
        out.push(self.frame(seq));
        out
    }

    /// The recorder was restarted (new source or settings) at `capture_start_ms`:
    /// its first chunk starts a new period.
    pub fn restart_recorder(&mut self, capture_start_ms: i64) {
        self.period = Some((capture_start_ms, self.next_seq));
    }

    /// Whether the page must replace its recorder now (once per request):
    /// a reconnect landed on a new session, which needs a new container.
    /// Chunks of the old recorder that arrive after this must not reach
    /// [`Publisher::on_chunk`]; the new recorder's first chunk gets the
    /// server's `next_seq`.
    pub fn take_recorder_restart(&mut self) -> bool {
        std::mem::take(&mut self.restart_recorder)
    }

    /// The broadcaster ends the stream: `end` goes out once everything is acked
    /// (now, or from [`Publisher::on_message`] when the last ack arrives).
    pub fn end(&mut self) -> Vec<Frame> {
        if matches!(self.phase, Phase::Ended | Phase::Failed) {
            return Vec::new();
        }
        match self.phase {
            Phase::Live | Phase::Ending => self.phase = Phase::Ending,
            // Not connected: end once the next connection has sent everything.
            _ => self.ending_after_reconnect = true,
        }
        self.finish_if_drained()
    }

    fn finish_if_drained(&mut self) -> Vec<Frame> {
        if self.phase == Phase::Ending && self.pending.is_empty() {
            return vec![Frame::Text(json(&ClientMessage::End))];
        }
        Vec::new()
    }

    /// A text frame from the server. Returns frames to send.
    pub fn on_message(&mut self, text: &str) -> Vec<Frame> {
        let msg: ServerMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                self.fail(PublishFailure::Protocol(e.to_string()));
                return Vec::new();
            }
        };
        match msg {
            ServerMessage::Ready {
                next_seq,
                new_session,
                ..
            } => {
                let ending = self.phase == Phase::Ending || self.ending_after_reconnect;
                self.ending_after_reconnect = false;
                self.takeover_refusals = 0;
                if self.ever_connected {
                    self.stats.reconnects += 1;
                    if new_session && self.stats.chunks > 0 {
                        return self.start_over(next_seq, ending);
                    }
                }
                self.ever_connected = true;
                self.phase = if ending { Phase::Ending } else { Phase::Live };
                // The server has everything before next_seq.
                if next_seq > 0 {
                    self.ack(next_seq - 1);
                }
                let mut out = Vec::new();
                let resend: Vec<u64> = self.pending.iter().map(|(s, _)| *s).collect();
                for seq in resend {
                    out.extend(self.announce_period(seq));
                    out.push(self.frame(seq));
                }
                out.extend(self.finish_if_drained());
                out
            }
            ServerMessage::Ack { seq } => {
                self.ack(seq);
                self.finish_if_drained()
            }
            ServerMessage::Ended => {
                self.phase = Phase::Ended;
                Vec::new()
            }
        }
    }

    /// A reconnect landed on a new session at `next_seq`: the server has
    /// nothing of the current container, so its unacked chunks cannot be
    /// read there. They are given up, and the next chunk (the new
    /// recorder's first) is numbered `next_seq`. Ending meanwhile: nothing
    /// is left to send, so `end` goes out at once.
    fn start_over(&mut self, next_seq: u64, ending: bool) -> Vec<Frame> {
        self.stats.new_sessions += 1;
        self.stats.dropped += self.pending.len() as u64;
        self.pending.clear();
        self.stats.pending = 0;
        self.stats.pending_bytes = 0;
        self.period = None;
        self.next_seq = next_seq;
        self.phase = if ending { Phase::Ending } else { Phase::Live };
        if ending {
            return self.finish_if_drained();
        }
        self.restart_recorder = true;
        Vec::new()
    }

    /// The socket closed with `code` and the server's reason (if any).
    pub fn on_close(&mut self, code: u16, reason: &str) {
        if matches!(self.phase, Phase::Ended | Phase::Failed) {
            return;
        }
        // Right after a drop, "already publishing" is most likely this
        // publisher's own old connection (or a dead owner's lease, in a
        // cluster) not yet let go: wait it out, a bounded number of times.
        let takeover = code == crate::protocol::ingest::close::ALREADY_PUBLISHING
            && self.ever_connected
            && self.takeover_refusals < MAX_TAKEOVER_RETRIES;
        if takeover {
            self.takeover_refusals += 1;
        }
        if is_final(code) && !takeover {
            let parsed: Option<CloseReason> = serde_json::from_str(reason).ok();
            let (reason, message) = parsed.map(|r| (r.code, r.message)).unwrap_or_else(|| {
                (
                    "closed".into(),
                    format!("the server closed the connection ({code})"),
                )
            });
            self.fail(PublishFailure::Refused {
                code,
                reason,
                message,
            });
            return;
        }
        // Dropped: keep everything and try again (the studio backs off). An
        // `end` in progress is sent again once the resent chunks are acked.
        self.ending_after_reconnect |= self.phase == Phase::Ending;
        self.phase = Phase::Disconnected;
    }

    fn ack(&mut self, seq: u64) {
        while self.pending.front().is_some_and(|(s, _)| *s <= seq) {
            if let Some((_, c)) = self.pending.pop_front() {
                self.stats.pending_bytes -= c.len();
            }
        }
        self.stats.pending = self.pending.len();
        self.stats.acked = Some(self.stats.acked.map_or(seq, |a| a.max(seq)));
    }

    /// The new-period message, if `seq` is the restarted recorder's first chunk.
    fn announce_period(&mut self, seq: u64) -> Vec<Frame> {
        match self.period {
            Some((clock, first)) if first == seq => {
                self.period = None;
                vec![Frame::Text(json(&ClientMessage::NewPeriod {
                    capture_start_ms: clock,
                }))]
            }
            _ => Vec::new(),
        }
    }

    fn frame(&mut self, seq: u64) -> Frame {
        let chunk = self
            .pending
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, c)| c.as_slice())
            .unwrap_or_default();
        self.stats.bytes_sent += chunk.len() as u64;
        Frame::Binary(encode_chunk(seq, chunk))
    }

    fn fail(&mut self, failure: PublishFailure) {
        self.phase = Phase::Failed;
        self.failure = Some(failure);
    }
}

fn json(msg: &ClientMessage) -> String {
    // Serialising these plain structs cannot fail.
    serde_json::to_string(msg).unwrap_or_default()
}

#[cfg(test)]
#[path = "publisher_tests.rs"]
mod tests;
