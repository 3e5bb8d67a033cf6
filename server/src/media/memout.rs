//! An FFmpeg muxer that writes into memory: an output context whose `pb` is
//! a write-only custom AVIO context appending to a byte buffer. The one place
//! that sets this up and tears it down, for `onair publish`'s Matroska
//! ([`super::remux`]) and the WebRTC ingest's MPEG-TS and WebM
//! ([`super::framemux`]).

use std::ffi::{c_int, c_void, CStr};
use std::mem::ManuallyDrop;
use std::ptr;

use bytes::Bytes;
use ffmpeg_next::ffi;
use ffmpeg_next::format::context::Output;

/// The size of the AVIO context's write buffer, bytes.
const AVIO_BUFFER: usize = 64 * 1024;

/// The muxer could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryOutputError {
    /// FFmpeg has no such muxer, or refused to allocate its context.
    #[error("cannot open the muxer: {0}")]
    Ffmpeg(#[from] ffmpeg_next::Error),
    /// Allocation failed.
    #[error("out of memory")]
    Alloc,
}

/// FFmpeg's write callback: appends `size` bytes to the sink.
unsafe extern "C" fn write_packet(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    if opaque.is_null() || buf.is_null() || size <= 0 {
        return 0;
    }
    // SAFETY: opaque is the Box<Vec<u8>> owned by the MemoryOutput, alive
    // while the output exists; FFmpeg passes a readable buffer of `size` bytes.
    unsafe {
        let sink = &mut *(opaque as *mut Vec<u8>);
        sink.extend_from_slice(std::slice::from_raw_parts(buf, size as usize));
    }
    size
}

/// An output context writing into memory. What the muxer wrote so far is
/// taken with [`MemoryOutput::take`].
pub struct MemoryOutput {
    /// Dropped by hand in `Drop`, after `pb` is detached.
    output: ManuallyDrop<Output>,
    avio: *mut ffi::AVIOContext,
    sink: *mut Vec<u8>,
}

// SAFETY: the raw pointers and the FFmpeg context are owned exclusively by
// this value, which is used from one thread at a time.
unsafe impl Send for MemoryOutput {}

impl std::fmt::Debug for MemoryOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryOutput").finish_non_exhaustive()
    }
}

impl MemoryOutput {
    /// An output context of FFmpeg's muxer `format` (`c"matroska"`,
    /// `c"mpegts"`, …), with no streams yet.
    pub fn new(format: &CStr) -> Result<Self, MemoryOutputError> {
        // SAFETY: allocation of the output context, a buffer and a write-only
        // custom AVIO context. On failure everything allocated so far is freed
        // here; on success ownership moves into the MemoryOutput, whose Drop
        // detaches `pb` before the Output is freed and then frees the AVIO,
        // its buffer and the sink.
        unsafe {
            let mut ctx: *mut ffi::AVFormatContext = ptr::null_mut();
            let ret = ffi::avformat_alloc_output_context2(
                &mut ctx,
                ptr::null(),
                format.as_ptr(),
                ptr::null(),
            );
            if ret < 0 || ctx.is_null() {
                return Err(MemoryOutputError::Ffmpeg(ffmpeg_next::Error::from(ret)));
            }
            let buffer = ffi::av_malloc(AVIO_BUFFER) as *mut u8;
            let sink = Box::into_raw(Box::new(Vec::<u8>::new()));
            let avio = if buffer.is_null() {
                ptr::null_mut()
            } else {
                ffi::avio_alloc_context(
                    buffer,
                    AVIO_BUFFER as c_int,
                    1,
                    sink as *mut c_void,
                    None,
                    Some(write_packet),
                    None,
                )
            };
            if avio.is_null() {
                if !buffer.is_null() {
                    ffi::av_free(buffer as *mut c_void);
                }
                ffi::avformat_free_context(ctx);
                drop(Box::from_raw(sink));
                return Err(MemoryOutputError::Alloc);
            }
            (*avio).seekable = 0;
            (*ctx).pb = avio;
            (*ctx).flags |= ffi::AVFMT_FLAG_CUSTOM_IO;
            Ok(MemoryOutput {
                output: ManuallyDrop::new(Output::wrap(ctx)),
                avio,
                sink,
            })
        }
    }

    /// The output context, to add streams and write the header, packets and
    /// trailer.
    pub fn output(&mut self) -> &mut Output {
        &mut self.output
    }

    /// Flushes the AVIO buffer and takes every byte written since the last
    /// call.
    pub fn take(&mut self) -> Bytes {
        // SAFETY: both the AVIO context and the sink are owned by self and
        // not aliased outside FFmpeg's calls, which are not running now.
        unsafe {
            ffi::avio_flush(self.avio);
            Bytes::from(std::mem::take(&mut *self.sink))
        }
    }
}

impl Drop for MemoryOutput {
    fn drop(&mut self) {
        // SAFETY: detach our AVIO from the output so its destructor does not
        // avio_close() it as if FFmpeg had opened it; free the output once,
        // here; then free the AVIO, its (possibly reallocated) buffer and the
        // sink, each once.
        unsafe {
            (*self.output.as_mut_ptr()).pb = ptr::null_mut();
            ManuallyDrop::drop(&mut self.output);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_muxer_is_an_error_and_a_header_lands_in_memory() {
        ffmpeg_next::init().ok();
        assert!(matches!(
            MemoryOutput::new(c"no-such-muxer"),
            Err(MemoryOutputError::Ffmpeg(_))
        ));
        let mut out = MemoryOutput::new(c"matroska").expect("matroska muxer");
        assert!(
            out.take().is_empty(),
            "nothing is written before the header"
        );
        // SAFETY: adding a stream to the context we own before its header.
        unsafe {
            let s = ffi::avformat_new_stream(out.output().as_mut_ptr(), ptr::null());
            assert!(!s.is_null());
            (*(*s).codecpar).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
            (*(*s).codecpar).codec_id = ffi::AVCodecID::AV_CODEC_ID_VP8;
            (*(*s).codecpar).width = 320;
            (*(*s).codecpar).height = 240;
        }
        out.output().write_header().expect("header");
        let header = out.take();
        // Matroska's header starts with the EBML magic.
        assert!(header.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]), "{header:?}");
        assert!(out.take().is_empty(), "taken bytes are not taken twice");
    }
}
