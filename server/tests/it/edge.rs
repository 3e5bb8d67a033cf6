//! The caching edge of `deploy/nginx/edge.conf`, run by Debian's nginx in
//! front of a live Onair: 500 light LL-HLS clients (blocking reloads of the
//! next part, then that part) through the edge cost the origin at most two
//! requests per part, counted from nginx's own access log (each request it
//! sent upstream), not by Onair.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::rtmp::{ffmpeg_publish, rtmp_listener};
use crate::support::TestApp;

/// Light clients following the stream at once.
const CLIENTS: usize = 500;
/// How long they follow it.
const FOLLOW: Duration = Duration::from_secs(6);

/// nginx with `deploy/nginx/edge.conf` as shipped, but for what only a real
/// host has: every node of its upstreams is `origin` (one node here), it
/// listens on a free loopback port, and its cache, log and pid live in
/// `dir`. Stopped on drop.
struct Edge {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Edge {
    fn start(dir: &Path, origin: std::net::SocketAddr) -> Edge {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/edge.conf"),
        )
        .expect("deploy/nginx/edge.conf");
        let site = shipped
            .replace("server 127.0.0.1:3000", &format!("server {origin}"))
            .replace("server 127.0.0.1:3001", &format!("server {origin}"))
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
            .replace("    listen [::]:80;\n", "")
            .replace(
                "/var/cache/nginx/onair",
                &dir.join("cache").display().to_string(),
            );
        assert_ne!(site, shipped, "the edge config changed shape");
        std::fs::write(dir.join("edge.conf"), site).expect("write");
        let log = dir.join("access.log");
        let conf = format!(
            "user root;\n\
             worker_processes 1;\n\
             worker_rlimit_nofile 8192;\n\
             pid {dir}/nginx.pid;\n\
             error_log {dir}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n\
             \x20   log_format edge '$request_uri $status $upstream_cache_status $upstream_addr';\n\
             \x20   access_log {log} edge;\n\
             \x20   client_body_temp_path {dir}/body;\n\
             \x20   proxy_temp_path {dir}/proxy;\n\
             \x20   include {dir}/edge.conf;\n\
             }}\n",
            dir = dir.display(),
            log = log.display(),
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("write");
        let args = ["-p", &dir.display().to_string(), "-c", "nginx.conf"].map(String::from);
        let test = std::process::Command::new("nginx")
            .args(&args)
            .arg("-t")
            .output()
            .expect("nginx is installed (make deps-test)");
        assert!(
            test.status.success(),
            "nginx -t: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = std::process::Command::new("nginx")
            .args(&args)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .spawn()
            .expect("nginx");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Edge { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        // SIGTERM to the master stops its workers too (SIGKILL would
        // leave them running).
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

/// `(msn, part)` of a part URI `<msn>.<part>.m4s`.
fn part_of(uri: &str) -> Option<PartId> {
    let (m, p) = uri.strip_suffix(".m4s")?.split_once('.')?;
    Some((m.parse().ok()?, p.parse().ok()?))
}

/// `(msn, part)`.
type PartId = (u64, u64);

/// The last `EXT-X-PART` of a media playlist and its preload hint.
fn last_part_and_hint(text: &str) -> (Option<PartId>, Option<PartId>) {
    let uri = |l: &str| {
        l.split("URI=\"")
            .nth(1)?
            .split('"')
            .next()
            .and_then(part_of)
    };
    let mut last = None;
    let mut hint = None;
    for line in text.lines() {
        if line.starts_with("#EXT-X-PART:") {
            last = uri(line).or(last);
        } else if line.starts_with("#EXT-X-PRELOAD-HINT:") {
            hint = uri(line);
        }
    }
    (last, hint)
}

/// One light LL-HLS client: a plain load, then the blocking reload of the
/// hinted part and that part, again and again. Returns the parts it got.
async fn follow(http: reqwest::Client, media: String, until: Instant) -> Result<usize, String> {
    let base = media
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap_or_default();
    let text = http
        .get(&media)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    let (_, mut hint) = last_part_and_hint(&text);
    let mut got = 0;
    while Instant::now() < until {
        let Some((m, p)) = hint else {
            return Err(format!("no preload hint in\n{text}"));
        };
        let res = http
            .get(format!("{media}?_HLS_msn={m}&_HLS_part={p}"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if res.status() != 200 {
            return Err(format!("blocking reload {m}.{p}: {}", res.status()));
        }
        let text = res.text().await.map_err(|e| e.to_string())?;
        let (last, next) = last_part_and_hint(&text);
        if last.is_some_and(|l| l >= (m, p)) {
            let part = http
                .get(format!("{base}/{m}.{p}.m4s"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if part.status() != 200 {
                return Err(format!("part {m}.{p}: {}", part.status()));
            }
            part.bytes().await.map_err(|e| e.to_string())?;
            got += 1;
        }
        hint = next;
    }
    Ok(got)
}

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
    let master = edge.url(&format!("/live/{id}/master.m3u8"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let res = app.http.get(&master).send().await.expect("edge");
        if res.status() == 200 {
            break res.text().await.expect("text");
        }
        assert!(
            Instant::now() < deadline,
            "no master playlist: {}",
            res.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rendition = text
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m3u8"))
        .expect("a rendition")
        .to_string();
    let media = edge.url(&format!("/live/{id}/{rendition}"));

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    let began_at_line = log_lines(&edge.log).len();
    let until = Instant::now() + FOLLOW;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(follow(http.clone(), media.clone(), until)))
        .collect();
    let mut parts_got = Vec::new();
    for c in clients {
        parts_got.push(
            c.await
                .expect("client task")
                .expect("the client followed the stream"),
        );
    }
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
    let mut to_origin: HashMap<String, usize> = HashMap::new();
    let mut from_edge = 0;
    for line in &lines[began_at_line..] {
        let f: Vec<&str> = line.split(' ').collect();
        let [uri, _status, _cache, upstream] = f[..] else {
            continue;
        };
        if !uri.starts_with(&format!("/live/{id}/")) || uri.ends_with("master.m3u8") {
            continue;
        }
        from_edge += 1;
        if upstream != "-" {
            *to_origin.entry(uri.to_string()).or_default() += 1;
        }
    }
    let count = |part: bool| -> (usize, usize) {
        let of_kind = to_origin
            .iter()
            .filter(|(u, _)| u.ends_with(".m4s") == part && (part || u.contains("_HLS_msn")));
        (of_kind.clone().count(), of_kind.map(|(_, n)| n).sum())
    };
    let (distinct_parts, part_requests) = count(true);
    let (distinct_reloads, reload_requests) = count(false);
    let worst = to_origin.values().copied().max().unwrap_or(0);
    let per_part = part_requests as f64 / distinct_parts.max(1) as f64;
    let reloads_per_part = reload_requests as f64 / distinct_parts.max(1) as f64;
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
    // edge, so a client that the loaded machine schedules late can ask for
    // a key whose entry already expired and reach the origin again (once
    // seen: 4 requests for one reload key, 1.31 a part overall). The goal
    // is per part, above; the lock being off shows there (19 and 49).
    drop(edge);
}

fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// 500 client sockets and the test binary's own: lift the soft limit on
/// open files to the hard one.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
