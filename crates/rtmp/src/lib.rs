//! # onair-rtmp: the RTMP ingest protocol core, sans-IO
//!
//! The server side of RTMP as OBS, FFmpeg, vMix and hardware encoders speak it
//! when they publish: the simple handshake, the chunk stream, AMF0 commands,
//! and FLV audio/video tags (legacy H.264/AAC and Enhanced RTMP's FourCC
//! codecs). In the style of str0m: bytes and time go in, events and bytes come
//! out. There are no sockets, no clock, no threads and no async in here, so
//! the same code runs under tokio, a blocking test listener or a fuzzer.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::time::Instant;
//! use onair_rtmp::{Config, Event, Session, status};
//!
//! # fn serve(mut sock: std::net::TcpStream) -> Result<(), Box<dyn std::error::Error>> {
//! let mut session = Session::new(Config::default(), Instant::now());
//! let mut buf = [0u8; 16 * 1024];
//! loop {
//!     let n = sock.read(&mut buf)?;
//!     if n == 0 { break; }
//!     session.handle_input(&buf[..n])?;
//!     while let Some(event) = session.poll_event() {
//!         match event {
//!             Event::Publish { stream_key, .. } if stream_key == "secret" => session.accept_publish()?,
//!             Event::Publish { .. } => session.reject_publish(status::PUBLISH_BAD_NAME, "wrong stream key")?,
//!             Event::Video(v) => { /* v.dts_ms, v.pts_ms, v.kind, v.data */ }
//!             Event::Audio(a) => { /* a.dts_ms, a.codec, a.data */ }
//!             _ => {}
//!         }
//!     }
//!     sock.write_all(&session.take_output())?;
//! }
//! # Ok(()) }
//! ```
//!
//! Layers, each usable on its own:
//! - [`handshake`]: C0/C1/C2 ↔ S0/S1/S2, version 3 only.
//! - [`chunk`]: chunk headers (formats 0-3, 1-3 byte basic headers, extended
//!   timestamps), reassembly, and a header-compressing encoder.
//! - [`amf0`]: AMF0 values, encode and bounded decode.
//! - [`flv`]: audio/video tag bodies, legacy and Enhanced RTMP.
//! - [`time`]: 32-bit RTMP timestamps unwrapped to a 64-bit millisecond line.
//! - [`session`]: the publish flow, protocol control messages, acks, limits.
//!
//! Every limit is in [`Config`]; every violation is a typed error
//! ([`Error`] and the per-layer enums), never a panic. The crate denies
//! `unwrap`, `expect`, indexing and unchecked arithmetic outside tests.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

pub mod amf0;
pub mod chunk;
pub mod flv;
pub mod handshake;
mod reader;
pub mod session;
pub mod time;

pub use amf0::{Amf0Value, AmfError, AmfLimits};
pub use chunk::{ChunkError, ChunkLimits};
pub use flv::{
    AudioCodec, AudioPacketKind, FlvAudio, FlvError, FlvVideo, VideoCodec, VideoFrameType,
    VideoPacketKind,
};
pub use handshake::{HandshakeError, HandshakeState};
pub use session::{status, Config, Error, Event, ProtocolError, Session, SessionState};
pub use time::TimestampUnwrapper;
