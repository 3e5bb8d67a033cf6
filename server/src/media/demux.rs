//! Demuxing from memory: libavformat reads through a custom AVIO context whose
//! read callback pulls from any [`std::io::Read`]. The live session passes a
//! [`ChunkReader`] fed by the ingest socket, so no temp file and no FFmpeg
//! process is involved. The container is probed from the bytes; the MIME type
//! the browser declared is never trusted.

use std::ffi::{c_int, c_void};
use std::io::Read;
use std::ptr;

use bytes::{Buf, Bytes};
use ffmpeg_next::ffi;
use ffmpeg_next::format::context::Input;

/// Size of the buffer libavformat reads into.
const IO_BUFFER: usize = 64 * 1024;

/// The input could not be opened or probed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemuxError {
    /// FFmpeg could not allocate its I/O context.
    #[error("out of memory opening the input")]
    Alloc,
    /// The bytes are not a container FFmpeg recognises.
    #[error("not a supported media container: {0}")]
    Open(ffmpeg_next::Error),
    /// The container opened but its streams could not be analysed.
    #[error("could not analyse the media streams: {0}")]
    StreamInfo(ffmpeg_next::Error),
}

/// Probing limits: smaller values start a live stream sooner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeLimits {
    /// Bytes read at most while probing.
    pub probesize: i64,
    /// Media time analysed at most, in microseconds.
    pub analyze_duration_us: i64,
}

impl Default for ProbeLimits {
    /// Half a second of media: a recorder's stream starts with a keyframe that
    /// carries its parameter sets, so more only delays the first part.
    fn default() -> Self {
        ProbeLimits {
            probesize: 1024 * 1024,
            analyze_duration_us: 500_000,
        }
    }
}

type BoxedReader = Box<dyn Read + Send>;

/// The AVIO read callback: fills `buf` from the reader behind `opaque`.
unsafe extern "C" fn read_packet(opaque: *mut c_void, buf: *mut u8, buf_size: c_int) -> c_int {
    if opaque.is_null() || buf.is_null() || buf_size <= 0 {
        return ffi::AVERROR_EOF;
    }
    // SAFETY: opaque is the `*mut BoxedReader` created in `MemoryInput::open`,
    // alive until the input is dropped; FFmpeg calls this from one thread.
    let reader = unsafe { &mut *(opaque as *mut BoxedReader) };
    // SAFETY: FFmpeg hands us a writable buffer of `buf_size` bytes.
    let out = unsafe { std::slice::from_raw_parts_mut(buf, buf_size as usize) };
    loop {
        match reader.read(out) {
            Ok(0) => return ffi::AVERROR_EOF,
            Ok(n) => return n as c_int,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return ffi::AVERROR(libc_eio()),
        }
    }
}

const fn libc_eio() -> c_int {
    5 // EIO on Linux
}

/// A libavformat input reading from a [`Read`] through a custom AVIO context.
pub struct MemoryInput {
    input: Option<Input>,
    avio: *mut ffi::AVIOContext,
    reader: *mut BoxedReader,
}

// SAFETY: the raw pointers are owned exclusively by this value and only used
// from the thread that owns it; the reader itself is Send.
unsafe impl Send for MemoryInput {}

impl MemoryInput {
    /// Opens and probes the stream `reader` yields. Blocks while probing.
    pub fn open(
        reader: impl Read + Send + 'static,
        limits: ProbeLimits,
    ) -> Result<Self, DemuxError> {
        // SAFETY: a sequence of FFmpeg allocation calls; every failure path
        // frees what was allocated before it, and ownership of the successful
        // result moves into `MemoryInput`, whose Drop frees it in reverse order.
        unsafe {
            let buffer = ffi::av_malloc(IO_BUFFER) as *mut u8;
            if buffer.is_null() {
                return Err(DemuxError::Alloc);
            }
            let reader: *mut BoxedReader = Box::into_raw(Box::new(Box::new(reader)));
            let avio = ffi::avio_alloc_context(
                buffer,
                IO_BUFFER as c_int,
                0,
                reader as *mut c_void,
                Some(read_packet),
                None,
                None,
            );
            if avio.is_null() {
                ffi::av_free(buffer as *mut c_void);
                drop(Box::from_raw(reader));
                return Err(DemuxError::Alloc);
            }
            (*avio).seekable = 0;
            let mut this = MemoryInput {
                input: None,
                avio,
                reader,
            };
            let mut ctx = ffi::avformat_alloc_context();
            if ctx.is_null() {
                return Err(DemuxError::Alloc);
            }
            (*ctx).pb = avio;
            (*ctx).flags |= ffi::AVFMT_FLAG_CUSTOM_IO;
            (*ctx).probesize = limits.probesize;
            (*ctx).max_analyze_duration = limits.analyze_duration_us;
            // On failure avformat_open_input frees ctx (but not our custom pb).
            let ret =
                ffi::avformat_open_input(&mut ctx, ptr::null(), ptr::null_mut(), ptr::null_mut());
            if ret < 0 {
                return Err(DemuxError::Open(ffmpeg_next::Error::from(ret)));
            }
            this.input = Some(Input::wrap(ctx));
            let ret = ffi::avformat_find_stream_info(ctx, ptr::null_mut());
            if ret < 0 {
                return Err(DemuxError::StreamInfo(ffmpeg_next::Error::from(ret)));
            }
            Ok(this)
        }
    }

