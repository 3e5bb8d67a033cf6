//! `make bench` (edge): the request-collapse ratio of the shipped caching
//! edge. Debian's nginx runs `deploy/nginx/edge.conf` in front of the real
//! `onair` binary; FFmpeg publishes over RTMP (H.264 copied, the passthrough
//! rendition only); `ONAIR_BENCH_EDGE_CLIENTS` (default 500) light LL-HLS
//! clients follow the stream through the edge for `ONAIR_BENCH_EDGE_SECS`
//! (default 20): the blocking reload of the hinted part, then that part,
//! again and again. nginx's access log says which requests it sent on to the
//! origin: their count per part per rendition is the ratio (goal ≤ 2), beside
//! what the clients asked the edge per part (what the origin would serve
//! without the edge).
//!
//! The edge test (`server/tests/it/edge.rs`) checks the same goal in
//! `make test`; this bench runs longer, against an optimised build, and
//! records the figures.

use std::time::{Duration, Instant};

#[path = "../tests/it/edge_kit.rs"]
mod edge_kit;
#[path = "report.rs"]
mod report;
#[path = "server.rs"]
#[allow(dead_code)]
mod server;

use edge_kit::{first_rendition, follow_all, log_lines, raise_fd_limit, Collapse, Edge};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" / "))
        .unwrap_or_else(|_| "?".into())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    raise_fd_limit();
    let clients = env_or("ONAIR_BENCH_EDGE_CLIENTS", 500);
    let secs = env_or("ONAIR_BENCH_EDGE_SECS", 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let rtmp_port = server::free_port();
    let origin = server::start(&[
        "--rtmp-addr".into(),
        format!("127.0.0.1:{rtmp_port}"),
        "--passthrough-only".into(),
        "--trusted-proxy".into(),
        "127.0.0.1".into(),
    ]);
    let http = reqwest::Client::new();
    let (id, _, token) = server::broadcaster_stream_token(&http, &origin.addr, "Edge bench").await;
    let edge = Edge::start(dir.path(), origin.addr.parse().expect("an address"));

    // A 640x360 H.264 + AAC source with B-frames, longer than the run.
    let file = dir.path().join("in.mp4");
    onair_server::media::testsrc::av(
        "640x360",
        u32::try_from(secs + 30).unwrap_or(60),
        &[
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-bf",
            "2",
            "-g",
            "30",
            "-c:a",
            "aac",
        ],
        file.to_str().expect("utf8 path"),
    )
    .expect("ffmpeg makes the input");
    let mut encoder = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-re", "-i"])
        .arg(&file)
        .args(["-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{rtmp_port}/live/{id}_{token}"))
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("ffmpeg starts");

    let media = first_rendition(&http, &edge, &id, Duration::from_secs(60))
        .await
        .expect("the stream through the edge");
    let began_at_line = log_lines(&edge.log).len();
    let load = loadavg();
    let started = Instant::now();
    let parts = follow_all(&media, clients, started + Duration::from_secs(secs as u64))
        .await
        .expect("every client followed the stream");
    let _ = encoder.kill();
    let _ = encoder.wait();
    let lines = log_lines(&edge.log);
    let c = Collapse::of(&lines[began_at_line..], &id);
    drop(edge);
    drop(origin);

    let fewest = parts.iter().copied().min().unwrap_or(0);
    let asked_per_part = c.from_edge as f64 / c.distinct_parts.max(1) as f64;
    let table = format!(
        "| measure | value | goal |\n|---|---|---|\n\
| light LL-HLS clients through the edge, for | {clients}, {secs} s | 500 |\n\
| parts each client got (fewest) | {fewest} | — |\n\
| requests the clients made to the edge, per part (what the origin would serve without it) | {asked_per_part:.0} | — |\n\
| origin requests per part (parts of one rendition) | {:.2} ({} requests for {} parts) | ≤ 2 |\n\
| origin blocking reloads per part | {:.2} ({} requests for {} keys) | ≤ 2 |\n\
| most origin requests for one URI | {} | — |\n\
| load average (1 / 5 / 15 min) when the clients started | {load} | — |\n",
        c.per_part(),
        c.part_requests,
        c.distinct_parts,
        c.reloads_per_part(),
        c.reload_requests,
        c.distinct_reloads,
        c.worst,
    );
    println!("{table}");
    let doc = format!(
        "## The caching edge's request collapse\n\nProduced by `make bench` (`server/benches/edge.rs`): \
Debian's nginx ({}) with `deploy/nginx/edge.conf` as shipped (the upstream, port, cache path and log aside) in \
front of the real `onair` binary (`--passthrough-only`, the bench profile), all on 127.0.0.1 of the same 2-core \
machine. FFmpeg publishes a 640x360 H.264 (B-frames) + AAC file over RTMP. The clients are light LL-HLS followers \
in the bench process (the edge test's: a blocking reload `_HLS_msn`/`_HLS_part` of the hinted part, then that \
part). The counts come from nginx's access log: a request with an upstream address went to the origin. A \
playlist entry lives 1 s at the edge, so a client scheduled late can reach the origin again for a key whose \
entry expired; the ratio counts those too.\n\nLast run: {}\n\n{table}",
        nginx_version(),
        time::OffsetDateTime::now_utc().date()
    );
    report::write_section("edge", &doc);
}

fn nginx_version() -> String {
    std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .replace("nginx version: ", "")
        })
        .unwrap_or_else(|| "?".into())
}
