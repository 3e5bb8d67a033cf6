//! A video rendition: the passed-through H.264 (the top rung) or one the
//! ladder encodes. Packets become samples (length-prefixed NAL units, the
//! parameter sets remembered); passed-through video gets its decode times
//! from its presentation times; samples go to the rendition's segmenter,
//! which starts at the first keyframe whose parameter sets are known.

use bytes::Bytes;

use super::timeline::{
    apply_clock, frame_interval_90k, new_segmenter, on_timeline, publish, set_init, take_cuts, Ctx,
};
use crate::packager::cuts::Cursor;
use crate::packager::decode_time::DecodeTimes;
use crate::packager::fmp4::{Codec, Sample, Track};
use crate::packager::h264::{self, nal};
use crate::packager::segmenter::{Next, Segmenter};
use crate::packager::time::VIDEO_TIMESCALE;

pub(super) struct VideoState {
    pub(super) stream_index: usize,
    pub(super) time_base: (i32, i32),
    pub(super) sps: Vec<Bytes>,
    pub(super) pps: Vec<Bytes>,
    pub(super) pending: Option<Sample>,
    pub(super) last_duration: u32,
    pub(super) segmenter: Option<Segmenter>,
    pub(super) name: String,
    pub(super) frames: u64,
    /// Encoder target for a transcoded rung (for the master playlist).
    pub(super) bitrate: Option<u64>,
    /// Nominal frame rate of the source, for `FRAME-RATE`.
    pub(super) fps: Option<(u32, u32)>,
    /// 90 kHz ticks added to source timestamps (the period's offset).
    pub(super) offset: i64,
    /// End of the latest presentation pushed (presentation time plus
    /// duration), 90 kHz.
    pub(super) end_90k: u64,
    /// End of the last sample pushed in decode time, 90 kHz.
    pub(super) end_dts: u64,
    /// Passed-through video: decode times come from presentation times
    /// (this period's clock, from its first keyframe on).
    pub(super) derive_dts: bool,
    pub(super) decode: Option<DecodeTimes>,
    /// A new period started: the next keyframe may bring new parameter sets.
    pub(super) period_start: bool,
    /// The packets' NAL framing: `Some(true)` for length-prefixed (the stream
    /// has an `avcC` record), `Some(false)` for Annex B (our encoders), `None`
    /// to decide per packet.
    pub(super) length_prefixed: Option<bool>,
    /// Which of the stream's cuts its segmenter has been given.
    pub(super) cursor: Cursor,
}

/// Parameter sets from an `avcC` record (MP4 input, or Matroska with CodecPrivate).
pub(super) fn parse_avcc(extradata: &[u8]) -> Option<(Vec<Bytes>, Vec<Bytes>)> {
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

impl VideoState {
    pub(super) fn new(
        stream_index: usize,
        time_base: (i32, i32),
        sps: Vec<Bytes>,
        pps: Vec<Bytes>,
    ) -> Self {
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
    pub(super) fn feed(&mut self, sample: Sample, ctx: &Ctx<'_>) {
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
    pub(super) fn accept(&mut self, mut sample: Sample, ctx: &Ctx<'_>) {
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
    pub(super) fn flush_pending(&mut self, ctx: &Ctx<'_>) {
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
    pub(super) fn end_period(&mut self, ctx: &Ctx<'_>, capture_start_ms: Option<i64>) {
        self.flush_pending(ctx);
        if let Some(seg) = self.segmenter.as_mut() {
            let outputs = seg.new_period(capture_start_ms);
            publish(ctx, &self.name, seg, outputs);
        }
        self.period_start = true;
    }

    /// End of stream: the last sample, then the segmenter's last segment.
    pub(super) fn flush(&mut self, ctx: &Ctx<'_>) {
        self.flush_pending(ctx);
        if let Some(seg) = self.segmenter.as_mut() {
            let outputs = seg.finish();
            publish(ctx, &self.name, seg, outputs);
            ctx.sink.borrow_mut().snapshot(&self.name, seg.snapshot());
        }
    }

    /// Turns a demuxed packet into a sample (length-prefixed NAL units without
    /// parameter sets or delimiters), remembering in-band SPS/PPS.
    pub(super) fn sample(&mut self, packet: &ffmpeg_next::Packet) -> Option<Sample> {
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
    pub(super) fn track(&self) -> Option<Track> {
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

pub(super) fn push_video(v: &mut VideoState, ctx: &Ctx<'_>, sample: Sample, next: Option<Next>) {
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
