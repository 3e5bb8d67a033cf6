//! A room event as it crosses the bus ([`crate::cluster::Bus`]): the event
//! the clients see and what it changes in every node's room (bans, rules,
//! visibility, the stream's state, a user's last post for slow mode), so
//! that moderation and rules hold on every node. Serialised as JSON; it
//! never reaches a client as such (the `effect` stays between nodes).

use app::protocol::events::{Envelope, ServerEvent};
use app::protocol::StreamState;
use serde::{Deserialize, Serialize};

use std::time::Instant;

use bytes::Bytes;

use super::{fanout, wire, Frame, Inner, Room, Rules};

/// One room event between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomMessage {
    /// What the room's clients are sent.
    pub event: ServerEvent,
    /// What it changes in the room on every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<Effect>,
}

impl RoomMessage {
    /// An event that changes nothing.
    pub fn event(event: ServerEvent) -> RoomMessage {
        RoomMessage {
            event,
            effect: None,
        }
    }
}

/// What a room event changes on every node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Effect {
    /// A ban (`until` none), a timeout, or (`lift`) their end.
    Ban {
        /// The user.
        user_id: String,
        /// Until when (Unix ms); none for a ban.
        until: Option<i64>,
        /// The ban or timeout ends.
        lift: bool,
    },
    /// New chat rules (the event is the rules as the room sees them).
    Rules(Rules),
    /// The stream's visibility (the event is the room's rules, a signal to
    /// check access again).
    Private(bool),
    /// The stream's state and whether its broadcaster is away.
    State {
        /// The state.
        state: StreamState,
        /// Live, but the broadcaster's connection is gone for now.
        away: bool,
    },
    /// A user posted at `at` (Unix ms): slow mode counts from it on every node.
    Posted {
        /// The author.
        user_id: String,
        /// When.
        at: i64,
    },
}

