//! NATS stopped for 20 s in the middle of a live stream, and brought back
//! (issue #15, "bad conditions"): the owner's pipeline and its local viewers
//! go on as if nothing happened, both nodes say `degraded` and serve their
//! own rooms, and once NATS is back, chat crosses nodes again and the other
//! node forwards the stream again.

use std::time::{Duration, Instant};

use app::protocol::events::ClientRole;

use crate::accounts::mint;
use crate::cluster::{chat, chat_crosses_again, eventually, readiness, say, NatsServer};
use crate::events::{hello, open, send, welcome};
use crate::failover::highest_msn;
use crate::rtmp::{ffmpeg_publish, rtmp_listener, wait_for_state, QUICK};
use crate::support::{remote_db, SurrealServer, TestApp, SURREAL_PASSWORD};

/// A node on this NATS and database, publishing the source rendition only.
async fn node(surreal: &SurrealServer, nats: &NatsServer, name: &str) -> TestApp {
    let db = remote_db(&surreal.url, SURREAL_PASSWORD);
    let nats_url = nats.url();
    TestApp::start(|c| {
        c.db = db;
        c.cluster.nats_url = Some(nats_url);
        c.cluster.node_id = name.into();
        c.live.passthrough_only = true;
    })
    .await
}

async fn get(app: &TestApp, path: &str) -> (u16, String) {
    match app.http.get(app.url(path)).send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            (status, res.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// The highest media sequence number of A's first rendition.
async fn msn(app: &TestApp, id: &str) -> u64 {
    let (_, master) = get(app, &format!("/live/{id}/master.m3u8")).await;
    let Some(rendition) = master
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m3u8"))
    else {
        return 0;
    };
    let (_, playlist) = get(app, &format!("/live/{id}/{rendition}")).await;
    highest_msn(&playlist)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_20_s_nats_outage_mid_stream_keeps_the_stream_and_local_rooms_and_chat_crosses_again() {
    let mut nats = NatsServer::start();
    let surreal = SurrealServer::start();
    let a = node(&surreal, &nats, "node-a").await;
    let b = node(&surreal, &nats, "node-b").await;
    eventually(20, "A ready", || async { readiness(&a).await == "ready" }).await;
    eventually(20, "B ready", || async { readiness(&b).await == "ready" }).await;

    // FFmpeg publishes to A for a minute, in real time.
    let rtmp = rtmp_listener(&a).await;
    let (id, token) = a.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = crate::publish::make_file(dir.path(), "in.mp4", 70, QUICK);
    let mut encoder = ffmpeg_publish(&file, &format!("{rtmp}/{id}_{token}"), &["-c", "copy"])
        .spawn()
        .expect("ffmpeg");
    wait_for_state(&a, &id, "live").await;
    eventually(30, "B forwards the stream", || async {
        get(&b, &format!("/live/{id}/master.m3u8")).await.0 == 200
    })
    .await;

    // A signed-in viewer's room on each node.
    let (_, ann) = mint(&a, "ann", "viewer").await;
    let (_, carl) = mint(&a, "carl", "viewer").await;
    let mut on_a = open(&a, &id, Some(&ann), None).await;
    send(&mut on_a, &hello(ClientRole::Viewer, Some("ann-tab"), None)).await;
    welcome(&mut on_a).await;
    let mut on_b = open(&b, &id, Some(&carl), None).await;
    send(
        &mut on_b,
        &hello(ClientRole::Viewer, Some("carl-tab"), None),
    )
    .await;
    welcome(&mut on_b).await;

    // NATS goes away for 20 s.
    nats.stop();
    let stopped = Instant::now();
    eventually(20, "A reports degraded", || async {
        readiness(&a).await == "degraded"
    })
    .await;
    eventually(20, "B reports degraded", || async {
        readiness(&b).await == "degraded"
    })
    .await;
    // A's viewers still get the stream: its playlist keeps growing through
    // the outage, and A's room still serves A's viewers.
    let first = msn(&a, &id).await;
    let mut seen = vec![first];
    while stopped.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        seen.push(msn(&a, &id).await);
    }
    assert!(
        seen.windows(2).all(|w| w[1] >= w[0]) && seen.last() > Some(&(first + 5)),
        "A's live playlist stalled while NATS was down: {seen:?}"
    );
    assert!(
        encoder.try_wait().expect("ffmpeg").is_none(),
        "the encoder was cut off"
    );
    send(&mut on_a, &say("alone on A")).await;
    let (i, m) = chat(&mut on_a).await;
    assert_eq!((i, m.text.as_str()), (None, "alone on A"));
    wait_for_state(&a, &id, "live").await;

    // Back on the same port and data: ready, chat crosses nodes, and B
    // forwards the stream again; A still owns it.
    nats.restart();
    eventually(30, "A ready again", || async {
        readiness(&a).await == "ready"
    })
    .await;
    eventually(30, "B ready again", || async {
        readiness(&b).await == "ready"
    })
    .await;
    chat_crosses_again(&mut on_a, &mut on_b).await;
    eventually(30, "B forwards the stream again", || async {
        get(&b, &format!("/live/{id}/master.m3u8")).await.0 == 200
    })
    .await;
    let after = msn(&b, &id).await;
    assert!(
        after >= *seen.last().unwrap_or(&0),
        "B serves A's live window: {after}"
    );
    assert!(a.state.ingest.is_publishing(&id), "A still runs the stream");
    assert!(!b.state.ingest.is_publishing(&id));
    let _ = encoder.kill().await;
}
