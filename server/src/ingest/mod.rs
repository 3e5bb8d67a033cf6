//! Live ingest over WebSocket (`/api/v1/streams/{id}/ingest`), protocol in
//! `docs/protocol.md`. A [`Session`] per live stream outlives its socket: the
//! publisher can drop and resume, and the pipeline keeps running meanwhile.
//! The session runs the media pipeline with [`outputs::LiveOutputs`] as its
//! sink: the one place a stream's outputs fan out (origin, archive, captions).

pub mod encoder;
mod numbering;
mod orphans;
pub mod outputs;
pub mod protocol;
pub mod resume;
pub mod rtc;
pub mod rtmp;
mod socket;
pub mod srt;
pub mod states;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::protocol::StreamState;
use tokio::sync::{broadcast, mpsc, watch};

use crate::db::Database;
use crate::media::demux::{ChunkReader, Feed};
use crate::media::health::HealthMeter;
use crate::media::live::{self, LiveConfig};
use crate::origin::{LiveStream, Origin};
use crate::recording::{Archive, Recorder};
use crate::store::uploader::Uploader;
use crate::store::ObjectStore;

pub use socket::ingest_route;

/// Who owns a live stream's pipeline when several nodes serve (cluster
/// mode): a lease per stream, held by the node that accepted its ingest.
/// Implemented on NATS at start-up (`server`); ingest knows only this.
#[async_trait::async_trait]
pub trait Ownership: Send + Sync + std::fmt::Debug {
    /// Takes the stream's lease for this node (or finds it is this node's
    /// already). [`Claim::Taken`] refuses the publisher as a second
    /// publisher is refused on one node.
    async fn claim(&self, stream_id: &str) -> Claim;

    /// The other node holding the stream's lease now, if any (a lease of
    /// this node's is `None`: without a session here it is a leftover from
    /// before a restart, and lapses); an error when nobody can say (NATS is
    /// down).
    async fn holder(&self, stream_id: &str) -> Result<Option<String>, String>;
}

/// The answer to [`Ownership::claim`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Claim {
    /// Held by this node until released.
    Held(Box<dyn Lease>),
    /// Another node owns the stream.
    Taken {
        /// The owner.
        owner: String,
    },
    /// Nobody can say now (NATS is down): the publisher is taken, this
    /// node serves the stream alone, and says so in the log.
    Unknown(String),
}

/// A held lease: renewed while it lives; [`Lease::release`] gives it back
/// when the pipeline stops (dropped without it, it lapses).
pub trait Lease: Send + Sync + std::fmt::Debug {
    /// Gives the lease back.
    fn release(self: Box<Self>);
}

/// Sequence numbers a new session skips after stored segments another node
/// (or an earlier process) numbered: see `IngestHub::first_msn`.
pub const FOREIGN_MSN_MARGIN: u64 = 10;

/// Ingest limits; each is a flag (see the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Largest binary message in bytes (8-byte header included).
    pub max_message_bytes: usize,
    /// Highest sustained ingest rate in bits per second (bursts of two seconds' worth are allowed).
    pub max_bitrate: u64,
    /// Close the socket after this long without a message.
    pub idle_timeout: Duration,
    /// How long a dropped publisher may take to resume before the stream is interrupted.
    pub resume_grace: Duration,
    /// Chunks buffered between the socket and the pipeline.
    pub queue_chunks: usize,
}

impl IngestLimits {
    /// Within this module's bounds: messages of at least 1 KiB, at least
    /// 1 kbit/s, an idle timeout of at least a second.
    pub fn sanitized(mut self) -> Self {
        self.max_message_bytes = self.max_message_bytes.max(1024);
        self.max_bitrate = self.max_bitrate.max(1000);
        self.idle_timeout = self.idle_timeout.max(Duration::from_secs(1));
        self.queue_chunks = self.queue_chunks.max(1);
        self
    }
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_message_bytes: 4 * 1024 * 1024,
            max_bitrate: 20_000_000,
            idle_timeout: Duration::from_secs(15),
            resume_grace: Duration::from_secs(30),
            queue_chunks: 64,
        }
    }
}

