//! Audio for every player, as AAC-LC in 1024-sample frames with contiguous
//! integer timestamps at the rendition's sample rate:
//! - AAC-LC from the source (RTMP/FLV, MPEG-TS, MP4, Matroska) is copied as
//!   it is ([`AacCopier`]): its AudioSpecificConfig becomes the rendition's,
//!   its frames are packaged byte for byte, and it is only decoded when the
//!   captions need PCM;
//! - anything else (the browser studio's Opus) is decoded, resampled and
//!   encoded ([`AacTranscoder`]), at 48 kHz stereo, or at the format an
//!   earlier copied period fixed for the rendition.

use bytes::Bytes;
use ffmpeg_next::codec;
use ffmpeg_next::format::sample::{Sample as SampleFormat, Type as SampleType};
use ffmpeg_next::software::resampling;
use ffmpeg_next::util::channel_layout::ChannelLayout;
use ffmpeg_next::util::frame::audio::Audio as AudioFrame;
use ffmpeg_next::{encoder, Packet};

use super::aac::{asc_for, parse_asc, split_adts, AAC_LC};

mod copy;
pub use copy::AacCopier;

/// Output sample rate of transcoded audio, and the rate of the captions tap.
pub const AAC_RATE: u32 = 48_000;
/// Samples per AAC-LC frame.
pub const AAC_FRAME: usize = 1024;

/// The audio transcoder failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// The input audio cannot be decoded.
    #[error("cannot decode the audio: {0}")]
    Decoder(ffmpeg_next::Error),
    /// The AAC encoder is missing or refused its settings.
    #[error("cannot set up the AAC encoder: {0}")]
    Encoder(ffmpeg_next::Error),
    /// Resampling failed.
    #[error("cannot resample the audio: {0}")]
    Resample(ffmpeg_next::Error),
}

/// The audio format a rendition is packaged in: AAC-LC at `sample_rate`
/// (also the track's timescale) with `channels`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFormat {
    /// Sampling frequency, Hz.
    pub sample_rate: u32,
    /// 1 or 2.
    pub channels: u8,
    /// The AudioSpecificConfig for the init segment.
    pub asc: Bytes,
}

/// Decoded audio turned into what the captions tap takes: mono at
/// [`AAC_RATE`], each run numbered from the first decoded sample.
struct PcmTap {
    resampler: Option<resampling::Context>,
    next: u64,
    pcm: Vec<(u64, Vec<f32>)>,
}

const TAP_FORMAT: SampleFormat = SampleFormat::F32(SampleType::Packed);

impl PcmTap {
    fn new() -> Self {
        PcmTap {
            resampler: None,
            next: 0,
            pcm: Vec::new(),
        }
    }

    fn push(&mut self, decoded: &AudioFrame) -> Result<(), AudioError> {
        let resampler = match &mut self.resampler {
            Some(r) => r,
            None => self.resampler.insert(
                resampling::Context::get(
                    decoded.format(),
                    decoded.channel_layout(),
                    decoded.rate(),
                    TAP_FORMAT,
                    ChannelLayout::MONO,
                    AAC_RATE,
                )
                .map_err(AudioError::Resample)?,
            ),
        };
        let mono = resample(resampler, Some(decoded), TAP_FORMAT, ChannelLayout::MONO)
            .map_err(AudioError::Resample)?;
        let n = mono.samples();
        if n > 0 {
            let samples = mono.plane::<f32>(0)[..n].to_vec();
            self.pcm.push((self.next, samples));
            self.next += n as u64;
        }
        Ok(())
    }
}

/// A decoded frame with its channel layout filled in (some demuxers leave
/// it empty and give only the count).
fn with_layout(decoded: &mut AudioFrame) {
    if decoded.channel_layout().is_empty() {
        decoded.set_channel_layout(ChannelLayout::default(i32::from(decoded.channels())));
    }
}

/// How a rendition gets its AAC from one period's input stream.
pub enum AudioCoder {
    /// The source's AAC, copied.
    Copy(AacCopier),
    /// Decoded and encoded.
    Encode(AacTranscoder),
}

