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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::encoder::{check_key, refused, EncoderPublish, Reason, Refusal, Transport};
use super::IngestHub;
use crate::auth::playback::PlaybackSigner;

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

/// The RTMPS certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the certificate and key.
    #[error("the certificate and key do not fit together: {0}")]
    Config(#[from] rustls::Error),
}

/// A TLS acceptor for RTMPS from a PEM certificate chain and private key.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem = |path: &std::path::Path, e: &dyn std::fmt::Display| TlsError::Pem {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(cert, &e))?;
    if certs.is_empty() {
        return Err(pem(cert, &"no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem(key, &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Accepts RTMP connections on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, hub: Arc<IngestHub>, cfg: RtmpConfig) {
    if let Ok(addr) = listener.local_addr() {
        let _ = hub.rtmp_addr.set(addr);
    }
    accept_loop(listener, hub, cfg, None).await;
}

/// Accepts RTMPS connections (RTMP inside TLS) on `listener` until the task
/// is dropped. The TLS handshake must finish within the RTMP handshake's
/// time-out; a failed one counts as a `protocol` refusal.
pub async fn serve_tls(
    listener: TcpListener,
    hub: Arc<IngestHub>,
    cfg: RtmpConfig,
    tls: tokio_rustls::TlsAcceptor,
) {
    if let Ok(addr) = listener.local_addr() {
        let _ = hub.rtmps_addr.set(addr);
    }
    accept_loop(listener, hub, cfg, Some(tls)).await;
}

async fn accept_loop(
    listener: TcpListener,
    hub: Arc<IngestHub>,
    cfg: RtmpConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let transport = if tls.is_some() {
        Transport::Rtmps
    } else {
        Transport::Rtmp
    };
    let cfg = Arc::new(cfg.sanitized());
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, transport = transport.label(), "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refused(transport, Reason::TooManyConnections);
            tracing::warn!(%peer, limit = cfg.max_connections, transport = transport.label(), "connection refused: too many connections");
            drop(sock);
            continue;
        };
        metrics::counter!("onair_ingest_connections_total", "transport" => transport.label())
            .increment(1);
        let hub = hub.clone();
        let cfg = cfg.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = sock.set_nodelay(true);
            let conn = Connection::new(hub, &cfg, peer, transport);
            match tls {
                None => conn.run(sock).await,
                Some(tls) => {
                    let limit = cfg.protocol.handshake_timeout;
                    match tokio::time::timeout(limit, tls.accept(sock)).await {
                        Ok(Ok(sock)) => conn.run(sock).await,
                        Ok(Err(e)) => {
                            refused(transport, Reason::Protocol);
                            tracing::warn!(%peer, error = %e, "rtmps connection closed: TLS handshake failed");
                        }
                        Err(_) => {
                            refused(transport, Reason::Timeout);
                            tracing::warn!(%peer, "rtmps connection closed: TLS handshake timed out");
                        }
                    }
                }
            }
            drop(permit);
        });
    }
}

/// The live session a connection publishes into.
struct Publishing {
    bridge: EncoderPublish,
    /// The first media timestamp of this connection: FLV times start near 0.
    base_ms: Option<i64>,
}

struct Connection {
    hub: Arc<IngestHub>,
    rtmp: Rtmp,
    peer: SocketAddr,
    transport: Transport,
    idle_timeout: Duration,
    publishing: Option<Publishing>,
    /// A refusal was written: send it, then close.
    closing: bool,
    keys: Option<PlaybackSigner>,
}

impl Connection {
    fn new(hub: Arc<IngestHub>, cfg: &RtmpConfig, peer: SocketAddr, transport: Transport) -> Self {
        let idle_timeout = hub.limits.idle_timeout;
        Connection {
            hub,
            rtmp: Rtmp::new(cfg.protocol.clone(), Instant::now()),
            peer,
            transport,
            idle_timeout,
            publishing: None,
            closing: false,
            keys: cfg.keys.clone(),
        }
    }

    async fn run<S>(mut self, mut sock: S)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let label = self.transport.label();
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
                        refused(self.transport, Reason::Protocol);
                        tracing::warn!(peer = %self.peer, transport = label, error = %e, "rtmp connection closed: protocol error");
                        break;
                    }
                }
                Ok(Err(e)) => {
                    tracing::debug!(peer = %self.peer, transport = label, error = %e, "rtmp read failed");
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
                        refused(self.transport, Reason::Timeout);
                        tracing::warn!(peer = %self.peer, transport = label, reason = %why, "rtmp connection timed out");
                        break;
                    }
                }
            }
            while let Some(event) = self.rtmp.poll_event() {
                if let Err(reason) = self.handle(event).await {
                    refused(self.transport, reason);
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
        // An encoder that did not unpublish may come back within the resume
        // grace: dropping the bridge detaches it.
        self.publishing.take();
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
                    p.bridge.end(&self.hub).await;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn refuse(&mut self, code: &str, refusal: Refusal) -> Result<(), Reason> {
        tracing::warn!(peer = %self.peer, transport = self.transport.label(), reason = refusal.reason.label(), why = %refusal.why, "rtmp publish refused");
        let _ = self.rtmp.reject_publish(code, &refusal.why);
        Err(refusal.reason)
    }

    async fn publish(&mut self, key: &str) -> Result<(), Reason> {
        let id = match check_key(&self.hub, self.keys.as_ref(), key).await {
            Ok(id) => id,
            Err(r) if r.reason == Reason::WrongKey => {
                return self.refuse(status::PUBLISH_BAD_NAME, r)
            }
            Err(r) => return self.refuse(status::PUBLISH_DENIED, r),
        };
        let bridge = match EncoderPublish::start(
            &self.hub,
            self.transport,
            &id,
            self.peer,
            Some(flv_header()),
        )
        .await
        {
            Ok(b) => b,
            Err(r) => return self.refuse(status::PUBLISH_DENIED, r),
        };
        if self.rtmp.accept_publish().is_err() {
            return Err(Reason::Protocol);
        }
        self.publishing = Some(Publishing {
            bridge,
            base_ms: None,
        });
        Ok(())
    }

    fn refuse_codec(&mut self, why: String) -> Result<(), Reason> {
        let refusal = Refusal {
            reason: Reason::Codec,
            why,
        };
        self.refuse(status::STREAM_FAILED, refusal)
    }

    async fn video(&mut self, v: FlvVideo) -> Result<(), Reason> {
        if v.codec != VideoCodec::Avc {
            let why = format!(
                "video codec {} is not supported: set the encoder to H.264",
                v.codec.name()
            );
            return self.refuse_codec(why);
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
            return self.refuse_codec(why);
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
        if p.bridge.is_ended() {
            return Ok(());
        }
        let base = *p.base_ms.get_or_insert(dts_ms);
        let tag = flv_tag(tag_type, flv_time(dts_ms, base), &body);
        let wire = tag.len() as u64;
        match p.bridge.send(tag, wire).await {
            Ok(()) => Ok(()),
            Err(r) => self.refuse(status::STREAM_FAILED, r),
        }
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
}