/// One live stream's ingest state, shared by its socket(s) and its pipeline.
#[derive(Debug)]
pub struct Session {
    stream_id: String,
    tx: Mutex<Option<mpsc::Sender<Feed>>>,
    next_seq: AtomicU64,
    /// Media has reached the pipeline (a period marker now ends a container).
    received: AtomicBool,
    attached: AtomicBool,
    /// Bumped on every attach, so a grace timer knows whether the publisher came back.
    generation: AtomicU64,
    /// Set when the pipeline stops: `Some(error)` if it failed.
    outcome: watch::Receiver<Option<Result<(), String>>>,
    /// What is measured of the input (stream health).
    health: Arc<HealthMeter>,
}

impl Session {
    /// What is measured of the input: protocol, codecs, picture, frame
    /// rate, bitrate, keyframe interval, reconnects.
    pub fn health(&self) -> &Arc<HealthMeter> {
        &self.health
    }

    fn sender(&self) -> Option<mpsc::Sender<Feed>> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Ends the input: the pipeline flushes and closes the playlists.
    fn close_input(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Whether `chunk` begins a new container (a Matroska/WebM EBML header
/// naming its DocType, or an MP4 `ftyp` box): a recorder or a publisher that
/// (re)started, whose media clock starts again. Chunks of a running container
/// never do: a Matroska stream has one EBML header, an MP4 stream one `ftyp`.
pub fn starts_container(chunk: &[u8]) -> bool {
    const EBML: [u8; 4] = [0x1a, 0x45, 0xdf, 0xa3];
    if chunk.starts_with(&EBML) {
        let head = &chunk[..chunk.len().min(64)];
        let names = |doc: &[u8]| head.windows(doc.len()).any(|w| w == doc);
        return names(b"matroska") || names(b"webm");
    }
    let size = chunk
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    chunk.get(4..8) == Some(b"ftyp") && (8..=4096).contains(&size)
}

/// All ingest sessions on this node.
#[derive(Debug)]
pub struct IngestHub {
    /// Limits applied to every connection.
    pub limits: IngestLimits,
    /// Output timing.
    pub live: LiveConfig,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Per stream, the media sequence number its next session starts at.
    next_msn: Mutex<HashMap<String, u64>>,
    origin: Arc<Origin>,
    uploader: Uploader,
    store: Arc<dyn ObjectStore>,
    /// Builds each stream's recording when its pipeline stops.
    recorder: Arc<Recorder>,
    /// Live captions, when an endpoint is configured.
    transcriber: std::sync::OnceLock<Arc<crate::transcribe::Transcriber>>,
    /// Stream state changes, for the realtime rooms.
    states: broadcast::Sender<StateChange>,
    /// Where the RTMP listener is bound, once it is ([`rtmp::serve`]).
    pub rtmp_addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// Where the RTMPS listener is bound, once it is ([`rtmp::serve_tls`]).
    pub rtmps_addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// Where the SRT listener is bound, once it is ([`srt::serve`]).
    pub srt_addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// Where the WHIP endpoint's UDP socket is bound, once it is
    /// (`webrtc::serve`).
    pub whip_addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// Writes stream states to the database until they land.
    writer: Arc<states::StateWriter>,
    /// Stream ownership among nodes (cluster mode; set once at start-up).
    ownership: std::sync::OnceLock<Arc<dyn Ownership>>,
    /// The leases this node holds, per stream, while its pipeline runs.
    leases: Mutex<HashMap<String, Box<dyn Lease>>>,
    /// Set by [`IngestHub::shutdown`]: ending pipelines leave their streams resumable.
    stopping: AtomicBool,
    /// Checks encoder stream keys.
    db: Database,
    /// Per stream, its WebRTC output queue ([`rtc::RtcFeed`]).
    rtc_feeds: Mutex<HashMap<String, Arc<rtc::RtcFeed>>>,
}

/// A stream went live, ended or was interrupted on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The stream.
    pub stream_id: String,
    /// Its new state.
    pub state: StreamState,
    /// Live, but the publisher's connection is gone (within the resume
    /// grace). Not stored: only the rooms are told.
    pub broadcaster_away: bool,
}

/// Why a publisher cannot attach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// Another socket is publishing to this stream.
    #[error("another publisher is live on this stream")]
    AlreadyPublishing,
    /// `resume_after` leaves no sequence number to continue with.
    #[error("resume_after {0} is past the last sequence number ({max})", max = app::protocol::ingest::MAX_SEQ)]
    SequenceOverflow(u64),
    /// The server is shutting down; publish again after its restart.
    #[error("the server is restarting; publish again in a moment")]
    ShuttingDown,
}

/// A publisher attached to a live session: while it exists, nobody else can
/// publish to the stream. Dropping it detaches the publisher (the stream
/// waits [`IngestLimits::resume_grace`] for a resume, then is interrupted),
/// so however its connection ends, with an error, a disconnect or a panic
/// that unwinds its task, the stream is never left attached to nobody.
/// [`Publisher::ended`] is for the one ending with nothing to release: the
/// publisher ended the stream itself.
#[derive(Debug)]
pub struct Publisher {
    hub: Arc<IngestHub>,
    session: Arc<Session>,
    ended: bool,
}

impl Publisher {
    /// The session published to.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The publisher ended the stream (`end`): there is nothing to wait for.
    pub fn ended(mut self) {
        self.ended = true;
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if !self.ended {
            self.hub.detach(&self.session);
        }
    }
}

impl IngestHub {
    /// A hub publishing into `origin` and recording stream states in `db`.
    pub fn new(
        limits: IngestLimits,
        live: LiveConfig,
        origin: Arc<Origin>,
        db: Database,
        uploader: Uploader,
        store: Arc<dyn ObjectStore>,
        recorder: Arc<Recorder>,
    ) -> Arc<Self> {
        Arc::new(IngestHub {
            transcriber: std::sync::OnceLock::new(),
            limits,
            live,
            sessions: Mutex::new(HashMap::new()),
            next_msn: Mutex::new(HashMap::new()),
            origin,
            writer: states::StateWriter::new(db.clone()),
            db,
            uploader,
            store,
            recorder,
            states: broadcast::channel(256).0,
            rtmp_addr: std::sync::OnceLock::new(),
            rtmps_addr: std::sync::OnceLock::new(),
            srt_addr: std::sync::OnceLock::new(),
            ownership: std::sync::OnceLock::new(),
            leases: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            rtc_feeds: Mutex::new(HashMap::new()),
            whip_addr: std::sync::OnceLock::new(),
        })
    }

