//! `make bench` (cluster): chat across two nodes. It starts `nats-server`
//! (JetStream), the SurrealDB server and two `onair serve` processes on
//! 127.0.0.1 in cluster mode, connects `ONAIR_BENCH_CLUSTER_VIEWERS`
//! (default 1,000) lean WebSocket viewers to one stream's room on each node,
//! and times chat messages sent by the owner's studio socket on node A:
//!
//! - send → delivery to the last viewer on node B (through NATS), p50/p99
//!   over the messages; goal p99 ≤ 150 ms;
//! - send → delivery to the last viewer on node A, beside it in the same
//!   run (A's viewers get the message back from NATS too: every node
//!   delivers a room's events in the order the bus numbered them);
//! - the CPU per message of each node, NATS and the generator.
//!
//! The viewers are the events bench's lean clients ([`rooms`]), read from one
//! thread per shard; every viewer reads every frame from its own socket.

use std::time::{Duration, Instant};

use app::protocol::events::ClientMessage;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[path = "report.rs"]
mod report;
#[path = "rooms.rs"]
#[allow(dead_code)]
mod rooms;
#[path = "server.rs"]
#[allow(dead_code)]
mod server;

use rooms::{loadavg, percentile, profile_of, read_chats_lean, Deliveries, Shard, Tally};
use server::{server_binary, Daemon, Server};

/// Messages timed per run.
const MESSAGES: usize = 200;
/// Time between two sends.
const GAP: Duration = Duration::from_millis(100);
/// Handshakes in flight at once per shard.
const CONNECTING: usize = 64;
/// The SurrealDB server's root password in this bench.
const DB_PASSWORD: &str = "onair-bench-root-pw";

