//! One live stream's media pipeline, run on a blocking thread: demux the
//! incoming bytes, pass H.264 through (the top rung) and transcode the
//! ladder, copy AAC audio (or transcode other audio to AAC), and hand init
//! segments, parts, segments, playlists and decoded audio to a [`Publish`]
//! sink, the pipeline's one way out. The live session (`ingest`) implements
//! it and decides where each output goes; this module knows only the
//! packager (and FFmpeg).
//!
//! Timestamps (see `docs/architecture.md`): every rendition lives on one
//! 90 kHz timeline (audio at its sample rate: the source's when its AAC is
//! copied, else 48 kHz), the source's presentation times plus a
//! per-period offset. Passed-through H.264 gets its decode times from its
//! presentation times ([`DecodeTimes`]; Matroska carries no decode times), so
//! frames are presented exactly when the source says. One [`CutPlan`] decides
//! where segments start, in presentation time, for every rendition, and one
//! clock dates them.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ffmpeg_next::codec::Id;
use ffmpeg_next::media::Type;

use super::audio::{AudioCoder, AudioError, AudioFormat, AAC_FRAME, AAC_RATE};
use super::demux::{ChunkReader, DemuxError, MemoryInput, ProbeLimits, SharedReader};
use super::health::{HealthMeter, VideoInput};
use super::ladder::{bitrate_for, plan, Ladder, LadderError, RungSpec};
use crate::packager::cuts::{Cursor, CutPlan};
use crate::packager::decode_time::DecodeTimes;
use crate::packager::fmp4::{Codec, Sample, Track};
use crate::packager::framerate;
use crate::packager::h264::{self, nal};
use crate::packager::playlist::{
    render_master, render_master_with, AudioRendition, MediaSnapshot, SubtitleRendition, Variant,
};
use crate::packager::segmenter::{Clock, Next, Output, Segmenter, SegmenterConfig};
use crate::packager::time::{rescale, MediaTime, Timescale, MILLIS, VIDEO_TIMESCALE};
use crate::packager::webvtt::SUBTITLES_RENDITION;

/// Where a pipeline's outputs go: the one way out of it. The live session
/// (`ingest`) implements it and fans every output out to the origin's live
/// window, the recording's archive and the captions tap; a new destination
/// plugs in there, not here. Each call happens on the pipeline's blocking
/// thread, in the order the pipeline produced the outputs, and must not block.
pub trait Publish {
    /// Whether the sink takes the decoded audio ([`Publish::audio`]): live
    /// transcription, so the master playlist also lists the captions'
    /// `SUBTITLES` rendition. Asked once, when the pipeline starts.
    fn wants_audio(&self) -> bool {
        false
    }

    /// `seg`'s current init segment ([`Segmenter::init_segment`]), new or
    /// changed in a new period, under its URI ([`Segmenter::init_uri`]);
    /// `fps` is the source's nominal frame rate (video).
    fn init(&mut self, rendition: &str, fps: Option<(u32, u32)>, seg: &Segmenter);

    /// One segmenter step of `rendition`: its parts and segments (never
    /// empty), and `seg` as it is after them (its snapshot is the playlist
    /// that names them; its window describes each completed segment). The
    /// outputs go out together with that playlist, so no playlist names
    /// media that cannot be fetched yet.
    fn step(&mut self, rendition: &str, outputs: Vec<Output>, seg: &Segmenter);

    /// `rendition`'s playlist changed without new media (its target
    /// duration went up, or the stream ended).
    fn snapshot(&mut self, rendition: &str, snapshot: MediaSnapshot);

    /// The master playlist changed.
    fn master(&mut self, text: String);

    /// Decoded mono audio (samples in [-1, 1]) whose first sample is `at` on
    /// the 48 kHz timeline ([`AAC_RATE`]). Only when [`Publish::wants_audio`].
    fn audio(&mut self, _at: u64, _samples: Vec<f32>) {}
}

/// Timing and quality settings for live output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveConfig {
    /// Segment target duration, milliseconds.
    pub segment_ms: u64,
    /// Part target duration, milliseconds.
    pub part_ms: u64,
    /// Segments kept in the live playlist.
    pub window_segments: usize,
    /// AAC bitrate, bits per second.
    pub audio_bitrate: usize,
    /// With H.264 input, publish only the source rendition (no lower rungs).
    pub passthrough_only: bool,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            segment_ms: 1000,
            part_ms: 334,
            window_segments: 40,
            audio_bitrate: 128_000,
            passthrough_only: false,
        }
    }
}

/// The pipeline stopped with an error the broadcaster should see.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The bytes are not media FFmpeg can read.
    #[error(transparent)]
    Demux(#[from] DemuxError),
    /// The input has neither audio nor video.
    #[error("the recording has no audio or video stream")]
    NoStreams,
    /// A codec this build cannot handle.
    #[error("{0}")]
    Unsupported(String),
    /// Audio transcoding failed.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// Video transcoding failed.
    #[error(transparent)]
    Ladder(#[from] LadderError),
    /// The video decoder could not be opened.
    #[error("cannot decode the video: {0}")]
    VideoDecoder(ffmpeg_next::Error),
}

/// What a finished pipeline did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineReport {
    /// Container FFmpeg detected.
    pub format: String,
    /// Video frames packaged.
    pub video_frames: u64,
    /// AAC frames packaged.
    pub audio_frames: u64,
    /// Periods in the input (1 plus the number of recorder restarts).
    pub periods: u64,
    /// The first media sequence number a later session must use.
    pub next_msn: u64,
}

/// Rendition names in URLs.
pub const AUDIO_RENDITION: &str = "audio";

/// Everything about one run that is not timing or quality.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The broadcaster's wall clock (Unix ms) at the first sample.
    pub capture_start_ms: Option<i64>,
    /// The stream id, for log lines.
    pub stream: String,
    /// The media sequence number of the first segment: a stream that was live
    /// before continues its numbering, so no media URL or object key is reused.
    pub first_msn: u64,
    /// Where the input's measurements go (stream health).
    pub health: Option<Arc<HealthMeter>>,
}

struct VideoState {
    stream_index: usize,
    time_base: (i32, i32),
    sps: Vec<Bytes>,
    pps: Vec<Bytes>,
    pending: Option<Sample>,
    last_duration: u32,
    segmenter: Option<Segmenter>,
    name: String,
    frames: u64,
    /// Encoder target for a transcoded rung (for the master playlist).
    bitrate: Option<u64>,
    /// Nominal frame rate of the source, for `FRAME-RATE`.
    fps: Option<(u32, u32)>,
    /// 90 kHz ticks added to source timestamps (the period's offset).
    offset: i64,
    /// End of the latest presentation pushed (presentation time plus
    /// duration), 90 kHz.
    end_90k: u64,
    /// End of the last sample pushed in decode time, 90 kHz.
    end_dts: u64,
    /// Passed-through video: decode times come from presentation times
    /// (this period's clock, from its first keyframe on).
    derive_dts: bool,
    decode: Option<DecodeTimes>,
    /// A new period started: the next keyframe may bring new parameter sets.
    period_start: bool,
    /// The packets' NAL framing: `Some(true)` for length-prefixed (the stream
    /// has an `avcC` record), `Some(false)` for Annex B (our encoders), `None`
    /// to decide per packet.
    length_prefixed: Option<bool>,
    /// Which of the stream's cuts its segmenter has been given.
    cursor: Cursor,
}

/// Converts a timestamp in a stream's time base (`num/den` seconds per tick)
/// to 90 kHz ticks, keeping its sign (rounded to nearest, integers only).
fn to_90k_signed(ts: i64, (num, den): (i32, i32)) -> i64 {
    let scale = Timescale::new(u32::try_from(den).unwrap_or(1)).unwrap_or(VIDEO_TIMESCALE);
    let num = u64::try_from(num.max(1)).unwrap_or(1);
    let ticks = |v: u64| {
        let v = rescale(v.saturating_mul(num), scale, VIDEO_TIMESCALE);
        i64::try_from(v).unwrap_or(i64::MAX)
    };
    if ts >= 0 {
        ticks(ts.unsigned_abs())
    } else {
        -ticks(ts.unsigned_abs())
    }
}

