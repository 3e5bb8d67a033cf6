//! An upstream (this node's WHEP client) against an owner's table with real
//! str0m on both sides and no socket: the table's ICE-lite viewer answers
//! the upstream's offer, datagrams go between them in memory, on a clock
//! the test moves.

use super::*;
use crate::media::live::{RtcFrame, RtcKind};
use crate::webrtc::table::{Out, Role, Table, SEND_BUFFER_AUDIO, SEND_BUFFER_VIDEO};
use str0m::change::SdpOffer;

const OWNER: &str = "127.0.0.1:8189";
const RELAY: &str = "127.0.0.1:50020";
const TIMEOUT: Duration = Duration::from_secs(5);

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// The owner's table with a fed source (1) and the upstream's viewer (2),
/// the upstream's offer answered by it.
fn owner_and_upstream(now: Instant) -> (Table, Upstream, Vec<Out>) {
    let offered = Upstream::offer(addr(RELAY), TIMEOUT, now).expect("offer");
    let offer = SdpOffer::from_sdp_string(&offered.offer).expect("an SDP offer");
    let mut viewer = Rtc::builder()
        .set_ice_lite(true)
        .clear_codecs()
        .enable_h264(true)
        .enable_vp8(true)
        .enable_opus(true, false)
        .set_send_buffer_video(SEND_BUFFER_VIDEO)
        .set_send_buffer_audio(SEND_BUFFER_AUDIO)
        .set_stats_interval(None)
        .build(now);
    viewer.add_local_candidate(Candidate::host(addr(OWNER), "udp").expect("candidate"));
    let answer = viewer
        .sdp_api()
        .accept_offer(offer)
        .expect("the owner takes the upstream's offer")
        .to_sdp_string();
    assert!(answer.contains("a=sendonly"), "{answer}");
    let mut upstream = offered.upstream;
    upstream
        .accept(offered.pending, &answer, now)
        .expect("the owner's answer");
    let mut table = Table::new(TIMEOUT);
    let mut out = Vec::new();
    table.insert_fed(1);
    table.insert_as(2, Role::Viewer(1), viewer, now, &mut out);
    (table, upstream, out)
}

/// One round: the upstream's datagrams to the table and back, 10 ms later.
/// Returns the table's other output (and [`Out::Connected`] of session 0
/// for the upstream connecting), the upstream's frames, and how the
/// upstream ended, if it did.
fn step(
    table: &mut Table,
    up: &mut Upstream,
    now: &mut Instant,
    out: &mut Vec<Out>,
) -> (Vec<Out>, Vec<Forward>, Option<UpEnd>) {
    let mut up_out = Vec::new();
    let mut ended = up.tick(*now, &mut up_out).err();
    let mut rest = Vec::new();
    let mut frames = Vec::new();
    for o in up_out.drain(..) {
        if let UpOut::Transmit {
            destination,
            contents,
        } = o
        {
            assert_eq!(destination, addr(OWNER));
            table.receive(*now, addr(RELAY), addr(OWNER), &contents, out);
        }
    }
    table.tick(*now, out);
    for o in out.drain(..) {
        match o {
            Out::Transmit {
                destination,
                contents,
            } => {
                assert_eq!(destination, addr(RELAY));
                if ended.is_none() {
                    ended = up.receive(*now, addr(OWNER), &contents, &mut up_out).err();
                }
            }
            other => rest.push(other),
        }
    }
    for o in up_out {
        match o {
            UpOut::Frame(f) => frames.push(f),
            UpOut::Transmit {
                destination,
                contents,
            } => {
                assert_eq!(destination, addr(OWNER));
                table.receive(*now, addr(RELAY), addr(OWNER), &contents, out);
            }
            UpOut::Connected => rest.push(Out::Connected(0, addr(OWNER))),
        }
    }
    *now += Duration::from_millis(10);
    (rest, frames, ended)
}

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

