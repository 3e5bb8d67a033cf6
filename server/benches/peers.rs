//! `make bench`: Onair against real peer software on this machine, in one run.
//!
//! - **Packaging against nginx-rtmp.** Debian's nginx with `libnginx-mod-rtmp`
//!   and Onair (`--passthrough-only`, AAC copied, 1 s segments like
//!   nginx-rtmp's `hls_fragment 1s`) each get the same generated H.264 + AAC
//!   file from the same command, `ffmpeg -re -i input.flv -c copy -f flv
//!   rtmp://127.0.0.1:PORT/live/KEY` (Onair's key: `<stream id>_<ingest
//!   token>`). Each sender reaches its server through a loopback proxy in
//!   this process, which notes when the first 8 KiB of the stream (the first
//!   keyframe) went through: a frame at media time `p` counts as sent at that
//!   instant plus `p` (the sender paces by media time from its start). A
//!   watcher notes when each segment (nginx-rtmp: polling its playlist file
//!   every 2 ms) or part and segment (Onair: LL-HLS blocking playlist
//!   requests, answered when they are published) is first listed. Delay =
//!   listed − sent, for every video frame. CPU is each server process's
//!   user+system time over the run. An extra row feeds Onair the same frames
//!   over its ingest WebSocket (`onair publish --realtime`, one frame per
//!   chunk).
//! - **Concurrent RTMP publishers** (`peers_load.rs`): N `ffmpeg -re -c copy`
//!   senders of the same file at once, N stepped up until parts (Onair) or
//!   fragments (nginx-rtmp) of the watched streams are no longer listed on
//!   time.
//! - **Origin throughput.** While a stream is live, the newest LL-HLS part is
//!   fetched from Onair's origin (served from memory) and written to a
//!   directory that nginx (2 workers, no access log) serves from disk; `wrk`
//!   (2 threads, 4 s) asks each for it over keep-alive connections, at 64 and
//!   at 512 connections.
//!
//! Everything listens on 127.0.0.1 and is stopped at the end. The server is
//! `ONAIR_BENCH_BIN` or the binary of this bench's profile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "peers_load.rs"]
mod load;
#[path = "report.rs"]
mod report;
#[path = "server.rs"]
#[allow(dead_code)]
mod server;

/// Media seconds of the packaging input.
const SECONDS: u32 = 30;
/// Frames per second of the input (a keyframe every second).
const FPS: u32 = 30;
/// Frames this close to the end are left out (each side lists its last
/// segment only when the stream ends).
const TAIL_SECONDS: u32 = 3;
/// Bytes through the proxy before the media is taken to have started.
const FIRST_BYTES: u64 = 8 * 1024;
const NGINX: &str = "/usr/sbin/nginx";
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A child process stopped on drop: SIGTERM first, so that nginx's master
/// stops its workers (a killed master leaves them running), then SIGKILL
/// after 2 s.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            for _ in 0..200 {
                if !matches!(self.0.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback proxy for one connection at a time to `upstream`; notes when
/// the client's first [`FIRST_BYTES`] bytes have gone through and, for RTMP,
/// when each video frame has.
struct Proxy {
    port: u16,
    started: Arc<Mutex<Option<Instant>>>,
    /// RTMP only: when the whole of each video frame (a coded frame, not the
    /// sequence header) had gone through, in the order sent.
    frames: Arc<Mutex<Vec<Instant>>>,
}

/// Follows the client's side of an RTMP connection as it goes through the
/// proxy: skips the handshake (C0, C1, C2) and reassembles the chunk stream
/// with Onair's own protocol core, noting when each video frame completes.
struct RtmpTap {
    handshake_left: usize,
    buf: Vec<u8>,
    chunks: onair_rtmp::chunk::ChunkDecoder,
    broken: bool,
}

impl RtmpTap {
    fn new() -> Self {
        Self {
            handshake_left: 1 + 1536 + 1536,
            buf: Vec::new(),
            chunks: onair_rtmp::chunk::ChunkDecoder::new(onair_rtmp::ChunkLimits {
                max_chunk_size: 1 << 24,
                max_message_size: 1 << 26,
                max_chunk_streams: 64,
                max_in_flight_bytes: 1 << 27,
            }),
            broken: false,
        }
    }

    fn feed(&mut self, mut bytes: &[u8], now: Instant, frames: &Mutex<Vec<Instant>>) {
        if self.broken {
            return;
        }
        let skip = self.handshake_left.min(bytes.len());
        self.handshake_left -= skip;
        bytes = &bytes[skip..];
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            match self.chunks.decode(&self.buf[at..]) {
                Ok(Some((used, msg))) => {
                    at += used;
                    let Some(m) = msg else { continue };
                    match m.type_id {
                        // Set Chunk Size.
                        1 if m.payload.len() >= 4 => {
                            let size = u32::from_be_bytes([
                                m.payload[0],
                                m.payload[1],
                                m.payload[2],
                                m.payload[3],
                            ]);
                            if self.chunks.set_chunk_size(size).is_err() {
                                self.broken = true;
                                return;
                            }
                        }
                        // Video: AVC packet type 1 is a coded frame.
                        9 if m.payload.len() > 2 && m.payload[1] == 1 => {
                            frames.lock().expect("lock").push(now);
                        }
                        _ => {}
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    self.broken = true;
                    return;
                }
            }
        }
        self.buf.drain(..at);
    }
}

async fn proxy(upstream: u16, rtmp: bool) -> Proxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("proxy bind");
    let port = listener.local_addr().expect("addr").port();
    let started = Arc::new(Mutex::new(None));
    let frames = Arc::new(Mutex::new(Vec::new()));
    let mark = started.clone();
    let marks = frames.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let mark = mark.clone();
            let marks = marks.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut total = 0u64;
                let mut tap = rtmp.then(RtmpTap::new);
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    total += n as u64;
                    if total >= FIRST_BYTES {
                        let mut m = mark.lock().expect("lock");
                        if m.is_none() {
                            *m = Some(Instant::now());
                        }
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    if let Some(tap) = tap.as_mut() {
                        tap.feed(&buf[..n], Instant::now(), &marks);
                    }
                }
                let _ = sw.shutdown().await;
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
            });
        }
    });
    Proxy {
        port,
        started,
        frames,
    }
}

