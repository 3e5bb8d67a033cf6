//! The RTMP chunk stream (RTMP 1.0 spec, section 5.3): messages cut into
//! chunks of at most the peer's chunk size, interleaved over chunk streams.
//!
//! Each chunk has a basic header (1 to 3 bytes: a 2-bit format and the chunk
//! stream id, 2..=65599), a message header of 11, 7, 3 or 0 bytes for formats
//! 0 to 3, an optional 4-byte extended timestamp, then up to one chunk size of
//! payload:
//!
//! | fmt | carries                                   | timestamp field is |
//! |-----|-------------------------------------------|--------------------|
//! | 0   | timestamp, length, type id, stream id (LE)| absolute           |
//! | 1   | delta, length, type id                    | a delta            |
//! | 2   | delta                                     | a delta            |
//! | 3   | nothing                                   | (previous field)   |
//!
//! A timestamp field of `0xFFFFFF` means the real value follows as a 32-bit
//! extended timestamp. A format-3 chunk carries the extended timestamp again
//! when the last format 0/1/2 header of its chunk stream had one (both for the
//! continuation chunks of a message and for a new message started with format
//! 3). A new message started with format 3 adds the previous header's
//! timestamp field (the delta; for a format-0 header, its absolute value) to
//! the previous timestamp, as FFmpeg and librtmp both do.
//!
//! The decoder keeps one state per chunk stream and reassembles messages.
//! Limits: the chunk size a peer may set, the size of one message, the number
//! of chunk streams, and the bytes held in partly received messages across all
//! chunk streams. Decoding is incremental: [`ChunkDecoder::decode`] consumes
//! nothing until a whole chunk is available, so the caller keeps the unused
//! bytes and calls again with more.

use std::collections::HashMap;

use crate::reader::Reader;

/// Message type ids (RTMP 1.0 spec, sections 5.4, 6 and 7).
pub mod msg_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// The chunk size both sides start with.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk stream id the 3-byte basic header can carry.
pub const MAX_CHUNK_STREAM_ID: u32 = 65_599;
const EXTENDED_TIMESTAMP: u32 = 0x00FF_FFFF;

/// One reassembled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// The chunk stream it arrived on.
    pub csid: u32,
    pub type_id: u8,
    /// The message stream id (0 for the connection, then the created streams).
    pub stream_id: u32,
    /// The 32-bit RTMP timestamp in milliseconds (wraps).
    pub timestamp: u32,
    pub payload: Vec<u8>,
}

/// Why the chunk stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk size {0} is invalid (must be 1..=2147483647)")]
    InvalidChunkSize(u32),
    #[error("chunk size {size} is larger than the limit of {max}")]
    ChunkSizeTooLarge { size: u32, max: u32 },
    #[error("message of {len} bytes is larger than the limit of {max}")]
    MessageTooLarge { len: u32, max: u32 },
    #[error(
        "chunk stream {csid} starts with a format {fmt} header, which needs a previous header"
    )]
    NoPreviousHeader { csid: u32, fmt: u8 },
    #[error(
        "a new message header on chunk stream {csid} while its previous message is incomplete"
    )]
    HeaderMidMessage { csid: u32 },
    #[error("more than {max} chunk streams")]
    TooManyChunkStreams { max: usize },
    #[error("more than {max} bytes held in partly received messages")]
    InFlightTooLarge { max: usize },
}

/// Limits for [`ChunkDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Largest chunk size a peer may set with Set Chunk Size.
    pub max_chunk_size: u32,
    /// Largest message (the sum of its chunks' payloads).
    pub max_message_size: u32,
    /// Most distinct chunk stream ids in one connection.
    pub max_chunk_streams: usize,
    /// Most bytes held in partly received messages, across all chunk streams.
    pub max_in_flight_bytes: usize,
}

#[derive(Debug, Default)]
struct StreamState {
    /// Timestamp of the last message started on this chunk stream.
    timestamp: u32,
    /// The last format 0/1/2 header's timestamp field (absolute or delta).
    ts_field: u32,
    /// Whether that header used an extended timestamp.
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The message being reassembled, if one is incomplete.
    partial: Option<Vec<u8>>,
}

