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
//! - the CPU time the server and the generator each spend per message while
//!   the messages are timed, to show which side the time goes to.
//!
//! The server runs as its own process so its memory is its own, and the
//! clients' sockets do not count against its file limit.
//!
//! The generator shares the machine's cores with the server, so it is kept
//! cheap: the clients connect from one single-threaded runtime per core
//! ("shards"), then each shard's sockets are read from one thread with epoll
//! through a lean WebSocket client ([`lean_ws`]); a frame is timed when read
//! and its message number found with a string scan (one tungstenite client
//! decodes the full JSON of every message, to check the format). Every client
//! still reads every frame from its own socket: a message counts as delivered
//! to a client only when that client has read it.

use std::time::{Duration, Instant};

use app::protocol::events::{ClientMessage, Envelope, ServerEvent};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[path = "bare_fanout.rs"]
mod bare_fanout;
#[path = "report.rs"]
mod report;
#[path = "rooms.rs"]
#[allow(dead_code)]
mod rooms;
#[path = "server.rs"]
#[allow(dead_code)]
mod server;

use rooms::{
    connect, lean_ws, loadavg, message_number, percentile, profile_of, read_chats_lean, Deliveries,
    Shard, Tally, Ws,
};
use server::{server_binary, Server};

/// Messages timed per run.
const MESSAGES: usize = 200;
/// Time between two sends.
const GAP: Duration = Duration::from_millis(250);
/// Handshakes in flight at once per shard.
const CONNECTING: usize = 128;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn start_server(clients: usize) -> Server {
    server::start(&[
        "--events-max-connections".into(),
        (clients + 100).to_string(),
        // The clients say hello as watch pages do (with a viewer id, so each
        // opens an analytics session) but send no beacons: without this,
        // their sessions would time out after 30 s and be written to the
        // database in the middle of the timed sends. Beacons are the
        // analytics bench's subject.
        "--analytics-heartbeat-timeout".into(),
        "3600".into(),
        // The sender is timed, not throttled.
        "--chat-burst".into(),
        "1000".into(),
        "--chat-refill-ms".into(),
        "1".into(),
    ])
}

/// Registers a broadcaster and creates a stream; returns the stream id and
/// the session cookie.
async fn setup(http: &reqwest::Client, addr: &str) -> (String, String) {
    server::broadcaster_stream(http, addr, "Load test").await
}

/// Reads the room's frames until the last timed message; times each `chat`
/// frame when it has been read.
async fn read_chats(mut ws: Ws, t0: Instant) -> Deliveries {
    let mut mine = Vec::with_capacity(MESSAGES);
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(t) = m else { continue };
        if !t.contains("\"type\":\"chat\"") {
            continue;
        }
        let at = t0.elapsed().as_nanos() as u64;
        let Some(n) = message_number(&t) else {
            continue;
        };
        if n < MESSAGES {
            mine.push((n, at));
        }
        if n + 1 == MESSAGES {
            break;
        }
    }
    mine
}

/// The bare fan-out's run ([`bare_fanout`]): per-message delays to the last
/// client (sorted), the messages every client got, and the CPU per message
/// of the writer process and of the generator.
struct Floor {
    last: Vec<f64>,
    complete: usize,
    writer_cpu_ms: f64,
    generator_cpu_ms: f64,
}

/// Times the same messages (`sample`, a real chat frame, numbered like the
/// real run's) through the bare fan-out to as many plain TCP clients, read
/// by the same reader threads.
fn bare_floor(clients: usize, readers: usize, sample: &str) -> Floor {
    use std::io::{BufRead, Write};
    let exe = std::env::current_exe().expect("the bench binary");
    let mut child = std::process::Command::new(exe)
        .arg("--bench")
        .env(bare_fanout::ROLE_ENV, clients.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the bare fan-out starts");
    let mut port = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut port)
        .expect("the bare fan-out's port");
    let port: u16 = port.trim().parse().expect("a port");
    let mut shares: Vec<Vec<_>> = (0..readers).map(|_| Vec::new()).collect();
    for k in 0..clients {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
        s.set_nodelay(true).expect("nodelay");
        s.set_nonblocking(true).expect("non-blocking");
        shares[k % readers].push((s, lean_ws::FrameBuf::default(), [1, 2, 3, 4]));
    }
    // Accepted, and settled.
    std::thread::sleep(Duration::from_secs(3));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(60);
    let threads: Vec<_> = shares
        .into_iter()
        .map(|share| std::thread::spawn(move || read_chats_lean(share, MESSAGES, t0, deadline)))
        .collect();
    let pid = child.id().to_string();
    let (writer0, self0) = (server::cpu_secs(&pid), server::cpu_secs("self"));
    let mut stdin = child.stdin.take().expect("stdin");
    let mut sent_ns = Vec::with_capacity(MESSAGES);
    for k in 0..MESSAGES {
        let line = sample.replace("bench 999999", &format!("bench {k}"));
        sent_ns.push(t0.elapsed().as_nanos() as u64);
        writeln!(stdin, "{line}").expect("to the bare fan-out");
        stdin.flush().expect("flush");
        std::thread::sleep(GAP);
    }
    let got: Vec<Deliveries> = threads
        .into_iter()
        .map(|t| t.join().expect("a reader thread failed"))
        .collect();
    let (writer_cpu, generator_cpu) = (
        server::cpu_secs(&pid) - writer0,
        server::cpu_secs("self") - self0,
    );
    drop(stdin);
    let _ = child.wait();
    let tally = Tally::of(&got, MESSAGES);
    let per_msg = |secs: f64| secs * 1000.0 / MESSAGES as f64;
    Floor {
        last: tally.delays(&tally.last_ns, &sent_ns),
        complete: tally.complete(clients),
        writer_cpu_ms: per_msg(writer_cpu),
        generator_cpu_ms: per_msg(generator_cpu),
    }
}