/// A timestamp in a stream's time base in milliseconds (rounded down).
fn to_ms(ts: i64, (num, den): (i32, i32)) -> i64 {
    let den = i128::from(den.max(1));
    let v = i128::from(ts) * i128::from(num.max(1)) * 1000 / den;
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// A source timestamp on the pipeline's 90 kHz timeline: shifted by the
/// period's `offset`; what still falls before zero clamps to zero.
fn on_timeline(ts: i64, time_base: (i32, i32), offset: i64) -> u64 {
    u64::try_from(to_90k_signed(ts, time_base).saturating_add(offset).max(0)).unwrap_or(0)
}

/// Room made on the timeline before a period's first presentation time, so
/// that passed-through H.264 that reorders `depth` frames can decode that
/// many frames before it: `depth` nominal frame intervals (100 ms each when
/// the stream states no rate). Zero for streams without reordering.
fn lead_for(depth: u32, interval_90k: Option<u64>) -> i64 {
    let interval = interval_90k.filter(|&i| i > 0).unwrap_or(9_000);
    i64::try_from(u64::from(depth).saturating_mul(interval)).unwrap_or(0)
}

/// The nominal frame interval in 90 kHz ticks: from the SPS timing if it
/// has one, else from the stream's frame rate.
fn frame_interval_90k(
    reordering: Option<&h264::Reordering>,
    fps: Option<(u32, u32)>,
) -> Option<u64> {
    let from = |(num, den): (u32, u32)| {
        (num > 0 && den > 0).then(|| u64::from(num) * 90_000 / u64::from(den))
    };
    reordering
        .and_then(|r| r.frame_duration)
        .and_then(from)
        .or_else(|| fps.and_then(|(n, d)| from((d, n))))
        .filter(|&i| i > 0)
}

/// What every output needs to publish.
struct Ctx<'a> {
    /// Where every output goes.
    sink: std::cell::RefCell<&'a mut dyn Publish>,
    /// The stream id, for log lines.
    stream: &'a str,
    cfg: &'a LiveConfig,
    /// The capture clock of the period about to start (`None`: the dates
    /// continue on the current clock).
    capture_start_ms: Option<i64>,
    /// The stream's clock (90 kHz): every segmenter dates from it.
    clock: std::cell::Cell<Option<Clock>>,
    /// This period has not dated the clock yet (see [`anchor_clock`]).
    clock_pending: std::cell::Cell<bool>,
    /// Where every rendition's segments start.
    plan: std::cell::RefCell<CutPlan>,
    /// `EXT-X-TARGETDURATION` of every rendition, seconds (it only goes up).
    target_s: std::cell::Cell<u64>,
    /// The target went up: every rendition's playlist must say so.
    target_raised: std::cell::Cell<bool>,
    first_msn: u64,
    /// The sink takes the decoded audio (live transcription).
    captions: bool,
    /// Segments completed so far on any rendition (the master playlist's
    /// measured bandwidth is refreshed when this moves).
    completed: std::cell::Cell<u64>,
}

/// Decoding plus the transcoded rungs.
struct Transcode {
    stream_index: usize,
    time_base: (i32, i32),
    fps: (i32, i32),
    decoder: ffmpeg_next::decoder::Video,
    ladder: Option<Ladder>,
    outs: Vec<VideoState>,
    /// Mirror the passthrough rung's keyframes (else: the ladder leads the
    /// stream's cuts, and forces keyframes where they fall).
    follow_source_keys: bool,
    segment_90k: u64,
    disabled: bool,
    /// 90 kHz ticks added to decoded timestamps (the period's offset).
    offset: i64,
    /// Wall time spent encoding, and media time encoded, since the last report.
    busy: std::time::Duration,
    encoded_90k: u64,
    last_pts: Option<u64>,
    stream_id: String,
}

impl Transcode {
    fn frames(&mut self, ctx: &Ctx<'_>) -> Result<(), PipelineError> {
        let mut frame = ffmpeg_next::util::frame::video::Video::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            if self.disabled {
                continue;
            }
            let Some(ts) = frame.timestamp() else {
                continue;
            };
            let pts = on_timeline(ts, self.time_base, self.offset);
            if self.ladder.is_none() {
                let specs = plan(frame.width(), frame.height(), self.follow_source_keys);
                if specs.is_empty() {
                    // Passthrough already covers every rung this source gets.
                    self.disabled = true;
                    continue;
                }
                self.outs = specs
                    .iter()
                    .map(|spec| {
                        let mut v =
                            VideoState::new(usize::MAX, (1, 90_000), Vec::new(), Vec::new());
                        v.derive_dts = false;
                        v.bitrate = Some(spec.bitrate);
                        v.length_prefixed = Some(false);
                        v
                    })
                    .collect();
                self.ladder = Some(Ladder::new(&specs, self.fps)?);
            }
            let key = if self.follow_source_keys {
                frame.is_key()
            } else {
                // The ladder leads: a keyframe wherever a segment starts.
                offer_cut(ctx, pts)
            };
            let Some(ladder) = self.ladder.as_mut() else {
                continue;
            };
            let started = std::time::Instant::now();
            let packets = ladder.push(&frame, i64::try_from(pts).unwrap_or(i64::MAX), key)?;
            self.busy += started.elapsed();
            if let Some(last) = self.last_pts.replace(pts) {
                self.encoded_90k += pts.saturating_sub(last);
            }
            self.report_speed();
            self.deliver(packets, ctx);
        }
        Ok(())
    }

    /// Every segment's worth of media: how many times faster than real time the
    /// ladder encodes. Below 1.0 the stream falls behind: logged and exported.
    fn report_speed(&mut self) {
        if self.encoded_90k < self.segment_90k.max(1) {
            return;
        }
        let media_s = self.encoded_90k as f64 / 90_000.0;
        let factor = media_s / self.busy.as_secs_f64().max(1e-6);
        // No stream label: /metrics is readable by anyone who can reach it,
        // and a private stream's id must not be (the log line names it).
        metrics::histogram!("onair_ladder_realtime_factor").record(factor);
        if factor < 1.0 {
            metrics::counter!("onair_ladder_behind_total").increment(1);
            tracing::warn!(stream = %self.stream_id, factor, "the ladder encodes slower than real time: viewers will fall behind");
        }
        self.busy = std::time::Duration::ZERO;
        self.encoded_90k = 0;
    }

    fn deliver(&mut self, packets: Vec<Vec<ffmpeg_next::Packet>>, ctx: &Ctx<'_>) {
        for (out, packets) in self.outs.iter_mut().zip(packets) {
            for p in packets {
                if let Some(sample) = out.sample(&p) {
                    out.accept(sample, ctx);
                }
            }
        }
    }

    /// Decodes what the decoder still holds (end of a period or of the stream).
    fn drain(&mut self, ctx: &Ctx<'_>) -> Result<(), PipelineError> {
        let _ = self.decoder.send_eof();
        self.frames(ctx)
    }

    fn finish(&mut self, ctx: &Ctx<'_>) -> Result<(), PipelineError> {
        self.drain(ctx)?;
        if let Some(ladder) = self.ladder.as_mut() {
            let packets = ladder.finish();
            self.deliver(packets, ctx);
        }
        for out in &mut self.outs {
            out.flush(ctx);
        }
        Ok(())
    }
}

