//! The peers bench's concurrency part: how many RTMP publishers this machine
//! takes with every part (Onair) or fragment (nginx-rtmp) listed on time.
//!
//! Each step starts N `ffmpeg -re -stream_loop -1 -t STEP -i input.flv -c copy
//! -f flv rtmp://…` senders of the same pre-encoded file (720p30 H.264 at
//! 2 Mbit/s + AAC, a keyframe a second) at once, to N streams of one server,
//! and waits for them to finish (each unpublishes at the end of its input).
//! [`SAMPLED`] of the N streams (nginx-rtmp: [`SAMPLED_NGINX`], as its 1 s
//! fragments are fewer units than Onair's parts), spread over the list, go
//! through a loopback
//! proxy that follows their RTMP chunk stream and notes when each video
//! frame has gone through, and have a watcher: LL-HLS blocking playlist
//! reloads for Onair, the playlist file read every 2 ms for nginx-rtmp. For
//! every part (Onair) or fragment (nginx-rtmp) of a sampled stream that
//! starts after [`WARMUP_S`] and ends [`TAIL_S`] before the input does, its
//! delay is: first listed − when its last video frame went through the
//! proxy. A step is on time when every sender finished cleanly and the p99
//! of those delays is at most [`ON_TIME_MS`] beyond the unit's end (one
//! frame interval after its last frame). Steps stop at the first that is
//! not.

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::{
    free_port, merge_units, parse_ts_playlist, percentile, proxy, rtmp_sender, server, signed_ms,
    start_nginx, try_rendition, wait_port, watch_onair, Proc, Proxy, Units, FPS,
};

/// Media seconds each sender sends per step.
pub const STEP_SECONDS: u32 = 20;
/// Units that start before this media time are left out (start-up: probing,
/// N encoders connecting at once).
pub const WARMUP_S: f64 = 5.0;
/// Units that end this close to the end of the input are left out (the last
/// one is listed when the publisher leaves).
pub const TAIL_S: f64 = 2.0;
/// Onair's streams per step with a proxy and a watcher (LL-HLS blocking
/// reloads); about 39 parts each.
pub const SAMPLED: usize = 5;
/// nginx-rtmp's: its fragments are 1 s, so three times the streams give as
/// many units per step as Onair's (reading a playlist file is cheap).
pub const SAMPLED_NGINX: usize = 15;
/// A step is on time when the p99 delay is at most this beyond the unit's
/// end: its last frame's send time plus one frame interval (the next frame,
/// which closes the unit, is due then).
pub const ON_TIME_MS: f64 = 50.0;
/// The delay, from the last frame, that a step's p99 may reach.
pub fn on_time_limit_ms() -> f64 {
    ON_TIME_MS + 1000.0 / f64::from(FPS)
}
/// Publisher counts tried, in order, unless `ONAIR_BENCH_RTMP_STEPS` (e.g.
/// `5,10,20`) says otherwise.
const STEPS: &[usize] = &[5, 10, 20, 30, 40, 50, 60, 80];

pub fn steps() -> Vec<usize> {
    std::env::var("ONAIR_BENCH_RTMP_STEPS")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .filter(|&n| n > 0)
                .collect()
        })
        .unwrap_or_else(|| STEPS.to_vec())
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" / "))
        .unwrap_or_default()
}

/// One step's result.
pub struct Step {
    pub n: usize,
    /// Delay of every measured unit of the sampled streams, ms, sorted.
    pub delays: Vec<f64>,
    /// Senders that did not exit cleanly (or sampled streams never listed).
    pub failed: usize,
    /// Server CPU over the step, in cores (CPU-s per wall second).
    pub server_cores: f64,
    /// The N senders' CPU, in cores.
    pub sender_cores: f64,
    /// Load average (1 / 5 / 15 min) as the step began.
    pub load: String,
}

impl Step {
    pub fn on_time(&self) -> bool {
        self.failed == 0
            && !self.delays.is_empty()
            && percentile(&self.delays, 0.99) <= on_time_limit_ms()
    }
}

