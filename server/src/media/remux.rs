//! Remuxing any file FFmpeg reads into a live Matroska byte stream in memory,
//! cut into chunks at a fixed media-time interval: what a browser's
//! MediaRecorder sends, for `onair publish`. Streams are copied, not re-encoded.

use std::ffi::{c_int, c_void};
use std::path::Path;
use std::ptr;

use bytes::Bytes;
use ffmpeg_next::format::context::{Input, Output};
use ffmpeg_next::media::Type;
use ffmpeg_next::{codec, encoder, ffi, Dictionary, Packet, Rational};

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

unsafe extern "C" fn write_packet(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    if opaque.is_null() || buf.is_null() || size <= 0 {
        return 0;
    }
    // SAFETY: opaque is the Box<Vec<u8>> owned by the Remuxer, alive while the
    // output exists; FFmpeg passes a readable buffer of `size` bytes.
    unsafe {
        let sink = &mut *(opaque as *mut Vec<u8>);
        sink.extend_from_slice(std::slice::from_raw_parts(buf, size as usize));
    }
    size
}

/// Reads a file and yields live Matroska chunks.
pub struct Remuxer {
    input: Input,
    output: Option<Output>,
    avio: *mut ffi::AVIOContext,
    sink: *mut Vec<u8>,
    map: Vec<Option<(usize, Rational, Rational)>>,
    interval_us: i64,
    next_cut_us: i64,
    last_us: i64,
    start_us: Option<i64>,
    done: bool,
}

// SAFETY: the raw pointers are owned exclusively by this value.
unsafe impl Send for Remuxer {}

impl Remuxer {
    /// Opens `path` and writes the Matroska header; chunks are cut every `interval_ms` of media.
    pub fn open(path: &Path, interval_ms: u64) -> Result<Self, RemuxError> {
        let input = ffmpeg_next::format::input(path).map_err(|source| RemuxError::Open {
            path: path.display().to_string(),
            source,
        })?;
        // SAFETY: allocation of the output context and a write-only custom AVIO
        // context; ownership moves into the Remuxer, whose Drop detaches `pb`
        // before the Output is freed and then frees the AVIO and the sink.
        let (output, avio, sink) = unsafe {
            let mut ctx: *mut ffi::AVFormatContext = ptr::null_mut();
            let ret = ffi::avformat_alloc_output_context2(
                &mut ctx,
                ptr::null(),
                c"matroska".as_ptr(),
                ptr::null(),
            );
            if ret < 0 || ctx.is_null() {
                return Err(RemuxError::Ffmpeg(ffmpeg_next::Error::from(ret)));
            }
            let buffer = ffi::av_malloc(64 * 1024) as *mut u8;
            let sink = Box::into_raw(Box::new(Vec::<u8>::new()));
            let avio = ffi::avio_alloc_context(
                buffer,
                64 * 1024,
                1,
                sink as *mut c_void,
                None,
                Some(write_packet),
                None,
            );
            if buffer.is_null() || avio.is_null() {
                ffi::avformat_free_context(ctx);
                drop(Box::from_raw(sink));
                return Err(RemuxError::Alloc);
            }
            (*avio).seekable = 0;
            (*ctx).pb = avio;
            (*ctx).flags |= ffi::AVFMT_FLAG_CUSTOM_IO;
            (Output::wrap(ctx), avio, sink)
        };
        let mut this = Remuxer {
            input,
            output: Some(output),
            avio,
            sink,
            map: Vec::new(),
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
        // Present from open until Drop.
        self.output.as_mut().expect("output is open")
    }

    fn setup_streams(&mut self, path: &Path) -> Result<(), RemuxError> {
        let mut map = Vec::new();
        let mut out_index = 0;
        let inputs: Vec<(Type, codec::Parameters, Rational)> = self
            .input
            .streams()
            .map(|s| (s.parameters().medium(), s.parameters(), s.time_base()))
            .collect();
        let (mut have_video, mut have_audio) = (false, false);
        for (medium, params, tb) in inputs {
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
                map.push(None);
                continue;
            }
            let mut ost = self.output().add_stream(encoder::find(codec::Id::None))?;
            ost.set_parameters(params);
            // SAFETY: clearing the codec tag of the stream we just added, so the
            // muxer picks Matroska's own.
            unsafe {
                (*ost.parameters().as_mut_ptr()).codec_tag = 0;
            }
            map.push(Some((out_index, tb, Rational::new(1, 1000))));
            out_index += 1;
        }
        if out_index == 0 {
            return Err(RemuxError::NoStreams(path.display().to_string()));
        }
        let mut opts = Dictionary::new();
        opts.set("live", "1");
        opts.set("cluster_time_limit", &(self.interval_us / 1000).to_string());
        self.output().write_header_with(opts)?;
        // The muxer may have changed the output time bases.
        for (o, _, out_tb) in map.iter_mut().flatten() {
            *out_tb = self
                .output()
                .stream(*o)
                .map(|s| s.time_base())
                .unwrap_or(*out_tb);
        }
        self.map = map;
        Ok(())
    }

    fn take_sink(&mut self) -> Bytes {
        // SAFETY: flush the AVIO buffer into the sink, then take the sink's
        // contents; both are owned by self and not aliased.
        unsafe {
            ffi::avio_flush(self.avio);
            Bytes::from(std::mem::take(&mut *self.sink))
        }
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
                    self.output().write_trailer()?;
                    self.done = true;
                    let bytes = self.take_sink();
                    return Ok((!bytes.is_empty()).then_some(Chunk {
                        bytes,
                        media_us: self.last_us,
                    }));
                }
                Err(e) => return Err(RemuxError::Ffmpeg(e)),
            }
            let Some(Some((out_index, in_tb, out_tb))) = self.map.get(packet.stream()).copied()
            else {
                continue;
            };
            if let Some(ts) = packet.dts().or(packet.pts()) {
                let us = ts
                    .saturating_mul(i64::from(in_tb.numerator()))
                    .saturating_mul(1_000_000)
                    / i64::from(in_tb.denominator().max(1));
                let start = *self.start_us.get_or_insert(us);
                self.last_us = self.last_us.max(us - start);
            }
            packet.rescale_ts(in_tb, out_tb);
            packet.set_stream(out_index);
            packet.set_position(-1);
            packet.write_interleaved(self.output())?;
            if self.last_us >= self.next_cut_us + self.interval_us {
                self.next_cut_us = self.last_us;
                let bytes = self.take_sink();
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

impl Drop for Remuxer {
    fn drop(&mut self) {
        // SAFETY: detach our AVIO from the output so its destructor does not
        // avio_close() it as if FFmpeg had opened it, then free what we own.
        unsafe {
            if let Some(mut out) = self.output.take() {
                (*out.as_mut_ptr()).pb = ptr::null_mut();
                drop(out);
            }
            if !self.avio.is_null() {
                ffi::av_freep(&mut (*self.avio).buffer as *mut *mut u8 as *mut c_void);
                ffi::avio_context_free(&mut self.avio);
            }
            if !self.sink.is_null() {
                drop(Box::from_raw(self.sink));
                self.sink = ptr::null_mut();
            }
        }
    }
}
