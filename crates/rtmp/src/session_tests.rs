//! Session tests: the command flow, control messages, limits and timeouts,
//! driven by a scripted client built from this crate's own encoder and
//! checked by decoding the server's output.

use super::*;
use crate::chunk::{ChunkDecoder, ChunkEncoder, ChunkLimits, RawMessage};
use crate::flv::{AudioCodec, AudioPacketKind, FlvVideo, VideoCodec, VideoPacketKind};
use crate::handshake::{CLIENT_HANDSHAKE_LEN, HANDSHAKE_SIZE};

fn handshake() -> Vec<u8> {
    let mut b = vec![3u8];
    b.extend((0..HANDSHAKE_SIZE).map(|i| (i * 7) as u8));
    b.extend(vec![0u8; HANDSHAKE_SIZE]);
    b
}

/// The client side: writes chunks, reads the server's output.
struct Client {
    enc: ChunkEncoder,
    dec: ChunkDecoder,
    skipped_handshake: bool,
    pending: Vec<u8>,
}

impl Client {
    fn new() -> Self {
        Self {
            enc: ChunkEncoder::new(),
            dec: ChunkDecoder::new(ChunkLimits {
                max_chunk_size: 1 << 20,
                max_message_size: 1 << 24,
                max_chunk_streams: 64,
                max_in_flight_bytes: 1 << 24,
            }),
            skipped_handshake: false,
            pending: Vec::new(),
        }
    }

    fn command(&mut self, stream_id: u32, values: &[Amf0Value]) -> Vec<u8> {
        let mut out = Vec::new();
        let csid = if stream_id == 0 { 3 } else { 8 };
        self.enc
            .write(csid, 20, stream_id, 0, &amf0::encode_all(values), &mut out);
        out
    }

    fn message(
        &mut self,
        csid: u32,
        type_id: u8,
        stream_id: u32,
        ts: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        self.enc
            .write(csid, type_id, stream_id, ts, payload, &mut out);
        out
    }

    fn set_chunk_size(&mut self, size: u32) -> Vec<u8> {
        let out = self.message(2, 1, 0, 0, &size.to_be_bytes());
        self.enc.set_chunk_size(size);
        out
    }

    /// Decodes what the server wrote (skipping S0 S1 S2 the first time).
    fn read(&mut self, server_out: &[u8]) -> Vec<RawMessage> {
        self.pending.extend_from_slice(server_out);
        if !self.skipped_handshake {
            assert!(self.pending.len() >= CLIENT_HANDSHAKE_LEN);
            self.pending.drain(..1 + 2 * HANDSHAKE_SIZE);
            self.skipped_handshake = true;
        }
        let mut msgs = Vec::new();
        while let Some((used, m)) = self
            .dec
            .decode(&self.pending)
            .expect("server output decodes")
        {
            self.pending.drain(..used);
            if let Some(m) = m {
                if m.type_id == 1 {
                    let size = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                    self.dec.set_chunk_size(size).unwrap();
                }
                msgs.push(m);
            }
        }
        msgs
    }
}

fn s(v: &str) -> Amf0Value {
    Amf0Value::String(v.to_owned())
}

fn n(v: f64) -> Amf0Value {
    Amf0Value::Number(v)
}

fn amf(m: &RawMessage) -> Vec<Amf0Value> {
    amf0::decode_all(&m.payload, &AmfLimits::default()).expect("server AMF decodes")
}

fn events(sess: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| sess.poll_event()).collect()
}

fn connect_values() -> Vec<Amf0Value> {
    vec![
        s("connect"),
        n(1.0),
        Amf0Value::Object(vec![
            ("app".into(), s("live")),
            ("type".into(), s("nonprivate")),
            ("flashVer".into(), s("FMLE/3.0 (compatible; Lavf61.7.100)")),
            ("tcUrl".into(), s("rtmp://127.0.0.1:1935/live")),
        ]),
    ]
}

