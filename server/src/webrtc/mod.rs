//! WebRTC ingest: WHIP (RFC 9725) publishers send H.264 (or VP8) and Opus over one
//! UDP socket (`--webrtc-udp-addr`), into the same live session as every
//! other source.
//!
//! - `POST /api/v1/streams/{id}/whip` ([`Endpoint::publish`]) takes an SDP
//!   offer, checks it ([`sdp::check_offer`]) and the publisher's right
//!   (`Authorization: Bearer <stream key>` as RTMP and SRT take it, or the
//!   owner's session), and answers with str0m's SDP answer: ICE-lite, one
//!   host candidate (`--webrtc-public-ip`, else the bound address).
//! - One task owns the socket and every session's `Rtc` ([`table::Table`],
//!   the sans-IO core): datagrams go to the `Rtc` that accepts them, timers
//!   are driven, and a session that does not connect (ICE and DTLS) within
//!   `--webrtc-connect-timeout-ms`, or falls silent that long, is freed.
//! - Per session, a task muxes the depacketized frames (H.264 Annex B or
//!   VP8 at 90 kHz, Opus at 48 kHz) into MPEG-TS for H.264, live WebM for
//!   VP8 ([`crate::media::framemux`]), and hands it to [`EncoderPublish`] as
//!   SRT does: the pipeline, ladder, Opus→AAC,
//!   recording and captions are the ones every source gets. The publisher
//!   is asked for a keyframe (PLI) when it connects and while none came;
//!   nothing before the first keyframe is kept.
//! - `DELETE` on the answer's `Location` ends the stream; a publisher that
//!   disappears is a dropped encoder: the stream waits
//!   `--ingest-resume-grace` for it.
//!
//! Refusals are counted in `onair_ingest_refusals_total{transport="whip"}`;
//! `onair_webrtc_sessions` is the number of sessions held.
//!
//! WHEP playback ([`Endpoint::play`], `whep.rs`): a viewer's `Rtc` lives in
//! the same table as a viewer of the stream's WHIP publisher, whose media is
//! forwarded to it as received (no decoding), or of a fed source: the
//! pipeline's H.264 passthrough rendition and Opus audio of a stream live
//! from RTMP, SRT or WebSocket (`fed.rs`); `--webrtc-max-viewers` caps
//! them. `socket.rs` is the socket task.
//!
//! Cluster mode (`relay.rs`): a WHEP viewer on a node that does not own the
//! stream is a viewer of the stream's relay, one upstream WebRTC session
//! ([`upstream::Upstream`]) from this node to the owner, shared by every
//! viewer of the stream on this node.
//!
//! Not built yet: trickle ICE (`PATCH`).

mod fed;
mod mux;
mod relay;
pub mod sdp;
mod socket;
pub mod table;
pub mod upstream;
mod whep;

