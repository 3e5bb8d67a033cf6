//! Forwarding with real str0m on every side and no socket: a publishing
//! `Rtc` (WHIP client) and a viewing `Rtc` (WHEP client, offering
//! `recvonly`) talk to the table's ICE-lite answerers in memory.

use super::super::*;
use str0m::media::{Direction, Pt};
use str0m::{Candidate, RtcConfig};

const SERVER: &str = "127.0.0.1:8189";
const TIMEOUT: Duration = Duration::from_secs(5);

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn config() -> RtcConfig {
    RtcConfig::new()
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .set_stats_interval(None)
}

/// A client at `at` offering video and audio in `dir`, and the server's
/// accepted `Rtc` for it.
fn pair(now: Instant, at: SocketAddr, dir: Direction) -> (Rtc, Mid, Mid, Rtc) {
    let mut client = config().build(now);
    client.add_local_candidate(Candidate::host(at, "udp").expect("candidate"));
    let mut api = client.sdp_api();
    let video = api.add_media(MediaKind::Video, dir, None, None, None);
    let audio = api.add_media(MediaKind::Audio, dir, None, None, None);
    let (offer, pending) = api.apply().expect("offer");
    let mut server = config()
        .set_ice_lite(true)
        .set_send_buffer_video(SEND_BUFFER_VIDEO)
        .set_send_buffer_audio(SEND_BUFFER_AUDIO)
        .build(now);
    server.add_local_candidate(Candidate::host(addr(SERVER), "udp").expect("candidate"));
    let answer = server.sdp_api().accept_offer(offer).expect("answer");
    client
        .sdp_api()
        .accept_answer(pending, answer)
        .expect("accepted");
    (client, video, audio, server)
}

/// What a client saw.
#[derive(Default, Debug)]
struct Seen {
    keyframe_requests: usize,
    media: Vec<(MediaKind, bool, Vec<u8>)>,
}

struct Client {
    rtc: Rtc,
    at: SocketAddr,
    video: Mid,
    audio: Mid,
    seen: Seen,
    /// Lose this many of the next datagrams to this client that are longer
    /// than 1,000 bytes.
    lose: usize,
    /// Stopped: reads nothing, sends nothing.
    frozen: bool,
}

/// One 10 ms step of every client and the table; returns the table's
/// events other than datagrams.
fn step(clients: &mut [Client], table: &mut Table, now: &mut Instant) -> Vec<Out> {
    let mut out = Vec::new();
    for c in clients.iter_mut().filter(|c| !c.frozen) {
        loop {
            match c.rtc.poll_output().expect("client output") {
                Output::Timeout(_) => break,
                Output::Transmit(t) => {
                    table.receive(*now, c.at, addr(SERVER), &t.contents, &mut out);
                }
                Output::Event(Event::KeyframeRequest(_)) => c.seen.keyframe_requests += 1,
                Output::Event(Event::MediaData(d)) => {
                    let kind = if d.mid == c.video {
                        MediaKind::Video
                    } else {
                        MediaKind::Audio
                    };
                    c.seen.media.push((kind, d.is_keyframe(), d.data.to_vec()));
                }
                Output::Event(_) => {}
            }
        }
    }
    table.tick(*now, &mut out);
    let mut rest = Vec::new();
    for o in out {
        match o {
            Out::Transmit {
                destination,
                contents,
            } => {
                let Some(c) = clients.iter_mut().find(|c| c.at == destination) else {
                    continue;
                };
                if c.frozen {
                    continue;
                }
                if c.lose > 0 && contents.len() > 1000 {
                    c.lose -= 1;
                    continue;
                }
                let input = Input::Receive(
                    *now,
                    Receive {
                        proto: Protocol::Udp,
                        source: addr(SERVER),
                        destination,
                        contents: contents.as_slice().try_into().expect("datagram"),
                    },
                );
                c.rtc.handle_input(input).expect("client input");
            }
            other => rest.push(other),
        }
    }
    *now += Duration::from_millis(10);
    for c in clients.iter_mut().filter(|c| !c.frozen) {
        c.rtc.handle_input(Input::Timeout(*now)).expect("timeout");
    }
    rest
}

fn run(clients: &mut [Client], table: &mut Table, now: &mut Instant, steps: usize) -> Vec<Out> {
    let mut events = Vec::new();
    for _ in 0..steps {
        events.extend(step(clients, table, now));
    }
    events
}

