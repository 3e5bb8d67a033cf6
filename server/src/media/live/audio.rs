//! The audio rendition: AAC frames (copied or encoded) are held until the
//! video shows where segments start, then packaged; the decoded audio goes
//! out for captions when the sink wants it.

use super::timeline::{anchor_clock, apply_clock, publish, take_cuts, Ctx};
use super::AUDIO_RENDITION;
use crate::media::audio::{AacFrame, AudioCoder, AudioFormat, AAC_FRAME, AAC_RATE};
use crate::packager::cuts::Cursor;
use crate::packager::fmp4::{Codec, Sample, Track};
use crate::packager::segmenter::Segmenter;
use crate::packager::time::{rescale, Timescale, MILLIS, VIDEO_TIMESCALE};

pub(super) struct AudioState {
    pub(super) stream_index: usize,
    /// This period's source: copied or transcoded.
    pub(super) coder: AudioCoder,
    /// The rendition's format, fixed by the first period.
    pub(super) format: AudioFormat,
    /// The rendition's timescale: its sample rate.
    pub(super) scale: Timescale,
    pub(super) segmenter: Segmenter,
    pub(super) frames: u64,
    /// Where this period's first frame sits on the timeline, at `scale`
    /// (the coder numbers samples from it).
    pub(super) base: u64,
    /// The base is known for this period (set at its first frame).
    pub(super) based: bool,
    /// End of the last frame pushed, at `scale`.
    pub(super) end: u64,
    /// The stream has video: audio follows its cuts.
    pub(super) follows: bool,
    /// Which of the stream's cuts the segmenter has been given.
    pub(super) cursor: Cursor,
    /// Frames not yet handed to the segmenter: those past the video's
    /// watermark wait until the video shows whether a segment starts before them.
    pub(super) held: std::collections::VecDeque<Sample>,
}

/// Audio waits at most this many segment targets (and at least
/// [`AUDIO_HOLD_MIN_MS`]) for the video to catch up before it is packaged
/// anyway (the video stalled or ended).
pub(super) const AUDIO_HOLD_TARGETS: u64 = 2;

/// See [`AUDIO_HOLD_TARGETS`].
pub(super) const AUDIO_HOLD_MIN_MS: u64 = 2_000;

/// The timescale of decoded audio for captions ([`Publish::audio`](super::Publish::audio)): 48 kHz.
pub fn tap_scale() -> Timescale {
    Timescale::new(AAC_RATE).unwrap_or(VIDEO_TIMESCALE)
}

pub(super) fn aac_track(format: &AudioFormat, scale: Timescale) -> Track {
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
pub(super) fn log_audio(coder: &AudioCoder) {
    let f = coder.format();
    let how = if coder.copies() {
        "copying the source's AAC"
    } else {
        "encoding the source's audio to AAC"
    };
    tracing::info!(rate = f.sample_rate, channels = f.channels, "audio: {how}");
}

pub(super) fn push_audio(a: &mut AudioState, ctx: &Ctx<'_>, frames: Vec<AacFrame>) {
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
pub(super) fn release_audio(a: &mut AudioState, ctx: &Ctx<'_>, all: bool) {
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