/// Handshake, connect, releaseStream, FCPublish, createStream, publish.
fn up_to_publish(key: &str) -> (Session, Client, Vec<RawMessage>) {
    let mut sess = Session::new(Config::default(), Instant::now());
    let mut c = Client::new();
    let mut input = handshake();
    input.extend(c.command(0, &connect_values()));
    input.extend(c.command(0, &[s("releaseStream"), n(2.0), Amf0Value::Null, s(key)]));
    input.extend(c.command(0, &[s("FCPublish"), n(3.0), Amf0Value::Null, s(key)]));
    input.extend(c.command(0, &[s("createStream"), n(4.0), Amf0Value::Null]));
    input.extend(c.command(
        1,
        &[s("publish"), n(5.0), Amf0Value::Null, s(key), s("live")],
    ));
    sess.handle_input(&input).expect("publish flow accepted");
    let msgs = c.read(&sess.take_output());
    (sess, c, msgs)
}

#[test]
fn publish_flow_answers_like_a_server_ffmpeg_and_obs_accept() {
    let (mut sess, mut c, msgs) = up_to_publish("KEY");
    let evs = events(&mut sess);
    assert_eq!(
        evs,
        vec![
            Event::Connect {
                app: "live".into(),
                tc_url: Some("rtmp://127.0.0.1:1935/live".into()),
                flash_ver: Some("FMLE/3.0 (compatible; Lavf61.7.100)".into()),
            },
            Event::Publish {
                stream_key: "KEY".into(),
                publish_type: "live".into(),
                stream_id: 1,
            },
        ]
    );
    assert_eq!(sess.state(), SessionState::PublishRequested);
    assert_eq!(sess.app(), Some("live"));
    assert_eq!(sess.stream_key(), Some("KEY"));

    // Window Ack Size, Set Peer Bandwidth (dynamic), Set Chunk Size 4096.
    assert_eq!(
        (msgs[0].type_id, msgs[0].payload.clone()),
        (5, 2_500_000u32.to_be_bytes().to_vec())
    );
    assert_eq!(msgs[1].type_id, 6);
    assert_eq!(
        msgs[1].payload,
        [&2_500_000u32.to_be_bytes()[..], &[2]].concat()
    );
    assert_eq!(
        (msgs[2].type_id, msgs[2].payload.clone()),
        (1, 4096u32.to_be_bytes().to_vec())
    );
    let result = amf(&msgs[3]);
    assert_eq!(result[0], s("_result"));
    assert_eq!(result[1], n(1.0));
    assert_eq!(
        result[3].get("code"),
        Some(&s("NetConnection.Connect.Success"))
    );
    assert_eq!(result[3].get("objectEncoding"), Some(&n(0.0)));
    // releaseStream and FCPublish results, onFCPublish, createStream result.
    assert_eq!(amf(&msgs[4])[..2], [s("_result"), n(2.0)]);
    assert_eq!(amf(&msgs[5])[..2], [s("_result"), n(3.0)]);
    let onfc = amf(&msgs[6]);
    assert_eq!(onfc[0], s("onFCPublish"));
    assert_eq!(onfc[3].get("description"), Some(&s("KEY")));
    assert_eq!(
        amf(&msgs[7]),
        vec![s("_result"), n(4.0), Amf0Value::Null, n(1.0)]
    );
    assert_eq!(
        msgs.len(),
        8,
        "nothing about the publish before the caller decides"
    );

    sess.accept_publish().expect("pending");
    assert_eq!(sess.state(), SessionState::Publishing);
    let msgs = c.read(&sess.take_output());
    assert_eq!(
        (msgs[0].type_id, msgs[0].payload.clone()),
        (4, vec![0, 0, 0, 0, 0, 1]),
        "StreamBegin 1"
    );
    let status = amf(&msgs[1]);
    assert_eq!(msgs[1].stream_id, 1);
    assert_eq!(status[0], s("onStatus"));
    assert_eq!(status[3].get("level"), Some(&s("status")));
    assert_eq!(status[3].get("code"), Some(&s("NetStream.Publish.Start")));
    assert_eq!(sess.accept_publish(), Err(Error::NoPendingPublish));

    // Metadata, then media with a bigger client chunk size.
    let mut input = c.set_chunk_size(4096);
    let meta = amf0::encode_all(&[
        s("@setDataFrame"),
        s("onMetaData"),
        Amf0Value::EcmaArray(vec![
            ("width".into(), n(320.0)),
            ("videocodecid".into(), n(7.0)),
        ]),
    ]);
    input.extend(c.message(4, 18, 1, 0, &meta));
    input.extend(c.message(6, 9, 1, 0, &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1F]));
    input.extend(c.message(4, 8, 1, 0, &[0xAF, 0, 0x12, 0x10]));
    let big: Vec<u8> = [&[0x17u8, 1, 0, 0, 0x42][..], &vec![0xAB; 20_000]].concat();
    input.extend(c.message(6, 9, 1, 33, &big));
    input.extend(c.message(4, 8, 1, 23, &[0xAF, 1, 0x21]));
    // Feed in odd pieces, as a socket would.
    for piece in input.chunks(777) {
        sess.handle_input(piece).expect("media accepted");
    }
    let evs = events(&mut sess);
    assert_eq!(evs.len(), 5);
    assert!(matches!(&evs[0], Event::Metadata(p) if p[0] == ("width".to_owned(), n(320.0))));
    match &evs[1] {
        Event::Video(v) => assert_eq!(
            (v.kind, v.dts_ms, v.data.len()),
            (VideoPacketKind::SequenceHeader, 0, 4)
        ),
        other => panic!("{other:?}"),
    }
    match &evs[2] {
        Event::Audio(a) => assert_eq!(
            (a.codec, a.kind, a.data.clone()),
            (
                AudioCodec::Aac,
                AudioPacketKind::SequenceHeader,
                vec![0x12, 0x10]
            )
        ),
        other => panic!("{other:?}"),
    }
    match &evs[3] {
        Event::Video(v) => {
            assert_eq!((v.dts_ms, v.pts_ms, v.data.len()), (33, 99, 20_000));
            assert!(v.frame_type.is_keyframe());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&evs[4], Event::Audio(a) if a.dts_ms == 23));

    // FFmpeg's end: FCUnpublish then deleteStream: one Unpublish.
    let mut input = c.command(0, &[s("FCUnpublish"), n(6.0), Amf0Value::Null, s("KEY")]);
    input.extend(c.command(0, &[s("deleteStream"), n(7.0), Amf0Value::Null, n(1.0)]));
    sess.handle_input(&input).expect("end accepted");
    assert_eq!(events(&mut sess), vec![Event::Unpublish]);
    assert_eq!(sess.state(), SessionState::Connected);
    let msgs = c.read(&sess.take_output());
    let last = amf(msgs.last().expect("a status"));
    assert_eq!(last[3].get("code"), Some(&s("NetStream.Unpublish.Success")));
}