    /// The opened input, for reading streams and packets.
    pub fn input(&mut self) -> &mut Input {
        // Set in `open` before it returns Ok; only Drop takes it.
        self.input.as_mut().expect("input is open")
    }

    /// The container FFmpeg detected, such as `matroska,webm` or `mov,mp4,…`.
    pub fn format_name(&mut self) -> String {
        self.input().format().name().to_string()
    }
}

impl Drop for MemoryInput {
    fn drop(&mut self) {
        // Close the demuxer first: it may still reference the AVIO context.
        drop(self.input.take());
        // SAFETY: avio and reader were created in `open` and are freed once here.
        // FFmpeg may have replaced the AVIO buffer, so free the current one.
        unsafe {
            if !self.avio.is_null() {
                ffi::av_freep(&mut (*self.avio).buffer as *mut *mut u8 as *mut c_void);
                ffi::avio_context_free(&mut self.avio);
            }
            if !self.reader.is_null() {
                drop(Box::from_raw(self.reader));
                self.reader = ptr::null_mut();
            }
        }
    }
}

/// What the ingest side feeds the pipeline: container bytes, or the start of a
/// new period (the recorder restarted and the next bytes begin a new container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// The next bytes of the current container.
    Chunk(Bytes),
    /// A new container starts with the next chunk.
    Period {
        /// Wall-clock time (Unix ms) at which the new recorder started capturing.
        capture_start_ms: Option<i64>,
    },
}

impl From<Bytes> for Feed {
    fn from(b: Bytes) -> Self {
        Feed::Chunk(b)
    }
}

/// A blocking [`Read`] over chunks arriving on a bounded channel: the bridge
/// from the async ingest socket to the blocking pipeline thread. A period
/// marker reads as end of file; [`ChunkReader::next_period`] then moves on to
/// the next container. End of stream when every sender is dropped.
#[derive(Debug)]
pub struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Feed>,
    current: Bytes,
    /// A period marker was reached (with its capture clock).
    boundary: Option<Option<i64>>,
}

impl ChunkReader {
    /// A reader and the sender that feeds it, with room for `capacity` items.
    pub fn channel(capacity: usize) -> (tokio::sync::mpsc::Sender<Feed>, ChunkReader) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        (
            tx,
            ChunkReader {
                rx,
                current: Bytes::new(),
                boundary: None,
            },
        )
    }

    /// Skips what is left of the current period and waits for the next one to
    /// bring bytes. Returns its capture clock (`Some(None)` if it has none), or
    /// `None` at end of stream. Back-to-back markers and empty periods collapse
    /// into one.
    pub fn next_period(&mut self) -> Option<Option<i64>> {
        self.current = Bytes::new();
        let mut capture = loop {
            if let Some(c) = self.boundary.take() {
                break c;
            }
            match self.rx.blocking_recv()? {
                Feed::Chunk(_) => {} // the rest of a period the demuxer did not read
                Feed::Period { capture_start_ms } => self.boundary = Some(capture_start_ms),
            }
        };
        loop {
            match self.rx.blocking_recv()? {
                Feed::Chunk(b) if !b.is_empty() => {
                    self.current = b;
                    return Some(capture);
                }
                Feed::Chunk(_) => {}
                Feed::Period { capture_start_ms } => capture = capture_start_ms.or(capture),
            }
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.boundary.is_some() {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Feed::Chunk(chunk)) => self.current = chunk,
                Some(Feed::Period { capture_start_ms }) => {
                    self.boundary = Some(capture_start_ms);
                    return Ok(0);
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// A [`ChunkReader`] shared between the demuxer of one period (which reads it)
/// and the pipeline (which moves it to the next period).
#[derive(Debug, Clone)]
pub struct SharedReader(pub std::sync::Arc<std::sync::Mutex<ChunkReader>>);

impl Read for SharedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).read(buf)
    }
}
