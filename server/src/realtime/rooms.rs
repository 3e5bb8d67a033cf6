//! Every room on this node ([`Rooms`]): opening and closing rooms, the
//! connection caps, the ticker that sends viewer counts, and the link to
//! the other nodes ([`crate::cluster::Bus`]): what changes a room goes
//! through the bus, which hands it back to every node's room in one order.

use super::*;
use crate::cluster::{viewer_hash, Bus, Follow, LocalBus};
use futures::FutureExt;
use relay::{Effect, RoomMessage};

/// A room's feed from the bus, made once.
type FollowCell = Arc<tokio::sync::OnceCell<Follow>>;

/// A stored message as the protocol shows it.
pub fn chat_message(row: ChatRow, moderator: bool) -> ChatMessage {
    ChatMessage {
        id: row.id,
        author: ChatAuthor {
            username: row.username,
            moderator,
        },
        text: row.text,
        at_ms: row.at,
    }
}

/// Every room on this node.
///
/// A room follows its stream's visibility on this node ([`Room::set_private`]
/// from the stream update, and from every connection's `hello`, which reads
/// the stream); another node's rooms learn of a change at their next `hello`.
#[derive(Debug)]
pub struct Rooms {
    /// Limits and timings.
    pub config: RealtimeConfig,
    db: Database,
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    connections: AtomicUsize,
    fanout: fanout::Fanout,
    /// The events between nodes (in-process on one node).
    bus: Arc<dyn Bus>,
    /// Per open room, its feed from the bus (made once).
    /// Per open room (its key with the fan-out), its feed from the bus.
    follows: Mutex<HashMap<String, (u64, FollowCell)>>,
    /// Cluster mode: per stream, the state and "away" this node last
    /// announced (its ingest's changes are told once each).
    announced: Mutex<HashMap<String, (StreamState, bool)>>,
    /// Cluster mode: per open room, the viewer count across nodes last sent.
    counts: Mutex<HashMap<String, u32>>,
}

impl Rooms {
    /// No rooms yet, on one node (the in-process bus); starts the ticker
    /// that sends viewer counts and drops rooms that stayed empty.
    pub fn new(db: Database, config: RealtimeConfig) -> Arc<Self> {
        Self::with_bus(db, config, Arc::new(LocalBus::new()))
    }

