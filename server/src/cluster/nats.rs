//! The bus on NATS (`--nats-url`).
//!
//! - **Rooms** are one JetStream stream, [`ROOMS_STREAM`], with a subject per
//!   room, `onair.room.<stream id>` (stream ids are 1 to 64 lower-case
//!   letters and digits, [`app::ids::valid_stream_id`], so a subject is
//!   always one safe token). It keeps at most
//!   [`ClusterConfig::room_history`] events per room, for at most
//!   [`ClusterConfig::room_max_age`]. An event's id is its JetStream stream
//!   sequence: every node reads the same number. A node appends with
//!   `Nats-Expected-Last-Subject-Sequence` set to the room's last sequence
//!   it knows, and names that sequence in the `Onair-Prev` header; if
//!   another node appended meanwhile, JetStream refuses, the node reads the
//!   room's last sequence again and retries ([`MAX_APPEND_TRIES`]). So each
//!   event names the one before it, and a follower can tell whether its
//!   history has a gap.
//! - **Following** a room is an ordered JetStream consumer filtered on its
//!   subject, from the first event held (then from the last one delivered,
//!   whenever it has to be made again: NATS restarted, the link dropped).
//! - **Viewer keys**: each node publishes its rooms' hashed viewer keys on
//!   `onair.viewers.<stream id>` every second (core NATS, no history);
//!   every node keeps the others' for [`VIEWERS_FRESH`].
//! - **Leases**: [`super::leases`], on the same connection ([`NatsBus::leases`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::{watch, OnceCell};

use super::leases::NatsLeases;
use super::{Bus, BusError, BusHealth, ClusterConfig, Follow, Sink};

/// The JetStream stream that holds every room's history.
pub const ROOMS_STREAM: &str = "ONAIR_ROOMS";
/// How often an append is retried after another node appended first.
pub const MAX_APPEND_TRIES: usize = 16;
/// How long another node's viewer keys count after they were shared.
pub const VIEWERS_FRESH: Duration = Duration::from_secs(5);
/// Viewer keys one node shares per stream at most (8 bytes each, under
/// NATS's default 1 MB message limit); more are shared as a bare count.
pub const MAX_SHARED_VIEWERS: usize = 100_000;
/// How long one request to NATS may take before the bus counts as down.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a new follower waits for the room's history before it serves
/// what it has.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);
/// The header naming the event before this one.
const PREV_HEADER: &str = "Onair-Prev";

fn room_subject(stream: &str) -> Result<String, BusError> {
    if !app::ids::valid_stream_id(stream) {
        return Err(BusError::BadStream(stream.to_string()));
    }
    Ok(format!("onair.room.{stream}"))
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// The server list without credentials (`user:pass@` dropped).
fn describe(url: &str) -> String {
    url.split(',')
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}{}", &u[..s + 3], &u[at + 1..]),
            (None, Some(at)) => u[at + 1..].to_string(),
            _ => u.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Other nodes' viewer keys of one stream: node → (keys, bare count, when).
type Shared = HashMap<String, (Vec<u64>, u32, Instant)>;

/// The bus on NATS (see the module's documentation).
#[derive(Debug)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    config: ClusterConfig,
    target: String,
    rooms: OnceCell<stream::Stream>,
    /// Per room, the last sequence this node knows of.
    last: Mutex<HashMap<String, u64>>,
    /// Per stream, the other nodes' viewer keys.
    viewers: Mutex<HashMap<String, Shared>>,
    /// This node's base URL for the others (`--node-url`, or set once the
    /// listener is bound), written into its leases.
    node_url: Arc<std::sync::OnceLock<String>>,
}

