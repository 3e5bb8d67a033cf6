//! Blocking playlist reload fan-out: `ONAIR_BENCH_WAITERS` (default 10,000)
//! HTTP/1.1 connections on loopback each wait for the next part with
//! `index.m3u8?_HLS_msn=M&_HLS_part=P`; the bench publishes that part and
//! measures, for every request, the time from publication until its whole
//! answer has arrived. Five rounds; p50, p99 and max. Target: p99 ≤ 20 ms.
//!
//! The server runs in this process with the real router, origin and
//! segmenter, so the bench itself publishes the part and knows the instant.
//! The clients run in a child process (this binary again, with
//! `ONAIR_BENCH_FANOUT_ADDR` set), so neither process needs more than about
//! 10,000 file descriptors. Both read the same system clock.

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use onair_server::origin::LiveStream;
use onair_server::packager::fmp4::{Codec, Sample, Track};
use onair_server::packager::segmenter::{Output, Segmenter, SegmenterConfig};
use onair_server::packager::time::Timescale;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

#[path = "report.rs"]
mod report;
#[path = "server.rs"]
#[allow(dead_code)]
mod server;

const ROUNDS: usize = 5;
const RENDITION: &str = "audio";

fn wall_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn waiters() -> usize {
    std::env::var("ONAIR_BENCH_WAITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(addr) = std::env::var("ONAIR_BENCH_FANOUT_ADDR") {
        let path = std::env::var("ONAIR_BENCH_FANOUT_PATH").expect("path");
        rt.block_on(clients(addr, path, waiters()));
        return;
    }
    rt.block_on(bench());
}

/// An audio track and a segmenter with the server's default part target (334 ms)
/// and 2 s segments (what the fan-out table was measured with; only the
/// playlist's length depends on it).
fn segmenter() -> Segmenter {
    let scale = Timescale::new(48_000).expect("timescale");
    let track = Track {
        id: 1,
        timescale: scale,
        codec: Codec::Aac {
            sample_rate: 48_000,
            channels: 2,
            asc: Bytes::from_static(&[0x11, 0x90]),
        },
    };
    let mut seg = Segmenter::new(
        track,
        SegmenterConfig {
            segment_target: 96_000,
            part_target: 16_032,
            window_segments: 20,
        },
        Some(1_700_000_000_000),
    );
    seg.start_at(0);
    seg
}

/// Pushes 1024-sample frames until a part is complete; publishes everything.
fn next_part(seg: &mut Segmenter, dts: &mut u64, live: &LiveStream) {
    loop {
        let sample = Sample {
            dts: *dts,
            cts_offset: 0,
            duration: 1024,
            keyframe: true,
            data: Bytes::from(vec![0x21u8; 380]),
        };
        *dts += 1024;
        let outputs = seg.push(sample).expect("sample");
        let part = outputs.iter().any(|o| matches!(o, Output::Part { .. }));
        if !outputs.is_empty() {
            live.publish(RENDITION, &outputs, seg.snapshot());
        }
        if part {
            return;
        }
    }
}