/// A listed unit of media: (start, duration) in seconds of media time, and
/// when it was first listed.
#[derive(Debug, Clone, Copy)]
struct Listed {
    start: f64,
    duration: f64,
    at: Instant,
}

/// Adds up the units' durations in order into start times.
fn timeline(units: &BTreeMap<(u64, u64), (f64, Instant)>) -> Vec<Listed> {
    let mut t = 0.0;
    units
        .values()
        .map(|&(duration, at)| {
            let l = Listed {
                start: t,
                duration,
                at,
            };
            t += duration;
            l
        })
        .collect()
}

/// Delay of every video frame (listed − sent), ms, sorted; frames in the last
/// [`TAIL_SECONDS`] are left out. A frame is sent when the proxy saw all of
/// it (`frames`, RTMP), else at `t0` plus its media time.
fn frame_delays(units: &[Listed], t0: Instant, frames: &[Instant]) -> Vec<f64> {
    let mut out = Vec::new();
    for f in 0..(SECONDS - TAIL_SECONDS) * FPS {
        let pts = f as f64 / FPS as f64;
        // A frame belongs to the unit whose span holds it (half a frame of
        // slack for rounded durations).
        let half = 0.5 / FPS as f64;
        let Some(u) = units
            .iter()
            .find(|u| pts + half >= u.start && pts + half < u.start + u.duration)
        else {
            continue;
        };
        let sent = if frames.is_empty() {
            t0 + Duration::from_secs_f64(pts)
        } else {
            match frames.get(f as usize) {
                Some(&at) => at,
                None => continue,
            }
        };
        out.push(signed_ms(u.at, sent));
    }
    out.sort_by(|a, b| a.total_cmp(b));
    out
}

/// `a − b` in milliseconds, negative when `a` is earlier.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    match a.checked_duration_since(b) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -b.duration_since(a).as_secs_f64() * 1000.0,
    }
}

/// Parses nginx-rtmp's playlist: `#EXTINF:d,` then `name-N.ts`.
fn parse_ts_playlist(text: &str, now: Instant, units: &mut BTreeMap<(u64, u64), (f64, Instant)>) {
    let mut duration = None;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = d
                .trim_end_matches(',')
                .split(',')
                .next()
                .and_then(|v| v.parse::<f64>().ok());
        } else if !line.starts_with('#') && line.ends_with(".ts") {
            let n = line
                .trim_end_matches(".ts")
                .rsplit('-')
                .next()
                .and_then(|v| v.parse::<u64>().ok());
            if let (Some(n), Some(d)) = (n, duration.take()) {
                units.entry((n, 0)).or_insert((d, now));
            }
        }
    }
}

