//! The caching edge of `deploy/nginx/edge.conf` under light LL-HLS clients:
//! what the edge test (`edge.rs`, in `make test`) and the edge benchmark
//! (`server/benches/edge.rs`, in `make bench`) share. Self-contained (std,
//! tokio, reqwest, libc) so that the bench can include it by path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// nginx with `deploy/nginx/edge.conf` as shipped, but for what only a real
/// host has: every node of its upstreams is `origin` (one node here), it
/// listens on a free loopback port, and its cache, log and pid live in
/// `dir`. Stopped on drop.
pub struct Edge {
    child: std::process::Child,
    port: u16,
    /// nginx's access log: `$request_uri $status $upstream_cache_status $upstream_addr`.
    pub log: PathBuf,
}

impl Edge {
    /// Starts nginx in `dir` in front of `origin`.
    pub fn start(dir: &Path, origin: std::net::SocketAddr) -> Edge {
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

    /// The edge's URL of `path`.
    pub fn url(&self, path: &str) -> String {
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
pub async fn follow(http: reqwest::Client, media: String, until: Instant) -> Result<usize, String> {
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

/// What went through the edge for one stream, from nginx's access log.
#[derive(Debug, Default)]
pub struct Collapse {
    /// Requests for the stream's media playlists, parts and segments that
    /// the clients made to the edge.
    pub from_edge: usize,
    /// Distinct parts the origin was asked for, and its requests for them.
    pub distinct_parts: usize,
    pub part_requests: usize,
    /// Distinct blocking-reload keys (`_HLS_msn`) sent on to the origin,
    /// and its requests for them.
    pub distinct_reloads: usize,
    pub reload_requests: usize,
    /// The most origin requests for one URI.
    pub worst: usize,
    /// Origin requests by URI.
    pub to_origin: HashMap<String, usize>,
}

impl Collapse {
    /// Tallies the access-log `lines` of stream `id` (the master playlist
    /// left out).
    pub fn of(lines: &[String], id: &str) -> Collapse {
        let mut c = Collapse::default();
        for line in lines {
            let f: Vec<&str> = line.split(' ').collect();
            let [uri, _status, _cache, upstream] = f[..] else {
                continue;
            };
            if !uri.starts_with(&format!("/live/{id}/")) || uri.ends_with("master.m3u8") {
                continue;
            }
            c.from_edge += 1;
            if upstream != "-" {
                *c.to_origin.entry(uri.to_string()).or_default() += 1;
            }
        }
        let count = |part: bool| -> (usize, usize) {
            let of_kind = c
                .to_origin
                .iter()
                .filter(|(u, _)| u.ends_with(".m4s") == part && (part || u.contains("_HLS_msn")));
            (of_kind.clone().count(), of_kind.map(|(_, n)| n).sum())
        };
        (c.distinct_parts, c.part_requests) = count(true);
        (c.distinct_reloads, c.reload_requests) = count(false);
        c.worst = c.to_origin.values().copied().max().unwrap_or(0);
        c
    }

    /// Origin requests per part.
    pub fn per_part(&self) -> f64 {
        self.part_requests as f64 / self.distinct_parts.max(1) as f64
    }

    /// Blocking reloads at the origin per part.
    pub fn reloads_per_part(&self) -> f64 {
        self.reload_requests as f64 / self.distinct_parts.max(1) as f64
    }
}

/// Waits for the master playlist of stream `id` through the edge (up to
/// `limit`); returns the URL of its first media playlist.
pub async fn first_rendition(
    http: &reqwest::Client,
    edge: &Edge,
    id: &str,
    limit: Duration,
) -> Result<String, String> {
    let master = edge.url(&format!("/live/{id}/master.m3u8"));
    let deadline = Instant::now() + limit;
    let text = loop {
        let res = http.get(&master).send().await.map_err(|e| e.to_string())?;
        if res.status() == 200 {
            break res.text().await.map_err(|e| e.to_string())?;
        }
        if Instant::now() >= deadline {
            return Err(format!("no master playlist: {}", res.status()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rendition = text
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m3u8"))
        .ok_or_else(|| format!("no rendition in\n{text}"))?;
    Ok(edge.url(&format!("/live/{id}/{rendition}")))
}

/// Runs `clients` [`follow`]ers of `media` until `until`; returns the parts
/// each got.
pub async fn follow_all(media: &str, clients: usize, until: Instant) -> Result<Vec<usize>, String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| e.to_string())?;
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(follow(http.clone(), media.to_string(), until)))
        .collect();
    let mut got = Vec::with_capacity(clients);
    for t in tasks {
        got.push(t.await.map_err(|e| e.to_string())??);
    }
    Ok(got)
}

/// The lines of a log file (none if it is missing).
pub fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// 500 client sockets and the test binary's own: lift the soft limit on
/// open files to the hard one.
pub fn raise_fd_limit() {
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