/// How a room takes the events the bus hands back.
impl Room {
    /// Sends an event numbered `id` (after `prev`) to everyone in the room
    /// and keeps it for resumes; the room's next id follows it.
    pub(super) fn send_numbered(&self, inner: &mut Inner, id: u64, prev: u64, event: ServerEvent) {
        inner.next_id = id.saturating_add(1);
        let envelope = Envelope {
            id: Some(id),
            event,
        };
        let json = match serde_json::to_string(&envelope) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise an event");
                return;
            }
        };
        let frame = Frame {
            id,
            prev,
            wire: wire::text(&json),
            settings: matches!(envelope.event, ServerEvent::Settings(_)),
        };
        self.fan_out(&frame.wire, frame.settings);
        // No one connected is fine: the backlog keeps it for resumes.
        inner.backlog.push_back(frame);
        while inner.backlog.len() > self.config.backlog {
            inner.backlog.pop_front();
        }
    }

    /// Hands a frame to every fan-out thread (called under the room's lock).
    pub(super) fn fan_out(&self, bytes: &Bytes, settings: bool) {
        for tx in &self.fanout {
            let cmd = fanout::Command::Frame {
                room: self.key,
                bytes: bytes.clone(),
                settings,
            };
            if tx.send(cmd).is_err() {
                tracing::error!(stream = %self.stream_id, "a fan-out thread is gone");
            }
        }
    }

    /// Whether the room has been empty for longer than `linger`.
    pub(super) fn expired(&self, now: Instant) -> bool {
        self.lock()
            .empty_since
            .is_some_and(|t| now.duration_since(t) >= self.config.linger)
    }

    /// The viewer keys on this node.
    pub(super) fn viewer_keys(&self) -> Vec<String> {
        self.lock().viewers.keys().cloned().collect()
    }

    /// Sends an event to this node's connections without an id: not kept
    /// for resumes, not seen by other nodes (a node's own viewer count in
    /// cluster mode, and what a node serves alone while NATS is down).
    pub fn send_unnumbered(&self, event: ServerEvent) {
        let settings = matches!(event, ServerEvent::Settings(_));
        let json = match serde_json::to_string(&Envelope { id: None, event }) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise an event");
                return;
            }
        };
        let _inner = self.lock();
        self.fan_out(&wire::text(&json), settings);
    }

    /// Applies what an event changes in the room (a ban, the rules, …) and
    /// returns the event to send (a visibility change is told with this
    /// node's view of the rules).
    fn apply(inner: &mut Inner, message: RoomMessage) -> ServerEvent {
        let RoomMessage { event, effect } = message;
        match effect {
            None => event,
            Some(Effect::Ban {
                user_id,
                until,
                lift,
            }) => {
                if lift {
                    inner.bans.remove(&user_id);
                } else {
                    inner.bans.insert(user_id, until);
                }
                event
            }
            Some(Effect::Rules(rules)) => {
                let public = rules.public();
                inner.rules = rules;
                ServerEvent::Settings(public)
            }
            Some(Effect::Private(private)) => {
                inner.private = private;
                ServerEvent::Settings(inner.rules.public())
            }
            Some(Effect::State { state, away }) => {
                inner.state = state;
                inner.broadcaster_away = away && state == StreamState::Live;
                event
            }
            Some(Effect::Posted { user_id, at }) => {
                let last = inner.last_post.entry(user_id).or_insert(at);
                *last = (*last).max(at);
                event
            }
        }
    }

    /// An event from the bus: applied, then sent numbered (by the bus, or
    /// by this room on one node).
    fn deliver_message(&self, numbered: Option<(u64, u64)>, message: RoomMessage) {
        let mut inner = self.lock();
        let (id, prev) = match numbered {
            // Already delivered (a feed made again after a failure).
            Some((id, _)) if id < inner.next_id => return,
            Some(n) => n,
            None => (inner.next_id, inner.next_id.saturating_sub(1)),
        };
        let event = Self::apply(&mut inner, message);
        self.send_numbered(&mut inner, id, prev, event);
    }

    /// An event the bus could not take (NATS down): applied here and sent
    /// to this node's connections only, unnumbered.
    pub(crate) fn deliver_alone(&self, message: RoomMessage) {
        let event = {
            let mut inner = self.lock();
            Self::apply(&mut inner, message)
        };
        self.send_unnumbered(event);
    }
}

