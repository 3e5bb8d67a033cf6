//! Live ingest over a real WebSocket into a running server, played back over HTTP.

use std::time::Duration;

use app::protocol::close::CloseReason;
use app::protocol::ingest::{encode_chunk, ClientMessage, ServerMessage};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use onair_server::media::testsrc;

use crate::support::TestApp;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What Chromium records with `video/webm;codecs=h264,opus`.
pub fn mkv_h264_opus(seconds: u32) -> Vec<u8> {
    onair_server::media::testsrc::mkv_h264_opus(seconds).expect("test media")
}

pub async fn connect(app: &TestApp, id: &str, token: Option<&str>) -> Ws {
    let mut req = format!("ws://{}/api/v1/streams/{id}/ingest", app.addr)
        .into_client_request()
        .expect("request");
    if let Some(t) = token {
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket connects")
        .0
}

fn hello(resume_after: Option<u64>) -> Message {
    let m = ClientMessage::Hello {
        version: 1,
        token: None,
        mime_type: "video/x-matroska;codecs=avc1,opus".into(),
        capture_start_ms: 1_795_300_000_000,
        resume_after,
        new_period: false,
    };
    Message::Text(serde_json::to_string(&m).expect("json").into())
}

/// Reads until a server message or a close frame.
pub async fn next(ws: &mut Ws) -> Result<ServerMessage, (u16, CloseReason)> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("server answers in time")
        {
            Some(Ok(Message::Text(t))) => {
                return Ok(serde_json::from_str(&t).expect("server message"))
            }
            Some(Ok(Message::Close(Some(f)))) => {
                let reason: CloseReason =
                    serde_json::from_str(&f.reason).expect("JSON close reason");
                return Err((u16::from(f.code), reason));
            }
            Some(Ok(_)) => continue,
            other => panic!("connection ended without a close frame: {other:?}"),
        }
    }
}

/// Connects and says hello, retrying while the server still sees the old socket.
pub async fn attach(app: &TestApp, id: &str, token: &str, resume_after: Option<u64>) -> (Ws, u64) {
    for _ in 0..50 {
        let mut ws = connect(app, id, Some(token)).await;
        ws.send(hello(resume_after)).await.expect("send hello");
        match next(&mut ws).await {
            Ok(ServerMessage::Ready { next_seq, .. }) => return (ws, next_seq),
            Err((4009, _)) => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("unexpected answer to hello: {other:?}"),
        }
    }
    panic!("could not attach");
}

pub async fn send_chunks(ws: &mut Ws, chunks: &[Vec<u8>], from: u64, to: u64) -> u64 {
    let mut acked = from.wrapping_sub(1);
    for seq in from..to {
        ws.send(Message::Binary(
            encode_chunk(seq, &chunks[seq as usize]).into(),
        ))
        .await
        .expect("send chunk");
        match next(ws).await {
            Ok(ServerMessage::Ack { seq: a }) => {
                assert_eq!(a, seq, "acks are in order");
                acked = a;
            }
            other => panic!("expected an ack, got {other:?}"),
        }
    }
    acked
}

