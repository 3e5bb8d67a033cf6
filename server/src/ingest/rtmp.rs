//! RTMP ingest: OBS, FFmpeg, vMix and hardware encoders publish to
//! `rtmp://HOST:PORT/live` with the stream key `<stream id>_<ingest token>`.
//!
//! The protocol itself (handshake, chunk stream, AMF0 commands, FLV tags) is
//! the sans-IO [`onair_rtmp::Session`]; this file is its socket loop and the
//! bridge into the same live session every other source feeds
//! ([`IngestHub::attach`]): the tags are written back out as an FLV byte
//! stream, which the pipeline demuxes like any other container, so the
//! ladder, packager, recording, captions and analytics are the ones the
//! browser studio uses.
//!
//! Rules, each a refusal in RTMP's own terms (`onStatus` with
//! `NetStream.Publish.BadName` or `NetStream.Failed` and a description the
//! encoder shows), logged and counted in
//! `onair_ingest_refusals_total{transport="rtmp",reason}`:
//! - the key must name a stream and carry its current ingest token
//!   (regenerating the token invalidates the key at once);
//! - one publisher per stream: a second one is refused while the first is
//!   live;
//! - video must be H.264 and audio AAC (what OBS sends by default); anything
//!   else is refused with the codec's name;
//! - the sustained rate must stay under `--ingest-max-bitrate` (two seconds'
//!   worth of burst);
//! - malformed chunks, AMF or tags, oversized messages, a handshake that does
//!   not finish in 10 s, or no publish within 30 s close the connection.
//!
//! An encoder that drops and reconnects with the same key within
//! `--ingest-resume-grace` continues the same live session and recording as
//! a new period (`EXT-X-DISCONTINUITY`); `deleteStream`/`FCUnpublish` ends the
//! stream. Connections are capped by `--rtmp-max-connections`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use onair_rtmp::{
    status, AudioCodec, AudioPacketKind, Event, FlvAudio, FlvVideo, Session as Rtmp, VideoCodec,
    VideoFrameType, VideoPacketKind,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::{AttachError, IngestHub, Publisher, Session};
use crate::auth::playback::PlaybackSigner;
use crate::media::demux::Feed;
use app::streams::StreamState;

/// RTMP listener settings.
#[derive(Debug, Clone)]
pub struct RtmpConfig {
    /// Concurrent RTMP connections; more are closed at once.
    pub max_connections: usize,
    /// Protocol limits (chunk and message sizes, handshake and publish time-outs).
    pub protocol: onair_rtmp::Config,
    /// Derives the encoder keys the owner is shown
    /// ([`PlaybackSigner::stream_key`]); without it only `<id>_<ingest token>`
    /// keys are accepted.
    pub keys: Option<PlaybackSigner>,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            max_connections: 64,
            protocol: onair_rtmp::Config::default(),
            keys: None,
        }
    }
}

impl RtmpConfig {
    /// The same settings with every bound at a usable minimum.
    pub fn sanitized(mut self) -> Self {
        self.max_connections = self.max_connections.max(1);
        self
    }
}

/// Why a publish was refused or a connection closed (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    WrongKey,
    AlreadyPublishing,
    Codec,
    Bitrate,
    Protocol,
    Timeout,
    TooManyConnections,
    Internal,
}

impl Reason {
    fn label(self) -> &'static str {
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

fn refused(reason: Reason) {
    metrics::counter!("onair_ingest_refusals_total", "transport" => "rtmp", "reason" => reason.label())
        .increment(1);
}

/// Accepts RTMP connections on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, hub: Arc<IngestHub>, cfg: RtmpConfig) {
    if let Ok(addr) = listener.local_addr() {
        let _ = hub.rtmp_addr.set(addr);
    }
    let cfg = Arc::new(cfg.sanitized());
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "rtmp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refused(Reason::TooManyConnections);
            tracing::warn!(%peer, limit = cfg.max_connections, "rtmp connection refused: too many connections");
            drop(sock);
            continue;
        };
        metrics::counter!("onair_ingest_connections_total", "transport" => "rtmp").increment(1);
        let hub = hub.clone();
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let _ = sock.set_nodelay(true);
            Connection::new(hub, &cfg, peer).run(sock).await;
            drop(permit);
        });
    }
}

/// The live session a connection publishes into.
struct Publishing {
    /// Detaches from the session when dropped, unless the stream ended.
    guard: Option<Publisher>,
    session: Arc<Session>,
    tx: tokio::sync::mpsc::Sender<Feed>,
    /// The first media timestamp of this connection: FLV times start near 0.
    base_ms: Option<i64>,
    bucket: ByteBucket,
    /// Set once the encoder unpublished: the stream ended, not dropped.
    ended: bool,
}

