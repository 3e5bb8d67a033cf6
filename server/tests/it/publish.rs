//! `onair publish` (the real binary) against a running server.

use std::time::{Duration, Instant};

use crate::support::TestApp;

/// H.264 with a keyframe every 2 s (at 30 fps) and AAC: what the server copies.
pub const H264_AAC: &[&str] = &[
    "-pix_fmt",
    "yuv420p",
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-g",
    "60",
    "-c:a",
    "aac",
];

/// A 640x360 test file of `seconds` with these FFmpeg codec arguments.
pub fn make_file(
    dir: &std::path::Path,
    name: &str,
    seconds: u32,
    codec_args: &[&str],
) -> std::path::PathBuf {
    let path = dir.join(name);
    onair_server::media::testsrc::av(
        "640x360",
        seconds,
        codec_args,
        path.to_str().expect("utf8 path"),
    )
    .expect("test media");
    path
}

async fn publish(
    app: &TestApp,
    id: &str,
    token: &str,
    file: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_onair"))
        .args([
            "publish",
            "--server",
            &format!("http://{}", app.addr),
            "--stream",
            id,
            "--token",
            token,
        ])
        .args(extra)
        .arg(file)
        .output()
        .await
        .expect("onair publish runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mp4_file_is_published_and_plays() {
    let app = TestApp::start(&[]).await;
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = make_file(dir.path(), "in.mp4", 6, H264_AAC);
    let out = publish(&app, &id, &token, &mp4, &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("the stream has ended"), "{stderr}");
    // Codecs the server takes are copied, not re-encoded.
    assert!(
        stderr.contains("copying video stream 0 (h264)")
            && stderr.contains("copying audio stream 1 (aac)")
            && !stderr.contains("encoding"),
        "{stderr}"
    );

    let url = app.url(&format!("/live/{id}/master.m3u8"));
    let summary = onair_server::media::testsrc::probe(&url).expect("ffprobe");
    assert!(summary.has(&["h264", "aac"]), "{summary:?}");
    assert!(
        (summary.duration_s - 6.0).abs() <= 2.0,
        "within one segment of the input: {summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_pacing_refusals_and_vp8() {
    let app = TestApp::start(&[]).await;
    let dir = tempfile::tempdir().expect("tempdir");

    // --realtime sends at the media's pace: 3 s of media takes about 3 s.
    let (id, token) = app.new_stream().await;
    let mkv = make_file(
        dir.path(),
        "in.mkv",
        3,
        &[
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
        ],
    );
    let started = Instant::now();
    let out = publish(&app, &id, &token, &mkv, &["--realtime"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "paced: {:?}",
        started.elapsed()
    );

    // A file that is not media fails before anything is sent, with the reason.
    let (id, token) = app.new_stream().await;
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "not a video").expect("write");
    let out = publish(&app, &id, &token, &junk, &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot open"), "{stderr}");

    // A VP8 WebM (what Chromium records by default) is published and transcoded.
    let (id, token) = app.new_stream().await;
    let webm = make_file(
        dir.path(),
        "in.webm",
        2,
        &["-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus"],
    );
    let out = publish(&app, &id, &token, &webm, &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let master = app
        .http
        .get(app.url(&format!("/live/{id}/master.m3u8")))
        .send()
        .await
        .expect("master");
    assert!(master
        .text()
        .await
        .expect("text")
        .contains("RESOLUTION=640x360"));

    // A wrong token is refused too.
    let out = publish(&app, &id, "wrong", &mkv, &[]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("4001"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mpeg4_video_and_mp3_audio_are_encoded_published_and_play() {
    let app = TestApp::start(&[]).await;
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // An old-style AVI the server does not take: MPEG-4 Part 2 and MP3.
    let avi = make_file(
        dir.path(),
        "in.avi",
        6,
        &["-c:v", "mpeg4", "-q:v", "5", "-c:a", "libmp3lame"],
    );
    let out = publish(&app, &id, &token, &avi, &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("encoding video stream 0 (mpeg4) to H.264 with libx264")
            && stderr.contains("encoding audio stream 1 (mp3) to opus with libopus")
            && !stderr.contains("copying"),
        "{stderr}"
    );

    // The server passes the H.264 through and makes AAC of the Opus.
    let url = app.url(&format!("/live/{id}/master.m3u8"));
    let master = app
        .http
        .get(&url)
        .send()
        .await
        .expect("master")
        .text()
        .await
        .expect("text");
    assert!(master.contains("RESOLUTION=640x360"), "{master}");
    let summary = onair_server::media::testsrc::probe(&url).expect("ffprobe");
    assert!(summary.has(&["h264", "aac"]), "{summary:?}");
    assert!(
        (summary.duration_s - 6.0).abs() <= 2.0,
        "within one segment of the input: {summary:?}"
    );
    onair_server::media::testsrc::decode(&url).expect("every stream decodes over HTTP");
}

/// Without `--realtime` a file goes as fast as the server's ingest limit
/// allows, and no faster: a server limited to 2 Mbit/s takes it whole
/// (before, the burst was refused with 4029).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_paced_under_the_servers_ingest_limit() {
    let app = TestApp::start(&["--ingest-max-bitrate".into(), "2000000".into()]).await;
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mp4 = make_file(dir.path(), "in.mp4", 6, H264_AAC);
    let bits = std::fs::metadata(&mp4).expect("size").len() as f64 * 8.0;
    assert!(
        bits > 2.0 * 2_000_000.0,
        "the file is more than a 2 s burst: {bits} bits"
    );
    let started = Instant::now();
    let out = publish(&app, &id, &token, &mp4, &[]).await;
    let took = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // At most 90% of 2 Mbit/s (the container overhead only adds to this).
    let floor = bits / (0.9 * 2_000_000.0) * 0.9;
    assert!(
        took >= floor,
        "sent {bits} bits in {took:.1} s, faster than the limit allows ({floor:.1} s)"
    );
}