/// Reassembles messages from a peer's chunk stream.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: u32,
    limits: ChunkLimits,
    streams: HashMap<u32, StreamState>,
    in_flight: usize,
}

/// The result of parsing one chunk's headers, applied only once the whole
/// chunk (headers and payload) is available.
struct Header {
    fmt: u8,
    csid: u32,
    ts_field: Option<u32>,
    length: Option<u32>,
    type_id: Option<u8>,
    stream_id: Option<u32>,
    extended: Option<u32>,
}

impl ChunkDecoder {
    pub fn new(limits: ChunkLimits) -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            streams: HashMap::new(),
            in_flight: 0,
        }
    }

    /// The peer's current chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Applies a Set Chunk Size from the peer (the top bit is ignored, as the
    /// spec requires it to be zero).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        let size = size & 0x7FFF_FFFF;
        if size == 0 {
            return Err(ChunkError::InvalidChunkSize(size));
        }
        if size > self.limits.max_chunk_size {
            return Err(ChunkError::ChunkSizeTooLarge {
                size,
                max: self.limits.max_chunk_size,
            });
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Drops the partly received message of a chunk stream (Abort Message).
    pub fn abort(&mut self, csid: u32) {
        if let Some(buf) = self.streams.get_mut(&csid).and_then(|s| s.partial.take()) {
            self.in_flight = self.in_flight.saturating_sub(buf.len());
        }
    }

    /// Bytes currently held in partly received messages.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight
    }

    /// Parses one chunk from the start of `input`. Returns `Ok(None)` when
    /// `input` does not hold a whole chunk yet (nothing is consumed), else the
    /// bytes consumed and the message this chunk completed, if any.
    pub fn decode(
        &mut self,
        input: &[u8],
    ) -> Result<Option<(usize, Option<RawMessage>)>, ChunkError> {
        let mut r = Reader::new(input);
        let Some(h) = self.read_header(&mut r)? else {
            return Ok(None);
        };
        let prev = self.streams.get(&h.csid);
        let in_progress = prev.and_then(|p| p.partial.as_ref()).map(Vec::len);

        // The message this chunk belongs to: (timestamp, ts_field, length).
        let (timestamp, ts_field, length, received) = match (in_progress, prev) {
            (Some(received), Some(p)) => {
                if h.fmt != 3 {
                    return Err(ChunkError::HeaderMidMessage { csid: h.csid });
                }
                (p.timestamp, p.ts_field, p.length, received)
            }
            _ => {
                let prev_ts = prev.map_or(0, |p| p.timestamp);
                let prev_field = prev.map_or(0, |p| p.ts_field);
                let field = match (h.extended, h.ts_field) {
                    (Some(ext), _) => ext,
                    (None, Some(f)) => f,
                    (None, None) => prev_field,
                };
                let ts = if h.fmt == 0 {
                    field
                } else {
                    prev_ts.wrapping_add(field)
                };
                let length = h.length.or(prev.map(|p| p.length)).unwrap_or(0);
                if length > self.limits.max_message_size {
                    return Err(ChunkError::MessageTooLarge {
                        len: length,
                        max: self.limits.max_message_size,
                    });
                }
                (ts, field, length, 0)
            }
        };

        let remaining = usize::try_from(length)
            .unwrap_or(usize::MAX)
            .saturating_sub(received);
        let take = remaining.min(usize::try_from(self.chunk_size).unwrap_or(usize::MAX));
        let Some(payload) = r.bytes(take) else {
            return Ok(None);
        };
        let new_in_flight = self.in_flight.saturating_add(take);
        let completes = take == remaining;
        if !completes && new_in_flight > self.limits.max_in_flight_bytes {
            return Err(ChunkError::InFlightTooLarge {
                max: self.limits.max_in_flight_bytes,
            });
        }

        // The whole chunk is here: commit.
        let chunk_size = self.chunk_size;
        let st = self.streams.entry(h.csid).or_default();
        if in_progress.is_none() {
            st.timestamp = timestamp;
            st.ts_field = ts_field;
            if h.fmt != 3 {
                st.extended = h.ts_field == Some(EXTENDED_TIMESTAMP);
            }
            st.length = length;
            if let Some(t) = h.type_id {
                st.type_id = t;
            }
            if let Some(s) = h.stream_id {
                st.stream_id = s;
            }
        }
        let mut buf = st.partial.take().unwrap_or_else(|| {
            let cap = usize::try_from(length.min(chunk_size)).unwrap_or(0);
            Vec::with_capacity(cap)
        });
        buf.extend_from_slice(payload);
        let consumed = r.position();
        if completes {
            self.in_flight = self.in_flight.saturating_sub(received);
            Ok(Some((
                consumed,
                Some(RawMessage {
                    csid: h.csid,
                    type_id: st.type_id,
                    stream_id: st.stream_id,
                    timestamp: st.timestamp,
                    payload: buf,
                }),
            )))
        } else {
            st.partial = Some(buf);
            self.in_flight = new_in_flight;
            Ok(Some((consumed, None)))
        }
    }

    /// Reads the basic header, message header and extended timestamp.
    fn read_header(&self, r: &mut Reader<'_>) -> Result<Option<Header>, ChunkError> {
        let Some(b0) = r.u8() else { return Ok(None) };
        let fmt = b0 >> 6;
        let csid = match b0 & 0x3F {
            0 => {
                let Some(b1) = r.u8() else { return Ok(None) };
                64u32.saturating_add(u32::from(b1))
            }
            1 => {
                let Some([b1, b2]) = r.array::<2>() else {
                    return Ok(None);
                };
                64u32
                    .saturating_add(u32::from(b1))
                    .saturating_add(u32::from(b2).saturating_mul(256))
            }
            n => u32::from(n),
        };
        let prev = self.streams.get(&csid);
        match prev {
            None if fmt != 0 => return Err(ChunkError::NoPreviousHeader { csid, fmt }),
            None if self.streams.len() >= self.limits.max_chunk_streams => {
                return Err(ChunkError::TooManyChunkStreams {
                    max: self.limits.max_chunk_streams,
                })
            }
            _ => {}
        }
        let mut h = Header {
            fmt,
            csid,
            ts_field: None,
            length: None,
            type_id: None,
            stream_id: None,
            extended: None,
        };
        if fmt <= 2 {
            let Some(ts) = r.u24_be() else {
                return Ok(None);
            };
            h.ts_field = Some(ts);
        }
        if fmt <= 1 {
            let (Some(len), Some(t)) = (r.u24_be(), r.u8()) else {
                return Ok(None);
            };
            h.length = Some(len);
            h.type_id = Some(t);
        }
        if fmt == 0 {
            let Some(sid) = r.u32_le() else {
                return Ok(None);
            };
            h.stream_id = Some(sid);
        }
        let has_extended = match h.ts_field {
            Some(f) => f == EXTENDED_TIMESTAMP,
            None => prev.is_some_and(|p| p.extended),
        };
        if has_extended {
            let Some(ext) = r.u32_be() else {
                return Ok(None);
            };
            h.extended = Some(ext);
        }
        Ok(Some(h))
    }
}

