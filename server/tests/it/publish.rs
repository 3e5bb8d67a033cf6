//! `onair publish` (the real binary) against a running server.

use std::time::{Duration, Instant};

use crate::support::TestApp;

mod aac;

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

pub(crate) async fn publish(
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
    let app = TestApp::start(|_| {}).await;
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
    let app = TestApp::start(|_| {}).await;
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
    let out = publish(
        &app,
        &id,
        &token,
        &mkv,
        &["--realtime", "--progress-ms", "1000"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Progress about once a second: media time sent of the file's 3 s, rising.
    let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with("sent ")).collect();
    assert!(progress.len() >= 2, "{stderr}");
    assert!(
        progress.iter().all(|l| l.contains(" of 0:03.0 (")),
        "{stderr}"
    );
    let percents: Vec<u32> = progress
        .iter()
        .filter_map(|l| l.split_once('(')?.1.split_once('%')?.0.parse().ok())
        .collect();
    assert_eq!(percents.len(), progress.len(), "{stderr}");
    assert!(percents.windows(2).all(|w| w[0] < w[1]), "{stderr}");
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
    let app = TestApp::start(|_| {}).await;
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
    let app = TestApp::start(|c| c.ingest.max_bitrate = 2_000_000).await;
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

/// x264 as an ordinary encoder leaves it: B-frames with a pyramid
/// (`veryfast`: three B-frames, reordering two deep), and AAC.
pub const H264_BFRAMES_AAC: &[&str] = &[
    "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac",
];

/// `ffprobe` on `input`: `(pts, dts)` of every packet of the first `kind`
/// (`v` or `a`) stream, in ms, in demux order.
fn packets_ms(input: &str, kind: &str) -> Vec<(i64, i64)> {
    let json = onair_server::media::testsrc::ffprobe_json(&[
        "-select_streams",
        &format!("{kind}:0"),
        "-show_entries",
        "packet=pts_time,dts_time",
        input,
    ])
    .expect("ffprobe");
    let ms = |v: &serde_json::Value| -> i64 {
        let t: f64 = v.as_str().and_then(|t| t.parse().ok()).expect("a time");
        (t * 1000.0).round() as i64
    };
    json["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|p| (ms(&p["pts_time"]), ms(&p["dts_time"])))
        .collect()
}

/// A rendition's live playlist, as text.
async fn playlist(app: &TestApp, id: &str, rendition: &str) -> String {
    app.http
        .get(app.url(&format!("/live/{id}/{rendition}/index.m3u8")))
        .send()
        .await
        .expect("playlist")
        .text()
        .await
        .expect("text")
}

fn extinf_ms(text: &str) -> Vec<i64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|d| {
            let (s, ms) = d.trim_end_matches(',').split_once('.').expect("decimals");
            s.parse::<i64>().expect("s") * 1000 + ms.parse::<i64>().expect("ms")
        })
        .collect()
}

/// Issue 21, items 0, 2, 3 and 4, as an operator meets them: an ordinary
/// B-frame file published live with `--realtime --chunk-ms 100`. FFmpeg
/// opens the stream the moment it goes live; every rendition lasts as long
/// as the file (a 480p-or-smaller B-frame source used to come out two to
/// three times longer); frames are presented when the file says, with
/// increasing decode times; segment N is the same media in every rendition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_b_frame_file_plays_at_its_own_pace_in_every_rendition() {
    let app = TestApp::start(|_| {}).await;
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("in.mp4");
    onair_server::media::testsrc::av(
        "854x480",
        4,
        &[H264_BFRAMES_AAC, &["-g", "25", "-r", "25"]].concat(),
        file.to_str().expect("utf8 path"),
    )
    .expect("test media");
    let publisher = tokio::spawn({
        let (app_addr, id, token, file) = (app.addr, id.clone(), token.clone(), file.clone());
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_onair"))
                .args(["publish", "--server", &format!("http://{app_addr}")])
                .args(["--stream", &id, "--token", &token])
                .args(["--realtime", "--chunk-ms", "100"])
                .arg(&file)
                .output()
                .await
                .expect("onair publish runs")
        }
    });
    // The moment the master playlist is there, FFmpeg opens the stream (a
    // plain HLS client: whole segments only) and finds both streams.
    let master_url = app.url(&format!("/live/{id}/master.m3u8"));
    loop {
        let res = app.http.get(&master_url).send().await.expect("master");
        if res.status() == 200 {
            break;
        }
        assert!(
            !publisher.is_finished(),
            "the stream ended without a master playlist"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = master_url.clone();
    let at_go_live = tokio::task::spawn_blocking(move || {
        onair_server::media::testsrc::ffprobe_json(&[
            "-show_entries",
            "stream=codec_type",
            "-read_intervals",
            "%+0.5",
            &url,
        ])
    })
    .await
    .expect("join")
    .expect("FFmpeg opens the stream at go-live");
    let kinds: Vec<&str> = at_go_live["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["codec_type"].as_str())
        .collect();
    assert!(
        kinds.contains(&"video") && kinds.contains(&"audio"),
        "{at_go_live}"
    );
    let master = app.http.get(&master_url).send().await.expect("master");
    let master = master.text().await.expect("text");
    for rendition in ["480p/", "360p/", "audio/"] {
        assert!(
            master.contains(rendition),
            "the first master lists {rendition}: {master}"
        );
    }

    let out = publisher.await.expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every rendition lasts as long as the file, one GOP (1 s) a segment,
    // under one target duration.
    let mut counts = Vec::new();
    for rendition in ["480p", "360p", "audio"] {
        let text = playlist(&app, &id, rendition).await;
        let extinf = extinf_ms(&text);
        let total: i64 = extinf.iter().sum();
        // Video to the frame (40 ms at 25 fps); audio in whole AAC frames,
        // plus the encoder's one-frame priming (21 ms each).
        let allowed = if rendition == "audio" {
            -25..=64
        } else {
            -40..=40
        };
        assert!(
            allowed.contains(&(total - 4000)),
            "{rendition}: {total} ms in\n{text}"
        );
        if rendition != "audio" {
            assert!(
                extinf[..extinf.len() - 1]
                    .iter()
                    .all(|d| (d - 1000).abs() <= 1),
                "{rendition}: {extinf:?}"
            );
        }
        assert!(
            text.contains("#EXT-X-TARGETDURATION:1\n"),
            "{rendition}: {text}"
        );
        counts.push(extinf.len());
    }
    assert!(counts.windows(2).all(|w| w[0] == w[1]), "{counts:?}");

    // Presentation times are the file's (to Matroska's millisecond), decode
    // times increase; the same segment starts together in every rendition.
    let source = packets_ms(file.to_str().expect("utf8 path"), "v");
    let mut source_pts: Vec<i64> = source.iter().map(|p| p.0).collect();
    source_pts.sort_unstable();
    let mut starts = Vec::new();
    for rendition in ["480p", "360p"] {
        let url = app.url(&format!("/live/{id}/{rendition}/index.m3u8"));
        let got = tokio::task::spawn_blocking(move || packets_ms(&url, "v"))
            .await
            .expect("join");
        assert_eq!(got.len(), source.len(), "{rendition}: every frame");
        assert!(
            got.windows(2).all(|w| w[1].1 > w[0].1),
            "{rendition}: dts {got:?}"
        );
        assert!(
            got.iter().all(|p| p.1 <= p.0),
            "{rendition}: dts after pts {got:?}"
        );
        let mut pts: Vec<i64> = got.iter().map(|p| p.0).collect();
        pts.sort_unstable();
        let offset = pts[0] - source_pts[0];
        for (i, (g, s)) in pts.iter().zip(&source_pts).enumerate() {
            assert!(
                (g - s - offset).abs() <= 1,
                "{rendition}: frame {i} at {g} ms, file {s} ms"
            );
        }
        starts.push(pts[0]);
    }
    assert_eq!(starts[0], starts[1], "480p and 360p start together");
}

/// Issue 21, item 8: `onair publish` killed mid-stream and a new one started
/// a second later on the same stream with the same token. The new process's
/// media clock starts again, so the stream gets a new period
/// (`EXT-X-DISCONTINUITY` in every rendition); decode times keep increasing
/// and audio stays with the video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_publisher_on_a_live_stream_starts_a_new_period() {
    let app = TestApp::start(|_| {}).await;
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("in.mp4");
    onair_server::media::testsrc::av(
        "640x360",
        6,
        &[H264_BFRAMES_AAC, &["-g", "30"]].concat(),
        file.to_str().expect("utf8 path"),
    )
    .expect("test media");
    let command = |realtime: bool| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_onair"));
        cmd.args(["publish", "--server", &format!("http://{}", app.addr)])
            .args(["--stream", &id, "--token", &token, "--chunk-ms", "100"]);
        if realtime {
            cmd.arg("--realtime");
        }
        cmd.arg(&file).stderr(std::process::Stdio::null());
        cmd
    };
    let mut first = command(true).spawn().expect("onair publish runs");
    // Kill it once two segments are out.
    loop {
        let text = playlist(&app, &id, "360p").await;
        if extinf_ms(&text).len() >= 2 {
            break;
        }
        assert!(
            first.try_wait().expect("wait").is_none(),
            "the first publisher ended early"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().await.expect("kill");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let out = command(false).output().await.expect("onair publish runs");
    assert!(out.status.success(), "{out:?}");

    for rendition in ["360p", "audio"] {
        let text = playlist(&app, &id, rendition).await;
        assert_eq!(
            text.matches("#EXT-X-DISCONTINUITY\n").count(),
            1,
            "{rendition}: one new period\n{text}"
        );
    }
    // Decode times increase across the restart, frames keep the file's pace
    // in the new period, and audio ends with the video.
    let url = app.url(&format!("/live/{id}/360p/index.m3u8"));
    let video = tokio::task::spawn_blocking({
        let url = url.clone();
        move || packets_ms(&url, "v")
    })
    .await
    .expect("join");
    assert!(
        video.windows(2).all(|w| w[1].1 > w[0].1),
        "dts goes back: {video:?}"
    );
    let source = packets_ms(file.to_str().expect("utf8 path"), "v");
    let second: Vec<i64> = {
        let mut pts: Vec<i64> = video[video.len() - source.len()..]
            .iter()
            .map(|p| p.0)
            .collect();
        pts.sort_unstable();
        pts
    };
    let mut source_pts: Vec<i64> = source.iter().map(|p| p.0).collect();
    source_pts.sort_unstable();
    for (i, (g, s)) in second.iter().zip(&source_pts).enumerate() {
        let d = (g - second[0]) - (s - source_pts[0]);
        assert!(
            d.abs() <= 1,
            "new period: frame {i} is {d} ms off the file's pace"
        );
    }
    let audio_url = app.url(&format!("/live/{id}/audio/index.m3u8"));
    let audio = tokio::task::spawn_blocking(move || packets_ms(&audio_url, "a"))
        .await
        .expect("join");
    let video_end = video.iter().map(|p| p.0).max().expect("video");
    let audio_end = audio.iter().map(|p| p.0).max().expect("audio");
    assert!(
        (audio_end - video_end).abs() <= 60,
        "audio ends at {audio_end} ms, video at {video_end} ms"
    );
}
