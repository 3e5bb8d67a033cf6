//! The per-track state machine: samples in, parts and segments out.
//!
//! Cutting rules (all in the track's own timescale, integers only). Segment
//! boundaries are presentation times: a video segment starts at its first
//! sample, a sync sample, and that sample's presentation time is where the
//! segment starts (decode times run ahead of it with B-frames).
//! - A part closes as soon as one more sample of the same length would push it
//!   past the part target, so it is published without waiting for the next
//!   frame; and, for variable frame rates, before a sample that would push it
//!   past the target. Parts never exceed `PART-TARGET` (unless one frame alone
//!   is longer).
//! - A segment closes at the first sync sample at or after the next boundary of a
//!   fixed grid (`first sample + k × segment target`). Rungs whose keyframes are
//!   forced onto the grid, and audio, therefore get the same media sequence
//!   numbers for the same media time. A late keyframe makes a longer segment and
//!   skips grid points; it never shifts later boundaries.
//! - A follower ([`Segmenter::follow_cuts`]: every rendition of a stream with
//!   video, which the pipeline cuts where the source's keyframes allow) has no
//!   grid of its own: it closes a segment at each cut it is told of
//!   ([`Segmenter::cut_at`]): video at its first sync sample at or after the
//!   cut, audio at the sample nearest to it (the first whose middle is past
//!   it). Every rendition then numbers the same media time alike.
//!   If no cut comes for [`FOLLOW_CAP_TARGETS`] segment targets (at least
//!   [`FOLLOW_CAP_MIN_MS`]), the follower cuts on its own so its segments
//!   stay bounded while the video stalls.
//! - A segment closes as soon as its last sample is in when the caller says
//!   what comes next ([`Segmenter::push_before`]: the next sample's
//!   presentation time and whether it is a sync sample; audio needs nothing,
//!   every sample is one and the next starts where it ends). The playlist
//!   published with it then never hints a part of a segment that is over: its
//!   preload hint names the next segment's part 0, the part that really comes
//!   (rfc8216bis 4.4.5.3). Without that knowledge the segment closes when the
//!   sample that starts the next one arrives.
//!
//! `EXT-X-PROGRAM-DATE-TIME` dates each segment's first sample by its
//! presentation time on one [`Clock`] (one media time and the wall-clock time
//! it was captured at), in integer milliseconds; every rendition of a stream
//! shares it, so a date means the same media time in all of them.
//!
//! `EXT-X-TARGETDURATION` never goes down: the snapshot's target covers the
//! longest segment this segmenter ever completed (and what
//! [`Segmenter::raise_target`] asks for, to keep renditions alike).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::fmp4::{self, Sample, Track};
use super::framerate;
use super::playlist::{MediaSnapshot, OpenSegmentEntry, PartEntry, SegmentEntry};
use super::time::{rescale, MediaTime, MILLIS};

mod close;
mod cuts;

/// A follower waiting this many segment targets for a cut makes one itself.
pub const FOLLOW_CAP_TARGETS: u64 = 4;
/// ... but never before its segment is this long (milliseconds).
pub const FOLLOW_CAP_MIN_MS: u64 = 8_000;

/// Which wall-clock time a media time was captured at: `at` (presentation
/// time, ticks of the track) is `unix_ms` milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Media time, in the track's ticks.
    pub at: u64,
    /// Its capture time, Unix ms.
    pub unix_ms: i64,
}

impl Clock {
    /// The date of presentation time `pts` (ticks at `scale`), to the
    /// millisecond, from integers only.
    pub fn date(&self, pts: u64, scale: super::time::Timescale) -> i64 {
        let ms = |ticks: u64| i64::try_from(rescale(ticks, scale, MILLIS)).unwrap_or(i64::MAX);
        if pts >= self.at {
            self.unix_ms.saturating_add(ms(pts - self.at))
        } else {
            self.unix_ms.saturating_sub(ms(self.at - pts))
        }
    }
}

