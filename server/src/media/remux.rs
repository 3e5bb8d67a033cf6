//! Remuxing any file FFmpeg reads into a live Matroska byte stream in memory,
//! cut into chunks at a fixed media-time interval: what a browser's
//! MediaRecorder sends, for `onair publish`. Streams the server takes (video
//! H.264, VP8, VP9; audio Opus, AAC) are copied; others are decoded and
//! encoded in-process ([`super::transcode`]): video to H.264, audio to Opus
//! (AAC without libopus). The first video and the first audio stream are sent.

use std::path::Path;

use bytes::Bytes;
use ffmpeg_next::format::context::{Input, Output};
use ffmpeg_next::media::Type;
use ffmpeg_next::{codec, encoder, ffi, Dictionary, Packet, Rational};

use super::memout::{MemoryOutput, MemoryOutputError};
use super::transcode::{
    audio_encoder, AudioEncode, TranscodeError, VideoEncode, SERVER_AUDIO, SERVER_VIDEO,
};

/// The input could not be remuxed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemuxError {
    /// The file could not be opened or is not media.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// FFmpeg's error.
        source: ffmpeg_next::Error,
    },
    /// No audio or video stream that Matroska can carry.
    #[error("{0} has no audio or video stream to publish")]
    NoStreams(String),
    /// FFmpeg failed while remuxing.
    #[error("remuxing failed: {0}")]
    Ffmpeg(#[from] ffmpeg_next::Error),
    /// A stream the server does not take could not be encoded.
    #[error(transparent)]
    Transcode(#[from] TranscodeError),
    /// Allocation failed.
    #[error("out of memory")]
    Alloc,
}

/// One chunk and the media time it reaches, in microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Bytes of the Matroska stream.
    pub bytes: Bytes,
    /// Media time of the last packet in it, microseconds from the start.
    pub media_us: i64,
}

/// What happens to one stream of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Copied as it is: the server takes this codec.
    Copy,
    /// Decoded and encoded to [`StreamPlan::output_codec`].
    Encode,
}

/// One input stream that is published, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlan {
    /// Index of the stream in the input.
    pub index: usize,
    /// `video` or `audio`.
    pub medium: &'static str,
    /// The input codec (FFmpeg's name).
    pub codec: String,
    /// The codec sent to the server.
    pub output_codec: String,
    /// Copy or encode.
    pub action: Action,
}

/// How packets of one input stream reach the output.
enum Route {
    Copy {
        out: usize,
        in_tb: Rational,
    },
    Video {
        out: usize,
        encode: Box<VideoEncode>,
    },
    Audio {
        out: usize,
        encode: Box<AudioEncode>,
    },
}

/// Reads a file and yields live Matroska chunks.
pub struct Remuxer {
    input: Input,
    out: MemoryOutput,
    routes: Vec<Option<Route>>,
    /// Output stream time bases, by output index (known after the header).
    out_tbs: Vec<Rational>,
    plan: Vec<StreamPlan>,
    interval_us: i64,
    next_cut_us: i64,
    last_us: i64,
    start_us: Option<i64>,
    done: bool,
}

// SAFETY: the FFmpeg contexts (demuxer, decoders, encoders, scaler,
// resampler) are owned exclusively by this value, which is used from one
// thread at a time (the muxer is a `MemoryOutput`, Send itself).
unsafe impl Send for Remuxer {}