#[test]
fn rejected_key_writes_bad_name_and_drops_media() {
    let (mut sess, mut c, _) = up_to_publish("WRONG");
    events(&mut sess);
    sess.reject_publish(status::PUBLISH_BAD_NAME, "wrong stream key")
        .expect("pending");
    let msgs = c.read(&sess.take_output());
    assert_eq!(msgs.len(), 1);
    let st = amf(&msgs[0]);
    assert_eq!(st[0], s("onStatus"));
    assert_eq!(st[3].get("level"), Some(&s("error")));
    assert_eq!(st[3].get("code"), Some(&s("NetStream.Publish.BadName")));
    assert_eq!(st[3].get("description"), Some(&s("wrong stream key")));
    assert_eq!(sess.state(), SessionState::Connected);
    // A client that sends media anyway is not heard.
    let input = c.message(6, 9, 1, 0, &[0x17, 1, 0, 0, 0, 1]);
    sess.handle_input(&input).expect("ignored");
    assert!(events(&mut sess).is_empty());
    assert_eq!(sess.reject_publish("x", "y"), Err(Error::NotPublishing));
}

#[test]
fn stopping_a_running_publish_for_an_unsupported_codec() {
    let (mut sess, mut c, _) = up_to_publish("KEY");
    sess.accept_publish().expect("pending");
    c.read(&sess.take_output());
    let input = c.message(6, 9, 1, 0, &[0x12, 1, 2, 3]);
    sess.handle_input(&input).expect("parsed");
    let evs = events(&mut sess);
    let Some(Event::Video(v)) = evs.get(2) else {
        panic!("{evs:?}")
    };
    let reason = format!("{} is not supported; send H.264", v.codec.name());
    sess.reject_publish(status::STREAM_FAILED, &reason)
        .expect("publishing");
    let msgs = c.read(&sess.take_output());
    assert_eq!(
        amf(&msgs[0])[3].get("description"),
        Some(&s("Sorenson H.263 is not supported; send H.264"))
    );
}