/// Timing settings for one track, in its own timescale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// Segment target duration in ticks.
    pub segment_target: u64,
    /// Part target duration in ticks.
    pub part_target: u64,
    /// Complete segments kept in the playlist window.
    pub window_segments: usize,
}

/// What the segmenter produced for the caller to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A part is complete: serve it, wake blocked playlist requests.
    Part {
        /// Media sequence number of its segment.
        msn: u64,
        /// Its index within the segment.
        index: usize,
        /// `moof` + `mdat`.
        bytes: Bytes,
        /// Duration in ticks.
        duration: u64,
        /// Starts with a sync sample.
        independent: bool,
    },
    /// A segment is complete (the concatenation of its parts): store it.
    Segment {
        /// Media sequence number.
        msn: u64,
        /// The whole segment.
        bytes: Bytes,
        /// Duration in ticks.
        duration: u64,
        /// Decode time of its first sample, in ticks.
        start: u64,
        /// `EXT-X-PROGRAM-DATE-TIME` of its first sample, Unix ms.
        program_date_time_ms: Option<i64>,
        /// It starts a new period.
        discontinuity: bool,
    },
}

/// What the caller knows about the sample after the one it pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    /// Its presentation time, in the track's timescale.
    pub pts: u64,
    /// It is a sync sample (a keyframe).
    pub sync: bool,
}

/// A sample was refused; the segmenter state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// Decode timestamps must increase.
    #[error("decode time went backwards: {dts} after {last}")]
    NonMonotonic {
        /// The refused sample's dts.
        dts: u64,
        /// The previous sample's dts.
        last: u64,
    },
    /// The first sample of a video track must be a sync sample.
    #[error("the first sample is not a sync sample")]
    NoKeyframe,
    /// A sample has zero duration.
    #[error("a sample has zero duration")]
    ZeroDuration,
}

#[derive(Debug)]
struct OpenSegment {
    msn: u64,
    parts: Vec<(PartEntry, Bytes)>,
    pending: Vec<Sample>,
    pending_duration: u64,
    program_date_time_ms: Option<i64>,
    discontinuity: bool,
    /// Decode time of its first sample.
    start: u64,
    /// Presentation time of its first sample.
    start_pts: u64,
    /// Samples in it.
    frames: u64,
}

/// A complete segment in the window.
#[derive(Debug)]
struct Completed {
    entry: SegmentEntry,
    /// The URI of the init segment it uses.
    init_uri: String,
    /// Its size in bytes.
    size: u64,
    /// Samples in it.
    frames: u64,
}

/// Packages one track into CMAF parts and segments and keeps its playlist window.
#[derive(Debug)]
pub struct Segmenter {
    track: Track,
    cfg: SegmenterConfig,
    init: Bytes,
    /// Presentation time of the period's first sample (the grid's origin).
    origin: Option<u64>,
    next_boundary: u64,
    last_dts: Option<u64>,
    next_msn: u64,
    fragment_seq: u32,
    open: Option<OpenSegment>,
    /// Complete segments.
    window: VecDeque<Completed>,
    /// The init segment's URI: `init.mp4`, then `init-<n>.mp4` after a change.
    init_uri: String,
    init_version: u32,
    /// The first msn of this session when it continues an earlier one (0
    /// otherwise): init segment names carry it, so no session overwrites
    /// another's init segment in the store.
    session_base: u64,
    discontinuity_sequence: u64,
    discontinuity_next: bool,
    /// Dates segments (see [`Clock`]).
    clock: Option<Clock>,
    /// The capture time of the period's first sample, until it arrives and
    /// becomes the clock (unless [`Segmenter::set_clock`] sets one first).
    pending_capture: Option<i64>,
    /// The longest segment completed so far, ticks.
    longest: u64,
    /// A target duration (whole seconds) asked for from outside.
    target_floor_s: u64,
    ended: bool,
    /// `Some` in follow mode: the cuts (decode times) another track reported
    /// that no sample has reached yet.
    follow: Option<VecDeque<u64>>,
    /// Cuts a follower made on its own (no cut came in time).
    own_cuts: u64,
    /// Segments completed since the start.
    completed: u64,
}