impl NatsBus {
    /// Connects (in the background: a NATS that is down at start-up is
    /// retried, and the node serves alone meanwhile) and starts listening to
    /// the other nodes' viewer keys.
    pub async fn connect(config: ClusterConfig) -> Result<Arc<NatsBus>, BusError> {
        let url = config.nats_url.clone().unwrap_or_default();
        let client = async_nats::ConnectOptions::new()
            .name(format!("onair {}", config.node_id))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Disconnected => {
                        tracing::warn!(
                            "NATS link lost: this node serves its own viewers until it is back"
                        )
                    }
                    async_nats::Event::Connected => tracing::info!("NATS link up"),
                    other => tracing::debug!(event = %other, "NATS"),
                }
            })
            .connect(url.as_str())
            .await
            .map_err(unavailable)?;
        let js = jetstream::new(client.clone());
        let node_url = Arc::new(std::sync::OnceLock::new());
        if let Some(u) = &config.node_url {
            let _ = node_url.set(u.clone());
        }
        let bus = Arc::new(NatsBus {
            node_url,
            client,
            js,
            target: describe(&url),
            config,
            rooms: OnceCell::new(),
            last: Mutex::new(HashMap::new()),
            viewers: Mutex::new(HashMap::new()),
        });
        let sub = bus
            .client
            .subscribe("onair.viewers.*")
            .await
            .map_err(unavailable)?;
        tokio::spawn(listen_viewers(Arc::downgrade(&bus), sub));
        // The rooms' stream now, so that /readyz says ready once NATS is
        // there (tried again every second while it is not).
        let weak = Arc::downgrade(&bus);
        tokio::spawn(async move {
            loop {
                let Some(bus) = weak.upgrade() else { return };
                match bus.rooms().await {
                    Ok(_) => return,
                    Err(e) => tracing::debug!(error = %e, "rooms' JetStream stream not ready yet"),
                }
                drop(bus);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok(bus)
    }

    /// Stream leases on the same connection.
    pub fn leases(&self) -> NatsLeases {
        NatsLeases::new(
            self.js.clone(),
            self.client.clone(),
            self.config.node_id.clone(),
            self.config.lease_ttl,
            self.node_url.clone(),
        )
    }

    /// This node's base URL for the others, as its leases carry it; set
    /// once (`--node-url` sets it at start, else the bound address).
    pub fn node_url(&self) -> Arc<std::sync::OnceLock<String>> {
        self.node_url.clone()
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn rooms_config(&self) -> stream::Config {
        stream::Config {
            name: ROOMS_STREAM.to_string(),
            subjects: vec!["onair.room.*".to_string()],
            max_messages_per_subject: self.config.room_history,
            max_age: self.config.room_max_age,
            storage: stream::StorageType::File,
            discard: stream::DiscardPolicy::Old,
            allow_direct: true,
            ..Default::default()
        }
    }

    /// The rooms' JetStream stream, created if missing (tried again on each
    /// use until it works).
    async fn rooms(&self) -> Result<&stream::Stream, BusError> {
        self.rooms
            .get_or_try_init(|| async {
                tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    self.js.get_or_create_stream(self.rooms_config()),
                )
                .await
                .map_err(unavailable)?
                .map_err(unavailable)
            })
            .await
    }

    /// Makes the rooms' stream again if NATS lost it (a new server, or its
    /// storage gone); a no-op when it is there.
    async fn remake_rooms(&self) {
        let made = tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.js.get_or_create_stream(self.rooms_config()),
        )
        .await;
        if let Ok(Err(e)) = made {
            tracing::debug!(error = %e, "cannot make the rooms' stream");
        }
    }

    /// The last sequence of a room on NATS (0: none held).
    async fn last_of(&self, subject: &str) -> Result<u64, BusError> {
        let rooms = self.rooms().await?;
        match tokio::time::timeout(
            REQUEST_TIMEOUT,
            rooms.get_last_raw_message_by_subject(subject),
        )
        .await
        .map_err(unavailable)?
        {
            Ok(m) => Ok(m.sequence),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => {
                if self.connected() {
                    // NATS may have lost the stream (a new server).
                    self.remake_rooms().await;
                }
                Err(unavailable(e))
            }
        }
    }

    fn note_last(&self, stream: &str, seq: u64) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let e = last.entry(stream.to_string()).or_insert(0);
        *e = (*e).max(seq);
    }

    async fn append_now(self: Arc<Self>, stream: String, body: Bytes) -> Result<(), BusError> {
        let subject = room_subject(&stream)?;
        if !self.connected() {
            return Err(BusError::Unavailable("not connected to NATS".into()));
        }
        let known = self
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&stream)
            .copied();
        let mut expected = match known {
            Some(k) => k,
            None => self.last_of(&subject).await?,
        };
        for _ in 0..MAX_APPEND_TRIES {
            let msg = jetstream::message::PublishMessage::build()
                .payload(body.clone())
                .expected_last_subject_sequence(expected)
                .header(PREV_HEADER, expected.to_string().as_str());
            let sent = tokio::time::timeout(REQUEST_TIMEOUT, async {
                self.js.send_publish(subject.clone(), msg).await?.await
            })
            .await
            .map_err(unavailable)?;
            match sent {
                Ok(ack) => {
                    self.note_last(&stream, ack.sequence);
                    metrics::counter!("onair_bus_appends_total").increment(1);
                    return Ok(());
                }
                Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                    metrics::counter!("onair_bus_append_retries_total").increment(1);
                    expected = self.last_of(&subject).await?;
                    self.note_last(&stream, expected);
                }
                Err(e) => {
                    if e.kind() == jetstream::context::PublishErrorKind::StreamNotFound {
                        // Made again for the next event; this one stays here.
                        self.remake_rooms().await;
                    }
                    return Err(unavailable(e));
                }
            }
        }
        Err(BusError::Unavailable(format!(
            "room {stream}: {MAX_APPEND_TRIES} appends in a row lost to other nodes"
        )))
    }
}

