//! The caching edge of `deploy/nginx/edge.conf`, run by Debian's nginx in
//! front of a live Onair: 500 light LL-HLS clients (blocking reloads of the
//! next part, then that part) through the edge cost the origin at most two
//! requests per part, counted from nginx's own access log (each request it
//! sent upstream), not by Onair.

use std::time::{Duration, Instant};

use crate::edge_kit::{first_rendition, follow_all, log_lines, raise_fd_limit, Collapse, Edge};
use crate::rtmp::{ffmpeg_publish, rtmp_listener};
use crate::support::TestApp;

/// Light clients following the stream at once.
const CLIENTS: usize = 500;
/// How long they follow it.
const FOLLOW: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_ll_hls_clients_through_the_edge_cost_the_origin_two_requests_a_part() {
    raise_fd_limit();
    let app = TestApp::start(|c| {
        c.live.passthrough_only = true;
        c.analytics.trusted = onair_server::analytics::client_ip::TrustedProxies(vec!["127.0.0.1"
            .parse()
            .expect("net")]);
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = Edge::start(dir.path(), app.addr);

    let base = rtmp_listener(&app).await;
    let (id, token) = app.new_stream().await;
    let file = crate::publish::make_file(dir.path(), "in.mp4", 20, crate::rtmp::QUICK);
    let mut encoder = ffmpeg_publish(&file, &format!("{base}/{id}_{token}"), &["-c", "copy"])
        .spawn()
        .expect("ffmpeg");

    // The master playlist through the edge, once the stream is up.
    let media = first_rendition(&app.http, &edge, &id, Duration::from_secs(30))
        .await
        .expect("the stream through the edge");

    let began_at_line = log_lines(&edge.log).len();
    let until = Instant::now() + FOLLOW;
    let parts_got = follow_all(&media, CLIENTS, until)
        .await
        .expect("every client followed the stream");
    let _ = encoder.kill().await;

    // Every client followed the stream: these floors show the load
    // happened, not a speed (a client keeps up at about three parts a
    // second on an idle machine, 18 in 6 s; with builds beside the test a
    // run once saw 4). The goals below are per part, whatever the count.
    let fewest = parts_got.iter().copied().min().unwrap_or(0);
    let all: usize = parts_got.iter().sum();
    eprintln!("parts per client: fewest {fewest}, all {all}");
    assert!(
        fewest >= 2,
        "a client got only {fewest} parts in {FOLLOW:?}"
    );

    // What went to the origin, by URI, from nginx's log.
    let lines = log_lines(&edge.log);
    let c = Collapse::of(&lines[began_at_line..], &id);
    let Collapse {
        from_edge,
        distinct_parts,
        part_requests,
        distinct_reloads,
        reload_requests,
        worst,
        ref to_origin,
    } = c;
    let (per_part, reloads_per_part) = (c.per_part(), c.reloads_per_part());
    eprintln!(
        "{CLIENTS} clients through the edge for {FOLLOW:?}: {from_edge} requests to the edge; \
         to the origin: {part_requests} for {distinct_parts} parts ({per_part:.2} a part), \
         {reload_requests} blocking reloads for {distinct_reloads} keys ({reloads_per_part:.2} a part), \
         at most {worst} for one URI"
    );
    assert!(
        from_edge >= CLIENTS * 4,
        "the clients asked the edge only {from_edge} times"
    );
    assert!(
        distinct_parts >= 6,
        "only {distinct_parts} parts went through the edge"
    );
    assert!(
        per_part <= 2.0,
        "{per_part:.2} origin requests a part (goal ≤ 2): {to_origin:?}"
    );
    assert!(
        reloads_per_part <= 2.0,
        "{reloads_per_part:.2} blocking reloads at the origin a part (goal ≤ 2): {to_origin:?}"
    );
    // No bound on the worst single URI: a playlist entry lives 1 s at the
    // edge, and a client that the loaded machine schedules late can ask for
    // a key after it expired; one request then refreshes it while the
    // others get the expired answer (`proxy_cache_use_stale updating`).
    // Without that line, every late request went to the origin: under load
    // (two builds beside the test) 39 requests for one key, 5.67 reloads a
    // part, and this test failed. The goal is per part, above; the lock
    // being off shows there too (19 and 49).
    drop(edge);
}
