//! The ingest WebSocket protocol (`WS /api/v1/streams/{id}/ingest`), shared by
//! the studio page, `onair publish` and the server. See `docs/protocol.md`.
//!
//! Text frames carry JSON [`ClientMessage`]s and [`ServerMessage`]s. Binary
//! frames carry media: an 8-byte big-endian sequence number, then one
//! MediaRecorder chunk ([`encode_chunk`] / [`decode_chunk`]).

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest sequence number a chunk, a `resume_after` or a `next_seq`
/// may carry: 2^53 − 1, so every number stays exact in JSON and JavaScript
/// and `seq + 1` never overflows. A publisher reaches it after 285 million
/// years of one chunk a second.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// The sequence number after `seq`, or `None` past [`MAX_SEQ`] (the server
/// refuses such a chunk or `resume_after` with [`close::PROTOCOL`]).
pub fn next_seq(seq: u64) -> Option<u64> {
    seq.checked_add(1).filter(|n| *n <= MAX_SEQ)
}

/// The earliest `capture_start_ms` accepted: 2000-01-01T00:00:00Z.
pub const MIN_CAPTURE_START_MS: i64 = 946_684_800_000;
/// How far `capture_start_ms` may be ahead of the server's clock: one day.
pub const MAX_CAPTURE_AHEAD_MS: i64 = 86_400_000;

/// Checks a `capture_start_ms` (the program date of the first chunk)
/// against the server's clock `now_ms`: not before
/// [`MIN_CAPTURE_START_MS`] and at most [`MAX_CAPTURE_AHEAD_MS`] ahead.
/// The error says why, for the close reason.
pub fn check_capture_start(capture_start_ms: i64, now_ms: i64) -> Result<(), String> {
    if capture_start_ms < MIN_CAPTURE_START_MS {
        return Err(format!(
            "capture_start_ms {capture_start_ms} is before 2000-01-01"
        ));
    }
    if capture_start_ms > now_ms.saturating_add(MAX_CAPTURE_AHEAD_MS) {
        return Err(format!(
            "capture_start_ms {capture_start_ms} is more than a day ahead of the server's clock"
        ));
    }
    Ok(())
}

/// WebSocket close codes the server uses, each with a JSON
/// [`CloseReason`](super::close::CloseReason).
pub mod close {
    /// The first message was not a valid `hello`.
    pub const BAD_HELLO: u16 = 4000;
    /// Missing or wrong ingest token.
    pub const UNAUTHORIZED: u16 = 4001;
    /// No such stream.
    pub const NOT_FOUND: u16 = 4004;
    /// Another publisher is live on this stream.
    pub const ALREADY_PUBLISHING: u16 = 4009;
    /// A message was larger than the limit.
    pub const TOO_LARGE: u16 = 4013;
    /// The ingest bitrate limit was exceeded.
    pub const RATE_LIMITED: u16 = 4029;
    /// The media could not be read (not a supported container or codec).
    pub const BAD_MEDIA: u16 = 4015;
    /// Nothing arrived within the idle timeout.
    pub const IDLE: u16 = 4008;
    /// A protocol rule was broken (bad sequence number, binary before hello,
    /// a sequence number or `resume_after` past [`super::MAX_SEQ`], a
    /// `capture_start_ms` outside [`super::check_capture_start`]'s window).
    pub const PROTOCOL: u16 = 4002;
    /// The server failed; the stream may be resumed.
    pub const INTERNAL: u16 = 4500;
    /// No `hello` within the server's hello timeout; reconnecting is fine.
    pub const HELLO_TIMEOUT: u16 = 4408;
    /// Too many sockets of this kind from this client IP; retry later.
    pub const TOO_MANY_CONNECTIONS: u16 = 4429;
    /// The server is restarting (RFC 6455's "service restart"); the stream
    /// is resumable: reconnect and resume.
    pub const SERVICE_RESTART: u16 = 1012;
}

/// Messages from the publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first message on every connection.
    Hello {
        /// Must be [`PROTOCOL_VERSION`].
        version: u32,
        /// The ingest token, unless sent as `Authorization: Bearer`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// The MIME type the recorder was created with (a hint only).
        mime_type: String,
        /// Wall-clock time (Unix ms) at which the first chunk's media was captured.
        capture_start_ms: i64,
        /// After a reconnect: the last sequence number the server acknowledged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_after: Option<u64>,
        /// The recorder restarted: the chunk at `next_seq` starts a new container.
        #[serde(default)]
        new_period: bool,
    },
    /// The recorder restarted (new device, new settings): the next chunk
    /// starts a new container. Viewers see `EXT-X-DISCONTINUITY`.
    NewPeriod {
        /// Wall-clock time (Unix ms) at which the new recorder started capturing.
        capture_start_ms: i64,
    },
    /// The broadcaster ended the stream.
    End,
}

