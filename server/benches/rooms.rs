//! What the room benchmarks share (`events`: one node, `cluster`: two nodes
//! on NATS): lean viewers that say `hello` and are read from one thread per
//! shard, the tally of timed chat messages (`bench k`), and the table's
//! helpers.

use std::time::Instant;

use app::protocol::events::{ClientMessage, ClientRole};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

// Every bench that includes this file has `mod server` (server.rs).
use super::server;

#[path = "lean_ws.rs"]
pub mod lean_ws;

/// The `k` of a `chat` event whose text is `bench k`.
pub fn message_number(frame: &str) -> Option<usize> {
    let rest = &frame[frame.find("\"text\":\"bench ")? + 14..];
    rest[..rest.find('"')?].parse().ok()
}

/// One client's deliveries: (message number, ns after `t0`).
pub type Deliveries = Vec<(usize, u64)>;

/// A lean client's socket, ready for [`read_chats_lean`].
pub type LeanSocket = (std::net::TcpStream, lean_ws::FrameBuf, [u8; 4]);

/// Per timed message: how many clients got it, and when the first and the
/// last did (ns since the run's start).
pub struct Tally {
    pub delivered: Vec<usize>,
    pub first_ns: Vec<u64>,
    pub last_ns: Vec<u64>,
}

impl Tally {
    /// The tally of `messages` timed messages over these deliveries.
    pub fn of(all: &[Deliveries], messages: usize) -> Tally {
        let mut t = Tally {
            delivered: vec![0; messages],
            first_ns: vec![u64::MAX; messages],
            last_ns: vec![0; messages],
        };
        for (k, at) in all.iter().flatten().copied() {
            if k < messages {
                t.delivered[k] += 1;
                t.first_ns[k] = t.first_ns[k].min(at);
                t.last_ns[k] = t.last_ns[k].max(at);
            }
        }
        t
    }

    /// The messages every one of `clients` got.
    pub fn complete(&self, clients: usize) -> usize {
        self.delivered.iter().filter(|d| **d == clients).count()
    }

    /// Sorted delays (ms) from each send to `at` (`first_ns` or `last_ns`),
    /// over the messages someone got.
    pub fn delays(&self, at: &[u64], sent_ns: &[u64]) -> Vec<f64> {
        let mut d: Vec<f64> = (0..self.delivered.len())
            .filter(|k| self.delivered[*k] > 0)
            .map(|k| at[k].saturating_sub(sent_ns[k]) as f64 / 1e6)
            .collect();
        d.sort_by(f64::total_cmp);
        d
    }
}

/// A full (tungstenite) events socket.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A full events socket to stream `id` that said `hello` as client `n`: the
/// owner's studio with a session `cookie`, else a viewer.
pub async fn connect(addr: &str, id: &str, cookie: Option<&str>, n: usize) -> Ws {
    let mut req = format!("ws://{addr}/api/v1/streams/{id}/events")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("origin", format!("http://{addr}").parse().expect("origin"));
    if let Some(c) = cookie {
        req.headers_mut()
            .insert("cookie", c.parse().expect("cookie"));
    }
    // Frames are small: a 4 KiB read buffer instead of tungstenite's 128 KiB
    // keeps 10,000 clients' buffers within the caches.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true)
        .await
        .expect("websocket connects");
    let role = if cookie.is_some() {
        ClientRole::Studio
    } else {
        ClientRole::Viewer
    };
    server::hello(&mut ws, role, n).await;
    ws
}

/// A load client: the lean WebSocket client says `hello` as a watch page
/// does (viewer id `bench-viewer-<n>`) and reads until `welcome`; returns its
/// socket for [`read_chats_lean`].
pub async fn connect_lean(addr: &str, id: &str, n: usize) -> LeanSocket {
    let mut ws = lean_ws::LeanWs::connect(addr, &format!("/api/v1/streams/{id}/events"), n)
        .await
        .expect("websocket connects");
    let hello = ClientMessage::Hello {
        version: 1,
        role: ClientRole::Viewer,
        viewer_id: Some(format!("bench-viewer-{n:08}")),
        token: None,
        last_id: None,
    };
    let hello = serde_json::to_vec(&hello).expect("json");
    ws.send(lean_ws::TEXT, &hello).await.expect("hello");
    ws.until_text(|t| t.windows(9).any(|w| w == b"\"welcome\""))
        .await
        .expect("welcome");
    ws.into_std().expect("socket")
}

/// Reads a shard's clients on this thread until each has the last of
/// `messages` timed messages (or `deadline`); times each `chat` frame when it
/// has been read.
pub fn read_chats_lean(
    clients: Vec<LeanSocket>,
    messages: usize,
    t0: Instant,
    deadline: Instant,
) -> Deliveries {
    let mut got = Vec::with_capacity(clients.len() * messages);
    lean_ws::read_all(clients, deadline, |_, payload, at| {
        let Ok(t) = std::str::from_utf8(payload) else {
            return false;
        };
        if !t.contains("\"type\":\"chat\"") {
            return false;
        }
        let Some(n) = message_number(t) else {
            return false;
        };
        if n < messages {
            got.push((n, at.duration_since(t0).as_nanos() as u64));
        }
        n + 1 == messages
    })
    .expect("reading the clients");
    got
}

/// The value at `p` (0–1) of sorted values; NaN for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The machine's load average, "1 / 5 / 15".
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" / "))
        .unwrap_or_else(|_| "?".into())
}

/// The Cargo profile of a binary at `dir/<binary>`: `dir` is named after the
/// profile (`debug` for the dev profile).
pub fn profile_of(dir: Option<&std::path::Path>) -> String {
    match dir.and_then(|d| d.file_name()).and_then(|n| n.to_str()) {
        Some("debug") => "dev".into(),
        Some(n) => n.into(),
        None => "?".into(),
    }
}

/// One single-threaded runtime on its own thread; it runs until dropped.
pub struct Shard {
    pub handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Shard {
    pub fn start(n: usize) -> Shard {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("bench-shard-{n}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                ready_tx.send(rt.handle().clone()).expect("handle");
                rt.block_on(async {
                    let _ = stop_rx.await;
                });
            })
            .expect("shard thread");
        Shard {
            handle: ready_rx.recv().expect("shard runtime"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `ONAIR_BENCH_SHARDS`, or one per core.
    pub fn count() -> usize {
        std::env::var("ONAIR_BENCH_SHARDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1)
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects `count` lean viewers (numbered from `first`) to stream `id` at
/// `addr`, spread over the shards with at most `connecting` handshakes in
/// flight per shard; returns each shard's sockets.
pub async fn connect_many(
    shards: &[Shard],
    addr: &str,
    id: &str,
    first: usize,
    count: usize,
    connecting: usize,
) -> Vec<Vec<LeanSocket>> {
    let gates: Vec<_> = shards
        .iter()
        .map(|_| std::sync::Arc::new(tokio::sync::Semaphore::new(connecting)))
        .collect();
    let mut handles: Vec<Vec<_>> = shards.iter().map(|_| Vec::new()).collect();
    for k in first..first + count {
        let shard = k % shards.len();
        let (addr, id, gate) = (addr.to_string(), id.to_string(), gates[shard].clone());
        handles[shard].push(shards[shard].handle.spawn(async move {
            let _turn = gate.acquire().await.expect("gate");
            connect_lean(&addr, &id, k).await
        }));
    }
    let mut out = Vec::with_capacity(handles.len());
    for shard in handles {
        let mut sockets = Vec::with_capacity(shard.len());
        for h in shard {
            sockets.push(h.await.expect("a client failed to connect"));
        }
        out.push(sockets);
    }
    out
}
