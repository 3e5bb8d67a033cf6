//! WHEP playback with independent peers on both sides: aiortc (PyPI,
//! tools/whip-peer) publishes an FFmpeg-made file over WHIP, and other
//! aiortc processes play it over WHEP from the same server on 127.0.0.1,
//! decoding what they get. Refusals are checked with aiortc's own offers.

use std::process::Stdio;
use std::time::{Duration, Instant};

use onair_server::db::streams::StreamChanges;
use onair_server::webrtc::WebrtcConfig;

use crate::publish::make_file;
use crate::rtmp::{
    ffmpeg_publish, metrics, rtmp_listener, text_of, wait_for_state, OBS_LIKE, QUICK,
};
use crate::support::TestApp;
use crate::whip::{aiortc_offer, peer_python, peer_script, post_offer, whip_endpoint, Answer};

/// `onair_playback_refusals_total{transport="whep",reason}`.
fn refusals(text: &str, reason: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with("onair_playback_refusals_total")
                && l.contains("transport=\"whep\"")
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// aiortc's WHEP offer (recvonly video and audio).
pub(crate) async fn viewer_offer() -> String {
    let out = tokio::process::Command::new(peer_python())
        .arg(peer_script())
        .args([
            "--mode",
            "whep",
            "--url",
            "http://127.0.0.1:9/unused",
            "--offer-only",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let offer = String::from_utf8(out.stdout).expect("utf8 offer");
    assert!(offer.contains("a=recvonly"), "{offer}");
    offer
}

pub(crate) async fn post_whep(
    app: &TestApp,
    id: &str,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> Answer {
    let mut req = app
        .http
        .post(app.url(&format!("/api/v1/streams/{id}/whep")))
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

/// Starts an aiortc process: `args` after the script.
pub(crate) fn peer(args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(peer_python())
        .arg(peer_script())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs")
}

/// aiortc publishes `size` test media (made in `dir`, `media_s` long) to
/// stream `id` of `app` over WHIP for `seconds`, with `extra` arguments;
/// returns the publisher once the stream is live.
pub(crate) async fn whip_publish(
    app: &TestApp,
    (id, token): (&str, &str),
    dir: &std::path::Path,
    (size, media_s): (&str, u32),
    seconds: u32,
    extra: &[&str],
) -> tokio::process::Child {
    let file = dir.join("source.mp4");
    onair_server::media::testsrc::av(size, media_s, QUICK, file.to_str().expect("utf8"))
        .expect("test media");
    let whip = app.url(&format!("/api/v1/streams/{id}/whip"));
    let key = format!("{id}_{token}");
    let seconds = seconds.to_string();
    let mut args = vec![
        "--url",
        &whip,
        "--token",
        &key,
        "--file",
        file.to_str().expect("utf8"),
        "--seconds",
        &seconds,
    ];
    args.extend_from_slice(extra);
    let publisher = peer(&args);
    wait_for_state(app, id, "live").await;
    publisher
}

pub(crate) async fn report_of(child: tokio::process::Child) -> serde_json::Value {
    let out = child.wait_with_output().await.expect("peer ends");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.trim()).expect("json report")
}

/// Polls `done` every 100 ms; fails with `what` after a minute.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_plays_an_aiortc_whip_publish_over_whep() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let endpoint = whip_endpoint(
        &app,
        WebrtcConfig {
            connect_timeout: Duration::from_secs(3),
            ..WebrtcConfig::default()
        },
    );
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let whep = app.url(&format!("/api/v1/streams/{id}/whep"));
    let publisher = whip_publish(&app, (&id, &token), dir.path(), ("640x360", 30), 25, &[]).await;

    // A viewer whose ICE never starts: freed at the connect time-out
    // (3 s here), counted, while the publisher plays on.
    let timeouts = refusals(&metrics(&app).await, "timeout");
    let offer = viewer_offer().await;
    let dead = post_whep(&app, &id, None, "application/sdp", &offer).await;
    assert_eq!(dead.status, 201, "{}", dead.body);
    assert_eq!(dead.content_type.as_deref(), Some("application/sdp"));
    assert!(dead.body.contains("a=ice-lite"), "{}", dead.body);
    let location = dead.location.expect("Location");
    assert!(
        location.starts_with(&format!("/api/v1/streams/{id}/whep/")),
        "{location}"
    );
    assert_eq!(endpoint.viewer_count(), 1);

    // Two aiortc viewers: one plays 4 s and leaves (DELETE), one stays
    // until the publisher is gone.
    let short = peer(&["--mode", "whep", "--url", &whep, "--seconds", "4"]);
    let long = peer(&["--mode", "whep", "--url", &whep, "--seconds", "60"]);
    let report = report_of(short).await;
    eprintln!("the WHEP viewer's report: {report}");
    assert_eq!(report["status"], 201, "{report}");
    assert_eq!(report["connected"], true, "{report}");
    assert_eq!(report["delete_status"], 204, "{report}");
    // 4 s of 30 fps decoded (aiortc re-encodes at its own rate; at least
    // a few seconds' worth), at the source's size, the picture moving.
    let frames = report["video_frames"].as_u64().expect("count");
    assert!(frames > 30, "{report}");
    assert_eq!(
        (report["width"].as_u64(), report["height"].as_u64()),
        (Some(640), Some(360)),
        "{report}"
    );
    let distinct = report["distinct_pictures"].as_u64().expect("count");
    assert!(distinct > 20, "the picture moves: {report}");
    // Opus at 48 kHz, not silence (the file has a tone).
    assert!(
        report["audio_frames"].as_u64().expect("count") > 50,
        "{report}"
    );
    assert_eq!(report["audio_rate"], 48_000, "{report}");
    assert!(
        report["audio_loud"].as_u64().expect("count") > 10,
        "{report}"
    );

    let text = metrics(&app).await;
    assert!(
        refusals(&text, "timeout") >= timeouts + 1.0,
        "the dead viewer is freed and counted:\n{text}"
    );
    // The long viewer is the one left.
    until("only the staying viewer is held", || {
        endpoint.viewer_count() == 1
    })
    .await;
    let gone = app
        .http
        .delete(app.url(&location))
        .send()
        .await
        .expect("answered");
    assert_eq!(gone.status(), 404, "the freed viewer's resource is gone");

    // The publisher ends (its DELETE, at 25 s): the staying viewer is
    // freed by the server, while its process still runs.
    let report = report_of(publisher).await;
    assert_eq!(report["delete_status"], 204, "{report}");
    until("the publisher's viewers are freed", || {
        endpoint.viewer_count() == 0
    })
    .await;
    drop(long);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_refusals_are_clear_and_counted() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let endpoint = whip_endpoint(
        &app,
        WebrtcConfig {
            max_viewers: 1,
            connect_timeout: Duration::from_secs(120),
            ..WebrtcConfig::default()
        },
    );
    let (id, token) = app.new_stream().await;
    let (idle, _) = app.new_stream().await;
    let (rtmp, _) = app.new_stream().await;
    let (private, _) = app.new_stream().await;
    app.state
        .db
        .update_stream(
            &private,
            StreamChanges {
                visibility: Some("private".into()),
                ..StreamChanges::default()
            },
        )
        .await
        .expect("update")
        .expect("stream");
    let offer = viewer_offer().await;
    let sdp = "application/sdp";

    async fn refused(
        app: &TestApp,
        id: &str,
        token: Option<&str>,
        content_type: &str,
        body: &str,
        (status, code, reason): (u16, &str, &str),
    ) {
        let before = refusals(&metrics(app).await, reason);
        let a = post_whep(app, id, token, content_type, body).await;
        assert_eq!((a.status, a.code.as_str()), (status, code), "{}", a.body);
        let after = refusals(&metrics(app).await, reason);
        assert!(after >= before + 1.0, "{reason}: {before} -> {after}");
    }

    // Unknown, hostile ids, a stream that is not live.
    let not_found = (404, "not_found", "not_found");
    refused(&app, "nosuchstream", None, sdp, &offer, not_found).await;
    refused(&app, "..%2F..%2Fetc", None, sdp, &offer, not_found).await;
    let not_live = (409, "not_live", "not_live");
    refused(&app, &idle, None, sdp, &offer, not_live).await;
    // A stream live from another source (RTMP-like, through the hub) is
    // answered: it is fed from its pipeline. Its DELETE frees the viewer
    // and detaches the pipeline's WebRTC output.
    let (held, _, _) = app
        .state
        .ingest
        .attach(&rtmp, onair_server::clock::now_ms(), None)
        .expect("an RTMP-like publisher");
    let fed = post_whep(&app, &rtmp, None, sdp, &offer).await;
    assert_eq!(fed.status, 201, "{}", fed.body);
    assert!(fed.body.contains("a=sendonly"), "{}", fed.body);
    assert!(app.state.ingest.rtc_feed(&rtmp).attached());
    let location = fed.location.expect("Location");
    let gone = app.http.delete(app.url(&location)).send().await;
    assert_eq!(gone.expect("answered").status(), 204);
    assert!(!app.state.ingest.rtc_feed(&rtmp).attached());
    assert_eq!(endpoint.viewer_count(), 0);
    drop(held);

    // A private stream: no token, a wrong one, an expired one; the right
    // one gets past the gate (to "not live").
    let need = (401, "playback_token_required", "token_required");
    refused(&app, &private, None, sdp, &offer, need).await;
    let wrong = (403, "playback_token_invalid", "wrong_token");
    let forged = format!("{}.AAAA", u64::MAX);
    refused(&app, &private, Some(&forged), sdp, &offer, wrong).await;
    let signer = &app.state.accounts.playback;
    let others = signer.sign(&id, onair_server::auth::playback::unix_now() + 600);
    refused(&app, &private, Some(&others), sdp, &offer, wrong).await;
    let expired = signer.sign(&private, 1);
    refused(&app, &private, Some(&expired), sdp, &offer, wrong).await;
    let valid = signer.sign(&private, onair_server::auth::playback::unix_now() + 600);
    refused(&app, &private, Some(&valid), sdp, &offer, not_live).await;
    let by_query = app
        .http
        .post(app.url(&format!("/api/v1/streams/{private}/whep?token={valid}")))
        .header("content-type", sdp)
        .body(offer.clone())
        .send()
        .await
        .expect("answered");
    assert_eq!(by_query.status(), 409, "the token in the query works too");

    // A WHIP source (an answered offer, live through the hub) for the rest.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "source.mp4", 1, QUICK);
    let whip_offer = aiortc_offer(&file).await;
    let key = format!("{id}_{token}");
    let a = post_offer(&app, &id, Some(&key), sdp, &whip_offer).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let (live, _, _) = app
        .state
        .ingest
        .attach(&id, onair_server::clock::now_ms(), None)
        .expect("live");

    let protocol = (400, "malformed_sdp", "protocol");
    refused(&app, &id, None, sdp, "hello", protocol).await;
    let hostile = "v=0\r\nm=video 99999999999 UDP 96\r\n\u{0}";
    refused(&app, &id, None, sdp, hostile, protocol).await;
    let media_type = (415, "unsupported_media_type", "protocol");
    refused(&app, &id, None, "text/plain", &offer, media_type).await;
    let codec = (400, "unsupported_codec", "unsupported_codec");
    let vp9 = offer
        .replace("H264/90000", "VP9/90000")
        .replace("VP8/90000", "VP9/90000");
    refused(&app, &id, None, sdp, &vp9, codec).await;
    // VP8 only, for a stream published in H.264: no codec in common.
    let vp8_only = offer.replace("H264/90000", "VP9/90000");
    refused(&app, &id, None, sdp, &vp8_only, codec).await;
    assert_eq!(endpoint.viewer_count(), 0, "no refusal holds a viewer");

    // The viewer cap (1 here): one is answered, the next refused.
    let first = post_whep(&app, &id, None, sdp, &offer).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(first.body.contains("a=sendonly"), "{}", first.body);
    let too_many = (503, "too_many_viewers", "too_many_viewers");
    refused(&app, &id, None, sdp, &offer, too_many).await;
    // DELETE frees the slot; a second DELETE finds nothing.
    let location = first.location.expect("Location");
    let del = || app.http.delete(app.url(&location)).send();
    assert_eq!(del().await.expect("answered").status(), 204);
    assert_eq!(endpoint.viewer_count(), 0);
    assert_eq!(del().await.expect("answered").status(), 404);
    let again = post_whep(&app, &id, None, sdp, &offer).await;
    assert_eq!(again.status, 201, "{}", again.body);
    drop(live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vp8_whip_publish_plays_over_whep() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let endpoint = whip_endpoint(&app, WebrtcConfig::default());
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let whep = app.url(&format!("/api/v1/streams/{id}/whep"));
    let publisher = whip_publish(
        &app,
        (&id, &token),
        dir.path(),
        ("320x240", 20),
        12,
        &["--video-codec", "VP8"],
    )
    .await;
    // aiortc offers VP8 and H.264; the publisher's VP8 frames are forwarded.
    let report = report_of(peer(&["--mode", "whep", "--url", &whep, "--seconds", "3"])).await;
    eprintln!("the WHEP viewer's report: {report}");
    assert_eq!(report["connected"], true, "{report}");
    assert!(
        report["video_frames"].as_u64().expect("count") > 20,
        "{report}"
    );
    assert_eq!(
        (report["width"].as_u64(), report["height"].as_u64()),
        (Some(320), Some(240)),
        "{report}"
    );
    assert!(
        report["distinct_pictures"].as_u64().expect("count") > 10,
        "{report}"
    );
    assert!(
        report["audio_frames"].as_u64().expect("count") > 25,
        "{report}"
    );
    assert_eq!(endpoint.viewer_count(), 0, "its DELETE freed it");
    let report = report_of(publisher).await;
    assert_eq!(report["delete_status"], 204, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtmp_publish_plays_over_whep_and_ll_hls_at_once() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let endpoint = whip_endpoint(&app, WebrtcConfig::default());
    let base = rtmp_listener(&app).await;
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // OBS's x264 defaults: B-frames, a keyframe a second, AAC with a tone.
    let file = make_file(dir.path(), "obs.mp4", 20, OBS_LIKE);
    let mut encoder = ffmpeg_publish(&file, &format!("{base}/{id}_{token}"), &["-c", "copy"])
        .spawn()
        .expect("ffmpeg");
    wait_for_state(&app, &id, "live").await;
    assert!(
        !app.state.ingest.rtc_feed(&id).attached(),
        "no WebRTC output without a viewer"
    );

    let whep = app.url(&format!("/api/v1/streams/{id}/whep"));
    let viewer = peer(&["--mode", "whep", "--url", &whep, "--seconds", "5"]);
    // LL-HLS plays at the same time: the master playlist answers and
    // ffprobe reads the rendition's media.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let master = text_of(&app, &format!("/live/{id}/master.m3u8")).await;
        if master.starts_with("#EXTM3U") {
            break;
        }
        assert!(Instant::now() < deadline, "no master playlist: {master}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = app.url(&format!("/live/{id}/master.m3u8"));
    let probed = onair_server::media::testsrc::ffprobe_json(&[
        "-show_entries",
        "stream=codec_name,width,height",
        &url,
    ])
    .expect("ffprobe the live playlist");
    let codecs: Vec<&str> = probed["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert!(
        codecs.contains(&"h264") && codecs.contains(&"aac"),
        "{probed}"
    );

    let report = report_of(viewer).await;
    eprintln!("the WHEP viewer's report: {report}");
    assert_eq!(report["status"], 201, "{report}");
    assert_eq!(report["connected"], true, "{report}");
    assert_eq!(report["delete_status"], 204, "{report}");
    // The passthrough rendition, decoded at its size, the picture moving
    // (the wait for the first keyframe is at most a second here).
    let frames = report["video_frames"].as_u64().expect("count");
    assert!(frames > 30, "{report}");
    assert_eq!(
        (report["width"].as_u64(), report["height"].as_u64()),
        (Some(640), Some(360)),
        "{report}"
    );
    let distinct = report["distinct_pictures"].as_u64().expect("count");
    assert!(distinct > 20, "the picture moves: {report}");
    // The AAC encoded to Opus at 48 kHz, the tone in it.
    assert!(
        report["audio_frames"].as_u64().expect("count") > 50,
        "{report}"
    );
    assert_eq!(report["audio_rate"], 48_000, "{report}");
    assert!(
        report["audio_loud"].as_u64().expect("count") > 10,
        "{report}"
    );
    // The viewer left: the pipeline no longer converts anything for WebRTC.
    assert_eq!(endpoint.viewer_count(), 0);
    assert!(!app.state.ingest.rtc_feed(&id).attached());
    assert_eq!(crate::rtmp::state(&app, &id).await, "live");
    let _ = encoder.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_publish_with_opus_plays_over_whep() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let endpoint = whip_endpoint(&app, WebrtcConfig::default());
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // What a browser's MediaRecorder sends: Matroska, H.264 and Opus (kept
    // as sent for the WHEP viewer).
    let codecs = [
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "30",
        "-c:a",
        "libopus",
    ];
    let mkv = make_file(dir.path(), "in.mkv", 15, &codecs);
    let mut publisher = tokio::process::Command::new(env!("CARGO_BIN_EXE_onair"))
        .args(["publish", "--server", &format!("http://{}", app.addr)])
        .args(["--stream", &id, "--token", &token, "--realtime"])
        .arg(&mkv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("onair publish runs");
    wait_for_state(&app, &id, "live").await;

    let whep = app.url(&format!("/api/v1/streams/{id}/whep"));
    let report = report_of(peer(&["--mode", "whep", "--url", &whep, "--seconds", "4"])).await;
    assert_played(&report, (640, 360));
    assert_eq!(endpoint.viewer_count(), 0, "its DELETE freed it");
    let _ = publisher.kill().await;
}

/// An aiortc viewer's report of about 4 s of a 30 fps stream with a tone:
/// more than 30 frames decoded at `size`, more than 20 distinct, more than
/// 50 Opus frames at 48 kHz, more than 10 not silent; its DELETE answered.
pub(crate) fn assert_played(report: &serde_json::Value, size: (u64, u64)) {
    eprintln!("the WHEP viewer's report: {report}");
    assert_eq!(report["connected"], true, "{report}");
    assert_eq!(report["delete_status"], 204, "{report}");
    assert!(
        report["video_frames"].as_u64().expect("count") > 30,
        "{report}"
    );
    assert_eq!(
        (report["width"].as_u64(), report["height"].as_u64()),
        (Some(size.0), Some(size.1)),
        "{report}"
    );
    assert!(
        report["distinct_pictures"].as_u64().expect("count") > 20,
        "{report}"
    );
    assert!(
        report["audio_frames"].as_u64().expect("count") > 50,
        "{report}"
    );
    assert_eq!(report["audio_rate"], 48_000, "{report}");
    assert!(
        report["audio_loud"].as_u64().expect("count") > 10,
        "{report}"
    );
}