// Multi-threaded: ffmpeg/ffprobe block a thread while the in-process server answers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_drop_resume_end_and_play_over_http() {
    let app = TestApp::start(|_| {}).await;
    let (id, token) = app.new_stream().await;
    let media = mkv_h264_opus(6);
    let chunks: Vec<Vec<u8>> = media.chunks(32 * 1024).map(<[u8]>::to_vec).collect();
    let n = chunks.len() as u64;
    assert!(n > 4);

    let (mut ws, next_seq) = attach(&app, &id, &token, None).await;
    assert_eq!(next_seq, 0);
    let acked = send_chunks(&mut ws, &chunks, 0, n / 2).await;
    // The studio saw "live" by now.
    let live: Vec<String> = app
        .state
        .db
        .live_streams(10)
        .await
        .expect("live")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(live.contains(&id), "{live:?}");
    drop(ws); // the connection dies without a goodbye

    let (mut ws, next_seq) = attach(&app, &id, &token, Some(acked)).await;
    assert_eq!(next_seq, acked + 1, "resume where the acks left off");
    // Re-sending an already acknowledged chunk is harmless.
    ws.send(Message::Binary(
        encode_chunk(acked, &chunks[acked as usize]).into(),
    ))
    .await
    .expect("resend");
    send_chunks(&mut ws, &chunks, next_seq, n).await;
    ws.send(Message::Text(
        serde_json::to_string(&ClientMessage::End)
            .expect("json")
            .into(),
    ))
    .await
    .expect("end");
    assert_eq!(next(&mut ws).await.expect("ended"), ServerMessage::Ended);

    let master_url = app.url(&format!("/live/{id}/master.m3u8"));
    let res = app.http.get(&master_url).send().await.expect("master");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let video = app
        .http
        .get(app.url(&format!("/live/{id}/360p/index.m3u8")))
        .send()
        .await
        .expect("media playlist");
    assert_eq!(video.headers()["cache-control"], "no-cache");
    let text = video.text().await.expect("text");
    let msns: Vec<u64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.trim_end_matches(".m4s").parse().expect("msn"))
        .collect();
    assert_eq!(
        msns,
        (0..msns.len() as u64).collect::<Vec<_>>(),
        "no gap and no duplicate: {text}"
    );
    let part = app
        .http
        .get(app.url(&format!("/live/{id}/360p/0.0.m4s")))
        .send()
        .await
        .expect("part");
    assert_eq!(
        part.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );

    let summary = testsrc::probe(&master_url).expect("ffprobe");
    assert!(
        (summary.duration_s - 6.0).abs() <= 2.0,
        "within one segment of the input: {summary:?}"
    );
    testsrc::decode(&master_url).expect("every stream decodes over HTTP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_a_close_code_and_a_reason_and_other_streams_are_unaffected() {
    let app = TestApp::start(|c| c.ingest.max_message_bytes = 4 * 1024 * 1024).await;
    let (id, token) = app.new_stream().await;

    // wrong token
    let mut ws = connect(&app, &id, Some("not-the-token")).await;
    ws.send(hello(None)).await.expect("hello");
    let (code, reason) = next(&mut ws).await.expect_err("refused");
    assert_eq!((code, reason.code.as_str()), (4001, "unauthorized"));

    // no such stream
    let mut ws = connect(&app, "nosuchstream", Some(&token)).await;
    ws.send(hello(None)).await.expect("hello");
    assert_eq!(next(&mut ws).await.expect_err("refused").0, 4004);

    // a second publisher while the first is live
    let (mut first, _) = attach(&app, &id, &token, None).await;
    let mut second = connect(&app, &id, Some(&token)).await;
    second.send(hello(None)).await.expect("hello");
    let (code, reason) = next(&mut second).await.expect_err("refused");
    assert_eq!((code, reason.code.as_str()), (4009, "already_publishing"));

    // a 10 MiB message
    first
        .send(Message::Binary(
            encode_chunk(0, &vec![0u8; 10 * 1024 * 1024]).into(),
        ))
        .await
        .ok();
    let (code, reason) = next(&mut first).await.expect_err("refused");
    assert_eq!(
        (code, reason.code.as_str()),
        (4013, "too_large"),
        "{reason:?}"
    );

    // garbage on another stream is refused as bad media ...
    let (bad_id, bad_token) = app.new_stream().await;
    let (mut bad, _) = attach(&app, &bad_id, &bad_token, None).await;
    let garbage: Vec<u8> = (0..4_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let mut closed = None;
    for (seq, piece) in garbage.chunks(64 * 1024).enumerate() {
        if bad
            .send(Message::Binary(encode_chunk(seq as u64, piece).into()))
            .await
            .is_err()
        {
            break;
        }
        match next(&mut bad).await {
            Ok(_) => continue,
            Err(c) => {
                closed = Some(c);
                break;
            }
        }
    }
    if closed.is_none() {
        closed = next(&mut bad).await.err();
    }
    let (code, reason) = closed.expect("garbage is refused");
    assert_eq!(
        (code, reason.code.as_str()),
        (4015, "bad_media"),
        "{reason:?}"
    );
    assert!(
        reason.message.contains("not a supported media container"),
        "{reason:?}"
    );

    // ... while a good stream on the same server still goes through.
    let (good_id, good_token) = app.new_stream().await;
    let (mut good, _) = attach(&app, &good_id, &good_token, None).await;
    let media = mkv_h264_opus(3);
    let chunks: Vec<Vec<u8>> = media.chunks(32 * 1024).map(<[u8]>::to_vec).collect();
    send_chunks(&mut good, &chunks, 0, chunks.len() as u64).await;
    good.send(Message::Text(
        serde_json::to_string(&ClientMessage::End)
            .expect("json")
            .into(),
    ))
    .await
    .expect("end");
    assert_eq!(next(&mut good).await.expect("ended"), ServerMessage::Ended);
    let res = app
        .http
        .get(app.url(&format!("/live/{good_id}/master.m3u8")))
        .send()
        .await
        .expect("master");
    assert_eq!(res.status(), 200);
}

pub fn hello_new_period(resume_after: u64, capture_start_ms: i64) -> Message {
    let m = ClientMessage::Hello {
        version: 1,
        token: None,
        mime_type: "video/x-matroska;codecs=avc1,opus".into(),
        capture_start_ms,
        resume_after: Some(resume_after),
        new_period: true,
    };
    Message::Text(serde_json::to_string(&m).expect("json").into())
}

pub async fn end(ws: &mut Ws) {
    let text = serde_json::to_string(&ClientMessage::End).expect("json");
    ws.send(Message::Text(text.into())).await.expect("end");
    assert_eq!(next(ws).await.expect("ended"), ServerMessage::Ended);
}

fn msns(playlist: &str) -> Vec<u64> {
    playlist
        .lines()
        .filter_map(|l| l.strip_suffix(".m4s")?.parse().ok())
        .collect()
}

/// Three recorder sessions in one stream (a restart announced in a reconnect's
/// hello, then one announced mid-connection) become periods with
/// discontinuities; a later live session continues the sequence numbers, so no
/// URL or stored object is reused; media answers carry ETags and serve ranges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_become_periods_and_a_later_session_continues_the_numbering() {
    let app = TestApp::start(|_| {}).await;
    let (id, token) = app.new_stream().await;
    let split =
        |media: Vec<u8>| -> Vec<Vec<u8>> { media.chunks(32 * 1024).map(<[u8]>::to_vec).collect() };
    let periods = [
        split(mkv_h264_opus(3)),
        split(mkv_h264_opus(3)),
        split(mkv_h264_opus(3)),
    ];

    let (mut ws, _) = attach(&app, &id, &token, None).await;
    let mut seq = periods[0].len() as u64;
    send_chunks(&mut ws, &periods[0], 0, seq).await;
    drop(ws);
    // Reconnect with a restarted recorder.
    let mut ws = loop {
        let mut ws = connect(&app, &id, Some(&token)).await;
        ws.send(hello_new_period(seq - 1, 1_795_300_060_000))
            .await
            .expect("hello");
        match next(&mut ws).await {
            Ok(ServerMessage::Ready { next_seq, .. }) => {
                assert_eq!(next_seq, seq);
                break ws;
            }
            Err((4009, _)) => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("unexpected answer: {other:?}"),
        }
    };
    for period in &periods[1..] {
        if std::ptr::eq(period, &periods[2]) {
            let text = serde_json::to_string(&ClientMessage::NewPeriod {
                capture_start_ms: 1_795_300_120_000,
            })
            .expect("json");
            ws.send(Message::Text(text.into()))
                .await
                .expect("new period");
        }
        for chunk in period {
            ws.send(Message::Binary(encode_chunk(seq, chunk).into()))
                .await
                .expect("chunk");
            assert_eq!(next(&mut ws).await, Ok(ServerMessage::Ack { seq }));
            seq += 1;
        }
    }
    end(&mut ws).await;

    let get = |path: String| {
        let app = &app;
        async move { app.http.get(app.url(&path)).send().await.expect("GET") }
    };
    let text = get(format!("/live/{id}/360p/index.m3u8"))
        .await
        .text()
        .await
        .expect("text");
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 2, "{text}");
    assert!(
        text.contains("#EXT-X-PROGRAM-DATE-TIME:2026-11-21T22:27:40.000Z"),
        "{text}"
    );
    assert!(
        text.contains("#EXT-X-PROGRAM-DATE-TIME:2026-11-21T22:28:40.000Z"),
        "{text}"
    );
    let first = msns(&text);
    assert_eq!(first, (0..first.len() as u64).collect::<Vec<_>>(), "{text}");
    // Same recorder settings each time: one init segment serves all periods,
    // so any HLS client (FFmpeg here) plays straight through.
    assert!(!text.contains("init-1.mp4"), "{text}");
    let master_url = app.url(&format!("/live/{id}/master.m3u8"));
    let summary = testsrc::probe(&master_url).expect("ffprobe");
    assert!((summary.duration_s - 9.0).abs() <= 2.0, "{summary:?}");
    testsrc::decode(&master_url).expect("all three periods decode over HTTP");

    // Validators and ranges on media.
    let seg = get(format!("/live/{id}/360p/0.m4s")).await;
    let etag = seg.headers()["etag"].to_str().expect("etag").to_string();
    let whole = seg.bytes().await.expect("bytes");
    let res = app
        .http
        .get(app.url(&format!("/live/{id}/360p/0.m4s")))
        .header("range", "bytes=4-11")
        .send()
        .await
        .expect("range");
    assert_eq!(res.status(), 206);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 4-11/{}", whole.len()).as_str()
    );
    assert_eq!(res.bytes().await.expect("bytes"), whole.slice(4..12));
    let res = app
        .http
        .get(app.url(&format!("/live/{id}/360p/0.m4s")))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(res.status(), 304);

    // A later session of the same stream numbers after the first.
    let (mut ws, next_seq) = attach(&app, &id, &token, None).await;
    assert_eq!(next_seq, 0, "a new session");
    let again = split(mkv_h264_opus(3));
    send_chunks(&mut ws, &again, 0, again.len() as u64).await;
    end(&mut ws).await;
    let text = get(format!("/live/{id}/360p/index.m3u8"))
        .await
        .text()
        .await
        .expect("text");
    let second = msns(&text);
    let last_first = *first.last().expect("segments");
    assert_eq!(second.first(), Some(&(last_first + 1)), "{text}");
    // Both sessions' segments are in the store, none overwritten.
    assert!(app.state.uploader.drained(Duration::from_secs(20)).await);
    let stored = app
        .state
        .store
        .list(&format!("streams/{id}/360p/"))
        .await
        .expect("list");
    let mut stored: Vec<u64> = stored
        .iter()
        .filter_map(|o| o.key.rsplit('/').next()?.strip_suffix(".m4s")?.parse().ok())
        .collect();
    stored.sort_unstable();
    let all: Vec<u64> = first.iter().chain(second.iter()).copied().collect();
    assert_eq!(stored, all);
}