struct AudioState {
    stream_index: usize,
    /// This period's source: copied or transcoded.
    coder: AudioCoder,
    /// The rendition's format, fixed by the first period.
    format: AudioFormat,
    /// The rendition's timescale: its sample rate.
    scale: Timescale,
    segmenter: Segmenter,
    frames: u64,
    /// Where this period's first frame sits on the timeline, at `scale`
    /// (the coder numbers samples from it).
    base: u64,
    /// The base is known for this period (set at its first frame).
    based: bool,
    /// End of the last frame pushed, at `scale`.
    end: u64,
    /// The stream has video: audio follows its cuts.
    follows: bool,
    /// Which of the stream's cuts the segmenter has been given.
    cursor: Cursor,
    /// Frames not yet handed to the segmenter: those past the video's
    /// watermark wait until the video shows whether a segment starts before them.
    held: std::collections::VecDeque<Sample>,
}

/// Audio waits at most this many segment targets (and at least
/// [`AUDIO_HOLD_MIN_MS`]) for the video to catch up before it is packaged
/// anyway (the video stalled or ended).
const AUDIO_HOLD_TARGETS: u64 = 2;
/// See [`AUDIO_HOLD_TARGETS`].
const AUDIO_HOLD_MIN_MS: u64 = 2_000;

/// A rendition waits this many segments of another rendition for its own
/// first segment before the master playlist is published without it.
const MASTER_WAIT_SEGMENTS: u64 = 4;

fn seg_config(cfg: &LiveConfig, scale: Timescale) -> SegmenterConfig {
    let per_ms = |ms: u64| rescale(ms, crate::packager::time::MILLIS, scale);
    SegmenterConfig {
        segment_target: per_ms(cfg.segment_ms),
        part_target: per_ms(cfg.part_ms),
        window_segments: cfg.window_segments,
    }
}

fn new_segmenter(track: Track, scale: Timescale, ctx: &Ctx<'_>) -> Segmenter {
    let mut seg = Segmenter::new(track, seg_config(ctx.cfg, scale), None);
    seg.start_at(ctx.first_msn);
    if let Some(clock) = ctx.clock.get() {
        seg.set_clock(rescale_clock(clock, scale));
    }
    seg.raise_target(ctx.target_s.get());
    seg
}

/// The stream's 90 kHz clock in another timescale.
fn rescale_clock(clock: Clock, scale: Timescale) -> Clock {
    Clock {
        at: rescale(clock.at, VIDEO_TIMESCALE, scale),
        unix_ms: clock.unix_ms,
    }
}

/// Every rendition's target duration covers `seconds` from now on.
fn raise_target(ctx: &Ctx<'_>, seconds: u64) {
    if seconds > ctx.target_s.get() {
        tracing::info!(
            from = ctx.target_s.get(),
            to = seconds,
            "a segment is longer than the target duration: raised for every rendition"
        );
        ctx.target_s.set(seconds);
        ctx.target_raised.set(true);
    }
}

/// The period's first picture (or, without video, its first audio sample)
/// is at `at` on the timeline (90 kHz): it was captured at the period's
/// capture time, which dates every rendition from now on. A period without
/// a capture time keeps the clock (media time goes on across it).
fn anchor_clock(ctx: &Ctx<'_>, at: u64) {
    if !ctx.clock_pending.replace(false) {
        return;
    }
    if let Some(unix_ms) = ctx.capture_start_ms {
        ctx.clock.set(Some(Clock { at, unix_ms }));
    }
}

/// Dates `seg` (ticks at `scale`) from the stream's clock.
fn apply_clock(ctx: &Ctx<'_>, seg: &mut Segmenter, scale: Timescale) {
    if let Some(clock) = ctx.clock.get() {
        seg.set_clock(rescale_clock(clock, scale));
    }
}

/// The leading video offers a frame at `pts` (90 kHz) that can start a
/// segment; returns whether one starts there. A longer segment than ever
/// raises every rendition's target duration before any of them completes it.
fn offer_cut(ctx: &Ctx<'_>, pts: u64) -> bool {
    anchor_clock(ctx, pts);
    let mut plan = ctx.plan.borrow_mut();
    let cut = plan.offer(pts);
    let longest = plan.longest();
    drop(plan);
    if cut {
        raise_target(
            ctx,
            MediaTime::new(longest, VIDEO_TIMESCALE).round_seconds(),
        );
    }
    cut
}

/// Hands the cuts made since `cursor` to a follower (`scale`: its timescale).
fn take_cuts(ctx: &Ctx<'_>, seg: &mut Segmenter, cursor: &mut Cursor, scale: Timescale) {
    let plan = ctx.plan.borrow();
    for &cut in plan.take(cursor) {
        seg.cut_at(rescale(cut, VIDEO_TIMESCALE, scale));
    }
}

/// Publishes one segmenter step: its parts and segments leave through the
/// sink together with the playlist after the step, in one call (see
/// [`Publish::step`]).
fn publish(ctx: &Ctx<'_>, name: &str, seg: &mut Segmenter, outputs: Vec<Output>) {
    for o in &outputs {
        if let Output::Segment { duration, .. } = o {
            let d = MediaTime::new(*duration, seg.track().timescale);
            raise_target(ctx, d.round_seconds());
        }
    }
    seg.raise_target(ctx.target_s.get());
    if outputs.is_empty() {
        return;
    }
    let segments = outputs
        .iter()
        .filter(|o| matches!(o, Output::Segment { .. }))
        .count();
    ctx.sink.borrow_mut().step(name, outputs, seg);
    ctx.completed.set(ctx.completed.get() + segments as u64);
}

/// Publishes the segmenter's current init segment under its URI.
fn set_init(ctx: &Ctx<'_>, name: &str, fps: Option<(u32, u32)>, seg: &Segmenter) {
    ctx.sink.borrow_mut().init(name, fps, seg);
}

/// Parameter sets from an `avcC` record (MP4 input, or Matroska with CodecPrivate).
fn parse_avcc(extradata: &[u8]) -> Option<(Vec<Bytes>, Vec<Bytes>)> {
    if extradata.first() != Some(&1) || extradata.len() < 7 {
        return None;
    }
    let mut at = 5;
    let take = |count: usize, data: &[u8], at: &mut usize| -> Option<Vec<Bytes>> {
        let mut out = Vec::new();
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([*data.get(*at)?, *data.get(*at + 1)?]));
            out.push(Bytes::copy_from_slice(data.get(*at + 2..*at + 2 + len)?));
            *at += 2 + len;
        }
        Some(out)
    };
    let n_sps = usize::from(extradata[at] & 0x1f);
    at += 1;
    let sps = take(n_sps, extradata, &mut at)?;
    let n_pps = usize::from(*extradata.get(at)?);
    at += 1;
    let pps = take(n_pps, extradata, &mut at)?;
    Some((sps, pps))
}

fn extradata(params: &ffmpeg_next::codec::Parameters) -> Vec<u8> {
    // SAFETY: reading the codec parameters' extradata, owned by the stream.
    unsafe {
        let p = params.as_ptr();
        if (*p).extradata.is_null() || (*p).extradata_size <= 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts((*p).extradata, (*p).extradata_size as usize).to_vec()
        }
    }
}

impl VideoState {
    fn new(stream_index: usize, time_base: (i32, i32), sps: Vec<Bytes>, pps: Vec<Bytes>) -> Self {
        VideoState {
            stream_index,
            time_base,
            sps,
            pps,
            pending: None,
            last_duration: 3000,
            segmenter: None,
            name: "video".into(),
            frames: 0,
            bitrate: None,
            fps: None,
            offset: 0,
            end_90k: 0,
            end_dts: 0,
            derive_dts: true,
            decode: None,
            period_start: false,
            length_prefixed: None,
            cursor: Cursor::default(),
        }
    }