use mux::mux_task;
pub use mux::Timeline;
pub use relay::{OwnerAnswer, OwnerLink, RELAY_LINGER};
use socket::run;
pub use whep::{viewer_refused, WhepError};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::MediaKind;
use str0m::{Candidate, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::auth::playback::PlaybackSigner;
use crate::db::Database;
use crate::ingest::encoder::{check_key, refused, split_key, EncoderPublish, Reason, Transport};
use crate::ingest::IngestHub;
use crate::media::framemux::{vp8_keyframe_size, FrameMux, Track, VideoCodec, AUDIO_HZ, VIDEO_HZ};
use sdp::OfferError;
use table::{Closed, Frame, Out, Role, SessionId, Table};

/// Frames buffered between the socket task and a session's muxing task.
const FRAME_QUEUE: usize = 1024;
/// IP, UDP, SRTP and RTP headers of one packet, counted against the bitrate.
const PACKET_OVERHEAD: u64 = 20 + 8 + 12 + 10;
/// One RTP packet's payload, about (to count packets per frame).
const PACKET_PAYLOAD: u64 = 1200;

/// WebRTC ingest settings; each is a flag (see the README).
#[derive(Debug, Clone)]
pub struct WebrtcConfig {
    /// The host candidate's address; `None`: the bound address.
    pub public_ip: Option<IpAddr>,
    /// Concurrent WHIP sessions, connecting or publishing.
    pub max_sessions: usize,
    /// Concurrent WHEP viewers, connecting or playing.
    pub max_viewers: usize,
    /// How long connecting (ICE and DTLS) may take, and how long a connected
    /// publisher may be silent.
    pub connect_timeout: Duration,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        WebrtcConfig {
            public_ip: None,
            max_sessions: 32,
            max_viewers: 200,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl WebrtcConfig {
    /// At least one session and one viewer, a time-out between 100 ms and 5 minutes.
    pub fn sanitized(mut self) -> Self {
        self.max_sessions = self.max_sessions.max(1);
        self.max_viewers = self.max_viewers.max(1);
        self.connect_timeout = self
            .connect_timeout
            .clamp(Duration::from_millis(100), Duration::from_secs(300));
        self
    }
}

/// Why a WHIP request is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WhipError {
    /// The body is not `application/sdp`.
    #[error("the offer must be sent as Content-Type: application/sdp")]
    ContentType,
    /// The offer is not SDP, or str0m cannot negotiate it.
    #[error("{0}")]
    MalformedSdp(String),
    /// No usable codec.
    #[error(transparent)]
    Codec(OfferError),
    /// No stream with this id.
    #[error("no stream {0}")]
    UnknownStream(String),
    /// No `Authorization: Bearer` and no owner's session.
    #[error("send the stream key as Authorization: Bearer <stream key>")]
    Unauthenticated,
    /// A key that is not this stream's.
    #[error("wrong stream key: copy it from the stream's Encoder panel")]
    WrongKey,
    /// Another publisher is live on the stream.
    #[error("another publisher is live on this stream")]
    AlreadyPublishing,
    /// `--webrtc-max-sessions` sessions are held.
    #[error("the server has {0} WebRTC sessions, its limit: try again later")]
    TooManySessions(usize),
    /// No such WHIP session (`DELETE`).
    #[error("no WHIP session {0} on this stream")]
    UnknownSession(String),
    /// The server cannot take the publish now (database, socket task).
    #[error("{0}")]
    Internal(String),
}

impl WhipError {
    /// The refusal metric's reason.
    pub fn reason(&self) -> Reason {
        match self {
            WhipError::ContentType | WhipError::MalformedSdp(_) => Reason::Protocol,
            WhipError::Codec(_) => Reason::Codec,
            WhipError::UnknownStream(_)
            | WhipError::Unauthenticated
            | WhipError::WrongKey
            | WhipError::UnknownSession(_) => Reason::WrongKey,
            WhipError::AlreadyPublishing => Reason::AlreadyPublishing,
            WhipError::TooManySessions(_) => Reason::TooManyConnections,
            WhipError::Internal(_) => Reason::Internal,
        }
    }
}

/// Who asks: the `Authorization` header's bearer token, and whether the
/// request's session is the stream owner's or an admin's (the caller looks
/// the session up; `owner` is its user id and role).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// `Authorization: Bearer <token>`.
    pub bearer: Option<String>,
    /// The signed-in user's id and role, if any.
    pub user: Option<(String, String)>,
}

/// An accepted offer.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The SDP answer.
    pub answer: String,
    /// The session's resource id (for `Location` and `DELETE`).
    pub resource: String,
}

enum Command {
    Add {
        id: SessionId,
        rtc: Box<Rtc>,
        feed: mpsc::Sender<Media>,
    },
    AddViewer {
        id: SessionId,
        source: SessionId,
        rtc: Box<Rtc>,
    },
    /// A live pipeline's WebRTC output becomes a source (`fed.rs`).
    AddFed { id: SessionId },
    /// One frame of a fed source.
    Feed {
        id: SessionId,
        frame: crate::media::live::RtcFrame,
        /// The source's frames not yet written (`fed::FED_BACKLOG`).
        backlog: Arc<std::sync::atomic::AtomicUsize>,
    },
    /// One frame of a relay's upstream (`relay.rs`).
    Relayed {
        id: SessionId,
        frame: table::Forward,
        /// The relay's frames not yet written (`fed::FED_BACKLOG`).
        backlog: Arc<std::sync::atomic::AtomicUsize>,
    },
    Remove {
        id: SessionId,
        /// The publisher ended the stream (`DELETE`).
        ended: bool,
    },
}

/// What a session's muxing task is told.
#[derive(Debug)]
enum Media {
    Connected(SocketAddr),
    Frame(Frame),
    End,
}

#[derive(Debug)]
struct Info {
    id: SessionId,
    stream: String,
    /// A publisher's video codecs, as its answer took them.
    video: Vec<&'static str>,
}

