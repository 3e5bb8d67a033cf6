//! The events between nodes: the bus seam ([`Bus`]), its in-process
//! implementation ([`LocalBus`], the default: one node, no NATS) and its
//! NATS implementation ([`nats::NatsBus`], `--nats-url`), plus the stream
//! leases of cluster mode ([`leases::NatsLeases`]).
//!
//! The bus carries each room's events as opaque bytes keyed by stream id; it
//! knows nothing of chat or moderation (the rooms, `realtime`, do).
//! What it guarantees:
//! - **One order, one id.** [`Bus::append`] puts an event in its room's
//!   history; every follower of the room ([`Bus::follow`]), on every node,
//!   gets every event in that one order, each with the same id and the id of
//!   the event before it (`prev`), so a follower can tell a complete history
//!   from one with a gap.
//! - **History.** A new follower first gets the history the bus still holds
//!   (bounded), then the new events.
//! - **Viewer keys.** Each node shares the (hashed) viewer keys of its rooms
//!   ([`Bus::share_viewers`]) and reads the others' ([`Bus::other_viewers`]),
//!   so a count is a union and one viewer on two nodes counts once.

pub mod leases;
pub mod nats;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;

/// Cluster settings (`--nats-url` and friends); none means one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The NATS server(s), e.g. `nats://127.0.0.1:4222` (comma-separated).
    pub nats_url: Option<String>,
    /// This node's name in the cluster (leases, viewer keys, logs).
    pub node_id: String,
    /// Events each room's history keeps on NATS (JetStream max messages per
    /// subject).
    pub room_history: i64,
    /// How long a room's events stay on NATS (JetStream max age).
    pub room_max_age: Duration,
    /// A stream lease's time to live: a dead owner's lease expires after it.
    pub lease_ttl: Duration,
    /// This node's base URL for the other nodes (`--node-url`); none: the
    /// bound listen address.
    pub node_url: Option<String>,
    /// Bytes of forwarded parts, segments and init segments a node keeps
    /// for the streams it serves as an edge (`--edge-cache-bytes`).
    pub edge_cache_bytes: usize,
    /// How long a forwarded part or segment is kept (`--edge-cache-secs`).
    pub edge_cache_ttl: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats_url: None,
            node_id: default_node_id(),
            room_history: 512,
            room_max_age: Duration::from_secs(3600),
            lease_ttl: Duration::from_secs(5),
            node_url: None,
            edge_cache_bytes: 256 * 1024 * 1024,
            edge_cache_ttl: Duration::from_secs(60),
        }
    }
}

/// The host's name, or a random name when it has none.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.len() <= 64);
    match host {
        Some(h) => h,
        None => {
            let mut b = [0u8; 6];
            let _ = getrandom::fill(&mut b);
            format!("node-{}", hex::encode(b))
        }
    }
}

/// Why the bus could not take an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// NATS is not reachable now.
    #[error("the bus is unavailable: {0}")]
    Unavailable(String),
    /// Not a stream id (the subject would not be safe).
    #[error("not a stream id: {0:?}")]
    BadStream(String),
}

/// Where a room's events arrive, in the room's order.
pub trait Sink: Send + Sync {
    /// One event and its numbering: `Some((id, prev))` from a shared bus,
    /// the id and the id of the event before it (0: none the bus still
    /// holds); `None` from the in-process bus, where the one follower
    /// numbers its room's events itself.
    fn deliver(&self, numbered: Option<(u64, u64)>, body: &[u8]);
}

/// A room being followed; dropping it stops the delivery.
pub struct Follow {
    _stop: Box<dyn Send + Sync>,
}

impl Debug for Follow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follow").finish_non_exhaustive()
    }
}

/// The bus's state for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusHealth {
    /// What it talks to (without credentials).
    pub target: String,
    /// Why it is degraded, if it is.
    pub problem: Option<String>,
}

/// The events between nodes (see the module's documentation).
pub trait Bus: Send + Sync + Debug {
    /// Whether other nodes share the rooms (false: this node alone).
    fn shared(&self) -> bool;

    /// Appends an event to a stream's room. The in-process bus delivers it
    /// to the follower before returning; NATS when the returned future
    /// resolves (the follower gets it from the room's history like every
    /// other node).
    fn append(&self, stream: &str, body: Bytes) -> BoxFuture<'static, Result<(), BusError>>;

    /// Follows a stream's room: `sink` gets the history still held, then
    /// every new event, until the [`Follow`] is dropped or the sink is gone.
    /// Resolves once the history held at the call has been delivered.
    fn follow(&self, stream: &str, sink: Weak<dyn Sink>) -> BoxFuture<'static, Follow>;

    /// This node's viewer keys of a stream (hashed), shared with the others.
    fn share_viewers(&self, stream: &str, keys: Vec<u64>);