    /// Takes the next packet's sample, in decode order. Passed-through video
    /// (presentation time in `sample.dts`) gets its decode time from
    /// [`DecodeTimes`], from the period's first keyframe whose parameter sets
    /// are known; frames before it cannot start a rendition anyway.
    fn feed(&mut self, sample: Sample, ctx: &Ctx<'_>) {
        if !self.derive_dts {
            self.accept(sample, ctx);
            return;
        }
        if self.decode.is_none() {
            if !sample.keyframe || self.track().is_none() {
                return;
            }
            let reordering = self.sps.first().and_then(|s| h264::reordering(s));
            let depth = reordering.map(|r| r.depth).unwrap_or(0);
            let interval = frame_interval_90k(reordering.as_ref(), self.fps);
            self.decode = Some(DecodeTimes::new(depth, interval, self.end_dts));
        }
        let samples = match self.decode.as_mut() {
            Some(d) => d.push(sample),
            None => Vec::new(),
        };
        for s in samples {
            self.accept(s, ctx);
        }
    }

    /// Takes the next sample in decode order; the previous one gets its duration
    /// from the gap and goes to the segmenter.
    fn accept(&mut self, mut sample: Sample, ctx: &Ctx<'_>) {
        if let Some(mut prev) = self.pending.take() {
            let gap = sample.dts.saturating_sub(prev.dts);
            prev.duration = u32::try_from(gap)
                .ok()
                .filter(|&d| d > 0)
                .unwrap_or(self.last_duration);
            self.last_duration = prev.duration;
            if sample.dts <= prev.dts {
                sample.dts = prev.dts + u64::from(prev.duration);
            }
            // The segmenter learns what comes next, so a segment closes with
            // its last frame and the playlist hints the part that comes.
            let next = Next {
                pts: sample
                    .dts
                    .saturating_add_signed(i64::from(sample.cts_offset)),
                sync: sample.keyframe,
            };
            push_video(self, ctx, prev, Some(next));
        }
        self.pending = Some(sample);
    }

    /// Pushes the held-back last samples (end of a period or of the stream).
    fn flush_pending(&mut self, ctx: &Ctx<'_>) {
        if let Some(mut decode) = self.decode.take() {
            for s in decode.flush() {
                self.accept(s, ctx);
            }
        }
        if let Some(mut last) = self.pending.take() {
            last.duration = self.last_duration;
            push_video(self, ctx, last, None);
        }
    }

    /// End of a period: the open segment closes and the next one starts a
    /// discontinuity, dated from `capture_start_ms`.
    fn end_period(&mut self, ctx: &Ctx<'_>, capture_start_ms: Option<i64>) {
        self.flush_pending(ctx);
        if let Some(seg) = self.segmenter.as_mut() {
            let outputs = seg.new_period(capture_start_ms);
            publish(ctx, &self.name, seg, outputs);
        }
        self.period_start = true;
    }

    /// End of stream: the last sample, then the segmenter's last segment.
    fn flush(&mut self, ctx: &Ctx<'_>) {
        self.flush_pending(ctx);
        if let Some(seg) = self.segmenter.as_mut() {
            let outputs = seg.finish();
            publish(ctx, &self.name, seg, outputs);
            ctx.sink.borrow_mut().snapshot(&self.name, seg.snapshot());
        }
    }

    /// Turns a demuxed packet into a sample (length-prefixed NAL units without
    /// parameter sets or delimiters), remembering in-band SPS/PPS.
    fn sample(&mut self, packet: &ffmpeg_next::Packet) -> Option<Sample> {
        let data = packet.data()?;
        // A length-prefixed frame whose first NAL is 256-511 bytes long starts
        // with 00 00 01 too, so the framing is never guessed from the start
        // code alone: the stream's avcC record decides, or else a packet that
        // parses exactly as length-prefixed units is taken as such.
        let nals: Vec<&[u8]> = match self.length_prefixed {
            Some(true) => h264::split_length_prefixed(data)?,
            Some(false) => h264::split_annex_b(data),
            None => match h264::split_length_prefixed(data) {
                Some(units)
                    if units
                        .iter()
                        .all(|u| u.first().is_some_and(|b| b & 0x80 == 0)) =>
                {
                    units
                }
                _ if h264::is_annex_b(data) => h264::split_annex_b(data),
                _ => return None,
            },
        };
        let mut keep = Vec::with_capacity(nals.len());
        let mut idr = false;
        for unit in nals {
            match h264::nal_type(unit) {
                Some(nal::SPS) => self.sps = vec![Bytes::copy_from_slice(unit)],
                Some(nal::PPS) => self.pps = vec![Bytes::copy_from_slice(unit)],
                Some(nal::AUD) => {}
                Some(t) => {
                    idr |= t == nal::IDR;
                    keep.push(unit);
                }
                None => {}
            }
        }
        if keep.is_empty() {
            return None;
        }
        let (offset, time_base) = (self.offset, self.time_base);
        let to_90k = |ts: i64| on_timeline(ts, time_base, offset);
        let pts = to_90k(packet.pts().or(packet.dts())?);
        // Passed-through video: the presentation time, until `feed` knows
        // the decode time. Our encoders' packets carry real decode times.
        let dts = match packet.dts() {
            Some(dts) if !self.derive_dts => to_90k(dts),
            _ => pts,
        };
        Some(Sample {
            dts,
            cts_offset: i32::try_from(i128::from(pts) - i128::from(dts)).unwrap_or(0),
            duration: 0,
            keyframe: idr || packet.is_key(),
            data: Bytes::from(h264::to_length_prefixed(keep)),
        })
    }

    /// The track its parameter sets describe, if they are known.
    fn track(&self) -> Option<Track> {
        let info = self.sps.first().and_then(|s| h264::parse_sps(s))?;
        if self.pps.is_empty() {
            return None;
        }
        Some(Track {
            id: 1,
            timescale: VIDEO_TIMESCALE,
            codec: Codec::Avc {
                sps: self.sps.clone(),
                pps: self.pps.clone(),
                info,
            },
        })
    }
}

/// Runs the pipeline until the input ends, handing every output to `sink`.
/// Blocks: call it on a blocking thread. Each period of the input (a new
/// container after a [`Feed::Period`](super::demux::Feed::Period) marker) is
/// demuxed on its own; the renditions continue across periods with
/// `EXT-X-DISCONTINUITY`, and media time continues where the previous period
/// ended.
pub fn run(
    reader: ChunkReader,
    cfg: LiveConfig,
    opts: RunOptions,
    sink: &mut dyn Publish,
) -> Result<PipelineReport, PipelineError> {
    let shared = SharedReader(Arc::new(Mutex::new(reader)));
    let ctx = Ctx {
        captions: sink.wants_audio(),
        sink: std::cell::RefCell::new(sink),
        stream: &opts.stream,
        cfg: &cfg,
        capture_start_ms: opts.capture_start_ms,
        clock: std::cell::Cell::new(None),
        clock_pending: std::cell::Cell::new(true),
        plan: std::cell::RefCell::new(CutPlan::new(rescale(
            cfg.segment_ms,
            MILLIS,
            VIDEO_TIMESCALE,
        ))),
        target_s: std::cell::Cell::new(
            MediaTime::new(cfg.segment_ms, MILLIS).ceil_seconds().max(1),
        ),
        target_raised: std::cell::Cell::new(false),
        first_msn: opts.first_msn,
        completed: std::cell::Cell::new(0),
    };
    let mut p = Pipeline {
        health: opts.health.clone(),
        health_streams: (None, None),
        ctx,
        video: None,
        transcode: None,
        audio: None,
        master: None,
        completed_seen: 0,
        segment_90k: rescale(
            cfg.segment_ms,
            crate::packager::time::MILLIS,
            VIDEO_TIMESCALE,
        ),
        period_offset: None,
        lead: 0,
        prev_end_90k: 0,
        periods: 0,
        format: String::new(),
    };
    loop {
        let mut input = MemoryInput::open(shared.clone(), ProbeLimits::default())?;
        if p.periods == 0 {
            p.format = input.format_name();
            p.open_first(&mut input)?;
        } else {
            p.open_next(&mut input)?;
        }
        p.demux(&mut input)?;
        drop(input);
        let next = shared
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_period();
        let Some(capture) = next else { break };
        p.end_period(capture)?;
    }
    p.finish()
}

