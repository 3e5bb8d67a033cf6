//! Failover: two `onair serve` processes on one NATS, one SurrealDB server
//! and one S3 (SeaweedFS), all on 127.0.0.1 and started here. FFmpeg
//! publishes over RTMP to node A; a viewer watches on node B (forwarded to
//! A). A is killed with SIGKILL mid-stream: its lease lapses within its
//! time to live, the encoder publishes again to B with the same key within
//! the resume grace, and
//! - the stream goes on from B, numbered after everything A stored and
//!   everything a viewer saw in A's playlist (no URL names other media);
//! - the viewer on B gets a playlist again, and ffprobe reads frames;
//! - the recording holds both periods (one `EXT-X-DISCONTINUITY` where
//!   they meet) and every segment stored before the kill;
//! - a second stream on A whose encoder never comes back is marked
//!   interrupted by B once the resume grace is over, and its recording is
//!   built from what A stored.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use onair_server::media::testsrc::{decode, ffprobe_json};
use serde_json::Value;

use crate::cluster::{eventually, NatsServer};
use crate::publish::make_file;
use crate::rtmp::{ffmpeg_publish, QUICK};
use crate::support::{free_port_pair, SurrealServer, Weed, SURREAL_PASSWORD};

/// An `onair serve` process of the cluster, with its RTMP listener.
struct Node {
    child: Child,
    base: String,
    rtmp: String,
    log: std::path::PathBuf,
}

impl Node {
    fn start(data: &Path, name: &str, shared: &[String]) -> Node {
        let (port, rtmp_port) = (free_port_pair(), free_port_pair());
        let log_path = data.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_onair"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .args(["--rtmp-addr", &format!("127.0.0.1:{rtmp_port}")])
            .args(["--srt-addr", "", "--webrtc-udp-addr", ""])
            .args(["--node-id", name])
            .arg("--data-dir")
            .arg(data.join(name))
            .args(shared)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start onair serve");
        Node {
            child,
            base: format!("http://127.0.0.1:{port}"),
            rtmp: format!("rtmp://127.0.0.1:{rtmp_port}/live"),
            log: log_path,
        }
    }