impl AudioCoder {
    /// The coder for an input stream with `params`, packaged as `target`
    /// (`None`: the first period, which decides the rendition's format):
    /// copied when the source is AAC-LC in that format, else encoded to it
    /// (48 kHz stereo when nothing decided yet).
    pub fn open(
        params: codec::Parameters,
        time_base: ffmpeg_next::Rational,
        target: Option<&AudioFormat>,
        bitrate: usize,
        tap: bool,
    ) -> Result<Self, AudioError> {
        if let Some((format, adts)) = AacCopier::source_format(&params) {
            if target.is_none_or(|t| {
                t.sample_rate == format.sample_rate && t.channels == format.channels
            }) {
                let format = match target {
                    // Same rate and channels: the rendition keeps its config.
                    Some(t) => AudioFormat {
                        asc: t.asc.clone(),
                        ..format
                    },
                    None => format,
                };
                return Ok(AudioCoder::Copy(AacCopier::new(params, format, adts, tap)?));
            }
        }
        let (rate, channels) = target
            .map(|t| (t.sample_rate, t.channels))
            .unwrap_or((AAC_RATE, 2));
        let mut t = AacTranscoder::new(params, bitrate, rate, channels)?;
        t.set_packet_time_base(time_base);
        t.set_tap(tap);
        Ok(AudioCoder::Encode(t))
    }

    /// Whether the source's frames are copied.
    pub fn copies(&self) -> bool {
        matches!(self, AudioCoder::Copy(_))
    }

    /// The format the frames come out in.
    pub fn format(&self) -> AudioFormat {
        match self {
            AudioCoder::Copy(c) => c.format.clone(),
            AudioCoder::Encode(t) => t.format(),
        }
    }

    /// Feeds one input packet; returns the AAC frames now complete.
    pub fn push(&mut self, packet: &Packet) -> Result<Vec<AacFrame>, AudioError> {
        match self {
            AudioCoder::Copy(c) => c.push(packet),
            AudioCoder::Encode(t) => t.push(packet),
        }
    }

    /// What is still buffered at the end of the input.
    pub fn finish(&mut self) -> Result<Vec<AacFrame>, AudioError> {
        match self {
            AudioCoder::Copy(_) => Ok(Vec::new()),
            AudioCoder::Encode(t) => t.finish(),
        }
    }

    /// The captions' mono 48 kHz samples since the last call (see
    /// [`AacTranscoder::take_pcm`]).
    pub fn take_pcm(&mut self) -> Vec<(u64, Vec<f32>)> {
        match self {
            AudioCoder::Copy(c) => c
                .tap
                .as_mut()
                .map(|t| std::mem::take(&mut t.pcm))
                .unwrap_or_default(),
            AudioCoder::Encode(t) => t.take_pcm(),
        }
    }

    /// Where frame 0 is in the input (its time base).
    pub fn first_pts(&self) -> Option<i64> {
        match self {
            AudioCoder::Copy(c) => c.first_pts,
            AudioCoder::Encode(t) => t.first_pts(),
        }
    }
}

fn extradata(params: &codec::Parameters) -> Vec<u8> {
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

/// One encoded AAC frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacFrame {
    /// Position in samples since the start of the stream.
    pub pts: u64,
    /// The raw AAC frame.
    pub data: Bytes,
}

/// Decodes one input audio stream and encodes it to AAC-LC.
pub struct AacTranscoder {
    decoder: ffmpeg_next::decoder::Audio,
    resampler: Option<resampling::Context>,
    encoder: encoder::Audio,
    fifo: Vec<Vec<f32>>,
    rate: u32,
    layout: ChannelLayout,
    next_pts: u64,
    emitted: u64,
    asc: Bytes,
    /// Keep a mono copy of what is decoded (for transcription).
    tap: Option<PcmTap>,
    /// The timestamp of the first decoded frame (input time base).
    first_pts: Option<i64>,
}

const OUT_FORMAT: SampleFormat = SampleFormat::F32(SampleType::Planar);

