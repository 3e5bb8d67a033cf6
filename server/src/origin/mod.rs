//! The origin: the live window in memory, and the waiting rules of LL-HLS
//! blocking playlist reload.
//!
//! A [`LiveStream`] holds each rendition's init segment, recent parts and
//! segments, and playlist state. Publishing bumps a `watch` channel; requests
//! waiting for a part (`_HLS_msn`/`_HLS_part`, or the preload-hinted part) hold
//! a receiver and are woken on publish: no thread and no polling per waiter.
//!
//! Rules from rfc8216bis that the window keeps:
//! - media is published together with the playlist that first lists it, under
//!   one lock ([`LiveStream::publish`]): a segment or part can be fetched from
//!   the moment any playlist names it (6.2.1);
//! - a part stays available for three target durations after its
//!   `EXT-X-PART` tag left the playlist, and a segment until the time it
//!   first appeared plus its duration plus the longest playlist that listed
//!   it (6.2.2), measured on the window's [`Clock`];
//! - a blocking request for a part index past the end of a segment waits for
//!   part 0 of the next one (6.2.5.2), and after `EXT-X-ENDLIST` the delivery
//!   directives are ignored (6.2.5, 6.2.5.1, 6.2.5.2).

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use crate::packager::playlist::{self, MediaRequest, MediaSnapshot, RenditionReport};
use crate::packager::segmenter::Output;

mod read;

/// Why a live request cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginError {
    /// No such stream or rendition is live here.
    #[error("not live: {0}")]
    NotFound(String),
    /// `_HLS_msn`/`_HLS_part` asks for media too far in the future (more than
    /// two segments past the last one), or the query is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The wait for the requested part hit its limit.
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

/// Published media bytes with their strong validator, computed once when
/// they are published rather than on every request (hashing a 100 KB part
/// costs far more than serving it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// The bytes as served.
    pub bytes: Bytes,
    /// The `ETag` value, quotes included (see [`etag`]).
    pub etag: Arc<str>,
}

impl Media {
    /// Wraps `bytes`, hashing them for their validator.
    pub fn new(bytes: Bytes) -> Self {
        let etag = etag(&bytes).into();
        Media { bytes, etag }
    }
}

impl AsRef<[u8]> for Media {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::ops::Deref for Media {
    type Target = Bytes;
    fn deref(&self) -> &Bytes {
        &self.bytes
    }
}

/// A strong validator for immutable bytes: their length and a 64-bit hash
/// (SipHash with fixed keys, so the same bytes get the same tag on every node).
pub fn etag(bytes: &[u8]) -> String {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    h.write(bytes);
    format!("\"{:x}-{:016x}\"", bytes.len(), h.finish())
}

/// Gzip of a playlist (rfc8216bis 6.2.1: "HTTP servers SHOULD transfer text
/// files -- such as Playlists and WebVTT segments -- using the "gzip"
/// Content-Encoding if the client indicates that it is prepared to accept it").
pub fn gzip(text: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 3 + 64),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(text);
    Bytes::from(enc.finish().unwrap_or_default())
}

/// A rendered media playlist, shared by every request answered with the same
/// window version; compressed once, when a client first asks for gzip.
#[derive(Debug)]
pub struct Playlist {
    /// UTF-8: made from a `String`.
    text: Bytes,
    gzip: OnceLock<Bytes>,
}

impl Playlist {
    fn new(text: String) -> Self {
        Playlist {
            text: Bytes::from(text),
            gzip: OnceLock::new(),
        }
    }

    /// The playlist text.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.text).unwrap_or_default()
    }

    /// The playlist text as bytes to send.
    pub fn bytes(&self) -> Bytes {
        self.text.clone()
    }

    /// The playlist, gzip-compressed.
    pub fn gzip(&self) -> Bytes {
        self.gzip.get_or_init(|| gzip(&self.text)).clone()
    }
}

/// Where the window's retention rules read the time: the system's monotonic
/// clock, or one a test sets.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Instant + Send + Sync>);

impl Clock {
    /// `Instant::now`.
    pub fn system() -> Self {
        Clock(Arc::new(Instant::now))
    }