/// The WHIP endpoint: its socket task and the sessions it holds.
#[derive(Debug)]
pub struct Endpoint {
    cfg: WebrtcConfig,
    hub: Arc<IngestHub>,
    db: Database,
    keys: Option<PlaybackSigner>,
    local: SocketAddr,
    candidate: SocketAddr,
    commands: mpsc::UnboundedSender<Command>,
    sessions: Mutex<HashMap<String, Info>>,
    viewers: Mutex<HashMap<String, Info>>,
    /// Per stream, its fed source's id (WHEP of a non-WebRTC source).
    fed: Mutex<HashMap<String, SessionId>>,
    /// Per stream played here from another node, its relay (`relay.rs`).
    relays: Mutex<HashMap<String, relay::Relay>>,
    /// Per stream, the relay start under way (one at a time).
    relay_starts: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    next_id: AtomicU64,
}

/// Starts the WHIP endpoint on `socket` (already bound): spawns its socket
/// task, which runs until the endpoint is dropped.
pub fn serve(
    socket: std::net::UdpSocket,
    hub: Arc<IngestHub>,
    db: Database,
    keys: Option<PlaybackSigner>,
    cfg: WebrtcConfig,
) -> std::io::Result<Arc<Endpoint>> {
    let cfg = cfg.sanitized();
    socket.set_nonblocking(true)?;
    let socket = UdpSocket::from_std(socket)?;
    let local = socket.local_addr()?;
    let candidate = SocketAddr::new(cfg.public_ip.unwrap_or(local.ip()), local.port());
    let (commands, rx) = mpsc::unbounded_channel();
    let _ = hub.whip_addr.set(local);
    let endpoint = Arc::new(Endpoint {
        cfg: cfg.clone(),
        hub,
        db,
        keys,
        local,
        candidate,
        commands,
        sessions: Mutex::new(HashMap::new()),
        viewers: Mutex::new(HashMap::new()),
        fed: Mutex::new(HashMap::new()),
        relays: Mutex::new(HashMap::new()),
        relay_starts: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
    });
    metrics::gauge!("onair_webrtc_sessions").set(0.0);
    metrics::gauge!("onair_webrtc_viewers").set(0.0);
    metrics::gauge!("onair_webrtc_relays").set(0.0);
    tokio::spawn(run(
        socket,
        candidate,
        Arc::downgrade(&endpoint),
        rx,
        cfg.connect_timeout,
    ));
    Ok(endpoint)
}

impl Endpoint {
    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address announced as the ICE host candidate.
    pub fn candidate_addr(&self) -> SocketAddr {
        self.candidate
    }

    /// WHIP sessions held (connecting or publishing).
    pub fn session_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Info>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn forget(&self, id: SessionId) {
        let mut s = self.lock();
        s.retain(|_, i| i.id != id);
        metrics::gauge!("onair_webrtc_sessions").set(s.len() as f64);
        drop(s);
        let mut v = self.lock_viewers();
        let left: Vec<String> = v
            .values()
            .filter(|i| i.id == id)
            .map(|i| i.stream.clone())
            .collect();
        v.retain(|_, i| i.id != id);
        metrics::gauge!("onair_webrtc_viewers").set(v.len() as f64);
        let idle: Vec<String> = left
            .into_iter()
            .filter(|s| !v.values().any(|i| &i.stream == s))
            .collect();
        drop(v);
        for stream in idle {
            self.end_fed(&stream);
            self.relay_idle(&stream);
        }
    }

    /// `POST /api/v1/streams/{stream}/whip`: checks and accepts `offer`.
    /// Every refusal is counted.
    pub async fn publish(
        self: &Arc<Self>,
        stream: &str,
        content_type: Option<&str>,
        caller: &Caller,
        offer: &[u8],
    ) -> Result<Accepted, WhipError> {
        let result = self.try_publish(stream, content_type, caller, offer).await;
        if let Err(e) = &result {
            refused(Transport::Whip, e.reason());
            tracing::info!(stream, error = %e, "WHIP publish refused");
        }
        result
    }

    async fn try_publish(
        self: &Arc<Self>,
        stream: &str,
        content_type: Option<&str>,
        caller: &Caller,
        offer: &[u8],
    ) -> Result<Accepted, WhipError> {
        let sdp_type = content_type
            .and_then(|c| c.split(';').next())
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/sdp"));
        if !sdp_type {
            return Err(WhipError::ContentType);
        }
        self.authorize(stream, caller).await?;
        let text = std::str::from_utf8(offer)
            .map_err(|_| WhipError::MalformedSdp("the offer is not UTF-8 text".into()))?;
        let summary = sdp::check_offer(text).map_err(|e| match e {
            OfferError::Malformed(_) => WhipError::MalformedSdp(e.to_string()),
            other => WhipError::Codec(other),
        })?;
        let parsed = SdpOffer::from_sdp_string(text)
            .map_err(|e| WhipError::MalformedSdp(format!("the body is not an SDP offer: {e}")))?;
        if self.hub.is_publishing(stream) {
            return Err(WhipError::AlreadyPublishing);
        }
        let max = self.cfg.max_sessions;
        // Reserve the slot before the (quick) negotiation, so a burst of
        // offers cannot pass the cap together.
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let resource = random_resource().map_err(WhipError::Internal)?;
        {
            let mut s = self.lock();
            if s.len() >= max {
                return Err(WhipError::TooManySessions(max));
            }
            s.insert(
                resource.clone(),
                Info {
                    id,
                    stream: stream.to_string(),
                    video: Vec::new(),
                },
            );
            metrics::gauge!("onair_webrtc_sessions").set(s.len() as f64);
        }
        match self.negotiate(id, stream, parsed, summary.audio) {
            Ok(answer) => Ok(Accepted { answer, resource }),
            Err(e) => {
                self.forget(id);
                Err(e)
            }
        }
    }