struct Pipeline<'a> {
    ctx: Ctx<'a>,
    /// Stream health: the meter, and this period's video and audio stream indices.
    health: Option<Arc<HealthMeter>>,
    health_streams: (Option<usize>, Option<usize>),
    video: Option<VideoState>,
    transcode: Option<Transcode>,
    audio: Option<AudioState>,
    /// The master playlist last published.
    master: Option<String>,
    completed_seen: u64,
    segment_90k: u64,
    /// Added to this period's timestamps: set at its first packet.
    period_offset: Option<i64>,
    /// Room this period needs before its first presentation time (see [`lead_for`]).
    lead: i64,
    /// Where the previous period ended (its latest presentation), 90 kHz.
    prev_end_90k: u64,
    periods: u64,
    format: String,
}

fn nominal_fps(stream: &ffmpeg_next::format::stream::Stream<'_>) -> Option<(u32, u32)> {
    let rate = stream.avg_frame_rate();
    (rate.numerator() > 0 && rate.denominator() > 0).then(|| {
        (
            rate.numerator().unsigned_abs(),
            rate.denominator().unsigned_abs(),
        )
    })
}

/// The reordering depth FFmpeg's probe found (`has_b_frames`), for a stream
/// whose parameter sets are not in its header.
fn probed_reorder_depth(params: &ffmpeg_next::codec::Parameters) -> u32 {
    // SAFETY: reading a plain integer field of the stream's codec parameters.
    let delay = unsafe { (*params.as_ptr()).video_delay };
    u32::try_from(delay).unwrap_or(0)
}

/// The lead a passed-through H.264 stream needs (see [`lead_for`]): from the
/// SPS in its header, else from what the probe found.
fn passthrough_lead(
    sps: Option<&Bytes>,
    params: &ffmpeg_next::codec::Parameters,
    fps: Option<(u32, u32)>,
) -> i64 {
    let reordering = sps.and_then(|s| h264::reordering(s));
    let depth = reordering
        .map(|r| r.depth)
        .unwrap_or_else(|| probed_reorder_depth(params));
    lead_for(depth, frame_interval_90k(reordering.as_ref(), fps))
}

fn fps_for_encoder(known: Option<(u32, u32)>) -> (i32, i32) {
    known
        .and_then(|(n, d)| Some((i32::try_from(n).ok()?, i32::try_from(d).ok()?)))
        .unwrap_or((30, 1))
}