impl AacTranscoder {
    /// Sets up decoding of a stream with `params`, and an AAC encoder at
    /// `bitrate` for `rate` Hz with `channels` (1 or 2).
    pub fn new(
        params: codec::Parameters,
        bitrate: usize,
        rate: u32,
        channels: u8,
    ) -> Result<Self, AudioError> {
        let layout = if channels == 1 {
            ChannelLayout::MONO
        } else {
            ChannelLayout::STEREO
        };
        let channels = if channels == 1 { 1 } else { 2 };
        let decoder = codec::context::Context::from_parameters(params)
            .and_then(|c| c.decoder().audio())
            .map_err(AudioError::Decoder)?;
        let aac = encoder::find(codec::Id::AAC)
            .ok_or(AudioError::Encoder(ffmpeg_next::Error::EncoderNotFound))?;
        let mut enc = codec::context::Context::new_with_codec(aac)
            .encoder()
            .audio()
            .map_err(AudioError::Encoder)?;
        enc.set_rate(i32::try_from(rate).unwrap_or(48_000));
        enc.set_channel_layout(layout);
        enc.set_format(OUT_FORMAT);
        enc.set_bit_rate(bitrate);
        enc.set_time_base((1, i32::try_from(rate).unwrap_or(48_000)));
        // The MP4 sample entry carries the AudioSpecificConfig (global header).
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
        let encoder = enc.open_as(aac).map_err(AudioError::Encoder)?;
        // SAFETY: reading the opened encoder's extradata, which FFmpeg owns and
        // keeps alive with the context.
        let asc = unsafe {
            let ctx = encoder.as_ptr();
            if (*ctx).extradata.is_null() || (*ctx).extradata_size <= 0 {
                asc_for(AAC_LC, rate, channels).unwrap_or(Bytes::from_static(&[0x11, 0x90]))
            } else {
                Bytes::copy_from_slice(std::slice::from_raw_parts(
                    (*ctx).extradata,
                    (*ctx).extradata_size as usize,
                ))
            }
        };
        Ok(AacTranscoder {
            decoder,
            resampler: None,
            encoder,
            fifo: vec![Vec::new(); usize::from(channels)],
            rate,
            layout,
            next_pts: 0,
            emitted: 0,
            asc,
            tap: None,
            first_pts: None,
        })
    }

    /// The format it encodes.
    pub fn format(&self) -> AudioFormat {
        AudioFormat {
            sample_rate: self.rate,
            channels: if self.fifo.len() == 1 { 1 } else { 2 },
            asc: self.asc.clone(),
        }
    }

    /// Keeps a mono 48 kHz copy of every frame decoded from now on, for
    /// [`take_pcm`](Self::take_pcm).
    pub fn set_tap(&mut self, on: bool) {
        self.tap = on.then(PcmTap::new);
    }

    /// The mono 48 kHz samples decoded since the last call, each run with
    /// its position: samples at 48 kHz since the first decoded one (which
    /// is sample 0 of [`AacFrame::pts`]).
    pub fn take_pcm(&mut self) -> Vec<(u64, Vec<f32>)> {
        self.tap
            .as_mut()
            .map(|t| std::mem::take(&mut t.pcm))
            .unwrap_or_default()
    }

    /// The time base of the packets it will be fed, so the decoder moves a
    /// frame's timestamp past the priming it drops (Opus pre-skip): the first
    /// decoded sample is then where the input says its audio starts.
    pub fn set_packet_time_base(&mut self, tb: ffmpeg_next::Rational) {
        // SAFETY: setting a plain field of the decoder context we own, before
        // the first packet is sent.
        unsafe {
            (*self.decoder.as_mut_ptr()).pkt_timebase = tb.into();
        }
    }

    /// The timestamp of the first decoded frame, in the input stream's time
    /// base (after the decoder dropped any priming it was told to skip):
    /// where sample 0 of [`AacFrame::pts`] is in the input.
    pub fn first_pts(&self) -> Option<i64> {
        self.first_pts
    }

    /// The AudioSpecificConfig for the MP4 sample entry.
    pub fn audio_specific_config(&self) -> &Bytes {
        &self.asc
    }

    /// Feeds one compressed input packet; returns the AAC frames now complete.
    pub fn push(&mut self, packet: &Packet) -> Result<Vec<AacFrame>, AudioError> {
        // A corrupt packet is skipped (the decoder resynchronises), not fatal.
        if self.decoder.send_packet(packet).is_err() {
            return Ok(Vec::new());
        }
        self.drain_decoder()
    }

    /// Flushes everything at end of stream (the last frame is padded with silence).
    pub fn finish(&mut self) -> Result<Vec<AacFrame>, AudioError> {
        let _ = self.decoder.send_eof();
        let mut out = self.drain_decoder()?;
        self.drain_resampler()?;
        if !self.fifo[0].is_empty() {
            let missing = AAC_FRAME - self.fifo[0].len() % AAC_FRAME;
            if missing < AAC_FRAME {
                for ch in &mut self.fifo {
                    ch.resize(ch.len() + missing, 0.0);
                }
            }
            out.extend(self.encode_fifo()?);
        }
        let _ = self.encoder.send_eof();
        out.extend(self.receive_packets());
        Ok(out)
    }