fn main() {
    let viewers: usize = std::env::var("ONAIR_BENCH_CLUSTER_VIEWERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
        .max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shards: Vec<Shard> = (0..Shard::count()).map(Shard::start).collect();
    rt.block_on(run(viewers, &shards));
    drop(shards);
}

/// One cluster node on this NATS and database.
fn node(name: &str, nats: &Daemon, db: &Daemon, viewers: usize) -> Server {
    server::start(&[
        "--db".into(),
        format!("ws://127.0.0.1:{}", db.port),
        "--db-user".into(),
        "root".into(),
        "--db-password".into(),
        DB_PASSWORD.into(),
        "--nats-url".into(),
        format!("nats://127.0.0.1:{}", nats.port),
        "--node-id".into(),
        name.into(),
        "--events-max-connections".into(),
        (viewers + 100).to_string(),
        // As in the events bench: no beacons from these viewers, so their
        // analytics sessions must not end (and be written) mid-run; the
        // sender is timed, not throttled.
        "--analytics-heartbeat-timeout".into(),
        "3600".into(),
        "--chat-burst".into(),
        "1000".into(),
        "--chat-refill-ms".into(),
        "1".into(),
    ])
}

async fn healthy(http: &reqwest::Client, addr: &str) {
    for _ in 0..600 {
        if http
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{addr} never became ready");
}

async fn run(viewers: usize, shards: &[Shard]) {
    let nats = Daemon::nats();
    let db = Daemon::surreal(DB_PASSWORD);
    let a = node("bench-a", &nats, &db, viewers);
    let http = reqwest::Client::new();
    // A first: it runs the migrations; B then finds them done.
    healthy(&http, &a.addr).await;
    let b = node("bench-b", &nats, &db, viewers);
    healthy(&http, &b.addr).await;
    let (id, cookie) = server::broadcaster_stream(&http, &a.addr, "Cluster bench").await;

    let (mut sender, sender_rx) = rooms::connect(&a.addr, &id, Some(&cookie), 0).await.split();
    let drain = tokio::spawn(sender_rx.for_each(|_| async {}));
    // One full client on B checks that a chat crosses before the load.
    let mut check = rooms::connect(&b.addr, &id, None, 1).await;
    sender.send(chat("bench 999999")).await.expect("send");
    let crossed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(m)) = check.next().await {
            if let Message::Text(t) = m {
                if rooms::message_number(&t) == Some(999_999) {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(crossed, Ok(true), "a chat on A never reached a viewer on B");
    drop(check);

    eprintln!(
        "connecting {viewers} viewers to each node from {} generator threads ...",
        shards.len()
    );
    let started = Instant::now();
    let on_a = rooms::connect_many(shards, &a.addr, &id, 2, viewers, CONNECTING).await;
    let on_b = rooms::connect_many(shards, &b.addr, &id, 2 + viewers, viewers, CONNECTING).await;
    let connect_secs = started.elapsed().as_secs_f64();
    eprintln!("{} viewers connected in {connect_secs:.1} s", 2 * viewers);
    // Let the viewer-count updates settle.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(60) + GAP * MESSAGES as u32;
    let read = |sockets: Vec<Vec<rooms::LeanSocket>>| -> Vec<std::thread::JoinHandle<Deliveries>> {
        sockets
            .into_iter()
            .map(|share| std::thread::spawn(move || read_chats_lean(share, MESSAGES, t0, deadline)))
            .collect()
    };
    let (readers_a, readers_b) = (read(on_a), read(on_b));

    let load = loadavg();
    let pids = [
        a.child.id().to_string(),
        b.child.id().to_string(),
        nats.pid().to_string(),
        "self".to_string(),
    ];
    let cpu0: Vec<f64> = pids.iter().map(|p| server::cpu_secs(p)).collect();
    let mut sent_ns = Vec::with_capacity(MESSAGES);
    for k in 0..MESSAGES {
        sent_ns.push(t0.elapsed().as_nanos() as u64);
        sender
            .send(chat(&format!("bench {k}")))
            .await
            .expect("send");
        tokio::time::sleep(GAP).await;
    }
    let join = |readers: Vec<std::thread::JoinHandle<Deliveries>>| -> Vec<Deliveries> {
        readers
            .into_iter()
            .map(|r| r.join().expect("a reader thread failed"))
            .collect()
    };
    let (got_a, got_b) = (join(readers_a), join(readers_b));
    let cpu: Vec<f64> = pids
        .iter()
        .zip(&cpu0)
        .map(|(p, c0)| (server::cpu_secs(p) - c0) * 1000.0 / MESSAGES as f64)
        .collect();
    drain.abort();
    drop(sender);

    let (tally_a, tally_b) = (Tally::of(&got_a, MESSAGES), Tally::of(&got_b, MESSAGES));
    let (last_a, last_b) = (
        tally_a.delays(&tally_a.last_ns, &sent_ns),
        tally_b.delays(&tally_b.last_ns, &sent_ns),
    );
    let mut each_b: Vec<f64> = got_b
        .iter()
        .flatten()
        .map(|(k, at)| at.saturating_sub(sent_ns[*k]) as f64 / 1e6)
        .collect();
    each_b.sort_by(f64::total_cmp);

    let table = format!(
        "| measure | value | target |\n|---|---|---|\n\
| viewers in one room | {viewers} on node A + {viewers} on node B | 1,000 per node |\n\
| messages every viewer got: on A / on B | {} / {} of {MESSAGES} | all |\n\
| send on A → delivery to the last viewer on B, ms (p50 / p99 over {MESSAGES} messages) | {:.1} / {:.1} | p99 ≤ 150 |\n\
| send on A → delivery to the last viewer on A, the sender's node (the same run), ms (p50 / p99) | {:.1} / {:.1} | — |\n\
| send on A → each delivery on B, ms (p50 / p99 over {} deliveries) | {:.1} / {:.1} | — |\n\
| CPU per message while timed, ms: node A / node B / nats-server / generator | {:.1} / {:.1} / {:.1} / {:.1} | — |\n\
| connecting all viewers (handshake + hello + welcome), s | {connect_secs:.1} | — |\n\
| load average (1 / 5 / 15 min) when the timed sends began | {load} | — |\n",
        tally_a.complete(viewers),
        tally_b.complete(viewers),
        percentile(&last_b, 0.5),
        percentile(&last_b, 0.99),
        percentile(&last_a, 0.5),
        percentile(&last_a, 0.99),
        each_b.len(),
        percentile(&each_b, 0.5),
        percentile(&each_b, 0.99),
        cpu[0],
        cpu[1],
        cpu[2],
        cpu[3],
    );
    println!("{table}");
    drop((a, b, db, nats));

    let generator = std::env::current_exe()
        .map(|p| profile_of(p.parent().and_then(|deps| deps.parent())))
        .unwrap_or_else(|_| "?".into());
    let doc = format!(
        "## Chat across nodes\n\nProduced by `make bench` (`server/benches/cluster.rs`): two `onair serve` \
processes ({}) in cluster mode on one `nats-server -js` and one SurrealDB server (the workspace's \
`onair-surreal`, surrealkv), all on 127.0.0.1 of the same 2-core machine, with the load generator ({} profile) \
beside them. The generator connects {viewers} lean viewers (the events bench's clients) to one stream's room on \
each node, read from {} threads; the owner's studio socket on node A sends a chat message every {} ms. Every node, \
the sender's too, gets a message back from the room's JetStream subject before its viewers do (so that every \
viewer sees the same ids in the same order), so the rows for A and B differ by what the second node adds, not by a NATS hop. \
A delivery is timed when the viewer has read it. CPU per message is each process's user+system time over the \
timed sends (10 ms ticks), divided by the messages.\n\nLast run: {}\n\n{table}",
        match std::env::var("ONAIR_BENCH_BIN") {
            Ok(bin) => format!("`{bin}`, from `ONAIR_BENCH_BIN`"),
            Err(_) => format!(
                "{} profile",
                profile_of(std::path::Path::new(&server_binary()).parent())
            ),
        },
        generator,
        shards.len(),
        GAP.as_millis(),
        time::OffsetDateTime::now_utc().date()
    );
    report::write_section("cluster", &doc);
}

fn chat(text: &str) -> Message {
    Message::Text(
        serde_json::to_string(&ClientMessage::Chat { text: text.into() })
            .expect("json")
            .into(),
    )
}
