//! SIGTERM mid-stream (issue #18, "chaos"): a graceful shutdown finishes the
//! live pipelines' segments, writes the catalog and leaves the streams
//! resumable; after the restart a publisher that comes back continues its
//! stream as a new period of the same recording, and a stream whose
//! publisher does not is interrupted after the resume grace with its
//! recording built.

use std::process::Stdio;
use std::time::{Duration, Instant};

use onair_server::media::testsrc;
use serde_json::Value;

use crate::recording::{api_stream_as, media, publish_cmd, wait_recording, Server};

/// The resume grace after the restart, s.
const GRACE_S: u64 = 12;

async fn json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json")
}

async fn text(http: &reqwest::Client, url: &str) -> String {
    http.get(url)
        .send()
        .await
        .expect("answered")
        .text()
        .await
        .expect("text")
}

/// Segment files (`<msn>.m4s`) of a stream's top rendition on disk.
fn stored(root: &std::path::Path, id: &str) -> Vec<u64> {
    let dir = root.join("streams").join(id);
    let mut out: Vec<u64> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|r| r.path().is_dir())
        .flat_map(|r| std::fs::read_dir(r.path()).into_iter().flatten().flatten())
        .filter_map(|f| f.file_name().to_str()?.strip_suffix(".m4s")?.parse().ok())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The segments a stream's VOD lists (its first rendition), and its
/// discontinuities.
async fn vod(http: &reqwest::Client, base: &str, id: &str) -> (Vec<u64>, usize) {
    let master = text(http, &format!("{base}/vod/{id}/master.m3u8")).await;
    let variant = master
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m3u8"))
        .expect("a rendition")
        .to_string();
    let playlist = text(http, &format!("{base}/vod/{id}/{variant}")).await;
    let segments = playlist
        .lines()
        .filter_map(|l| l.strip_suffix(".m4s")?.rsplit('/').next()?.parse().ok())
        .collect();
    let discontinuities = playlist
        .lines()
        .filter(|l| *l == "#EXT-X-DISCONTINUITY")
        .count();
    (segments, discontinuities)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_live_streams_resumable_and_a_restart_continues_or_interrupts_them() {
    let data = tempfile::tempdir().expect("tempdir");
    let store = tempfile::tempdir().expect("tempdir");
    let args = vec![
        "--store".to_string(),
        format!("file://{}", store.path().display()),
        "--passthrough-only".into(),
        "--ingest-resume-grace".into(),
        GRACE_S.to_string(),
    ];
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut server = Server::start(data.path(), &args);
    server.ready(&http).await;
    // Two streams live at once: one whose publisher comes back, one whose
    // publisher does not.
    let (back, back_token) = api_stream_as(&http, &server.base, "comesback").await;
    let (gone, gone_token) = api_stream_as(&http, &server.base, "staysaway").await;
    let file = media(data.path(), 40);
    let mut publishers: Vec<_> = [(&back, &back_token), (&gone, &gone_token)]
        .into_iter()
        .map(|(id, token)| {
            publish_cmd(&server.base, id, token, &file, &["--realtime"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("publish")
        })
        .collect();
    let start = Instant::now();
    while stored(store.path(), &back).len() < 4 || stored(store.path(), &gone).len() < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no segments stored"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // What the live playlist named just before the shutdown.
    let live_master = text(&http, &format!("{}/live/{back}/master.m3u8", server.base)).await;
    let variant = live_master
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m3u8"))
        .expect("a live rendition")
        .to_string();
    let live = text(&http, &format!("{}/live/{back}/{variant}", server.base)).await;
    let named_live: Vec<u64> = live
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_suffix(".m4s")?.parse().ok())
        .collect();
    assert!(!named_live.is_empty(), "{live}");

    // SIGTERM: the server finishes and exits by itself.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status();
    let stopping = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(60),
            "the server did not stop within 60 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "onair serve exited with {status}");
    for p in &mut publishers {
        let _ = p.kill();
        let _ = p.wait();
    }
    let listed: Vec<String> = serde_json::from_slice(
        &std::fs::read(data.path().join("resumable.json")).expect("the resumable list"),
    )
    .expect("a list");
    assert!(
        listed.contains(&back) && listed.contains(&gone),
        "{listed:?}"
    );
    let before_back = stored(store.path(), &back);
    // The segments the live playlist named were finished and stored,
    // the open one included.
    for n in &named_live {
        assert!(
            before_back.contains(n),
            "segment {n} was lost: {before_back:?}"
        );
    }

    // The restart: both streams are still live (resumable), not interrupted.
    let server = Server::start(data.path(), &args);
    server.ready(&http).await;
    for id in [&back, &gone] {
        let s = json(&http, &format!("{}/api/v1/streams/{id}", server.base)).await;
        assert_eq!(s["state"], "live", "{id} after the restart: {s}");
    }
    assert!(!data.path().join("resumable.json").exists(), "read once");

    // One publisher comes back within the grace and finishes its stream.
    let short = data.path().join("short");
    std::fs::create_dir_all(&short).expect("dir");
    let file2 = media(&short, 6);
    let out = publish_cmd(&server.base, &back, &back_token, &file2, &["--realtime"])
        .output()
        .expect("onair publish runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_recording(&http, &server.base, &back, Duration::from_secs(180)).await;
    let s = json(&http, &format!("{}/api/v1/streams/{back}", server.base)).await;
    assert_eq!(s["state"], "ended", "{s}");
    let (segments, discontinuities) = vod(&http, &server.base, &back).await;
    for n in &before_back {
        assert!(
            segments.contains(n),
            "segment {n} stored before SIGTERM is not in the recording: {segments:?}"
        );
    }
    assert!(
        segments
            .iter()
            .any(|n| *n > *before_back.last().unwrap_or(&0)),
        "the second period is in the recording: {segments:?}"
    );
    assert_eq!(discontinuities, 1, "two periods: {segments:?}");
    // It decodes. The second period is a new session whose timestamps
    // start again after the EXT-X-DISCONTINUITY, as HLS allows; FFmpeg's
    // HLS reader does not offset them, so its null muxer warns of
    // non-monotonic audio DTS there. Every other message fails the test.
    let master = format!("{}/vod/{back}/master.m3u8", server.base);
    let errors = match testsrc::decode(&master) {
        Ok(()) => String::new(),
        Err(e) => e,
    };
    let body = errors
        .split_once(" failed: ")
        .map_or(errors.as_str(), |(_, b)| b);
    let unexpected: Vec<&str> = body
        .lines()
        .filter(|l| !l.contains("non monotonically increasing dts to muxer"))
        .collect();
    assert!(unexpected.is_empty(), "{errors}");
    let frames = testsrc::probe(&master).expect("ffprobe the recording");
    assert!(frames.duration_s > 8.0, "{frames:?}");

    // The other one's publisher never came back: interrupted after the
    // grace, with its recording of what was stored.
    let waited = Instant::now();
    loop {
        let s = json(&http, &format!("{}/api/v1/streams/{gone}", server.base)).await;
        if s["state"] == "interrupted" {
            break;
        }
        assert_eq!(s["state"], "live", "{s}");
        assert!(
            waited.elapsed() < Duration::from_secs(GRACE_S + 60),
            "never interrupted: {s}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    wait_recording(&http, &server.base, &gone, Duration::from_secs(180)).await;
    let (segments, _) = vod(&http, &server.base, &gone).await;
    assert!(segments.len() >= 4, "{segments:?}");
}