impl Segmenter {
    /// A segmenter for `track`. `capture_start_ms` is the broadcaster's wall
    /// clock (Unix ms) at the first sample, for `EXT-X-PROGRAM-DATE-TIME`.
    pub fn new(track: Track, cfg: SegmenterConfig, capture_start_ms: Option<i64>) -> Self {
        let init = fmp4::init_segment(&track);
        Segmenter {
            track,
            cfg: SegmenterConfig {
                segment_target: cfg.segment_target.max(1),
                part_target: cfg.part_target.max(1),
                window_segments: cfg.window_segments.max(1),
            },
            init,
            origin: None,
            next_boundary: 0,
            last_dts: None,
            next_msn: 0,
            fragment_seq: 0,
            open: None,
            window: VecDeque::new(),
            init_uri: "init.mp4".to_string(),
            init_version: 0,
            session_base: 0,
            discontinuity_sequence: 0,
            discontinuity_next: false,
            clock: None,
            pending_capture: capture_start_ms,
            longest: 0,
            target_floor_s: 0,
            ended: false,
            follow: None,
            own_cuts: 0,
            completed: 0,
        }
    }

    /// Switches to follow mode: from now on segments close where
    /// [`Segmenter::cut_at`] says, not on the grid (see the module docs).
    pub fn follow_cuts(&mut self) {
        self.follow.get_or_insert_with(VecDeque::new);
    }

    /// In follow mode: a segment starts at presentation time `pts` (this
    /// track's timescale): video at its first sync sample there or later,
    /// audio at the sample nearest to it. Cuts must come in increasing order;
    /// one at or before the open segment's start, or before a cut already
    /// queued, is ignored. Ignored outside follow mode.
    pub fn cut_at(&mut self, pts: u64) {
        let start = self.open.as_ref().map(|s| s.start_pts);
        let Some(q) = self.follow.as_mut() else {
            return;
        };
        if start.is_some_and(|s| pts <= s) || q.back().is_some_and(|&b| pts <= b) {
            return;
        }
        q.push_back(pts);
    }

