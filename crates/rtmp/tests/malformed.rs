//! Malformed and hostile input replayed against a session: each must end in a
//! clean, typed error (or, for a truncated stream, a session still waiting),
//! never a panic. The inputs the fuzz target (`make fuzz-rtmp`) starts from.

use std::time::{Duration, Instant};

use onair_rtmp::amf0::{encode_all, Amf0Value, AmfError};
use onair_rtmp::chunk::{ChunkEncoder, ChunkError};
use onair_rtmp::handshake::{HandshakeState, CLIENT_HANDSHAKE_LEN, HANDSHAKE_SIZE};
use onair_rtmp::{Config, Error, HandshakeError, ProtocolError, Session, SessionState};

fn handshake() -> Vec<u8> {
    let mut b = vec![3u8];
    b.extend(std::iter::repeat_n(0x5A, 2 * HANDSHAKE_SIZE));
    b
}

fn command(enc: &mut ChunkEncoder, values: &[Amf0Value]) -> Vec<u8> {
    let mut out = Vec::new();
    enc.write(3, 20, 0, 0, &encode_all(values), &mut out);
    out
}

fn connect() -> Vec<Amf0Value> {
    vec![
        Amf0Value::String("connect".into()),
        Amf0Value::Number(1.0),
        Amf0Value::Object(vec![("app".into(), Amf0Value::String("live".into()))]),
    ]
}

fn session() -> Session {
    Session::new(Config::default(), Instant::now())
}

#[test]
fn truncated_handshake_waits_then_times_out() {
    let t0 = Instant::now();
    let mut s = Session::new(Config::default(), t0);
    s.handle_input(&handshake()[..1000])
        .expect("a prefix is fine");
    assert_eq!(
        s.state(),
        SessionState::Handshake(HandshakeState::AwaitingC1)
    );
    assert!(!s.is_handshake_done());
    assert_eq!(
        s.handle_timeout(t0 + Duration::from_secs(10)),
        Err(Error::HandshakeTimeout(Duration::from_secs(10)))
    );
    // C0 + C1 but no C2.
    let mut s = session();
    s.handle_input(&handshake()[..1 + HANDSHAKE_SIZE])
        .expect("prefix");
    assert_eq!(
        s.state(),
        SessionState::Handshake(HandshakeState::AwaitingC2)
    );
}

#[test]
fn wrong_versions_and_tls_hello_are_refused() {
    // 0x16 is the first byte of a TLS ClientHello (rtmps:// to a plain port).
    for first in [6u8, 0x16, b'G'] {
        let mut s = session();
        assert_eq!(
            s.handle_input(&[first, 3, 1, 0]),
            Err(Error::Handshake(HandshakeError::UnsupportedVersion(first)))
        );
        assert!(s.output().is_empty());
    }
}

#[test]
fn huge_chunk_size_is_refused() {
    let mut enc = ChunkEncoder::new();
    let mut input = handshake();
    enc.write(2, 1, 0, 0, &0x7FFF_FFFFu32.to_be_bytes(), &mut input);
    assert_eq!(
        session().handle_input(&input),
        Err(Error::Chunk(ChunkError::ChunkSizeTooLarge {
            size: 0x7FFF_FFFF,
            max: 65_536
        }))
    );
    let mut input = handshake();
    ChunkEncoder::new().write(2, 1, 0, 0, &0u32.to_be_bytes(), &mut input);
    assert_eq!(
        session().handle_input(&input),
        Err(Error::Chunk(ChunkError::InvalidChunkSize(0)))
    );
    let mut input = handshake();
    ChunkEncoder::new().write(2, 1, 0, 0, &[0, 0], &mut input);
    assert_eq!(
        session().handle_input(&input),
        Err(Error::Protocol(ProtocolError::ControlTruncated(1)))
    );
}

#[test]
fn bogus_message_length_is_refused() {
    let mut input = handshake();
    // fmt 0 on csid 3: length 0xFFFFFF (16 MiB), over the 8 MiB limit.
    input.extend_from_slice(&[0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0]);
    assert_eq!(
        session().handle_input(&input),
        Err(Error::Chunk(ChunkError::MessageTooLarge {
            len: 0xFF_FFFF,
            max: 8 << 20
        }))
    );
    // A continuation (fmt 3) or delta header (fmt 1/2) on a fresh chunk stream.
    for b0 in [0xC3u8, 0x43, 0x83] {
        let mut input = handshake();
        input.extend_from_slice(&[b0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            session().handle_input(&input),
            Err(Error::Chunk(ChunkError::NoPreviousHeader { csid: 3, .. }))
        ));
    }
}

#[test]
fn a_message_that_never_completes_is_only_pending() {
    let mut s = session();
    let mut input = handshake();
    input.extend_from_slice(&[0x03, 0, 0, 0, 0x00, 0x10, 0x00, 20, 0, 0, 0, 0]);
    input.extend_from_slice(&[0x02; 100]);
    s.handle_input(&input).expect("incomplete is not an error");
    assert_eq!(s.state(), SessionState::AwaitingConnect);
    assert_eq!(s.poll_event(), None);
}