    /// [`Rooms::new`] on a given bus (NATS in cluster mode).
    pub fn with_bus(db: Database, config: RealtimeConfig, bus: Arc<dyn Bus>) -> Arc<Self> {
        let rooms = Arc::new(Rooms {
            config,
            db,
            rooms: Mutex::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            fanout: fanout::Fanout::start(),
            bus,
            follows: Mutex::new(HashMap::new()),
            announced: Mutex::new(HashMap::new()),
            counts: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&rooms);
        tokio::spawn(ticker(weak));
        rooms
    }

    /// The bus the rooms use.
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// Whether other nodes share the rooms (cluster mode).
    pub fn shared(&self) -> bool {
        self.bus.shared()
    }

    /// Puts an event in a stream's room through the bus, on every node
    /// where the room is open; if the bus cannot take it (NATS down), it
    /// reaches this node's connections only, unnumbered.
    pub(crate) async fn post(&self, stream_id: &str, message: RoomMessage) {
        let body = match serde_json::to_vec(&message) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise a room event");
                return;
            }
        };
        if let Err(e) = self.bus.append(stream_id, body).await {
            self.alone(stream_id, message, &e);
        }
    }

    /// [`Rooms::post`] from code that cannot wait: the in-process bus
    /// delivers at once; NATS's append finishes in a task.
    pub(crate) fn post_now(&self, stream_id: &str, message: RoomMessage) {
        let body = match serde_json::to_vec(&message) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise a room event");
                return;
            }
        };
        let mut append = self.bus.append(stream_id, body);
        match (&mut append).now_or_never() {
            Some(Ok(())) => {}
            Some(Err(e)) => self.alone(stream_id, message, &e),
            None => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    self.alone(
                        stream_id,
                        message,
                        &crate::cluster::BusError::Unavailable("no runtime".into()),
                    );
                    return;
                };
                let room = self.get(stream_id);
                runtime.spawn(async move {
                    if let Err(e) = append.await {
                        if let Some(room) = room {
                            metrics::counter!("onair_bus_local_only_total").increment(1);
                            tracing::warn!(stream = %room.stream_id, error = %e, "room event served on this node only");
                            room.deliver_alone(message);
                        }
                    }
                });
            }
        }
    }

    fn alone(&self, stream_id: &str, message: RoomMessage, e: &crate::cluster::BusError) {
        metrics::counter!("onair_bus_local_only_total").increment(1);
        tracing::warn!(stream = stream_id, error = %e, "room event served on this node only");
        if let Some(room) = self.get(stream_id) {
            room.deliver_alone(message);
        }
    }

    /// Forwards stream state changes from ingest to the rooms.
    pub fn follow(self: &Arc<Self>, mut states: broadcast::Receiver<StateChange>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let change = match states.recv().await {
                    Ok(c) => c,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(rooms) = weak.upgrade() else { return };
                if rooms.shared() {
                    rooms.announce(change).await;
                } else if let Some(room) = rooms.get(&change.stream_id) {
                    room.set_state(change.state, change.broadcaster_away);
                }
            }
        });
    }

    /// Cluster mode: this node's ingest changed a stream's state; every
    /// node's room hears it (whether or not the room is open here).
    async fn announce(&self, change: StateChange) {
        let state = change.state;
        let away = change.broadcaster_away && state == StreamState::Live;
        let before = self
            .announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(change.stream_id.clone(), (state, away));
        let state_changed = before.map(|b| b.0) != Some(state);
        let away_changed = before.map_or(away, |b| b.1 != away);
        let effect = || Some(Effect::State { state, away });
        if state_changed {
            let event = ServerEvent::State { state };
            self.post(
                &change.stream_id,
                RoomMessage {
                    event,
                    effect: effect(),
                },
            )
            .await;
        }
        // After an end or interruption the state says it all.
        if away_changed && state == StreamState::Live {
            let event = ServerEvent::Broadcaster { away };
            self.post(
                &change.stream_id,
                RoomMessage {
                    event,
                    effect: effect(),
                },
            )
            .await;
        }
        if state != StreamState::Live {
            self.announced
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&change.stream_id);
        }
    }

    /// New chat rules for a stream's room (on every node where it is open).
    pub fn set_rules(&self, stream_id: &str, row: ChatConfigRow) {
        if !self.shared() && self.get(stream_id).is_none() {
            return;
        }
        let rules = Rules::from_row(row);
        let event = ServerEvent::Settings(rules.public());
        self.post_now(
            stream_id,
            RoomMessage {
                event,
                effect: Some(Effect::Rules(rules)),
            },
        );
    }

    /// A stream's visibility as just read or changed. When it turns
    /// private, every connection on every node checks its access again
    /// (those without it are closed with 4003).
    pub fn set_private(&self, stream_id: &str, private: bool) {
        let turned_private = match self.get(stream_id) {
            Some(room) => {
                let mut inner = room.lock();
                let turned = private && !inner.private;
                if !private {
                    // Turning public needs no one's access checked.
                    inner.private = false;
                }
                turned
            }
            // Not open here: other nodes' rooms may be.
            None => self.shared() && private,
        };
        if turned_private {
            let event = ServerEvent::Settings(ChatSettings::default());
            self.post_now(
                stream_id,
                RoomMessage {
                    event,
                    effect: Some(Effect::Private(true)),
                },
            );
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The room of a stream, if it is open on this node.
    pub fn get(&self, stream_id: &str) -> Option<Arc<Room>> {
        self.map().get(stream_id).cloned()
    }

    /// Distinct viewers of a stream: on this node, or on every node in
    /// cluster mode (this node's viewers and the keys the others last
    /// shared, one viewer on two nodes counted once).
    pub fn viewer_count(&self, stream_id: &str) -> u32 {
        let room = self.get(stream_id);
        if !self.shared() {
            return room.map(|r| r.viewers()).unwrap_or(0);
        }
        let mut distinct: HashSet<u64> = room
            .map(|r| r.viewer_keys().iter().map(|k| viewer_hash(k)).collect())
            .unwrap_or_default();
        let (others, bare) = self.bus.other_viewers(stream_id);
        distinct.extend(others);
        u32::try_from(distinct.len())
            .unwrap_or(u32::MAX)
            .saturating_add(bare)
    }

    /// Cluster mode: the count across nodes as of the last tick (cheap:
    /// for a joining connection's welcome).
    pub fn last_count(&self, stream_id: &str) -> Option<u32> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(stream_id)
            .copied()
    }

    /// Sends a caption cue to a stream's room (on every node where it is open).
    pub fn publish_caption(&self, stream_id: &str, caption: Caption) {
        if !self.shared() && self.get(stream_id).is_none() {
            return;
        }
        self.post_now(stream_id, RoomMessage::event(ServerEvent::Caption(caption)));
    }

    /// Cluster mode, each tick: shares this node's viewer keys of the room
    /// and sends its connections the count across nodes when it changed
    /// (unnumbered: each node counts for its own connections).
    fn count_across(&self, room: &Room) {
        let keys: Vec<u64> = room.viewer_keys().iter().map(|k| viewer_hash(k)).collect();
        let (others, bare) = self.bus.other_viewers(&room.stream_id);
        let mut distinct: HashSet<u64> = keys.iter().copied().collect();
        distinct.extend(others);
        self.bus.share_viewers(&room.stream_id, keys);
        let count = u32::try_from(distinct.len())
            .unwrap_or(u32::MAX)
            .saturating_add(bare);
        let before = self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(room.stream_id.clone(), count);
        if before != Some(count) {
            room.send_unnumbered(ServerEvent::Viewers { count });
        }
    }

    /// The room of a stream, opened (with its rules and bans from the
    /// database) if needed, with the stream's visibility as just read.
    pub async fn open(
        &self,
        stream_id: &str,
        owner_id: &str,
        state: StreamState,
        private: bool,
    ) -> Result<Arc<Room>, DbError> {
        if let Some(room) = self.get(stream_id) {
            self.follow_room(&room).await;
            self.set_private(stream_id, private);
            return Ok(room);
        }
        let config = self.db.chat_config(stream_id).await?.unwrap_or_default();
        let now = now_ms();
        let bans = self
            .db
            .chat_bans(stream_id)
            .await?
            .into_iter()
            .filter(|b| b.until.is_none_or(|u| u > now))
            .map(|b| (b.user_id, b.until))
            .collect();
        // One node numbers its rooms from their creation time in
        // microseconds; in cluster mode the bus numbers them.
        let first_id = if self.shared() {
            1
        } else {
            u64::try_from(now).unwrap_or(0).saturating_mul(1000).max(1)
        };
        let key = next_conn();
        let room = Arc::new(Room {
            stream_id: stream_id.to_string(),
            owner_id: owner_id.to_string(),
            key,
            fanout: self.fanout.senders(),
            inner: Mutex::new(Inner {
                next_id: first_id,
                backlog: VecDeque::new(),
                viewers: HashMap::new(),
                connections: 0,
                empty_since: Some(Instant::now()),
                sent_viewers: 0,
                state,
                broadcaster_away: false,
                private,
                rules: Rules::from_row(config),
                bans,
                buckets: HashMap::new(),
                last_post: HashMap::new(),
            }),
            config: self.config,
        });
        // Someone else may have opened it meanwhile: theirs wins.
        let room = self
            .map()
            .entry(stream_id.to_string())
            .or_insert(room)
            .clone();
        self.follow_room(&room).await;
        if self.shared() {
            // The history just read may hold older states and visibilities
            // (one changed while NATS was down, or turned public, which is
            // not told): the database, read at this hello, has the last word.
            let mut inner = room.lock();
            inner.state = state;
            if !private {
                inner.private = false;
            }
        }
        Ok(room)
    }

    /// Makes the room's feed from the bus, once; waits until the history
    /// the bus holds has reached the room (so a resume here finds it).
    async fn follow_room(&self, room: &Arc<Room>) {
        let cell = {
            let mut follows = self.follows.lock().unwrap_or_else(|e| e.into_inner());
            match follows.get(&room.stream_id) {
                Some((key, cell)) if *key == room.key => cell.clone(),
                // None yet, or an earlier room's (dropped meanwhile): this
                // room's feed replaces it.
                _ => {
                    let cell = FollowCell::default();
                    follows.insert(room.stream_id.clone(), (room.key, cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_init(|| {
            let sink = Arc::downgrade(room) as Weak<dyn crate::cluster::Sink>;
            self.bus.follow(&room.stream_id, sink)
        })
        .await;
    }

    /// Takes a connection slot, or `None` at the limit.
    pub fn admit(self: &Arc<Self>) -> Option<Slot> {
        let n = self.connections.fetch_add(1, Ordering::SeqCst);
        if n >= self.config.max_connections {
            self.connections.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        metrics::gauge!("onair_events_connections").set((n + 1) as f64);
        Some(Slot(self.clone()))
    }
}

/// One admitted connection; frees its place when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Rooms>);

impl Drop for Slot {
    fn drop(&mut self) {
        let n = self.0.connections.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!("onair_events_connections").set(n.saturating_sub(1) as f64);
    }
}

async fn ticker(rooms: Weak<Rooms>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        let Some(rooms) = rooms.upgrade() else { return };
        let now = Instant::now();
        let all: Vec<Arc<Room>> = rooms.map().values().cloned().collect();
        let shared = rooms.shared();
        let expired: Vec<String> = all
            .iter()
            .filter(|r| {
                if shared {
                    rooms.count_across(r);
                    r.expired(now)
                } else {
                    r.tick(now)
                }
            })
            .map(|r| r.stream_id.clone())
            .collect();
        if !expired.is_empty() {
            let mut map = rooms.map();
            for id in expired {
                // Only if still empty: someone may have joined since the tick.
                if map.get(&id).is_some_and(|r| r.lock().connections == 0) {
                    let Some(gone) = map.remove(&id) else {
                        continue;
                    };
                    // Its feed from the bus stops (if it is still its own).
                    let mut follows = rooms.follows.lock().unwrap_or_else(|e| e.into_inner());
                    if follows.get(&id).is_some_and(|(key, _)| *key == gone.key) {
                        follows.remove(&id);
                    }
                    drop(follows);
                    rooms
                        .counts
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                }
            }
        }
    }
}

impl crate::transcribe::CaptionSink for Rooms {
    fn caption(&self, stream_id: &str, caption: Caption) {
        self.publish_caption(stream_id, caption);
    }
}