#[test]
fn media_before_the_answer_is_dropped() {
    let (mut sess, mut c, _) = up_to_publish("KEY");
    let input = c.message(6, 9, 1, 0, &[0x17, 0, 0, 0, 0, 1]);
    sess.handle_input(&input).expect("ignored");
    assert_eq!(events(&mut sess).len(), 2, "connect and publish only");
}

#[test]
fn media_on_another_stream_is_dropped() {
    let (mut sess, mut c, _) = up_to_publish("KEY");
    sess.accept_publish().expect("pending");
    let input = c.message(6, 9, 7, 0, &[0x17, 0, 0, 0, 0, 1]);
    sess.handle_input(&input).expect("ignored");
    let evs = events(&mut sess);
    assert!(!evs.iter().any(|e| matches!(e, Event::Video(_))));
}

#[test]
fn ping_request_gets_a_response_and_our_ping_a_pong() {
    let (mut sess, mut c, _) = up_to_publish("KEY");
    events(&mut sess);
    let input = c.message(2, 4, 0, 0, &[0, 6, 0xDE, 0xAD, 0xBE, 0xEF]);
    sess.handle_input(&input).expect("ok");
    let msgs = c.read(&sess.take_output());
    assert_eq!(
        (msgs[0].type_id, msgs[0].payload.clone()),
        (4, vec![0, 7, 0xDE, 0xAD, 0xBE, 0xEF])
    );
    sess.ping(42);
    let msgs = c.read(&sess.take_output());
    assert_eq!(msgs[0].payload, vec![0, 6, 0, 0, 0, 42]);
    let input = c.message(2, 4, 0, 0, &[0, 7, 0, 0, 0, 42]);
    sess.handle_input(&input).expect("ok");
    assert_eq!(events(&mut sess), vec![Event::Pong { timestamp: 42 }]);
}

#[test]
fn acknowledges_every_window() {
    let (mut sess, mut c, _) = up_to_publish("KEY");
    sess.accept_publish().expect("pending");
    c.read(&sess.take_output());
    let input = c.message(2, 5, 0, 0, &10_000u32.to_be_bytes());
    sess.handle_input(&input).expect("ok");
    let start = sess.bytes_received();
    let frame: Vec<u8> = [&[0x27u8, 1, 0, 0, 0][..], &[0u8; 3000]].concat();
    let mut acks = Vec::new();
    for i in 0..10u32 {
        let input = c.message(6, 9, 1, i * 33, &frame);
        sess.handle_input(&input).expect("ok");
        for m in c.read(&sess.take_output()) {
            assert_eq!(m.type_id, 3, "only acks");
            acks.push(u64::from(u32::from_be_bytes(
                m.payload[..4].try_into().unwrap(),
            )));
        }
    }
    assert!(sess.bytes_received() - start > 30_000);
    assert!(acks.len() >= 2, "{acks:?}");
    let mut prev = 0;
    for a in acks {
        // At least a window apart, and at most one input (3 KB) past it.
        assert!((10_000..13_100).contains(&(a - prev)), "{a} after {prev}");
        prev = a;
    }
    assert!(sess.bytes_received() - prev < 10_000);
}

#[test]
fn acknowledges_with_the_default_window_when_the_client_sets_none() {
    let (mut sess, mut c, _) = up_to_publish("KEY");
    sess.accept_publish().expect("pending");
    c.read(&sess.take_output());
    let frame: Vec<u8> = [&[0x27u8, 1, 0, 0, 0][..], &vec![0u8; 1_000_000]].concat();
    for i in 0..3u32 {
        let input = c.message(6, 9, 1, i * 33, &frame);
        sess.handle_input(&input).expect("ok");
    }
    let acks: Vec<_> = c
        .read(&sess.take_output())
        .into_iter()
        .filter(|m| m.type_id == 3)
        .collect();
    assert_eq!(acks.len(), 1);
}