impl crate::cluster::Sink for Room {
    fn deliver(&self, numbered: Option<(u64, u64)>, body: &[u8]) {
        match serde_json::from_slice::<RoomMessage>(body) {
            Ok(m) => self.deliver_message(numbered, m),
            Err(e) => {
                tracing::warn!(stream = %self.stream_id, error = %e, "an unreadable room event from the bus")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    use app::protocol::events::ChatSettings;

    use super::*;
    use crate::realtime::RealtimeConfig;

    /// A room as cluster mode opens it (no event yet), keeping `backlog`.
    fn room(backlog: usize) -> Room {
        Room {
            stream_id: "s".into(),
            owner_id: "owner".into(),
            key: 1,
            fanout: Vec::new(),
            inner: Mutex::new(Inner {
                next_id: 1,
                backlog: VecDeque::new(),
                viewers: HashMap::new(),
                connections: 0,
                empty_since: None,
                sent_viewers: 0,
                state: StreamState::Live,
                broadcaster_away: false,
                private: false,
                rules: Rules::default(),
                bans: HashMap::new(),
                buckets: HashMap::new(),
                last_post: HashMap::new(),
            }),
            config: RealtimeConfig {
                backlog,
                ..RealtimeConfig::default()
            },
        }
    }

    fn caption(n: i64) -> RoomMessage {
        RoomMessage::event(ServerEvent::Caption(app::protocol::events::Caption {
            start_ms: n,
            end_ms: n,
            text: n.to_string(),
        }))
    }

    fn replayed(r: &Room, last_id: u64) -> Option<Vec<u64>> {
        r.join(None, Some(last_id), None)
            .replay
            .map(|f| f.iter().map(|f| f.id).collect())
    }

    #[test]
    fn bus_numbered_events_resume_only_without_a_gap() {
        // Sequences 5, 9, 12 of a shared stream; the room keeps two.
        let r = room(2);
        r.deliver_message(Some((5, 0)), caption(1));
        r.deliver_message(Some((9, 5)), caption(2));
        r.deliver_message(Some((12, 9)), caption(3));
        // A feed made again hands 9 over twice: applied once.
        r.deliver_message(Some((9, 5)), caption(2));
        assert_eq!(r.snapshot().0, 12);
        assert_eq!(replayed(&r, 12), Some(vec![]));
        assert_eq!(replayed(&r, 9), Some(vec![12]));
        assert_eq!(replayed(&r, 5), Some(vec![9, 12]), "9 names 5 before it");
        assert_eq!(replayed(&r, 4), None, "5 is gone: resync");
        assert_eq!(replayed(&r, 0), None, "the start is gone: resync");

        // The first event of a room (nothing before it on the bus).
        let fresh = room(8);
        fresh.deliver_message(Some((20, 0)), caption(1));
        assert_eq!(
            replayed(&fresh, 0),
            Some(vec![20]),
            "welcomed on an empty room"
        );
        assert_eq!(
            replayed(&fresh, 7),
            None,
            "the client saw events the bus no longer holds"
        );
        fresh.deliver_message(Some((25, 20)), caption(2));
        assert_eq!(
            replayed(&fresh, 20),
            Some(vec![25]),
            "a client that has the first event held resumes after it"
        );
    }

    #[test]
    fn effects_from_other_nodes_hold_here() {
        let r = room(8);
        let rules = Rules::from_row(crate::db::chat::ChatConfigRow {
            slow_mode_secs: 10,
            ..Default::default()
        });
        r.deliver_message(
            Some((1, 0)),
            RoomMessage {
                event: ServerEvent::Settings(ChatSettings::default()),
                effect: Some(Effect::Rules(rules)),
            },
        );
        // Posted on another node at t = 1 s: slow mode counts from it here.
        r.deliver_message(
            Some((2, 1)),
            RoomMessage {
                event: ServerEvent::Pong,
                effect: Some(Effect::Posted {
                    user_id: "u".into(),
                    at: 1_000,
                }),
            },
        );
        assert_eq!(
            r.check_post("u", false, "hi", 5_000).unwrap_err().code,
            "slow_mode"
        );
        // Banned on another node.
        r.deliver_message(
            Some((3, 2)),
            RoomMessage {
                event: ServerEvent::Pong,
                effect: Some(Effect::Ban {
                    user_id: "v".into(),
                    until: None,
                    lift: false,
                }),
            },
        );
        assert!(!r.may_post("v", 0));
        assert_eq!(
            r.check_post("v", false, "hi", 0).unwrap_err().code,
            "banned"
        );
        // A visibility change is told with this node's rules.
        r.deliver_message(
            Some((4, 3)),
            RoomMessage {
                event: ServerEvent::Settings(ChatSettings::default()),
                effect: Some(Effect::Private(true)),
            },
        );
        assert!(r.is_private());
        let last = r.lock().backlog.back().cloned().expect("kept");
        let text = String::from_utf8_lossy(&last.wire).into_owned();
        assert!(text.contains("\"slow_mode_secs\":10"), "{text}");
        // Served alone (NATS down): applied, not numbered, not kept.
        r.deliver_alone(RoomMessage {
            event: ServerEvent::Pong,
            effect: Some(Effect::Ban {
                user_id: "v".into(),
                until: None,
                lift: true,
            }),
        });
        assert!(r.may_post("v", 0));
        assert_eq!(r.snapshot().0, 4);
    }
}
