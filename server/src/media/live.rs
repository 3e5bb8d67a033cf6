//! One live stream's media pipeline, run on a blocking thread: demux the
//! incoming bytes, pass H.264 through (the top rung) or refuse what cannot be
//! handled yet, transcode audio to AAC, and publish parts, segments and
//! playlists into the origin's live window.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use ffmpeg_next::codec::Id;
use ffmpeg_next::media::Type;

use super::audio::{AacTranscoder, AudioError, AAC_FRAME, AAC_RATE};
use super::demux::{DemuxError, MemoryInput, ProbeLimits};
use super::ladder::{plan, Ladder, LadderError};
use crate::origin::LiveStream;
use crate::packager::fmp4::{Codec, Sample, Track};
use crate::packager::h264::{self, nal};
use crate::packager::playlist::{render_master, AudioRendition, Variant};
use crate::packager::segmenter::{Output, Segmenter, SegmenterConfig};
use crate::packager::time::{rescale, Timescale, VIDEO_TIMESCALE};
use crate::store::uploader::{segment_key, Uploader};

/// Where completed segments are archived: the upload queue and the stream id.
#[derive(Debug, Clone)]
pub struct Archive {
    /// The upload queue.
    pub uploader: Uploader,
    /// The stream id (first part of the object keys).
    pub stream: String,
}

impl Archive {
    fn put(&self, rendition: &str, file: &str, bytes: Bytes) {
        match segment_key(&self.stream, rendition, file) {
            Some(key) => self.uploader.enqueue(key, bytes),
            None => {
                tracing::error!(stream = %self.stream, rendition, file, "invalid object key; not archived")
            }
        }
    }
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
            segment_ms: 2000,
            part_ms: 334,
            window_segments: 20,
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
}

/// Rendition names in URLs.
pub const AUDIO_RENDITION: &str = "audio";

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
    bytes: u64,
    /// Encoder target for a transcoded rung (for the master playlist).
    bitrate: Option<u64>,
    /// Nominal frame rate of the source, for `FRAME-RATE`.
    fps: Option<(u32, u32)>,
}

/// Converts a timestamp in a stream's time base (`num/den` seconds per tick)
/// to 90 kHz ticks. Negative timestamps clamp to zero.
fn to_90k(ts: i64, (num, den): (i32, i32)) -> u64 {
    let ts = u64::try_from(ts.max(0)).unwrap_or(0);
    let scale = Timescale::new(u32::try_from(den).unwrap_or(1)).unwrap_or(VIDEO_TIMESCALE);
    rescale(
        ts * u64::try_from(num.max(1)).unwrap_or(1),
        scale,
        VIDEO_TIMESCALE,
    )
}

/// What every output needs to publish.
struct Ctx<'a> {
    live: &'a LiveStream,
    archive: Option<&'a Archive>,
    cfg: &'a LiveConfig,
    capture_start_ms: Option<i64>,
}

