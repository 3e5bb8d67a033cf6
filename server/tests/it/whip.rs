//! WHIP ingest (RFC 9725) with an independent peer: aiortc from PyPI
//! (tools/whip-peer, installed by `make test`'s deps step) publishes an
//! FFmpeg-made file, re-encoded by aiortc to H.264 and Opus, over WebRTC to
//! the server's UDP socket on 127.0.0.1; ffprobe reads the LL-HLS output.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onair_server::media::testsrc::probe;
use onair_server::webrtc::{serve, Endpoint, WebrtcConfig};

use crate::publish::make_file;
use crate::rtmp::{metrics, refusal_count, state, video_frames, wait_for_state, QUICK};
use crate::support::TestApp;

/// The venv's Python with aiortc (tools/whip-peer/setup.sh).
pub(crate) fn peer_python() -> PathBuf {
    let dir = std::env::var_os("ONAIR_WHIP_PEER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/onair/whip-peer")
        });
    let python = dir.join("venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tools/whip-peer/setup.sh (make test does)",
        python.display()
    );
    python
}

pub(crate) fn peer_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/whip-peer/whip_peer.py")
}

/// Starts the WHIP endpoint of `app` on a free UDP port of 127.0.0.1.
pub(crate) fn whip_endpoint(app: &TestApp, cfg: WebrtcConfig) -> Arc<Endpoint> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let endpoint = serve(
        socket,
        app.state.ingest.clone(),
        app.state.db.clone(),
        Some(app.state.accounts.playback.clone()),
        cfg,
    )
    .expect("whip endpoint");
    assert!(app.state.webrtc.set(endpoint.clone()).is_ok(), "set once");
    endpoint
}

/// aiortc's offer for `file` (H.264 preferred, Opus), as a browser or OBS
/// would send it.
pub(crate) async fn aiortc_offer(file: &std::path::Path) -> String {
    let out = tokio::process::Command::new(peer_python())
        .arg(peer_script())
        .args([
            "--url",
            "http://127.0.0.1:9/unused",
            "--offer-only",
            "--file",
        ])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8 offer")
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) location: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) body: String,
}