    fn negotiate(
        self: &Arc<Self>,
        id: SessionId,
        stream: &str,
        offer: SdpOffer,
        audio: bool,
    ) -> Result<String, WhipError> {
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(true)
            .enable_vp8(true)
            .enable_opus(true, false)
            .set_stats_interval(None)
            .build(now);
        let candidate = Candidate::host(self.candidate, "udp")
            .map_err(|e| WhipError::Internal(format!("no host candidate: {e}")))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WhipError::MalformedSdp(format!("the offer cannot be negotiated: {e}")))?;
        let answer = answer.to_sdp_string();
        if !answer_has_video(&answer) {
            return Err(WhipError::Codec(OfferError::NoVideoCodec {
                offered: "no H.264 profile or VP8 that the server takes".into(),
            }));
        }
        if let Some(i) = self.lock().values_mut().find(|i| i.id == id) {
            i.video = sdp::video_codecs(&answer);
        }
        let (feed, frames) = mpsc::channel(FRAME_QUEUE);
        self.commands
            .send(Command::Add {
                id,
                rtc: Box::new(rtc),
                feed,
            })
            .map_err(|_| WhipError::Internal("the WebRTC socket task stopped".into()))?;
        tokio::spawn(mux_task(
            self.clone(),
            id,
            stream.to_string(),
            audio,
            frames,
        ));
        Ok(answer)
    }

    /// `DELETE` on a session's resource: the publisher ends the stream.
    pub async fn end(
        &self,
        stream: &str,
        resource: &str,
        caller: &Caller,
    ) -> Result<(), WhipError> {
        let id = {
            let s = self.lock();
            match s.get(resource) {
                Some(i) if i.stream == stream => i.id,
                _ => return Err(WhipError::UnknownSession(resource.to_string())),
            }
        };
        self.authorize(stream, caller).await?;
        self.forget(id);
        let _ = self.commands.send(Command::Remove { id, ended: true });
        Ok(())
    }

    /// The stream exists, and the caller holds its key or is its owner (or
    /// an admin) signed in.
    async fn authorize(&self, stream: &str, caller: &Caller) -> Result<(), WhipError> {
        let row = self.db.get_stream(stream).await.map_err(|e| {
            tracing::error!(stream, error = %e, "cannot read a stream for WHIP");
            WhipError::Internal("the server cannot check the stream right now; retry".into())
        })?;
        let Some(row) = row else {
            return Err(WhipError::UnknownStream(stream.to_string()));
        };
        if let Some((user, role)) = &caller.user {
            if crate::auth::owner_or_admin(user, role, &row.owner_id) {
                return Ok(());
            }
        }
        let Some(key) = caller.bearer.as_deref() else {
            return Err(WhipError::Unauthenticated);
        };
        if split_key(key).map(|(id, _)| id) != Some(stream) {
            return Err(WhipError::WrongKey);
        }
        match check_key(&self.hub, self.keys.as_ref(), key).await {
            Ok(_) => Ok(()),
            Err(r) if r.reason == Reason::WrongKey => Err(WhipError::WrongKey),
            Err(r) => Err(WhipError::Internal(r.why)),
        }
    }
}

/// Whether the answer's first enabled video section kept H.264 or VP8.
fn answer_has_video(answer: &str) -> bool {
    sdp::check_offer(answer).is_ok()
        || answer.split("m=video ").skip(1).any(|s| {
            let s = s.to_ascii_lowercase();
            !s.starts_with('0') && (s.contains("h264/90000") || s.contains("vp8/90000"))
        })
}

/// 128 random bits, hex: a resource id nobody guesses.
fn random_resource() -> Result<String, String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| format!("no randomness: {e}"))?;
    Ok(hex::encode(raw))
}

#[cfg(test)]
mod tests;