/// Decoding plus the transcoded rungs.
struct Transcode {
    stream_index: usize,
    time_base: (i32, i32),
    fps: (i32, i32),
    decoder: ffmpeg_next::decoder::Video,
    ladder: Option<Ladder>,
    outs: Vec<VideoState>,
    /// Mirror the passthrough rung's keyframes (else: force them on the grid).
    follow_source_keys: bool,
    next_boundary: Option<u64>,
    segment_90k: u64,
    disabled: bool,
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
            let pts = to_90k(ts, self.time_base);
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
                        v.bitrate = Some(spec.bitrate);
                        v
                    })
                    .collect();
                self.ladder = Some(Ladder::new(&specs, self.fps)?);
            }
            let key = if self.follow_source_keys {
                frame.is_key()
            } else {
                match self.next_boundary {
                    None => true,
                    Some(b) => pts >= b,
                }
            };
            if key && !self.follow_source_keys {
                let start = self.next_boundary.unwrap_or(pts);
                let mut next = start;
                while next <= pts {
                    next += self.segment_90k.max(1);
                }
                self.next_boundary = Some(next);
            }
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
        metrics::gauge!("onair_ladder_realtime_factor", "stream" => self.stream_id.clone())
            .set(factor);
        if factor < 1.0 {
            metrics::counter!("onair_ladder_behind_total", "stream" => self.stream_id.clone())
                .increment(1);
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

    fn finish(&mut self, ctx: &Ctx<'_>) -> Result<(), PipelineError> {
        let _ = self.decoder.send_eof();
        self.frames(ctx)?;
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
    transcoder: AacTranscoder,
    segmenter: Segmenter,
    frames: u64,
}

fn seg_config(cfg: &LiveConfig, scale: Timescale) -> SegmenterConfig {
    let per_ms = |ms: u64| rescale(ms, crate::packager::time::MILLIS, scale);
    SegmenterConfig {
        segment_target: per_ms(cfg.segment_ms),
        part_target: per_ms(cfg.part_ms),
        window_segments: cfg.window_segments,
    }
}

fn publish(
    live: &LiveStream,
    archive: Option<&Archive>,
    name: &str,
    seg: &Segmenter,
    outputs: Vec<Output>,
) {
    for o in outputs {
        let snapshot = seg.snapshot("init.mp4");
        match o {
            Output::Part {
                msn, index, bytes, ..
            } => live.publish_part(name, msn, index, bytes, snapshot),
            Output::Segment { msn, bytes, .. } => {
                if let Some(a) = archive {
                    a.put(name, &format!("{msn}.m4s"), bytes.clone());
                }
                live.publish_segment(name, msn, bytes, snapshot)
            }
        }
    }
}

fn set_init(live: &LiveStream, archive: Option<&Archive>, name: &str, init: &Bytes) {
    if let Some(a) = archive {
        a.put(name, "init.mp4", init.clone());
    }
    live.set_init(name, init.clone());
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
            bytes: 0,
            bitrate: None,
            fps: None,
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
            push_video(self, ctx, prev);
        }
        self.pending = Some(sample);
    }

    /// End of stream: the last sample, then the segmenter's last segment.
    fn flush(&mut self, ctx: &Ctx<'_>) {
        if let Some(mut last) = self.pending.take() {
            last.duration = self.last_duration;
            push_video(self, ctx, last);
        }
        if let Some(seg) = self.segmenter.as_mut() {
            let outputs = seg.finish();
            publish(ctx.live, ctx.archive, &self.name, seg, outputs);
            ctx.live.set_snapshot(&self.name, seg.snapshot("init.mp4"));
        }
    }

    /// Turns a demuxed packet into a sample (length-prefixed NAL units without
    /// parameter sets or delimiters), remembering in-band SPS/PPS.
    fn sample(&mut self, packet: &ffmpeg_next::Packet) -> Option<Sample> {
        let data = packet.data()?;
        let nals: Vec<&[u8]> = if h264::is_annex_b(data) {
            h264::split_annex_b(data)
        } else {
            h264::split_length_prefixed(data)?
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
        let to_90k = |ts: i64| to_90k(ts, self.time_base);
        let dts = to_90k(packet.dts().or(packet.pts())?);
        let pts = packet.pts().map(to_90k).unwrap_or(dts);
        Some(Sample {
            dts,
            cts_offset: i32::try_from(pts as i64 - dts as i64).unwrap_or(0),
            duration: 0,
            keyframe: idr || packet.is_key(),
            data: Bytes::from(h264::to_length_prefixed(keep)),
        })
    }
}