    /// The other nodes' viewer keys of a stream, as last shared (recent ones
    /// only), and a count of viewers shared without keys (past a node's
    /// share limit).
    fn other_viewers(&self, stream: &str) -> (Vec<u64>, u32);

    /// The state of the link to the other nodes; `None` for the in-process bus.
    fn health(&self) -> Option<BusHealth>;
}

/// A viewer key as nodes share it: the first 8 bytes of its SHA-256.
pub fn viewer_hash(key: &str) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key.as_bytes());
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// The in-process bus: one node, no other. Each event is handed to the
/// room's one follower synchronously, in the caller's turn, unnumbered: the
/// room numbers it (one more than the last, from the room's creation time
/// in microseconds), as it always did on one node.
#[derive(Debug, Default)]
pub struct LocalBus {
    rooms: Mutex<HashMap<String, Arc<Mutex<LocalRoom>>>>,
}

struct LocalRoom {
    sink: Weak<dyn Sink>,
}

impl Debug for LocalRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRoom").finish_non_exhaustive()
    }
}

/// Removes a followed room from the [`LocalBus`] when dropped.
struct LocalStop {
    bus: Weak<LocalBus>,
    stream: String,
    room: Weak<Mutex<LocalRoom>>,
}

impl Drop for LocalStop {
    fn drop(&mut self) {
        let Some(bus) = self.bus.upgrade() else {
            return;
        };
        let mut rooms = bus.rooms.lock().unwrap_or_else(|e| e.into_inner());
        // Only if it is still this follow's room (a later follow replaced it).
        if let (Some(mine), Some(now)) = (self.room.upgrade(), rooms.get(&self.stream)) {
            if Arc::ptr_eq(&mine, now) {
                rooms.remove(&self.stream);
            }
        }
    }
}

impl LocalBus {
    /// An in-process bus.
    pub fn new() -> Arc<LocalBus> {
        Arc::new(LocalBus::default())
    }
}

impl Bus for Arc<LocalBus> {
    fn shared(&self) -> bool {
        false
    }

    fn append(&self, stream: &str, body: Bytes) -> BoxFuture<'static, Result<(), BusError>> {
        let room = self
            .rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(stream)
            .cloned();
        // No room open: nobody to tell (as a room that is not open misses
        // nothing it would keep).
        if let Some(room) = room {
            let r = room.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(sink) = r.sink.upgrade() {
                sink.deliver(None, &body);
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn follow(&self, stream: &str, sink: Weak<dyn Sink>) -> BoxFuture<'static, Follow> {
        let room = Arc::new(Mutex::new(LocalRoom { sink }));
        self.rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stream.to_string(), room.clone());
        let follow = Follow {
            _stop: Box::new(LocalStop {
                bus: Arc::downgrade(self),
                stream: stream.to_string(),
                room: Arc::downgrade(&room),
            }),
        };
        Box::pin(std::future::ready(follow))
    }

    fn share_viewers(&self, _stream: &str, _keys: Vec<u64>) {}

    fn other_viewers(&self, _stream: &str) -> (Vec<u64>, u32) {
        (Vec::new(), 0)
    }

    fn health(&self) -> Option<BusHealth> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a sink got: the numbering and the bytes.
    type Got = (Option<(u64, u64)>, Vec<u8>);

    #[derive(Default)]
    struct Collect(Mutex<Vec<Got>>);

    impl Sink for Collect {
        fn deliver(&self, numbered: Option<(u64, u64)>, body: &[u8]) {
            self.0.lock().unwrap().push((numbered, body.to_vec()));
        }
    }

    #[tokio::test]
    async fn the_local_bus_delivers_in_the_callers_turn_and_forgets_a_dropped_follow() {
        let bus = LocalBus::new();
        let sink = Arc::new(Collect::default());
        let weak: Weak<dyn Sink> = Arc::downgrade(&sink) as Weak<dyn Sink>;
        let follow = bus.follow("s1", weak).await;
        // Delivered before the future is even polled.
        let pending = bus.append("s1", Bytes::from_static(b"a"));
        assert_eq!(sink.0.lock().unwrap().len(), 1);
        pending.await.unwrap();
        bus.append("s1", Bytes::from_static(b"b")).await.unwrap();
        bus.append("other", Bytes::from_static(b"x")).await.unwrap();
        let got = sink.0.lock().unwrap().clone();
        assert_eq!(got, vec![(None, b"a".to_vec()), (None, b"b".to_vec())]);
        drop(follow);
        assert!(bus.rooms.lock().unwrap().is_empty());
    }

    #[test]
    fn viewer_hashes_are_stable() {
        assert_eq!(viewer_hash("u:1"), viewer_hash("u:1"));
        assert_ne!(viewer_hash("u:1"), viewer_hash("u:2"));
    }
}
