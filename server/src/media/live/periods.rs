//! Each period's input streams: the first period decides the renditions
//! (passthrough, ladder, audio); a later one (the recorder restarted) feeds
//! the same renditions, re-encoding the top rung if the source stopped being
//! H.264. Also the stream-health measurements of each period's input.

use bytes::Bytes;
use ffmpeg_next::codec::Id;
use ffmpeg_next::media::Type;

use super::audio::{aac_track, log_audio, AudioState};
use super::rtc::RtcAudioSource;
use super::rungs::Transcode;
use super::timeline::{frame_interval_90k, lead_for, new_segmenter, set_init};
use super::video::{parse_avcc, VideoState};
use super::{Pipeline, PipelineError, AUDIO_RENDITION};
use crate::media::audio::AudioCoder;
use crate::media::demux::MemoryInput;
use crate::media::health::VideoInput;
use crate::media::ladder::{bitrate_for, Ladder, RungSpec};
use crate::packager::cuts::Cursor;
use crate::packager::fmp4::Codec;
use crate::packager::h264;
use crate::packager::time::{Timescale, VIDEO_TIMESCALE};

pub(super) fn extradata(params: &ffmpeg_next::codec::Parameters) -> Vec<u8> {
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

pub(super) fn nominal_fps(stream: &ffmpeg_next::format::stream::Stream<'_>) -> Option<(u32, u32)> {
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
pub(super) fn probed_reorder_depth(params: &ffmpeg_next::codec::Parameters) -> u32 {
    // SAFETY: reading a plain integer field of the stream's codec parameters.
    let delay = unsafe { (*params.as_ptr()).video_delay };
    u32::try_from(delay).unwrap_or(0)
}

/// The lead a passed-through H.264 stream needs (see [`lead_for`]): from the
/// SPS in its header, else from what the probe found.
pub(super) fn passthrough_lead(
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

pub(super) fn fps_for_encoder(known: Option<(u32, u32)>) -> (i32, i32) {
    known
        .and_then(|(n, d)| Some((i32::try_from(n).ok()?, i32::try_from(d).ok()?)))
        .unwrap_or((30, 1))
}

impl Pipeline<'_> {
    /// The first period decides the renditions.
    pub(super) fn open_first(&mut self, input: &mut MemoryInput) -> Result<(), PipelineError> {
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
                    self.rtc_audio.set_source(Some(RtcAudioSource {
                        params: params.clone(),
                        time_base: stream.time_base(),
                        stream_index: stream.index(),
                    }));
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
    pub(super) fn open_next(&mut self, input: &mut MemoryInput) -> Result<(), PipelineError> {
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
        // The WebRTC audio follows this period's audio stream, if any.
        self.rtc_audio.set_source(None);
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
                        self.rtc_audio.set_source(Some(RtcAudioSource {
                            params: params.clone(),
                            time_base: stream.time_base(),
                            stream_index: stream.index(),
                        }));
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
    pub(super) fn measure_streams(&mut self, input: &mut MemoryInput) {
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
    pub(super) fn new_transcode(
        &self,
        decoder: ffmpeg_next::decoder::Video,
        fps: (i32, i32),
    ) -> Transcode {
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
    pub(super) fn encode_passthrough_rung(
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
    pub(super) fn offset_for(&mut self, first_ts_90k: i64, lead: i64) -> i64 {
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
}