/// Runs the pipeline until the input ends. Blocks: call it on a blocking thread.
pub fn run(
    reader: impl Read + Send + 'static,
    live: Arc<LiveStream>,
    cfg: LiveConfig,
    capture_start_ms: Option<i64>,
    archive: Option<Archive>,
) -> Result<PipelineReport, PipelineError> {
    let archive = archive.as_ref();
    let mut input = MemoryInput::open(reader, ProbeLimits::default())?;
    let format = input.format_name();

    let mut video: Option<VideoState> = None;
    let mut transcode: Option<Transcode> = None;
    let mut audio: Option<AudioState> = None;
    let segment_90k = rescale(
        cfg.segment_ms,
        crate::packager::time::MILLIS,
        VIDEO_TIMESCALE,
    );
    for stream in input.input().streams() {
        let params = stream.parameters();
        match params.medium() {
            Type::Video if video.is_none() && transcode.is_none() => {
                let tb = stream.time_base();
                let time_base = (tb.numerator(), tb.denominator());
                let passthrough = params.id() == Id::H264;
                if passthrough {
                    let (sps, pps) = parse_avcc(&extradata(&params)).unwrap_or_default();
                    video = Some(VideoState::new(stream.index(), time_base, sps, pps));
                }
                let rate = stream.avg_frame_rate();
                let known = (rate.numerator() > 0 && rate.denominator() > 0).then(|| {
                    (
                        rate.numerator().unsigned_abs(),
                        rate.denominator().unsigned_abs(),
                    )
                });
                if let Some(v) = video.as_mut() {
                    v.fps = known;
                }
                if passthrough && cfg.passthrough_only {
                    continue;
                }
                let fps = (rate.numerator(), rate.denominator());
                let fps = if known.is_some() { fps } else { (30, 1) };
                let decoder = ffmpeg_next::codec::context::Context::from_parameters(params.clone())
                    .and_then(|c| c.decoder().video())
                    .map_err(PipelineError::VideoDecoder)?;
                transcode = Some(Transcode {
                    stream_index: stream.index(),
                    time_base,
                    fps,
                    decoder,
                    ladder: None,
                    outs: Vec::new(),
                    follow_source_keys: passthrough,
                    next_boundary: None,
                    segment_90k,
                    disabled: false,
                    busy: std::time::Duration::ZERO,
                    encoded_90k: 0,
                    last_pts: None,
                    stream_id: archive.map(|a| a.stream.clone()).unwrap_or_default(),
                });
            }
            Type::Audio if audio.is_none() => {
                let transcoder = AacTranscoder::new(params, cfg.audio_bitrate)?;
                let scale = Timescale::new(AAC_RATE).unwrap_or(VIDEO_TIMESCALE);
                let track = Track {
                    id: 1,
                    timescale: scale,
                    codec: Codec::Aac {
                        sample_rate: AAC_RATE,
                        channels: 2,
                        asc: transcoder.audio_specific_config().clone(),
                    },
                };
                let segmenter = Segmenter::new(track, seg_config(&cfg, scale), capture_start_ms);
                set_init(&live, archive, AUDIO_RENDITION, segmenter.init_segment());
                audio = Some(AudioState {
                    stream_index: stream.index(),
                    transcoder,
                    segmenter,
                    frames: 0,
                });
            }
            _ => {}
        }
    }
    if video.is_none() && transcode.is_none() && audio.is_none() {
        return Err(PipelineError::NoStreams);
    }
    let ctx = Ctx {
        live: &live,
        archive,
        cfg: &cfg,
        capture_start_ms,
    };

    let mut master_written = false;
    for (stream, packet) in input.input().packets() {
        let index = stream.index();
        if let Some(v) = video.as_mut().filter(|v| v.stream_index == index) {
            if let Some(sample) = v.sample(&packet) {
                v.accept(sample, &ctx);
            }
        }
        if let Some(t) = transcode
            .as_mut()
            .filter(|t| t.stream_index == index && !t.disabled)
        {
            // A corrupt packet is skipped; the decoder resynchronises at the next keyframe.
            if t.decoder.send_packet(&packet).is_ok() {
                t.frames(&ctx)?;
            }
        }
        if let Some(a) = audio.as_mut().filter(|a| a.stream_index == index) {
            let frames = a.transcoder.push(&packet)?;
            push_audio(a, &live, archive, frames);
        }
        let outputs = outputs(video.as_ref(), transcode.as_ref());
        let video_ready = !outputs.is_empty() || (video.is_none() && transcode.is_none());
        if !master_written && video_ready {
            live.set_master(master(&outputs, audio.is_some()));
            master_written = true;
        }
    }

    // End of input: flush what is pending and close the playlists.
    if let Some(v) = video.as_mut() {
        v.flush(&ctx);
    }
    if let Some(t) = transcode.as_mut() {
        t.finish(&ctx)?;
    }
    if let Some(a) = audio.as_mut() {
        let frames = a.transcoder.finish()?;
        push_audio(a, &live, archive, frames);
        let outputs = a.segmenter.finish();
        publish(&live, archive, AUDIO_RENDITION, &a.segmenter, outputs);
        live.set_snapshot(AUDIO_RENDITION, a.segmenter.snapshot("init.mp4"));
    }
    live.set_master(master(
        &outputs(video.as_ref(), transcode.as_ref()),
        audio.is_some(),
    ));
    let video_frames = video
        .as_ref()
        .map(|v| v.frames)
        .or_else(|| {
            transcode
                .as_ref()
                .and_then(|t| t.outs.first())
                .map(|o| o.frames)
        })
        .unwrap_or(0);
    Ok(PipelineReport {
        format,
        video_frames,
        audio_frames: audio.as_ref().map(|a| a.frames).unwrap_or(0),
    })
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

fn push_video(v: &mut VideoState, ctx: &Ctx<'_>, sample: Sample) {
    if v.segmenter.is_none() {
        // Start at the first keyframe whose parameter sets we know.
        let Some(info) = v.sps.first().and_then(|s| h264::parse_sps(s)) else {
            return;
        };
        if !sample.keyframe || v.pps.is_empty() {
            return;
        }
        v.name = format!("{}p", info.height);
        let track = Track {
            id: 1,
            timescale: VIDEO_TIMESCALE,
            codec: Codec::Avc {
                sps: v.sps.clone(),
                pps: v.pps.clone(),
                info,
            },
        };
        let seg = Segmenter::new(
            track,
            seg_config(ctx.cfg, VIDEO_TIMESCALE),
            ctx.capture_start_ms,
        );
        set_init(ctx.live, ctx.archive, &v.name, seg.init_segment());
        v.segmenter = Some(seg);
    }
    let Some(seg) = v.segmenter.as_mut() else {
        return;
    };
    v.bytes += sample.data.len() as u64;
    match seg.push(sample) {
        Ok(outputs) => {
            v.frames += 1;
            publish(ctx.live, ctx.archive, &v.name, seg, outputs);
        }
        Err(e) => tracing::warn!(error = %e, "dropped a video frame"),
    }
}

fn push_audio(
    a: &mut AudioState,
    live: &LiveStream,
    archive: Option<&Archive>,
    frames: Vec<super::audio::AacFrame>,
) {
    for f in frames {
        let sample = Sample {
            dts: f.pts,
            cts_offset: 0,
            duration: AAC_FRAME as u32,
            keyframe: true,
            data: f.data,
        };
        match a.segmenter.push(sample) {
            Ok(outputs) => {
                a.frames += 1;
                publish(live, archive, AUDIO_RENDITION, &a.segmenter, outputs);
            }
            Err(e) => tracing::warn!(error = %e, "dropped an audio frame"),
        }
    }
}

/// The master playlist for the renditions running now.
fn master(videos: &[&VideoState], has_audio: bool) -> String {
    let audio_codec = "mp4a.40.2";
    let audio = has_audio.then(|| AudioRendition {
        uri: format!("{AUDIO_RENDITION}/index.m3u8"),
        name: "Audio".into(),
    });
    let mut variants: Vec<Variant> = videos
        .iter()
        .filter_map(|v| {
            let seg = v.segmenter.as_ref()?;
            let Codec::Avc { info, .. } = &seg.track().codec else {
                return None;
            };
            // Transcoded rungs: their encoder target; passthrough: an estimate from the picture size.
            let pixels = u64::from(info.width) * u64::from(info.height);
            let video_bw = v
                .bitrate
                .unwrap_or_else(|| (pixels * 3).clamp(300_000, 8_000_000));
            let bandwidth = video_bw + if has_audio { 128_000 } else { 0 };
            let codecs = if has_audio {
                format!("{},{audio_codec}", info.codec_string())
            } else {
                info.codec_string()
            };
            Some(Variant {
                uri: format!("{}/index.m3u8", v.name),
                bandwidth,
                average_bandwidth: bandwidth * 4 / 5,
                codecs,
                resolution: Some((info.width, info.height)),
                frame_rate: v.fps,
            })
        })
        .collect();
    if variants.is_empty() {
        // Audio only: the audio playlist is the variant.
        variants.push(Variant {
            uri: format!("{AUDIO_RENDITION}/index.m3u8"),
            bandwidth: 160_000,
            average_bandwidth: 128_000,
            codecs: audio_codec.into(),
            resolution: None,
            frame_rate: None,
        });
        return render_master(&variants, None);
    }
    render_master(&variants, audio.as_ref())
}
