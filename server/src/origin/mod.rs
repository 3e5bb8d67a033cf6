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

    /// The master playlist, if the stream has produced one.
    pub fn master(&self) -> Option<String> {
        self.master
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A rendition's init segment by file name.
    pub fn init(&self, rendition: &str, name: &str) -> Option<Media> {
        let r = self.renditions.read().unwrap_or_else(|e| e.into_inner());
        r.get(rendition).and_then(|w| w.inits.get(name).cloned())
    }

    /// Waits (bounded) until `check` on the rendition's window returns `Some`.
    async fn wait_for<T>(
        &self,
        rendition: &str,
        what: &str,
        mut check: impl FnMut(&RenditionWindow) -> Result<Option<T>, OriginError>,
    ) -> Result<T, OriginError> {
        let mut rx = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + self.max_wait;
        loop {
            {
                let r = self.renditions.read().unwrap_or_else(|e| e.into_inner());
                let w = r
                    .get(rendition)
                    .ok_or_else(|| OriginError::NotFound(format!("rendition {rendition}")))?;
                if let Some(v) = check(w)? {
                    return Ok(v);
                }
                rx.borrow_and_update();
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                // The stream was dropped: nothing more will come.
                Ok(Err(_)) => return Err(OriginError::NotFound(format!("rendition {rendition}"))),
                Err(_) => return Err(OriginError::Timeout(what.to_string())),
            }
        }
    }

    /// Answers a media playlist request, blocking per `_HLS_msn`/`_HLS_part`.
    pub async fn media_playlist(
        &self,
        rendition: &str,
        q: PlaylistQuery,
    ) -> Result<String, OriginError> {
        Ok(self
            .media_playlist_shared(rendition, q)
            .await?
            .text()
            .to_string())
    }

    /// [`LiveStream::media_playlist`], as the rendering every request for
    /// this version of the window shares (with its gzip, made once).
    ///
    /// - `_HLS_msn=M`: waits until segment `M` or a later one is complete.
    /// - `_HLS_msn=M&_HLS_part=N`: waits until part `M.N` or a later one is
    ///   listed; `N` past the final part of a complete segment `M` waits for
    ///   part 0 of segment `M + 1` (6.2.5.2).
    /// - More than two segments ahead: [`OriginError::BadRequest`], at once.
    /// - Once the playlist has `EXT-X-ENDLIST`, `_HLS_msn`, `_HLS_part` and
    ///   `_HLS_skip` are ignored and the whole playlist is the answer, at once
    ///   (6.2.5.1, 6.2.5.2: "A Server MUST ignore _HLS_msn and _HLS_part if
    ///   the Playlist contains an EXT-X-ENDLIST tag").
    pub async fn media_playlist_shared(
        &self,
        rendition: &str,
        q: PlaylistQuery,
    ) -> Result<Arc<Playlist>, OriginError> {
        let what = match (q.msn, q.part) {
            (Some(m), Some(p)) => format!("part {m}.{p}"),
            (Some(m), None) => format!("segment {m}"),
            _ => "the playlist".to_string(),
        };
        self.wait_for(rendition, &what, |w| {
            // A plain reload is answered once the playlist lists a whole
            // segment (or the stream ended): a plain HLS client needs one, and
            // the target duration is known by then. A blocking request names
            // a part it saw, so it is answered by the LL-HLS rules below.
            let ended = w.snapshot.as_ref().is_some_and(|s| s.ended);
            if !ended && q.part.is_some() && q.msn.is_none() {
                return Err(OriginError::BadRequest(
                    "_HLS_part requires _HLS_msn".into(),
                ));
            }
            let Some(snap) = w
                .snapshot
                .as_ref()
                .filter(|s| q.msn.is_some() || !s.segments.is_empty() || s.ended)
            else {
                return Ok(None);
            };
            if ended {
                return Ok(Some(()));
            }
            let Some(msn) = q.msn else {
                return Ok(Some(()));
            };
            let last = w.last_msn().unwrap_or(0);
            if msn > last.saturating_add(2) {
                return Err(OriginError::BadRequest(format!(
                    "_HLS_msn={msn} is more than two segments past the last one ({last})"
                )));
            }
            let ready = match q.part {
                Some(p) => snap.lists_part(msn, p),
                // Without _HLS_part: the segment must be complete.
                None => snap.segments.iter().any(|s| s.msn >= msn),
            };
            Ok(ready.then_some(()))
        })
        .await?;
        self.render_current(rendition, q.skip)
    }

    /// The rendition's playlist as it is now (at least as new as the state
    /// the caller waited for), rendered once per version.
    fn render_current(&self, rendition: &str, skip: bool) -> Result<Arc<Playlist>, OriginError> {
        let key = (rendition.to_string(), skip);
        let (version, mut snapshot, reports) = {
            let r = self.renditions.read().unwrap_or_else(|e| e.into_inner());
            let version = *self.version.borrow();
            if let Some((v, text)) = self
                .rendered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
            {
                if *v == version {
                    return Ok(text.clone());
                }
            }
            let snapshot = r
                .get(rendition)
                .and_then(|w| w.snapshot.clone())
                .ok_or_else(|| OriginError::NotFound(format!("rendition {rendition}")))?;
            (version, snapshot, reports_except(&r, rendition))
        };
        snapshot.reports = reports;
        let text = Arc::new(Playlist::new(playlist::render_media(
            &snapshot,
            MediaRequest { skip },
        )));
        let mut cache = self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(&key) {
            Some((v, _)) if *v >= version => {}
            _ => {
                cache.insert(key, (version, text.clone()));
            }
        }
        Ok(text)
    }
}

