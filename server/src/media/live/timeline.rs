//! What every rendition of a stream shares: the one timeline (source
//! timestamps to 90 kHz ticks), the cut plan, the clock that dates segments,
//! the target duration, and the way out ([`publish`], [`set_init`]: through
//! the [`Publish`](super::Publish) sink).

use super::{LiveConfig, Publish};
use crate::packager::cuts::{Cursor, CutPlan};
use crate::packager::fmp4::Track;
use crate::packager::h264;
use crate::packager::segmenter::{Clock, Output, Segmenter, SegmenterConfig};
use crate::packager::time::{rescale, MediaTime, Timescale, VIDEO_TIMESCALE};

/// Converts a timestamp in a stream's time base (`num/den` seconds per tick)
/// to 90 kHz ticks, keeping its sign (rounded to nearest, integers only).
pub(super) fn to_90k_signed(ts: i64, (num, den): (i32, i32)) -> i64 {
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
pub(super) fn to_ms(ts: i64, (num, den): (i32, i32)) -> i64 {
    let den = i128::from(den.max(1));
    let v = i128::from(ts) * i128::from(num.max(1)) * 1000 / den;
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// A source timestamp on the pipeline's 90 kHz timeline: shifted by the
/// period's `offset`; what still falls before zero clamps to zero.
pub(super) fn on_timeline(ts: i64, time_base: (i32, i32), offset: i64) -> u64 {
    u64::try_from(to_90k_signed(ts, time_base).saturating_add(offset).max(0)).unwrap_or(0)
}

/// Room made on the timeline before a period's first presentation time, so
/// that passed-through H.264 that reorders `depth` frames can decode that
/// many frames before it: `depth` nominal frame intervals (100 ms each when
/// the stream states no rate). Zero for streams without reordering.
pub(super) fn lead_for(depth: u32, interval_90k: Option<u64>) -> i64 {
    let interval = interval_90k.filter(|&i| i > 0).unwrap_or(9_000);
    i64::try_from(u64::from(depth).saturating_mul(interval)).unwrap_or(0)
}

/// The nominal frame interval in 90 kHz ticks: from the SPS timing if it
/// has one, else from the stream's frame rate.
pub(super) fn frame_interval_90k(
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
pub(super) struct Ctx<'a> {
    /// Where every output goes.
    pub(super) sink: std::cell::RefCell<&'a mut dyn Publish>,
    /// The stream id, for log lines.
    pub(super) stream: &'a str,
    pub(super) cfg: &'a LiveConfig,
    /// The capture clock of the period about to start (`None`: the dates
    /// continue on the current clock).
    pub(super) capture_start_ms: Option<i64>,
    /// The stream's clock (90 kHz): every segmenter dates from it.
    pub(super) clock: std::cell::Cell<Option<Clock>>,
    /// This period has not dated the clock yet (see [`anchor_clock`]).
    pub(super) clock_pending: std::cell::Cell<bool>,
    /// Where every rendition's segments start.
    pub(super) plan: std::cell::RefCell<CutPlan>,
    /// `EXT-X-TARGETDURATION` of every rendition, seconds (it only goes up).
    pub(super) target_s: std::cell::Cell<u64>,
    /// The target went up: every rendition's playlist must say so.
    pub(super) target_raised: std::cell::Cell<bool>,
    pub(super) first_msn: u64,
    /// The sink takes the decoded audio (live transcription).
    pub(super) captions: bool,
    /// Segments completed so far on any rendition (the master playlist's
    /// measured bandwidth is refreshed when this moves).
    pub(super) completed: std::cell::Cell<u64>,
}

pub(super) fn seg_config(cfg: &LiveConfig, scale: Timescale) -> SegmenterConfig {
    let per_ms = |ms: u64| rescale(ms, crate::packager::time::MILLIS, scale);
    SegmenterConfig {
        segment_target: per_ms(cfg.segment_ms),
        part_target: per_ms(cfg.part_ms),
        window_segments: cfg.window_segments,
    }
}

pub(super) fn new_segmenter(track: Track, scale: Timescale, ctx: &Ctx<'_>) -> Segmenter {
    let mut seg = Segmenter::new(track, seg_config(ctx.cfg, scale), None);
    seg.start_at(ctx.first_msn);
    if let Some(clock) = ctx.clock.get() {
        seg.set_clock(rescale_clock(clock, scale));
    }
    seg.raise_target(ctx.target_s.get());
    seg
}

/// The stream's 90 kHz clock in another timescale.
pub(super) fn rescale_clock(clock: Clock, scale: Timescale) -> Clock {
    Clock {
        at: rescale(clock.at, VIDEO_TIMESCALE, scale),
        unix_ms: clock.unix_ms,
    }
}

/// Every rendition's target duration covers `seconds` from now on.
pub(super) fn raise_target(ctx: &Ctx<'_>, seconds: u64) {
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
pub(super) fn anchor_clock(ctx: &Ctx<'_>, at: u64) {
    if !ctx.clock_pending.replace(false) {
        return;
    }
    if let Some(unix_ms) = ctx.capture_start_ms {
        ctx.clock.set(Some(Clock { at, unix_ms }));
    }
}

/// Dates `seg` (ticks at `scale`) from the stream's clock.
pub(super) fn apply_clock(ctx: &Ctx<'_>, seg: &mut Segmenter, scale: Timescale) {
    if let Some(clock) = ctx.clock.get() {
        seg.set_clock(rescale_clock(clock, scale));
    }
}

/// The leading video offers a frame at `pts` (90 kHz) that can start a
/// segment; returns whether one starts there. A longer segment than ever
/// raises every rendition's target duration before any of them completes it.
pub(super) fn offer_cut(ctx: &Ctx<'_>, pts: u64) -> bool {
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
pub(super) fn take_cuts(ctx: &Ctx<'_>, seg: &mut Segmenter, cursor: &mut Cursor, scale: Timescale) {
    let plan = ctx.plan.borrow();
    for &cut in plan.take(cursor) {
        seg.cut_at(rescale(cut, VIDEO_TIMESCALE, scale));
    }
}

/// Publishes one segmenter step: its parts and segments leave through the
/// sink together with the playlist after the step, in one call (see
/// [`Publish::step`]).
pub(super) fn publish(ctx: &Ctx<'_>, name: &str, seg: &mut Segmenter, outputs: Vec<Output>) {
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
pub(super) fn set_init(ctx: &Ctx<'_>, name: &str, fps: Option<(u32, u32)>, seg: &Segmenter) {
    ctx.sink.borrow_mut().init(name, fps, seg);
}
