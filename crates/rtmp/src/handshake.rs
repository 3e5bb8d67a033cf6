//! The server side of the RTMP "simple" handshake (RTMP 1.0 spec, section 5.2).
//!
//! ```text
//! client                         server
//!   C0 (1 byte: version 3)  ──►
//!   C1 (1536 bytes)         ──►
//!                           ◄──  S0 (version 3), S1 (1536 bytes)
//!                           ◄──  S2 (echo of C1)
//!   C2 (1536 bytes)         ──►
//! ```
//!
//! S0 and S1 are written as soon as C0 arrives, S2 as soon as C1 is complete.
//! S1 carries time 0, a zero "version" field (which tells clients that can do
//! the digest-based handshake, such as FFmpeg's, to use the simple one) and
//! 1528 filler bytes. C2 is read but not compared with S1: encoders that
//! attempt the digest handshake send a C2 of their own making, and the simple
//! handshake carries no security either way. Version 3 is the only one
//! accepted: 6 (RTMPE, encrypted) and anything else is refused with
//! [`HandshakeError::UnsupportedVersion`].

use crate::reader::Reader;

/// The only RTMP version accepted in C0.
pub const RTMP_VERSION: u8 = 3;
/// Size of C1, C2, S1 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;
/// Bytes a client sends in the whole handshake (C0 + C1 + C2).
pub const CLIENT_HANDSHAKE_LEN: usize = 1 + 2 * HANDSHAKE_SIZE;

/// Where the handshake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeState {
    /// Waiting for C0.
    AwaitingC0,
    /// C0 accepted, S0 and S1 written; waiting for all of C1.
    AwaitingC1,
    /// S2 written; waiting for all of C2.
    AwaitingC2,
    /// Finished: what follows is the chunk stream.
    Done,
}

/// Why a handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("RTMP version {0} is not supported (only 3, plain RTMP)")]
    UnsupportedVersion(u8),
}

#[derive(Debug)]
pub(crate) struct Handshake {
    state: HandshakeState,
}

impl Handshake {
    pub(crate) fn new() -> Self {
        Self {
            state: HandshakeState::AwaitingC0,
        }
    }

    pub(crate) fn state(&self) -> HandshakeState {
        self.state
    }

    /// Consumes whole handshake packets from `input` (a partial C1 or C2 is
    /// left for the next call) and appends the server's replies to `out`.
    /// Returns the number of bytes consumed.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, HandshakeError> {
        let mut r = Reader::new(input);
        loop {
            match self.state {
                HandshakeState::AwaitingC0 => {
                    let Some(version) = r.u8() else { break };
                    if version != RTMP_VERSION {
                        return Err(HandshakeError::UnsupportedVersion(version));
                    }
                    out.push(RTMP_VERSION);
                    write_s1(out);
                    self.state = HandshakeState::AwaitingC1;
                }
                HandshakeState::AwaitingC1 => {
                    let Some(c1) = r.bytes(HANDSHAKE_SIZE) else {
                        break;
                    };
                    // S2: C1's time, our read time (we keep no clock: 0), C1's random echo.
                    out.extend_from_slice(c1.get(..4).unwrap_or_default());
                    out.extend_from_slice(&[0, 0, 0, 0]);
                    out.extend_from_slice(c1.get(8..).unwrap_or_default());
                    self.state = HandshakeState::AwaitingC2;
                }
                HandshakeState::AwaitingC2 => {
                    if r.bytes(HANDSHAKE_SIZE).is_none() {
                        break;
                    }
                    self.state = HandshakeState::Done;
                }
                HandshakeState::Done => break,
            }
        }
        Ok(r.position())
    }
}

/// S1: time 0, zero field 0, then 1528 filler bytes from a xorshift generator.
fn write_s1(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0; 8]);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut left = HANDSHAKE_SIZE.saturating_sub(8);
    while left > 0 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_be_bytes();
        let n = left.min(bytes.len());
        out.extend_from_slice(bytes.get(..n).unwrap_or_default());
        left = left.saturating_sub(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c1() -> Vec<u8> {
        let mut c1 = vec![0, 0, 0x12, 0x34, 9, 0, 124, 2];
        c1.extend((0..HANDSHAKE_SIZE - 8).map(|i| (i % 251) as u8));
        c1
    }

    #[test]
    fn full_handshake_in_one_piece() {
        let mut hs = Handshake::new();
        let mut input = vec![3];
        input.extend(c1());
        input.extend(vec![7; HANDSHAKE_SIZE]);
        input.extend([1, 2, 3]); // the chunk stream begins
        let mut out = Vec::new();
        let used = hs.feed(&input, &mut out).expect("accepted");
        assert_eq!(used, CLIENT_HANDSHAKE_LEN);
        assert_eq!(hs.state(), HandshakeState::Done);
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(out[0], 3, "S0");
        assert_eq!(&out[1..9], &[0; 8], "S1 time and zero field");
        let s2 = &out[1 + HANDSHAKE_SIZE..];
        assert_eq!(&s2[..4], &c1()[..4], "S2 echoes C1's time");
        assert_eq!(&s2[8..], &c1()[8..], "S2 echoes C1's random bytes");
    }

    #[test]
    fn byte_by_byte_reports_not_finished_until_c2() {
        let mut hs = Handshake::new();
        let mut input = vec![3];
        input.extend(c1());
        input.extend(vec![0; HANDSHAKE_SIZE]);
        let mut out = Vec::new();
        let mut pending = Vec::new();
        let mut states = Vec::new();
        for b in input {
            pending.push(b);
            let used = hs.feed(&pending, &mut out).expect("accepted");
            pending.drain(..used);
            states.push(hs.state());
        }
        assert_eq!(states[0], HandshakeState::AwaitingC1);
        assert_eq!(out.len(), 2 * HANDSHAKE_SIZE + 1);
        assert_eq!(states[HANDSHAKE_SIZE - 1], HandshakeState::AwaitingC1);
        assert_eq!(states[HANDSHAKE_SIZE], HandshakeState::AwaitingC2);
        assert_eq!(states[2 * HANDSHAKE_SIZE - 1], HandshakeState::AwaitingC2);
        assert_eq!(states[2 * HANDSHAKE_SIZE], HandshakeState::Done);
    }

    #[test]
    fn refuses_other_versions() {
        for v in [0u8, 1, 2, 6, 0x16, 0xFF] {
            let mut hs = Handshake::new();
            let mut out = Vec::new();
            assert_eq!(
                hs.feed(&[v, 0, 0], &mut out),
                Err(HandshakeError::UnsupportedVersion(v))
            );
            assert!(out.is_empty(), "nothing written for version {v}");
        }
    }
}