/// `ticks` of `scale` in whole milliseconds, rounded up (a segment's
/// availability is never cut short by the rounding).
fn playlist_ms(ticks: u64, scale: crate::packager::time::Timescale) -> u64 {
    let per_second = u128::from(scale.get());
    u64::try_from((u128::from(ticks) * 1000).div_ceil(per_second)).unwrap_or(u64::MAX)
}

fn reports_except(r: &BTreeMap<String, RenditionWindow>, rendition: &str) -> Vec<RenditionReport> {
    r.iter()
        .filter(|(name, _)| name.as_str() != rendition)
        .filter_map(|(name, w)| {
            let (msn, part) = w.snapshot.as_ref()?.last_part()?;
            Some(RenditionReport {
                uri: format!("../{name}/index.m3u8"),
                last_msn: msn,
                last_part: part as u64,
            })
        })
        .collect()
}

impl LiveStream {
    /// A part's bytes. A request for a part that is not published yet but is at
    /// most the next one (the preload hint) waits for it.
    pub async fn part(
        &self,
        rendition: &str,
        msn: u64,
        index: usize,
    ) -> Result<Media, OriginError> {
        self.wait_for(rendition, &format!("part {msn}.{index}"), |w| {
            if let Some(p) = w.parts.get(&(msn, index)) {
                return Ok(Some(p.media.clone()));
            }
            let snap = w.snapshot.as_ref();
            let next = snap.map(|s| s.next_part()).unwrap_or((0, 0));
            let hinted = (msn, index) == next || (msn == next.0 + 1 && index == 0);
            if !hinted || w.ended() {
                return Err(OriginError::NotFound(format!("part {msn}.{index}")));
            }
            Ok(None)
        })
        .await
    }

    /// Publishes the subtitle playlist with new segments; segments older than
    /// `oldest` (no longer listed) are dropped.
    pub fn publish_subtitles(&self, playlist: String, segments: Vec<(u64, Bytes)>, oldest: u64) {
        let mut s = self.subtitles.write().unwrap_or_else(|e| e.into_inner());
        let w = s.get_or_insert_with(SubtitleWindow::default);
        w.playlist = playlist;
        w.segments
            .extend(segments.into_iter().map(|(m, b)| (m, Media::new(b))));
        w.segments.retain(|m, _| *m >= oldest);
        drop(s);
        self.bump();
    }

    /// The subtitle playlist, if captions run for this stream.
    pub fn subtitle_playlist(&self) -> Option<String> {
        let s = self.subtitles.read().unwrap_or_else(|e| e.into_inner());
        s.as_ref().map(|w| w.playlist.clone())
    }

    /// A subtitle segment, if still in the window.
    pub fn subtitle_segment(&self, msn: u64) -> Option<Media> {
        let s = self.subtitles.read().unwrap_or_else(|e| e.into_inner());
        s.as_ref().and_then(|w| w.segments.get(&msn).cloned())
    }

    /// A complete segment's bytes, if still in the window.
    pub fn segment(&self, rendition: &str, msn: u64) -> Option<Media> {
        let r = self.renditions.read().unwrap_or_else(|e| e.into_inner());
        r.get(rendition)
            .and_then(|w| w.segments.get(&msn))
            .map(|s| s.media.clone())
    }

    /// A receiver that changes on every publish (for realtime features and benchmarks).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// The last published part of a rendition, `(msn, index)`.
    pub fn last_part(&self, rendition: &str) -> Option<(u64, usize)> {
        let r = self.renditions.read().unwrap_or_else(|e| e.into_inner());
        r.get(rendition)
            .and_then(|w| w.snapshot.as_ref()?.last_part())
    }

    /// One past the highest media sequence number published on any rendition
    /// (where a later session of the stream continues); `None` if nothing was.
    pub fn next_msn(&self) -> Option<u64> {
        let r = self.renditions.read().unwrap_or_else(|e| e.into_inner());
        r.values()
            .filter_map(|w| w.snapshot.as_ref()?.last_part().map(|(m, _)| m + 1))
            .max()
    }

    /// How many requests are waiting right now (for metrics and tests).
    pub fn waiters(&self) -> usize {
        self.version.receiver_count()
    }
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
