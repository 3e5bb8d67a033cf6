//! Realtime rooms: one per stream, behind `WS /api/v1/streams/{id}/events`
//! (protocol in `app::protocol::events` and `docs/protocol.md`).
//!
//! - Fan-out inside the node: each event is serialised and framed once
//!   ([`wire`]), and a fan-out thread ([`fanout`]) writes those bytes into
//!   every connection's socket with one non-blocking `write` ([`outbox`]).
//!   No per-client task is woken for a frame the socket takes at once; what
//!   it does not take is queued and written by the connection's task. A
//!   client that falls more than [`RealtimeConfig::client_queue`] frames
//!   behind is skipped ahead with a `resync`; one that keeps falling behind,
//!   or whose socket takes nothing for [`RealtimeConfig::send_timeout`], is
//!   dropped. Neither ever slows the room.
//! - Every broadcast frame has an id, one more than the last; ids start at
//!   the room's creation time in microseconds, so they keep increasing across
//!   restarts. The room keeps the last [`RealtimeConfig::backlog`] frames so
//!   a reconnecting client gets exactly what it missed.
//! - The viewer count is the number of distinct viewer keys (signed-in user,
//!   or the browser's `viewer_id`, or the connection) among watch-page
//!   connections. A ticker sends it at most once a second, and only when it
//!   changed.
//! - Chat rules and moderation are enforced here ([`rules`]); messages, bans
//!   and the moderation log are in the database ([`crate::db::chat`]).

pub mod fanout;
pub mod outbox;
pub mod rules;
pub mod socket;
pub mod upgrade;
pub mod wire;

pub(crate) mod relay;
mod rooms;
pub use rooms::{chat_message, Rooms, Slot};

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use app::protocol::events::{
    Caption, ChatAuthor, ChatMessage, ChatSettings, Envelope, ServerEvent,
};
use app::protocol::StreamState;
use bytes::Bytes;
use tokio::sync::broadcast;

use crate::db::chat::{ChatConfigRow, ChatRow};
use crate::db::{Database, DbError};
use crate::ingest::StateChange;
use rules::{Bucket, RateLimit};

pub use socket::{events_route, EventsDeps};

/// Limits and timings of the events socket; each is a flag (see the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealtimeConfig {
    /// Largest client frame in bytes; larger ones get an `error` and are ignored.
    pub max_message_bytes: usize,
    /// Events sockets on this node that said `hello`, not counting the
    /// owner's and admins'; more are refused with 4503.
    pub max_connections: usize,
    /// Frames a client may fall behind before it is skipped ahead.
    pub client_queue: usize,
    /// Frames each room keeps for reconnecting clients.
    pub backlog: usize,
    /// The chat rate limit per user and room.
    pub rate: RateLimit,
    /// How often the server pings; a peer silent for three intervals is dropped.
    pub heartbeat: Duration,
    /// How long one frame may take to reach a client before it is dropped.
    pub send_timeout: Duration,
    /// How long an empty room (no connections) stays for resumes.
    pub linger: Duration,
}

impl RealtimeConfig {
    /// Within this module's bounds: frames of at least 256 bytes, at least
    /// one socket, queues and backlogs of at least 16, a chat rate of at
    /// least one message per burst and a 1 ms refill, a heartbeat of at
    /// least a second.
    pub fn sanitized(mut self) -> Self {
        self.max_message_bytes = self.max_message_bytes.max(256);
        self.max_connections = self.max_connections.max(1);
        self.client_queue = self.client_queue.max(16);
        self.backlog = self.backlog.max(16);
        self.rate.burst = self.rate.burst.max(1);
        self.rate.refill_ms = self.rate.refill_ms.max(1);
        self.heartbeat = self.heartbeat.max(std::time::Duration::from_secs(1));
        self
    }
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            max_message_bytes: 4096,
            max_connections: 20_000,
            client_queue: 256,
            backlog: 512,
            rate: RateLimit::default(),
            heartbeat: Duration::from_secs(15),
            send_timeout: Duration::from_secs(10),
            linger: Duration::from_secs(120),
        }
    }
}

/// A frame ready to send: the room's event id and its bytes on the wire.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The event id.
    pub id: u64,
    /// The id of the event before it in the room (0: none known; see
    /// [`Room::join`]).
    pub prev: u64,
    /// The serialised [`Envelope`] as a WebSocket text frame ([`wire::text`]),
    /// the same bytes for every client.
    pub wire: Bytes,
    /// A rules or access change (connections then check their moderator
    /// status and whether they may stay).
    pub settings: bool,
}

