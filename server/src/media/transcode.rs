//! Encoding for `onair publish`: streams the server does not take as they are
//! are decoded and encoded in-process, video to H.264 (libx264) and audio to
//! Opus (libopus, or AAC when this FFmpeg has no libopus).

use ffmpeg_next::codec::{self, Id};
use ffmpeg_next::format::sample::{Sample as SampleFormat, Type as SampleType};
use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::{resampling, scaling};
use ffmpeg_next::util::channel_layout::ChannelLayout;
use ffmpeg_next::util::frame::audio::Audio as AudioFrame;
use ffmpeg_next::util::frame::video::Video as VideoFrame;
use ffmpeg_next::{decoder, encoder, picture, Dictionary, Packet, Rational, Rescale};

use super::audio::resample;

/// Video codecs the server takes as they are (H.264 passes through, VP8 and
/// VP9 are decoded for the ladder).
pub const SERVER_VIDEO: [Id; 3] = [Id::H264, Id::VP8, Id::VP9];
/// Audio codecs the server takes as they are.
pub const SERVER_AUDIO: [Id; 2] = [Id::OPUS, Id::AAC];

/// Seconds between forced keyframes of encoded video (the server's segment target).
pub const KEYFRAME_SECONDS: i32 = 2;
/// Sample rate of encoded audio.
pub const AUDIO_RATE: i32 = 48_000;

/// Encoding failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscodeError {
    /// The input stream cannot be decoded.
    #[error("cannot decode the {medium} ({codec}): {source}")]
    Decoder {
        /// `video` or `audio`.
        medium: &'static str,
        /// The input codec.
        codec: String,
        /// FFmpeg's error.
        source: ffmpeg_next::Error,
    },
    /// This FFmpeg has no encoder for the target.
    #[error("this FFmpeg has no {0} encoder")]
    NoEncoder(&'static str),
    /// The encoder refused its settings or a frame.
    #[error("the {encoder} encoder failed: {source}")]
    Encoder {
        /// The encoder's name.
        encoder: &'static str,
        /// FFmpeg's error.
        source: ffmpeg_next::Error,
    },
    /// Scaling or pixel format conversion failed.
    #[error("cannot convert the picture: {0}")]
    Scale(ffmpeg_next::Error),
    /// Resampling failed.
    #[error("cannot resample the audio: {0}")]
    Resample(ffmpeg_next::Error),
}

fn decoder_error(
    medium: &'static str,
    params: &codec::Parameters,
) -> impl FnOnce(ffmpeg_next::Error) -> TranscodeError {
    let codec = params.id().name().to_string();
    move |source| TranscodeError::Decoder {
        medium,
        codec,
        source,
    }
}

fn even(v: u32) -> u32 {
    (v / 2 * 2).max(2)
}

/// Moves the access unit delimiter of an Annex B access unit to the front.
/// libx264 puts its version SEI (a few hundred bytes) before the AUD of the
/// first frame; the AUD must come first so that, once the muxer writes 4-byte
/// lengths, the sample starts `00 00 00 02`. `None` if nothing needs to move.
fn aud_first(data: &[u8]) -> Option<Vec<u8>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let units: Vec<&[u8]> = starts
        .iter()
        .enumerate()
        .map(|(n, &s)| {
            let mut end = starts
                .get(n + 1)
                .map(|&next| next - 3)
                .unwrap_or(data.len());
            while end > s && data[end - 1] == 0 {
                end -= 1;
            }
            &data[s..end]
        })
        .filter(|u| !u.is_empty())
        .collect();
    let aud = units.iter().position(|u| u[0] & 0x1f == 9)?;
    if aud == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() + 4);
    for unit in std::iter::once(units[aud]).chain(
        units
            .iter()
            .enumerate()
            .filter(|(n, _)| *n != aud)
            .map(|(_, u)| *u),
    ) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(unit);
    }
    Some(out)
}