impl Remuxer {
    /// Opens `path` and writes the Matroska header; chunks are cut every `interval_ms` of media.
    pub fn open(path: &Path, interval_ms: u64) -> Result<Self, RemuxError> {
        let input = ffmpeg_next::format::input(path).map_err(|source| RemuxError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let mut this = Remuxer {
            input,
            out: MemoryOutput::new(c"matroska").map_err(|e| match e {
                MemoryOutputError::Ffmpeg(e) => RemuxError::Ffmpeg(e),
                MemoryOutputError::Alloc => RemuxError::Alloc,
            })?,
            routes: Vec::new(),
            out_tbs: Vec::new(),
            plan: Vec::new(),
            interval_us: (interval_ms.max(50) * 1000) as i64,
            next_cut_us: 0,
            last_us: 0,
            start_us: None,
            done: false,
        };
        this.setup_streams(path)?;
        Ok(this)
    }

    fn output(&mut self) -> &mut Output {
        self.out.output()
    }

    /// The streams that are published, and whether each is copied or encoded.
    pub fn plan(&self) -> &[StreamPlan] {
        &self.plan
    }

    fn setup_streams(&mut self, path: &Path) -> Result<(), RemuxError> {
        let inputs: Vec<(Type, codec::Parameters, Rational, Rational)> = self
            .input
            .streams()
            .map(|s| {
                (
                    s.parameters().medium(),
                    s.parameters(),
                    s.time_base(),
                    s.avg_frame_rate(),
                )
            })
            .collect();
        // SAFETY: reading the flags of the output format we allocated.
        let global_header =
            unsafe { (*(*self.output().as_ptr()).oformat).flags & ffi::AVFMT_GLOBALHEADER != 0 };
        let (mut have_video, mut have_audio) = (false, false);
        let mut routes = Vec::new();
        let mut out_tbs = Vec::new();
        for (index, (medium, params, tb, rate)) in inputs.into_iter().enumerate() {
            let wanted = match medium {
                Type::Video if !have_video => {
                    have_video = true;
                    true
                }
                Type::Audio if !have_audio => {
                    have_audio = true;
                    true
                }
                _ => false,
            };
            if !wanted {
                routes.push(None);
                continue;
            }
            let out = out_tbs.len();
            let id = params.id();
            let codec = id.name().to_string();
            let (medium, copy) = if medium == Type::Video {
                ("video", SERVER_VIDEO.contains(&id))
            } else {
                ("audio", SERVER_AUDIO.contains(&id))
            };
            let route = if copy {
                let mut ost = self.output().add_stream(encoder::find(codec::Id::None))?;
                ost.set_parameters(params);
                // SAFETY: clearing the codec tag of the stream we just added, so the
                // muxer picks Matroska's own.
                unsafe {
                    (*ost.parameters().as_mut_ptr()).codec_tag = 0;
                }
                out_tbs.push(Rational::new(1, 1000));
                tracing::info!("copying {medium} stream {index} ({codec})");
                self.plan.push(StreamPlan {
                    index,
                    medium,
                    output_codec: codec.clone(),
                    codec,
                    action: Action::Copy,
                });
                Route::Copy { out, in_tb: tb }
            } else if medium == "video" {
                let rate = (rate.numerator() > 0 && rate.denominator() > 0).then_some(rate);
                let encode = VideoEncode::new(params, tb, rate, global_header)?;
                let mut ost = self.output().add_stream(encoder::find(codec::Id::H264))?;
                ost.set_parameters(encode.encoder());
                ost.set_time_base(encode.time_base());
                out_tbs.push(encode.time_base());
                tracing::info!(
                    "encoding {medium} stream {index} ({codec}) to H.264 with libx264: the server does not take {codec}"
                );
                self.plan.push(StreamPlan {
                    index,
                    medium,
                    codec,
                    output_codec: "h264".into(),
                    action: Action::Encode,
                });
                Route::Video {
                    out,
                    encode: Box::new(encode),
                }
            } else {
                let encode = AudioEncode::new(params, tb, global_header)?;
                let (_, encoder_name, output_codec) =
                    audio_encoder().ok_or(TranscodeError::NoEncoder("Opus"))?;
                let mut ost = self.output().add_stream(encoder::find(codec::Id::None))?;
                ost.set_parameters(encode.encoder());
                ost.set_time_base(encode.time_base());
                out_tbs.push(encode.time_base());
                tracing::info!(
                    "encoding {medium} stream {index} ({codec}) to {output_codec} with {encoder_name}: the server does not take {codec}"
                );
                self.plan.push(StreamPlan {
                    index,
                    medium,
                    codec,
                    output_codec: output_codec.into(),
                    action: Action::Encode,
                });
                Route::Audio {
                    out,
                    encode: Box::new(encode),
                }
            };
            routes.push(Some(route));
        }
        if out_tbs.is_empty() {
            return Err(RemuxError::NoStreams(path.display().to_string()));
        }
        let mut opts = Dictionary::new();
        opts.set("live", "1");
        opts.set("cluster_time_limit", &(self.interval_us / 1000).to_string());
        self.output().write_header_with(opts)?;
        // The muxer may have changed the output time bases.
        for (o, tb) in out_tbs.iter_mut().enumerate() {
            *tb = self
                .output()
                .stream(o)
                .map(|s| s.time_base())
                .unwrap_or(*tb);
        }
        self.routes = routes;
        self.out_tbs = out_tbs;
        Ok(())
    }

    /// Writes one packet (timestamps in `from`) to output stream `out`, and
    /// tracks the media time reached.
    fn write(&mut self, mut packet: Packet, out: usize, from: Rational) -> Result<(), RemuxError> {
        let to = self
            .out_tbs
            .get(out)
            .copied()
            .unwrap_or(Rational::new(1, 1000));
        packet.rescale_ts(from, to);
        if let Some(ts) = packet.dts().or(packet.pts()) {
            let us = ts
                .saturating_mul(i64::from(to.numerator()))
                .saturating_mul(1_000_000)
                / i64::from(to.denominator().max(1));
            let start = *self.start_us.get_or_insert(us);
            self.last_us = self.last_us.max(us - start);
        }
        packet.set_stream(out);
        packet.set_position(-1);
        packet.write_interleaved(self.output())?;
        Ok(())
    }

    /// Routes one input packet: copied, or through its encoder.
    fn route(&mut self, packet: Packet) -> Result<(), RemuxError> {
        let Some(Some(route)) = self.routes.get_mut(packet.stream()) else {
            return Ok(());
        };
        let (out, from, packets) = match route {
            Route::Copy { out, in_tb } => (*out, *in_tb, vec![packet]),
            Route::Video { out, encode } => (*out, encode.time_base(), encode.push(&packet)?),
            Route::Audio { out, encode } => (*out, encode.time_base(), encode.push(&packet)?),
        };
        for p in packets {
            self.write(p, out, from)?;
        }
        Ok(())
    }

    /// End of input: flushes every encoder into the output.
    fn flush_encoders(&mut self) -> Result<(), RemuxError> {
        let mut pending = Vec::new();
        for route in self.routes.iter_mut().flatten() {
            match route {
                Route::Copy { .. } => {}
                Route::Video { out, encode } => {
                    pending.push((*out, encode.time_base(), encode.finish()?))
                }
                Route::Audio { out, encode } => {
                    pending.push((*out, encode.time_base(), encode.finish()?))
                }
            }
        }
        for (out, from, packets) in pending {
            for p in packets {
                self.write(p, out, from)?;
            }
        }
        Ok(())
    }

    /// The input's duration in microseconds, when its container states one
    /// (a live or piped input does not).
    pub fn duration_us(&self) -> Option<i64> {
        // AV_TIME_BASE is microseconds; AV_NOPTS_VALUE (i64::MIN) means unknown.
        Some(self.input.duration()).filter(|d| *d > 0)
    }

    /// The next chunk, or `None` at the end of the input.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, RemuxError> {
        if self.done {
            return Ok(None);
        }
        loop {
            let mut packet = Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {}
                Err(ffmpeg_next::Error::Eof) => {
                    self.flush_encoders()?;
                    self.output().write_trailer()?;
                    self.done = true;
                    let bytes = self.out.take();
                    return Ok((!bytes.is_empty()).then_some(Chunk {
                        bytes,
                        media_us: self.last_us,
                    }));
                }
                Err(e) => return Err(RemuxError::Ffmpeg(e)),
            }
            self.route(packet)?;
            if self.last_us >= self.next_cut_us + self.interval_us {
                self.next_cut_us = self.last_us;
                let bytes = self.out.take();
                if !bytes.is_empty() {
                    return Ok(Some(Chunk {
                        bytes,
                        media_us: self.last_us,
                    }));
                }
            }
        }
    }
}