pub(crate) async fn post_offer(
    app: &TestApp,
    id: &str,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> Answer {
    let mut req = app
        .http
        .post(app.url(&format!("/api/v1/streams/{id}/whip")))
        .header("content-type", content_type)
        .body(body.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = req.send().await.expect("answered");
    let status = res.status().as_u16();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let location = header("location");
    let content_type = header("content-type");
    let body = res.text().await.expect("body");
    let code = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_default();
    Answer {
        status,
        code,
        location,
        content_type,
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_publishes_over_whip_and_it_plays_as_h264_and_aac() {
    // The full pipeline: passthrough top rung and the ladder below it.
    let app = TestApp::start(|_| {}).await;
    let endpoint = whip_endpoint(&app, WebrtcConfig::default());
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // 480p: passed through as the top rung, with a 360p rung encoded below.
    let file = dir.path().join("source.mp4");
    onair_server::media::testsrc::av("854x480", 10, QUICK, file.to_str().expect("utf8"))
        .expect("test media");

    let sent_s = 5.0;
    let peer = tokio::process::Command::new(peer_python())
        .arg(peer_script())
        .arg("--url")
        .arg(app.url(&format!("/api/v1/streams/{id}/whip")))
        .args(["--token", &format!("{id}_{token}")])
        .arg("--file")
        .arg(&file)
        .args(["--seconds", &sent_s.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs");
    wait_for_state(&app, &id, "live").await;
    assert_eq!(endpoint.session_count(), 1);
    let out = peer.wait_with_output().await.expect("peer ends");
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(report.trim()).expect("json report");
    assert_eq!(report["status"], 201, "{report}");
    assert_eq!(report["connected"], true, "{report}");
    assert_eq!(report["delete_status"], 204, "{report}");
    // DELETE ended the stream (no resume grace), and freed the session.
    wait_for_state(&app, &id, "ended").await;
    assert_eq!(endpoint.session_count(), 0);

    // ffprobe reads what viewers get: H.264 video with frames, AAC audio
    // (from Opus), about as long as what was sent.
    let url = app.url(&format!("/live/{id}/master.m3u8"));
    let summary = probe(&url).expect("ffprobe the live playlist");
    assert!(summary.has(&["h264", "aac"]), "{summary:?}");
    // At most what was sent (the peer paces the file in real time; on a
    // loaded machine it may send less, never more).
    assert!(
        summary.duration_s >= 1.0 && summary.duration_s < sent_s + 1.5,
        "no longer than the {sent_s} s sent: {summary:?}"
    );
    let master = crate::rtmp::text_of(&app, &format!("/live/{id}/master.m3u8")).await;
    assert!(
        master.matches("#EXT-X-STREAM-INF").count() >= 2,
        "the passthrough rung and the ladder:\n{master}"
    );
    let starts = onair_server::media::testsrc::ffprobe_json(&[
        "-show_entries",
        "stream=codec_name,start_time",
        &url,
    ])
    .expect("ffprobe");
    // Audio and video start together (each track's RTP clock has its own
    // random origin; the timeline places both on arrival).
    let start_of = |codec: &str| -> f64 {
        starts["streams"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["codec_name"] == codec))
            .and_then(|s| s["start_time"].as_str()?.parse().ok())
            .expect("a start time")
    };
    let skew = (start_of("aac") - start_of("h264")).abs();
    assert!(skew < 0.2, "audio and video start {skew} s apart: {starts}");
    let frames = video_frames(&url);
    eprintln!("WHIP publish of {sent_s} s: {summary:?}, {frames} video frames");
    // At least a second of the ~150 frames sent (150 on an idle machine),
    // and every frame inside the playlist's duration at 30 fps.
    assert!(frames >= 30, "{frames} video frames of about 150 sent");
    assert!(
        frames as f64 / 30.0 <= summary.duration_s + 0.5,
        "{frames} frames in {summary:?}"
    );
    onair_server::media::testsrc::decode(&url).expect("decodes without an error");

    // The recording is every source's: a VOD that ffprobe reads as H.264 +
    // AAC of the same length, once its MP4 is ready.
    let until = Instant::now() + Duration::from_secs(120);
    let rec = loop {
        let res = app
            .http
            .get(app.url(&format!("/api/v1/streams/{id}/recording")))
            .send()
            .await
            .expect("answered");
        if res.status() == 200 {
            let rec: serde_json::Value = res.json().await.expect("json");
            match rec["mp4"]["state"].as_str() {
                Some("ready") => break rec,
                Some("failed") => panic!("the MP4 failed: {rec}"),
                _ => {}
            }
        }
        assert!(Instant::now() < until, "no recording");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let vod = probe(&app.url(&format!("/vod/{id}/master.m3u8"))).expect("ffprobe the VOD");
    assert!(vod.has(&["h264", "aac"]), "{vod:?} {rec}");
    assert!(
        (vod.duration_s - summary.duration_s).abs() < 1.0,
        "{vod:?} against the live {summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_refusals_are_clear_and_counted() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let endpoint = whip_endpoint(
        &app,
        WebrtcConfig {
            max_sessions: 1,
            connect_timeout: Duration::from_secs(120),
            ..WebrtcConfig::default()
        },
    );
    let (id, token) = app.new_stream().await;
    let (other, other_token) = app.new_stream().await;
    let key = format!("{id}_{token}");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "source.mp4", 1, QUICK);
    let offer = aiortc_offer(&file).await;
    assert!(offer.contains("H264/90000"), "{offer}");

    // Each refusal: status, JSON code, and its counter moved by one.
    async fn refused(
        app: &TestApp,
        id: &str,
        token: Option<&str>,
        content_type: &str,
        body: &str,
        (status, code, reason): (u16, &str, &str),
    ) {
        let before = refusal_count(&metrics(app).await, "whip", reason);
        let a = post_offer(app, id, token, content_type, body).await;
        assert_eq!((a.status, a.code.as_str()), (status, code), "{}", a.body);
        let after = refusal_count(&metrics(app).await, "whip", reason);
        assert!(after >= before + 1.0, "{reason}: {before} -> {after}");
    }
    let sdp = "application/sdp";
    refused(
        &app,
        &id,
        Some(&key),
        sdp,
        "hello",
        (400, "malformed_sdp", "protocol"),
    )
    .await;
    let hostile = "v=0\r\nm=video 99999999999 UDP 96\r\n\u{0}";
    refused(
        &app,
        &id,
        Some(&key),
        sdp,
        hostile,
        (400, "malformed_sdp", "protocol"),
    )
    .await;
    refused(
        &app,
        &id,
        Some(&key),
        "text/plain",
        &offer,
        (415, "unsupported_media_type", "protocol"),
    )
    .await;
    let vp9_only = offer.replace("H264/90000", "VP9/90000");
    refused(
        &app,
        &id,
        Some(&key),
        sdp,
        &vp9_only,
        (400, "unsupported_codec", "unsupported_codec"),
    )
    .await;
    let no_video = {
        let cut = offer.find("m=video").expect("video section");
        let audio = offer.find("m=audio").expect("audio section");
        assert!(cut < audio, "aiortc puts video first");
        format!("{}{}", &offer[..cut], &offer[audio..])
    };
    refused(
        &app,
        &id,
        Some(&key),
        sdp,
        &no_video,
        (400, "unsupported_codec", "unsupported_codec"),
    )
    .await;
    refused(
        &app,
        &id,
        None,
        sdp,
        &offer,
        (401, "unauthenticated", "wrong_key"),
    )
    .await;
    let wrong = format!("{id}_{}", "0".repeat(64));
    refused(
        &app,
        &id,
        Some(&wrong),
        sdp,
        &offer,
        (403, "wrong_key", "wrong_key"),
    )
    .await;
    // Another stream's key is not this stream's.
    let others = format!("{other}_{other_token}");
    refused(
        &app,
        &id,
        Some(&others),
        sdp,
        &offer,
        (403, "wrong_key", "wrong_key"),
    )
    .await;
    refused(
        &app,
        "nosuchstream",
        Some(&key),
        sdp,
        &offer,
        (404, "not_found", "wrong_key"),
    )
    .await;

    // A publisher is live on the stream (another transport's, through the
    // same hub): a second one is refused.
    let (first, _, _) = app
        .state
        .ingest
        .attach(&id, onair_server::clock::now_ms(), None)
        .expect("first publisher");
    refused(
        &app,
        &id,
        Some(&key),
        sdp,
        &offer,
        (409, "already_publishing", "already_publishing"),
    )
    .await;
    drop(first);
    assert_eq!(endpoint.session_count(), 0, "no refusal holds a session");

    // The session cap (1 here): a valid offer is answered, the next refused.
    let a = post_offer(&app, &other, Some(&others), sdp, &offer).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.content_type.as_deref(), Some("application/sdp"));
    assert!(a.body.starts_with("v=0"), "{}", a.body);
    assert!(a.body.contains("a=ice-lite"), "{}", a.body);
    assert!(
        a.body.to_ascii_lowercase().contains("h264/90000"),
        "{}",
        a.body
    );
    let location = a.location.expect("Location");
    assert!(
        location.starts_with(&format!("/api/v1/streams/{other}/whip/")),
        "{location}"
    );
    assert_eq!(endpoint.session_count(), 1);
    refused(
        &app,
        &id,
        Some(&key),
        sdp,
        &offer,
        (503, "too_many_sessions", "too_many_connections"),
    )
    .await;

    // DELETE needs the stream's key too, then frees the session.
    let del = |token: Option<String>| {
        let mut req = app.http.delete(app.url(&location));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.send()
    };
    assert_eq!(
        del(Some(key.clone())).await.expect("answered").status(),
        403
    );
    assert_eq!(del(None).await.expect("answered").status(), 401);
    assert_eq!(
        del(Some(others.clone())).await.expect("answered").status(),
        204
    );
    assert_eq!(endpoint.session_count(), 0);
    assert_eq!(del(Some(others)).await.expect("answered").status(), 404);
    // Nothing went live.
    assert_ne!(state(&app, &id).await, "live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_whose_ice_never_completes_is_freed_after_the_timeout() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let endpoint = whip_endpoint(
        &app,
        WebrtcConfig {
            connect_timeout: Duration::from_secs(1),
            ..WebrtcConfig::default()
        },
    );
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "source.mp4", 1, QUICK);
    let offer = aiortc_offer(&file).await;
    let before = refusal_count(&metrics(&app).await, "whip", "timeout");

    // The offer is answered; no UDP packet is ever sent.
    let a = post_offer(
        &app,
        &id,
        Some(&format!("{id}_{token}")),
        "application/sdp",
        &offer,
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(endpoint.session_count(), 1);

    let until = Instant::now() + Duration::from_secs(60);
    while endpoint.session_count() > 0 {
        assert!(Instant::now() < until, "the session was never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = metrics(&app).await;
    assert!(
        refusal_count(&text, "whip", "timeout") >= before + 1.0,
        "counted as a timeout:\n{text}"
    );
    // The stream never went live, and a new offer is taken.
    assert_ne!(state(&app, &id).await, "live");
    let again = post_offer(
        &app,
        &id,
        Some(&format!("{id}_{token}")),
        "application/sdp",
        &offer,
    )
    .await;
    assert_eq!(again.status, 201, "{}", again.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_that_disappears_is_a_dropped_encoder() {
    let app = TestApp::start(|c| {
        c.live.passthrough_only = true;
        c.ingest.resume_grace = Duration::from_secs(2);
    })
    .await;
    let endpoint = whip_endpoint(
        &app,
        WebrtcConfig {
            connect_timeout: Duration::from_secs(1),
            ..WebrtcConfig::default()
        },
    );
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "source.mp4", 30, QUICK);
    let mut peer = tokio::process::Command::new(peer_python())
        .arg(peer_script())
        .arg("--url")
        .arg(app.url(&format!("/api/v1/streams/{id}/whip")))
        .args(["--token", &format!("{id}_{token}")])
        .arg("--file")
        .arg(&file)
        .args(["--seconds", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs");
    wait_for_state(&app, &id, "live").await;
    // Media reaches the pipeline: the live playlist has a segment.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let master = crate::rtmp::text_of(&app, &format!("/live/{id}/master.m3u8")).await;
        let variant = master
            .lines()
            .find(|l| l.ends_with("index.m3u8") && !l.starts_with('#'))
            .map(str::to_string);
        let playlist = match variant {
            Some(v) => crate::rtmp::text_of(&app, &format!("/live/{id}/{v}")).await,
            None => master,
        };
        if playlist.contains("#EXTINF") {
            break;
        }
        assert!(Instant::now() < until, "no segment:\n{playlist}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Killed: no DELETE, no DTLS close. The silent session is freed, and the
    // stream waits the resume grace, then is interrupted (not ended).
    peer.kill().await.expect("kill");
    wait_for_state(&app, &id, "interrupted").await;
    assert_eq!(endpoint.session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_encoder_panel_gives_the_whip_url_and_the_owner_needs_no_key() {
    use crate::accounts::{create_stream, mint};
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let endpoint = whip_endpoint(
        &app,
        WebrtcConfig {
            connect_timeout: Duration::from_secs(120),
            ..WebrtcConfig::default()
        },
    );
    let (_, alice) = mint(&app, "alice", "broadcaster").await;
    let (_, bob) = mint(&app, "bob", "broadcaster").await;
    let stream = create_stream(&app, &alice, "WHIP show", "public").await;
    let id = stream["id"].as_str().expect("id").to_string();
    let info: serde_json::Value = app
        .http
        .get(app.url(&format!("/api/v1/streams/{id}/encoder")))
        .header("cookie", format!("onair_session={alice}"))
        .send()
        .await
        .expect("encoder")
        .json()
        .await
        .expect("json");
    let whip_url = app.url(&format!("/api/v1/streams/{id}/whip"));
    assert_eq!(info["whip_url"].as_str(), Some(whip_url.as_str()), "{info}");
    let key = info["stream_key"].as_str().expect("key").to_string();

    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "source.mp4", 1, QUICK);
    let offer = aiortc_offer(&file).await;

    // The panel's key (not the ingest token) is a bearer token.
    let a = post_offer(&app, &id, Some(&key), "application/sdp", &offer).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let location = a.location.expect("Location");
    let res = app
        .http
        .delete(app.url(&location))
        .header("authorization", format!("Bearer {key}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status().as_u16(), 204);

    // The owner's session from this origin needs no key; someone else's does.
    let post = |session: &str| {
        app.http
            .post(&whip_url)
            .header("cookie", format!("onair_session={session}"))
            .header("origin", format!("http://{}", app.addr))
            .header("content-type", "application/sdp")
            .body(offer.clone())
            .send()
    };
    let res = post(&bob).await.expect("bob");
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(
        res.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let res = post(&alice).await.expect("alice");
    assert_eq!(res.status().as_u16(), 201);
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location")
        .to_string();
    assert_eq!(endpoint.session_count(), 1);
    // From another site, the session cookie is not taken (the API's CSRF rule).
    let res = app
        .http
        .delete(app.url(&location))
        .header("cookie", format!("onair_session={alice}"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status().as_u16(), 403);
    let res = app
        .http
        .delete(app.url(&location))
        .header("cookie", format!("onair_session={alice}"))
        .header("origin", format!("http://{}", app.addr))
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status().as_u16(), 204);
    assert_eq!(endpoint.session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_over_the_bitrate_limit_is_cut_off() {
    let app = TestApp::start(|c| {
        c.live.passthrough_only = true;
        c.ingest.max_bitrate = 100_000;
    })
    .await;
    let endpoint = whip_endpoint(&app, WebrtcConfig::default());
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "source.mp4", 10, QUICK);
    let before = refusal_count(&metrics(&app).await, "whip", "bitrate");
    let _peer = tokio::process::Command::new(peer_python())
        .arg(peer_script())
        .arg("--url")
        .arg(app.url(&format!("/api/v1/streams/{id}/whip")))
        .args(["--token", &format!("{id}_{token}")])
        .arg("--file")
        .arg(&file)
        .args(["--seconds", "10"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs");
    wait_for_state(&app, &id, "live").await;
    // aiortc sends several hundred kbit/s against a 100 kbit/s limit: the
    // session is cut off and freed, and the refusal counted.
    let until = Instant::now() + Duration::from_secs(60);
    while refusal_count(&metrics(&app).await, "whip", "bitrate") < before + 1.0 {
        assert!(Instant::now() < until, "never cut off");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while endpoint.session_count() > 0 {
        assert!(Instant::now() < until, "the session was not freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_publishes_vp8_over_whip_and_it_plays_as_h264() {
    let app = TestApp::start(|_| {}).await;
    let endpoint = whip_endpoint(&app, WebrtcConfig::default());
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("source.mp4");
    onair_server::media::testsrc::av("320x240", 10, QUICK, file.to_str().expect("utf8"))
        .expect("test media");
    let out = tokio::process::Command::new(peer_python())
        .arg(peer_script())
        .arg("--url")
        .arg(app.url(&format!("/api/v1/streams/{id}/whip")))
        .args(["--token", &format!("{id}_{token}")])
        .arg("--file")
        .arg(&file)
        .args(["--seconds", "4", "--video-codec", "VP8"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs");
    // What the pipeline measures of the input: VP8 over WHIP.
    wait_for_state(&app, &id, "live").await;
    let until = Instant::now() + Duration::from_secs(30);
    let health = loop {
        let h = app.state.ingest.session(&id).map(|s| s.health().snapshot());
        if let Some(h) = h.filter(|h| h.video.is_some()) {
            break h;
        }
        assert!(Instant::now() < until, "no video measured");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health.protocol.as_deref(), Some("whip"));
    assert_eq!(health.video.as_ref().map(|v| v.codec.as_str()), Some("vp8"));
    let out = out.wait_with_output().await.expect("peer ends");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(report.trim()).expect("json report");
    assert_eq!(report["delete_status"], 204, "{report}");
    wait_for_state(&app, &id, "ended").await;
    assert_eq!(endpoint.session_count(), 0);
    // VP8 is decoded and encoded to H.264 for HLS, like the studio's VP8.
    let url = app.url(&format!("/live/{id}/master.m3u8"));
    let summary = probe(&url).expect("ffprobe the live playlist");
    assert!(summary.has(&["h264", "aac"]), "{summary:?}");
    assert!(
        summary.duration_s >= 1.0 && summary.duration_s < 5.5,
        "{summary:?}"
    );
    let frames = video_frames(&url);
    assert!(frames >= 30, "{frames} video frames");
    onair_server::media::testsrc::decode(&url).expect("decodes without an error");
}