    /// Waits (bounded) for `/readyz` to answer 200; the log if it never does.
    async fn ready(&self, http: &reqwest::Client) {
        for _ in 0..300 {
            if status(http, &self.url("/readyz")).await == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "{} never ready: {}",
            self.base,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn kill9(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn status(http: &reqwest::Client, url: &str) -> u16 {
    match http.get(url).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn text(http: &reqwest::Client, url: &str) -> String {
    let res = http.get(url).send().await.expect("answered");
    assert_eq!(res.status(), 200, "{url}");
    res.text().await.expect("text")
}

/// The segment numbers of each rendition in the store, as `rendition/msn`.
async fn stored(weed: &Weed, id: &str) -> Vec<(String, u64)> {
    let out = weed
        .client()
        .list_objects_v2()
        .bucket("media")
        .prefix(format!("failover/streams/{id}/"))
        .send()
        .await
        .expect("list");
    out.contents()
        .iter()
        .filter_map(|c| {
            let key = c.key()?;
            let (rendition, file) = key.rsplit_once('/')?;
            let msn = file.strip_suffix(".m4s")?.parse().ok()?;
            Some((rendition.rsplit('/').next()?.to_string(), msn))
        })
        .collect()
}

/// The highest media sequence number a live playlist names (segments,
/// parts, the preload hint).
pub(crate) fn highest_msn(playlist: &str) -> u64 {
    playlist
        .lines()
        .filter_map(|l| {
            let uri = match l.find("URI=\"") {
                Some(i) => l[i + 5..].split('"').next()?,
                None if !l.starts_with('#') => l,
                None => return None,
            };
            uri.strip_suffix(".m4s")?.split('.').next()?.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_owner_s_stream_continues_on_another_node_as_a_new_period() {
    let nats = NatsServer::start();
    let surreal = SurrealServer::start();
    let weed = Weed::start();
    weed.create_bucket("media").await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut shared = vec![
        "--db".to_string(),
        surreal.url.clone(),
        "--db-user".into(),
        "root".into(),
        "--db-password".into(),
        SURREAL_PASSWORD.into(),
        "--nats-url".into(),
        nats.url(),
        "--nats-lease-ttl".into(),
        "2".into(),
        "--playback-secret".into(),
        "failover-test-playback-secret-of-32+chars".into(),
        "--passthrough-only".into(),
        "--ingest-resume-grace".into(),
        "8".into(),
    ];
    shared.extend(weed.store_args("media", "failover"));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    // One after the other: two nodes migrating a fresh database at once
    // conflict (one fails its start-up; see the report of #15).
    let mut a = Node::start(data.path(), "node-a", &shared);
    a.ready(&http).await;
    let b = Node::start(data.path(), "node-b", &shared);
    b.ready(&http).await;

    // A broadcaster and a stream, over A's API.
    let reg = http
        .post(a.url("/api/v1/auth/register"))
        .json(&serde_json::json!({"username": "failover", "password": "correct horse"}))
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
    let create = |title: &'static str| {
        let (http, cookie, url, origin) = (
            http.clone(),
            cookie.clone(),
            a.url("/api/v1/streams"),
            a.base.clone(),
        );
        async move {
            let s: Value = http
                .post(url)
                .header("cookie", cookie)
                .header("origin", origin)
                .json(&serde_json::json!({"title": title, "visibility": "public"}))
                .send()
                .await
                .expect("create")
                .json()
                .await
                .expect("json");
            let id = s["id"].as_str().expect("id").to_string();
            let key = format!("{id}_{}", s["ingest_token"].as_str().expect("token"));
            (id, key)
        }
    };
    let (id, key) = create("Failover").await;
    // A second stream on A whose encoder never comes back.
    let (gone, gone_key) = create("Never back").await;

    // FFmpeg publishes to A in real time; a viewer plays on B (forwarded).
    let files = tempfile::tempdir().expect("tempdir");
    let long = make_file(files.path(), "long.mp4", 60, QUICK);
    let mut to_a = ffmpeg_publish(&long, &format!("{}/{key}", a.rtmp), &["-c", "copy"])
        .spawn()
        .expect("ffmpeg to A");
    let mut gone_to_a = ffmpeg_publish(&long, &format!("{}/{gone_key}", a.rtmp), &["-c", "copy"])
        .spawn()
        .expect("ffmpeg to A");
    let master = format!("/live/{id}/master.m3u8");
    eventually(30, "B serves A's stream", || {
        let (http, url) = (http.clone(), b.url(&master));
        async move { status(&http, &url).await == 200 }
    })
    .await;
    let master_text = text(&http, &b.url(&master)).await;
    let rendition = master_text
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with("/index.m3u8"))
        .and_then(|l| l.strip_suffix("/index.m3u8"))
        .expect("a media playlist")
        .to_string();
    let media = b.url(&format!("/live/{id}/{rendition}/index.m3u8"));
    eventually(30, "a few segments stored", || async {
        stored(&weed, &id)
            .await
            .iter()
            .filter(|(r, _)| *r == rendition)
            .count()
            >= 4
    })
    .await;
    eventually(30, "a few segments of the other stream stored", || async {
        stored(&weed, &gone).await.len() >= 4
    })
    .await;
    assert!(text(&http, &media).await.contains("#EXT-X-PART:"));

    // SIGKILL the owner mid-stream, right after a viewer on B saw its
    // playlist (its open segment's parts included).
    let seen = highest_msn(&text(&http, &media).await);
    a.kill9();
    let _ = to_a.kill().await;
    let _ = gone_to_a.kill().await;
    let before = stored(&weed, &id).await;
    let last_before = before.iter().map(|(_, m)| *m).max().expect("stored");

    // The encoder comes back on B with the same key, retrying while A's
    // lease has not lapsed yet (B refuses a second publisher until then).
    let short = make_file(files.path(), "short.mp4", 8, QUICK);
    let started = tokio::time::Instant::now();
    let mut to_b = loop {
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "B never took the stream within the resume grace"
        );
        let mut child = ffmpeg_publish(&short, &format!("{}/{key}", b.rtmp), &["-c", "copy"])
            .spawn()
            .expect("ffmpeg to B");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if child.try_wait().expect("wait").is_none() {
            break child;
        }
        let _ = child.wait().await;
    };
    eprintln!("B took the stream {:?} after the kill", started.elapsed());

    // The viewer on B recovers: a playlist again, numbered after what was
    // stored, and frames to read.
    eventually(20, "B's playlist again", || {
        let (http, url) = (http.clone(), media.clone());
        async move { status(&http, &url).await == 200 }
    })
    .await;
    let playlist = text(&http, &media).await;
    let first_new: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("media sequence");
    assert!(
        first_new > last_before.max(seen),
        "B numbers after what A stored ({last_before}) and published ({seen}): {first_new}; \
         no URL or key reused"
    );
    let url = b.url(&master);
    let probe = tokio::task::spawn_blocking(move || {
        ffprobe_json(&[
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#10",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            &url,
        ])
    })
    .await
    .expect("join")
    .expect("ffprobe reads B's playlist after the failover");
    let frames: u64 = probe["streams"][0]["nb_read_frames"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(frames >= 10, "{probe}");

    // The encoder finishes on B: the recording has both periods and
    // everything stored before the kill.
    let out = to_b.wait().await.expect("ffmpeg ends");
    assert!(out.success(), "ffmpeg to B");
    let vod = b.url(&format!("/vod/{id}/{rendition}/index.m3u8"));
    eventually(90, "the recording is built", || {
        let (http, url) = (http.clone(), vod.clone());
        async move { status(&http, &url).await == 200 }
    })
    .await;
    let vod_text = text(&http, &vod).await;
    let listed: Vec<u64> = vod_text
        .lines()
        .filter_map(|l| l.strip_suffix(".m4s")?.parse().ok())
        .collect();
    let newest_before = before
        .iter()
        .filter(|(r, _)| *r == rendition)
        .map(|(_, m)| *m)
        .max()
        .expect("stored");
    for (_, m) in before.iter().filter(|(r, _)| *r == rendition) {
        // SIGKILL may land between a segment's upload and its catalog row:
        // only the newest one can be missing.
        assert!(
            listed.contains(m) || *m == newest_before,
            "segment {m} stored before the kill is not in the recording: {vod_text}"
        );
    }
    assert!(
        listed.iter().any(|m| *m > last_before),
        "B's period is in it"
    );
    eprintln!(
        "stored before the kill: {} segments of {rendition} (newest {newest_before}); \
         B numbered from {first_new}; the recording lists {} segments",
        before.iter().filter(|(r, _)| *r == rendition).count(),
        listed.len()
    );
    assert_eq!(
        vod_text.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "one new period: {vod_text}"
    );
    let vod_master = b.url(&format!("/vod/{id}/master.m3u8"));
    tokio::task::spawn_blocking(move || decode(&vod_master))
        .await
        .expect("join")
        .expect("the recording decodes");

    // The other stream's encoder never came back: once the resume grace is
    // over, B marks it interrupted (the dead node cannot) and builds its
    // recording from what A stored.
    let gone_api = b.url(&format!("/api/v1/streams/{gone}"));
    eventually(60, "the orphaned stream is interrupted", || {
        let (http, url) = (http.clone(), gone_api.clone());
        async move {
            let s: Value = match http.get(&url).send().await {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            s["state"] == "interrupted"
        }
    })
    .await;
    let gone_vod = b.url(&format!("/vod/{gone}/master.m3u8"));
    eventually(90, "the orphaned stream's recording", || {
        let (http, url) = (http.clone(), gone_vod.clone());
        async move { status(&http, &url).await == 200 }
    })
    .await;
    tokio::task::spawn_blocking(move || decode(&gone_vod))
        .await
        .expect("join")
        .expect("the orphaned stream's recording decodes");
}