    /// Dates segments from `clock` from now on: the current period's segments
    /// not yet opened, and later periods' unless [`Segmenter::new_period`]
    /// gives a new capture time (and no new clock is set after it).
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = Some(clock);
        self.pending_capture = None;
    }

    /// Keeps `EXT-X-TARGETDURATION` at least `seconds` from now on (so the
    /// renditions of a stream all show the same one).
    pub fn raise_target(&mut self, seconds: u64) {
        self.target_floor_s = self.target_floor_s.max(seconds);
    }

    /// `EXT-X-TARGETDURATION` as the playlist shows it now, whole seconds:
    /// the configured target, the longest segment ever completed (rounded as
    /// the spec compares them) and [`Segmenter::raise_target`], whichever is
    /// most. It never goes down.
    pub fn target_duration_s(&self) -> u64 {
        MediaTime::new(self.cfg.segment_target, self.track.timescale)
            .ceil_seconds()
            .max(MediaTime::new(self.longest, self.track.timescale).round_seconds())
            .max(self.target_floor_s)
            .max(1)
    }

    /// How many segments were completed since the segmenter started.
    pub fn segments_completed(&self) -> u64 {
        self.completed
    }

    /// Segments a follower closed on its own because no cut came in time.
    pub fn own_cuts(&self) -> u64 {
        self.own_cuts
    }

    /// The init segment (`ftyp` + `moov`).
    pub fn init_segment(&self) -> &Bytes {
        &self.init
    }

    /// The track being packaged.
    pub fn track(&self) -> &Track {
        &self.track
    }

    /// The URI of the current init segment (relative to the media playlist).
    pub fn init_uri(&self) -> &str {
        &self.init_uri
    }

    /// Changes the track (new codec parameters after a restart) at the start of
    /// a period, before its first sample. If the init segment changes it gets a
    /// new URI (`init-<n>.mp4`, returned as the second value) and the playlist
    /// names it with `EXT-X-MAP` from the next segment on. A segment still open
    /// is closed first (returned for publishing) and the next one starts a
    /// new period.
    pub fn set_track(&mut self, track: Track) -> (Vec<Output>, Option<String>) {
        let init = fmp4::init_segment(&track);
        self.track = track;
        let mut out = Vec::new();
        if init == self.init {
            return (out, None);
        }
        if self.open.is_some() {
            out = self.new_period(None);
        }
        self.init = init;
        self.init_version += 1;
        self.init_uri = init_name(self.session_base, self.init_version);
        (out, Some(self.init_uri.clone()))
    }

    fn is_video(&self) -> bool {
        matches!(self.track.codec, fmp4::Codec::Avc { .. })
    }

    /// Adds one sample (in decode order) and returns what completed.
    ///
    /// For audio (every sample a sync sample) the next sample is taken to
    /// start where this one ends, so a segment closes with its last sample.
    /// A video segment closes when the sample after it arrives; use
    /// [`Segmenter::push_before`] to close it with its last sample.
    pub fn push(&mut self, sample: Sample) -> Result<Vec<Output>, PushError> {
        let next = (!self.is_video()).then(|| Next {
            pts: sample
                .dts
                .saturating_add_signed(i64::from(sample.cts_offset))
                .saturating_add(u64::from(sample.duration)),
            sync: true,
        });
        self.push_before(sample, next)
    }

    /// [`Segmenter::push`], knowing the next sample: if it will start a new
    /// segment, this one closes now (with its last part), so the playlist
    /// published with it hints the next segment's first part. The prediction
    /// uses the cuts known now; a cut that only comes later closes the
    /// segment when the next sample arrives, as without `next`.
    pub fn push_before(
        &mut self,
        sample: Sample,
        next: Option<Next>,
    ) -> Result<Vec<Output>, PushError> {
        if sample.duration == 0 {
            return Err(PushError::ZeroDuration);
        }
        if let Some(last) = self.last_dts {
            if sample.dts <= last {
                return Err(PushError::NonMonotonic {
                    dts: sample.dts,
                    last,
                });
            }
        }
        let sync = sample.keyframe || !self.is_video();
        if self.open.is_none() && !sync {
            return Err(PushError::NoKeyframe);
        }
        let mut out = Vec::new();
        let pts = sample
            .dts
            .saturating_add_signed(i64::from(sample.cts_offset));
        let origin = *self.origin.get_or_insert(pts);
        if let Some(unix_ms) = self.pending_capture.take() {
            // The period's first sample was captured at `unix_ms`.
            self.clock = Some(Clock { at: pts, unix_ms });
        }
        self.last_dts = Some(sample.dts);

        if self.cuts_before(pts, u64::from(sample.duration), sync) {
            self.close_segment(&mut out);
        }
        if self.open.is_none() {
            // The segment this sample opens ends at the next grid point
            // strictly after it.
            let k = pts.saturating_sub(origin) / self.cfg.segment_target + 1;
            self.next_boundary = origin + k * self.cfg.segment_target;
            let scale = self.track.timescale;
            let pdt = self.clock.map(|c| c.date(pts, scale));
            self.open = Some(OpenSegment {
                msn: self.next_msn,
                parts: Vec::new(),
                pending: Vec::new(),
                pending_duration: 0,
                program_date_time_ms: pdt,
                discontinuity: std::mem::take(&mut self.discontinuity_next),
                start: sample.dts,
                start_pts: pts,
                frames: 0,
            });
            self.next_msn += 1;
        }
        let duration = u64::from(sample.duration);
        // Close the part first if this sample would push it past the target.
        if self.open.as_ref().is_some_and(|s| {
            !s.pending.is_empty() && s.pending_duration + duration > self.cfg.part_target
        }) {
            self.close_part(&mut out);
        }
        let seg = self.open.as_mut().expect("opened above");
        seg.pending_duration += duration;
        seg.frames += 1;
        seg.pending.push(sample);
        // Close the part now if one more sample like this one would overshoot.
        if seg.pending_duration + duration > self.cfg.part_target {
            self.close_part(&mut out);
        }
        // The next sample starts a new segment: this one is complete now.
        if next.is_some_and(|n| self.cuts_at(n, duration)) {
            self.close_segment(&mut out);
        }
        Ok(out)
    }

    /// Marks the next sample as the start of a new period (after an encoder or
    /// recorder restart): the open segment closes and the next one carries
    /// `EXT-X-DISCONTINUITY`. Timestamps may restart after this.
    pub fn discontinuity(&mut self) -> Vec<Output> {
        self.new_period(None)
    }

    /// Like [`Segmenter::discontinuity`], and the new period's first sample was
    /// captured at `capture_start_ms` (Unix ms, for `EXT-X-PROGRAM-DATE-TIME`);
    /// `None` keeps the previous clock.
    pub fn new_period(&mut self, capture_start_ms: Option<i64>) -> Vec<Output> {
        let mut out = Vec::new();
        if self.open.is_some() {
            self.close_segment(&mut out);
        }
        self.discontinuity_next = true;
        if let Some(q) = self.follow.as_mut() {
            // The new period's timestamps may restart: old cuts mean nothing.
            q.clear();
        }
        // Without a new capture clock, the dates continue where the last
        // segment ended (the new period's timestamps may start anywhere).
        let continued = self.window.back().and_then(|c| {
            let ms = rescale(c.entry.duration.ticks, self.track.timescale, MILLIS);
            Some(c.entry.program_date_time_ms? + i64::try_from(ms).ok()?)
        });
        self.pending_capture = capture_start_ms.or(continued).or(self.pending_capture);
        self.origin = None;
        self.last_dts = None;
        out
    }

    /// Numbers the next segment `msn` (a stream continuing after an earlier
    /// session keeps its sequence, so no URL is ever reused). Only before the
    /// first sample; later calls are ignored.
    ///
    /// A session that starts after segment 0 names its init segments
    /// `init-<msn>-<n>.mp4` (`n` from 0), so they never replace an earlier
    /// session's `init.mp4` or `init-<n>.mp4` in the store.
    pub fn start_at(&mut self, msn: u64) {
        if self.open.is_none() && self.window.is_empty() && self.next_msn == 0 {
            self.next_msn = msn;
            if msn > 0 {
                self.session_base = msn;
                self.init_uri = init_name(msn, self.init_version);
            }
        }
    }

    /// A complete segment still in the window: its playlist entry, the URI
    /// of the init segment it uses, and its size in bytes.
    pub fn completed(&self, msn: u64) -> Option<(&SegmentEntry, &str, u64)> {
        self.window
            .iter()
            .rev()
            .find(|c| c.entry.msn == msn)
            .map(|c| (&c.entry, c.init_uri.as_str(), c.size))
    }

    /// Ends the stream: closes the open segment. Later pushes are still accepted
    /// but the playlist says `EXT-X-ENDLIST`.
    pub fn finish(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        if self.open.is_some() {
            self.close_segment(&mut out);
        }
        self.ended = true;
        out
    }
}

/// Whether a sample presented at `pts` for `duration` ticks is past cut `c`:
/// video cuts at its first sync sample at or after a cut; audio at the
/// sample whose middle is past it (the sample nearest to the cut).
fn passes(video: bool, pts: u64, duration: u64, c: u64) -> bool {
    if video {
        pts >= c
    } else {
        u128::from(pts) * 2 + u128::from(duration) > u128::from(c) * 2
    }
}

/// The name of a session's init segment number `version`: `init.mp4`, then
/// `init-<n>.mp4`; for a session starting at segment `base` > 0,
/// `init-<base>-<n>.mp4`.
pub fn init_name(base: u64, version: u32) -> String {
    match (base, version) {
        (0, 0) => "init.mp4".to_string(),
        (0, v) => format!("init-{v}.mp4"),
        (b, v) => format!("init-{b}-{v}.mp4"),
    }
}