    /// A clock that reads `now`.
    pub fn new(now: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now))
    }

    fn now(&self) -> Instant {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// A part in the window.
#[derive(Debug)]
struct PartMedia {
    media: Media,
    /// When the playlist stopped listing it.
    unlisted_at: Option<Instant>,
}

/// A complete segment in the window.
#[derive(Debug)]
struct SegmentMedia {
    media: Media,
    /// When a playlist first listed it (it was published with that playlist).
    listed_at: Instant,
    duration: Duration,
}

/// One rendition's window.
#[derive(Debug, Default)]
struct RenditionWindow {
    /// Init segments by file name (`init.mp4`, `init-1.mp4` after a change).
    inits: HashMap<String, Media>,
    snapshot: Option<MediaSnapshot>,
    parts: HashMap<(u64, usize), PartMedia>,
    segments: BTreeMap<u64, SegmentMedia>,
    /// The longest `EXT-X-TARGETDURATION` and playlist this rendition had.
    longest_target: Duration,
    longest_playlist: Duration,
}

impl RenditionWindow {
    /// Drops the parts and segments whose required availability is over
    /// (rfc8216bis 6.2.2), after `snapshot` changed at `now`:
    /// - "Clients MUST be able to download the Partial Segment for at least
    ///   three Target Durations after the EXT-X-PART tag is removed from the
    ///   Playlist";
    /// - a segment removed from a live playlist must be available "until the
    ///   time at which it first appeared in the Playlist plus the segment's
    ///   Availability Duration" (its duration plus that of the longest
    ///   playlist containing it).
    fn retire(&mut self, now: Instant) {
        let Some(snap) = self.snapshot.as_ref() else {
            return;
        };
        self.longest_target = self
            .longest_target
            .max(Duration::from_secs(snap.target_duration_s()));
        self.longest_playlist = self
            .longest_playlist
            .max(Duration::from_millis(snap.duration_ms()));
        let parts_from = snap.first_msn_with_parts();
        let keep_parts = self.longest_target.saturating_mul(3);
        self.parts.retain(|(msn, _), p| {
            if *msn >= parts_from {
                return true;
            }
            let since = *p.unlisted_at.get_or_insert(now);
            now.saturating_duration_since(since) < keep_parts
        });
        let Some(oldest) = snap.segments.first().map(|s| s.msn) else {
            return;
        };
        let longest = self.longest_playlist;
        self.segments.retain(|msn, s| {
            *msn >= oldest
                || s.duration
                    .checked_add(longest)
                    .and_then(|d| s.listed_at.checked_add(d))
                    .is_none_or(|until| now < until)
        });
    }

    /// The first URI the playlist lists that this window cannot serve, if
    /// any: a segment in the playlist, or a part its `EXT-X-PART` tags name.
    /// `None` is the rule [`LiveStream::publish`] keeps (6.2.1).
    fn listed_but_missing(&self) -> Option<String> {
        let snap = self.snapshot.as_ref()?;
        let parts_from = snap.first_msn_with_parts();
        let open = snap.open.iter().map(|o| (o.msn, o.parts.len()));
        for s in &snap.segments {
            if !self.segments.contains_key(&s.msn) {
                return Some(format!("{}.m4s", s.msn));
            }
        }
        let listed = snap
            .segments
            .iter()
            .filter(|s| s.msn >= parts_from)
            .map(|s| (s.msn, s.parts.len()))
            .chain(open);
        for (msn, parts) in listed {
            if let Some(i) = (0..parts).find(|&i| !self.parts.contains_key(&(msn, i))) {
                return Some(format!("{msn}.{i}.m4s"));
            }
        }
        None
    }

    fn last_msn(&self) -> Option<u64> {
        self.snapshot
            .as_ref()
            .and_then(|s| s.last_part().map(|(m, _)| m))
    }

    fn ended(&self) -> bool {
        self.snapshot.as_ref().is_some_and(|s| s.ended)
    }
}

/// The captions' WebVTT rendition: its playlist and the segments it lists.
#[derive(Debug, Default)]
struct SubtitleWindow {
    playlist: String,
    segments: BTreeMap<u64, Media>,
}

/// A rendered media playlist and the window version it shows.
type Rendered = (u64, Arc<Playlist>);

/// A live stream's window, shared by the publishing session and the handlers.
#[derive(Debug)]
pub struct LiveStream {
    renditions: RwLock<BTreeMap<String, RenditionWindow>>,
    master: RwLock<Option<String>>,
    subtitles: RwLock<Option<SubtitleWindow>>,
    /// The last media playlist rendered per rendition and delta flag, with
    /// the version it was rendered at: thousands of requests woken by one
    /// part share one rendering.
    rendered: std::sync::Mutex<HashMap<(String, bool), Rendered>>,
    version: watch::Sender<u64>,
    max_wait: Duration,
    clock: Clock,
}

/// What a handler needs to answer a media playlist request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlaylistQuery {
    /// `_HLS_msn`.
    pub msn: Option<u64>,
    /// `_HLS_part` (only with `_HLS_msn`).
    pub part: Option<usize>,
    /// `_HLS_skip=YES`.
    pub skip: bool,
}

impl LiveStream {
    /// An empty window. Blocking requests wait at most `max_wait`.
    pub fn new(max_wait: Duration) -> Arc<Self> {
        Self::with_clock(max_wait, Clock::system())
    }