#[test]
fn timestamps_unwrap_past_32_bits() {
    let (mut sess, mut c, _) = up_to_publish("KEY");
    sess.accept_publish().expect("pending");
    let mut input = Vec::new();
    for ts in [0xFFFF_FF00u32, 0xFFFF_FFE0, 0x10, 0x30] {
        input.extend(c.message(6, 9, 1, ts, &[0x27, 1, 0, 0, 0x21, 9]));
    }
    sess.handle_input(&input).expect("ok");
    let dts: Vec<(i64, i64)> = events(&mut sess)
        .into_iter()
        .filter_map(|e| match e {
            Event::Video(v) => Some((v.dts_ms, v.pts_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(
        dts,
        vec![
            (0xFFFF_FF00, 0xFFFF_FF21),
            (0xFFFF_FFE0, 0x1_0000_0001),
            (0x1_0000_0010, 0x1_0000_0031),
            (0x1_0000_0030, 0x1_0000_0051)
        ]
    );
}

#[test]
fn aggregate_messages_are_split_into_tags() {
    let (mut sess, mut c, _) = up_to_publish("KEY");
    sess.accept_publish().expect("pending");
    let tag = |t: u8, ts: u32, body: &[u8]| {
        let mut b = vec![t];
        b.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        b.extend_from_slice(&ts.to_be_bytes()[1..]);
        b.push((ts >> 24) as u8);
        b.extend_from_slice(&[0, 0, 0]);
        b.extend_from_slice(body);
        b.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        b
    };
    let mut agg = tag(9, 5000, &[0x17, 1, 0, 0, 0, 1]);
    agg.extend(tag(8, 5010, &[0xAF, 1, 2]));
    let input = c.message(6, 22, 1, 100, &agg);
    sess.handle_input(&input).expect("ok");
    let evs = events(&mut sess);
    assert!(matches!(&evs[2], Event::Video(v) if v.dts_ms == 100));
    assert!(matches!(&evs[3], Event::Audio(a) if a.dts_ms == 110));
    let input = c.message(6, 22, 1, 100, &agg[..agg.len() - 2]);
    assert_eq!(
        sess.handle_input(&input),
        Err(Error::Protocol(ProtocolError::BadAggregate))
    );
}

#[test]
fn unknown_commands_and_play_get_an_error_reply() {
    let (mut sess, mut c, _) = up_to_publish("KEY");
    let mut input = c.command(0, &[s("_checkbw"), n(9.0), Amf0Value::Null]);
    input.extend(c.command(1, &[s("play"), n(10.0), Amf0Value::Null, s("KEY")]));
    input.extend(c.command(0, &[s("setSomething"), n(0.0), Amf0Value::Null]));
    sess.handle_input(&input).expect("ok");
    let msgs = c.read(&sess.take_output());
    assert_eq!(msgs.len(), 2);
    let e = amf(&msgs[0]);
    assert_eq!(e[..2], [s("_error"), n(9.0)]);
    assert_eq!(e[3].get("code"), Some(&s("NetConnection.Call.Failed")));
    let e = amf(&msgs[1]);
    assert_eq!(
        e[3].get("description"),
        Some(&s("this server only takes publishers"))
    );
}

#[test]
fn enhanced_rtmp_fourcc_list_is_echoed_for_known_codecs() {
    let mut sess = Session::new(Config::default(), Instant::now());
    let mut c = Client::new();
    let mut values = connect_values();
    if let Amf0Value::Object(props) = &mut values[2] {
        props.push((
            "fourCcList".into(),
            Amf0Value::StrictArray(vec![s("av01"), s("vp09"), s("hvc1"), s("xxxx")]),
        ));
    }
    let mut input = handshake();
    input.extend(c.command(0, &values));
    sess.handle_input(&input).expect("ok");
    let msgs = c.read(&sess.take_output());
    let result = amf(&msgs[3]);
    assert_eq!(
        result[2].get("fourCcList"),
        Some(&Amf0Value::StrictArray(vec![
            s("av01"),
            s("vp09"),
            s("hvc1")
        ]))
    );
}

#[test]
fn flow_violations_are_errors_and_the_session_stays_failed() {
    let mut c = Client::new();
    let mut sess = Session::new(Config::default(), Instant::now());
    let mut input = handshake();
    input.extend(c.command(0, &[s("createStream"), n(2.0), Amf0Value::Null]));
    assert_eq!(
        sess.handle_input(&input),
        Err(Error::Protocol(ProtocolError::BeforeConnect(
            "createStream".into()
        )))
    );
    assert_eq!(sess.state(), SessionState::Failed);
    assert_eq!(sess.handle_input(&[0]), Err(Error::Failed));

    let (mut sess, mut c, _) = up_to_publish("KEY");
    let input = c.command(
        1,
        &[s("publish"), n(6.0), Amf0Value::Null, s("KEY2"), s("live")],
    );
    assert_eq!(
        sess.handle_input(&input),
        Err(Error::Protocol(ProtocolError::AlreadyPublishing))
    );

    let (mut sess, mut c, _) = up_to_publish("KEY");
    let input = c.command(0, &connect_values());
    assert_eq!(
        sess.handle_input(&input),
        Err(Error::Protocol(ProtocolError::DuplicateConnect))
    );

    let mut c = Client::new();
    let mut sess = Session::new(Config::default(), Instant::now());
    let mut input = handshake();
    input.extend(c.command(0, &connect_values()));
    input.extend(c.command(3, &[s("publish"), n(2.0), Amf0Value::Null, s("K")]));
    assert_eq!(
        sess.handle_input(&input),
        Err(Error::Protocol(ProtocolError::UnknownStream(3)))
    );

    let mut c = Client::new();
    let mut sess = Session::new(Config::default(), Instant::now());
    let mut input = handshake();
    input.extend(c.command(0, &[s("connect"), n(1.0), Amf0Value::Object(vec![])]));
    assert_eq!(
        sess.handle_input(&input),
        Err(Error::Protocol(ProtocolError::MissingApp))
    );

    let mut c = Client::new();
    let mut sess = Session::new(Config::default(), Instant::now());
    let mut input = handshake();
    input.extend(c.command(0, &connect_values()));
    for i in 0..9 {
        input.extend(c.command(
            0,
            &[s("createStream"), n(2.0 + f64::from(i)), Amf0Value::Null],
        ));
    }
    assert_eq!(
        sess.handle_input(&input),
        Err(Error::Protocol(ProtocolError::TooManyStreams { max: 8 }))
    );
}

#[test]
fn handshake_state_and_timeouts() {
    let t0 = Instant::now();
    let mut sess = Session::new(Config::default(), t0);
    assert_eq!(
        sess.state(),
        SessionState::Handshake(HandshakeState::AwaitingC0)
    );
    assert_eq!(sess.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    sess.handle_input(&handshake()[..100]).expect("partial");
    assert_eq!(
        sess.state(),
        SessionState::Handshake(HandshakeState::AwaitingC1)
    );
    assert!(!sess.is_handshake_done());
    sess.handle_timeout(t0 + Duration::from_secs(9))
        .expect("not yet");
    assert_eq!(
        sess.handle_timeout(t0 + Duration::from_secs(10)),
        Err(Error::HandshakeTimeout(Duration::from_secs(10)))
    );
    assert_eq!(sess.state(), SessionState::Failed);
    assert_eq!(sess.poll_timeout(), None);

    let mut sess = Session::new(Config::default(), t0);
    sess.handle_input(&handshake()).expect("done");
    assert!(sess.is_handshake_done());
    assert_eq!(sess.state(), SessionState::AwaitingConnect);
    assert_eq!(sess.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    sess.handle_timeout(t0 + Duration::from_secs(29))
        .expect("not yet");
    assert_eq!(
        sess.handle_timeout(t0 + Duration::from_secs(31)),
        Err(Error::PublishTimeout(Duration::from_secs(30)))
    );

    let (sess, _, _) = up_to_publish("KEY");
    assert_eq!(sess.poll_timeout(), None, "publish seen: no deadline");
}

#[test]
fn setup_bytes_are_bounded() {
    let config = Config {
        max_setup_bytes: 5000,
        ..Config::default()
    };
    let mut sess = Session::new(config, Instant::now());
    let mut c = Client::new();
    let mut input = handshake();
    input.extend(c.command(0, &connect_values()));
    sess.handle_input(&input).expect("fits");
    let junk = c.command(0, &[s("noise"), n(0.0), s(&"x".repeat(3000))]);
    assert_eq!(
        sess.handle_input(&junk),
        Err(Error::SetupTooLarge { max: 5000 })
    );
    assert!(sess.bytes_received() > 5000);
    assert_eq!(CLIENT_HANDSHAKE_LEN, 3073);
}

/// The order librtmp-based encoders (OBS) use: Set Chunk Size before
/// `connect`, a connect object with the Flash-era fields, then HEVC in
/// Enhanced RTMP tags with large frames and timestamps past 0xFFFFFF.
#[test]
fn obs_style_flow_with_enhanced_hevc() {
    let mut sess = Session::new(Config::default(), Instant::now());
    let mut c = Client::new();
    let mut input = handshake();
    input.extend(c.set_chunk_size(4096));
    input.extend(c.command(
        0,
        &[
            s("connect"),
            n(1.0),
            Amf0Value::Object(vec![
                ("app".into(), s("live")),
                ("type".into(), s("nonprivate")),
                ("flashVer".into(), s("FMLE/3.0 (compatible; FMSc/1.0)")),
                ("swfUrl".into(), s("rtmp://example.test/live")),
                ("tcUrl".into(), s("rtmp://example.test/live")),
                ("fpad".into(), Amf0Value::Boolean(false)),
                ("capabilities".into(), n(15.0)),
                ("audioCodecs".into(), n(3191.0)),
                ("videoCodecs".into(), n(252.0)),
                ("videoFunction".into(), n(1.0)),
                (
                    "fourCcList".into(),
                    Amf0Value::StrictArray(vec![s("hvc1"), s("av01")]),
                ),
            ]),
        ],
    ));
    input.extend(c.command(
        0,
        &[s("releaseStream"), n(2.0), Amf0Value::Null, s("obs-key")],
    ));
    input.extend(c.command(0, &[s("FCPublish"), n(3.0), Amf0Value::Null, s("obs-key")]));
    input.extend(c.command(0, &[s("createStream"), n(4.0), Amf0Value::Null]));
    sess.handle_input(&input).expect("accepted");
    c.read(&sess.take_output());
    let input = c.command(
        1,
        &[
            s("publish"),
            n(5.0),
            Amf0Value::Null,
            s("obs-key"),
            s("live"),
        ],
    );
    sess.handle_input(&input).expect("accepted");
    sess.accept_publish().expect("pending");

    let mut input = Vec::new();
    let mut seq = vec![0x90];
    seq.extend_from_slice(b"hvc1");
    seq.extend_from_slice(&[1, 2, 3, 4]);
    let base = 0x00FF_FFF0u32; // crosses the extended-timestamp threshold
    input.extend(c.message(6, 9, 1, base, &seq));
    for i in 0..5u32 {
        let mut frame = vec![if i == 0 { 0x91 } else { 0xA1 }];
        frame.extend_from_slice(b"hvc1");
        frame.extend_from_slice(&[0, 0, 66]); // cts 66
        frame.extend(std::iter::repeat_n(i as u8, 10_000));
        input.extend(c.message(6, 9, 1, base + i * 33, &frame));
    }
    for piece in input.chunks(1000) {
        sess.handle_input(piece).expect("accepted");
    }
    let videos: Vec<FlvVideo> = events(&mut sess)
        .into_iter()
        .filter_map(|e| match e {
            Event::Video(v) => Some(v),
            _ => None,
        })
        .collect();
    assert_eq!(videos.len(), 6);
    assert_eq!(
        (videos[0].codec, videos[0].kind),
        (VideoCodec::Hevc, VideoPacketKind::SequenceHeader)
    );
    for (i, v) in videos[1..].iter().enumerate() {
        let dts = i64::from(base) + 33 * i as i64;
        assert_eq!((v.dts_ms, v.pts_ms), (dts, dts + 66));
        assert_eq!(v.data.len(), 10_000);
        assert_eq!(v.frame_type.is_keyframe(), i == 0);
        assert!(v.enhanced);
    }
}