/// An IDR access unit in Annex B (SPS, PPS, IDR slice), tagged with `tag`.
fn idr(tag: u8) -> Vec<u8> {
    let mut v = Vec::new();
    for nal in [
        &[0x67u8, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5][..],
        &[0x68, 0xce, 0x3c, 0x80][..],
        &[0x65, 0x88, 0x84, 0x00, 0x33, 0xff, tag][..],
    ] {
        v.extend_from_slice(&[0, 0, 0, 1]);
        v.extend_from_slice(nal);
    }
    v
}

fn p_slice(tag: u8) -> Vec<u8> {
    vec![0, 0, 0, 1, 0x41, 0x9a, 0x02, 0x03, tag]
}

fn pt_of(rtc: &mut Rtc, mid: Mid, codec: Codec) -> Pt {
    let w = rtc.writer(mid).expect("writer");
    let pt = w
        .payload_params()
        .find(|p| p.spec().codec == codec)
        .expect("negotiated")
        .pt();
    pt
}

fn send(c: &mut Client, now: Instant, kind: MediaKind, ticks: u64, data: &[u8]) {
    let (mid, codec, time) = match kind {
        MediaKind::Video => (c.video, Codec::H264, MediaTime::from_90khz(ticks)),
        MediaKind::Audio => (
            c.audio,
            Codec::Opus,
            MediaTime::new(ticks, str0m::media::Frequency::FORTY_EIGHT_KHZ),
        ),
    };
    let pt = pt_of(&mut c.rtc, mid, codec);
    c.rtc
        .writer(mid)
        .expect("writer")
        .write(pt, now, time, data)
        .expect("write");
}

fn video_of(c: &Client) -> Vec<Vec<u8>> {
    c.seen
        .media
        .iter()
        .filter(|m| m.0 == MediaKind::Video)
        .map(|m| m.2.clone())
        .collect()
}

fn client(rtc: Rtc, at: SocketAddr, video: Mid, audio: Mid) -> Client {
    Client {
        rtc,
        at,
        video,
        audio,
        seen: Seen::default(),
        lose: 0,
        frozen: false,
    }
}

#[test]
fn viewers_get_the_publishers_media_from_a_keyframe_on_and_end_with_it() {
    let mut now = Instant::now();
    let ats = [
        addr("127.0.0.1:50001"),
        addr("127.0.0.1:50002"),
        addr("127.0.0.1:50003"),
    ];
    let (p, p_video, p_audio, p_server) = pair(now, ats[0], Direction::SendOnly);
    let (v, v_video, v_audio, v_server) = pair(now, ats[1], Direction::RecvOnly);
    let mut table = Table::new(TIMEOUT);
    let mut out = Vec::new();
    table.insert(1, p_server, now, &mut out);
    table.insert_as(2, Role::Viewer(1), v_server, now, &mut out);
    assert_eq!(table.viewers_of(1), 1);
    let mut clients = vec![
        client(p, ats[0], p_video, p_audio),
        client(v, ats[1], v_video, v_audio),
    ];
    let events = run(&mut clients, &mut table, &mut now, 300);
    for id in [1, 2] {
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Out::Connected(i, _) if *i == id)),
            "{id} connected: {events:?}"
        );
    }

    // Video and audio reach the viewer as sent.
    send(&mut clients[0], now, MediaKind::Video, 90_000, &idr(1));
    run(&mut clients, &mut table, &mut now, 20);
    send(&mut clients[0], now, MediaKind::Video, 93_000, &p_slice(2));
    send(
        &mut clients[0],
        now,
        MediaKind::Audio,
        48_000,
        &[0xfc, 1, 2, 3],
    );
    run(&mut clients, &mut table, &mut now, 20);
    assert_eq!(video_of(&clients[1]), vec![idr(1), p_slice(2)]);
    assert!(
        clients[1]
            .seen
            .media
            .iter()
            .any(|m| m.0 == MediaKind::Audio && m.2 == [0xfc, 1, 2, 3]),
        "audio forwarded: {:?}",
        clients[1].seen.media
    );

    // A second viewer joins mid-stream: the publisher is asked for a
    // keyframe (it had one already, so only the join asks).
    let asked = clients[0].seen.keyframe_requests;
    let (w, w_video, w_audio, w_server) = pair(now, ats[2], Direction::RecvOnly);
    table.insert_as(3, Role::Viewer(1), w_server, now, &mut out);
    clients.push(client(w, ats[2], w_video, w_audio));
    let events = run(&mut clients, &mut table, &mut now, 300);
    assert!(
        events.iter().any(|e| matches!(e, Out::Connected(3, _))),
        "{events:?}"
    );
    assert!(
        clients[0].seen.keyframe_requests > asked,
        "a PLI for the new viewer"
    );
    // It starts at the next keyframe; the first viewer gets everything.
    send(&mut clients[0], now, MediaKind::Video, 96_000, &p_slice(3));
    run(&mut clients, &mut table, &mut now, 20);
    send(&mut clients[0], now, MediaKind::Video, 99_000, &idr(4));
    run(&mut clients, &mut table, &mut now, 20);
    send(&mut clients[0], now, MediaKind::Video, 102_000, &p_slice(5));
    run(&mut clients, &mut table, &mut now, 20);
    assert_eq!(
        video_of(&clients[1]),
        vec![idr(1), p_slice(2), p_slice(3), idr(4), p_slice(5)]
    );
    assert_eq!(video_of(&clients[2]), vec![idr(4), p_slice(5)]);
    assert_eq!(table.dropped(), 0);

    // A viewer asks for a keyframe (PLI): the publisher is asked.
    let asked = clients[0].seen.keyframe_requests;
    {
        let v = &mut clients[1];
        let mut w = v.rtc.writer(v.video).expect("viewer writer");
        assert!(w.is_request_keyframe_possible(KeyframeRequestKind::Pli));
        w.request_keyframe(None, KeyframeRequestKind::Pli)
            .expect("PLI");
    }
    run(&mut clients, &mut table, &mut now, 60);
    assert!(
        clients[0].seen.keyframe_requests > asked,
        "the viewer's PLI reached the publisher"
    );

    // The publisher goes: both viewers are freed.
    let mut out = Vec::new();
    assert!(table.remove(1, &mut out));
    let events = run(&mut clients, &mut table, &mut now, 2);
    for id in [2, 3] {
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Out::Closed(i, Closed::SourceEnded) if *i == id)),
            "{events:?}"
        );
    }
    assert!(table.is_empty());
}

