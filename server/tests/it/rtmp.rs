//! RTMP ingest with the FFmpeg CLI as the encoder, as OBS users publish:
//! `-f flv rtmp://HOST:PORT/live/<stream id>_<token>`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use onair_server::ingest::rtmp::{serve, RtmpConfig};
use onair_server::media::testsrc::{ffprobe_json, probe};

use crate::publish::make_file;
use crate::support::TestApp;

pub(crate) mod aac;
mod health;

/// H.264 as OBS's x264 makes it by default (B-frames, a keyframe a second) and AAC.
pub(crate) const OBS_LIKE: &[&str] = &[
    "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "30",
    "-c:a", "aac",
];

/// H.264 without B-frames, a keyframe a second, and AAC: quick to make.
pub(crate) const QUICK: &[&str] = &[
    "-pix_fmt",
    "yuv420p",
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-g",
    "30",
    "-c:a",
    "aac",
];

/// Starts the RTMP listener of `app` on a free port, with the encoder keys
/// `onair serve` gives it; returns `rtmp://…/live`.
pub(crate) async fn rtmp_listener(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cfg = RtmpConfig {
        keys: Some(app.state.accounts.playback.clone()),
        ..RtmpConfig::default()
    };
    tokio::spawn(serve(listener, app.state.ingest.clone(), cfg));
    // The listener records its address for the encoder settings.
    while app.state.ingest.rtmp_addr.get().is_none() {
        tokio::task::yield_now().await;
    }
    format!("rtmp://{addr}/live")
}