    /// [`LiveStream::new`] whose retention rules read `clock`.
    pub fn with_clock(max_wait: Duration, clock: Clock) -> Arc<Self> {
        let (version, _) = watch::channel(0);
        Arc::new(LiveStream {
            renditions: RwLock::new(BTreeMap::new()),
            master: RwLock::new(None),
            subtitles: RwLock::new(None),
            rendered: std::sync::Mutex::new(HashMap::new()),
            version,
            max_wait,
            clock,
        })
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Sets the master playlist.
    pub fn set_master(&self, text: String) {
        *self.master.write().unwrap_or_else(|e| e.into_inner()) = Some(text);
        self.bump();
    }

    /// Adds a rendition's init segment under its file name (`init.mp4`, or
    /// `init-<n>.mp4` when the codec parameters changed in a new period).
    pub fn set_init(&self, rendition: &str, name: &str, init: Bytes) {
        let mut r = self.renditions.write().unwrap_or_else(|e| e.into_inner());
        r.entry(rendition.to_string())
            .or_default()
            .inits
            .insert(name.to_string(), Media::new(init));
        // Bumped under the lock: a reader that holds the read lock sees the
        // version that goes with the state (the rendered-playlist cache relies on it).
        self.bump();
        drop(r);
    }

    /// Publishes what one segmenter step produced (its parts and segments)
    /// together with the playlist state after it, under one lock, then wakes
    /// waiters: no reader sees a playlist that names media it cannot fetch
    /// yet. Parts and segments whose availability is over are dropped.
    pub fn publish(&self, rendition: &str, outputs: &[Output], snapshot: MediaSnapshot) {
        let now = self.clock.now();
        let mut r = self.renditions.write().unwrap_or_else(|e| e.into_inner());
        let w = r.entry(rendition.to_string()).or_default();
        for o in outputs {
            match o {
                Output::Part {
                    msn, index, bytes, ..
                } => {
                    w.parts.insert(
                        (*msn, *index),
                        PartMedia {
                            media: Media::new(bytes.clone()),
                            unlisted_at: None,
                        },
                    );
                }
                Output::Segment {
                    msn,
                    bytes,
                    duration,
                    ..
                } => {
                    let scale = snapshot.segment_target.scale;
                    let ms = playlist_ms(*duration, scale);
                    w.segments.insert(
                        *msn,
                        SegmentMedia {
                            media: Media::new(bytes.clone()),
                            listed_at: now,
                            duration: Duration::from_millis(ms),
                        },
                    );
                }
            }
        }
        w.snapshot = Some(snapshot);
        w.retire(now);
        // A caller that publishes a step's media apart from the playlist
        // that names it (a part with a playlist listing the whole segment,
        // before the segment) breaks 6.2.1: every debug build and test run
        // checks it.
        debug_assert_eq!(
            w.listed_but_missing(),
            None,
            "{rendition}: the playlist lists media that cannot be fetched"
        );
        // Bumped under the lock: a reader that holds the read lock sees the
        // version that goes with the state (the rendered-playlist cache relies on it).
        self.bump();
        drop(r);
    }

    /// Updates only the playlist state (for example on end of stream).
    pub fn set_snapshot(&self, rendition: &str, snapshot: MediaSnapshot) {
        let now = self.clock.now();
        let mut r = self.renditions.write().unwrap_or_else(|e| e.into_inner());
        let w = r.entry(rendition.to_string()).or_default();
        w.snapshot = Some(snapshot);
        w.retire(now);
        // Bumped under the lock: a reader that holds the read lock sees the
        // version that goes with the state (the rendered-playlist cache relies on it).
        self.bump();
        drop(r);
    }
}

/// `ticks` of `scale` in whole milliseconds, rounded up (a segment's
/// availability is never cut short by the rounding).
fn playlist_ms(ticks: u64, scale: crate::packager::time::Timescale) -> u64 {
    let per_second = u128::from(scale.get());
    u64::try_from((u128::from(ticks) * 1000).div_ceil(per_second)).unwrap_or(u64::MAX)
}

/// The live streams this node serves, by stream id.
#[derive(Debug, Default)]
pub struct Origin {
    streams: RwLock<HashMap<String, Arc<LiveStream>>>,
}

impl Origin {
    /// An origin with no streams.
    pub fn new() -> Arc<Self> {
        Arc::new(Origin::default())
    }

    /// Registers a live stream (replacing any previous window with that id).
    pub fn insert(&self, id: &str, stream: Arc<LiveStream>) {
        self.streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), stream);
    }

    /// Removes a stream; waiting requests end with "not live".
    pub fn remove(&self, id: &str) {
        self.streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// A live stream's window.
    pub fn get(&self, id: &str) -> Option<Arc<LiveStream>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}

#[cfg(test)]
mod tests;