/// Onair's media playlist: parts (`#EXT-X-PART:DURATION=d,URI="m.p.m4s"`),
/// segments (`#EXTINF:d,` then `m.m4s`), and the preload hint's part.
#[derive(Debug, Default)]
struct Parsed {
    parts: Vec<((u64, u64), f64)>,
    segments: Vec<(u64, f64)>,
    hint: Option<(u64, u64)>,
    ended: bool,
}

fn part_name(uri: &str) -> Option<(u64, u64)> {
    let stem = uri.rsplit('/').next()?.strip_suffix(".m4s")?;
    let (m, p) = stem.split_once('.')?;
    Some((m.parse().ok()?, p.parse().ok()?))
}

fn attr<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let i = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[i..];
    if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()
    } else {
        rest.split(',').next()
    }
}

fn parse_ll_playlist(text: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut duration = None;
    for line in text.lines() {
        if line.starts_with("#EXT-X-PART:") {
            let d = attr(line, "DURATION").and_then(|v| v.parse::<f64>().ok());
            let n = attr(line, "URI").and_then(part_name);
            if let (Some(d), Some(n)) = (d, n) {
                out.parts.push((n, d));
            }
        } else if line.starts_with("#EXT-X-PRELOAD-HINT:") {
            out.hint = attr(line, "URI").and_then(part_name);
        } else if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = d.split(',').next().and_then(|v| v.parse::<f64>().ok());
        } else if line == "#EXT-X-ENDLIST" {
            out.ended = true;
        } else if !line.starts_with('#') && line.ends_with(".m4s") {
            let m = line
                .rsplit('/')
                .next()
                .and_then(|s| s.strip_suffix(".m4s"))
                .and_then(|s| s.parse::<u64>().ok());
            if let (Some(m), Some(d)) = (m, duration.take()) {
                out.segments.push((m, d));
            }
        }
    }
    out
}

struct Packaging {
    /// Per-frame delay until first listed, ms, sorted.
    delays: Vec<f64>,
    /// Onair only: until its segment (not part) was listed.
    segment_delays: Vec<f64>,
    cpu_per_media_s: f64,
    units: usize,
}

fn summary(d: &[f64]) -> String {
    format!(
        "{:.0} / {:.0} / {:.0}",
        percentile(d, 0.5),
        percentile(d, 0.95),
        d.last().copied().unwrap_or(f64::NAN)
    )
}

fn ffmpeg(args: &[&str]) {
    onair_server::media::testsrc::ffmpeg(args).expect("ffmpeg runs");
}

/// The shared input: H.264 (x264 veryfast, zerolatency, a keyframe every
/// second) and AAC, 720p30, in FLV (for RTMP) and Matroska (for Onair)
/// holding the same encoded frames.
fn make_inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let flv = dir.join("input.flv");
    let mkv = dir.join("input.mkv");
    let g = FPS.to_string();
    let codec = [
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
        "-g",
        &g,
        "-keyint_min",
        &g,
        "-sc_threshold",
        "0",
        "-b:v",
        "2000k",
        "-maxrate",
        "2000k",
        "-bufsize",
        "2000k",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
    ];
    // testsrc2 at 30 fps (= FPS) plus a 440 Hz tone, like every test input.
    onair_server::media::testsrc::av("1280x720", SECONDS, &codec, flv.to_str().expect("utf8"))
        .expect("ffmpeg runs");
    ffmpeg(&[
        "-i",
        flv.to_str().expect("utf8"),
        "-c",
        "copy",
        mkv.to_str().expect("utf8"),
    ]);
    (flv, mkv)
}

fn nginx_conf(dir: &Path, body: &str, single: bool) -> PathBuf {
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    let head = if single {
        "master_process off;\n".to_string()
    } else {
        "worker_processes 2;\n".to_string()
    };
    let text = format!(
        "{head}daemon off;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         load_module {RTMP_MODULE};\nevents {{ worker_connections 4096; }}\n{body}\n"
    );
    std::fs::write(&conf, text).expect("nginx.conf");
    conf
}

fn start_nginx(dir: &Path, conf: &Path) -> Proc {
    let child = Command::new(NGINX)
        .arg("-c")
        .arg(conf)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx starts");
    Proc(child)
}

async fn wait_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