fn main() {
    if let Ok(n) = std::env::var(bare_fanout::ROLE_ENV) {
        let clients = n.parse().expect("the bare fan-out's client count");
        bare_fanout::serve(clients).expect("the bare fan-out");
        return;
    }
    let clients: usize = std::env::var("ONAIR_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
        .max(2);
    let shards = Shard::count();
    // The control runtime: setup, the sender, the checking client.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shards: Vec<Shard> = (0..shards).map(Shard::start).collect();
    rt.block_on(run(clients, &shards));
    drop(shards);
}

async fn run(clients: usize, shards: &[Shard]) {
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
    let sample = loop {
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
            assert!(t.contains("\"type\":\"chat\""), "{t}");
            break t.to_string();
        }
    };
    let check = tokio::spawn(read_chats(check, t0));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_one = rss_kib(pid);

    eprintln!(
        "connecting {clients} clients from {} generator threads ...",
        shards.len()
    );
    let started = Instant::now();
    let sockets = rooms::connect_many(shards, &addr, &id, 2, clients - 1, CONNECTING).await;
    // Each shard's clients, read from one thread per shard.
    // Settling, the sends and a minute for the last deliveries.
    let deadline = Instant::now() + Duration::from_secs(90);
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|share| std::thread::spawn(move || read_chats_lean(share, MESSAGES, t0, deadline)))
        .collect();
    let connect_secs = started.elapsed().as_secs_f64();
    // Let the viewer-count broadcasts settle and memory stay put.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_all = rss_kib(pid);
    let per_conn_kib = (rss_all.saturating_sub(rss_one)) as f64 / (clients - 1).max(1) as f64;
    eprintln!("{clients} connected in {connect_secs:.1} s; server RSS {rss_one} → {rss_all} KiB");

    let load = loadavg();
    let (server_cpu0, bench_cpu0) = (server::cpu_secs(&pid.to_string()), server::cpu_secs("self"));
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
    let mut all: Vec<Deliveries> = Vec::with_capacity(readers.len() + 1);
    match tokio::time::timeout(Duration::from_secs(60), check).await {
        Ok(Ok(d)) => all.push(d),
        Ok(Err(e)) => panic!("the checking client failed: {e}"),
        Err(_) => {}
    }
    for r in readers {
        all.push(r.join().expect("a reader thread failed"));
    }
    let server_cpu = server::cpu_secs(&pid.to_string()) - server_cpu0;
    let bench_cpu = server::cpu_secs("self") - bench_cpu0;

    let tally = Tally::of(&all, MESSAGES);
    let mut each: Vec<f64> = all
        .iter()
        .flatten()
        .map(|(k, at)| at.saturating_sub(sent_ns[*k]) as f64 / 1e6)
        .collect();
    let complete = tally.complete(clients);
    eprintln!(
        "send → last delivery per message, in send order (ms): {}",
        (0..MESSAGES)
            .map(|k| format!(
                "{:.0}",
                tally.last_ns[k].saturating_sub(sent_ns[k]) as f64 / 1e6
            ))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (first, last) = (
        tally.delays(&tally.first_ns, &sent_ns),
        tally.delays(&tally.last_ns, &sent_ns),
    );
    each.sort_by(f64::total_cmp);
    let per_msg = |secs: f64| secs * 1000.0 / MESSAGES as f64;

    // The server is done: the floor runs on the same cores alone.
    drain.abort();
    drop(sender);
    drop(server);
    eprintln!("timing the bare fan-out ({clients} plain TCP clients) ...");
    let floor = bare_floor(clients, shards.len(), &sample);

    let table = format!(
        "| measure | value | target |\n|---|---|---|\n\
| clients in one room | {clients} (all delivered: {complete} of {MESSAGES} messages) | 10,000 |\n\
| send → delivery to the last client, ms (p50 / p99 over {MESSAGES} messages) | {:.1} / {:.1} | p99 ≤ 100 |\n\
| send → delivery to the first client, ms (p50 / p99) | {:.1} / {:.1} | — |\n\
| send → each delivery, ms (p50 / p99 over {} deliveries) | {:.1} / {:.1} | — |\n\
| CPU per message while timed, ms: server / generator | {:.1} / {:.1} | — |\n\
| the machine's floor: a bare fan-out ({} threads, plain TCP, same clients and readers), send → last client, ms (p50 / p99; all delivered: {} of {MESSAGES}) | {:.1} / {:.1} | — |\n\
| the floor's CPU per message, ms: writer / generator | {:.1} / {:.1} | — |\n\
| server memory per idle connection, KiB (RSS growth / connections) | {per_conn_kib:.1} | ≤ 16 |\n\
| connecting all clients (handshake + hello + welcome), s | {connect_secs:.1} | — |\n\
| load average (1 / 5 / 15 min) when the timed sends began | {load} | — |\n",
        percentile(&last, 0.5),
        percentile(&last, 0.99),
        percentile(&first, 0.5),
        percentile(&first, 0.99),
        each.len(),
        percentile(&each, 0.5),
        percentile(&each, 0.99),
        per_msg(server_cpu),
        per_msg(bench_cpu),
        onair_server::realtime::fanout::thread_count(),
        floor.complete,
        percentile(&floor.last, 0.5),
        percentile(&floor.last, 0.99),
        floor.writer_cpu_ms,
        floor.generator_cpu_ms,
    );
    println!("{table}");
    let server_bin = server_binary();
    // The bench is `<profile>/deps/events-<hash>`.
    let generator = std::env::current_exe()
        .map(|p| profile_of(p.parent().and_then(|deps| deps.parent())))
        .unwrap_or_else(|_| "?".into());
    let doc = format!(
        "## Realtime rooms\n\nProduced by `make bench` (`server/benches/events.rs`): the real `onair` binary \
({}) with an in-memory database, and a load generator ({} profile) in the bench process on \
the same 2-core machine, so the clients compete with the server for the CPU. The generator connects \
its clients from {} single-threaded runtimes, then reads each runtime's share from one thread with epoll (mio), \
through its own lean WebSocket client (`server/benches/lean_ws.rs`: the upgrade with its `Sec-WebSocket-Accept` \
check, masked frames, pongs); every client reads every frame from its own socket and finds the message number \
with a string scan, and one full tungstenite client checks the whole JSON of every message. Each reader thread \
reads into one 64 KiB buffer of its own and leaves a socket when a read returned less than that, without the read \
that would only say \"would block\". The reader threads \
look for ready sockets every 1 ms instead of sleeping in `epoll_wait`: on loopback, waking a client thread that \
sleeps there is paid by the server's write (an inter-processor interrupt), which clients on other machines never \
cost it; the nap counts against the server, as deliveries are timed when read. One room; every client is an \
anonymous viewer that sent `hello` (with a viewer id, as a watch page does) and got `welcome`; the sender is the \
owner's studio socket. The server runs with `--analytics-heartbeat-timeout 3600`, since these clients send no \
beacons and their analytics sessions would otherwise end, and be written, during the timed sends. A message is sent every {} ms; a delivery is timed when the client has read it. CPU per message is \
user+system time of each process over the timed sends (in 10 ms ticks), divided by the messages. Memory is the server's \
`VmRSS` growth between one connected client and all of them (after 5 s idle), divided by the clients.\n\n\
{} messages are timed, so the p99 is the third-worst of them, not the worst. \
The rows on the machine's floor time the same messages, to as many clients read by the same reader threads, \
through a bare fan-out (`server/benches/bare_fanout.rs`, a child process): plain TCP connections, each message \
framed once and written into every socket with one non-blocking `write` from as many threads as the server's \
fan-out has; no HTTP, no database, no rooms, no heartbeats. The server's own cost is the gap between the two.\n\n\
Last run: {}\n\n{table}",
        match std::env::var("ONAIR_BENCH_BIN") {
            Ok(b) => format!("`{b}`, from `ONAIR_BENCH_BIN`"),
            Err(_) => format!(
                "{} profile",
                profile_of(std::path::Path::new(&server_bin).parent())
            ),
        },
        generator,
        shards.len(),
        GAP.as_millis(),
        MESSAGES,
        time::OffsetDateTime::now_utc().date()
    );
    report::write_section("events", &doc);
}