impl Pipeline<'_> {
    /// The first period decides the renditions.
    fn open_first(&mut self, input: &mut MemoryInput) -> Result<(), PipelineError> {
        let cfg = *self.ctx.cfg;
        for stream in input.input().streams() {
            let params = stream.parameters();
            match params.medium() {
                Type::Video if self.video.is_none() && self.transcode.is_none() => {
                    let tb = stream.time_base();
                    let time_base = (tb.numerator(), tb.denominator());
                    let passthrough = params.id() == Id::H264;
                    let known = nominal_fps(&stream);
                    if passthrough {
                        let avcc = parse_avcc(&extradata(&params));
                        let length_prefixed = avcc.is_some().then_some(true);
                        let (sps, pps) = avcc.unwrap_or_default();
                        self.lead = passthrough_lead(sps.first(), &params, known);
                        let mut v = VideoState::new(stream.index(), time_base, sps, pps);
                        v.fps = known;
                        v.length_prefixed = length_prefixed;
                        self.video = Some(v);
                        if cfg.passthrough_only {
                            continue;
                        }
                    }
                    let decoder =
                        ffmpeg_next::codec::context::Context::from_parameters(params.clone())
                            .and_then(|c| c.decoder().video())
                            .map_err(PipelineError::VideoDecoder)?;
                    let mut t = self.new_transcode(decoder, fps_for_encoder(known));
                    t.stream_index = stream.index();
                    t.time_base = time_base;
                    t.follow_source_keys = passthrough;
                    self.transcode = Some(t);
                }
                Type::Audio if self.audio.is_none() => {
                    let coder = AudioCoder::open(
                        params,
                        stream.time_base(),
                        None,
                        cfg.audio_bitrate,
                        self.ctx.captions,
                    )?;
                    let format = coder.format();
                    log_audio(&coder);
                    let scale = Timescale::new(format.sample_rate).unwrap_or(VIDEO_TIMESCALE);
                    let segmenter = new_segmenter(aac_track(&format, scale), scale, &self.ctx);
                    set_init(&self.ctx, AUDIO_RENDITION, None, &segmenter);
                    self.audio = Some(AudioState {
                        stream_index: stream.index(),
                        coder,
                        format,
                        scale,
                        segmenter,
                        frames: 0,
                        base: 0,
                        based: false,
                        end: 0,
                        follows: false,
                        cursor: Cursor::default(),
                        held: std::collections::VecDeque::new(),
                    });
                }
                _ => {}
            }
        }
        if self.video.is_none() && self.transcode.is_none() && self.audio.is_none() {
            return Err(PipelineError::NoStreams);
        }
        self.measure_streams(input);
        let has_video = self.video.is_some() || self.transcode.is_some();
        if let (true, Some(a)) = (has_video, self.audio.as_mut()) {
            // Video can only cut at keyframes (the source's, when it is passed
            // through): audio cuts where the video does, so every rendition
            // numbers the same media time alike.
            a.follows = true;
            a.segmenter.follow_cuts();
        }
        // The first period keeps the source's timestamps, shifted by the lead.
        let lead = self.lead;
        self.offset_for(0, lead);
        Ok(())
    }

    /// A later period feeds the same renditions. Streams the first period did
    /// not have are ignored; a rendition whose stream is missing pauses.
    fn open_next(&mut self, input: &mut MemoryInput) -> Result<(), PipelineError> {
        let cfg = *self.ctx.cfg;
        if let Some(v) = self.video.as_mut() {
            v.stream_index = usize::MAX;
        }
        if let Some(t) = self.transcode.as_mut() {
            t.stream_index = usize::MAX;
        }
        if let Some(a) = self.audio.as_mut() {
            a.stream_index = usize::MAX;
        }
        let mut video_seen = false;
        let mut audio_seen = false;
        self.lead = 0;
        for stream in input.input().streams() {
            let params = stream.parameters();
            match params.medium() {
                Type::Video
                    if !video_seen && (self.video.is_some() || self.transcode.is_some()) =>
                {
                    video_seen = true;
                    let tb = stream.time_base();
                    let time_base = (tb.numerator(), tb.denominator());
                    let known = nominal_fps(&stream);
                    let h264 = params.id() == Id::H264;
                    let decoder = || {
                        ffmpeg_next::codec::context::Context::from_parameters(params.clone())
                            .and_then(|c| c.decoder().video())
                            .map_err(PipelineError::VideoDecoder)
                    };
                    if !h264 && self.video.is_some() {
                        // The passthrough rung can no longer be copied: from now
                        // on it is encoded like the others.
                        self.encode_passthrough_rung(decoder()?)?;
                    }
                    if let Some(v) = self.video.as_mut() {
                        let avcc = parse_avcc(&extradata(&params));
                        v.length_prefixed = avcc.is_some().then_some(true);
                        let lead = passthrough_lead(
                            avcc.as_ref().and_then(|(sps, _)| sps.first()),
                            &params,
                            known.or(v.fps),
                        );
                        if let Some((sps, pps)) = avcc {
                            v.sps = sps;
                            v.pps = pps;
                        }
                        v.stream_index = stream.index();
                        v.time_base = time_base;
                        v.fps = known.or(v.fps);
                        self.lead = lead;
                    }
                    let passthrough_active = self.video.is_some();
                    if let Some(t) = self.transcode.as_mut() {
                        t.decoder = decoder()?;
                        t.stream_index = stream.index();
                        t.time_base = time_base;
                        t.follow_source_keys = passthrough_active;
                        t.last_pts = None;
                    }
                }
                Type::Audio if !audio_seen => {
                    if let Some(a) = self.audio.as_mut() {
                        audio_seen = true;
                        a.coder = AudioCoder::open(
                            params,
                            stream.time_base(),
                            Some(&a.format),
                            cfg.audio_bitrate,
                            self.ctx.captions,
                        )?;
                        log_audio(&a.coder);
                        a.stream_index = stream.index();
                        a.based = false;
                    }
                }
                _ => {}
            }
        }
        self.period_offset = None;
        self.ctx.clock_pending.set(true);
        if let Some(h) = &self.health {
            h.new_period();
        }
        self.measure_streams(input);
        Ok(())
    }

    /// Tells the health meter what this period's input streams are: the
    /// video and audio streams the renditions take.
    fn measure_streams(&mut self, input: &mut MemoryInput) {
        let Some(h) = &self.health else { return };
        let known = |i: &usize| *i != usize::MAX;
        let video_index = self
            .video
            .as_ref()
            .map(|v| v.stream_index)
            .filter(known)
            .or(self
                .transcode
                .as_ref()
                .map(|t| t.stream_index)
                .filter(known));
        let audio = self.audio.as_ref().filter(|a| a.stream_index != usize::MAX);
        let audio_index = audio.map(|a| a.stream_index);
        let copied = audio.is_some_and(|a| a.coder.copies());
        let (mut video, mut audio) = (None, None);
        for stream in input.input().streams() {
            let params = stream.parameters();
            // SAFETY: reading plain fields of the stream's codec parameters.
            let (width, height, rate, channels) = unsafe {
                let p = params.as_ptr();
                (
                    (*p).width,
                    (*p).height,
                    (*p).sample_rate,
                    (*p).ch_layout.nb_channels,
                )
            };
            let positive = |v: i32| u32::try_from(v).unwrap_or(0);
            if Some(stream.index()) == video_index {
                video = Some(VideoInput {
                    codec: params.id().name().to_string(),
                    width: positive(width),
                    height: positive(height),
                });
            } else if Some(stream.index()) == audio_index {
                audio = Some(app::health::AudioHealth {
                    codec: params.id().name().to_string(),
                    sample_rate: positive(rate),
                    channels: positive(channels),
                    copied,
                });
            }
        }
        h.set_video(video);
        h.set_audio(audio);
        self.health_streams = (video_index, audio_index);
    }

    /// A transcode with no rungs yet, for a stream to be set by the caller.
    fn new_transcode(&self, decoder: ffmpeg_next::decoder::Video, fps: (i32, i32)) -> Transcode {
        Transcode {
            stream_index: usize::MAX,
            time_base: (1, 90_000),
            fps,
            decoder,
            ladder: None,
            outs: Vec::new(),
            follow_source_keys: false,
            segment_90k: self.segment_90k,
            disabled: false,
            offset: 0,
            busy: std::time::Duration::ZERO,
            encoded_90k: 0,
            last_pts: None,
            stream_id: self.ctx.stream.to_string(),
        }
    }

    /// Moves the passthrough rung into the ladder, encoded at its own size.
    /// `decoder` decodes the new source if there was no ladder yet.
    fn encode_passthrough_rung(
        &mut self,
        decoder: ffmpeg_next::decoder::Video,
    ) -> Result<(), PipelineError> {
        let Some(mut v) = self.video.take() else {
            return Ok(());
        };
        let Some(Codec::Avc { info, .. }) = v.segmenter.as_ref().map(|s| s.track().codec.clone())
        else {
            // It never started: drop it; the ladder (if any) carries on.
            return Ok(());
        };
        let spec = RungSpec {
            width: info.width,
            height: info.height,
            bitrate: v
                .segmenter
                .as_ref()
                .and_then(|s| s.measured_bitrate())
                .map(|(_, avg)| avg)
                .unwrap_or_else(|| bitrate_for(info.width, info.height)),
        };
        v.bitrate = Some(spec.bitrate);
        v.period_start = true;
        // From now on its packets come from our encoder: 90 kHz, already shifted.
        v.stream_index = usize::MAX;
        v.time_base = (1, 90_000);
        v.offset = 0;
        v.length_prefixed = Some(false);
        v.derive_dts = false;
        v.decode = None;
        tracing::info!(
            width = spec.width,
            height = spec.height,
            "the source is no longer H.264: encoding the top rung"
        );
        let t = match self.transcode.as_mut() {
            Some(t) => t,
            None => {
                // Passthrough only so far: start a one-rung ladder.
                let t = self.new_transcode(decoder, fps_for_encoder(v.fps));
                self.transcode.insert(t)
            }
        };
        let mut specs = vec![spec];
        specs.extend(t.ladder.as_ref().map(|l| l.specs()).unwrap_or_default());
        // New encoders for every rung: their parameter sets are checked at
        // their first keyframe, like the new source's.
        for out in &mut t.outs {
            out.period_start = true;
        }
        t.outs.insert(0, v);
        t.ladder = Some(Ladder::new(&specs, t.fps)?);
        t.disabled = false;
        Ok(())
    }

    /// The first packet of a period fixes its offset: media time continues
    /// where the previous period ended, plus the room the period's video
    /// needs to decode before its first picture (`lead`).
    fn offset_for(&mut self, first_ts_90k: i64, lead: i64) -> i64 {
        let prev = i64::try_from(self.prev_end_90k).unwrap_or(i64::MAX);
        let off = *self
            .period_offset
            .get_or_insert(prev.saturating_add(lead).saturating_sub(first_ts_90k));
        if let Some(v) = self.video.as_mut() {
            v.offset = off;
        }
        if let Some(t) = self.transcode.as_mut() {
            t.offset = off;
        }
        off
    }

    fn demux(&mut self, input: &mut MemoryInput) -> Result<(), PipelineError> {
        for (stream, packet) in input.input().packets() {
            let index = stream.index();
            let tb = stream.time_base();
            let time_base = (tb.numerator(), tb.denominator());
            if let Some(h) = &self.health {
                let kind = match self.health_streams {
                    (Some(v), _) if v == index => Some(Some(packet.is_key())),
                    (_, Some(a)) if a == index => Some(None),
                    _ => None,
                };
                if let (Some(video), Some(ts)) = (kind, packet.pts().or(packet.dts())) {
                    h.packet(to_ms(ts, time_base), packet.size(), video);
                }
            }
            if let Some(ts) = packet.pts().or(packet.dts()) {
                if self.period_offset.is_none() {
                    let lead = self.lead;
                    self.offset_for(to_90k_signed(ts, time_base), lead);
                }
            }
            let ctx = &self.ctx;
            if let Some(v) = self.video.as_mut().filter(|v| v.stream_index == index) {
                if let Some(sample) = v.sample(&packet) {
                    // Passed through: the source's keyframes lead the cuts
                    // (`sample.dts` is still the presentation time here).
                    if sample.keyframe {
                        offer_cut(ctx, sample.dts);
                    } else {
                        ctx.plan.borrow_mut().seen(sample.dts);
                    }
                    v.feed(sample, ctx);
                }
            }
            if let Some(t) = self
                .transcode
                .as_mut()
                .filter(|t| t.stream_index == index && !t.disabled)
            {
                // A corrupt packet is skipped; the decoder resynchronises at the next keyframe.
                if t.decoder.send_packet(&packet).is_ok() {
                    t.frames(ctx)?;
                }
            }
            let offset = self.period_offset.unwrap_or(0);
            if let Some(a) = self.audio.as_mut().filter(|a| a.stream_index == index) {
                let frames = a.coder.push(&packet)?;
                if !a.based && (!frames.is_empty() || a.coder.first_pts().is_some()) {
                    // This period's audio starts where its first decoded
                    // sample sits on the timeline, never before the last frame.
                    let ts = a.coder.first_pts().or(packet.pts()).or(packet.dts());
                    let at = ts.map(|ts| on_timeline(ts, time_base, offset));
                    a.base = rescale(at.unwrap_or(0), VIDEO_TIMESCALE, a.scale).max(a.end);
                    a.based = true;
                }
                push_audio(a, ctx, frames);
            }
            self.sync_targets();
            self.refresh_master(false);
        }
        Ok(())
    }

    /// After a longer segment than ever: every rendition's playlist shows the
    /// new target duration at once.
    fn sync_targets(&mut self) {
        if !self.ctx.target_raised.replace(false) {
            return;
        }
        let target = self.ctx.target_s.get();
        let sink = &self.ctx.sink;
        let update = |name: &str, seg: &mut Segmenter| {
            seg.raise_target(target);
            let snapshot = seg.snapshot();
            if snapshot.last_part().is_some() {
                sink.borrow_mut().snapshot(name, snapshot);
            }
        };
        for v in self
            .video
            .iter_mut()
            .chain(self.transcode.iter_mut().flat_map(|t| t.outs.iter_mut()))
        {
            if let Some(seg) = v.segmenter.as_mut() {
                update(&v.name, seg);
            }
        }
        if let Some(a) = self.audio.as_mut() {
            update(AUDIO_RENDITION, &mut a.segmenter);
        }
    }

    /// End of a period: flush decoders, close every open segment, and mark
    /// the next segments as a discontinuity.
    fn end_period(&mut self, capture_start_ms: Option<i64>) -> Result<(), PipelineError> {
        let ctx = &self.ctx;
        if let Some(t) = self.transcode.as_mut() {
            t.drain(ctx)?;
        }
        if let Some(v) = self.video.as_mut() {
            v.end_period(ctx, capture_start_ms);
        }
        if let Some(t) = self.transcode.as_mut() {
            for out in &mut t.outs {
                out.end_period(ctx, capture_start_ms);
            }
        }
        if let Some(a) = self.audio.as_mut() {
            let frames = a.coder.finish()?;
            push_audio(a, ctx, frames);
            release_audio(a, ctx, true);
            let outputs = a.segmenter.new_period(capture_start_ms);
            publish(ctx, AUDIO_RENDITION, &mut a.segmenter, outputs);
        }
        self.ctx.plan.borrow_mut().new_period();
        let video_end = self
            .video
            .iter()
            .chain(self.transcode.iter().flat_map(|t| t.outs.iter()))
            .map(|v| v.end_90k)
            .max()
            .unwrap_or(0);
        let audio_end = self
            .audio
            .as_ref()
            .map(|a| rescale(a.end, a.scale, VIDEO_TIMESCALE))
            .unwrap_or(0);
        self.prev_end_90k = video_end.max(audio_end);
        self.ctx.capture_start_ms = capture_start_ms;
        self.periods += 1;
        tracing::info!(
            period = self.periods,
            at_90k = self.prev_end_90k,
            "a new period starts"
        );
        self.refresh_master(true);
        Ok(())
    }

    /// Publishes the master playlist once every rendition has a complete
    /// segment (a player that opens it finds whole segments everywhere and
    /// every variant it will ever have), and again when a completed segment
    /// changes the measured bandwidth. A rendition that has no segment while
    /// another has [`MASTER_WAIT_SEGMENTS`] is left out until it has one; at
    /// the end (`force`) the master lists whatever has a segment.
    fn refresh_master(&mut self, force: bool) {
        let completed = self.ctx.completed.get();
        if self.master.is_some() && !force && completed == self.completed_seen {
            return;
        }
        let done = |s: Option<&Segmenter>| s.map(|s| s.segments_completed()).unwrap_or(0);
        // Every rendition the stream will have: how many segments each completed.
        let mut renditions: Vec<u64> = Vec::new();
        if let Some(v) = &self.video {
            renditions.push(done(v.segmenter.as_ref()));
        }
        if let Some(t) = self.transcode.as_ref().filter(|t| !t.disabled) {
            if t.ladder.is_none() {
                renditions.push(0);
            }
            renditions.extend(t.outs.iter().map(|o| done(o.segmenter.as_ref())));
        }
        if let Some(a) = &self.audio {
            renditions.push(a.segmenter.segments_completed());
        }
        let most = renditions.iter().copied().max().unwrap_or(0);
        let all = renditions.iter().all(|&n| n > 0);
        if most == 0 || !(all || force || most >= MASTER_WAIT_SEGMENTS) {
            return;
        }
        self.completed_seen = completed;
        let outputs: Vec<&VideoState> = outputs(self.video.as_ref(), self.transcode.as_ref())
            .into_iter()
            .filter(|v| done(v.segmenter.as_ref()) > 0)
            .collect();
        let audio = self
            .audio
            .as_ref()
            .map(|a| &a.segmenter)
            .filter(|s| s.segments_completed() > 0);
        let text = master(&outputs, audio, self.ctx.captions);
        if self.master.as_ref() != Some(&text) {
            self.ctx.sink.borrow_mut().master(text.clone());
            self.master = Some(text);
        }
    }

    fn finish(mut self) -> Result<PipelineReport, PipelineError> {
        let ctx = &self.ctx;
        if let Some(v) = self.video.as_mut() {
            v.flush(ctx);
        }
        if let Some(t) = self.transcode.as_mut() {
            t.finish(ctx)?;
        }
        if let Some(a) = self.audio.as_mut() {
            let frames = a.coder.finish()?;
            push_audio(a, ctx, frames);
            release_audio(a, ctx, true);
            let outputs = a.segmenter.finish();
            publish(ctx, AUDIO_RENDITION, &mut a.segmenter, outputs);
            ctx.sink
                .borrow_mut()
                .snapshot(AUDIO_RENDITION, a.segmenter.snapshot());
        }
        self.sync_targets();
        self.refresh_master(true);
        let video_frames = self
            .video
            .as_ref()
            .map(|v| v.frames)
            .or_else(|| {
                self.transcode
                    .as_ref()
                    .and_then(|t| t.outs.first())
                    .map(|o| o.frames)
            })
            .unwrap_or(0);
        let next_msn = self.next_msn();
        Ok(PipelineReport {
            format: self.format,
            video_frames,
            audio_frames: self.audio.as_ref().map(|a| a.frames).unwrap_or(0),
            periods: self.periods + 1,
            next_msn,
        })
    }

    /// The sequence number a later session of this stream should start at.
    fn next_msn(&self) -> u64 {
        let mut next = self.ctx.first_msn;
        let mut see = |seg: Option<&Segmenter>| {
            if let Some((msn, _)) = seg.and_then(|s| s.snapshot().last_part()) {
                next = next.max(msn + 1);
            }
        };
        if let Some(v) = self.video.as_ref() {
            see(v.segmenter.as_ref());
        }
        if let Some(t) = self.transcode.as_ref() {
            for o in &t.outs {
                see(o.segmenter.as_ref());
            }
        }
        see(self.audio.as_ref().map(|a| &a.segmenter));
        next
    }
}

