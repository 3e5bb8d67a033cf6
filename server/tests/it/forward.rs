//! Any node serves any stream: FFmpeg publishes over RTMP to node A, and
//! node B (which does not own the stream) serves it by forwarding to A.
//! The stream is private: B's gate refuses a request without a playback
//! token before anything is forwarded, and A's gate takes the token B signs.
//! Both nodes share one NATS, one SurrealDB server and one S3 (SeaweedFS),
//! all on 127.0.0.1 and started here.
//!
//! - ffprobe opens B's master playlist and reads frames;
//! - LL-HLS blocking reloads on B list the same parts as on A, and a part
//!   from B is A's part byte for byte;
//! - many viewers on B waiting for the same next part (and the same
//!   blocking reload) cost A at most two requests each (counted on A:
//!   `onair_edge_served_total`);
//! - a segment older than A's window comes from S3 through B;
//! - A gone: B answers a JSON 502 at once, not a hang.

use onair_server::media::testsrc::ffprobe_json;

use crate::cluster::{eventually, readiness, NatsServer};
use crate::publish::make_file;
use crate::rtmp::{ffmpeg_publish, rtmp_listener, QUICK};
use crate::support::{remote_db, SurrealServer, TestApp, Weed, SURREAL_PASSWORD};

/// Every node of a cluster shares the playback key (tokens and stream keys
/// verify on any node).
const PLAYBACK_KEY: &[u8] = b"forward-test-playback-key-32-bytes!";

/// A node on this NATS, database and S3, with a small live window (three
/// segments) so that old segments leave it quickly.
pub(crate) async fn node(
    surreal: &SurrealServer,
    nats: &NatsServer,
    weed: &Weed,
    name: &str,
) -> TestApp {
    let db = remote_db(&surreal.url, SURREAL_PASSWORD);
    let nats_url = nats.url();
    let store = weed.store_config("media", "forward");
    TestApp::start(|c| {
        c.db = db;
        c.store = store;
        c.cluster.nats_url = Some(nats_url);
        c.cluster.node_id = name.into();
        c.playback_key = Some(PLAYBACK_KEY.to_vec());
        c.live.passthrough_only = true;
        c.live.window_segments = 3;
        // Many light clients from one address in this test.
        c.connections.http_per_ip = 0;
    })
    .await
}

async fn get(app: &TestApp, path: &str) -> (u16, Vec<u8>) {
    let res = app.http.get(app.url(path)).send().await.expect("answered");
    let status = res.status().as_u16();
    (status, res.bytes().await.expect("body").to_vec())
}

async fn text(app: &TestApp, path: &str) -> String {
    let (status, body) = get(app, path).await;
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// The `EXT-X-PART` lines of a playlist, in order.
fn part_lines(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .map(str::to_string)
        .collect()
}

/// The URI of a tag's `URI="…"` attribute.
fn uri_of(line: &str) -> Option<String> {
    let start = line.find("URI=\"")? + 5;
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_string())
}

/// `(msn, index)` of a part URI `M.N.m4s`.
fn part_of(uri: &str) -> Option<(u64, u64)> {
    let (m, n) = uri.strip_suffix(".m4s")?.split_once('.')?;
    Some((m.parse().ok()?, n.parse().ok()?))
}

/// The parts up to and including `target` (a part URI).
fn up_to(parts: &[String], target: &str) -> Vec<String> {
    let end = parts
        .iter()
        .position(|l| uri_of(l).as_deref() == Some(target))
        .unwrap_or_else(|| panic!("{target} not listed in {parts:?}"));
    parts[..=end].to_vec()
}

/// A counter's value in a Prometheus text (0 if absent).
fn counter(metrics: &str, name_and_labels: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0)
}

