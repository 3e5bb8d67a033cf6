//! What every encoder transport (RTMP, RTMPS, SRT, WHIP) shares: the stream key,
//! the refusal reasons and their metric, the bitrate budget, and the bridge
//! into the live session ([`EncoderPublish`]). A transport parses its own
//! protocol and hands the container bytes it carries (FLV for RTMP, MPEG-TS
//! for SRT) to [`EncoderPublish::send`]; the pipeline probes the container
//! like any other, so the ladder, packager, recording, captions and
//! analytics are the ones the browser studio uses.
//!
//! An encoder that drops and reconnects with the same key within
//! `--ingest-resume-grace` continues the same live session and recording as
//! a new period (`EXT-X-DISCONTINUITY`): its container starts again, with
//! its own clock.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::{AttachError, IngestHub, Publisher, Session};
use crate::auth::playback::PlaybackSigner;
use crate::media::demux::Feed;
use app::protocol::StreamState;

/// An encoder transport (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RTMP over TCP.
    Rtmp,
    /// RTMP over TLS.
    Rtmps,
    /// SRT over UDP.
    Srt,
    /// WebRTC (WHIP) over UDP.
    Whip,
}

impl Transport {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Rtmp => "rtmp",
            Transport::Rtmps => "rtmps",
            Transport::Srt => "srt",
            Transport::Whip => "whip",
        }
    }
}

/// Why a publish was refused or a connection closed (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The key names no stream or carries the wrong secret.
    WrongKey,
    /// Another publisher is live on the stream.
    AlreadyPublishing,
    /// A codec the pipeline does not take.
    Codec,
    /// Over `--ingest-max-bitrate`.
    Bitrate,
    /// Malformed protocol data.
    Protocol,
    /// A handshake or publish that did not finish in time, or silence.
    Timeout,
    /// The transport's connection cap.
    TooManyConnections,
    /// The server could not take the publish (database, pipeline).
    Internal,
}

impl Reason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Reason::WrongKey => "wrong_key",
            Reason::AlreadyPublishing => "already_publishing",
            Reason::Codec => "unsupported_codec",
            Reason::Bitrate => "bitrate",
            Reason::Protocol => "protocol",
            Reason::Timeout => "timeout",
            Reason::TooManyConnections => "too_many_connections",
            Reason::Internal => "internal",
        }
    }
}

/// Counts a refusal in `onair_ingest_refusals_total{transport,reason}`.
pub fn refused(transport: Transport, reason: Reason) {
    metrics::counter!("onair_ingest_refusals_total", "transport" => transport.label(), "reason" => reason.label())
        .increment(1);
}

/// A refusal: the metric reason and the text the encoder is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why (the metric label).
    pub reason: Reason,
    /// What the encoder's operator reads.
    pub why: String,
}

impl Refusal {
    fn new(reason: Reason, why: impl Into<String>) -> Self {
        Refusal {
            reason,
            why: why.into(),
        }
    }

    /// A wrong stream key.
    pub fn wrong_key() -> Self {
        Refusal::new(
            Reason::WrongKey,
            "wrong stream key: copy it from the stream's Encoder panel",
        )
    }
}

/// Splits a stream key, `<stream id>_<secret>` (neither part contains `_`).
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('_')
        .filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
}

/// Whether `key` (`<stream id>_<secret>`) may publish to its stream: the
/// secret is the stream's ingest token (64 hex characters) or the encoder
/// key derived from it ([`PlaybackSigner::stream_key`]). Returns the stream
/// id when it may.
pub async fn check_key(
    hub: &IngestHub,
    keys: Option<&PlaybackSigner>,
    key: &str,
) -> Result<String, Refusal> {
    let Some((id, secret)) = split_key(key) else {
        return Err(Refusal::wrong_key());
    };
    let matches = if secret.len() == 64 {
        hub.db
            .check_ingest_token(id, secret)
            .await
            .map(|ok| ok == Some(true))
    } else {
        match (keys, hub.db.ingest_token_hash(id).await) {
            (Some(keys), Ok(Some(hash))) => {
                let expected = keys.stream_key(id, &hash);
                Ok(crate::db::streams::subtle_eq::ct_eq(
                    expected.as_bytes(),
                    secret.as_bytes(),
                ))
            }
            (_, Err(e)) => Err(e),
            _ => Ok(false),
        }
    };
    match matches {
        Ok(true) => Ok(id.to_string()),
        Ok(false) => Err(Refusal::wrong_key()),
        Err(e) => {
            tracing::error!(stream = %id, error = %e, "cannot check a stream key");
            Err(Refusal::new(
                Reason::Internal,
                "the server cannot check the key right now; retry",
            ))
        }
    }
}

/// An encoder publishing into a stream's live session.
#[derive(Debug)]
pub struct EncoderPublish {
    transport: Transport,
    /// Detaches from the session when dropped, unless the stream ended.
    guard: Option<Publisher>,
    session: Arc<Session>,
    tx: tokio::sync::mpsc::Sender<Feed>,
    bucket: ByteBucket,
    max_bitrate: u64,
    /// Set once the encoder ended the stream (not dropped).
    ended: bool,
}

