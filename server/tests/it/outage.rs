//! The object store goes away during a live publish: viewers do not notice,
//! and once it is back every segment is in the bucket.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use onair_server::media::testsrc;
use onair_server::publish::{self, PublishArgs};

use crate::support::{spill_metrics_lock, TestApp, Weed};

const SECONDS: u32 = 38;
const OUTAGE: Duration = Duration::from_secs(20);
const RENDITIONS: [&str; 2] = ["360p", "audio"];

/// The segment numbers a media playlist lists, oldest first.
fn listed(playlist: &str) -> Vec<u64> {
    playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.trim_end_matches(".m4s").parse().expect("segment name"))
        .collect()
}

/// What the origin serves, fetched over HTTP as a player would.
struct Served {
    app_url: String,
    http: reqwest::Client,
    files: BTreeMap<(String, String), Bytes>,
}

impl Served {
    async fn get(&self, path: &str) -> Result<Bytes, String> {
        let res = self
            .http
            .get(format!("{}{path}", self.app_url))
            .send()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("{path}: {}", res.status()));
        }
        res.bytes().await.map_err(|e| format!("{path}: {e}"))
    }

    /// Fetches a rendition's playlist and every listed segment not fetched
    /// yet; returns the newest segment number.
    async fn poll(&mut self, id: &str, rendition: &str) -> Result<Option<u64>, String> {
        let playlist = self
            .get(&format!("/live/{id}/{rendition}/index.m3u8"))
            .await?;
        let msns = listed(&String::from_utf8_lossy(&playlist));
        for msn in &msns {
            let file = format!("{msn}.m4s");
            let key = (rendition.to_string(), file.clone());
            if !self.files.contains_key(&key) {
                let bytes = self.get(&format!("/live/{id}/{rendition}/{file}")).await?;
                assert!(!bytes.is_empty(), "{rendition}/{file} is empty");
                self.files.insert(key, bytes);
            }
        }
        Ok(msns.last().copied())
    }
}

// S3 (SeaweedFS) is stopped about 5 s into a 38 s real-time publish and kept
// down for 20 s; the live window must keep advancing over HTTP, segments
// spill to disk, and afterwards every segment and init segment of every
// rendition is in the bucket, byte-identical to what the origin served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_for_20_s_during_a_live_publish_loses_no_segment() {
    let _spill = spill_metrics_lock().await;
    let mut weed = Weed::start();
    weed.create_bucket("media").await;
    let app = TestApp::start(|c| c.store = weed.store_config("media", "")).await;
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("camera.mkv");
    std::fs::write(&file, testsrc::mkv_h264_opus(SECONDS).expect("test media")).expect("write");
    let bucket = weed.client();
    let in_bucket = |bucket: aws_sdk_s3::Client, id: String| async move {
        let mut keys = BTreeSet::new();
        let mut token = None;
        loop {
            let page = bucket
                .list_objects_v2()
                .bucket("media")
                .prefix(format!("streams/{id}/"))
                .set_continuation_token(token)
                .send()
                .await
                .expect("list the bucket");
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(String::from)),
            );
            token = page.next_continuation_token().map(String::from);
            if token.is_none() {
                return keys;
            }
        }
    };

    let started = Instant::now();
    let publisher = tokio::spawn(publish::run(PublishArgs {
        server: format!("http://{}", app.addr),
        stream: id.clone(),
        token,
        realtime: true,
        chunk_ms: 500,
        progress_ms: 0,
        file: file.clone(),
    }));
    let mut served = Served {
        app_url: app.url(""),
        http: app.http.clone(),
        files: BTreeMap::new(),
    };

    // Up to ~5 s in: live, and the first segments archived while S3 is up.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // An error means not live yet.
        let newest: Option<u64> = served.poll(&id, RENDITIONS[0]).await.unwrap_or_default();
        if newest.is_some_and(|n| n >= 1) && started.elapsed() >= Duration::from_secs(5) {
            break;
        }
        assert!(Instant::now() < deadline, "the stream did not go live");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let before = in_bucket(bucket.clone(), id.clone()).await;
    assert!(
        before.contains(&format!("streams/{id}/360p/0.m4s")),
        "archived while S3 is up: {before:?}"
    );
    assert_eq!(app.metric("onair_upload_spill_objects").await, 0.0);

    // S3 goes away for 20 s. Playback must not notice.
    tokio::task::block_in_place(|| weed.stop());
    let outage_start = Instant::now();
    let first_newest = served.poll(&id, RENDITIONS[0]).await.expect("playlist");
    let (mut newest, mut max_spilled, mut max_spill_bytes) = (first_newest, 0.0f64, 0.0f64);
    while outage_start.elapsed() < OUTAGE {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for rendition in RENDITIONS {
            let n = served
                .poll(&id, rendition)
                .await
                .unwrap_or_else(|e| panic!("live playback failed while S3 is down: {e}"));
            if rendition == RENDITIONS[0] {
                newest = n;
            }
        }
        max_spilled = max_spilled.max(app.metric("onair_upload_spill_objects").await);
        max_spill_bytes = max_spill_bytes.max(app.metric("onair_upload_spill_bytes").await);
    }
    let (first, last) = (
        first_newest.expect("segments before the outage"),
        newest.expect("segments during the outage"),
    );
    assert!(
        last >= first + 7,
        "the playlist advanced from segment {first} to {last} in 20 s (2 s segments)"
    );
    assert!(
        max_spilled >= 1.0 && max_spill_bytes >= 1.0,
        "segments spilled to disk during the outage: {max_spilled} objects, {max_spill_bytes} bytes"
    );

    // S3 comes back; the publish ends; the spill drains.
    tokio::task::block_in_place(|| weed.restart());
    let report = tokio::time::timeout(Duration::from_secs(90), publisher)
        .await
        .expect("the publish ends in time")
        .expect("join")
        .expect("publish");
    assert!(
        report.media_us >= i64::from(SECONDS - 1) * 1_000_000,
        "{report:?}"
    );
    assert!(
        app.state.uploader.drained(Duration::from_secs(60)).await,
        "the spill drained: {} objects pending",
        app.state.uploader.pending()
    );
    assert_eq!(app.metric("onair_upload_spill_objects").await, 0.0);
    assert_eq!(app.metric("onair_upload_spill_bytes").await, 0.0);

    // Every segment of every rendition, 0..=last, plus init.mp4: in the bucket
    // and byte-identical to what the origin served.
    let mut expected = BTreeSet::new();
    for rendition in RENDITIONS {
        let playlist = served
            .get(&format!("/live/{id}/{rendition}/index.m3u8"))
            .await
            .expect("final playlist");
        let playlist = String::from_utf8_lossy(&playlist).into_owned();
        assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
        served.poll(&id, rendition).await.expect("final segments");
        let last = *listed(&playlist).last().expect("segments");
        let init = served
            .get(&format!("/live/{id}/{rendition}/init.mp4"))
            .await
            .expect("init");
        served
            .files
            .insert((rendition.to_string(), "init.mp4".into()), init);
        expected.insert(format!("streams/{id}/{rendition}/init.mp4"));
        for msn in 0..=last {
            assert!(
                served
                    .files
                    .contains_key(&(rendition.to_string(), format!("{msn}.m4s"))),
                "{rendition}/{msn}.m4s was never served"
            );
            expected.insert(format!("streams/{id}/{rendition}/{msn}.m4s"));
        }
    }
    assert!(expected.len() > 2 * (SECONDS as usize / 2), "{expected:?}");
    // The recording's playlists, MP4 and thumbnail join them after the end
    // (tested in recording.rs); here the media segments are compared.
    let stored: BTreeSet<String> = in_bucket(bucket.clone(), id.clone())
        .await
        .into_iter()
        .filter(|k| !k.ends_with(".m3u8") && !k.ends_with("recording.mp4") && !k.ends_with(".jpg"))
        .collect();
    assert_eq!(stored, expected, "the bucket holds exactly every segment");
    for ((rendition, file), bytes) in &served.files {
        let key = format!("streams/{id}/{rendition}/{file}");
        let object = bucket
            .get_object()
            .bucket("media")
            .key(&key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e}"))
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        assert!(
            object == *bytes,
            "{key} differs from what the origin served"
        );
    }
    eprintln!(
        "outage: playlist advanced {first} -> {last}; up to {max_spilled} objects \
         ({max_spill_bytes} bytes) spilled; {} objects verified in {:?}",
        stored.len(),
        started.elapsed()
    );
}