    /// Takes a lease for each stream before its pipeline starts (cluster
    /// mode; set once, at start-up).
    pub fn set_ownership(&self, ownership: Arc<dyn Ownership>) {
        let _ = self.ownership.set(ownership);
    }

    /// [`IngestHub::attach`] with stream ownership: a stream whose session
    /// is not on this node needs its lease first, and another node's lease
    /// refuses the publisher ([`AttachError::AlreadyPublishing`]), as a
    /// second publisher on one node is. Every publisher attaches through
    /// this; without ownership (one node) it is [`IngestHub::attach`].
    pub async fn attach_owned(
        self: &Arc<Self>,
        stream_id: &str,
        capture_start_ms: i64,
        resume_after: Option<u64>,
    ) -> Result<(Publisher, u64, bool), AttachError> {
        let Some(ownership) = self.ownership.get() else {
            return self.attach(stream_id, capture_start_ms, resume_after);
        };
        if self.session(stream_id).is_some() {
            // A resume (or a second publisher) here: the lease is this node's.
            return self.attach(stream_id, capture_start_ms, resume_after);
        }
        let lease = match ownership.claim(stream_id).await {
            Claim::Held(lease) => Some(lease),
            Claim::Taken { owner } => {
                tracing::info!(stream = stream_id, owner = %owner, "publisher refused: another node owns the stream");
                return Err(AttachError::AlreadyPublishing);
            }
            Claim::Unknown(why) => {
                tracing::warn!(stream = stream_id, reason = %why, "stream ownership unknown: serving this publisher without a lease");
                None
            }
        };
        let attached = self.attach(stream_id, capture_start_ms, resume_after);
        if let (Ok((_, _, true)), Some(lease)) = (&attached, lease) {
            self.leases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(stream_id.to_string(), lease);
        }
        attached
    }