/// The timescale of decoded audio for captions ([`Publish::audio`]): 48 kHz.
pub fn tap_scale() -> Timescale {
    Timescale::new(AAC_RATE).unwrap_or(VIDEO_TIMESCALE)
}

fn aac_track(format: &AudioFormat, scale: Timescale) -> Track {
    Track {
        id: 1,
        timescale: scale,
        codec: Codec::Aac {
            sample_rate: format.sample_rate,
            channels: u16::from(format.channels),
            asc: format.asc.clone(),
        },
    }
}

/// Says whether this period's audio is copied or encoded.
fn log_audio(coder: &AudioCoder) {
    let f = coder.format();
    let how = if coder.copies() {
        "copying the source's AAC"
    } else {
        "encoding the source's audio to AAC"
    };
    tracing::info!(rate = f.sample_rate, channels = f.channels, "audio: {how}");
}

/// Every video output that has started, highest first.
fn outputs<'a>(
    video: Option<&'a VideoState>,
    transcode: Option<&'a Transcode>,
) -> Vec<&'a VideoState> {
    let mut all: Vec<&VideoState> = video
        .into_iter()
        .chain(transcode.into_iter().flat_map(|t| t.outs.iter()))
        .filter(|v| v.segmenter.is_some())
        .collect();
    all.sort_by_key(|v| {
        std::cmp::Reverse(v.segmenter.as_ref().map(|s| match &s.track().codec {
            Codec::Avc { info, .. } => info.height,
            Codec::Aac { .. } => 0,
        }))
    });
    all
}