#[test]
fn deep_amf_nesting_is_refused() {
    let mut enc = ChunkEncoder::new();
    let mut input = handshake();
    // connect, 1, then 10,000 nested objects {"a": {"a": ...
    let mut body = encode_all(&[Amf0Value::String("connect".into()), Amf0Value::Number(1.0)]);
    for _ in 0..10_000 {
        body.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
    }
    enc.set_chunk_size(4096);
    let mut set = Vec::new();
    ChunkEncoder::new().write(2, 1, 0, 0, &4096u32.to_be_bytes(), &mut set);
    input.extend(set);
    enc.write(3, 20, 0, 0, &body, &mut input);
    assert_eq!(
        session().handle_input(&input),
        Err(Error::Amf(AmfError::TooDeep { max: 16 }))
    );
}

#[test]
fn unsupported_amf_markers_and_non_commands_are_refused() {
    let mut enc = ChunkEncoder::new();
    let mut input = handshake();
    // The AMF3 switch marker (0x11) inside an AMF0 command.
    enc.write(3, 20, 0, 0, &[0x02, 0, 1, b'x', 0x11, 0x04], &mut input);
    assert_eq!(
        session().handle_input(&input),
        Err(Error::Amf(AmfError::UnsupportedMarker(0x11)))
    );
    let mut input = handshake();
    input.extend(command(&mut ChunkEncoder::new(), &[Amf0Value::Number(1.0)]));
    assert_eq!(
        session().handle_input(&input),
        Err(Error::Protocol(ProtocolError::NotACommand))
    );
}

#[test]
fn too_many_chunk_streams_and_in_flight_bytes() {
    let mut input = handshake();
    let mut enc = ChunkEncoder::new();
    for csid in 2..70u32 {
        // Empty AMF0 data messages on 68 chunk streams (1- and 2-byte ids).
        enc.write(csid, 18, 0, 0, &[], &mut input);
    }
    assert_eq!(
        session().handle_input(&input),
        Err(Error::Chunk(ChunkError::TooManyChunkStreams { max: 64 }))
    );

    let config = Config {
        max_in_flight_bytes: 100_000,
        max_setup_bytes: 10 << 20,
        ..Config::default()
    };
    let mut s = Session::new(config, Instant::now());
    let mut enc = ChunkEncoder::new();
    let mut input = handshake();
    enc.write(2, 1, 0, 0, &65_536u32.to_be_bytes(), &mut input);
    for csid in 3..6u8 {
        // First chunks (64 KiB) of three 1 MiB messages that never finish.
        input.extend_from_slice(&[csid, 0, 0, 0, 0x10, 0x00, 0x00, 9, 1, 0, 0, 0]);
        input.extend(std::iter::repeat_n(0u8, 65_536));
    }
    assert_eq!(
        s.handle_input(&input),
        Err(Error::Chunk(ChunkError::InFlightTooLarge { max: 100_000 }))
    );
}

#[test]
fn garbage_before_publish_is_bounded() {
    let mut s = session();
    let mut enc = ChunkEncoder::new();
    let mut input = handshake();
    input.extend(command(&mut enc, &connect()));
    s.handle_input(&input).expect("connect");
    let junk = vec![0x43u8; 2 << 20];
    // 2 MiB before any publish: over the 1 MiB setup budget, refused before
    // it is parsed.
    let err = s.handle_input(&junk).expect_err("refused");
    assert_eq!(err, Error::SetupTooLarge { max: 1 << 20 });
}

/// Pseudo-random bytes after a valid handshake and connect: any outcome but a
/// panic is fine. A cheap stand-in for the fuzz target that runs in every
/// `cargo test`.
#[test]
fn pseudo_random_input_never_panics() {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Up to an accepted publish, so media and metadata parsing run too.
    let mut enc = ChunkEncoder::new();
    let mut prefix = handshake();
    prefix.extend(command(&mut enc, &connect()));
    prefix.extend(command(
        &mut enc,
        &[
            Amf0Value::String("createStream".into()),
            Amf0Value::Number(2.0),
            Amf0Value::Null,
        ],
    ));
    let publish = encode_all(&[
        Amf0Value::String("publish".into()),
        Amf0Value::Number(3.0),
        Amf0Value::Null,
        Amf0Value::String("KEY".into()),
    ]);
    enc.write(8, 20, 1, 0, &publish, &mut prefix);
    let mut outcomes = [0usize; 2];
    for _ in 0..3000 {
        let len = (next() % 600) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Bias towards plausible headers: small csids and known types.
        if let Some(b) = data.first_mut() {
            *b &= 0xC7;
        }
        let mut s = session();
        s.handle_input(&prefix).expect("prefix");
        s.accept_publish().expect("publish requested");
        let ok = data
            .chunks((next() % 64 + 1) as usize)
            .all(|piece| s.handle_input(piece).is_ok());
        outcomes[usize::from(ok)] += 1;
        while s.poll_event().is_some() {}
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
    assert_eq!(CLIENT_HANDSHAKE_LEN, 3073);
}
