//! The CMAF / LL-HLS packager, sans-IO: samples in, bytes and playlists out.
//! No sockets, files, clocks or locks: the live session feeds it samples and
//! publishes what comes out, so everything here is unit-tested and benchmarked
//! on its own.
//!
//! - [`time`]: integer media time with explicit timescales.
//! - [`h264`]: Annex B / length-prefixed NAL units and SPS parsing.
//! - [`fmp4`]: init segments and `moof` + `mdat` fragments.
//! - [`decode_time`]: decode times for video that arrives with presentation times only.
//! - [`segmenter`]: cuts a track into parts and segments, keeps the window.
//! - [`cuts`]: where a stream's segments start, the same in every rendition.
//! - [`framerate`]: a rendition's frame rate, measured, as an exact fraction.
//! - [`playlist`]: renders media and master playlists with the LL-HLS tags.

pub mod cuts;
pub mod decode_time;
pub mod fmp4;
pub mod framerate;
pub mod h264;
pub mod playlist;
pub mod segmenter;
pub mod time;
pub mod webvtt;

#[cfg(test)]
mod m3u8_tests;
#[cfg(test)]
mod tests;