/// Messages from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The hello was accepted.
    Ready {
        /// The next sequence number the server expects. After a resume, the
        /// client re-sends everything from here.
        next_seq: u64,
        /// Limits that apply to this connection.
        limits: IngestLimits,
        /// This connection started a new session of the stream: nothing of
        /// an earlier connection's container is here (after a failover, the
        /// `resume_after` named a session another node had). A client that
        /// was resuming gives up its unacknowledged chunks and starts a new
        /// container (a new recorder) at `next_seq`. Absent (older servers)
        /// means `false`.
        #[serde(default)]
        new_session: bool,
    },
    /// Every chunk up to and including `seq` is safely received.
    Ack {
        /// The highest contiguous sequence number received.
        seq: u64,
    },
    /// The stream has ended and its output is complete.
    Ended,
}

/// Limits announced in [`ServerMessage::Ready`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestLimits {
    /// Largest binary message, in bytes (including the 8-byte header).
    pub max_message_bytes: u64,
    /// Highest average ingest rate, in bits per second.
    pub max_bitrate: u64,
    /// Seconds without a message before the connection is closed.
    pub idle_timeout_s: u64,
}

/// Frames a chunk: 8-byte big-endian sequence number, then the bytes.
pub fn encode_chunk(seq: u64, chunk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + chunk.len());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(chunk);
    out
}

/// Splits a binary frame into sequence number and chunk; `None` if shorter than 8 bytes.
pub fn decode_chunk(frame: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = frame.split_at_checked(8)?;
    Some((u64::from_be_bytes(head.try_into().ok()?), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_stop_at_max_seq() {
        assert_eq!(next_seq(0), Some(1));
        assert_eq!(next_seq(MAX_SEQ - 1), Some(MAX_SEQ));
        assert_eq!(next_seq(MAX_SEQ), None);
        assert_eq!(next_seq(u64::MAX - 1), None);
        assert_eq!(next_seq(u64::MAX), None);
    }

    #[test]
    fn capture_start_must_be_this_century_and_not_tomorrow() {
        let now = 1_800_000_000_000;
        assert!(check_capture_start(now, now).is_ok());
        assert!(check_capture_start(MIN_CAPTURE_START_MS, now).is_ok());
        assert!(check_capture_start(MIN_CAPTURE_START_MS - 1, now).is_err());
        assert!(check_capture_start(0, now).is_err());
        assert!(check_capture_start(i64::MIN, now).is_err());
        assert!(check_capture_start(now + MAX_CAPTURE_AHEAD_MS, now).is_ok());
        assert!(check_capture_start(now + MAX_CAPTURE_AHEAD_MS + 1, now).is_err());
        assert!(check_capture_start(i64::MAX, i64::MAX).is_ok());
        assert!(check_capture_start(i64::MAX, now).is_err());
    }

    #[test]
    fn chunks_round_trip() {
        let frame = encode_chunk(42, b"webm");
        assert_eq!(decode_chunk(&frame), Some((42, &b"webm"[..])));
        assert_eq!(decode_chunk(&[1, 2, 3]), None);
    }

    #[test]
    fn messages_have_a_stable_json_shape() {
        let hello: ClientMessage = serde_json::from_str(
            r#"{"type":"hello","version":1,"mime_type":"video/webm;codecs=vp8,opus","capture_start_ms":5,"resume_after":9}"#,
        )
        .expect("parse");
        assert_eq!(
            hello,
            ClientMessage::Hello {
                version: 1,
                token: None,
                mime_type: "video/webm;codecs=vp8,opus".into(),
                capture_start_ms: 5,
                resume_after: Some(9),
                new_period: false
            }
        );
        assert_eq!(
            serde_json::to_string(&ServerMessage::Ack { seq: 3 }).expect("json"),
            r#"{"type":"ack","seq":3}"#
        );
        assert_eq!(
            serde_json::to_string(&ClientMessage::NewPeriod {
                capture_start_ms: 7
            })
            .expect("json"),
            r#"{"type":"new_period","capture_start_ms":7}"#
        );
    }
}