async fn metrics(app: &TestApp) -> String {
    text(app, "/metrics").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_owned_by_one_node_plays_from_another_with_requests_collapsed() {
    let nats = NatsServer::start();
    let surreal = SurrealServer::start();
    let weed = Weed::start();
    weed.create_bucket("media").await;
    let a = node(&surreal, &nats, &weed, "node-a").await;
    let b = node(&surreal, &nats, &weed, "node-b").await;
    eventually(20, "A ready", || async { readiness(&a).await == "ready" }).await;
    eventually(20, "B ready", || async { readiness(&b).await == "ready" }).await;

    // FFmpeg publishes to A over RTMP, in real time.
    let rtmp = rtmp_listener(&a).await;
    let (id, token) = a.new_stream().await;
    // A private stream: the gate runs on B before forwarding, and A's gate
    // accepts the token B signs for it.
    a.state
        .db
        .client()
        .query("UPDATE type::record('stream', $id) SET visibility = 'private'")
        .bind(("id", id.clone()))
        .await
        .expect("private")
        .check()
        .expect("private ok");
    let (ticket, _) = b.state.accounts.playback.issue(
        &id,
        std::time::Duration::from_secs(600),
        onair_server::auth::playback::unix_now(),
    );
    // Every path below carries the token as the watch URL does.
    let live = format!("/live/{id}/t/{ticket}");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "long.mp4", 40, QUICK);
    let mut encoder = ffmpeg_publish(&file, &format!("{rtmp}/{id}_{token}"), &["-c", "copy"])
        .spawn()
        .expect("ffmpeg");

    // B does not have it live, A does; B forwards to A.
    let master = format!("{live}/master.m3u8");
    eventually(30, "A serves the master playlist", || async {
        get(&a, &master).await.0 == 200
    })
    .await;
    assert!(b.state.origin.get(&id).is_none(), "B is not the owner");
    let (status, refusal) = get(&b, &format!("/live/{id}/master.m3u8")).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&refusal));
    // A request another node forwarded already is never forwarded again
    // (two nodes must not bounce it between them).
    let again = b
        .http
        .get(b.url(&master))
        .header("x-onair-edge", "node-x")
        .send()
        .await
        .expect("answered");
    assert_eq!(again.status().as_u16(), 404);
    let master_b = text(&b, &master).await;
    assert_eq!(
        master_b,
        text(&a, &master).await,
        "the same master playlist"
    );
    let rendition = master_b
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with("/index.m3u8"))
        .and_then(|l| l.strip_suffix("/index.m3u8"))
        .expect("a media playlist")
        .to_string();
    let media = format!("{live}/{rendition}/index.m3u8");

    // ffprobe opens B's master playlist and reads frames.
    let url = b.url(&master);
    let probe = tokio::task::spawn_blocking(move || {
        ffprobe_json(&[
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#30",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            &url,
        ])
    })
    .await
    .expect("join")
    .expect("ffprobe reads B's playlist");
    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "h264", "{probe}");
    let frames: u64 = stream["nb_read_frames"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(frames >= 30, "{frames} frames read through B: {probe}");

    // LL-HLS: the same blocking reload on A and on B lists the same parts
    // (the window may have moved on by a part between the two answers, so
    // each is compared up to the part both waited for).
    let now = text(&a, &media).await;
    let hint = now
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))
        .and_then(uri_of)
        .expect("a preload hint");
    let (msn, part) = part_of(&hint).expect("a part URI");
    let blocking = format!("{media}?_HLS_msn={msn}&_HLS_part={part}");
    let (on_a, on_b) = tokio::join!(text(&a, &blocking), text(&b, &blocking));
    let (pa, pb) = (
        up_to(&part_lines(&on_a), &hint),
        up_to(&part_lines(&on_b), &hint),
    );
    let n = pa.len().min(pb.len());
    assert!(n >= 3, "parts listed: {pa:?}");
    assert_eq!(pa[pa.len() - n..], pb[pb.len() - n..], "B lists A's parts");
    let part_path = format!("{live}/{rendition}/{hint}");
    let (sa, part_a) = get(&a, &part_path).await;
    let (sb, part_b) = get(&b, &part_path).await;
    assert_eq!((sa, sb), (200, 200));
    assert_eq!(part_a, part_b, "B's part is A's, byte for byte");

    // Collapse: 40 light clients on B wait for the same next part, and 40
    // for the same blocking reload; A sees at most two requests of each.
    for round in 0..3 {
        let now = text(&b, &media).await;
        let hint = now
            .lines()
            .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:"))
            .and_then(uri_of)
            .expect("a preload hint");
        let (msn, part) = part_of(&hint).expect("a part URI");
        let before = metrics(&a).await;
        let mut waiting = Vec::new();
        for i in 0..80 {
            let path = if i % 2 == 0 {
                format!("{live}/{rendition}/{hint}")
            } else {
                format!("{media}?_HLS_msn={msn}&_HLS_part={part}")
            };
            let (client, url) = (b.http.clone(), b.url(&path));
            waiting.push(tokio::spawn(async move {
                let res = client.get(url).send().await.expect("answered");
                (res.status().as_u16(), res.bytes().await.expect("body"))
            }));
        }
        let mut parts = Vec::new();
        for w in waiting {
            let (status, body) = w.await.expect("client");
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            if !body.starts_with(b"#EXTM3U") {
                parts.push(body);
            }
        }
        assert_eq!(parts.len(), 40);
        assert!(parts.windows(2).all(|w| w[0] == w[1]), "one part for all");
        let after = metrics(&a).await;
        let served = |kind: &str| {
            let key = format!("onair_edge_served_total{{kind=\"{kind}\"}}");
            counter(&after, &key) - counter(&before, &key)
        };
        let (part_requests, reloads) = (served("part"), served("playlist"));
        eprintln!(
            "round {round}: 40 viewers of part {hint} cost A {part_requests} request(s); \
             40 blocking reloads cost A {reloads}"
        );
        assert!(
            (1..=2).contains(&part_requests),
            "part {hint}: {part_requests} requests"
        );
        assert!((1..=2).contains(&reloads), "reload: {reloads} requests");
    }
    let b_metrics = metrics(&b).await;
    assert!(
        counter(&b_metrics, "onair_edge_collapsed_total{kind=\"part\"}") >= 1,
        "collapsed requests are counted:\n{b_metrics}"
    );

    // A segment older than A's window (three segments) comes from S3.
    let first = format!("{live}/{rendition}/0.m4s");
    eventually(30, "segment 0 left A's window", || async {
        get(&a, &first).await.0 == 404
    })
    .await;
    let (status, old) = get(&b, &first).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&old));
    let stored = a
        .state
        .store
        .get(&onair_server::store::uploader::segment_key(&id, &rendition, "0.m4s").expect("key"))
        .await
        .expect("stored");
    assert_eq!(old, stored.to_vec(), "the recording's segment 0");

    // A stops answering HTTP: B says so at once, in JSON, never cached.
    drop(a);
    eventually(20, "A's listener is closed", || async {
        get(&b, &media).await.0 == 502
    })
    .await;
    let started = tokio::time::Instant::now();
    let res = b.http.get(b.url(&media)).send().await.expect("answered");
    assert_eq!(res.status().as_u16(), 502);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "owner_unreachable", "{body}");
    eprintln!("owner gone: 502 after {:?}", started.elapsed());
    let errors = counter(&metrics(&b).await, "onair_edge_owner_errors_total");
    assert!(errors >= 1, "counted in /metrics");
    let _ = encoder.kill().await;
}