    /// Transcribes every stream that starts from now on (set once, at start-up).
    pub fn set_transcriber(&self, transcriber: Arc<crate::transcribe::Transcriber>) {
        let _ = self.transcriber.set(transcriber);
    }

    /// Whether live streams are transcribed.
    pub fn captions_on(&self) -> bool {
        self.transcriber.get().is_some()
    }

    /// Every state change from now on (live, ended, interrupted).
    pub fn subscribe_states(&self) -> broadcast::Receiver<StateChange> {
        self.states.subscribe()
    }

    /// Records a stream's new state in the database (retried until it
    /// lands: [`states`]) and announces it.
    pub async fn set_state(&self, stream_id: &str, state: StreamState) {
        self.writer
            .set(stream_id, state, crate::clock::now_ms())
            .await;
        let _ = self.states.send(StateChange {
            stream_id: stream_id.to_string(),
            state,
            broadcaster_away: false,
        });
    }

    /// Tells the rooms that a live stream's publisher went away or came back.
    fn announce_away(&self, stream_id: &str, away: bool) {
        let _ = self.states.send(StateChange {
            stream_id: stream_id.to_string(),
            state: StreamState::Live,
            broadcaster_away: away,
        });
    }

    /// Attaches a publisher: resumes the stream's session or starts a new one
    /// (and its pipeline). Returns the attached publisher (detached when
    /// dropped), the next expected sequence number, and whether the session
    /// is new.
    pub fn attach(
        self: &Arc<Self>,
        stream_id: &str,
        capture_start_ms: i64,
        resume_after: Option<u64>,
    ) -> Result<(Publisher, u64, bool), AttachError> {
        if self.stopping() {
            return Err(AttachError::ShuttingDown);
        }
        let publisher = |session: Arc<Session>| Publisher {
            hub: self.clone(),
            session,
            ended: false,
        };
        // A client resuming a session this node no longer has (another
        // node's, before a failover) continues its numbering; its next chunk
        // must start a new container, which it records from when it is told
        // (`ready` with `new_session`): the session is dated from now, not
        // from the hello's clock (the first container's, long gone).
        let capture_start_ms = if resume_after.is_some() {
            crate::clock::now_ms()
        } else {
            capture_start_ms
        };
        let first_seq = match resume_after {
            Some(n) => {
                app::protocol::ingest::next_seq(n).ok_or(AttachError::SequenceOverflow(n))?
            }
            None => 0,
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = sessions.get(stream_id) {
            if s.attached.swap(true, Ordering::SeqCst) {
                return Err(AttachError::AlreadyPublishing);
            }
            s.generation.fetch_add(1, Ordering::SeqCst);
            s.health.reconnected();
            self.announce_away(stream_id, false);
            let next = s.next_seq.load(Ordering::SeqCst);
            return Ok((publisher(s.clone()), next, false));
        }
        let (tx, reader) = ChunkReader::channel(self.limits.queue_chunks);
        let (outcome_tx, outcome) = watch::channel(None);
        let session = Arc::new(Session {
            stream_id: stream_id.to_string(),
            tx: Mutex::new(Some(tx)),
            next_seq: AtomicU64::new(first_seq),
            received: AtomicBool::new(false),
            attached: AtomicBool::new(true),
            generation: AtomicU64::new(0),
            outcome,
            health: Arc::new(HealthMeter::default()),
        });
        sessions.insert(stream_id.to_string(), session.clone());
        drop(sessions);

        let window = LiveStream::new(Duration::from_millis(self.live.segment_ms * 3));
        self.origin.insert(stream_id, window.clone());
        let cfg = self.live;
        let hub = self.clone();
        let id = stream_id.to_string();
        let health = session.health.clone();
        let archive = Archive {
            uploader: self.uploader.clone(),
            stream: id.clone(),
            catalog: Some(self.recorder.catalog()),
        };
        tokio::spawn(async move {
            let first_msn = hub.first_msn(&id).await;
            let opts = live::RunOptions {
                capture_start_ms: Some(capture_start_ms),
                stream: id.clone(),
                first_msn,
                health: Some(health),
            };
            let tap = hub.transcriber.get().map(|t| t.start(&id, window.clone()));
            let published = window.clone();
            let mut outputs =
                outputs::LiveOutputs::new(window, Some(archive), tap).with_rtc(hub.rtc_feed(&id));
            let result =
                tokio::task::spawn_blocking(move || live::run(reader, cfg, opts, &mut outputs))
                    .await;
            // Whatever the outcome, a later session numbers after what was published.
            if let Some(next) = published.next_msn() {
                hub.next_msn
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone(), next);
            }
            let outcome = match result {
                Ok(Ok(report)) => {
                    tracing::info!(stream = %id, format = %report.format, video_frames = report.video_frames, audio_frames = report.audio_frames, periods = report.periods, next_msn = report.next_msn, "pipeline finished");
                    Ok(())
                }
                Ok(Err(e)) => {
                    tracing::warn!(stream = %id, error = %e, "pipeline stopped");
                    Err(e.to_string())
                }
                Err(e) => Err(format!("the pipeline crashed: {e}")),
            };
            let _ = outcome_tx.send(Some(outcome));
            hub.finished(&id).await;
            // Ended or interrupted: everything archived becomes the recording
            // (not at a shutdown: the stream is resumable after the restart).
            if !hub.stopping.load(Ordering::SeqCst) {
                hub.recorder.stream_over(&id);
            }
        });
        Ok((publisher(session), first_seq, true))
    }

