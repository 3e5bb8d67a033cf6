//! Audio for every player: decode whatever the browser sent (usually Opus),
//! resample to 48 kHz stereo, and encode AAC-LC in 1024-sample frames with
//! contiguous integer timestamps.

use bytes::Bytes;
use ffmpeg_next::codec;
use ffmpeg_next::format::sample::{Sample as SampleFormat, Type as SampleType};
use ffmpeg_next::software::resampling;
use ffmpeg_next::util::channel_layout::ChannelLayout;
use ffmpeg_next::util::frame::audio::Audio as AudioFrame;
use ffmpeg_next::{encoder, Packet};

/// Output sample rate (also the track timescale).
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
    fifo: [Vec<f32>; 2],
    next_pts: u64,
    emitted: u64,
    asc: Bytes,
    /// Keep a mono copy of what is encoded (for transcription).
    tap: bool,
    pcm: Vec<(u64, Vec<f32>)>,
    /// The timestamp of the first decoded frame (input time base).
    first_pts: Option<i64>,
}

const OUT_FORMAT: SampleFormat = SampleFormat::F32(SampleType::Planar);

impl AacTranscoder {
    /// Sets up decoding of a stream with `params`, and an AAC encoder at `bitrate`.
    pub fn new(params: codec::Parameters, bitrate: usize) -> Result<Self, AudioError> {
        let decoder = codec::context::Context::from_parameters(params)
            .and_then(|c| c.decoder().audio())
            .map_err(AudioError::Decoder)?;
        let aac = encoder::find(codec::Id::AAC)
            .ok_or(AudioError::Encoder(ffmpeg_next::Error::EncoderNotFound))?;
        let mut enc = codec::context::Context::new_with_codec(aac)
            .encoder()
            .audio()
            .map_err(AudioError::Encoder)?;
        enc.set_rate(AAC_RATE as i32);
        enc.set_channel_layout(ChannelLayout::STEREO);
        enc.set_format(OUT_FORMAT);
        enc.set_bit_rate(bitrate);
        enc.set_time_base((1, AAC_RATE as i32));
        // The MP4 sample entry carries the AudioSpecificConfig (global header).
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
        let encoder = enc.open_as(aac).map_err(AudioError::Encoder)?;
        // SAFETY: reading the opened encoder's extradata, which FFmpeg owns and
        // keeps alive with the context.
        let asc = unsafe {
            let ctx = encoder.as_ptr();
            if (*ctx).extradata.is_null() || (*ctx).extradata_size <= 0 {
                Bytes::from_static(&[0x11, 0x90]) // AAC-LC, 48 kHz, stereo
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
            fifo: [Vec::new(), Vec::new()],
            next_pts: 0,
            emitted: 0,
            asc,
            tap: false,
            pcm: Vec::new(),
            first_pts: None,
        })
    }

    /// Keeps a mono copy of every frame encoded from now on, for
    /// [`take_pcm`](Self::take_pcm).
    pub fn set_tap(&mut self, on: bool) {
        self.tap = on;
        if !on {
            self.pcm.clear();
        }
    }

    /// The mono 48 kHz samples encoded since the last call, each run with the
    /// pts (in samples, like [`AacFrame::pts`]) of its first sample.
    pub fn take_pcm(&mut self) -> Vec<(u64, Vec<f32>)> {
        std::mem::take(&mut self.pcm)
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
            if decoded.channel_layout().is_empty() {
                decoded.set_channel_layout(ChannelLayout::default(i32::from(decoded.channels())));
            }
            let resampler = match &mut self.resampler {
                Some(r) => r,
                None => self.resampler.insert(
                    resampling::Context::get(
                        decoded.format(),
                        decoded.channel_layout(),
                        decoded.rate(),
                        OUT_FORMAT,
                        ChannelLayout::STEREO,
                        AAC_RATE,
                    )
                    .map_err(AudioError::Resample)?,
                ),
            };
            let resampled = resample(resampler, Some(&decoded), OUT_FORMAT, ChannelLayout::STEREO)
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
            let rest = resample(resampler, None, OUT_FORMAT, ChannelLayout::STEREO)
                .map_err(AudioError::Resample)?;
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
            let mut frame = AudioFrame::new(OUT_FORMAT, AAC_FRAME, ChannelLayout::STEREO);
            frame.set_rate(AAC_RATE);
            if self.tap {
                let mono = self.fifo[0][..AAC_FRAME]
                    .iter()
                    .zip(&self.fifo[1][..AAC_FRAME])
                    .map(|(l, r)| (l + r) * 0.5)
                    .collect();
                self.pcm.push((self.next_pts, mono));
            }
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
