//! Stream health: an RTMP encoder with a known picture, frame rate, GOP and
//! audio publishes, and the owner reads what the server measured; nobody
//! else can.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{ffmpeg_publish, rtmp_listener, wait_for_state, QUICK};
use crate::accounts::{create_stream, mint};
use crate::publish::make_file;
use crate::support::TestApp;

async fn get(app: &TestApp, id: &str, session: Option<&str>) -> (u16, Value) {
    let mut req = app
        .http
        .get(app.url(&format!("/api/v1/streams/{id}/health")));
    if let Some(s) = session {
        req = req.header("cookie", format!("onair_session={s}"));
    }
    let res = req.send().await.expect("answered");
    let status = res.status().as_u16();
    (status, res.json().await.expect("json"))
}

/// Polls the owner's view until `ready` holds (the encoder runs in real time).
async fn wait_for(app: &TestApp, id: &str, session: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(40);
    loop {
        let (status, body) = get(app, id, Some(session)).await;
        assert_eq!(status, 200, "{body}");
        if ready(&body) {
            return body;
        }
        assert!(Instant::now() < until, "never got there: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_sees_what_an_rtmp_encoder_sends() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let base = rtmp_listener(&app).await;
    let (_, alice) = mint(&app, "alice", "broadcaster").await;
    let (_, bob) = mint(&app, "bob", "broadcaster").await;
    let stream = create_stream(&app, &alice, "Health", "public").await;
    let id = stream["id"].as_str().expect("id").to_string();
    let private = create_stream(&app, &alice, "Hidden", "private").await;
    let private = private["id"].as_str().expect("id").to_string();
    let (_, encoder) = {
        let res = app
            .http
            .get(app.url(&format!("/api/v1/streams/{id}/encoder")))
            .header("cookie", format!("onair_session={alice}"))
            .send()
            .await
            .expect("encoder");
        (res.status(), res.json::<Value>().await.expect("json"))
    };
    let url = format!("{base}/{}", encoder["stream_key"].as_str().expect("key"));

    // Not live yet: nothing measured.
    let (status, idle) = get(&app, &id, Some(&alice)).await;
    assert_eq!(
        (status, &idle["live"]),
        (200, &Value::Bool(false)),
        "{idle}"
    );

    // 640x360 at 30 fps, a keyframe every 2.5 s (too long for low latency),
    // AAC 44.1 kHz mono.
    let dir = tempfile::tempdir().expect("tempdir");
    let args = [
        QUICK,
        &["-g", "75", "-ar", "44100", "-ac", "1", "-b:v", "800k"],
    ]
    .concat();
    let file = make_file(dir.path(), "gop.mp4", 20, &args);
    let size = std::fs::metadata(&file).expect("file").len();
    let mut first = ffmpeg_publish(&file, &url, &["-c", "copy"])
        .spawn()
        .expect("ffmpeg");
    wait_for_state(&app, &id, "live").await;
    let h = wait_for(&app, &id, &alice, |h| {
        h["video"]["keyframe_interval_ms"].is_u64() && h["bitrate_bps"].is_u64()
    })
    .await;
    assert_eq!(h["live"], true, "{h}");
    assert_eq!(h["protocol"], "rtmp", "{h}");
    assert_eq!(h["video"]["codec"], "h264", "{h}");
    assert_eq!(
        (&h["video"]["width"], &h["video"]["height"]),
        (&Value::from(640), &Value::from(360))
    );
    let fps = h["video"]["frame_rate_x100"].as_u64().expect("fps");
    assert!(fps.abs_diff(3000) <= 10, "{h}");
    assert_eq!(h["video"]["keyframe_interval_ms"], 2500, "{h}");
    assert_eq!(h["audio"]["codec"], "aac", "{h}");
    assert_eq!(
        (&h["audio"]["sample_rate"], &h["audio"]["channels"]),
        (&Value::from(44_100), &Value::from(1))
    );
    assert_eq!(h["audio"]["copied"], true, "{h}");
    // Within a quarter of the file's average bitrate (the window is 5 s).
    let file_bps = size * 8 / 20;
    let bps = h["bitrate_bps"].as_u64().expect("bitrate");
    assert!(
        bps.abs_diff(file_bps) * 4 <= file_bps,
        "{bps} vs the file's {file_bps}"
    );
    assert_eq!(h["reconnects"], 0);
    let codes: Vec<&str> = h["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w["code"].as_str())
        .collect();
    assert_eq!(codes, vec!["keyframe_interval"], "{h}");

    // Only the owner (or an admin) reads it.
    let (status, body) = get(&app, &id, Some(&bob)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    let (status, body) = get(&app, &id, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated", "{body}");
    for hidden in [private.as_str(), "nosuchstream", "%2e%2e%2fadmin"] {
        let (status, body) = get(&app, hidden, Some(&bob)).await;
        assert_eq!(status, 404, "{hidden}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{body}");
    }

    // The encoder drops and comes back within the grace: one reconnect.
    first.kill().await.expect("kill");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut second = ffmpeg_publish(&file, &url, &["-c", "copy"])
        .spawn()
        .expect("ffmpeg");
    let h = wait_for(&app, &id, &alice, |h| h["reconnects"] == 1).await;
    assert_eq!(h["live"], true, "{h}");
    let _ = second.kill().await;
}