fn receive(enc: &mut encoder::Encoder) -> Vec<Packet> {
    let mut packets = Vec::new();
    let mut p = Packet::empty();
    while enc.receive_packet(&mut p).is_ok() {
        packets.push(std::mem::replace(&mut p, Packet::empty()));
    }
    packets
}

/// Decodes one video stream and encodes it to H.264 for live streaming:
/// libx264 `veryfast` + `zerolatency`, yuv420p, an IDR every
/// [`KEYFRAME_SECONDS`] of media time. Timestamps stay in the input stream's
/// time base.
pub struct VideoEncode {
    decoder: decoder::Video,
    encoder: encoder::Video,
    scaler: Option<(scaling::Context, (Pixel, u32, u32))>,
    size: (u32, u32),
    time_base: Rational,
    key_every: i64,
    next_key: Option<i64>,
    last_pts: Option<i64>,
}

impl VideoEncode {
    /// Opens a decoder for `params` and a libx264 encoder for its picture.
    /// `time_base` is the input stream's, `frame_rate` its nominal rate (or
    /// `None`), `global_header` whether the container wants parameter sets in
    /// the codec private data.
    pub fn new(
        params: codec::Parameters,
        time_base: Rational,
        frame_rate: Option<Rational>,
        global_header: bool,
    ) -> Result<Self, TranscodeError> {
        let decoder = codec::context::Context::from_parameters(params.clone())
            .and_then(|c| c.decoder().video())
            .map_err(decoder_error("video", &params))?;
        let x264 = encoder::find_by_name("libx264").ok_or(TranscodeError::NoEncoder("H.264"))?;
        let failed = |source| TranscodeError::Encoder {
            encoder: "libx264",
            source,
        };
        let size = (even(decoder.width()), even(decoder.height()));
        let fps = frame_rate
            .filter(|r| r.numerator() > 0 && r.denominator() > 0)
            .unwrap_or(Rational::new(30, 1));
        let mut enc = codec::context::Context::new_with_codec(x264)
            .encoder()
            .video()
            .map_err(failed)?;
        enc.set_width(size.0);
        enc.set_height(size.1);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base(time_base);
        enc.set_frame_rate(Some(fps));
        enc.set_aspect_ratio(decoder.aspect_ratio());
        // A keyframe every KEYFRAME_SECONDS at the nominal rate at the latest;
        // frames are also forced to IDR on the media-time grid (variable rates).
        let gop =
            i64::from(fps.numerator()) * i64::from(KEYFRAME_SECONDS) / i64::from(fps.denominator());
        enc.set_gop(u32::try_from(gop.clamp(1, 600)).unwrap_or(60));
        enc.set_max_b_frames(0);
        // Cap the rate at twice what the ladder gives this size.
        let max_rate = super::ladder::bitrate_for(size.0, size.1) * 2;
        enc.set_max_bit_rate(usize::try_from(max_rate).unwrap_or(usize::MAX));
        if global_header {
            enc.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let mut opts = Dictionary::new();
        opts.set("preset", "veryfast");
        opts.set("tune", "zerolatency");
        opts.set("crf", "21");
        opts.set("bufsize", &(max_rate * 2).to_string());
        opts.set("forced-idr", "1");
        // An access unit delimiter first in every frame: each length-prefixed
        // sample then starts `00 00 00 02`, which the server's passthrough can
        // never mistake for an Annex B start code (a first NAL unit of 256-511
        // bytes, common with zerolatency's slices, starts `00 00 01`).
        opts.set("x264-params", "scenecut=0:aud=1");
        let encoder = enc.open_as_with(x264, opts).map_err(failed)?;
        let key_every = (i64::from(KEYFRAME_SECONDS))
            .rescale((1, 1), time_base)
            .max(1);
        Ok(VideoEncode {
            decoder,
            encoder,
            scaler: None,
            size,
            time_base,
            key_every,
            next_key: None,
            last_pts: None,
        })
    }

    /// The encoder, for the output stream's codec parameters.
    pub fn encoder(&self) -> &encoder::Video {
        &self.encoder
    }

    /// The encoder's time base (that of its packets).
    pub fn time_base(&self) -> Rational {
        self.time_base
    }

    /// Feeds one input packet; returns the encoded packets now ready. A packet
    /// the decoder refuses is skipped (it resynchronises at the next keyframe).
    pub fn push(&mut self, packet: &Packet) -> Result<Vec<Packet>, TranscodeError> {
        if self.decoder.send_packet(packet).is_err() {
            return Ok(Vec::new());
        }
        self.drain()
    }

    /// Flushes decoder and encoder at the end of the input.
    pub fn finish(&mut self) -> Result<Vec<Packet>, TranscodeError> {
        let _ = self.decoder.send_eof();
        let mut out = self.drain()?;
        let _ = self.encoder.send_eof();
        out.extend(self.receive());
        Ok(out)
    }

    /// The encoder's finished packets, each with its AUD first.
    fn receive(&mut self) -> Vec<Packet> {
        receive(&mut self.encoder)
            .into_iter()
            .map(|p| {
                let Some(data) = p.data().and_then(aud_first) else {
                    return p;
                };
                let mut moved = Packet::copy(&data);
                moved.set_pts(p.pts());
                moved.set_dts(p.dts());
                moved.set_duration(p.duration());
                moved.set_flags(p.flags());
                moved
            })
            .collect()
    }

    fn drain(&mut self) -> Result<Vec<Packet>, TranscodeError> {
        let mut out = Vec::new();
        let mut frame = VideoFrame::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            let Some(ts) = frame.timestamp() else {
                continue;
            };
            // Presentation times must increase for the encoder.
            let pts = match self.last_pts {
                Some(last) if ts <= last => last + 1,
                _ => ts,
            };
            self.last_pts = Some(pts);
            let key = match self.next_key {
                None => true,
                Some(k) => pts >= k,
            };
            if key {
                // The next grid point after this frame.
                let start = self.next_key.unwrap_or(pts);
                let behind = (pts - start) / self.key_every + 1;
                self.next_key = Some(start + behind * self.key_every);
            }
            let kind = if key {
                picture::Type::I
            } else {
                picture::Type::None
            };
            let src = (frame.format(), frame.width(), frame.height());
            let sent = if src == (Pixel::YUV420P, self.size.0, self.size.1) {
                frame.set_pts(Some(pts));
                frame.set_kind(kind);
                self.encoder.send_frame(&frame)
            } else {
                if self.scaler.as_ref().is_none_or(|(_, k)| *k != src) {
                    let ctx = scaling::Context::get(
                        src.0,
                        src.1,
                        src.2,
                        Pixel::YUV420P,
                        self.size.0,
                        self.size.1,
                        scaling::Flags::BILINEAR,
                    )
                    .map_err(TranscodeError::Scale)?;
                    self.scaler = Some((ctx, src));
                }
                let mut scaled = VideoFrame::empty();
                if let Some((scaler, _)) = self.scaler.as_mut() {
                    scaler
                        .run(&frame, &mut scaled)
                        .map_err(TranscodeError::Scale)?;
                }
                scaled.set_pts(Some(pts));
                scaled.set_kind(kind);
                self.encoder.send_frame(&scaled)
            };
            sent.map_err(|source| TranscodeError::Encoder {
                encoder: "libx264",
                source,
            })?;
            out.extend(self.receive());
        }
        Ok(out)
    }
}