    /// The publisher's socket closed without `end`: wait for a resume, then
    /// end the input so the stream is marked interrupted.
    fn detach(self: &Arc<Self>, session: &Arc<Session>) {
        session.attached.store(false, Ordering::SeqCst);
        self.announce_away(&session.stream_id, true);
        let generation = session.generation.load(Ordering::SeqCst);
        let grace = self.limits.resume_grace;
        let session = session.clone();
        let hub = self.clone();
        // Called from drop, possibly while a panic unwinds: never panic here.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(stream = %session.stream_id, "publisher detached outside the runtime: no resume timer");
            return;
        };
        runtime.spawn(async move {
            tokio::time::sleep(grace).await;
            if !session.attached.load(Ordering::SeqCst)
                && session.generation.load(Ordering::SeqCst) == generation
            {
                tracing::info!(stream = %session.stream_id, "publisher did not come back: stream interrupted");
                hub.set_state(&session.stream_id, StreamState::Interrupted)
                    .await;
                session.close_input();
            }
        });
    }

    async fn finished(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        let lease = self
            .leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(lease) = lease {
            lease.release();
        }
    }

    /// Streams whose latest state is not in the database yet (it is being
    /// retried).
    pub fn unwritten_states(&self) -> usize {
        self.writer.unwritten()
    }

    /// Stream `id`'s WebRTC output queue (one per stream id, kept).
    pub fn rtc_feed(&self, id: &str) -> Arc<rtc::RtcFeed> {
        let mut feeds = self.rtc_feeds.lock().unwrap_or_else(|e| e.into_inner());
        feeds.entry(id.to_string()).or_default().clone()
    }

    /// Whether a publisher is attached to the stream's session now (a new
    /// one would be refused as already publishing).
    pub fn is_publishing(&self, id: &str) -> bool {
        self.session(id)
            .is_some_and(|s| s.attached.load(Ordering::SeqCst))
    }

    /// The stream's session, if one is running (for tests and metrics).
    pub fn session(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}
