//! The table with real str0m on both sides and no socket: a publishing
//! `Rtc` (full ICE, the offerer) and the table's ICE-lite answerer exchange
//! datagrams in memory, on a clock the test moves.

use super::*;
use str0m::media::Direction;
use str0m::{Candidate, RtcConfig};

const SERVER: &str = "127.0.0.1:8189";
const CLIENT: &str = "127.0.0.1:50000";
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

/// A publisher offering H.264 and the server's accepted `Rtc` for it.
fn pair(now: Instant) -> (Rtc, Mid, Rtc) {
    pair_at(now, addr(CLIENT))
}

/// [`pair`] for a publisher at `client`.
fn pair_at(now: Instant, client_addr: SocketAddr) -> (Rtc, Mid, Rtc) {
    let mut client = config().build(now);
    client.add_local_candidate(Candidate::host(client_addr, "udp").expect("candidate"));
    let mut api = client.sdp_api();
    let mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().expect("offer");
    let mut server = config().set_ice_lite(true).build(now);
    server.add_local_candidate(Candidate::host(addr(SERVER), "udp").expect("candidate"));
    let answer = server.sdp_api().accept_offer(offer).expect("answer");
    client
        .sdp_api()
        .accept_answer(pending, answer)
        .expect("accepted");
    (client, mid, server)
}

/// Drains the client, delivering its datagrams to the table; returns how
/// many keyframe requests (PLI) the client was given.
fn client_to_table(client: &mut Rtc, table: &mut Table, now: Instant, out: &mut Vec<Out>) -> usize {
    let mut requests = 0;
    loop {
        match client.poll_output().expect("client output") {
            Output::Timeout(_) => return requests,
            Output::Transmit(t) => {
                assert_eq!(t.destination, addr(SERVER));
                table.receive(now, addr(CLIENT), addr(SERVER), &t.contents, out);
            }
            Output::Event(Event::KeyframeRequest(r)) => {
                assert_eq!(r.kind, KeyframeRequestKind::Pli);
                requests += 1;
            }
            Output::Event(_) => {}
        }
    }
}

/// Delivers the table's datagrams to the client; returns the rest.
fn table_to_client(client: &mut Rtc, now: Instant, out: &mut Vec<Out>) -> Vec<Out> {
    let mut rest = Vec::new();
    for o in out.drain(..) {
        match o {
            Out::Transmit {
                destination,
                contents,
            } => {
                assert_eq!(destination, addr(CLIENT));
                let input = Input::Receive(
                    now,
                    Receive {
                        proto: Protocol::Udp,
                        source: addr(SERVER),
                        destination: addr(CLIENT),
                        contents: contents.as_slice().try_into().expect("datagram"),
                    },
                );
                client.handle_input(input).expect("client input");
            }
            other => rest.push(other),
        }
    }
    rest
}

/// Runs both sides for `steps` of 10 ms; returns the table's events and
/// the keyframe requests the client got.
fn run(client: &mut Rtc, table: &mut Table, now: &mut Instant, steps: usize) -> (Vec<Out>, usize) {
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut requests = 0;
    for _ in 0..steps {
        requests += client_to_table(client, table, *now, &mut out);
        table.tick(*now, &mut out);
        events.extend(table_to_client(client, *now, &mut out));
        *now += Duration::from_millis(10);
        client
            .handle_input(Input::Timeout(*now))
            .expect("client timeout");
    }
    (events, requests)
}

/// An IDR access unit in Annex B: SPS, PPS and an IDR slice (contents are
/// not decoded here, only the NAL types matter).
fn idr() -> Vec<u8> {
    let mut v = Vec::new();
    for nal in [
        &[0x67u8, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5][..],
        &[0x68, 0xce, 0x3c, 0x80][..],
        &[0x65, 0x88, 0x84, 0x00, 0x33, 0xff][..],
    ] {
        v.extend_from_slice(&[0, 0, 0, 1]);
        v.extend_from_slice(nal);
    }
    v
}