/// Delay (listed − last frame sent), ms, of each unit in the measured
/// window; `units` are in order from the stream's start, `frames` are when
/// the proxy had passed each video frame.
fn unit_delays(units: &Units, frames: &[Instant]) -> Vec<f64> {
    let mut out = Vec::new();
    let mut count = 0u64;
    for &(duration, at) in units.values() {
        let n = (duration * f64::from(FPS)).round() as u64;
        let first = count;
        count += n;
        if n == 0 {
            continue;
        }
        let start_s = first as f64 / f64::from(FPS);
        let end_s = count as f64 / f64::from(FPS);
        if start_s < WARMUP_S || end_s > f64::from(STEP_SECONDS) - TAIL_S {
            continue;
        }
        let Some(&sent) = usize::try_from(count - 1).ok().and_then(|i| frames.get(i)) else {
            continue;
        };
        out.push(signed_ms(at, sent));
    }
    out
}

/// Waits for every sender to exit (bounded; the rest are killed); returns
/// how many did not exit with success.
async fn wait_senders(senders: &mut [Proc], limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut status: Vec<Option<ExitStatus>> = vec![None; senders.len()];
    while Instant::now() < deadline && status.iter().any(Option::is_none) {
        for (s, p) in status.iter_mut().zip(senders.iter_mut()) {
            if s.is_none() {
                if let Ok(Some(st)) = p.0.try_wait() {
                    *s = Some(st);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    status
        .iter()
        .filter(|s| !s.is_some_and(|st| st.success()))
        .count()
}

/// Which of `n` streams are sampled: `k` spread over the list.
fn sampled(n: usize, k: usize) -> Vec<bool> {
    let k = k.min(n);
    let mut out = vec![false; n];
    for j in 0..k {
        out[j * n / k] = true;
    }
    out
}

fn finish(n: usize, load: String, delays: Vec<Vec<f64>>, failed: usize) -> Step {
    let mut all: Vec<f64> = delays.into_iter().flatten().collect();
    all.sort_by(|a, b| a.total_cmp(b));
    Step {
        n,
        delays: all,
        failed,
        server_cores: 0.0,
        sender_cores: 0.0,
        load,
    }
}

/// Onair: a server of its own (`flags`, its RTMP listener on `rtmp_port`).
pub async fn onair(flv: &Path, flags: &[String], rtmp_port: u16) -> Vec<Step> {
    let srv = server::start(flags);
    let pid = srv.child.id().to_string();
    let http = reqwest::Client::new();
    let (_, cookie) = server::broadcaster_stream(&http, &srv.addr, "Warm-up").await;
    wait_port(rtmp_port).await;
    let mut out = Vec::new();
    for n in steps() {
        eprintln!("peers: Onair, {n} RTMP publishers ({STEP_SECONDS} s)…");
        let load = loadavg();
        let mut keys = Vec::new();
        for i in 0..n {
            keys.push(
                server::create_stream(&http, &srv.addr, &cookie, &format!("Load {n}.{i}")).await,
            );
        }
        let cpu0 = server::cpu_secs(&pid);
        let kids0 = server::waited_children_cpu_secs();
        let wall0 = Instant::now();
        let mut senders = Vec::new();
        let mut watchers = Vec::new();
        for ((id, token), sampled) in keys.iter().zip(sampled(n, SAMPLED)) {
            let port = if sampled {
                let p = proxy(rtmp_port, true).await;
                let port = p.port;
                let http = http.clone();
                let base = format!("http://{}/live/{id}", srv.addr);
                watchers.push((
                    p,
                    tokio::spawn(async move {
                        let uri = try_rendition(&http, &base).await?;
                        let limit = Duration::from_secs(u64::from(STEP_SECONDS) + 40);
                        Some(watch_onair(&http, &format!("{base}/{uri}"), limit).await)
                    }),
                ));
                port
            } else {
                rtmp_port
            };
            let url = format!("rtmp://127.0.0.1:{port}/live/{id}_{token}");
            senders.push(rtmp_sender(flv, &url, Some(STEP_SECONDS)));
        }
        let mut failed = wait_senders(
            &mut senders,
            Duration::from_secs(u64::from(STEP_SECONDS) + 30),
        )
        .await;
        let wall = wall0.elapsed().as_secs_f64();
        let cpu = server::cpu_secs(&pid) - cpu0;
        drop(senders);
        let kids = server::waited_children_cpu_secs() - kids0;
        let mut delays = Vec::new();
        for (p, w) in watchers {
            let frames = p.frames.lock().expect("lock").clone();
            match w.await.ok().flatten() {
                Some((parts, segments)) if !frames.is_empty() => {
                    delays.push(unit_delays(&merge_units(&parts, &segments), &frames));
                }
                _ => failed += 1,
            }
        }
        let mut step = finish(n, load, delays, failed);
        step.server_cores = cpu / wall;
        step.sender_cores = kids / wall;
        let on_time = step.on_time();
        out.push(step);
        if !on_time {
            break;
        }
        // The ended streams' recordings are closed before the next step.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    out
}

/// The CPU seconds of nginx's worker processes (the children of `master`).
fn workers_cpu(master: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(server::cpu_secs)
        .sum()
}

/// nginx-rtmp with 2 worker processes, HLS with 1 s fragments.
pub async fn nginx(dir: &Path, flv: &Path) -> Vec<Step> {
    let hls = dir.join("hls");
    std::fs::create_dir_all(&hls).expect("hls dir");
    let port = free_port();
    let body = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
         application live {{ live on; record off; hls on; hls_path {}; hls_fragment 1s;\n\
         hls_playlist_length 60s; hls_cleanup off; }} }} }}",
        hls.display()
    );
    let conf = super::nginx_conf(dir, &body, false);
    let nginx = start_nginx(dir, &conf);
    wait_port(port).await;
    let master = nginx.0.id();
    let mut out = Vec::new();
    for n in steps() {
        eprintln!("peers: nginx-rtmp, {n} RTMP publishers ({STEP_SECONDS} s)…");
        let load = loadavg();
        let cpu0 = workers_cpu(master);
        let kids0 = server::waited_children_cpu_secs();
        let wall0 = Instant::now();
        let mut senders = Vec::new();
        let mut watched: Vec<(Proxy, String, Units)> = Vec::new();
        for (i, sampled) in sampled(n, SAMPLED_NGINX).into_iter().enumerate() {
            let name = format!("s{n}_{i}");
            let p = if sampled {
                let pr = proxy(port, true).await;
                let p = pr.port;
                watched.push((pr, name.clone(), Units::new()));
                p
            } else {
                port
            };
            let url = format!("rtmp://127.0.0.1:{p}/live/{name}");
            senders.push(rtmp_sender(flv, &url, Some(STEP_SECONDS)));
        }
        let deadline = Instant::now() + Duration::from_secs(u64::from(STEP_SECONDS) + 30);
        let mut status = vec![None; senders.len()];
        while Instant::now() < deadline && status.iter().any(Option::is_none) {
            let now = Instant::now();
            for (_, name, units) in &mut watched {
                if let Ok(text) = std::fs::read_to_string(hls.join(format!("{name}.m3u8"))) {
                    parse_ts_playlist(&text, now, units);
                }
            }
            for (s, p) in status.iter_mut().zip(senders.iter_mut()) {
                if s.is_none() {
                    if let Ok(Some(st)) = p.0.try_wait() {
                        *s = Some(st);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let wall = wall0.elapsed().as_secs_f64();
        let cpu = workers_cpu(master) - cpu0;
        let mut failed = status
            .iter()
            .filter(|s: &&Option<ExitStatus>| !s.is_some_and(|st| st.success()))
            .count();
        drop(senders);
        let kids = server::waited_children_cpu_secs() - kids0;
        let mut delays = Vec::new();
        for (p, _, units) in &watched {
            let frames = p.frames.lock().expect("lock").clone();
            if units.is_empty() || frames.is_empty() {
                failed += 1;
            } else {
                delays.push(unit_delays(units, &frames));
            }
        }
        let mut step = finish(n, load, delays, failed);
        step.server_cores = cpu / wall;
        step.sender_cores = kids / wall;
        let on_time = step.on_time();
        out.push(step);
        if !on_time {
            break;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    drop(nginx);
    out
}