#[test]
fn a_viewer_of_no_publisher_is_freed_at_once() {
    let now = Instant::now();
    let (_c, _v, _a, server) = pair(now, addr("127.0.0.1:50003"), Direction::RecvOnly);
    let mut table = Table::new(TIMEOUT);
    let mut out = Vec::new();
    table.insert_as(5, Role::Viewer(4), server, now, &mut out);
    assert!(table.next_wake().is_some_and(|w| w <= now));
    table.tick(now, &mut out);
    assert!(table.is_empty());
    assert!(out
        .iter()
        .any(|e| matches!(e, Out::Closed(5, Closed::SourceEnded))));
}

#[test]
fn a_packet_lost_on_the_way_to_a_viewer_is_resent_when_it_nacks() {
    let mut now = Instant::now();
    let (p_at, v_at) = (addr("127.0.0.1:50011"), addr("127.0.0.1:50012"));
    let (p, p_video, p_audio, p_server) = pair(now, p_at, Direction::SendOnly);
    let (v, v_video, v_audio, v_server) = pair(now, v_at, Direction::RecvOnly);
    let mut table = Table::new(TIMEOUT);
    let mut out = Vec::new();
    table.insert(1, p_server, now, &mut out);
    table.insert_as(2, Role::Viewer(1), v_server, now, &mut out);
    let mut clients = vec![
        client(p, p_at, p_video, p_audio),
        client(v, v_at, v_video, v_audio),
    ];
    run(&mut clients, &mut table, &mut now, 300);
    send(&mut clients[0], now, MediaKind::Video, 90_000, &idr(1));
    run(&mut clients, &mut table, &mut now, 20);
    // A 4,000-byte frame: four packets; the first two to the viewer are lost.
    let mut big = p_slice(2);
    big.extend((0..4000u32).map(|i| (i % 251) as u8 | 1));
    clients[1].lose = 2;
    send(&mut clients[0], now, MediaKind::Video, 93_000, &big);
    run(&mut clients, &mut table, &mut now, 100);
    assert_eq!(clients[1].lose, 0, "two packets were lost");
    // The viewer NACKs; the table answers from its send buffer (RTX).
    let got = video_of(&clients[1]);
    let sizes: Vec<usize> = got.iter().map(Vec::len).collect();
    assert!(got == vec![idr(1), big], "frames of {sizes:?} bytes");
}