/// Delivers a room's events from NATS to `sink`, making the consumer again
/// whenever it fails, from the event after the last one delivered.
async fn run_follow(
    bus: Arc<NatsBus>,
    stream: String,
    sink: Weak<dyn Sink>,
    delivered: watch::Sender<u64>,
) {
    let Ok(subject) = room_subject(&stream) else {
        return;
    };
    let mut last = 0u64;
    let mut failures = 0u32;
    loop {
        if sink.strong_count() == 0 {
            return;
        }
        if failures > 0 {
            let wait = Duration::from_millis(250 * u64::from(failures.min(8)));
            tokio::time::sleep(wait).await;
        }
        let rooms = match bus.rooms().await {
            Ok(r) => r,
            Err(e) => {
                failures += 1;
                tracing::debug!(stream, error = %e, "room history unavailable");
                continue;
            }
        };
        let deliver_policy = if last == 0 {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: last + 1,
            }
        };
        let config = consumer::pull::OrderedConfig {
            filter_subject: subject.clone(),
            deliver_policy,
            ..Default::default()
        };
        let made = tokio::time::timeout(REQUEST_TIMEOUT, async {
            rooms
                .create_consumer(config)
                .await?
                .messages()
                .await
                .map_err(Into::into)
        })
        .await;
        let mut messages = match made {
            Ok(Ok(m)) => m,
            Ok(Err::<_, async_nats::Error>(e)) => {
                failures += 1;
                tracing::debug!(stream, error = %e, "cannot follow a room yet");
                if bus.connected() {
                    // NATS may have lost the stream (a new server).
                    bus.remake_rooms().await;
                }
                continue;
            }
            Err(_) => {
                failures += 1;
                continue;
            }
        };
        if failures > 0 {
            tracing::info!(stream, from = last + 1, "following the room again");
        }
        failures = 0;
        while let Some(m) = messages.next().await {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(stream, error = %e, "room feed interrupted; resuming");
                    failures = 1;
                    break;
                }
            };
            let Ok(seq) = m.info().map(|i| i.stream_sequence) else {
                continue;
            };
            if seq <= last {
                continue;
            }
            let prev = m
                .headers
                .as_ref()
                .and_then(|h| h.get(PREV_HEADER))
                .and_then(|v| v.as_str().parse::<u64>().ok())
                .unwrap_or(0);
            let Some(s) = sink.upgrade() else { return };
            s.deliver(Some((seq, prev)), &m.payload);
            drop(s);
            last = seq;
            bus.note_last(&stream, seq);
            let _ = delivered.send(seq);
        }
        if failures == 0 {
            failures = 1;
        }
    }
}

