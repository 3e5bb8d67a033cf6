//! Every room on this node ([`Rooms`]): opening and closing rooms, the
//! connection caps, and the ticker that sends viewer counts.

use super::*;

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
}

impl Rooms {
    /// No rooms yet; starts the ticker that sends viewer counts and drops
    /// rooms that stayed empty.
    pub fn new(db: Database, config: RealtimeConfig) -> Arc<Self> {
        let rooms = Arc::new(Rooms {
            config,
            db,
            rooms: Mutex::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            fanout: fanout::Fanout::start(),
        });
        let weak = Arc::downgrade(&rooms);
        tokio::spawn(ticker(weak));
        rooms
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
                if let Some(room) = rooms.get(&change.stream_id) {
                    room.set_state(change.state, change.broadcaster_away);
                }
            }
        });
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The room of a stream, if it is open on this node.
    pub fn get(&self, stream_id: &str) -> Option<Arc<Room>> {
        self.map().get(stream_id).cloned()
    }

    /// Distinct viewers of a stream on this node.
    pub fn viewer_count(&self, stream_id: &str) -> u32 {
        self.get(stream_id).map(|r| r.viewers()).unwrap_or(0)
    }

    /// Sends a caption cue to a stream's room, if it is open.
    pub fn publish_caption(&self, stream_id: &str, caption: Caption) {
        if let Some(room) = self.get(stream_id) {
            room.broadcast(ServerEvent::Caption(caption));
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
            room.set_private(private);
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
        let first_id = u64::try_from(now).unwrap_or(0).saturating_mul(1000).max(1);
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
        Ok(self
            .map()
            .entry(stream_id.to_string())
            .or_insert(room)
            .clone())
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
        let expired: Vec<String> = all
            .iter()
            .filter(|r| r.tick(now))
            .map(|r| r.stream_id.clone())
            .collect();
        if !expired.is_empty() {
            let mut map = rooms.map();
            for id in expired {
                // Only if still empty: someone may have joined since the tick.
                if map.get(&id).is_some_and(|r| r.lock().connections == 0) {
                    map.remove(&id);
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