pub use crate::clock::now_ms;

/// A room's chat rules in the form the checks use.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Rules {
    slow_mode_secs: u32,
    block_links: bool,
    banned_words: Vec<String>,
    moderators: HashSet<String>,
}

impl Rules {
    pub(crate) fn from_row(row: ChatConfigRow) -> Self {
        Rules {
            slow_mode_secs: u32::try_from(row.slow_mode_secs.max(0)).unwrap_or(u32::MAX),
            block_links: row.block_links,
            banned_words: row.banned_words,
            moderators: row.moderator_ids.into_iter().collect(),
        }
    }

    /// What the room is told: the banned words themselves stay with the owner.
    fn public(&self) -> ChatSettings {
        ChatSettings {
            slow_mode_secs: self.slow_mode_secs,
            block_links: self.block_links,
            banned_words: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Inner {
    next_id: u64,
    backlog: VecDeque<Frame>,
    /// Viewer key → open watch-page connections.
    viewers: HashMap<String, u32>,
    connections: usize,
    empty_since: Option<Instant>,
    sent_viewers: u32,
    state: StreamState,
    /// Live, but the broadcaster's connection is gone for now.
    broadcaster_away: bool,
    /// The stream is private: only its moderators and holders of a valid
    /// playback token may be in the room.
    private: bool,
    rules: Rules,
    /// User id → until (Unix ms), or `None` for a ban.
    bans: HashMap<String, Option<i64>>,
    buckets: HashMap<String, Bucket>,
    last_post: HashMap<String, i64>,
}

/// One stream's live room.
#[derive(Debug)]
pub struct Room {
    /// The stream.
    pub stream_id: String,
    /// The stream's owner (user id).
    pub owner_id: String,
    /// This room's key with the fan-out threads.
    key: u64,
    /// The fan-out threads (none only if none could start).
    fanout: Vec<std::sync::mpsc::Sender<fanout::Command>>,
    inner: Mutex<Inner>,
    config: RealtimeConfig,
}

/// Why a post or a moderation action was refused: a code and a message for
/// the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Stable code, e.g. `rate_limited`.
    pub code: &'static str,
    /// What to tell them.
    pub message: String,
}

impl Refused {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Refused {
            code,
            message: message.into(),
        }
    }
}

/// What a joining client gets: either a fresh start or the frames it missed.
pub struct Joined {
    /// The connection's number in the room (for [`Room::leave`]).
    pub conn: u64,
    /// The newest event id at the moment of joining.
    pub last_id: u64,
    /// For a resume: the missed frames, or `None` if they are gone (resync).
    pub replay: Option<Vec<Frame>>,
    /// The stream's state.
    pub state: StreamState,
    /// Live, but the broadcaster's connection is gone for now.
    pub broadcaster_away: bool,
    /// The viewer count.
    pub viewers: u32,
    /// The rules as the room sees them.
    pub settings: ChatSettings,
}

impl Room {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands a command about connection `conn` to its fan-out thread
    /// (under the room's lock, so commands keep the room's order).
    fn command(&self, conn: u64, cmd: fanout::Command) {
        let n = self.fanout.len() as u64;
        if n == 0 {
            return;
        }
        if self.fanout[(conn % n) as usize].send(cmd).is_err() {
            tracing::error!(stream = %self.stream_id, "a fan-out thread is gone");
        }
    }

    /// Sends an event to everyone in the room, numbered.
    pub fn broadcast(&self, event: ServerEvent) {
        let mut inner = self.lock();
        let id = inner.next_id;
        self.send_numbered(&mut inner, id, id.saturating_sub(1), event);
    }

    /// Registers a connection. `viewer` is the viewer key for watch pages,
    /// `None` for the studio. `last_id` is the client's resume point.
    /// `outbox` gets every frame sent after this (none for a bare count).
    pub fn join(
        &self,
        viewer: Option<&str>,
        last_id: Option<u64>,
        outbox: Option<&Arc<outbox::Outbox>>,
    ) -> Joined {
        let mut inner = self.lock();
        inner.connections += 1;
        inner.empty_since = None;
        if let Some(key) = viewer {
            *inner.viewers.entry(key.to_string()).or_insert(0) += 1;
        }
        let conn = next_conn();
        if let Some(outbox) = outbox {
            self.command(
                conn,
                fanout::Command::Join {
                    room: self.key,
                    conn,
                    outbox: outbox.clone(),
                },
            );
        }
        let newest = inner.next_id - 1;
        let replay = last_id.and_then(|l| {
            if l == newest {
                return Some(Vec::new());
            }
            // Complete from `l` on if the client has the oldest frame kept,
            // or that frame follows `l` (or an event before it). A `prev` of
            // 0 (the bus held nothing before it) follows only a client that
            // saw nothing either: the client's events may have expired.
            let first = inner.backlog.front()?;
            let complete = first.id <= l || (first.prev <= l && (first.prev > 0 || l == 0));
            (l < newest && complete)
                .then(|| inner.backlog.iter().filter(|f| f.id > l).cloned().collect())
        });
        Joined {
            conn,
            last_id: newest,
            replay,
            state: inner.state,
            broadcaster_away: inner.broadcaster_away,
            viewers: inner.viewers.len() as u32,
            settings: inner.rules.public(),
        }
    }