/// The owner's studio publishes with its session instead of the token, from
/// this site only; another user's session is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_owner_publishes_without_the_token_from_this_site_only() {
    let app = TestApp::start(|_| {}).await;
    let (_, owner) = crate::accounts::mint(&app, "owner1", "broadcaster").await;
    let (_, other) = crate::accounts::mint(&app, "other1", "broadcaster").await;
    let stream = crate::accounts::create_stream(&app, &owner, "Mine", "public").await;
    let id = stream["id"].as_str().expect("id").to_string();
    let hello_without_token = || {
        let m = ClientMessage::Hello {
            version: 1,
            token: None,
            mime_type: "video/webm".into(),
            capture_start_ms: 1_795_300_000_000,
            resume_after: None,
            new_period: false,
        };
        Message::Text(serde_json::to_string(&m).expect("json").into())
    };
    let connect_as = |session: String, origin: String| {
        let url = format!("ws://{}/api/v1/streams/{id}/ingest", app.addr);
        async move {
            let mut req = url.into_client_request().expect("request");
            let h = req.headers_mut();
            h.insert(
                "cookie",
                format!("onair_session={session}").parse().expect("cookie"),
            );
            h.insert("origin", origin.parse().expect("origin"));
            tokio_tungstenite::connect_async(req)
                .await
                .expect("connects")
                .0
        }
    };
    let here = format!("http://{}", app.addr);

    let mut ws = connect_as(other.clone(), here.clone()).await;
    ws.send(hello_without_token()).await.expect("hello");
    let (code, reason) = next(&mut ws).await.expect_err("refused");
    assert_eq!((code, reason.code.as_str()), (4001, "unauthorized"));
    assert!(reason.message.contains("owner"), "{}", reason.message);

    let mut ws = connect_as(owner.clone(), "http://evil.example".into()).await;
    ws.send(hello_without_token()).await.expect("hello");
    let (code, reason) = next(&mut ws).await.expect_err("refused");
    assert_eq!((code, reason.message.as_str()), (4001, "no ingest token"));

    let mut ws = connect_as(owner, here).await;
    ws.send(hello_without_token()).await.expect("hello");
    assert!(matches!(
        next(&mut ws).await,
        Ok(ServerMessage::Ready { next_seq: 0, .. })
    ));
    let media = mkv_h264_opus(2);
    let chunks: Vec<Vec<u8>> = media.chunks(32 * 1024).map(<[u8]>::to_vec).collect();
    send_chunks(&mut ws, &chunks, 0, chunks.len() as u64).await;
    end(&mut ws).await;
}

