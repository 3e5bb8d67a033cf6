//! Recordings: a published stream becomes a VOD and a progressive MP4 on the
//! disk store and on S3; a server killed mid-stream recovers what reached the
//! store; a broadcaster who resumes within the grace period gets one recording.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use onair_server::media::testsrc;
use serde_json::Value;

use crate::ingest::{attach, end, hello_new_period, mkv_h264_opus, send_chunks, Ws};
use crate::support::{free_port_pair, s3_app, TestApp, Weed};

/// 640x360 H.264 (a keyframe every 2 s) and AAC, as an MP4 file.
pub(crate) fn media(dir: &Path, seconds: u32) -> std::path::PathBuf {
    crate::publish::make_file(dir, "in.mp4", seconds, crate::publish::H264_AAC)
}

pub(crate) fn publish_cmd(
    server: &str,
    id: &str,
    token: &str,
    file: &Path,
    extra: &[&str],
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_onair"));
    cmd.args([
        "publish", "--server", server, "--stream", id, "--token", token,
    ])
    .args(extra)
    .arg(file);
    cmd
}

/// Polls the recording API until the MP4 is ready (or failed), returning the JSON.
pub(crate) async fn wait_recording(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    limit: Duration,
) -> Value {
    let start = Instant::now();
    let mut last = Value::Null;
    let mut progress_seen = Vec::new();
    while start.elapsed() < limit {
        if let Ok(res) = http
            .get(format!("{base}/api/v1/streams/{id}/recording"))
            .send()
            .await
        {
            if res.status() == 200 {
                last = res.json().await.expect("json");
                progress_seen.push(last["mp4"]["progress"].as_u64().unwrap_or(0));
                match last["mp4"]["state"].as_str() {
                    Some("ready") => return last,
                    Some("failed") => panic!("the MP4 failed: {last}"),
                    _ => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no ready recording after {limit:?}: {last} (progress seen: {progress_seen:?})");
}

/// Top-level MP4 box types in order.
fn top_boxes(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let mut size = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4")) as u64;
        let kind = String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned();
        if size == 1 && at + 16 <= bytes.len() {
            size = u64::from_be_bytes(bytes[at + 8..at + 16].try_into().expect("8"));
        }
        out.push(kind);
        if size < 8 {
            break;
        }
        at += size as usize;
    }
    out
}

/// Everything the issue asks of a finished recording, over HTTP.
async fn check_recording(http: &reqwest::Client, base: &str, id: &str, published_s: f64) {
    let rec = wait_recording(http, base, id, Duration::from_secs(240)).await;
    let duration_ms = rec["duration_ms"].as_u64().expect("duration");
    assert!(
        (duration_ms as f64 / 1000.0 - published_s).abs() <= 0.5,
        "VOD duration {duration_ms} ms for {published_s} s published: {rec}"
    );
    assert!(
        rec["renditions"].as_array().is_some_and(|r| r.len() >= 2),
        "{rec}"
    );
    assert!(
        rec["store_bytes"].as_u64().is_some_and(|b| b > 100_000),
        "{rec}"
    );
    assert_eq!(rec["master"], format!("/vod/{id}/master.m3u8"));

    // The VOD master plays from start to end in FFmpeg.
    let master = format!("{base}/vod/{id}/master.m3u8");
    let text = http
        .get(&master)
        .send()
        .await
        .expect("master")
        .text()
        .await
        .expect("text");
    assert!(text.contains("#EXT-X-STREAM-INF"), "{text}");
    let top = text
        .lines()
        .find(|l| l.ends_with("/index.m3u8") && !l.starts_with('#'))
        .expect("a variant");
    let media = http
        .get(format!("{base}/vod/{id}/{top}"))
        .send()
        .await
        .expect("media playlist")
        .text()
        .await
        .expect("text");
    assert!(media.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{media}");
    assert!(media.trim_end().ends_with("#EXT-X-ENDLIST"), "{media}");
    let summary = testsrc::probe(&master).expect("ffprobe the VOD");
    assert!(summary.has(&["h264", "aac"]), "{summary:?}");
    assert!(
        (summary.duration_s - published_s).abs() <= 0.5,
        "{summary:?}"
    );
    testsrc::decode(&master).expect("the VOD decodes from start to end");

    // The MP4: codecs, duration, moov first, ranges, download name.
    let mp4_url = format!("{base}/vod/{id}/recording.mp4");
    let res = http.get(&mp4_url).send().await.expect("mp4");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["accept-ranges"], "bytes");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment; filename="),
        "{:?}",
        res.headers()
    );
    let whole = res.bytes().await.expect("body");
    assert_eq!(
        Some(whole.len() as u64),
        rec["mp4"]["bytes"].as_u64(),
        "{rec}"
    );
    let boxes = top_boxes(&whole);
    let moov = boxes.iter().position(|b| b == "moov").expect("moov");
    let mdat = boxes.iter().position(|b| b == "mdat").expect("mdat");
    assert!(moov < mdat, "moov before mdat: {boxes:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("recording.mp4");
    std::fs::write(&file, &whole).expect("write");
    let probe = testsrc::probe(file.to_str().expect("utf8")).expect("ffprobe mp4");
    assert_eq!(
        probe.codecs,
        vec!["h264".to_string(), "aac".to_string()],
        "{probe:?}"
    );
    assert!(
        (probe.duration_s - published_s).abs() <= 0.1,
        "MP4 {} s for {published_s} s published",
        probe.duration_s
    );
    let ranged = http
        .get(&mp4_url)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .expect("range");
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes 1000-1999/{}", whole.len()).as_str()
    );
    assert_eq!(&ranged.bytes().await.expect("body")[..], &whole[1000..2000]);
    let tail = http
        .get(&mp4_url)
        .header("range", format!("bytes={}-", whole.len()))
        .send()
        .await
        .expect("range");
    assert_eq!(tail.status(), 416);

    // The thumbnail is a JPEG.
    let thumb = http
        .get(format!("{base}/vod/{id}/thumbnail.jpg"))
        .send()
        .await
        .expect("thumbnail");
    assert_eq!(thumb.status(), 200);
    assert_eq!(thumb.headers()["content-type"], "image/jpeg");
    assert_eq!(
        &thumb.bytes().await.expect("jpeg")[..3],
        &[0xFF, 0xD8, 0xFF]
    );
}

async fn publish_and_record(app: &TestApp) {
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = media(dir.path(), 30);
    let published = testsrc::probe(file.to_str().expect("utf8"))
        .expect("probe input")
        .duration_s;
    let out = publish_cmd(&format!("http://{}", app.addr), &id, &token, &file, &[])
        .output()
        .expect("onair publish runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_recording(&app.http, &format!("http://{}", app.addr), &id, published).await;

    // The owner's delete removes the objects and the rows.
    app.state.recorder.delete(&id).await.expect("delete");
    let gone = app
        .http
        .get(app.url(&format!("/vod/{id}/master.m3u8")))
        .send()
        .await
        .expect("master");
    assert_eq!(gone.status(), 404);
    assert!(app
        .state
        .store
        .list(&format!("streams/{id}/"))
        .await
        .expect("list")
        .is_empty());
    assert!(app.state.db.get_recording(&id).await.expect("db").is_none());
    assert!(app
        .state
        .db
        .stream_segments(&id)
        .await
        .expect("db")
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_stream_becomes_a_vod_and_an_mp4_on_disk() {
    let app = TestApp::start(|_| {}).await;
    publish_and_record(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_stream_becomes_a_vod_and_an_mp4_on_s3() {
    let (_weed, app) = s3_app("rec").await;
    publish_and_record(&app).await;
}

async fn resume_within_grace(app: &TestApp) {
    let (id, token) = app.new_stream().await;
    let split = |m: Vec<u8>| -> Vec<Vec<u8>> { m.chunks(32 * 1024).map(<[u8]>::to_vec).collect() };
    let first = split(mkv_h264_opus(6));
    let second = split(mkv_h264_opus(6));
    let (mut ws, _) = attach(app, &id, &token, None).await;
    let acked = send_chunks(&mut ws, &first, 0, first.len() as u64).await;
    drop(ws); // the broadcaster's connection dies

    // Back within the grace period, with a new recorder.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ws = reattach_new_period(app, &id, &token, acked).await;
    let base = acked + 1;
    let mut chunks = first.clone();
    chunks.extend(second.iter().cloned());
    send_chunks(&mut ws, &chunks, base, base + second.len() as u64).await;
    end(&mut ws).await;

    let rec = wait_recording(
        &app.http,
        &format!("http://{}", app.addr),
        &id,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(rec["discontinuities"], 1, "{rec}");
    let ms = rec["duration_ms"].as_u64().expect("ms");
    assert!((11_000..=13_000).contains(&ms), "both parts: {rec}");
    let master = app.url(&format!("/vod/{id}/master.m3u8"));
    let text = app
        .http
        .get(&master)
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    let top = text
        .lines()
        .find(|l| l.ends_with("/index.m3u8") && !l.starts_with('#'))
        .expect("variant");
    let media = app
        .http
        .get(app.url(&format!("/vod/{id}/{top}")))
        .send()
        .await
        .expect("media")
        .text()
        .await
        .expect("text");
    assert_eq!(
        media.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{media}"
    );
    testsrc::decode(&master).expect("both parts decode");
}

async fn reattach_new_period(app: &TestApp, id: &str, token: &str, acked: u64) -> Ws {
    use futures::SinkExt;
    for _ in 0..50 {
        let mut ws = crate::ingest::connect(app, id, Some(token)).await;
        ws.send(hello_new_period(acked, 1_795_300_100_000))
            .await
            .expect("hello");
        match crate::ingest::next(&mut ws).await {
            Ok(app::protocol::ingest::ServerMessage::Ready { .. }) => return ws,
            Err((4009, _)) => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("unexpected answer: {other:?}"),
        }
    }
    panic!("could not resume");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_within_the_grace_period_is_one_recording_on_disk() {
    let app = TestApp::start(|_| {}).await;
    resume_within_grace(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_within_the_grace_period_is_one_recording_on_s3() {
    let (_weed, app) = s3_app("resume").await;
    resume_within_grace(&app).await;
}

/// `onair serve` as its own process, so it can be killed with SIGKILL.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl Server {
    pub(crate) fn start(data: &Path, extra: &[String]) -> Server {
        let port = free_port_pair();
        let base = format!("http://127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.join("server.log"))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_onair"))
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--rtmp-addr",
                "",
                "--srt-addr",
                "",
                "--webrtc-udp-addr",
                "",
                "--data-dir",
            ])
            .arg(data)
            .args(extra)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start onair serve");
        Server { child, base }
    }

    pub(crate) async fn ready(&self, http: &reqwest::Client) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the server did not become ready");
    }

    fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Registers a broadcaster and creates a stream over the API; returns its id and token.
async fn api_stream(http: &reqwest::Client, base: &str) -> (String, String) {
    api_stream_as(http, base, "killtest").await
}

/// As [`api_stream`], for a broadcaster named `username`.
pub(crate) async fn api_stream_as(
    http: &reqwest::Client,
    base: &str,
    username: &str,
) -> (String, String) {
    let reg = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&serde_json::json!({"username": username, "password": "correct horse"}))
        .send()
        .await
        .expect("register");
    assert_eq!(reg.status(), 201);
    let cookie = reg.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let s: Value = http
        .post(format!("{base}/api/v1/streams"))
        .header("cookie", cookie)
        .header("origin", base)
        .json(&serde_json::json!({"title": "Crash test", "visibility": "public"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    (
        s["id"].as_str().expect("id").to_string(),
        s["ingest_token"].as_str().expect("token").to_string(),
    )
}

async fn crash_recovery(store: &[String], list_store: impl Fn(&str) -> Vec<String>) {
    let data = tempfile::tempdir().expect("tempdir");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut server = Server::start(data.path(), store);
    server.ready(&http).await;
    let (id, token) = api_stream(&http, &server.base).await;
    let file = media(data.path(), 30);
    let mut publisher = publish_cmd(&server.base, &id, &token, &file, &["--realtime"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("publish");
    // Wait until a few segments of the top rendition are in the store.
    let start = Instant::now();
    loop {
        let stored = list_store(&id);
        if stored.iter().filter(|k| k.ends_with(".m4s")).count() >= 8 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no segments stored: {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.kill9();
    let _ = publisher.kill();
    let _ = publisher.wait();
    let before: Vec<String> = list_store(&id)
        .into_iter()
        .filter(|k| k.ends_with(".m4s"))
        .collect();

    let server = Server::start(data.path(), store);
    server.ready(&http).await;
    let s: Value = http
        .get(format!("{}/api/v1/streams/{id}", server.base))
        .send()
        .await
        .expect("stream")
        .json()
        .await
        .expect("json");
    assert_eq!(s["state"], "interrupted", "{s}");
    let rec = wait_recording(&http, &server.base, &id, Duration::from_secs(180)).await;
    // Every segment that reached the store is in the VOD.
    let master = format!("{}/vod/{id}/master.m3u8", server.base);
    let master_text = http
        .get(&master)
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    let mut listed = Vec::new();
    for variant in master_text
        .lines()
        .filter(|l| l.ends_with("/index.m3u8") && !l.contains("URI="))
        .chain(
            master_text
                .lines()
                .filter_map(|l| l.split("URI=\"").nth(1).and_then(|r| r.split('"').next())),
        )
    {
        let rendition = variant.trim_end_matches("/index.m3u8");
        let text = http
            .get(format!("{}/vod/{id}/{variant}", server.base))
            .send()
            .await
            .expect("media")
            .text()
            .await
            .expect("text");
        for seg in text.lines().filter(|l| l.ends_with(".m4s")) {
            listed.push(format!("{rendition}/{seg}"));
        }
    }
    // Everything that reached the store is in the VOD, except that SIGKILL
    // can land between a segment's upload and its catalog row: such a
    // segment can only be the newest of its rendition (never a hole).
    let msn = |rel: &str| -> (String, u64) {
        let (r, f) = rel.rsplit_once('/').expect("rendition/file");
        (
            r.to_string(),
            f.trim_end_matches(".m4s").parse().expect("msn"),
        )
    };
    let mut missing = Vec::new();
    for key in &before {
        let rel = key.split(&format!("{id}/")).nth(1).expect("relative key");
        if !listed.iter().any(|l| l == rel) {
            missing.push(msn(rel));
        }
    }
    for (r, m) in &missing {
        let newest_listed = listed
            .iter()
            .map(|l| msn(l.as_str()))
            .filter(|(lr, _)| lr == r)
            .map(|(_, n)| n)
            .max()
            .unwrap_or(0);
        assert!(
            *m > newest_listed,
            "{r}/{m}.m4s reached the store but is not in the VOD, before listed ones: {listed:?}"
        );
        assert!(
            missing.iter().filter(|(mr, _)| mr == r).count() <= 1,
            "more than the in-flight segment of {r} is missing: {missing:?} {listed:?}"
        );
    }
    let ms = rec["duration_ms"].as_u64().expect("ms");
    assert!(ms >= 4_000, "{rec}");
    testsrc::decode(&master).expect("the recovered VOD decodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_recovers_the_stream_as_interrupted_with_its_vod_on_disk() {
    let store = tempfile::tempdir().expect("tempdir");
    let root = store.path().to_path_buf();
    let args = vec!["--store".to_string(), format!("file://{}", root.display())];
    crash_recovery(&args, move |id| {
        let mut keys = Vec::new();
        let dir = root.join("streams").join(id);
        for r in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(r.path()).into_iter().flatten().flatten() {
                keys.push(format!(
                    "streams/{id}/{}/{}",
                    r.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                ));
            }
        }
        keys
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_recovers_the_stream_as_interrupted_with_its_vod_on_s3() {
    let weed = Weed::start();
    weed.create_bucket("media").await;
    let client = weed.client();
    let handle = tokio::runtime::Handle::current();
    crash_recovery(&weed.store_args("media", "crash"), move |id| {
        let client = client.clone();
        let prefix = format!("crash/streams/{id}/");
        tokio::task::block_in_place(|| {
            handle.block_on(async move {
                let out = client
                    .list_objects_v2()
                    .bucket("media")
                    .prefix(&prefix)
                    .send()
                    .await;
                out.ok()
                    .map(|o| {
                        o.contents()
                            .iter()
                            .filter_map(|c| {
                                c.key().map(|k| k.trim_start_matches("crash/").to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            })
        })
    })
    .await;
}
