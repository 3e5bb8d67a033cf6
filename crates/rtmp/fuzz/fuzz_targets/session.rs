//! Arbitrary bytes after a valid handshake, connect, createStream and an
//! accepted publish, so the fuzzer spends its time in the chunk stream, the
//! control messages, AMF0 commands and metadata, and FLV tag parsing. The first
//! input byte sets how the rest is split into reads (1-256 bytes each), which
//! exercises the incremental parsers. Any outcome but a panic (or a hang, or
//! unbounded memory) is fine.
#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use onair_rtmp::amf0::{encode_all, Amf0Value};
use onair_rtmp::chunk::ChunkEncoder;
use onair_rtmp::handshake::HANDSHAKE_SIZE;
use onair_rtmp::{status, Config, Event, Session};

fn s(v: &str) -> Amf0Value {
    Amf0Value::String(v.to_owned())
}

fn prefix() -> Vec<u8> {
    let mut out = vec![3u8];
    out.extend(std::iter::repeat_n(0x5A, 2 * HANDSHAKE_SIZE));
    let mut enc = ChunkEncoder::new();
    let mut cmd = |stream: u32, values: &[Amf0Value], out: &mut Vec<u8>| {
        let csid = if stream == 0 { 3 } else { 8 };
        enc.write(csid, 20, stream, 0, &encode_all(values), out);
    };
    cmd(
        0,
        &[
            s("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::Object(vec![("app".into(), s("live"))]),
        ],
        &mut out,
    );
    cmd(
        0,
        &[s("createStream"), Amf0Value::Number(2.0), Amf0Value::Null],
        &mut out,
    );
    cmd(
        1,
        &[
            s("publish"),
            Amf0Value::Number(3.0),
            Amf0Value::Null,
            s("KEY"),
            s("live"),
        ],
        &mut out,
    );
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    static PREFIX: OnceLock<Vec<u8>> = OnceLock::new();
    let mut session = Session::new(Config::default(), Instant::now());
    if session.handle_input(PREFIX.get_or_init(prefix)).is_err()
        || session.accept_publish().is_err()
    {
        panic!("the valid prefix must be accepted");
    }
    let mut publishes = 0u32;
    for piece in rest.chunks(usize::from(split) + 1) {
        let result = session.handle_input(piece);
        while let Some(event) = session.poll_event() {
            if let Event::Publish { .. } = event {
                // Alternate the caller's answers.
                publishes += 1;
                let _ = if publishes % 2 == 0 {
                    session.accept_publish()
                } else {
                    session.reject_publish(status::PUBLISH_BAD_NAME, "fuzz")
                };
            }
        }
        let _ = session.take_output();
        if result.is_err() {
            break;
        }
    }
});