struct Connection {
    hub: Arc<IngestHub>,
    rtmp: Rtmp,
    peer: SocketAddr,
    idle_timeout: Duration,
    publishing: Option<Publishing>,
    /// A refusal was written: send it, then close.
    closing: bool,
    keys: Option<PlaybackSigner>,
}

impl Connection {
    fn new(hub: Arc<IngestHub>, cfg: &RtmpConfig, peer: SocketAddr) -> Self {
        let idle_timeout = hub.limits.idle_timeout;
        Connection {
            hub,
            rtmp: Rtmp::new(cfg.protocol.clone(), Instant::now()),
            peer,
            idle_timeout,
            publishing: None,
            closing: false,
            keys: cfg.keys.clone(),
        }
    }

    async fn run(mut self, mut sock: TcpStream) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let deadline = self
                .rtmp
                .poll_timeout()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(self.idle_timeout)
                .min(self.idle_timeout);
            match tokio::time::timeout(deadline, sock.read(&mut buf)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => {
                    let input = buf.get(..n).unwrap_or_default();
                    if let Err(e) = self.rtmp.handle_input(input) {
                        refused(Reason::Protocol);
                        tracing::warn!(peer = %self.peer, error = %e, "rtmp connection closed: protocol error");
                        break;
                    }
                }
                Ok(Err(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "rtmp read failed");
                    break;
                }
                Err(_) => {
                    let timed_out = match self.rtmp.handle_timeout(Instant::now()) {
                        Err(e) => Some(e.to_string()),
                        // No protocol deadline passed: the read itself went idle.
                        Ok(()) if deadline >= self.idle_timeout => {
                            Some(format!("no data for {} s", self.idle_timeout.as_secs()))
                        }
                        Ok(()) => None,
                    };
                    if let Some(why) = timed_out {
                        refused(Reason::Timeout);
                        tracing::warn!(peer = %self.peer, reason = %why, "rtmp connection timed out");
                        break;
                    }
                }
            }
            while let Some(event) = self.rtmp.poll_event() {
                if let Err(reason) = self.handle(event).await {
                    refused(reason);
                    self.closing = true;
                    break;
                }
            }
            let out = self.rtmp.take_output();
            if !out.is_empty() {
                let write = tokio::time::timeout(self.idle_timeout, sock.write_all(&out)).await;
                if !matches!(write, Ok(Ok(()))) {
                    break;
                }
            }
            if self.closing {
                // Give the encoder a moment to read the refusal before closing.
                let _ = sock.flush().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                break;
            }
        }
        self.finish().await;
    }

    /// The connection is gone: an encoder that did not unpublish may come
    /// back within the resume grace.
    async fn finish(&mut self) {
        if let Some(p) = self.publishing.take() {
            if !p.ended {
                tracing::info!(stream = %p.session.stream_id, peer = %self.peer, "rtmp publisher dropped; waiting for it to resume");
            }
            // The guard detaches a publisher that did not end the stream.
            drop(p);
        }
    }

    async fn handle(&mut self, event: Event) -> Result<(), Reason> {
        match event {
            Event::Connect { app, .. } => {
                tracing::debug!(peer = %self.peer, app, "rtmp connect");
                Ok(())
            }
            Event::Publish { stream_key, .. } => self.publish(&stream_key).await,
            Event::Video(v) => self.video(v).await,
            Event::Audio(a) => self.audio(a).await,
            Event::Unpublish => {
                if let Some(p) = self.publishing.as_mut() {
                    p.ended = true;
                    p.session.close_input();
                    p.session
                        .attached
                        .store(false, std::sync::atomic::Ordering::SeqCst);
                    if let Some(guard) = p.guard.take() {
                        guard.ended();
                    }
                    tracing::info!(stream = %p.session.stream_id, "rtmp publisher ended the stream");
                    self.hub
                        .set_state(&p.session.stream_id, StreamState::Ended)
                        .await;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn refuse(&mut self, code: &str, why: &str, reason: Reason) -> Result<(), Reason> {
        tracing::warn!(peer = %self.peer, reason = reason.label(), why, "rtmp publish refused");
        let _ = self.rtmp.reject_publish(code, why);
        Err(reason)
    }

    async fn publish(&mut self, key: &str) -> Result<(), Reason> {
        // The key is `<stream id>_<ingest token>`; neither part contains `_`.
        let Some((id, token)) = key.split_once('_') else {
            return self.refuse(
                status::PUBLISH_BAD_NAME,
                "wrong stream key: copy it from the stream's Encoder panel",
                Reason::WrongKey,
            );
        };
        let id = id.to_string();
        match self.key_matches(&id, token).await {
            Ok(true) => {}
            Ok(false) => {
                return self.refuse(
                    status::PUBLISH_BAD_NAME,
                    "wrong stream key: copy it from the stream's Encoder panel",
                    Reason::WrongKey,
                )
            }
            Err(e) => {
                tracing::error!(stream = %id, error = %e, "cannot check an rtmp stream key");
                return self.refuse(
                    status::PUBLISH_DENIED,
                    "the server cannot check the key right now; retry",
                    Reason::Internal,
                );
            }
        }
        let now_ms = crate::clock::now_ms();
        let (guard, _, is_new) = match self.hub.attach(&id, now_ms, None) {
            Ok(s) => s,
            Err(AttachError::AlreadyPublishing) => {
                return self.refuse(
                    status::PUBLISH_DENIED,
                    "another publisher is live on this stream",
                    Reason::AlreadyPublishing,
                )
            }
            Err(e) => {
                tracing::error!(stream = %id, error = ?e, "rtmp publisher cannot attach");
                return self.refuse(
                    status::PUBLISH_DENIED,
                    "the stream cannot take a publisher now",
                    Reason::Internal,
                );
            }
        };
        let session = guard.session().clone();
        session.health().set_protocol("rtmp");
        let Some(tx) = session.sender() else {
            // Dropping the guard gives the slot back.
            drop(guard);
            return self.refuse(
                status::PUBLISH_DENIED,
                "the stream is ending; publish again in a moment",
                Reason::Internal,
            );
        };
        if !is_new {
            // A reconnect within the grace: the FLV stream that follows is a
            // new container with its own clock, so a new period.
            if tx
                .send(Feed::Period {
                    capture_start_ms: Some(now_ms),
                })
                .await
                .is_err()
            {
                return self.refuse(
                    status::STREAM_FAILED,
                    "the media pipeline stopped",
                    Reason::Internal,
                );
            }
        }
        if tx.send(Feed::Chunk(flv_header())).await.is_err() {
            return self.refuse(
                status::STREAM_FAILED,
                "the media pipeline stopped",
                Reason::Internal,
            );
        }
        if self.rtmp.accept_publish().is_err() {
            return Err(Reason::Protocol);
        }
        if is_new {
            self.hub.set_state(&id, StreamState::Live).await;
        }
        tracing::info!(stream = %id, peer = %self.peer, resumed = !is_new, "rtmp publisher live");
        self.publishing = Some(Publishing {
            guard: Some(guard),
            session,
            tx,
            base_ms: None,
            bucket: ByteBucket::new(self.hub.limits.max_bitrate),
            ended: false,
        });
        Ok(())
    }

    /// Whether `secret` is the stream's ingest token (64 hex characters) or
    /// the encoder key derived from it.
    async fn key_matches(&self, id: &str, secret: &str) -> Result<bool, crate::db::DbError> {
        if secret.len() == 64 {
            return Ok(self.hub.db.check_ingest_token(id, secret).await? == Some(true));
        }
        let (Some(keys), Some(hash)) = (&self.keys, self.hub.db.ingest_token_hash(id).await?)
        else {
            return Ok(false);
        };
        let expected = keys.stream_key(id, &hash);
        Ok(crate::db::streams::subtle_eq::ct_eq(
            expected.as_bytes(),
            secret.as_bytes(),
        ))
    }

    async fn video(&mut self, v: FlvVideo) -> Result<(), Reason> {
        if v.codec != VideoCodec::Avc {
            let why = format!(
                "video codec {} is not supported: set the encoder to H.264",
                v.codec.name()
            );
            return self.refuse(status::STREAM_FAILED, &why, Reason::Codec);
        }
        let packet_type = match v.kind {
            VideoPacketKind::SequenceHeader => 0u8,
            VideoPacketKind::CodedFrame => 1,
            VideoPacketKind::EndOfSequence => 2,
            _ => return Ok(()),
        };
        let frame_type: u8 = match v.frame_type {
            VideoFrameType::KeyFrame => 1,
            VideoFrameType::InterFrame => 2,
            VideoFrameType::DisposableInterFrame => 3,
            VideoFrameType::GeneratedKeyFrame => 4,
            VideoFrameType::Command | VideoFrameType::Reserved(_) => return Ok(()),
        };
        let mut body = BytesMut::with_capacity(v.data.len() + 5);
        body.put_u8((frame_type << 4) | 7);
        body.put_u8(packet_type);
        let cts = v.composition_offset_ms.clamp(-0x80_0000, 0x7f_ffff);
        body.put_slice(&cts.to_be_bytes()[1..]);
        body.put_slice(&v.data);
        self.forward(9, v.dts_ms, body.freeze()).await
    }

    async fn audio(&mut self, a: FlvAudio) -> Result<(), Reason> {
        if a.codec != AudioCodec::Aac {
            let why = format!(
                "audio codec {} is not supported: set the encoder to AAC",
                a.codec.name()
            );
            return self.refuse(status::STREAM_FAILED, &why, Reason::Codec);
        }
        let packet_type = match a.kind {
            AudioPacketKind::SequenceHeader => 0u8,
            AudioPacketKind::CodedFrame => 1,
            _ => return Ok(()),
        };
        let mut body = BytesMut::with_capacity(a.data.len() + 2);
        // SoundFormat 10 (AAC); the rate/size/channel bits are fixed for AAC,
        // the AudioSpecificConfig says what the audio really is.
        body.put_u8(0xAF);
        body.put_u8(packet_type);
        body.put_slice(&a.data);
        self.forward(8, a.dts_ms, body.freeze()).await
    }

    /// Writes one FLV tag into the live session, within the byte budget.
    async fn forward(&mut self, tag_type: u8, dts_ms: i64, body: Bytes) -> Result<(), Reason> {
        let Some(p) = self.publishing.as_mut() else {
            // Media before an accepted publish is dropped by the protocol core.
            return Ok(());
        };
        if p.ended {
            return Ok(());
        }
        if !p.bucket.take(body.len() as u64 + 15, Instant::now()) {
            let why = format!(
                "the stream's bitrate is over the server's limit of {} kbit/s: lower the encoder's bitrate",
                self.hub.limits.max_bitrate / 1000
            );
            return self.refuse(status::STREAM_FAILED, &why, Reason::Bitrate);
        }
        let base = *p.base_ms.get_or_insert(dts_ms);
        let tag = flv_tag(tag_type, flv_time(dts_ms, base), &body);
        if p.tx.send(Feed::Chunk(tag)).await.is_err() {
            return self.refuse(
                status::STREAM_FAILED,
                "the media pipeline stopped",
                Reason::Internal,
            );
        }
        Ok(())
    }
}

/// An FLV file header announcing audio and video, and the first
/// PreviousTagSize.
fn flv_header() -> Bytes {
    Bytes::from_static(&[b'F', b'L', b'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0])
}

/// An FLV tag's 32-bit millisecond time: `dts - base`, before the start
/// clamped to 0, wrapping after 49 days as FLV's clock does.
fn flv_time(dts_ms: i64, base_ms: i64) -> u32 {
    let t = dts_ms.saturating_sub(base_ms).max(0);
    (t & 0xffff_ffff) as u32
}

/// One FLV tag with its trailing PreviousTagSize.
fn flv_tag(tag_type: u8, time_ms: u32, body: &[u8]) -> Bytes {
    let size = body.len().min(0xff_ffff) as u32;
    let mut out = BytesMut::with_capacity(body.len() + 15);
    out.put_u8(tag_type);
    out.put_slice(&size.to_be_bytes()[1..]);
    out.put_slice(&time_ms.to_be_bytes()[1..]);
    out.put_u8((time_ms >> 24) as u8);
    out.put_slice(&[0, 0, 0]);
    out.put_slice(body.get(..size as usize).unwrap_or(body));
    out.put_u32(size + 11);
    out.freeze()
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

    #[test]
    fn flv_tags_carry_size_time_and_trailer() {
        let tag = flv_tag(9, 0x0123_4567, &[1, 2, 3]);
        assert_eq!(
            tag.as_ref(),
            &[9, 0, 0, 3, 0x23, 0x45, 0x67, 0x01, 0, 0, 0, 1, 2, 3, 0, 0, 0, 14]
        );
        assert_eq!(flv_time(1_500, 1_000), 500);
        assert_eq!(flv_time(900, 1_000), 0, "before the start");
        assert_eq!(flv_time(1 << 33, 0), 0, "wraps like FLV's clock");
        assert_eq!(&flv_header()[..3], b"FLV");
    }

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
}
