//! WHEP viewers on a node that does not own the stream are fed by a relay
//! from the owner (cluster mode). Two nodes on one NATS, one SurrealDB
//! server and one S3 (SeaweedFS), all on 127.0.0.1 and started here; aiortc
//! (PyPI, tools/whip-peer) publishes an FFmpeg-made file over WHIP to node
//! A, and three aiortc viewers play it over WHEP from node B, decoding what
//! they get.
//!
//! - the stream is private: B refuses a WHEP offer without the playback
//!   token before anything goes to A;
//! - B's three viewers share one relay: A holds ONE WebRTC viewer;
//! - each viewer decodes moving pictures at the source's size and Opus;
//! - the viewers gone, the relay is freed on B and at A (its DELETE);
//! - A gone: B answers a new WHEP offer with a JSON error at once.

use std::time::Duration;

use onair_server::webrtc::{WebrtcConfig, RELAY_LINGER};

use crate::cluster::{eventually, readiness, NatsServer};
use crate::forward::node;
use crate::support::{SurrealServer, Weed};
use crate::whep::{assert_played, peer, post_whep, report_of, viewer_offer, whip_publish};
use crate::whip::whip_endpoint;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whep_viewers_on_another_node_share_one_relay_from_the_owner() {
    let nats = NatsServer::start();
    let surreal = SurrealServer::start();
    let weed = Weed::start();
    weed.create_bucket("media").await;
    let a = node(&surreal, &nats, &weed, "node-a").await;
    let b = node(&surreal, &nats, &weed, "node-b").await;
    eventually(20, "A ready", || async { readiness(&a).await == "ready" }).await;
    eventually(20, "B ready", || async { readiness(&b).await == "ready" }).await;
    let cfg = WebrtcConfig {
        connect_timeout: Duration::from_secs(5),
        ..WebrtcConfig::default()
    };
    let on_a = whip_endpoint(&a, cfg.clone());
    let on_b = whip_endpoint(&b, cfg);

    // A private stream, published to A over WHIP by aiortc.
    let (id, token) = a.new_stream().await;
    a.state
        .db
        .client()
        .query("UPDATE type::record('stream', $id) SET visibility = 'private'")
        .bind(("id", id.clone()))
        .await
        .expect("private")
        .check()
        .expect("private ok");
    let dir = tempfile::tempdir().expect("tempdir");
    let publisher = whip_publish(&a, (&id, &token), dir.path(), ("640x360", 30), 40, &[]).await;
    assert!(!b.state.ingest.is_publishing(&id), "B is not the owner");

    // B's gate: no token, no relay.
    let offer = viewer_offer().await;
    let refused = post_whep(&b, &id, None, "application/sdp", &offer).await;
    assert_eq!(
        (refused.status, refused.code.as_str()),
        (401, "playback_token_required"),
        "{}",
        refused.body
    );
    assert_eq!(on_b.relay_count(), 0);
    assert_eq!(on_a.viewer_count(), 0, "nothing reached A");

    // An offer another node relayed already is never relayed again (two
    // nodes whose views of the lease differ must not bounce it).
    let (ticket, _) = b.state.accounts.playback.issue(
        &id,
        Duration::from_secs(600),
        onair_server::auth::playback::unix_now(),
    );
    let again = b
        .http
        .post(b.url(&format!("/api/v1/streams/{id}/whep")))
        .header("content-type", "application/sdp")
        .header("authorization", format!("Bearer {ticket}"))
        .header("x-onair-edge", "node-x")
        .body(offer.clone())
        .send()
        .await
        .expect("answered");
    assert_eq!(again.status().as_u16(), 409);
    assert_eq!(on_b.relay_count(), 0);

    // Three viewers on B with the playback token (B signs it; nodes share
    // the key).
    let whep = b.url(&format!("/api/v1/streams/{id}/whep"));
    let viewers: Vec<_> = (0..3)
        .map(|_| {
            peer(&[
                "--mode",
                "whep",
                "--url",
                &whep,
                "--token",
                &ticket,
                "--seconds",
                "6",
            ])
        })
        .collect();
    // (A viewer's slot is held before its relay is looked up or started.)
    eventually(60, "B holds its three viewers and a relay", || async {
        on_b.viewer_count() == 3 && on_b.relay_count() == 1
    })
    .await;
    // However many viewers B has, A feeds one: the relay.
    assert_eq!(
        on_a.viewer_count(),
        1,
        "A holds one WebRTC viewer: B's relay"
    );
    // (Both nodes run in this process and share one metrics recorder: only
    // B sets the relay gauge above 0.)
    assert_eq!(b.metric("onair_webrtc_relays").await, 1.0);
    for v in viewers {
        assert_played(&report_of(v).await, (640, 360));
    }

    // The viewers left (each DELETEd): the relay lingers, then is freed on
    // B and at A.
    assert_eq!(on_b.viewer_count(), 0);
    eventually(
        RELAY_LINGER.as_secs() + 20,
        "the relay is freed on B and at A",
        || async { on_b.relay_count() == 0 && on_a.viewer_count() == 0 },
    )
    .await;
    assert_eq!(b.metric("onair_webrtc_relays").await, 0.0);

    // A new viewer starts a new relay, and stays.
    let staying = peer(&[
        "--mode",
        "whep",
        "--url",
        &whep,
        "--token",
        &ticket,
        "--seconds",
        "60",
    ]);
    eventually(60, "a new relay feeds the staying viewer", || async {
        on_b.viewer_count() == 1 && on_b.relay_count() == 1 && on_a.viewer_count() == 1
    })
    .await;

    // A goes (its publisher and its server): the relay ends, and the
    // staying viewer's session with it, while its process still runs.
    let failures = |text: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("onair_webrtc_relay_failures_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = failures(&crate::rtmp::metrics(&b).await);
    drop(publisher);
    drop(on_a);
    drop(a);
    eventually(60, "the relay and its viewer are freed on B", || async {
        on_b.relay_count() == 0 && on_b.viewer_count() == 0
    })
    .await;
    let after = failures(&crate::rtmp::metrics(&b).await);
    assert!(
        after >= before + 1.0,
        "the relay's end is counted: {before} -> {after}"
    );
    drop(staying);

    // A new offer on B: a JSON answer at once (its lease not yet expired:
    // the owner does not answer; expired: the stream is not live).
    let gone = post_whep(&b, &id, Some(&ticket), "application/sdp", &offer).await;
    assert!(
        matches!(
            (gone.status, gone.code.as_str()),
            (502, "owner_unreachable") | (409, "not_live")
        ),
        "{} {}",
        gone.status,
        gone.body
    );
    assert_eq!(on_b.relay_count(), 0);
}