#[derive(Debug, Clone, Copy)]
struct PrevOut {
    timestamp: u32,
    ts_field: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
}

/// Cuts messages into chunks, compressing headers the way encoders do (format
/// 0 for the first message of a chunk stream, a new message stream or a
/// timestamp going back; format 1, 2 or 3 when the length, type and delta
/// repeat). The server uses it for its own output; it is public so that tests
/// and tools can play the client's side.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    prev: HashMap<u32, PrevOut>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            prev: HashMap::new(),
        }
    }

    /// Chunk size for the following messages (send Set Chunk Size first).
    /// Zero is treated as one.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, 0x7FFF_FFFF);
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Appends `payload` as one message on chunk stream `csid` (2..=65599;
    /// out-of-range ids are clamped into it). Payloads longer than 16 MiB − 1
    /// (the 24-bit length field) are cut at that length.
    pub fn write(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        let csid = csid.clamp(2, MAX_CHUNK_STREAM_ID);
        let payload = payload.get(..0x00FF_FFFF).unwrap_or(payload);
        let length = payload.len();
        let prev = self.prev.get(&csid).copied();
        let (fmt, ts_field) = match prev {
            Some(p) if p.stream_id == stream_id && timestamp >= p.timestamp => {
                let delta = timestamp.wrapping_sub(p.timestamp);
                if p.length == length && p.type_id == type_id {
                    if delta == p.ts_field {
                        (3u8, delta)
                    } else {
                        (2, delta)
                    }
                } else {
                    (1, delta)
                }
            }
            _ => (0, timestamp),
        };
        self.prev.insert(
            csid,
            PrevOut {
                timestamp,
                ts_field,
                length,
                type_id,
                stream_id,
            },
        );
        let extended = ts_field >= EXTENDED_TIMESTAMP;
        let field24 = ts_field.min(EXTENDED_TIMESTAMP);
        write_basic_header(fmt, csid, out);
        if fmt <= 2 {
            out.extend_from_slice(field24.to_be_bytes().get(1..).unwrap_or_default());
        }
        if fmt <= 1 {
            let len = u32::try_from(length).unwrap_or(0);
            out.extend_from_slice(len.to_be_bytes().get(1..).unwrap_or_default());
            out.push(type_id);
        }
        if fmt == 0 {
            out.extend_from_slice(&stream_id.to_le_bytes());
        }
        if extended {
            out.extend_from_slice(&ts_field.to_be_bytes());
        }
        let size = usize::try_from(self.chunk_size)
            .unwrap_or(usize::MAX)
            .max(1);
        let mut chunks = payload.chunks(size);
        if let Some(first) = chunks.next() {
            out.extend_from_slice(first);
        }
        for chunk in chunks {
            write_basic_header(3, csid, out);
            if extended {
                out.extend_from_slice(&ts_field.to_be_bytes());
            }
            out.extend_from_slice(chunk);
        }
    }
}