fn push_video(v: &mut VideoState, ctx: &Ctx<'_>, sample: Sample, next: Option<Next>) {
    if v.segmenter.is_none() {
        // Start at the first keyframe whose parameter sets we know.
        if !sample.keyframe {
            return;
        }
        let Some(track) = v.track() else {
            return;
        };
        if let Codec::Avc { info, .. } = &track.codec {
            v.name = format!("{}p", info.height);
        }
        let mut seg = new_segmenter(track, VIDEO_TIMESCALE, ctx);
        // Every video rendition cuts where the stream's plan says.
        seg.follow_cuts();
        set_init(ctx, &v.name, v.fps, &seg);
        v.segmenter = Some(seg);
        v.period_start = false;
    }
    if v.period_start {
        // A new period's first keyframe: new parameter sets get a new init segment.
        if !sample.keyframe {
            return;
        }
        let track = v.track();
        if let (Some(track), Some(seg)) = (track, v.segmenter.as_mut()) {
            let (outputs, changed) = seg.set_track(track);
            publish(ctx, &v.name, seg, outputs);
            if changed.is_some() {
                set_init(ctx, &v.name, v.fps, seg);
            }
        }
        v.period_start = false;
    }
    let Some(seg) = v.segmenter.as_mut() else {
        return;
    };
    take_cuts(ctx, seg, &mut v.cursor, VIDEO_TIMESCALE);
    apply_clock(ctx, seg, VIDEO_TIMESCALE);
    let duration = u64::from(sample.duration);
    let end_dts = sample.dts + duration;
    let end = sample
        .dts
        .saturating_add_signed(i64::from(sample.cts_offset))
        .saturating_add(duration);
    match seg.push_before(sample, next) {
        Ok(outputs) => {
            v.frames += 1;
            v.end_90k = v.end_90k.max(end);
            v.end_dts = v.end_dts.max(end_dts);
            publish(ctx, &v.name, seg, outputs);
        }
        Err(e) => tracing::warn!(error = %e, "dropped a video frame"),
    }
}

fn push_audio(a: &mut AudioState, ctx: &Ctx<'_>, frames: Vec<super::audio::AacFrame>) {
    for f in frames {
        a.held.push_back(Sample {
            dts: f.pts + a.base,
            cts_offset: 0,
            duration: AAC_FRAME as u32,
            keyframe: true,
            data: f.data,
        });
    }
    release_audio(a, ctx, false);
    if ctx.captions {
        let base = rescale(a.base, a.scale, tap_scale());
        let mut sink = ctx.sink.borrow_mut();
        for (pts, samples) in a.coder.take_pcm() {
            sink.audio(pts + base, samples);
        }
    }
}

/// Packages the audio frames whose segment is known: with video, those that
/// end before the video's watermark (no cut can come before it), or that
/// waited longer than [`AUDIO_HOLD_TARGETS`]; everything with `all` (end of
/// a period or of the stream) or without video.
fn release_audio(a: &mut AudioState, ctx: &Ctx<'_>, all: bool) {
    let scale = a.scale;
    let watermark = ctx
        .plan
        .borrow()
        .watermark()
        .map(|w| rescale(w, VIDEO_TIMESCALE, scale));
    let hold = rescale(
        (ctx.cfg.segment_ms * AUDIO_HOLD_TARGETS).max(AUDIO_HOLD_MIN_MS),
        MILLIS,
        scale,
    );
    while let Some(front) = a.held.front() {
        let end = front.dts + u64::from(front.duration);
        let newest = a.held.back().map(|b| b.dts).unwrap_or(front.dts);
        let known = !a.follows || watermark.is_some_and(|w| end <= w);
        if !(all || known || newest - front.dts >= hold) {
            break;
        }
        let Some(sample) = a.held.pop_front() else {
            break;
        };
        if a.follows {
            take_cuts(ctx, &mut a.segmenter, &mut a.cursor, scale);
        }
        // Without video (or with video that stalled), audio dates the period.
        anchor_clock(ctx, rescale(sample.dts, scale, VIDEO_TIMESCALE));
        apply_clock(ctx, &mut a.segmenter, scale);
        let own_cuts = a.segmenter.own_cuts();
        match a.segmenter.push(sample) {
            Ok(outputs) => {
                if a.segmenter.own_cuts() > own_cuts {
                    tracing::warn!(
                        "no video segment started for a while: the audio cut its own (renditions may number segments differently)"
                    );
                }
                a.frames += 1;
                a.end = a.end.max(end);
                publish(ctx, AUDIO_RENDITION, &mut a.segmenter, outputs);
            }
            Err(e) => tracing::warn!(error = %e, "dropped an audio frame"),
        }
    }
}

/// The master playlist for the renditions running now. `BANDWIDTH` and
/// `AVERAGE-BANDWIDTH` are measured over the segments in each window (video
/// plus audio); before a rendition's first segment completes they are the
/// encoder target or, for passthrough, an estimate from the picture size.
fn master(videos: &[&VideoState], audio: Option<&Segmenter>, captions: bool) -> String {
    let audio_codec = "mp4a.40.2";
    let audio_bw = audio.map(|a| a.measured_bitrate().unwrap_or((160_000, 128_000)));
    let rendition = audio.map(|_| AudioRendition {
        uri: format!("{AUDIO_RENDITION}/index.m3u8"),
        name: "Audio".into(),
    });
    let (audio_peak, audio_avg) = audio_bw.unwrap_or((0, 0));
    let mut variants: Vec<Variant> = videos
        .iter()
        .filter_map(|v| {
            let seg = v.segmenter.as_ref()?;
            let Codec::Avc { info, .. } = &seg.track().codec else {
                return None;
            };
            let (peak, avg) = seg.measured_bitrate().unwrap_or_else(|| {
                let pixels = u64::from(info.width) * u64::from(info.height);
                let target = v
                    .bitrate
                    .unwrap_or_else(|| (pixels * 3).clamp(300_000, 8_000_000));
                (target, target * 4 / 5)
            });
            let codecs = if audio.is_some() {
                format!("{},{audio_codec}", info.codec_string())
            } else {
                info.codec_string()
            };
            Some(Variant {
                uri: format!("{}/index.m3u8", v.name),
                bandwidth: peak + audio_peak,
                average_bandwidth: avg + audio_avg,
                codecs,
                resolution: Some((info.width, info.height)),
                // Measured once a segment is complete (every rung, encoded
                // ones too); before, a standard rate the container declares
                // (not an estimate such as 1000/33 from millisecond timestamps).
                frame_rate: seg
                    .frame_rate()
                    .or(v.fps.filter(|&f| framerate::is_standard(f))),
            })
        })
        .collect();
    if variants.is_empty() {
        // Audio only: the audio playlist is the variant.
        variants.push(Variant {
            uri: format!("{AUDIO_RENDITION}/index.m3u8"),
            bandwidth: audio_peak.max(1),
            average_bandwidth: audio_avg.max(1),
            codecs: audio_codec.into(),
            resolution: None,
            frame_rate: None,
        });
        return render_master(&variants, None);
    }
    let subtitles = captions.then(|| SubtitleRendition {
        uri: format!("{SUBTITLES_RENDITION}/index.m3u8"),
        name: "Captions (auto)".into(),
        language: None,
    });
    render_master_with(&variants, rendition.as_ref(), subtitles.as_ref())
}