    /// [`Room::join`] for a connection's task: the connection leaves the
    /// room when the returned [`Member`] is dropped, however the task ends
    /// (a panic that unwinds it included).
    pub fn enter(
        self: &Arc<Self>,
        viewer: Option<&str>,
        last_id: Option<u64>,
        outbox: Option<&Arc<outbox::Outbox>>,
    ) -> (Member, Joined) {
        let joined = self.join(viewer, last_id, outbox);
        let member = Member {
            room: self.clone(),
            viewer: viewer.map(str::to_string),
            conn: joined.conn,
        };
        (member, joined)
    }

    /// Unregisters a connection made with [`Room::join`].
    pub fn leave(&self, viewer: Option<&str>, conn: u64) {
        let mut inner = self.lock();
        self.command(
            conn,
            fanout::Command::Leave {
                room: self.key,
                conn,
            },
        );
        inner.connections = inner.connections.saturating_sub(1);
        if inner.connections == 0 {
            inner.empty_since = Some(Instant::now());
        }
        if let Some(key) = viewer {
            if let Some(n) = inner.viewers.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    inner.viewers.remove(key);
                }
            }
        }
    }

    /// Distinct viewers now.
    pub fn viewers(&self) -> u32 {
        self.lock().viewers.len() as u32
    }

    /// The newest event id and the state and viewer count, for a resync.
    pub fn snapshot(&self) -> (u64, StreamState, u32) {
        let inner = self.lock();
        (inner.next_id - 1, inner.state, inner.viewers.len() as u32)
    }

    /// Skips a lagged connection ahead: a `resync` with `history` as of
    /// event `since` (the newest id when the history was read), then the
    /// frames sent after `since` that the backlog still has, then everything
    /// new. Chat messages in both the history and those frames are the same
    /// messages (same ids), which clients show once.
    pub fn resync(
        &self,
        conn: u64,
        outbox: &Arc<outbox::Outbox>,
        since: u64,
        history: Vec<ChatMessage>,
    ) {
        let inner = self.lock();
        let envelope = Envelope {
            id: None,
            event: ServerEvent::Resync {
                history,
                last_id: since,
                state: inner.state,
                broadcaster_away: inner.broadcaster_away,
                viewers: inner.viewers.len() as u32,
            },
        };
        let json = match serde_json::to_string(&envelope) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise a resync");
                return;
            }
        };
        let mut frames = vec![wire::text(&json)];
        frames.extend(
            inner
                .backlog
                .iter()
                .filter(|f| f.id > since)
                .map(|f| f.wire.clone()),
        );
        outbox.resyncing();
        self.command(
            conn,
            fanout::Command::Resume {
                outbox: outbox.clone(),
                frames,
            },
        );
    }

    /// Whether `user_id` (with `role`) may moderate this room.
    pub fn is_moderator(&self, user_id: &str, role: &str) -> bool {
        crate::auth::owner_or_admin(user_id, role, &self.owner_id)
            || self.lock().rules.moderators.contains(user_id)
    }

    /// Whether `user_id` may post now: not banned and not timed out.
    pub fn may_post(&self, user_id: &str, now: i64) -> bool {
        match self.lock().bans.get(user_id) {
            None => true,
            Some(Some(until)) => *until <= now,
            Some(None) => false,
        }
    }

    /// Applies the chat rules to a post, and if it passes, takes its place in
    /// the rate limit and slow mode. `text` is already length-checked.
    pub fn check_post(
        &self,
        user_id: &str,
        moderator: bool,
        text: &str,
        now: i64,
    ) -> Result<(), Refused> {
        let mut inner = self.lock();
        // An ended stream's chat is read-only (it opens again if the stream
        // goes live again).
        if matches!(inner.state, StreamState::Ended | StreamState::Interrupted) {
            return Err(Refused::new(
                "chat_closed",
                "This stream has ended: its chat is read-only.",
            ));
        }
        match inner.bans.get(user_id) {
            Some(None) => return Err(Refused::new("banned", "You are banned from this chat.")),
            Some(Some(until)) if *until > now => {
                let mins = (until - now + 59_999) / 60_000;
                return Err(Refused::new(
                    "timed_out",
                    format!("You are timed out; you can chat again in {mins} min."),
                ));
            }
            _ => {}
        }
        if rules::banned_word(text, &inner.rules.banned_words).is_some() {
            return Err(Refused::new(
                "banned_word",
                "Your message contains a word this chat does not allow.",
            ));
        }
        if inner.rules.block_links && !moderator && rules::has_link(text) {
            return Err(Refused::new(
                "links_blocked",
                "Links are not allowed in this chat.",
            ));
        }
        if !moderator && inner.rules.slow_mode_secs > 0 {
            let wait = i64::from(inner.rules.slow_mode_secs) * 1000;
            if let Some(last) = inner.last_post.get(user_id) {
                if now - last < wait {
                    let secs = (wait - (now - last) + 999) / 1000;
                    return Err(Refused::new(
                        "slow_mode",
                        format!("Slow mode is on: you can send another message in {secs} s."),
                    ));
                }
            }
        }
        let limit = self.config.rate;
        let bucket = inner
            .buckets
            .entry(user_id.to_string())
            .or_insert_with(|| Bucket::full(limit, now));
        if let Err(wait_ms) = bucket.take(limit, now) {
            let secs = wait_ms.div_ceil(1000);
            return Err(Refused::new(
                "rate_limited",
                format!("You are sending messages too fast; wait {secs} s."),
            ));
        }
        inner.last_post.insert(user_id.to_string(), now);
        Ok(())
    }

    /// Records a ban (`until` = `None`), a timeout, or (`lift`) their end.
    pub fn set_ban(&self, user_id: &str, until: Option<i64>, lift: bool) {
        let mut inner = self.lock();
        if lift {
            inner.bans.remove(user_id);
        } else {
            inner.bans.insert(user_id.to_string(), until);
        }
    }

    /// Whether the stream is private (as this node last heard).
    pub fn is_private(&self) -> bool {
        self.lock().private
    }

    /// The stream's visibility changed. When it turns private, every
    /// connection checks its access again (the signal of a rules change)
    /// and those without it are closed with 4003.
    pub fn set_private(&self, private: bool) {
        let settings = {
            let mut inner = self.lock();
            let turned_private = private && !inner.private;
            inner.private = private;
            if !turned_private {
                return;
            }
            inner.rules.public()
        };
        self.broadcast(ServerEvent::Settings(settings));
    }

    /// Replaces the rules and tells the room.
    pub fn set_rules(&self, row: ChatConfigRow) {
        let settings = {
            let mut inner = self.lock();
            inner.rules = Rules::from_row(row);
            inner.rules.public()
        };
        self.broadcast(ServerEvent::Settings(settings));
    }

    fn set_state(&self, state: StreamState, broadcaster_away: bool) {
        let away = broadcaster_away && state == StreamState::Live;
        let (state_changed, away_changed) = {
            let mut inner = self.lock();
            let changed = (inner.state != state, inner.broadcaster_away != away);
            inner.state = state;
            inner.broadcaster_away = away;
            changed
        };
        if state_changed {
            self.broadcast(ServerEvent::State { state });
        }
        // After an end or interruption the state says it all.
        if away_changed && state == StreamState::Live {
            self.broadcast(ServerEvent::Broadcaster { away });
        }
    }

    /// One tick: sends the viewer count if it changed. Returns whether the
    /// room has been empty for longer than `linger`.
    fn tick(&self, now: Instant) -> bool {
        let (changed, expired) = {
            let mut inner = self.lock();
            let count = inner.viewers.len() as u32;
            let changed = (count != inner.sent_viewers).then_some(count);
            inner.sent_viewers = count;
            let expired = inner
                .empty_since
                .is_some_and(|t| now.duration_since(t) >= self.config.linger);
            (changed, expired)
        };
        if let Some(count) = changed {
            self.broadcast(ServerEvent::Viewers { count });
        }
        expired
    }
}

/// A connection in a room ([`Room::enter`]); leaves it when dropped.
#[derive(Debug)]
pub struct Member {
    room: Arc<Room>,
    viewer: Option<String>,
    conn: u64,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.room.leave(self.viewer.as_deref(), self.conn);
    }
}

/// A number unique on this node (connections and rooms).
fn next_conn() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests;