/// `ffmpeg -re -i FILE -c copy -f flv URL`.
pub(crate) fn ffmpeg_publish(
    file: &std::path::Path,
    url: &str,
    extra: &[&str],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-v", "error", "-re", "-i"])
        .arg(file)
        .args(extra)
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Publishes all of `file` to `url` and waits for the stream to end (the
/// encoder's deleteStream at the end of the input).
pub(crate) async fn publish_to_the_end(app: &TestApp, id: &str, file: &std::path::Path, url: &str) {
    let out = ffmpeg_publish(file, url, &["-c", "copy"])
        .output()
        .await
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for_state(app, id, "ended").await;
}

/// The body of a GET of `path`.
pub(crate) async fn text_of(app: &TestApp, path: &str) -> String {
    app.http
        .get(app.url(path))
        .send()
        .await
        .expect("answered")
        .text()
        .await
        .expect("text")
}

pub(crate) async fn state(app: &TestApp, id: &str) -> String {
    app.state
        .db
        .get_stream(id)
        .await
        .expect("db")
        .map(|s| s.state)
        .unwrap_or_default()
}

pub(crate) async fn wait_for_state(app: &TestApp, id: &str, wanted: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    while state(app, id).await != wanted {
        assert!(Instant::now() < until, "stream {id} never became {wanted}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stream's live playlist, read by ffprobe and FFmpeg: H.264 + AAC,
/// 6 s (±1.1) like the input, every one of `input_frames` (±1), and it
/// decodes without an error.
pub(crate) fn assert_plays_as_sent(app: &TestApp, id: &str, input_frames: u64) {
    let url = app.url(&format!("/live/{id}/master.m3u8"));
    let summary = probe(&url).expect("ffprobe the live playlist");
    assert!(summary.has(&["h264", "aac"]), "{summary:?}");
    assert!(
        (summary.duration_s - 6.0).abs() <= 1.1,
        "as long as the input: {summary:?}"
    );
    let frames = video_frames(&url);
    assert!(
        frames.abs_diff(input_frames) <= 1,
        "{frames} frames played of {input_frames} sent"
    );
    onair_server::media::testsrc::decode(&url).expect("decodes without an error");
}

/// Each of `reasons` is counted in `/metrics` for `transport`, and the first
/// publisher (`first`, an FFmpeg still sending to stream `id`) was never
/// disturbed: the stream is live and FFmpeg still running. Stops it.
pub(crate) async fn assert_refused_and_first_undisturbed(
    app: &TestApp,
    id: &str,
    transport: &str,
    reasons: &[&str],
    first: &mut tokio::process::Child,
) {
    let text = metrics(app).await;
    for reason in reasons {
        assert!(
            refusal_counted(&text, transport, reason),
            "{reason} not counted:\n{text}"
        );
    }
    assert_eq!(state(app, id).await, "live");
    assert!(
        first.try_wait().expect("wait").is_none(),
        "still publishing"
    );
    let _ = first.kill().await;
}

pub(crate) fn video_frames(url: &str) -> u64 {
    let json = ffprobe_json(&[
        "-count_frames",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=nb_read_frames",
        url,
    ])
    .expect("ffprobe");
    json["streams"][0]["nb_read_frames"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

pub(crate) async fn metrics(app: &TestApp) -> String {
    app.http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_over_rtmp_and_it_plays_for_as_long_as_the_input() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let base = rtmp_listener(&app).await;
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "obs.mp4", 6, OBS_LIKE);
    let input_frames = video_frames(file.to_str().expect("utf8"));

    publish_to_the_end(&app, &id, &file, &format!("{base}/{id}_{token}")).await;

    assert_plays_as_sent(&app, &id, input_frames);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_refusals_are_clear_and_leave_other_streams_alone() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let base = rtmp_listener(&app).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "long.mp4", 20, QUICK);
    let (id, token) = app.new_stream().await;
    let key = format!("{id}_{token}");

    // A publisher that stays live during the refusals below.
    let mut first = ffmpeg_publish(&file, &format!("{base}/{key}"), &["-c", "copy"])
        .spawn()
        .expect("ffmpeg");
    wait_for_state(&app, &id, "live").await;

    // Wrong keys: a wrong token, no token, an unknown stream.
    for bad in [
        format!("{id}_{}", "0".repeat(64)),
        id.clone(),
        format!("nosuchstream_{token}"),
    ] {
        let out = ffmpeg_publish(&file, &format!("{base}/{bad}"), &["-c", "copy", "-t", "2"])
            .output()
            .await
            .expect("ffmpeg");
        assert!(!out.status.success(), "{bad} was accepted");
    }
    // A second publisher on a live stream.
    let out = ffmpeg_publish(&file, &format!("{base}/{key}"), &["-c", "copy", "-t", "2"])
        .output()
        .await
        .expect("ffmpeg");
    assert!(!out.status.success(), "a second publisher was accepted");
    // An unsupported codec, on another stream: the reason names it.
    let (other, other_token) = app.new_stream().await;
    let out = ffmpeg_publish(
        &file,
        &format!("{base}/{other}_{other_token}"),
        &["-c:v", "flv1", "-c:a", "aac", "-t", "2"],
    )
    .output()
    .await
    .expect("ffmpeg");
    assert!(!out.status.success(), "Sorenson H.263 was accepted");
    // Garbage instead of a handshake.
    let addr = base
        .trim_start_matches("rtmp://")
        .trim_end_matches("/live")
        .to_string();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        assert_eq!(n, 0, "garbage gets no answer, only a close");
    }

    assert_refused_and_first_undisturbed(
        &app,
        &id,
        "rtmp",
        &[
            "wrong_key",
            "already_publishing",
            "unsupported_codec",
            "protocol",
        ],
        &mut first,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoder_that_reconnects_continues_the_same_stream_as_a_new_period() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let base = rtmp_listener(&app).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "in.mp4", 4, QUICK);
    let (id, token) = app.new_stream().await;
    let url = format!("{base}/{id}_{token}");

    // The encoder dies mid-stream (no deleteStream)...
    let mut first = ffmpeg_publish(&file, &url, &["-c", "copy"])
        .spawn()
        .expect("ffmpeg");
    wait_for_state(&app, &id, "live").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.kill().await.expect("kill");
    // ...and comes back within the grace with the same key.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(state(&app, &id).await, "live", "not interrupted yet");
    publish_to_the_end(&app, &id, &file, &url).await;

    assert_one_new_period_that_plays(&app, &id).await;
}

/// The stream's variant playlist has exactly one `EXT-X-DISCONTINUITY` (a
/// reconnect), and the whole stream decodes straight through.
pub(crate) async fn assert_one_new_period_that_plays(app: &TestApp, id: &str) {
    let master = text_of(app, &format!("/live/{id}/master.m3u8")).await;
    let variant = master
        .lines()
        .find(|l| l.ends_with("index.m3u8") && !l.starts_with('#'))
        .expect("a variant")
        .to_string();
    let text = text_of(app, &format!("/live/{id}/{variant}")).await;
    assert_eq!(
        text.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "one new period:\n{text}"
    );
    onair_server::media::testsrc::decode(&app.url(&format!("/live/{id}/master.m3u8")))
        .expect("decodes straight through");
}

/// Whether `/metrics` text counts a refusal of `transport` for `reason`.
/// The value of `onair_ingest_refusals_total{transport,reason}` (0 before
/// the first).
pub(crate) fn refusal_count(text: &str, transport: &str, reason: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with("onair_ingest_refusals_total")
                && l.contains(&format!("transport=\"{transport}\""))
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub(crate) fn refusal_counted(text: &str, transport: &str, reason: &str) -> bool {
    text.lines().any(|l| {
        l.starts_with("onair_ingest_refusals_total")
            && l.contains(&format!("transport=\"{transport}\""))
            && l.contains(&format!("reason=\"{reason}\""))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_encoder_panel_key_publishes_and_a_new_token_retires_it() {
    use crate::accounts::{create_stream, mint};
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let base = rtmp_listener(&app).await;
    let (_, alice) = mint(&app, "alice", "broadcaster").await;
    let (_, bob) = mint(&app, "bob", "broadcaster").await;
    let stream = create_stream(&app, &alice, "OBS show", "public").await;
    let id = stream["id"].as_str().expect("id").to_string();
    let get = |session: &str| {
        app.http
            .get(app.url(&format!("/api/v1/streams/{id}/encoder")))
            .header("cookie", format!("onair_session={session}"))
            .send()
    };
    // Only the owner (or an admin) sees it; anonymous users are told to sign in.
    assert_eq!(get(&bob).await.expect("bob").status().as_u16(), 403);
    let anon = app
        .http
        .get(app.url(&format!("/api/v1/streams/{id}/encoder")))
        .send()
        .await
        .expect("anon");
    assert_eq!(anon.status().as_u16(), 401);
    let info: serde_json::Value = get(&alice)
        .await
        .expect("alice")
        .json()
        .await
        .expect("json");
    assert_eq!(info["rtmp_server"].as_str(), Some(base.as_str()), "{info}");
    assert_eq!(info["loopback_only"], true);
    let key = info["stream_key"].as_str().expect("key").to_string();
    assert!(
        key.starts_with(&format!("{id}_")) && key.len() == id.len() + 33,
        "{key}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "in.mp4", 2, QUICK);
    publish_to_the_end(&app, &id, &file, &format!("{base}/{key}")).await;

    // A new ingest token changes the key; the old one is refused at once.
    let res = app
        .http
        .post(app.url(&format!("/api/v1/streams/{id}/token")))
        .header("cookie", format!("onair_session={alice}"))
        .header("origin", format!("http://{}", app.addr))
        .send()
        .await
        .expect("regenerate");
    assert_eq!(res.status().as_u16(), 200);
    let fresh: serde_json::Value = get(&alice)
        .await
        .expect("alice")
        .json()
        .await
        .expect("json");
    assert_ne!(fresh["stream_key"].as_str(), Some(key.as_str()));
    let out = ffmpeg_publish(&file, &format!("{base}/{key}"), &["-c", "copy"])
        .output()
        .await
        .expect("ffmpeg");
    assert!(!out.status.success(), "the old key still publishes");
}

/// A self-signed certificate for 127.0.0.1 and its key (PEM files in `dir`),
/// made by the OpenSSL CLI.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_over_rtmps() {
    use onair_server::ingest::rtmp::{serve_tls, tls_acceptor};
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path());
    let tls = tls_acceptor(&cert, &key).expect("the certificate and key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cfg = RtmpConfig {
        keys: Some(app.state.accounts.playback.clone()),
        ..RtmpConfig::default()
    };
    tokio::spawn(serve_tls(listener, app.state.ingest.clone(), cfg, tls));
    let (id, token) = app.new_stream().await;
    let file = make_file(dir.path(), "in.mp4", 3, QUICK);

    // FFmpeg checks no certificate unless told to; say so anyway.
    let url = format!("rtmps://{addr}/live/{id}_{token}");
    let out = ffmpeg_publish(&file, &url, &["-c", "copy", "-tls_verify", "0"])
        .output()
        .await
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for_state(&app, &id, "ended").await;
    let summary = probe(&app.url(&format!("/live/{id}/master.m3u8"))).expect("plays");
    assert!((summary.duration_s - 3.0).abs() <= 1.1, "{summary:?}");

    // Plain RTMP to the TLS port: no TLS handshake, refused.
    let out = ffmpeg_publish(
        &file,
        &format!("rtmp://{addr}/live/{id}_{token}"),
        &["-c", "copy"],
    )
    .output()
    .await
    .expect("ffmpeg");
    assert!(
        !out.status.success(),
        "plain RTMP was taken on the RTMPS port"
    );
    let text = metrics(&app).await;
    assert!(refusal_counted(&text, "rtmps", "protocol"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_viewer_plays_on_when_the_rtmp_encoder_reconnects() {
    use crate::whep::{peer, report_of};
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let _endpoint = crate::whip::whip_endpoint(&app, Default::default());
    let base = rtmp_listener(&app).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "in.mp4", 20, OBS_LIKE);
    let (id, token) = app.new_stream().await;
    let url = format!("{base}/{id}_{token}");
    let mut first = ffmpeg_publish(&file, &url, &["-c", "copy"])
        .spawn()
        .expect("ffmpeg");
    wait_for_state(&app, &id, "live").await;
    let whep = app.url(&format!("/api/v1/streams/{id}/whep"));
    let viewer = peer(&["--mode", "whep", "--url", &whep, "--seconds", "9"]);
    // The encoder dies 3 s in and comes back within the grace: a new
    // period of the same pipeline, whose WebRTC output goes on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.kill().await.expect("kill");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut second = ffmpeg_publish(&file, &url, &["-c", "copy"])
        .spawn()
        .expect("ffmpeg");
    let report = report_of(viewer).await;
    eprintln!("the WHEP viewer's report: {report}");
    assert_eq!(report["connected"], true, "{report}");
    // At 30 fps, at most 3 s (90 frames) came before the encoder died:
    // more means the second encoder's frames played too.
    let frames = report["video_frames"].as_u64().expect("count");
    assert!(frames > 120, "{report}");
    assert_eq!(
        (report["width"].as_u64(), report["height"].as_u64()),
        (Some(640), Some(360)),
        "{report}"
    );
    assert!(
        report["audio_frames"].as_u64().expect("count") > 250,
        "the audio goes on too: {report}"
    );
    let _ = second.kill().await;
}