async fn nginx_rtmp(dir: &Path, flv: &Path) -> Packaging {
    let hls = dir.join("hls");
    std::fs::create_dir_all(&hls).expect("hls dir");
    let port = free_port();
    let body = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
         application live {{ live on; record off; hls on; hls_path {}; hls_fragment 1s;\n\
         hls_playlist_length 60s; hls_cleanup off; }} }} }}",
        hls.display()
    );
    let conf = nginx_conf(dir, &body, true);
    let nginx = start_nginx(dir, &conf);
    wait_port(port).await;
    let proxy = proxy(port, true).await;
    let cpu0 = server::cpu_secs(&nginx.0.id().to_string());
    let url = format!("rtmp://127.0.0.1:{}/live/bench", proxy.port);
    let mut sender = rtmp_sender(flv, &url, None);
    let playlist = hls.join("bench.m3u8");
    let mut units = BTreeMap::new();
    loop {
        let now = Instant::now();
        if let Ok(text) = std::fs::read_to_string(&playlist) {
            parse_ts_playlist(&text, now, &mut units);
        }
        if let Ok(Some(_)) = sender.0.try_wait() {
            // nginx lists the last fragment when the publisher leaves.
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let Ok(text) = std::fs::read_to_string(&playlist) {
                parse_ts_playlist(&text, Instant::now(), &mut units);
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cpu = server::cpu_secs(&nginx.0.id().to_string()) - cpu0;
    drop(nginx);
    let t0 = proxy
        .started
        .lock()
        .expect("lock")
        .expect("ffmpeg sent its stream");
    let listed = timeline(&units);
    let frames = proxy.frames.lock().expect("lock").clone();
    Packaging {
        delays: frame_delays(&listed, t0, &frames),
        segment_delays: Vec::new(),
        cpu_per_media_s: cpu / SECONDS as f64,
        units: listed.len(),
    }
}

fn publish(server: &str, id: &str, token: &str, file: &Path) -> Proc {
    let child = Command::new(server::server_binary())
        .args([
            "publish",
            "--realtime",
            "--chunk-ms",
            "33",
            "--server",
            server,
            "--stream",
            id,
        ])
        .env("ONAIR_INGEST_TOKEN", token)
        .arg(file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("onair publish starts");
    Proc(child)
}

/// The first variant's media playlist path under `/live/{id}/`, if the
/// stream lists one within 10 s.
async fn try_rendition(http: &reqwest::Client, base: &str) -> Option<String> {
    for _ in 0..400 {
        if let Ok(r) = http.get(format!("{base}/master.m3u8")).send().await {
            if r.status().is_success() {
                let text = r.text().await.unwrap_or_default();
                if let Some(uri) = text
                    .lines()
                    .find(|l| !l.starts_with('#') && l.ends_with(".m3u8"))
                {
                    return Some(uri.to_string());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

async fn rendition(http: &reqwest::Client, base: &str) -> String {
    try_rendition(http, base)
        .await
        .expect("the stream lists a rendition")
}

/// `ffmpeg -re [-stream_loop -1 -t SECONDS] -i FILE -c copy -f flv URL`: the
/// same RTMP sender for Onair and nginx-rtmp.
fn rtmp_sender(file: &Path, url: &str, seconds: Option<u32>) -> Proc {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-re"]);
    if let Some(s) = seconds {
        cmd.args(["-stream_loop", "-1", "-t", &s.to_string()]);
    }
    let child = cmd
        .arg("-i")
        .arg(file)
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ffmpeg starts");
    Proc(child)
}

/// How Onair gets the packaging input.
enum Sender<'a> {
    /// `ffmpeg -re -i FLV -c copy -f flv rtmp://…`, as nginx-rtmp gets it,
    /// to Onair's RTMP listener on this port.
    Rtmp { flv: &'a Path, port: u16 },
    /// `onair publish --realtime` over the ingest WebSocket.
    WebSocket { mkv: &'a Path },
}

/// Watches an LL-HLS media playlist with blocking reloads until the stream
/// ends (or `limit` passes): when each part and each segment was first
/// listed.
async fn watch_onair(http: &reqwest::Client, media: &str, limit: Duration) -> (Units, Units) {
    let mut parts = BTreeMap::new();
    let mut segments = BTreeMap::new();
    let mut next: Option<(u64, u64)> = None;
    let waited = Instant::now();
    while waited.elapsed() < limit {
        let url = match next {
            Some((m, p)) => format!("{media}?_HLS_msn={m}&_HLS_part={p}"),
            None => media.to_string(),
        };
        let res = match http.get(&url).send().await {
            Ok(r) => r,
            Err(_) => break,
        };
        if !res.status().is_success() {
            // Before the first part, or a blocking request that timed out:
            // ask again. After the stream ends its window goes (404).
            if (parts.is_empty() && waited.elapsed() < Duration::from_secs(60))
                || res.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            break;
        }
        let text = res.text().await.unwrap_or_default();
        let now = Instant::now();
        let p = parse_ll_playlist(&text);
        for (n, d) in &p.parts {
            parts.entry(*n).or_insert((*d, now));
        }
        for (m, d) in &p.segments {
            segments.entry((*m, 0)).or_insert((*d, now));
        }
        if p.ended || p.hint.is_none() {
            break;
        }
        next = p.hint;
    }
    (parts, segments)
}

/// When each unit of media was first listed, by (media sequence, part).
type Units = BTreeMap<(u64, u64), (f64, Instant)>;

/// Parts are listed for the last few segments only: a segment whose parts
/// were never seen counts from its own listing.
fn merge_units(parts: &Units, segments: &Units) -> Units {
    let mut units: Units = BTreeMap::new();
    for (&(m, _), &(d, at)) in segments {
        if !parts.keys().any(|(pm, _)| *pm == m) {
            units.insert((m, 0), (d, at));
        }
    }
    units.extend(parts.iter().map(|(k, v)| (*k, *v)));
    units
}

async fn onair_packaging(
    http: &reqwest::Client,
    srv: &server::Server,
    cookie: &str,
    sender: Sender<'_>,
) -> Packaging {
    let (id, token) = server::create_stream(http, &srv.addr, cookie, "Packaging").await;
    let http_port: u16 = srv
        .addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let (upstream, rtmp) = match sender {
        Sender::Rtmp { port, .. } => (port, true),
        Sender::WebSocket { .. } => (http_port, false),
    };
    let proxy = proxy(upstream, rtmp).await;
    let cpu0 = server::cpu_secs(&srv.child.id().to_string());
    let sender = match sender {
        Sender::Rtmp { flv, .. } => rtmp_sender(
            flv,
            &format!("rtmp://127.0.0.1:{}/live/{id}_{token}", proxy.port),
            None,
        ),
        Sender::WebSocket { mkv } => publish(
            &format!("http://127.0.0.1:{}", proxy.port),
            &id,
            &token,
            mkv,
        ),
    };
    let base = format!("http://{}/live/{id}", srv.addr);
    let media = format!("{base}/{}", rendition(http, &base).await);
    let (parts, segments) =
        watch_onair(http, &media, Duration::from_secs(u64::from(SECONDS) + 60)).await;
    drop(sender);
    let cpu = server::cpu_secs(&srv.child.id().to_string()) - cpu0;
    let t0 = proxy
        .started
        .lock()
        .expect("lock")
        .expect("the sender sent its stream");
    let listed = timeline(&merge_units(&parts, &segments));
    let seg_listed = timeline(&segments);
    let frames = proxy.frames.lock().expect("lock").clone();
    Packaging {
        delays: frame_delays(&listed, t0, &frames),
        segment_delays: frame_delays(&seg_listed, t0, &frames),
        cpu_per_media_s: cpu / SECONDS as f64,
        units: listed.len(),
    }
}

/// `wrk` at `connections` against `url` for 4 s: (requests per second,
/// failed requests).
fn wrk(url: &str, connections: usize) -> (f64, u64) {
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), "-d4s", url])
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    let bad = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let errors: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|v| {
            v.split(',')
                .filter_map(|kv| {
                    kv.split_whitespace()
                        .last()
                        .and_then(|n| n.parse::<u64>().ok())
                })
                .sum()
        })
        .unwrap_or(0);
    (rps, bad + errors)
}

struct Throughput {
    connections: usize,
    bytes: usize,
    onair: (f64, u64),
    nginx: (f64, u64),
}

async fn origin_throughput(
    http: &reqwest::Client,
    srv: &server::Server,
    cookie: &str,
    mkv: &Path,
    dir: &Path,
) -> Vec<Throughput> {
    let root = dir.join("www");
    std::fs::create_dir_all(&root).expect("www");
    let port = free_port();
    let body = format!(
        "http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;\n\
         types {{ video/mp4 m4s; }}\n\
         server {{ listen 127.0.0.1:{port}; root {}; }} }}",
        root.display()
    );
    let conf = nginx_conf(dir, &body, false);
    let _nginx = start_nginx(dir, &conf);
    wait_port(port).await;
    let (id, token) = server::create_stream(http, &srv.addr, cookie, "Throughput").await;
    let _sender = publish(&format!("http://{}", srv.addr), &id, &token, mkv);
    let base = format!("http://{}/live/{id}", srv.addr);
    let media = format!("{base}/{}", rendition(http, &base).await);
    let dir_url = media
        .rsplit_once('/')
        .map(|(d, _)| d.to_string())
        .expect("dir");
    // Let a few segments go by first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut rows = Vec::new();
    for connections in [64, 512] {
        // The newest complete part: hot, and kept for several segments more.
        let text = http
            .get(&media)
            .send()
            .await
            .expect("playlist")
            .text()
            .await
            .expect("text");
        let parsed = parse_ll_playlist(&text);
        let (m, p) = parsed
            .parts
            .last()
            .map(|(n, _)| *n)
            .expect("a part is listed");
        let name = format!("{m}.{p}.m4s");
        let bytes = http
            .get(format!("{dir_url}/{name}"))
            .send()
            .await
            .expect("part")
            .bytes()
            .await
            .expect("part bytes");
        std::fs::write(root.join(&name), &bytes).expect("copy the part");
        let onair_url = format!("{dir_url}/{name}");
        let nginx_url = format!("http://127.0.0.1:{port}/{name}");
        let onair = tokio::task::spawn_blocking(move || wrk(&onair_url, connections))
            .await
            .expect("wrk");
        let nginx = tokio::task::spawn_blocking(move || wrk(&nginx_url, connections))
            .await
            .expect("wrk");
        rows.push(Throughput {
            connections,
            bytes: bytes.len(),
            onair,
            nginx,
        });
    }
    rows
}

fn have(tool: &str) -> bool {
    Path::new(tool).exists()
        || Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for tool in [NGINX, RTMP_MODULE, "wrk", "ffmpeg"] {
        if !have(tool) {
            eprintln!("peers bench: {tool} is missing (make bench installs nginx-light, libnginx-mod-rtmp and wrk); skipped");
            return;
        }
    }
    let load_start = load::loadavg();
    let dir = tempfile::tempdir().expect("tempdir");
    let (flv, mkv) = make_inputs(dir.path());
    eprintln!("peers: nginx-rtmp packaging ({SECONDS} s)…");
    let nginx_dir = dir.path().join("nginx-rtmp");
    std::fs::create_dir_all(&nginx_dir).expect("dir");
    let rtmp = nginx_rtmp(&nginx_dir, &flv).await;

    eprintln!("peers: Onair packaging over RTMP ({SECONDS} s)…");
    // 1 s segments like nginx-rtmp's fragments (the input has a keyframe
    // every second, so audio and video segments stay aligned).
    let onair_flags = |rtmp_port: u16| -> Vec<String> {
        let rtmp_addr = format!("127.0.0.1:{rtmp_port}");
        [
            "--passthrough-only",
            "--hls-segment-ms",
            "1000",
            "--rtmp-addr",
            rtmp_addr.as_str(),
            "--rtmp-max-connections",
            "256",
        ]
        .map(String::from)
        .to_vec()
    };
    let rtmp_port = free_port();
    let srv = server::start(&onair_flags(rtmp_port));
    let http = reqwest::Client::new();
    let (_, cookie) = server::broadcaster_stream(&http, &srv.addr, "Warm-up").await;
    wait_port(rtmp_port).await;
    let onair = onair_packaging(
        &http,
        &srv,
        &cookie,
        Sender::Rtmp {
            flv: &flv,
            port: rtmp_port,
        },
    )
    .await;
    eprintln!("peers: Onair packaging over the WebSocket ({SECONDS} s)…");
    let onair_ws = onair_packaging(&http, &srv, &cookie, Sender::WebSocket { mkv: &mkv }).await;

    eprintln!("peers: origin throughput (wrk, 64 and 512 connections)…");
    let www_dir = dir.path().join("nginx-http");
    std::fs::create_dir_all(&www_dir).expect("dir");
    let throughput = origin_throughput(&http, &srv, &cookie, &mkv, &www_dir).await;
    drop(srv);

    // Concurrent publishers: Onair on a server of its own, then nginx-rtmp.
    let load_port = free_port();
    let onair_load = load::onair(&flv, &onair_flags(load_port), load_port).await;
    let nginx_load_dir = dir.path().join("nginx-rtmp-load");
    std::fs::create_dir_all(&nginx_load_dir).expect("dir");
    let nginx_load = load::nginx(&nginx_load_dir, &flv).await;
    let load_end = load::loadavg();

    let bin = server::server_binary();
    let profile_dir = Path::new(&bin)
        .parent()
        .and_then(|d| d.file_name())
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    let profile = match profile_dir.as_str() {
        "debug" => "dev profile (unoptimised Rust)".to_string(),
        "" => "optimised build".to_string(),
        p => format!("`{p}` profile (optimised)"),
    };
    let mut out = String::new();
    out.push_str("## Against real peers: nginx and nginx-rtmp\n\n");
    out.push_str(&format!(
        "Produced by `make bench` (`server/benches/peers.rs`, `peers_load.rs`; alone: `cargo bench --profile bench-opt -p onair-server --bench peers`) on the project's 2-core machine; Onair: the `onair` binary, {profile}; \
         nginx {} with `libnginx-mod-rtmp` and wrk from Debian. Everything runs on loopback at once, so the load generator and the \
         senders share the two cores with the server. Load average (1 / 5 / 15 min) at the start: {load_start}; at the end: {load_end}.\n\n",
        nginx_version()
    ));
    out.push_str(&format!(
        "Input: one file, {SECONDS} s of H.264 720p30 (x264 veryfast, zerolatency, 2 Mbit/s, a keyframe every 1 s) + AAC 128 kbit/s in FLV. \
         Both servers get it from the same command, `ffmpeg -re -i input.flv -c copy -f flv rtmp://127.0.0.1:PORT/live/KEY`, through a \
         loopback proxy that notes when each video frame went through. Onair runs `--passthrough-only --hls-segment-ms 1000` \
         (AAC copied, LL-HLS parts of its default 334 ms target), nginx-rtmp `hls_fragment 1s`.\n\n"
    ));
    out.push_str(
        "| compared | input | Onair | peer | ratio (Onair / peer) |\n|---|---|---|---|---|\n",
    );
    for t in &throughput {
        out.push_str(&format!(
            "| hot LL-HLS part GETs per s, wrk -t2 -c{} 4 s (higher is better; failed requests) | one {} B part: Onair from memory, nginx from disk | {:.0} ({} failed) | {:.0} ({} failed) | {:.2} |\n",
            t.connections, t.bytes, t.onair.0, t.onair.1, t.nginx.0, t.nginx.1, t.onair.0 / t.nginx.0
        ));
    }
    out.push_str(&format!(
        "| frame sent → listed in the playlist, ms (p50 / p95 / max; lower is better) | the same RTMP input, real time; Onair parts ({} listed) vs nginx-rtmp 1 s segments ({} listed) | {} | {} | {:.2} (p50) |\n",
        onair.units,
        rtmp.units,
        summary(&onair.delays),
        summary(&rtmp.delays),
        percentile(&onair.delays, 0.5) / percentile(&rtmp.delays, 0.5)
    ));
    out.push_str(&format!(
        "| frame sent → its segment listed, ms (p50 / p95 / max) | same; Onair's 1 s segments (its parts list the frame sooner, row above) vs nginx-rtmp's 1 s segments | {} | {} | {:.2} (p50) |\n",
        summary(&onair.segment_delays),
        summary(&rtmp.delays),
        percentile(&onair.segment_delays, 0.5) / percentile(&rtmp.delays, 0.5)
    ));
    out.push_str(&format!(
        "| server CPU-s per media-s while packaging (lower is better) | same; Onair `--passthrough-only`, AAC copied (also records to its local store and database), nginx-rtmp HLS | {:.4} | {:.4} | {:.2} |\n",
        onair.cpu_per_media_s,
        rtmp.cpu_per_media_s,
        onair.cpu_per_media_s / rtmp.cpu_per_media_s
    ));
    out.push_str(&format!(
        "| extra: Onair fed over its ingest WebSocket instead (`onair publish --realtime --chunk-ms 33`, the same frames in Matroska): frame sent → listed, ms (p50 / p95 / max); CPU-s per media-s | same frames | {}; {:.4} | nginx-rtmp over RTMP: {}; {:.4} | {:.2} (p50); {:.2} (CPU) |\n",
        summary(&onair_ws.delays),
        onair_ws.cpu_per_media_s,
        summary(&rtmp.delays),
        rtmp.cpu_per_media_s,
        percentile(&onair_ws.delays, 0.5) / percentile(&rtmp.delays, 0.5),
        onair_ws.cpu_per_media_s / rtmp.cpu_per_media_s
    ));
    out.push_str(&format!(
        "\nLast run: {}. A frame counts as sent when the proxy in front of the server had passed all of it (the proxy follows the RTMP chunk stream with Onair's protocol core, `onair-rtmp`); in the WebSocket row, which the proxy does not parse, when it had passed the stream's first {} KiB plus the frame's media time. The last {TAIL_SECONDS} s of frames are left out. CPU is counted in 10 ms ticks.\n",
        today(),
        FIRST_BYTES / 1024
    ));

    out.push_str("\n### Concurrent RTMP publishers\n\n");
    out.push_str(&format!(
        "N senders at once, each `ffmpeg -re -stream_loop -1 -t {} -i input.flv -c copy -f flv rtmp://…` of the input above, one stream each (Onair: `--passthrough-only`, no ladder; nginx-rtmp: 2 worker processes). \
         {} of the N streams for Onair, {} for nginx-rtmp (its 1 s fragments are a third as many units as Onair's parts, so both steps count about as many units), spread over them, go through a proxy that notes when each video frame has gone through (it follows the RTMP chunk stream) and are watched (Onair: LL-HLS blocking reloads; nginx-rtmp: its playlist file read every 2 ms); the others go straight to the server. \
         Delay of a unit (Onair: each LL-HLS part; nginx-rtmp: each 1 s fragment) = first listed − when its last video frame went through the proxy, over the units between {} s and {} s of media of the watched streams. \
         Neither server can close a unit before the next frame arrives, one frame interval (33 ms) later. \
         On time: every sender exited cleanly and the p99 delay is at most {} ms beyond the unit's end, i.e. ≤ {:.0} ms from its last frame. Steps stop at the first that is not on time. The N ffmpeg senders share the two cores with the server (their CPU is the senders column).\n\n",
        load::STEP_SECONDS,
        load::SAMPLED,
        load::SAMPLED_NGINX,
        load::WARMUP_S,
        f64::from(load::STEP_SECONDS) - load::TAIL_S,
        load::ON_TIME_MS,
        load::on_time_limit_ms()
    ));
    out.push_str("| publishers | Onair: part listed − its last frame sent, ms (p50 / p99 / max; units) | Onair on time | Onair server CPU, cores; senders | nginx-rtmp: fragment listed − its last frame sent, ms (p50 / p99 / max; units) | nginx-rtmp on time | nginx-rtmp workers' CPU, cores; senders | load avg as the step began (Onair; nginx-rtmp) |\n|---|---|---|---|---|---|---|---|\n");
    let ns: std::collections::BTreeSet<usize> =
        onair_load.iter().chain(&nginx_load).map(|s| s.n).collect();
    let cell = |steps: &[load::Step], n: usize| -> (String, String, String, String) {
        match steps.iter().find(|s| s.n == n) {
            Some(s) => (
                format!(
                    "{:.0} / {:.0} / {:.0} ({})",
                    percentile(&s.delays, 0.5),
                    percentile(&s.delays, 0.99),
                    s.delays.last().copied().unwrap_or(f64::NAN),
                    s.delays.len()
                ),
                if s.on_time() {
                    "✓".to_string()
                } else if s.failed > 0 {
                    format!("✗ ({} failed)", s.failed)
                } else {
                    "✗".to_string()
                },
                format!("{:.2}; {:.2}", s.server_cores, s.sender_cores),
                s.load.clone(),
            ),
            None => ("—".into(), "—".into(), "—".into(), "—".into()),
        }
    };
    for n in ns {
        let (od, ot, oc, ol) = cell(&onair_load, n);
        let (nd, nt, nc, nl) = cell(&nginx_load, n);
        out.push_str(&format!(
            "| {n} | {od} | {ot} | {oc} | {nd} | {nt} | {nc} | {ol}; {nl} |\n"
        ));
    }
    let best = |steps: &[load::Step]| {
        let ok = steps.iter().take_while(|s| s.on_time()).map(|s| s.n).last();
        let more = steps.iter().all(|s| s.on_time());
        match ok {
            Some(n) if more => format!("{n} (every step tried was on time)"),
            Some(n) => n.to_string(),
            None => "fewer than the first step".to_string(),
        }
    };
    // The stricter reading: p99 within 50 ms of the last frame itself.
    let strict = |steps: &[load::Step]| {
        steps
            .iter()
            .take_while(|s| {
                s.failed == 0
                    && !s.delays.is_empty()
                    && percentile(&s.delays, 0.99) <= load::ON_TIME_MS
            })
            .map(|s| s.n.to_string())
            .last()
            .unwrap_or_else(|| "none of the steps".to_string())
    };
    out.push_str(&format!(
        "\nLargest count on time: Onair {}, nginx-rtmp {} (steps: {}). With p99 ≤ {} ms from the last frame itself (no frame interval allowed): Onair {}, nginx-rtmp {}.\n",
        best(&onair_load),
        best(&nginx_load),
        load::steps()
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        load::ON_TIME_MS,
        strict(&onair_load),
        strict(&nginx_load)
    ));
    println!("{out}");
    report::write_section("peers", &out);
}

fn nginx_version() -> String {
    Command::new(NGINX)
        .arg("-v")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .trim_start_matches("nginx version: nginx/")
                .to_string()
        })
        .unwrap_or_else(|| "?".into())
}

fn today() -> String {
    let out = Command::new("date").arg("+%Y-%m-%d").output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