#[test]
fn a_viewer_that_stops_reading_is_freed_and_the_others_play_on() {
    let mut now = Instant::now();
    let ats = [
        addr("127.0.0.1:50021"),
        addr("127.0.0.1:50022"),
        addr("127.0.0.1:50023"),
    ];
    let (p, p_video, p_audio, p_server) = pair(now, ats[0], Direction::SendOnly);
    let mut table = Table::new(TIMEOUT);
    let mut out = Vec::new();
    table.insert(1, p_server, now, &mut out);
    let mut clients = vec![client(p, ats[0], p_video, p_audio)];
    for (k, at) in ats.iter().enumerate().skip(1) {
        let (v, v_video, v_audio, v_server) = pair(now, *at, Direction::RecvOnly);
        table.insert_as(k as u64 + 1, Role::Viewer(1), v_server, now, &mut out);
        clients.push(client(v, *at, v_video, v_audio));
    }
    run(&mut clients, &mut table, &mut now, 300);
    assert_eq!(table.viewers_of(1), 2);
    // Viewer 3 stops; the publisher sends 7 s of frames (10 a second).
    clients[2].frozen = true;
    let mut sent = Vec::new();
    let mut events = Vec::new();
    for k in 0..70u8 {
        let frame = if k % 30 == 0 { idr(k) } else { p_slice(k) };
        send(
            &mut clients[0],
            now,
            MediaKind::Video,
            90_000 + 9_000 * u64::from(k),
            &frame,
        );
        sent.push(frame);
        events.extend(run(&mut clients, &mut table, &mut now, 10));
    }
    // Freed when silent for the time-out; the other viewer got every frame.
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Out::Closed(3, Closed::Gone))),
        "{events:?}"
    );
    assert_eq!(table.viewers_of(1), 1);
    assert!(video_of(&clients[1]) == sent, "every frame, in order");
    assert!(table.contains(1) && table.contains(2));
}

fn fed(
    kind: crate::media::live::RtcKind,
    time: u64,
    keyframe: bool,
    data: &[u8],
) -> crate::media::live::RtcFrame {
    crate::media::live::RtcFrame {
        kind,
        time,
        keyframe,
        data: bytes::Bytes::copy_from_slice(data),
    }
}

#[test]
fn a_fed_sources_viewer_starts_at_the_next_keyframe_and_ends_with_it() {
    use crate::media::live::RtcKind;
    let mut now = Instant::now();
    let at = addr("127.0.0.1:50011");
    let (v, v_video, v_audio, v_server) = pair(now, at, Direction::RecvOnly);
    let mut table = Table::new(TIMEOUT);
    let mut out = Vec::new();
    table.insert_fed(1);
    table.insert_as(2, Role::Viewer(1), v_server, now, &mut out);
    assert_eq!(table.viewers_of(1), 1);
    let mut clients = vec![client(v, at, v_video, v_audio)];
    let events = run(&mut clients, &mut table, &mut now, 300);
    assert!(
        events.iter().any(|e| matches!(e, Out::Connected(2, _))),
        "connected: {events:?}"
    );

    // Joined mid-GOP: nothing is asked of the source; the delta frame
    // before the next keyframe is skipped, the audio is not.
    assert!(table.feed(
        1,
        &fed(RtcKind::Video, 3_000, false, &p_slice(0)),
        now,
        &mut out
    ));
    assert!(table.feed(
        1,
        &fed(RtcKind::Audio, 960, false, &[0xfc, 9]),
        now,
        &mut out
    ));
    run(&mut clients, &mut table, &mut now, 10);
    table.feed(1, &fed(RtcKind::Video, 6_000, true, &idr(1)), now, &mut out);
    table.feed(
        1,
        &fed(RtcKind::Video, 9_000, false, &p_slice(2)),
        now,
        &mut out,
    );
    run(&mut clients, &mut table, &mut now, 20);
    assert_eq!(video_of(&clients[0]), vec![idr(1), p_slice(2)]);
    assert!(
        clients[0]
            .seen
            .media
            .iter()
            .any(|m| m.0 == MediaKind::Audio && m.2 == [0xfc, 9]),
        "audio fed: {:?}",
        clients[0].seen.media
    );
    assert_eq!(clients[0].seen.keyframe_requests, 0);
    assert!(!table.feed(7, &fed(RtcKind::Video, 0, true, &idr(3)), now, &mut out));

    // The pipeline stops: the source goes, its viewer is freed.
    assert!(table.remove(1, &mut out));
    assert!(!table.is_fed(1));
    let events = run(&mut clients, &mut table, &mut now, 2);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Out::Closed(2, Closed::SourceEnded))),
        "{events:?}"
    );
    assert!(table.is_empty());
}