/// The database's disk fills up while a publisher ends its stream: the
/// publisher is told the stream ended, writes the database refuses answer
/// 503 `storage_full`, and once the database server is back (restarted
/// with room) the stream ends up `ended`, not `live` until Onair restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streams_end_lands_once_the_database_takes_writes_again() {
    use crate::accounts::{create_stream, mint};
    use crate::ingest::{attach, end, mkv_h264_opus, send_chunks};
    use crate::support::{remote_db, SurrealServer, SURREAL_PASSWORD};
    let mut surreal = SurrealServer::start();
    let db = remote_db(&surreal.url, SURREAL_PASSWORD);
    let app = TestApp::start(|c| c.db = db).await;
    let (_, owner) = mint(&app, "caster", "broadcaster").await;
    let stream = create_stream(&app, &owner, "Full disk show", "public").await;
    let id = stream["id"].as_str().expect("id").to_string();
    let token = stream["ingest_token"].as_str().expect("token").to_string();
    let state = || {
        let db = app.state.db.clone();
        let id = id.clone();
        async move {
            db.get_stream(&id)
                .await
                .expect("the database reads")
                .expect("the stream")
                .state
        }
    };
    let media = mkv_h264_opus(3);
    let chunks: Vec<Vec<u8>> = media.chunks(32 * 1024).map(<[u8]>::to_vec).collect();
    let (mut ws, _) = attach(&app, &id, &token, None).await;
    send_chunks(&mut ws, &chunks, 0, chunks.len() as u64).await;
    assert_eq!(state().await, "live");

    surreal.fill_disk();
    // A write the database refuses for lack of room is the server's
    // storage, not a bug: 503 storage_full.
    let res = app
        .http
        .patch(app.url(&format!("/api/v1/streams/{id}")))
        .header("cookie", format!("onair_session={owner}"))
        .header("origin", format!("http://{}", app.addr))
        .json(&serde_json::json!({"title": "Renamed"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "storage_full", "{body}");
    // The publisher ends cleanly; the database cannot record it yet.
    end(&mut ws).await;
    assert_eq!(state().await, "live");
    assert_eq!(app.state.ingest.unwritten_states(), 1);

    // Room again: the end lands without anyone doing anything.
    surreal.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    while state().await != "ended" || app.state.ingest.unwritten_states() != 0 {
        assert!(Instant::now() < deadline, "the stream never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = app
        .state
        .db
        .get_stream(&id)
        .await
        .expect("read")
        .expect("row");
    assert!(row.ended_at.is_some());
}