impl EncoderPublish {
    /// Attaches to stream `id` (its key already checked): resumes its
    /// session as a new period or starts a new one. `header` is the first
    /// chunk of the container the transport writes (FLV's file header), if
    /// it has one of its own.
    pub async fn start(
        hub: &Arc<IngestHub>,
        transport: Transport,
        id: &str,
        peer: SocketAddr,
        header: Option<Bytes>,
    ) -> Result<Self, Refusal> {
        let now_ms = crate::clock::now_ms();
        let (guard, _, is_new) = match hub.attach_owned(id, now_ms, None).await {
            Ok(s) => s,
            Err(AttachError::AlreadyPublishing) => {
                return Err(Refusal::new(
                    Reason::AlreadyPublishing,
                    "another publisher is live on this stream",
                ))
            }
            Err(e) => {
                tracing::error!(stream = %id, error = ?e, transport = transport.label(), "encoder cannot attach");
                return Err(Refusal::new(
                    Reason::Internal,
                    "the stream cannot take a publisher now",
                ));
            }
        };
        let session = guard.session().clone();
        session.health().set_protocol(transport.label());
        let Some(tx) = session.sender() else {
            // Dropping the guard gives the slot back.
            return Err(Refusal::new(
                Reason::Internal,
                "the stream is ending; publish again in a moment",
            ));
        };
        let stopped = || Refusal::new(Reason::Internal, "the media pipeline stopped");
        if !is_new {
            // A reconnect within the grace: the container that follows is a
            // new one with its own clock, so a new period.
            let period = Feed::Period {
                capture_start_ms: Some(now_ms),
            };
            tx.send(period).await.map_err(|_| stopped())?;
        }
        if let Some(header) = header {
            tx.send(Feed::Chunk(header)).await.map_err(|_| stopped())?;
        }
        if is_new {
            hub.set_state(id, StreamState::Live).await;
        }
        tracing::info!(stream = %id, %peer, transport = transport.label(), resumed = !is_new, "encoder live");
        Ok(EncoderPublish {
            transport,
            guard: Some(guard),
            session,
            tx,
            bucket: ByteBucket::new(hub.limits.max_bitrate),
            max_bitrate: hub.limits.max_bitrate,
            ended: false,
        })
    }

    /// The stream published to.
    pub fn stream_id(&self) -> &str {
        &self.session.stream_id
    }

    /// Feeds the next container bytes, `wire_bytes` of the budget (the
    /// transport's own framing included).
    pub async fn send(&mut self, chunk: Bytes, wire_bytes: u64) -> Result<(), Refusal> {
        if self.ended {
            return Ok(());
        }
        if !self.bucket.take(wire_bytes, Instant::now()) {
            let why = format!(
                "the stream's bitrate is over the server's limit of {} kbit/s: lower the encoder's bitrate",
                self.max_bitrate / 1000
            );
            return Err(Refusal::new(Reason::Bitrate, why));
        }
        if self.tx.send(Feed::Chunk(chunk)).await.is_err() {
            return Err(Refusal::new(Reason::Internal, "the media pipeline stopped"));
        }
        Ok(())
    }

    /// The encoder ended the stream: the pipeline flushes, the stream is
    /// `ended` (no resume is waited for).
    pub async fn end(&mut self, hub: &IngestHub) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.session.close_input();
        self.session.attached.store(false, Ordering::SeqCst);
        if let Some(guard) = self.guard.take() {
            guard.ended();
        }
        tracing::info!(stream = %self.session.stream_id, transport = self.transport.label(), "encoder ended the stream");
        hub.set_state(&self.session.stream_id, StreamState::Ended)
            .await;
    }

    /// Whether the encoder ended the stream.
    pub fn is_ended(&self) -> bool {
        self.ended
    }
}

impl Drop for EncoderPublish {
    fn drop(&mut self) {
        if !self.ended {
            tracing::info!(stream = %self.session.stream_id, transport = self.transport.label(), "encoder dropped; waiting for it to resume");
        }
        // The guard detaches a publisher that did not end the stream.
    }
}

/// A token bucket in bytes: refills at `max_bitrate / 8` per second and holds
/// two seconds' worth. Integer arithmetic, time passed in.
#[derive(Debug)]
struct ByteBucket {
    rate: u64,
    capacity: u64,
    level: u64,
    last: Instant,
}

impl ByteBucket {
    fn new(max_bitrate: u64) -> Self {
        let rate = (max_bitrate / 8).max(1);
        let capacity = rate.saturating_mul(2);
        ByteBucket {
            rate,
            capacity,
            level: capacity,
            last: Instant::now(),
        }
    }

    /// Takes `n` bytes at `now`; false when the budget is exhausted.
    fn take(&mut self, n: u64, now: Instant) -> bool {
        let elapsed_us = now.saturating_duration_since(self.last).as_micros();
        let refill = (elapsed_us.saturating_mul(u128::from(self.rate)) / 1_000_000) as u64;
        if refill > 0 {
            self.level = self.level.saturating_add(refill).min(self.capacity);
            self.last = now;
        }
        if self.level < n {
            return false;
        }
        self.level -= n;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_byte_bucket_allows_two_seconds_of_burst_then_the_rate() {
        let start = Instant::now();
        let mut b = ByteBucket::new(8_000); // 1,000 bytes/s
        b.last = start;
        assert!(b.take(2_000, start));
        assert!(!b.take(1, start));
        assert!(b.take(500, start + Duration::from_millis(500)));
        assert!(!b.take(600, start + Duration::from_millis(1_000)));
        assert!(b.take(500, start + Duration::from_millis(1_000)));
    }

    #[test]
    fn keys_split_into_a_stream_and_a_secret() {
        assert_eq!(split_key("abc_def"), Some(("abc", "def")));
        assert_eq!(split_key("abc"), None);
        assert_eq!(split_key("_def"), None);
        assert_eq!(split_key("abc_"), None);
    }
}