/// Decodes one audio stream and encodes it to Opus (libopus) at 48 kHz, or
/// to AAC-LC when this FFmpeg has no libopus. Mono stays mono; more channels
/// become stereo. Timestamps are in 1/48000 s, contiguous from the first
/// decoded sample's time.
pub struct AudioEncode {
    decoder: decoder::Audio,
    encoder: encoder::Audio,
    encoder_name: &'static str,
    in_time_base: Rational,
    resampler: Option<resampling::Context>,
    format: SampleFormat,
    layout: ChannelLayout,
    /// Samples waiting for a full encoder frame: one byte vector per plane.
    fifo: Vec<Vec<u8>>,
    frame_size: usize,
    small_last_frame: bool,
    next_pts: Option<i64>,
}

/// The audio encoder this FFmpeg offers: libopus, else the AAC encoder.
pub fn audio_encoder() -> Option<(ffmpeg_next::Codec, &'static str, &'static str)> {
    encoder::find_by_name("libopus")
        .map(|c| (c, "libopus", "opus"))
        .or_else(|| encoder::find(Id::AAC).map(|c| (c, "aac", "aac")))
}

impl AudioEncode {
    /// Opens a decoder for `params` (in a stream with `time_base`) and the
    /// audio encoder.
    pub fn new(
        params: codec::Parameters,
        time_base: Rational,
        global_header: bool,
    ) -> Result<Self, TranscodeError> {
        let decoder = codec::context::Context::from_parameters(params.clone())
            .and_then(|c| c.decoder().audio())
            .map_err(decoder_error("audio", &params))?;
        let (codec, encoder_name, _) = audio_encoder().ok_or(TranscodeError::NoEncoder("Opus"))?;
        let failed = |source| TranscodeError::Encoder {
            encoder: encoder_name,
            source,
        };
        // Float if the encoder takes it (libopus: packed, AAC: planar).
        let formats: Vec<SampleFormat> = codec
            .audio()
            .ok()
            .and_then(|a| a.formats())
            .map(|f| f.collect())
            .unwrap_or_default();
        let format = [
            SampleFormat::F32(SampleType::Packed),
            SampleFormat::F32(SampleType::Planar),
        ]
        .into_iter()
        .find(|f| formats.contains(f))
        .or_else(|| formats.first().copied())
        .unwrap_or(SampleFormat::F32(SampleType::Planar));
        let layout = if decoder.channels() == 1 {
            ChannelLayout::MONO
        } else {
            ChannelLayout::STEREO
        };
        let mut enc = codec::context::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .map_err(failed)?;
        enc.set_rate(AUDIO_RATE);
        enc.set_channel_layout(layout);
        enc.set_format(format);
        enc.set_bit_rate(if layout == ChannelLayout::MONO {
            64_000
        } else {
            128_000
        });
        enc.set_time_base((1, AUDIO_RATE));
        if global_header {
            enc.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let encoder = enc.open_as(codec).map_err(failed)?;
        let frame_size = match encoder.frame_size() {
            0 => 960, // variable frame size: 20 ms
            n => n as usize,
        };
        let planes = if format.is_planar() {
            usize::from(encoder.channels())
        } else {
            1
        };
        Ok(AudioEncode {
            decoder,
            small_last_frame: codec.capabilities().intersects(
                codec::Capabilities::SMALL_LAST_FRAME | codec::Capabilities::VARIABLE_FRAME_SIZE,
            ),
            encoder,
            encoder_name,
            in_time_base: time_base,
            resampler: None,
            format,
            layout,
            fifo: vec![Vec::new(); planes],
            frame_size,
            next_pts: None,
        })
    }

    /// The encoder, for the output stream's codec parameters.
    pub fn encoder(&self) -> &encoder::Audio {
        &self.encoder
    }

    /// The encoder's time base (that of its packets).
    pub fn time_base(&self) -> Rational {
        Rational::new(1, AUDIO_RATE)
    }

    /// Feeds one input packet; returns the encoded packets now ready. A packet
    /// the decoder refuses is skipped.
    pub fn push(&mut self, packet: &Packet) -> Result<Vec<Packet>, TranscodeError> {
        if self.decoder.send_packet(packet).is_err() {
            return Ok(Vec::new());
        }
        self.drain()
    }

    /// Flushes decoder, resampler and encoder at the end of the input.
    pub fn finish(&mut self) -> Result<Vec<Packet>, TranscodeError> {
        let _ = self.decoder.send_eof();
        let mut out = self.drain()?;
        while let Some(resampler) = self.resampler.as_mut() {
            let rest = resample(resampler, None, self.format, self.layout)
                .map_err(TranscodeError::Resample)?;
            if rest.samples() == 0 {
                break;
            }
            self.queue(&rest);
        }
        out.extend(self.encode_fifo()?);
        let left = self.buffered();
        if left > 0 {
            if !self.small_last_frame {
                // Pad the last frame with silence (zero is silence in float formats).
                let missing = (self.frame_size - left) * self.bytes_per_sample();
                for plane in &mut self.fifo {
                    plane.resize(plane.len() + missing, 0);
                }
            }
            out.extend(self.encode_frame(self.buffered())?);
        }
        let _ = self.encoder.send_eof();
        out.extend(receive(&mut self.encoder));
        Ok(out)
    }

    fn bytes_per_sample(&self) -> usize {
        let channels = if self.format.is_planar() {
            1
        } else {
            usize::from(self.encoder.channels())
        };
        self.format.bytes() * channels
    }

    /// Samples waiting in the FIFO.
    fn buffered(&self) -> usize {
        self.fifo.first().map(Vec::len).unwrap_or(0) / self.bytes_per_sample().max(1)
    }

    fn queue(&mut self, frame: &AudioFrame) {
        let len = frame.samples() * self.bytes_per_sample();
        for (p, plane) in self.fifo.iter_mut().enumerate() {
            plane.extend_from_slice(&frame.data(p)[..len]);
        }
    }

    fn drain(&mut self) -> Result<Vec<Packet>, TranscodeError> {
        let mut out = Vec::new();
        let mut decoded = AudioFrame::empty();
        while self.decoder.receive_frame(&mut decoded).is_ok() {
            if decoded.channel_layout().is_empty() {
                decoded.set_channel_layout(ChannelLayout::default(i32::from(decoded.channels())));
            }
            if self.next_pts.is_none() {
                let start = decoded
                    .timestamp()
                    .map(|ts| ts.rescale(self.in_time_base, (1, AUDIO_RATE)))
                    .unwrap_or(0);
                self.next_pts = Some(start);
            }
            let resampler = match &mut self.resampler {
                Some(r) => r,
                None => self.resampler.insert(
                    resampling::Context::get(
                        decoded.format(),
                        decoded.channel_layout(),
                        decoded.rate(),
                        self.format,
                        self.layout,
                        AUDIO_RATE as u32,
                    )
                    .map_err(TranscodeError::Resample)?,
                ),
            };
            let resampled = resample(resampler, Some(&decoded), self.format, self.layout)
                .map_err(TranscodeError::Resample)?;
            self.queue(&resampled);
            out.extend(self.encode_fifo()?);
        }
        Ok(out)
    }

    fn encode_fifo(&mut self) -> Result<Vec<Packet>, TranscodeError> {
        let mut out = Vec::new();
        while self.buffered() >= self.frame_size {
            out.extend(self.encode_frame(self.frame_size)?);
        }
        Ok(out)
    }

    /// Encodes the first `samples` samples of the FIFO as one frame.
    fn encode_frame(&mut self, samples: usize) -> Result<Vec<Packet>, TranscodeError> {
        let mut frame = AudioFrame::new(self.format, samples, self.layout);
        frame.set_rate(AUDIO_RATE as u32);
        let len = samples * self.bytes_per_sample();
        for (p, plane) in self.fifo.iter_mut().enumerate() {
            frame.data_mut(p)[..len].copy_from_slice(&plane[..len]);
            plane.drain(..len);
        }
        let pts = self.next_pts.unwrap_or(0);
        frame.set_pts(Some(pts));
        self.next_pts = Some(pts + i64::try_from(samples).unwrap_or(0));
        self.encoder
            .send_frame(&frame)
            .map_err(|source| TranscodeError::Encoder {
                encoder: self.encoder_name,
                source,
            })?;
        Ok(receive(&mut self.encoder))
    }
}

#[cfg(test)]
#[path = "transcode_tests.rs"]
mod tests;