fn frame(kind: RtcKind, time: u64, keyframe: bool, data: Vec<u8>) -> RtcFrame {
    RtcFrame {
        kind,
        time,
        keyframe,
        data: bytes::Bytes::from(data),
    }
}

#[test]
fn an_upstream_connects_to_the_owner_gets_its_media_asks_for_keyframes_and_ends_with_it() {
    let mut now = Instant::now();
    let (mut table, mut up, mut out) = owner_and_upstream(now);
    let mut connected = false;
    for _ in 0..300 {
        let (rest, _, ended) = step(&mut table, &mut up, &mut now, &mut out);
        assert_eq!(ended, None);
        connected |= rest.iter().any(|o| matches!(o, Out::Connected(2, _)));
        if connected {
            break;
        }
    }
    assert!(
        connected,
        "ICE and DTLS up between the upstream and the owner"
    );
    // The viewer (the relay) connecting makes the owner's table want a
    // keyframe of its source.
    assert_eq!(table.take_keyframe_wants(), vec![1]);

    // The owner's media comes out of the upstream as it went in.
    table.feed(
        1,
        &frame(RtcKind::Video, 3_000, true, idr(7)),
        now,
        &mut out,
    );
    table.feed(
        1,
        &frame(RtcKind::Audio, 960, false, vec![0xfc, 5]),
        now,
        &mut out,
    );
    let mut got = Vec::new();
    for _ in 0..20 {
        let (_, frames, ended) = step(&mut table, &mut up, &mut now, &mut out);
        assert_eq!(ended, None);
        got.extend(frames);
    }
    let video: Vec<&Forward> = got
        .iter()
        .filter(|f| f.kind() == MediaKind::Video)
        .collect();
    assert_eq!(video.len(), 1, "{got:?}");
    assert!(video[0].is_keyframe());
    assert_eq!(video[0].data(), &idr(7)[..]);
    assert!(
        got.iter()
            .any(|f| f.kind() == MediaKind::Audio && f.data() == [0xfc, 5]),
        "{got:?}"
    );

    // A local viewer joining: the upstream asks the owner (PLI), which
    // wants a keyframe of its source.
    let mut up_out = Vec::new();
    now += PLI_INTERVAL;
    up.request_keyframe(now, &mut up_out).expect("alive");
    for o in up_out {
        if let UpOut::Transmit { contents, .. } = o {
            table.receive(now, addr(RELAY), addr(OWNER), &contents, &mut out);
        }
    }
    assert_eq!(table.take_keyframe_wants(), vec![1]);

    // The stream ends on the owner: its viewers are closed, and so is the
    // upstream.
    assert!(table.remove(1, &mut out));
    let mut end = None;
    for _ in 0..5 {
        let (_, _, ended) = step(&mut table, &mut up, &mut now, &mut out);
        if ended.is_some() {
            end = ended;
            break;
        }
    }
    assert_eq!(end, Some(UpEnd::Closed));
    assert!(!table.contains(2));
}

#[test]
fn an_upstream_the_owner_never_answers_ends_at_the_time_out() {
    let now = Instant::now();
    let (_, mut up, _) = owner_and_upstream(now);
    let mut out = Vec::new();
    assert_eq!(
        up.tick(now + TIMEOUT - Duration::from_millis(1), &mut out),
        Ok(())
    );
    assert!(up.next_wake() <= now + TIMEOUT);
    assert_eq!(up.tick(now + TIMEOUT, &mut out), Err(UpEnd::ConnectTimeout));
    // Garbage from anywhere is not taken and changes nothing.
    assert_eq!(
        up.receive(now, addr("10.0.0.9:9"), &[0xff; 40], &mut out),
        Ok(())
    );
}

#[test]
fn an_answer_that_is_not_sdp_is_refused() {
    let now = Instant::now();
    let offered = Upstream::offer(addr(RELAY), TIMEOUT, now).expect("offer");
    let mut up = offered.upstream;
    assert!(up.accept(offered.pending, "hello\r\n", now).is_err());
}