    fn drain_decoder(&mut self) -> Result<Vec<AacFrame>, AudioError> {
        let mut out = Vec::new();
        let mut decoded = AudioFrame::empty();
        while self.decoder.receive_frame(&mut decoded).is_ok() {
            if self.first_pts.is_none() {
                self.first_pts = decoded.timestamp().or(decoded.pts());
            }
            with_layout(&mut decoded);
            if let Some(tap) = self.tap.as_mut() {
                tap.push(&decoded)?;
            }
            let resampler = match &mut self.resampler {
                Some(r) => r,
                None => self.resampler.insert(
                    resampling::Context::get(
                        decoded.format(),
                        decoded.channel_layout(),
                        decoded.rate(),
                        OUT_FORMAT,
                        self.layout,
                        self.rate,
                    )
                    .map_err(AudioError::Resample)?,
                ),
            };
            let resampled = resample(resampler, Some(&decoded), OUT_FORMAT, self.layout)
                .map_err(AudioError::Resample)?;
            self.queue(&resampled);
            out.extend(self.encode_fifo()?);
        }
        Ok(out)
    }

    /// Appends resampled samples to the FIFO.
    fn queue(&mut self, resampled: &AudioFrame) {
        let n = resampled.samples();
        if n == 0 {
            return;
        }
        for (ch, fifo) in self.fifo.iter_mut().enumerate() {
            fifo.extend_from_slice(&resampled.plane::<f32>(ch)[..n]);
        }
    }

    /// What the resampler still holds at end of stream.
    fn drain_resampler(&mut self) -> Result<(), AudioError> {
        while let Some(resampler) = self.resampler.as_mut() {
            let rest =
                resample(resampler, None, OUT_FORMAT, self.layout).map_err(AudioError::Resample)?;
            if rest.samples() == 0 {
                break;
            }
            self.queue(&rest);
        }
        Ok(())
    }

    fn encode_fifo(&mut self) -> Result<Vec<AacFrame>, AudioError> {
        let mut out = Vec::new();
        while self.fifo[0].len() >= AAC_FRAME {
            let mut frame = AudioFrame::new(OUT_FORMAT, AAC_FRAME, self.layout);
            frame.set_rate(self.rate);
            for (ch, fifo) in self.fifo.iter_mut().enumerate() {
                frame.plane_mut::<f32>(ch)[..AAC_FRAME].copy_from_slice(&fifo[..AAC_FRAME]);
                fifo.drain(..AAC_FRAME);
            }
            frame.set_pts(Some(self.next_pts as i64));
            self.next_pts += AAC_FRAME as u64;
            self.encoder
                .send_frame(&frame)
                .map_err(AudioError::Encoder)?;
            out.extend(self.receive_packets());
        }
        Ok(out)
    }

    fn receive_packets(&mut self) -> Vec<AacFrame> {
        let mut out = Vec::new();
        let mut packet = Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            if let Some(data) = packet.data() {
                // The encoder's priming makes its first pts negative: number
                // the frames from zero instead, so media time is contiguous.
                out.push(AacFrame {
                    pts: self.emitted * AAC_FRAME as u64,
                    data: Bytes::copy_from_slice(data),
                });
                self.emitted += 1;
            }
        }
        out
    }
}

/// Converts `input` (or, with `None`, what the resampler still buffers) into a
/// new frame with room for every sample the conversion yields. A frame only as
/// large as the input would leave the surplus in the resampler whenever the
/// output rate is higher (44.1 -> 48 kHz): the audio would fall further behind
/// with every frame, and the buffered tail would be lost at the end.
pub(crate) fn resample(
    resampler: &mut resampling::Context,
    input: Option<&AudioFrame>,
    format: SampleFormat,
    layout: ChannelLayout,
) -> Result<AudioFrame, ffmpeg_next::Error> {
    let in_samples = input.map(|f| f.samples()).unwrap_or(0);
    // SAFETY: the resampler is a valid, initialised SwrContext owned by the caller.
    let capacity = unsafe {
        ffmpeg_next::ffi::swr_get_out_samples(
            resampler.as_mut_ptr(),
            i32::try_from(in_samples).unwrap_or(i32::MAX),
        )
    };
    let capacity = usize::try_from(capacity)
        .unwrap_or(0)
        .max(in_samples)
        .max(1);
    let mut output = AudioFrame::new(format, capacity, layout);
    match input {
        Some(frame) => {
            resampler.run(frame, &mut output)?;
        }
        None => {
            resampler.flush(&mut output)?;
        }
    }
    Ok(output)
}
