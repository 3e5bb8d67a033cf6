//! `make bench` (events): a load generator for the realtime rooms. It starts
//! the real `onair` binary on 127.0.0.1, connects `ONAIR_BENCH_CLIENTS`
//! (default 10,000) WebSocket viewers to one room, and measures
//!
//! - the delay from one chat send to its delivery to the last client (and to
//!   every client), p50 and p99 over the messages;
//! - the server's memory per idle connection: the growth of its resident set
//!   (`VmRSS` in `/proc/<pid>/status`) from one connection to all of them,
//!   divided by the number of connections.
//!
//! The server runs as its own process so its memory is its own, and the
//! clients' sockets do not count against its file limit.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::events::{ClientMessage, ClientRole, Envelope, ServerEvent};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[path = "report.rs"]
mod report;

/// Messages timed per run.
const MESSAGES: usize = 40;
/// Time between two sends.
const GAP: Duration = Duration::from_millis(250);

struct Server {
    child: Child,
    addr: String,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_server(clients: usize) -> Server {
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(server_binary())
        .args(["serve", "--addr", &addr, "--db", "mem://", "--data-dir"])
        .arg(data.path())
        .args(["--events-max-connections", &(clients + 100).to_string()])
        // The sender is timed, not throttled.
        .args(["--chat-burst", "1000", "--chat-refill-ms", "1"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("onair starts");
    Server {
        child,
        addr,
        _data: data,
    }
}

/// The server under test: `ONAIR_BENCH_BIN` (e.g. a release build), or the
/// dev-profile binary this bench was built with.
fn server_binary() -> String {
    std::env::var("ONAIR_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_onair").to_string())
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Registers a broadcaster and creates a stream; returns the stream id and
/// the session cookie.
async fn setup(http: &reqwest::Client, addr: &str) -> (String, String) {
    let origin = format!("http://{addr}");
    for _ in 0..200 {
        if http
            .get(format!("{origin}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let res = http
        .post(format!("{origin}/api/v1/auth/register"))
        .header("origin", &origin)
        .json(&serde_json::json!({"username": "benchcaster", "password": "correct horse battery"}))
        .send()
        .await
        .expect("register");
    assert!(res.status().is_success(), "register: {}", res.status());
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_string();
    let stream: serde_json::Value = http
        .post(format!("{origin}/api/v1/streams"))
        .header("origin", &origin)
        .header("cookie", &cookie)
        .json(&serde_json::json!({"title": "Load test", "visibility": "public"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    (stream["id"].as_str().expect("id").to_string(), cookie)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: &str, id: &str, cookie: Option<&str>, n: usize) -> Ws {
    let mut req = format!("ws://{addr}/api/v1/streams/{id}/events")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("origin", format!("http://{addr}").parse().expect("origin"));
    if let Some(c) = cookie {
        req.headers_mut()
            .insert("cookie", c.parse().expect("cookie"));
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket connects");
    let hello = ClientMessage::Hello {
        version: 1,
        role: if cookie.is_some() {
            ClientRole::Studio
        } else {
            ClientRole::Viewer
        },
        viewer_id: Some(format!("bench-viewer-{n:08}")),
        token: None,
        last_id: None,
    };
    ws.send(Message::Text(
        serde_json::to_string(&hello).expect("json").into(),
    ))
    .await
    .expect("hello");
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("\"welcome\"") => return ws,
            Some(Ok(_)) => continue,
            other => panic!("no welcome: {other:?}"),
        }
    }
}

/// The `k` of a `chat` event whose text is `bench k`.
fn message_number(frame: &str) -> Option<usize> {
    let rest = &frame[frame.find("\"text\":\"bench ")? + 14..];
    rest[..rest.find('"')?].parse().ok()
}

/// Per message: deliveries so far, and the latest delivery (ns after `t0`).
struct Tally {
    delivered: Vec<AtomicUsize>,
    last_ns: Vec<AtomicU64>,
    all_ns: std::sync::Mutex<Vec<(usize, u64)>>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let clients: usize = std::env::var("ONAIR_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(clients));
}

async fn run(clients: usize) {
    let server = start_server(clients);
    let pid = server.child.id();
    let http = reqwest::Client::new();
    let (id, cookie) = setup(&http, &server.addr).await;
    let addr = server.addr.clone();

    // The sender (the owner's studio, not a viewer) and one viewer first.
    // The sender reads too (and so answers pings): a peer that stays silent
    // for three heartbeats is dropped.
    let (mut sender, sender_rx) = connect(&addr, &id, Some(&cookie), 0).await.split();
    let drain = tokio::spawn(sender_rx.for_each(|_| async {}));
    let t0 = Instant::now();
    let tally = Arc::new(Tally {
        delivered: (0..MESSAGES).map(|_| AtomicUsize::new(0)).collect(),
        last_ns: (0..MESSAGES).map(|_| AtomicU64::new(0)).collect(),
        all_ns: std::sync::Mutex::new(Vec::with_capacity(MESSAGES * clients)),
    });
    let reader = |ws: Ws| {
        let tally = tally.clone();
        tokio::spawn(async move {
            let (_, mut rx) = ws.split();
            let mut mine = Vec::with_capacity(MESSAGES);
            while let Some(Ok(m)) = rx.next().await {
                let Message::Text(t) = m else { continue };
                if !t.contains("\"chat\"") {
                    continue;
                }
                let at = t0.elapsed().as_nanos() as u64;
                // A string scan, not a JSON parse: the generator shares the
                // CPU with the server, and the first client checks the JSON.
                let Some(n) = message_number(&t) else {
                    continue;
                };
                if n < MESSAGES {
                    tally.last_ns[n].fetch_max(at, Ordering::Relaxed);
                    tally.delivered[n].fetch_add(1, Ordering::Relaxed);
                    mine.push((n, at));
                }
                if n + 1 == MESSAGES {
                    break;
                }
            }
            tally.all_ns.lock().map(|mut a| a.extend(mine)).ok();
        })
    };
    // One client checks the whole JSON of every message once.
    let mut check = connect(&addr, &id, None, 1).await;
    sender
        .send(Message::Text(
            serde_json::to_string(&ClientMessage::Chat {
                text: "bench 999999".into(),
            })
            .expect("json")
            .into(),
        ))
        .await
        .expect("send");
    loop {
        let Some(Ok(Message::Text(t))) = check.next().await else {
            panic!("no chat")
        };
        if let Ok(Envelope {
            event: ServerEvent::Chat { message },
            ..
        }) = serde_json::from_str::<Envelope>(&t)
        {
            assert_eq!(message.text, "bench 999999");
            assert_eq!(message_number(&t), Some(999_999));
            break;
        }
    }
    let mut handles = vec![reader(check)];
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_one = rss_kib(pid);

    eprintln!("connecting {clients} clients ...");
    let started = Instant::now();
    let mut n = 1;
    while n < clients {
        let batch: Vec<_> = (n + 1..=(n + 250).min(clients))
            .map(|k| {
                let addr = addr.clone();
                let id = id.clone();
                tokio::spawn(async move { connect(&addr, &id, None, k).await })
            })
            .collect();
        for b in batch {
            handles.push(reader(b.await.expect("connect task")));
            n += 1;
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    // Let the viewer-count broadcasts settle and memory stay put.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_all = rss_kib(pid);
    let per_conn_kib = (rss_all.saturating_sub(rss_one)) as f64 / (clients - 1).max(1) as f64;
    eprintln!("{clients} connected in {connect_secs:.1} s; server RSS {rss_one} → {rss_all} KiB");

    let mut sent_ns = Vec::with_capacity(MESSAGES);
    for k in 0..MESSAGES {
        let text = format!("bench {k}");
        sent_ns.push(t0.elapsed().as_nanos() as u64);
        sender
            .send(Message::Text(
                serde_json::to_string(&ClientMessage::Chat { text })
                    .expect("json")
                    .into(),
            ))
            .await
            .expect("send");
        tokio::time::sleep(GAP).await;
    }
    // Wait for the deliveries (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    for h in handles {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(left, h).await;
    }
    let complete = tally
        .delivered
        .iter()
        .filter(|d| d.load(Ordering::Relaxed) == clients)
        .count();
    let mut last: Vec<f64> = (0..MESSAGES)
        .map(|k| {
            let l = tally.last_ns[k].load(Ordering::Relaxed);
            l.saturating_sub(sent_ns[k]) as f64 / 1e6
        })
        .collect();
    last.sort_by(f64::total_cmp);
    // Every single delivery: its delay from its message's send.
    let mut each: Vec<f64> = Vec::new();
    {
        let all = tally.all_ns.lock().map(|a| a.clone()).unwrap_or_default();
        for (k, at) in all {
            each.push(at.saturating_sub(sent_ns[k]) as f64 / 1e6);
        }
    }
    each.sort_by(f64::total_cmp);

    let table = format!(
        "| measure | value | target |\n|---|---|---|\n\
| clients in one room | {clients} (all delivered: {complete} of {MESSAGES} messages) | 10,000 |\n\
| send → delivery to the last client, ms (p50 / p99 over {MESSAGES} messages) | {:.1} / {:.1} | p99 ≤ 100 |\n\
| send → each delivery, ms (p50 / p99 over {} deliveries) | {:.1} / {:.1} | — |\n\
| server memory per idle connection, KiB (RSS growth / connections) | {per_conn_kib:.1} | ≤ 16 |\n\
| connecting all clients (handshake + hello + welcome), s | {connect_secs:.1} | — |\n",
        percentile(&last, 0.5),
        percentile(&last, 0.99),
        each.len(),
        percentile(&each, 0.5),
        percentile(&each, 0.99),
    );
    println!("{table}");
    let doc = format!(
        "## Realtime rooms\n\nProduced by `make bench` (`server/benches/events.rs`): the real `onair` binary \
({}) with an in-memory database, and a load generator in the bench process on \
the same 2-core machine, so the clients compete with the server for the CPU (they find the message number with a string scan; one client checks the full JSON). One room; every client is an \
anonymous viewer that sent `hello` and got `welcome`; the sender is the owner's studio socket. A message \
is sent every {} ms; a delivery is timed when the client has read and parsed it. Memory is the server's \
`VmRSS` growth between one connected client and all of them (after 5 s idle), divided by the clients.\n\n\
Last run: {}\n\n{table}",
        match std::env::var("ONAIR_BENCH_BIN") {
            Ok(b) => format!("`{b}`, from `ONAIR_BENCH_BIN`"),
            Err(_) => "dev profile, like the tests".to_string(),
        },
        GAP.as_millis(),
        time::OffsetDateTime::now_utc().date()
    );
    report::write_section("events", &doc);
    drain.abort();
    drop(sender);
    drop(server);
}