async fn bench() {
    let n = waiters();
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = onair_server::config::Config::defaults(data.path());
    config.db.engine = onair_server::db::DbConfig::Memory;
    // Every waiter is 127.0.0.1: no per-address connection cap.
    config.connections.http_per_ip = 0;
    let state = onair_server::server::build_state(&config)
        .await
        .expect("server state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(onair_server::server::serve(
        listener,
        state.clone(),
        std::future::pending(),
    ));
    let http = reqwest::Client::new();
    let (id, _) = server::broadcaster_stream(&http, &addr, "Fan-out").await;
    // A live window the bench publishes into; requests may wait 60 s.
    let live = LiveStream::new(Duration::from_secs(60));
    state.origin.insert(&id, live.clone());
    let mut seg = segmenter();
    live.set_init(RENDITION, seg.init_uri(), seg.init_segment().clone());
    let mut dts = 0u64;
    for _ in 0..6 {
        next_part(&mut seg, &mut dts, &live);
    }

    let mut child = Command::new(std::env::current_exe().expect("this bench"))
        .env("ONAIR_BENCH_FANOUT_ADDR", &addr)
        .env(
            "ONAIR_BENCH_FANOUT_PATH",
            format!("/live/{id}/{RENDITION}/index.m3u8"),
        )
        .env("ONAIR_BENCH_WAITERS", n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client process");
    let mut to_child = child.stdin.take().expect("stdin");
    let mut from_child = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    tokio::task::block_in_place(|| from_child.read_line(&mut line)).expect("connected");
    assert!(line.starts_with("connected"), "{line}");

    let mut all: Vec<f64> = Vec::new();
    let mut round_p99 = Vec::new();
    let base = live.waiters();
    for round in 0..ROUNDS {
        let (msn, part) = seg.snapshot().next_part();
        writeln!(to_child, "{msn} {part}").expect("to clients");
        to_child.flush().expect("flush");
        // Every request is parked on the origin before the part appears.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while live.waiters() < base + n {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} of {n} requests waiting",
                live.waiters() - base
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let published = wall_ns();
        next_part(&mut seg, &mut dts, &live);
        line.clear();
        let reader = tokio::task::block_in_place(|| from_child.read_line(&mut line));
        reader.expect("results");
        let mut times: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|t| t.parse::<u128>().ok())
            .map(|t| t.saturating_sub(published) as f64 / 1e6)
            .collect();
        assert_eq!(
            times.len(),
            n,
            "every request answered: {}",
            &line[..line.len().min(200)]
        );
        times.sort_by(f64::total_cmp);
        let p = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "round {round}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            p(0.5),
            p(0.99),
            p(1.0)
        );
        round_p99.push(p(0.99));
        all.extend(times);
    }
    drop(to_child);
    let _ = child.wait();
    all.sort_by(f64::total_cmp);
    let p = |q: f64| all[((all.len() as f64 - 1.0) * q).round() as usize];
    let table = format!(
        "## Blocking playlist reload fan-out\n\n\
         {n} HTTP/1.1 connections on loopback each wait on `index.m3u8?_HLS_msn=M&_HLS_part=P` \
         for the next part; the bench (server in-process, real router and origin) publishes it \
         and measures publication → whole answer for every request, over {ROUNDS} rounds \
         ({} answers). Clients in a child process; both share the 2 cores. Build: {}.\n\n\
         | waiting requests | p50 | p99 | max | target p99 |\n|---|---|---|---|---|\n\
         | {n} | {:.1} ms | {:.1} ms | {:.1} ms | ≤ 20 ms {} |\n\n\
         Per-round p99: {}.\n",
        all.len(),
        if cfg!(debug_assertions) {
            "dev profile (unoptimised Rust: `BENCH_PROFILE=dev`)"
        } else {
            "optimised"
        },
        p(0.5),
        p(0.99),
        p(1.0),
        if p(0.99) <= 20.0 { "✓" } else { "✗" },
        round_p99
            .iter()
            .map(|v| format!("{v:.1} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("\n{table}");
    report::write_section("origin-fanout", &table);
}

/// The client process: opens `n` connections, then for each `msn part` line
/// on stdin sends the blocking request on every connection and prints one
/// line: `times` and each answer's arrival (Unix ns).
async fn clients(addr: String, path: String, n: usize) {
    let (tx, _) = tokio::sync::broadcast::channel::<(u64, u64)>(16);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<u128>();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let addr = addr.clone();
        conns.push(tokio::spawn(async move {
            let s = loop {
                match tokio::net::TcpStream::connect(&addr).await {
                    Ok(s) => break s,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            };
            drop(permit);
            let _ = s.set_nodelay(true);
            s
        }));
    }
    let mut sockets = Vec::with_capacity(n);
    for c in conns {
        sockets.push(c.await.expect("connect"));
    }
    for mut s in sockets {
        let mut rx = tx.subscribe();
        let done = done_tx.clone();
        let path = path.clone();
        let host = addr.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(8192);
            while let Ok((msn, part)) = rx.recv().await {
                let req = format!(
                    "GET {path}?_HLS_msn={msn}&_HLS_part={part} HTTP/1.1\r\nHost: {host}\r\n\r\n"
                );
                if s.write_all(req.as_bytes()).await.is_err() {
                    return;
                }
                buf.clear();
                let mut chunk = [0u8; 8192];
                let at = loop {
                    let Ok(k) = s.read(&mut chunk).await else {
                        return;
                    };
                    if k == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break wall_ns();
                    }
                };
                if done.send(at).is_err() {
                    return;
                }
            }
        });
    }
    println!("connected");
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = stdin.next_line().await {
        let mut it = line
            .split_whitespace()
            .filter_map(|v| v.parse::<u64>().ok());
        let (Some(msn), Some(part)) = (it.next(), it.next()) else {
            break;
        };
        let _ = tx.send((msn, part));
        let mut out = String::from("times");
        for _ in 0..n {
            match tokio::time::timeout(Duration::from_secs(90), done_rx.recv()).await {
                Ok(Some(t)) => out.push_str(&format!(" {t}")),
                _ => break,
            }
        }
        println!("{out}");
    }
}
