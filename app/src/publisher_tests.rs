use super::*;
use crate::protocol::ingest::{decode_chunk, IngestLimits};

fn ready(next_seq: u64) -> String {
    ready_with(next_seq, false)
}

fn ready_with(next_seq: u64, new_session: bool) -> String {
    serde_json::to_string(&ServerMessage::Ready {
        next_seq,
        limits: IngestLimits {
            max_message_bytes: 4 << 20,
            max_bitrate: 20_000_000,
            idle_timeout_s: 15,
        },
        new_session,
    })
    .expect("json")
}

fn ack(seq: u64) -> String {
    serde_json::to_string(&ServerMessage::Ack { seq }).expect("json")
}

fn hello(frame: &Frame) -> ClientMessage {
    match frame {
        Frame::Text(t) => serde_json::from_str(t).expect("client message"),
        other => panic!("expected text, got {other:?}"),
    }
}

fn seqs(frames: &[Frame]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Binary(b) => decode_chunk(b).map(|(s, _)| s),
            Frame::Text(_) => None,
        })
        .collect()
}

#[test]
fn chunks_are_numbered_buffered_until_acked_and_resent_after_a_drop() {
    let mut p = Publisher::new("tok", "video/webm;codecs=vp8,opus", 5, 1 << 20);
    assert!(p.wants_connection());
    let first = p.on_open();
    assert!(matches!(
        hello(&first),
        ClientMessage::Hello {
            resume_after: None,
            new_period: false,
            capture_start_ms: 5,
            ..
        }
    ));
    // A chunk recorded before `ready` waits, then goes out.
    assert!(p.on_chunk(b"header".to_vec()).is_empty());
    assert_eq!(seqs(&p.on_message(&ready(0))), vec![0]);
    assert_eq!(p.phase(), Phase::Live);
    assert_eq!(seqs(&p.on_chunk(b"one".to_vec())), vec![1]);
    assert_eq!(seqs(&p.on_chunk(b"two".to_vec())), vec![2]);
    p.on_message(&ack(1));
    assert_eq!(p.stats().pending, 1);
    assert_eq!(p.stats().acked, Some(1));

    // The connection drops; the recorder keeps going.
    p.on_close(1006, "");
    assert!(p.wants_connection());
    assert!(p.on_chunk(b"three".to_vec()).is_empty());
    let again = p.on_open();
    assert!(matches!(
        hello(&again),
        ClientMessage::Hello {
            resume_after: Some(1),
            ..
        }
    ));
    // The server had chunk 2 after all: only 3 is resent.
    let resent = p.on_message(&ready(3));
    assert_eq!(seqs(&resent), vec![3]);
    assert_eq!(p.stats().reconnects, 1);
    match &resent[0] {
        Frame::Binary(b) => assert_eq!(decode_chunk(b), Some((3, &b"three"[..]))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn end_waits_for_the_last_ack() {
    let mut p = Publisher::new("tok", "video/webm", 0, 1 << 20);
    p.on_open();
    p.on_message(&ready(0));
    p.on_chunk(b"a".to_vec());
    assert!(p.end().is_empty(), "chunk 0 is not acked yet");
    assert_eq!(p.phase(), Phase::Ending);
    let out = p.on_message(&ack(0));
    assert_eq!(hello(&out[0]), ClientMessage::End);
    p.on_message(&serde_json::to_string(&ServerMessage::Ended).expect("json"));
    assert_eq!(p.phase(), Phase::Ended);
    assert!(p.on_chunk(b"late".to_vec()).is_empty());

    // Ending while the connection is down: resend, wait for acks, then end.
    let mut p = Publisher::new("tok", "video/webm", 0, 1 << 20);
    p.on_open();
    p.on_message(&ready(0));
    p.on_chunk(b"a".to_vec());
    p.on_close(1006, "");
    assert!(p.end().is_empty());
    p.on_open();
    let out = p.on_message(&ready(0));
    assert_eq!(seqs(&out), vec![0]);
    assert_eq!(out.len(), 1, "end waits for the ack: {out:?}");
    assert_eq!(hello(&p.on_message(&ack(0))[0]), ClientMessage::End);
}

#[test]
fn a_recorder_restart_is_announced_before_its_first_chunk() {
    let mut p = Publisher::new("tok", "video/webm", 0, 1 << 20);
    p.on_open();
    p.on_message(&ready(0));
    p.on_chunk(b"a".to_vec());
    p.on_message(&ack(0));
    p.restart_recorder(9_000);
    let out = p.on_chunk(b"new header".to_vec());
    assert_eq!(
        hello(&out[0]),
        ClientMessage::NewPeriod {
            capture_start_ms: 9_000
        }
    );
    assert_eq!(seqs(&out), vec![1]);

    // A restart while disconnected goes into the reconnect's hello.
    p.on_message(&ack(1));
    p.on_close(1006, "");
    p.restart_recorder(12_000);
    p.on_chunk(b"newer header".to_vec());
    match hello(&p.on_open()) {
        ClientMessage::Hello {
            new_period,
            resume_after,
            capture_start_ms,
            ..
        } => assert_eq!(
            (new_period, resume_after, capture_start_ms),
            (true, Some(1), 12_000)
        ),
        other => panic!("{other:?}"),
    }
    let out = p.on_message(&ready(2));
    assert_eq!(out.len(), 1, "no second announcement: {out:?}");
    assert_eq!(seqs(&out), vec![2]);
}

#[test]
fn refusals_stop_with_the_servers_reason_and_the_buffer_is_bounded() {
    let mut p = Publisher::new("tok", "video/webm", 0, 1 << 20);
    p.on_open();
    p.on_close(
        4001,
        r#"{"code":"unauthorized","message":"wrong ingest token"}"#,
    );
    assert_eq!(p.phase(), Phase::Failed);
    assert_eq!(
        p.failure().map(ToString::to_string).as_deref(),
        Some("wrong ingest token (4001)")
    );
    assert!(!p.wants_connection());

    let mut p = Publisher::new("tok", "video/webm", 0, 10);
    p.on_chunk(vec![0; 6]);
    p.on_chunk(vec![0; 6]);
    assert_eq!(p.failure(), Some(&PublishFailure::BufferFull(12)));
}

#[test]
fn the_servers_connection_limits_are_waited_out_not_final() {
    use crate::protocol::ingest::close;
    for code in [close::HELLO_TIMEOUT, close::TOO_MANY_CONNECTIONS] {
        let mut p = Publisher::new("tok", "video/webm", 0, 1 << 20);
        p.on_open();
        p.on_close(
            code,
            r#"{"code":"too_many_connections","message":"retry later"}"#,
        );
        assert_eq!(p.phase(), Phase::Disconnected, "{code}");
        assert!(p.wants_connection(), "{code}");
    }
}

#[test]
fn a_reconnect_to_a_new_session_starts_a_new_container_at_the_servers_number() {
    let mut p = Publisher::new("tok", "video/webm", 0, 1 << 20);
    p.on_open();
    // The first connection is a new session too: nothing to restart.
    assert!(p.on_message(&ready_with(0, true)).is_empty());
    assert!(!p.take_recorder_restart());
    p.on_chunk(b"header".to_vec());
    p.on_chunk(b"cluster 1".to_vec());
    p.on_message(&ack(0));
    p.on_chunk(b"cluster 2".to_vec());
    // The owner dies; the reconnect lands on another node, which has no
    // session: chunks 1 and 2 continue a container it never saw.
    p.on_close(1006, "");
    p.on_chunk(b"cluster 3".to_vec());
    assert!(matches!(
        hello(&p.on_open()),
        ClientMessage::Hello {
            resume_after: Some(0),
            ..
        }
    ));
    let out = p.on_message(&ready_with(1, true));
    assert!(
        out.is_empty(),
        "nothing of the old container is sent: {out:?}"
    );
    assert!(
        p.take_recorder_restart(),
        "the page is asked for a new recorder"
    );
    assert!(!p.take_recorder_restart(), "once");
    assert_eq!(p.phase(), Phase::Live);
    let stats = p.stats();
    assert_eq!((stats.pending, stats.pending_bytes), (0, 0));
    assert_eq!(
        (stats.new_sessions, stats.dropped, stats.reconnects),
        (1, 3, 1)
    );
    // The new recorder's header is the server's next_seq.
    assert_eq!(seqs(&p.on_chunk(b"new header".to_vec())), vec![1]);
    assert_eq!(seqs(&p.on_chunk(b"new cluster".to_vec())), vec![2]);

    // A resume of the same session (the same node) resends as before.
    p.on_close(1006, "");
    p.on_open();
    assert_eq!(seqs(&p.on_message(&ready_with(1, false))), vec![1, 2]);
    assert!(!p.take_recorder_restart());

    // Ending while away, then landing on a new session: nothing is left
    // to send, so `end` goes out at once.
    p.on_close(1006, "");
    assert!(p.end().is_empty());
    p.on_open();
    let out = p.on_message(&ready_with(3, true));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(hello(&out[0]), ClientMessage::End);
    assert!(
        !p.take_recorder_restart(),
        "no recorder for an ending stream"
    );
}

#[test]
fn already_publishing_right_after_a_drop_is_waited_out_a_bounded_number_of_times() {
    use crate::protocol::ingest::close;
    let refused = r#"{"code":"already_publishing","message":"another publisher is live"}"#;
    // Before any connection succeeded it is another publisher: final.
    let mut p = Publisher::new("tok", "video/webm", 0, 1 << 20);
    p.on_open();
    p.on_close(close::ALREADY_PUBLISHING, refused);
    assert_eq!(p.phase(), Phase::Failed);

    // After a drop: the old connection, or a dead owner's lease, may
    // still hold the stream for a moment.
    let mut p = Publisher::new("tok", "video/webm", 0, 1 << 20);
    p.on_open();
    p.on_message(&ready(0));
    p.on_close(1006, "");
    for _ in 0..MAX_TAKEOVER_RETRIES {
        p.on_open();
        p.on_close(close::ALREADY_PUBLISHING, refused);
        assert!(p.wants_connection());
    }
    p.on_open();
    p.on_close(close::ALREADY_PUBLISHING, refused);
    assert_eq!(p.phase(), Phase::Failed, "not forever");

    // A successful reconnect starts the count again.
    let mut p = Publisher::new("tok", "video/webm", 0, 1 << 20);
    p.on_open();
    p.on_message(&ready(0));
    for _ in 0..3 {
        p.on_close(1006, "");
        for _ in 0..MAX_TAKEOVER_RETRIES {
            p.on_open();
            p.on_close(close::ALREADY_PUBLISHING, refused);
        }
        p.on_open();
        p.on_message(&ready(0));
        assert_eq!(p.phase(), Phase::Live);
    }
}