/// Aborts a task when dropped.
#[derive(Debug)]
pub(super) struct AbortOnDrop(pub(super) tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `[node length: u8][node][bare count: u32 LE][keys: u64 LE …]`.
fn encode_viewers(node: &str, keys: &[u64]) -> Bytes {
    let node = &node.as_bytes()[..node.len().min(255)];
    let shared = &keys[..keys.len().min(MAX_SHARED_VIEWERS)];
    let bare = u32::try_from(keys.len() - shared.len()).unwrap_or(u32::MAX);
    let mut b = BytesMut::with_capacity(1 + node.len() + 4 + shared.len() * 8);
    b.put_u8(node.len() as u8);
    b.put_slice(node);
    b.put_u32_le(bare);
    for k in shared {
        b.put_u64_le(*k);
    }
    b.freeze()
}

fn decode_viewers(mut b: &[u8]) -> Option<(String, u32, Vec<u64>)> {
    if b.is_empty() {
        return None;
    }
    let n = usize::from(b.get_u8());
    if b.len() < n + 4 {
        return None;
    }
    let node = String::from_utf8(b[..n].to_vec()).ok()?;
    b.advance(n);
    let bare = b.get_u32_le();
    if !b.len().is_multiple_of(8) || b.len() / 8 > MAX_SHARED_VIEWERS {
        return None;
    }
    let mut keys = Vec::with_capacity(b.len() / 8);
    while b.has_remaining() {
        keys.push(b.get_u64_le());
    }
    Some((node, bare, keys))
}

async fn listen_viewers(bus: Weak<NatsBus>, mut sub: async_nats::Subscriber) {
    let mut pruned = Instant::now();
    while let Some(msg) = sub.next().await {
        let Some(bus) = bus.upgrade() else { return };
        if pruned.elapsed() >= VIEWERS_FRESH {
            // Streams no node shares any more (ended, or not open here).
            pruned = Instant::now();
            let mut all = bus.viewers.lock().unwrap_or_else(|e| e.into_inner());
            all.retain(|_, nodes| {
                nodes.retain(|_, (_, _, at)| at.elapsed() < VIEWERS_FRESH);
                !nodes.is_empty()
            });
        }
        let Some(stream) = msg.subject.strip_prefix("onair.viewers.") else {
            continue;
        };
        let Some((node, bare, keys)) = decode_viewers(&msg.payload) else {
            continue;
        };
        if node == bus.config.node_id {
            continue;
        }
        bus.viewers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(stream.to_string())
            .or_default()
            .insert(node, (keys, bare, Instant::now()));
    }
}

impl Bus for Arc<NatsBus> {
    fn shared(&self) -> bool {
        true
    }

    fn append(&self, stream: &str, body: Bytes) -> BoxFuture<'static, Result<(), BusError>> {
        Box::pin(self.clone().append_now(stream.to_string(), body))
    }

    fn follow(&self, stream: &str, sink: Weak<dyn Sink>) -> BoxFuture<'static, Follow> {
        let bus = self.clone();
        let stream = stream.to_string();
        Box::pin(async move {
            // What is held now: delivered before the room serves anyone.
            let target = match room_subject(&stream) {
                Ok(subject) => bus.last_of(&subject).await.unwrap_or(0),
                Err(_) => 0,
            };
            let (tx, mut rx) = watch::channel(0u64);
            let task = tokio::spawn(run_follow(bus.clone(), stream.clone(), sink, tx));
            if target > 0 {
                let caught_up =
                    tokio::time::timeout(CATCH_UP_TIMEOUT, rx.wait_for(|d| *d >= target)).await;
                if !matches!(caught_up, Ok(Ok(_))) {
                    tracing::warn!(
                        stream,
                        target,
                        "room history not read in time; serving what arrived"
                    );
                }
            }
            Follow {
                _stop: Box::new(AbortOnDrop(task.abort_handle())),
            }
        })
    }

    fn share_viewers(&self, stream: &str, keys: Vec<u64>) {
        if !self.connected() || !app::ids::valid_stream_id(stream) {
            return;
        }
        let payload = encode_viewers(&self.config.node_id, &keys);
        let client = self.client.clone();
        let subject = format!("onair.viewers.{stream}");
        tokio::spawn(async move {
            if let Err(e) = client.publish(subject, payload).await {
                tracing::debug!(error = %e, "cannot share viewer keys");
            }
        });
    }

    fn other_viewers(&self, stream: &str) -> (Vec<u64>, u32) {
        let mut all = self.viewers.lock().unwrap_or_else(|e| e.into_inner());
        let Some(nodes) = all.get_mut(stream) else {
            return (Vec::new(), 0);
        };
        nodes.retain(|_, (_, _, at)| at.elapsed() < VIEWERS_FRESH);
        let mut keys = Vec::new();
        let mut bare = 0u32;
        for (k, b, _) in nodes.values() {
            keys.extend_from_slice(k);
            bare = bare.saturating_add(*b);
        }
        if nodes.is_empty() {
            all.remove(stream);
        }
        (keys, bare)
    }

    fn health(&self) -> Option<BusHealth> {
        let problem = if !self.connected() {
            Some("not connected to NATS".to_string())
        } else if self.rooms.get().is_none() {
            Some("the rooms' JetStream stream is not ready".to_string())
        } else {
            None
        };
        Some(BusHealth {
            target: self.target.clone(),
            problem,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewer_keys_round_trip_and_reject_garbage() {
        let b = encode_viewers("node-a", &[1, 2, u64::MAX]);
        assert_eq!(
            decode_viewers(&b),
            Some(("node-a".to_string(), 0, vec![1, 2, u64::MAX]))
        );
        assert_eq!(decode_viewers(&b[..b.len() - 1]), None);
        assert_eq!(decode_viewers(&[]), None);
        assert_eq!(decode_viewers(&[200, 1, 2]), None);
    }

    #[test]
    fn subjects_only_for_stream_ids() {
        assert_eq!(room_subject("abc123").unwrap(), "onair.room.abc123");
        assert!(room_subject("a.b").is_err());
        assert!(room_subject("a*").is_err());
        assert!(room_subject(">").is_err());
        assert!(room_subject("").is_err());
    }

    #[test]
    fn described_urls_drop_credentials() {
        assert_eq!(
            describe("nats://u:p@h:4222,nats://h2:4222"),
            "nats://h:4222,nats://h2:4222"
        );
    }
}