#[test]
fn a_publisher_connects_through_the_table_and_its_frames_come_out() {
    let mut now = Instant::now();
    let (mut client, mid, server) = pair(now);
    let mut table = Table::new(TIMEOUT);
    let mut out = Vec::new();
    table.insert(7, server, now, &mut out);
    assert!(out.is_empty(), "an ICE-lite answerer waits: {out:?}");
    assert_eq!(table.len(), 1);

    let (events, _) = run(&mut client, &mut table, &mut now, 300);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Out::Connected(7, p) if *p == addr(CLIENT))),
        "connected: {events:?}"
    );

    // A frame before any keyframe is not handed over; an IDR is.
    let pt = h264_pt(&mut client, mid);
    let p_slice = [0u8, 0, 0, 1, 0x41, 0x9a, 0x02, 0x03];
    let t0 = str0m::media::MediaTime::from_90khz(90_000);
    client
        .writer(mid)
        .expect("writer")
        .write(pt, now, t0, &p_slice[..])
        .expect("write");
    // 1 s without a keyframe: asked for one (PLI) at least twice.
    let (events, requests) = run(&mut client, &mut table, &mut now, 100);
    assert!(
        !events.iter().any(|e| matches!(e, Out::Frame(..))),
        "{events:?}"
    );
    assert!(requests >= 2, "{requests} keyframe requests");
    let t1 = str0m::media::MediaTime::from_90khz(93_000);
    client
        .writer(mid)
        .expect("writer")
        .write(pt, now, t1, &idr()[..])
        .expect("write");
    let (events, _) = run(&mut client, &mut table, &mut now, 30);
    let frames: Vec<&Frame> = events
        .iter()
        .filter_map(|e| match e {
            Out::Frame(7, f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 1, "{events:?}");
    assert!(frames[0].keyframe && frames[0].kind == MediaKind::Video);
    assert_eq!(&*frames[0].data, &idr()[..]);

    // A datagram from nobody's address, and not STUN, goes nowhere.
    let mut stray = Vec::new();
    assert!(!table.receive(
        now,
        addr("127.0.0.1:40000"),
        addr(SERVER),
        &[0x80; 40],
        &mut stray
    ));
    assert!(stray.is_empty());

    // The publisher falls silent: the session is freed after the time-out.
    let silent_until = now + TIMEOUT + Duration::from_millis(10);
    let mut out = Vec::new();
    while now < silent_until && !table.is_empty() {
        now += Duration::from_millis(100);
        table.tick(now, &mut out);
    }
    assert!(table.is_empty());
    assert!(
        out.iter()
            .any(|e| matches!(e, Out::Closed(7, Closed::Gone))),
        "{out:?}"
    );
}

#[test]
fn a_session_that_never_connects_is_freed_at_the_timeout_and_not_before() {
    let now = Instant::now();
    let (_client, _mid, server) = pair(now);
    let mut table = Table::new(TIMEOUT);
    let mut out = Vec::new();
    table.insert(1, server, now, &mut out);
    let wake = table.next_wake().expect("a wake-up");
    assert!(wake <= now + TIMEOUT);
    table.tick(now + TIMEOUT - Duration::from_millis(1), &mut out);
    assert_eq!(table.len(), 1);
    table.tick(now + TIMEOUT, &mut out);
    assert!(table.is_empty());
    assert!(
        out.iter()
            .any(|e| matches!(e, Out::Closed(1, Closed::ConnectTimeout))),
        "{out:?}"
    );
    assert_eq!(table.next_wake(), None);
}

#[test]
fn remove_frees_a_session_once() {
    let now = Instant::now();
    let (_client, _mid, server) = pair(now);
    let mut table = Table::new(TIMEOUT);
    let mut out = Vec::new();
    table.insert(3, server, now, &mut out);
    assert!(table.contains(3));
    assert!(table.remove(3, &mut out));
    assert!(!table.remove(3, &mut out));
    assert!(table.is_empty());
}

/// The H.264 payload type the publisher negotiated.
fn h264_pt(client: &mut Rtc, mid: Mid) -> str0m::media::Pt {
    let w = client.writer(mid).expect("writer");
    let pt = w
        .payload_params()
        .find(|p| p.spec().codec == Codec::H264)
        .expect("H.264 negotiated")
        .pt();
    pt
}

#[test]
fn two_publishers_on_one_socket_each_reach_their_own_session() {
    let mut now = Instant::now();
    let addrs = [addr("127.0.0.1:50001"), addr("127.0.0.1:50002")];
    let mut table = Table::new(TIMEOUT);
    let mut out = Vec::new();
    let mut clients = Vec::new();
    for (k, a) in addrs.iter().enumerate() {
        let (client, mid, server) = pair_at(now, *a);
        table.insert(k as u64 + 1, server, now, &mut out);
        clients.push((client, mid));
    }
    // Both sides of both sessions, in memory: the table's datagrams go to
    // the client they are addressed to.
    let step = |clients: &mut Vec<(Rtc, Mid)>, table: &mut Table, now: &mut Instant| {
        let mut out = Vec::new();
        for (k, (client, _)) in clients.iter_mut().enumerate() {
            loop {
                match client.poll_output().expect("client output") {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        table.receive(*now, addrs[k], addr(SERVER), &t.contents, &mut out);
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
                    let k = addrs
                        .iter()
                        .position(|a| *a == destination)
                        .expect("a client's address");
                    let input = Input::Receive(
                        *now,
                        Receive {
                            proto: Protocol::Udp,
                            source: addr(SERVER),
                            destination,
                            contents: contents.as_slice().try_into().expect("datagram"),
                        },
                    );
                    clients[k].0.handle_input(input).expect("client input");
                }
                other => rest.push(other),
            }
        }
        *now += Duration::from_millis(10);
        for (client, _) in clients.iter_mut() {
            client.handle_input(Input::Timeout(*now)).expect("timeout");
        }
        rest
    };
    let mut events = Vec::new();
    for _ in 0..300 {
        events.extend(step(&mut clients, &mut table, &mut now));
    }
    for (k, a) in addrs.iter().enumerate() {
        let id = k as u64 + 1;
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Out::Connected(i, p) if *i == id && p == a)),
            "session {id} connected from {a}: {events:?}"
        );
    }
    // Each sends its own keyframe; each comes out of its own session.
    for (k, (client, mid)) in clients.iter_mut().enumerate() {
        let pt = h264_pt(client, *mid);
        let mut au = idr();
        au.push(k as u8 + 1);
        client
            .writer(*mid)
            .expect("writer")
            .write(
                pt,
                now,
                str0m::media::MediaTime::from_90khz(90_000),
                &au[..],
            )
            .expect("write");
    }
    let mut events = Vec::new();
    for _ in 0..30 {
        events.extend(step(&mut clients, &mut table, &mut now));
    }
    for id in [1u64, 2] {
        let frames: Vec<&Frame> = events
            .iter()
            .filter_map(|e| match e {
                Out::Frame(i, f) if *i == id => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(frames.len(), 1, "session {id}: {events:?}");
        assert_eq!(frames[0].data.last(), Some(&(id as u8)), "its own frame");
    }
}
