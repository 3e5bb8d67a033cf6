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
//! presentation times ([`DecodeTimes`](crate::packager::decode_time::DecodeTimes); Matroska carries no decode times), so
//! frames are presented exactly when the source says. One [`CutPlan`] decides
//! where segments start, in presentation time, for every rendition, and one
//! clock dates them.
//!
//! Files: this one holds the seam, [`run`] and the demux loop; `periods`
//! opens each period's streams; `timeline` is what every rendition shares
//! (cut plan, clock, target duration, the way out); `video` packages a video
//! rendition (passthrough or encoded); `rungs` decodes and encodes the
//! ladder; `audio` packages the audio rendition; `master` writes the master
//! playlist.

mod audio;
mod master;
mod periods;
mod rtc;
mod rungs;
mod timeline;
mod video;

#[cfg(test)]
mod aac_copy_tests;
#[cfg(test)]
mod drift_tests;
#[cfg(test)]
mod seam_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod timestamps_tests;

use std::sync::{Arc, Mutex};

use super::audio::AudioError;
use super::demux::{ChunkReader, DemuxError, MemoryInput, ProbeLimits, SharedReader};
use super::health::HealthMeter;
use super::ladder::LadderError;
use crate::packager::cuts::CutPlan;
use crate::packager::playlist::MediaSnapshot;
use crate::packager::segmenter::{Output, Segmenter};
use crate::packager::time::{rescale, MediaTime, MILLIS, VIDEO_TIMESCALE};

pub use audio::tap_scale;
use audio::{push_audio, release_audio, AudioState};
use rtc::RtcAudio;
pub use rtc::{annex_b, opus_time, ticks_48k, RtcFrame, RtcKind};
use rungs::Transcode;
use timeline::{offer_cut, on_timeline, publish, to_90k_signed, to_ms, Ctx};
use video::VideoState;

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
    /// the 48 kHz timeline ([`AAC_RATE`](super::audio::AAC_RATE)). Only when [`Publish::wants_audio`].
    fn audio(&mut self, _at: u64, _samples: Vec<f32>) {}

    /// Whether the sink takes [`Publish::rtc`] frames now (the stream has
    /// WebRTC viewers). Asked for each packet: nothing is converted or
    /// encoded for WebRTC while it says no.
    fn wants_rtc(&self) -> bool {
        false
    }

    /// One frame for WebRTC viewers: the passed-through H.264 in Annex B
    /// (parameter sets before each keyframe), in decode order, or the audio
    /// encoded to Opus ([`RtcFrame`]). Only while [`Publish::wants_rtc`].
    fn rtc(&mut self, _frame: RtcFrame) {}
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

impl LiveConfig {
    /// Within this module's bounds: segments of at least 500 ms, parts of
    /// 100 ms up to a segment, a window of at least three segments.
    pub fn sanitized(mut self) -> Self {
        self.segment_ms = self.segment_ms.max(500);
        self.part_ms = self.part_ms.clamp(100, self.segment_ms);
        self.window_segments = self.window_segments.max(3);
        self
    }
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
        rtc_audio: RtcAudio::default(),
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
    /// The audio encoded to Opus for WebRTC viewers, while there are some.
    rtc_audio: RtcAudio,
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

impl Pipeline<'_> {
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
            let for_rtc = ctx.sink.borrow().wants_rtc();
            if let Some(v) = self.video.as_mut().filter(|v| v.stream_index == index) {
                if let Some(sample) = v.sample(&packet) {
                    if for_rtc {
                        // `sample.dts` is the presentation time here.
                        let (key, data) = (sample.keyframe, &sample.data);
                        rtc::video_sample(ctx, sample.dts, key, data, &v.sps, &v.pps);
                    }
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
            if for_rtc {
                self.rtc_audio.packet(ctx, index, &packet, offset);
            } else {
                self.rtc_audio.idle();
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