fn hello_at(resume_after: Option<u64>, capture_start_ms: i64) -> Message {
    let m = ClientMessage::Hello {
        version: 1,
        token: None,
        mime_type: "video/x-matroska;codecs=avc1,opus".into(),
        capture_start_ms,
        resume_after,
        new_period: false,
    };
    Message::Text(serde_json::to_string(&m).expect("json").into())
}

/// The refusal (close code and reason code) a hello gets.
async fn refused_hello(app: &TestApp, id: &str, token: &str, hello: Message) -> (u16, String) {
    let mut ws = connect(app, id, Some(token)).await;
    ws.send(hello).await.expect("hello");
    match next(&mut ws).await {
        Err((code, reason)) => (code, reason.code),
        Ok(m) => panic!("accepted: {m:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_near_u64_max_are_refused_and_the_stream_stays_publishable() {
    use app::protocol::ingest::MAX_SEQ;
    let app = TestApp::start(|_| {}).await;
    let (id, token) = app.new_stream().await;
    let now = onair_server::realtime::now_ms();
    // The attack: resume after 2^64 - 2, then send chunk 2^64 - 1.
    let mut ws = connect(&app, &id, Some(&token)).await;
    ws.send(hello_at(Some(u64::MAX - 1), now))
        .await
        .expect("hello");
    if let Ok(m) = next(&mut ws).await {
        ws.send(Message::Binary(encode_chunk(u64::MAX, b"x").into()))
            .await
            .ok();
        panic!("resume_after 2^64-2 was accepted: {m:?}");
    }
    for after in [u64::MAX - 1, u64::MAX, MAX_SEQ, MAX_SEQ + 1] {
        assert_eq!(
            refused_hello(&app, &id, &token, hello_at(Some(after), now)).await,
            (4002, "protocol".to_string()),
            "resume_after {after}"
        );
    }
    // The last sequence number a chunk may carry is MAX_SEQ - 1.
    let (mut ws, next_seq) = attach(&app, &id, &token, Some(MAX_SEQ - 2)).await;
    assert_eq!(next_seq, MAX_SEQ - 1);
    let media = mkv_h264_opus(1);
    ws.send(Message::Binary(encode_chunk(MAX_SEQ - 1, &media).into()))
        .await
        .expect("chunk");
    assert_eq!(
        next(&mut ws).await.expect("ack"),
        ServerMessage::Ack { seq: MAX_SEQ - 1 }
    );
    ws.send(Message::Binary(encode_chunk(MAX_SEQ, b"more").into()))
        .await
        .expect("chunk");
    let (code, reason) = next(&mut ws).await.expect_err("refused");
    assert_eq!(
        (code, reason.code.as_str()),
        (4002, "protocol"),
        "{reason:?}"
    );
    // Nothing is left attached: a new publisher gets in (not 4009).
    let mut again = connect(&app, &id, Some(&token)).await;
    again.send(hello(None)).await.expect("hello");
    let mut answer = next(&mut again).await;
    for _ in 0..50 {
        if !matches!(answer, Err((4009, _))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        again = connect(&app, &id, Some(&token)).await;
        again.send(hello(None)).await.expect("hello");
        answer = next(&mut again).await;
    }
    assert_eq!(
        answer.map(|m| matches!(m, ServerMessage::Ready { .. })),
        Ok(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_date_outside_the_window_is_refused() {
    use app::protocol::ingest::{MAX_CAPTURE_AHEAD_MS, MIN_CAPTURE_START_MS};
    let app = TestApp::start(|_| {}).await;
    let (id, token) = app.new_stream().await;
    let now = onair_server::realtime::now_ms();
    let year_0 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
    for at in [
        year_0,
        0,
        MIN_CAPTURE_START_MS - 1,
        now + MAX_CAPTURE_AHEAD_MS + 60_000,
        i64::MIN,
        i64::MAX,
    ] {
        assert_eq!(
            refused_hello(&app, &id, &token, hello_at(None, at)).await,
            (4002, "protocol".to_string()),
            "capture_start_ms {at}"
        );
    }
    // A new period's program date is held to the same window.
    let (mut ws, _) = attach(&app, &id, &token, None).await;
    ws.send(Message::Text(
        serde_json::to_string(&ClientMessage::NewPeriod {
            capture_start_ms: year_0,
        })
        .expect("json")
        .into(),
    ))
    .await
    .expect("new period");
    let (code, reason) = next(&mut ws).await.expect_err("refused");
    assert_eq!(
        (code, reason.code.as_str()),
        (4002, "protocol"),
        "{reason:?}"
    );
}

/// A connection task that panics while it holds the publisher must not
/// leave the stream attached to nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_guard_detaches_when_its_task_panics() {
    let app = TestApp::start(|_| {}).await;
    let (id, _) = app.new_stream().await;
    let hub = app.state.ingest.clone();
    let now = onair_server::realtime::now_ms();
    let (publisher, _, is_new) = hub.attach(&id, now, None).expect("first publisher");
    assert!(is_new);
    // While it is held, nobody else gets in.
    assert!(hub.attach(&id, now, None).is_err());
    let task = tokio::spawn(async move {
        let _held = publisher;
        panic!("a connection task fails");
    });
    assert!(task.await.expect_err("it panicked").is_panic());
    let (_again, _, is_new) = hub
        .attach(&id, now, None)
        .expect("the next publisher resumes the session");
    assert!(!is_new);
}