fn write_basic_header(fmt: u8, csid: u32, out: &mut Vec<u8>) {
    let f = (fmt & 3) << 6;
    match csid {
        0..=63 => out.push(f | (csid as u8 & 0x3F)),
        64..=319 => {
            out.push(f);
            out.push(csid.saturating_sub(64) as u8);
        }
        _ => {
            let v = csid.saturating_sub(64);
            out.push(f | 1);
            out.push((v & 0xFF) as u8);
            out.push((v >> 8) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ChunkLimits {
        ChunkLimits {
            max_chunk_size: 65_536,
            max_message_size: 8 << 20,
            max_chunk_streams: 64,
            max_in_flight_bytes: 16 << 20,
        }
    }

    /// Feeds `input` in pieces of `step` bytes, as a socket would, and collects
    /// the messages.
    fn decode_all(
        dec: &mut ChunkDecoder,
        input: &[u8],
        step: usize,
    ) -> Result<Vec<RawMessage>, ChunkError> {
        let mut pending = Vec::new();
        let mut out = Vec::new();
        for piece in input.chunks(step.max(1)) {
            pending.extend_from_slice(piece);
            while let Some((used, msg)) = dec.decode(&pending)? {
                pending.drain(..used);
                out.extend(msg);
            }
        }
        assert!(pending.is_empty(), "bytes left over: {}", pending.len());
        Ok(out)
    }

    fn msg(csid: u32, type_id: u8, stream_id: u32, timestamp: u32, payload: Vec<u8>) -> RawMessage {
        RawMessage {
            csid,
            type_id,
            stream_id,
            timestamp,
            payload,
        }
    }

    #[test]
    fn basic_header_forms() {
        for (csid, expect) in [
            (2u32, vec![0x02]),
            (63, vec![0x3F]),
            (64, vec![0x00, 0x00]),
            (319, vec![0x00, 0xFF]),
            (320, vec![0x01, 0x00, 0x01]),
            (65_599, vec![0x01, 0xFF, 0xFF]),
        ] {
            let mut out = Vec::new();
            write_basic_header(0, csid, &mut out);
            assert_eq!(out, expect, "csid {csid}");
            // A format-0 chunk with an empty message on that chunk stream.
            out.extend_from_slice(&[0, 0, 5, 0, 0, 0, 20, 0, 0, 0, 0]);
            let mut dec = ChunkDecoder::new(limits());
            let got = decode_all(&mut dec, &out, 1).expect("decodes");
            assert_eq!(got, vec![msg(csid, 20, 0, 5, vec![])]);
        }
    }

    #[test]
    fn all_four_formats_written_by_hand() {
        // Spec 5.3.2.1-style: audio on csid 4, then the same size and delta
        // repeated with format 2 and 3 headers, then format 1 with a new length.
        let mut b = Vec::new();
        // fmt 0: ts 1000, len 3, type 8, stream 1
        b.extend_from_slice(&[0x04, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x03, 0x08, 1, 0, 0, 0]);
        b.extend_from_slice(b"abc");
        // fmt 2: delta 20
        b.extend_from_slice(&[0x84, 0x00, 0x00, 0x14]);
        b.extend_from_slice(b"def");
        // fmt 3: delta repeats (20)
        b.push(0xC4);
        b.extend_from_slice(b"ghi");
        // fmt 1: delta 33, len 2, type 9
        b.extend_from_slice(&[0x44, 0x00, 0x00, 0x21, 0x00, 0x00, 0x02, 0x09]);
        b.extend_from_slice(b"jk");
        for step in [1, 2, 7, b.len()] {
            let mut dec2 = ChunkDecoder::new(limits());
            let got = decode_all(&mut dec2, &b, step).expect("decodes");
            assert_eq!(
                got,
                vec![
                    msg(4, 8, 1, 1000, b"abc".to_vec()),
                    msg(4, 8, 1, 1020, b"def".to_vec()),
                    msg(4, 8, 1, 1040, b"ghi".to_vec()),
                    msg(4, 9, 1, 1073, b"jk".to_vec()),
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn type3_after_type0_adds_the_absolute_field() {
        let mut b = vec![
            0x04, 0x00, 0x00, 0x28, 0x00, 0x00, 0x01, 0x08, 1, 0, 0, 0, b'a',
        ];
        b.extend_from_slice(&[0xC4, b'b']);
        let got = decode_all(&mut ChunkDecoder::new(limits()), &b, 1).expect("decodes");
        assert_eq!(got[0].timestamp, 40);
        assert_eq!(got[1].timestamp, 80);
    }

    #[test]
    fn continuation_chunks_reassemble_at_the_peer_chunk_size() {
        // 300 bytes at the default chunk size of 128: fmt 0 + two fmt 3 chunks.
        let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut b = vec![0x06, 0, 0, 0, 0x00, 0x01, 0x2C, 0x09, 1, 0, 0, 0];
        b.extend_from_slice(&payload[..128]);
        b.push(0xC6);
        b.extend_from_slice(&payload[128..256]);
        b.push(0xC6);
        b.extend_from_slice(&payload[256..]);
        let got = decode_all(&mut ChunkDecoder::new(limits()), &b, 5).expect("decodes");
        assert_eq!(got, vec![msg(6, 9, 1, 0, payload)]);
    }

    #[test]
    fn extended_timestamp_in_type0_and_repeated_in_type3_chunks() {
        let ts = 0x0123_4567u32;
        let payload: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        let mut b = vec![0x04, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0xC8, 0x09, 1, 0, 0, 0];
        b.extend_from_slice(&ts.to_be_bytes());
        b.extend_from_slice(&payload[..128]);
        b.push(0xC4);
        b.extend_from_slice(&ts.to_be_bytes());
        b.extend_from_slice(&payload[128..]);
        // A new message with a type-3 header: extended field again, delta = ts.
        b.push(0xC4);
        b.extend_from_slice(&ts.to_be_bytes());
        b.extend_from_slice(&payload[..128]);
        b.push(0xC4);
        b.extend_from_slice(&ts.to_be_bytes());
        b.extend_from_slice(&payload[128..]);
        let got = decode_all(&mut ChunkDecoder::new(limits()), &b, 3).expect("decodes");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].timestamp, ts);
        assert_eq!(got[0].payload, payload);
        assert_eq!(got[1].timestamp, ts.wrapping_add(ts));
        assert_eq!(got[1].payload, payload);
    }

    #[test]
    fn extended_delta_in_type1_then_small_delta_drops_the_extension() {
        let mut b = vec![0x04, 0, 0, 10, 0, 0, 1, 8, 1, 0, 0, 0, b'x'];
        // fmt 1 with an extended delta of 0x01000000.
        b.extend_from_slice(&[0x44, 0xFF, 0xFF, 0xFF, 0, 0, 1, 8]);
        b.extend_from_slice(&0x0100_0000u32.to_be_bytes());
        b.push(b'y');
        // fmt 2 with a small delta: no extended field any more.
        b.extend_from_slice(&[0x84, 0, 0, 5, b'z']);
        // fmt 3: repeats delta 5, no extended field.
        b.extend_from_slice(&[0xC4, b'w']);
        let got = decode_all(&mut ChunkDecoder::new(limits()), &b, 1).expect("decodes");
        let ts: Vec<u32> = got.iter().map(|m| m.timestamp).collect();
        assert_eq!(
            ts,
            vec![10, 10 + 0x0100_0000, 15 + 0x0100_0000, 20 + 0x0100_0000]
        );
    }

    #[test]
    fn timestamps_wrap_at_32_bits() {
        let mut b = vec![0x04, 0xFF, 0xFF, 0xFF, 0, 0, 1, 8, 1, 0, 0, 0];
        b.extend_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
        b.push(1);
        b.extend_from_slice(&[0x84, 0, 0, 0x20, 2]);
        let got = decode_all(&mut ChunkDecoder::new(limits()), &b, 1).expect("decodes");
        assert_eq!(got[0].timestamp, 0xFFFF_FFF0);
        assert_eq!(got[1].timestamp, 0x10);
    }

    #[test]
    fn interleaved_chunk_streams() {
        let mut enc = ChunkEncoder::new();
        let a: Vec<u8> = vec![0xAA; 500];
        let v: Vec<u8> = vec![0xBB; 300];
        let mut one = Vec::new();
        enc.write(4, 8, 1, 0, &a, &mut one);
        let mut two = Vec::new();
        enc.write(6, 9, 1, 0, &v, &mut two);
        // Interleave chunk by chunk: split at chunk boundaries (12-byte header
        // then 128, and 1+128 ...).
        let split = |b: &[u8]| -> Vec<Vec<u8>> {
            let mut parts = vec![b[..12 + 128].to_vec()];
            let mut rest = &b[12 + 128..];
            while !rest.is_empty() {
                let n = rest.len().min(129);
                parts.push(rest[..n].to_vec());
                rest = &rest[n..];
            }
            parts
        };
        let (pa, pv) = (split(&one), split(&two));
        let mut mixed = Vec::new();
        for i in 0..pa.len().max(pv.len()) {
            if let Some(p) = pa.get(i) {
                mixed.extend_from_slice(p);
            }
            if let Some(p) = pv.get(i) {
                mixed.extend_from_slice(p);
            }
        }
        let mut dec = ChunkDecoder::new(limits());
        let got = decode_all(&mut dec, &mixed, 13).expect("decodes");
        assert_eq!(got, vec![msg(6, 9, 1, 0, v), msg(4, 8, 1, 0, a)]);
        assert_eq!(dec.in_flight_bytes(), 0);
    }

    #[test]
    fn encoder_round_trips_through_decoder_at_any_chunk_size() {
        for chunk_size in [1u32, 2, 128, 4096, 65_536] {
            let mut enc = ChunkEncoder::new();
            enc.set_chunk_size(chunk_size);
            let mut dec = ChunkDecoder::new(limits());
            dec.set_chunk_size(chunk_size).expect("allowed");
            let mut wire = Vec::new();
            let mut expect = Vec::new();
            let mut ts = 0u32;
            for i in 0..40u32 {
                // Large jumps exercise extended timestamps and format choice.
                ts = ts.wrapping_add(if i % 7 == 3 { 0x0100_0000 } else { 33 });
                let len = if i % 3 == 0 {
                    1000
                } else {
                    20 + (i as usize % 2)
                };
                let payload: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
                let csid = if i % 2 == 0 { 4 } else { 400 };
                let type_id = if i % 2 == 0 { 8 } else { 9 };
                enc.write(csid, type_id, 1, ts, &payload, &mut wire);
                expect.push(msg(csid, type_id, 1, ts, payload));
            }
            let got = decode_all(&mut dec, &wire, 97).expect("decodes");
            assert_eq!(got, expect, "chunk size {chunk_size}");
        }
    }

    #[test]
    fn abort_discards_the_partial_message() {
        let mut dec = ChunkDecoder::new(limits());
        let mut b = vec![0x04, 0, 0, 0, 0, 1, 0, 9, 1, 0, 0, 0];
        b.extend_from_slice(&[1; 128]);
        let (used, m) = dec.decode(&b).expect("ok").expect("chunk");
        assert_eq!((used, m), (b.len(), None));
        assert_eq!(dec.in_flight_bytes(), 128);
        dec.abort(4);
        assert_eq!(dec.in_flight_bytes(), 0);
        // A new message can start on csid 4 with any header now.
        let mut b = vec![0x84, 0, 0, 1];
        b.extend_from_slice(&[2; 128]);
        let (used, m) = dec.decode(&b).expect("ok").expect("chunk");
        assert_eq!((used, m), (b.len(), None), "256-byte message started again");
        assert_eq!(dec.in_flight_bytes(), 128);
    }

    #[test]
    fn refusals() {
        let mut dec = ChunkDecoder::new(limits());
        assert_eq!(
            dec.decode(&[0x44, 0, 0, 0, 0, 0, 1, 8]),
            Err(ChunkError::NoPreviousHeader { csid: 4, fmt: 1 })
        );
        assert_eq!(
            dec.decode(&[0x04, 0, 0, 0, 0x80, 0, 1, 9, 1, 0, 0, 0]),
            Err(ChunkError::MessageTooLarge {
                len: 0x80_0001,
                max: 8 << 20
            })
        );
        assert_eq!(dec.set_chunk_size(0), Err(ChunkError::InvalidChunkSize(0)));
        assert_eq!(
            dec.set_chunk_size(0x7FFF_FFFF),
            Err(ChunkError::ChunkSizeTooLarge {
                size: 0x7FFF_FFFF,
                max: 65_536
            })
        );
        assert_eq!(dec.set_chunk_size(0x8000_1000), Ok(()), "top bit ignored");
        assert_eq!(dec.chunk_size(), 0x1000);

        // A format-0 header while a message on the same csid is incomplete.
        let mut dec = ChunkDecoder::new(limits());
        let mut b = vec![0x04, 0, 0, 0, 0, 1, 0, 9, 1, 0, 0, 0];
        b.extend_from_slice(&[0; 128]);
        b.extend_from_slice(&[0x04, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0]);
        assert_eq!(
            decode_all(&mut dec, &b, 1000),
            Err(ChunkError::HeaderMidMessage { csid: 4 })
        );
    }

    #[test]
    fn bounded_chunk_streams_and_in_flight_bytes() {
        let mut l = limits();
        l.max_chunk_streams = 3;
        let mut dec = ChunkDecoder::new(l);
        let mut b = Vec::new();
        for csid in 2..6u8 {
            b.extend_from_slice(&[csid, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0]);
        }
        assert_eq!(
            decode_all(&mut dec, &b, 1000),
            Err(ChunkError::TooManyChunkStreams { max: 3 })
        );

        let mut l = limits();
        l.max_in_flight_bytes = 300;
        let mut dec = ChunkDecoder::new(l);
        let mut b = Vec::new();
        for csid in 3..6u8 {
            // 1000-byte messages, first chunk only.
            b.extend_from_slice(&[csid, 0, 0, 0, 0, 0x03, 0xE8, 9, 1, 0, 0, 0]);
            b.extend_from_slice(&[0; 128]);
        }
        assert_eq!(
            decode_all(&mut dec, &b, 1000),
            Err(ChunkError::InFlightTooLarge { max: 300 })
        );
    }
}
