//! The events WebSocket protocol (`WS /api/v1/streams/{id}/events`): one live
//! room per stream, shared by the watch page, the studio and the server. See
//! `docs/protocol.md` ("Events").
//!
//! Text frames only, each one JSON object with a `type`. The client's first
//! message is [`ClientMessage::Hello`]; the server answers
//! [`ServerEvent::Welcome`] with the chat history and the room's state, then
//! sends [`Envelope`]s. Every broadcast event has an increasing `id`: after a
//! reconnect the client sends the last one it saw (`last_id`) and the server
//! replays what it missed from a bounded backlog, or says
//! [`ServerEvent::Resync`] when that is no longer there.
//!
//! [`Room`] is the client's side as a sans-IO reducer: it applies events,
//! drops duplicates, and remembers where to resume.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::streams::StreamState;

/// The protocol version this build speaks.
pub const EVENTS_PROTOCOL_VERSION: u32 = 1;

/// The longest chat message, in characters (Unicode scalar values).
pub const MAX_CHAT_CHARS: usize = 500;

/// How many past messages a client gets on join.
pub const HISTORY_MESSAGES: usize = 100;

/// WebSocket close codes of the events socket.
pub mod close {
    /// The first message was not a valid `hello`.
    pub const BAD_HELLO: u16 = 4000;
    /// A private stream without a valid playback token or session.
    pub const FORBIDDEN: u16 = 4003;
    /// No such stream.
    pub const NOT_FOUND: u16 = 4004;
    /// The peer stopped answering heartbeats.
    pub const DEAD_PEER: u16 = 4008;
    /// A frame was larger than the limit.
    pub const TOO_LARGE: u16 = 4013;
    /// Too many malformed frames in a row.
    pub const PROTOCOL: u16 = 4002;
    /// The client fell too far behind the room and was dropped.
    pub const TOO_SLOW: u16 = 4029;
    /// The server is at its connection limit.
    pub const FULL: u16 = 4503;
    /// No `hello` within the server's hello timeout; reconnecting is fine.
    pub const HELLO_TIMEOUT: u16 = 4408;
    /// Too many sockets of this kind from this client IP; retry later.
    pub const TOO_MANY_CONNECTIONS: u16 = 4429;
}

/// Who is connecting: a viewer counts toward the viewer count, the
/// broadcaster's studio does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientRole {
    /// A watch page.
    #[default]
    Viewer,
    /// The owner's studio.
    Studio,
}

/// Messages from the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first message on every connection.
    Hello {
        /// Must be [`EVENTS_PROTOCOL_VERSION`].
        version: u32,
        /// Viewer or studio.
        #[serde(default)]
        role: ClientRole,
        /// A random id the browser keeps (localStorage) so that several tabs
        /// count as one viewer. 8–64 characters of `[A-Za-z0-9_-]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        viewer_id: Option<String>,
        /// The signed playback token of a private stream's watch link.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// After a reconnect: the id of the last event this client saw.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_id: Option<u64>,
    },
    /// Post a chat message (signed-in users).
    Chat {
        /// The text, at most [`MAX_CHAT_CHARS`] characters.
        text: String,
    },
    /// Moderators: remove a message for everyone.
    Delete {
        /// The message's id.
        message_id: String,
    },
    /// Moderators: keep a user from chatting for some minutes.
    Timeout {
        /// Their username.
        username: String,
        /// 1 to 10080 (a week).
        minutes: u32,
    },
    /// Moderators: keep a user from chatting in this stream until unbanned.
    Ban {
        /// Their username.
        username: String,
    },
    /// Moderators: lift a ban or a timeout.
    Unban {
        /// Their username.
        username: String,
    },
    /// Heartbeat; the server answers [`ServerEvent::Pong`].
    Ping,
    /// Watch pages: an analytics heartbeat every
    /// [`crate::analytics::HEARTBEAT_SECS`] with playback quality so far, or
    /// the end of the viewing session (`leave`). No answer.
    Beacon {
        /// The viewer is leaving: end the session now.
        #[serde(default)]
        leave: bool,
        /// Playback quality so far.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quality: Option<crate::analytics::Quality>,
    },
}

/// The author of a chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatAuthor {
    /// Their username.
    pub username: String,
    /// A moderator of this stream (owner, admin or named moderator).
    #[serde(default)]
    pub moderator: bool,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Stable id (also the key to delete it).
    pub id: String,
    /// Who wrote it.
    pub author: ChatAuthor,
    /// The text, rendered as text and never as HTML.
    pub text: String,
    /// When the server accepted it, Unix ms.
    pub at_ms: i64,
}

/// The rules a room enforces, shown to chatters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChatSettings {
    /// Seconds each user must wait between messages; 0 is off.
    #[serde(default)]
    pub slow_mode_secs: u32,
    /// Messages with links are refused.
    #[serde(default)]
    pub block_links: bool,
    /// Words that are refused (whole words, case-insensitive). Moderators
    /// see them; others get only the count.
    #[serde(default)]
    pub banned_words: Vec<String>,
}

/// A moderation action, as announced to the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModerationAction {
    /// A message was deleted.
    Delete,
    /// A user was timed out.
    Timeout,
    /// A user was banned.
    Ban,
    /// A ban or timeout was lifted.
    Unban,
}

/// A caption cue (produced by live transcription).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caption {
    /// Start, in milliseconds of the stream's program time (Unix ms).
    pub start_ms: i64,
    /// End, same clock.
    pub end_ms: i64,
    /// The text.
    pub text: String,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// The answer to `hello`.
    Welcome {
        /// [`EVENTS_PROTOCOL_VERSION`].
        version: u32,
        /// The signed-in user, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        /// Whether this user may moderate.
        moderator: bool,
        /// Whether this user may post (signed in, not banned or timed out).
        can_chat: bool,
        /// The stream's state now.
        state: StreamState,
        /// The stream is live but its broadcaster's connection is gone (it
        /// may come back within the resume grace): players show *Waiting for
        /// the broadcaster*.
        #[serde(default)]
        broadcaster_away: bool,
        /// Distinct viewers now.
        viewers: u32,
        /// The room's rules.
        settings: ChatSettings,
        /// The last [`HISTORY_MESSAGES`] messages, oldest first. Empty when
        /// the hello resumed from `last_id` and the backlog had everything.
        history: Vec<ChatMessage>,
        /// The id of the newest event so far: resume from here.
        last_id: u64,
    },
    /// The stream went live, ended or was interrupted.
    State {
        /// The new state.
        state: StreamState,
    },
    /// The live stream's broadcaster went away (its connection dropped) or
    /// came back. A stream that ends or is interrupted sends `state` instead.
    Broadcaster {
        /// Whether the broadcaster is away now.
        away: bool,
    },
    /// The number of distinct viewers changed (sent at most once a second).
    Viewers {
        /// Distinct watch-page sessions connected now.
        count: u32,
    },
    /// A caption cue.
    Caption(Caption),
    /// A new chat message.
    Chat {
        /// The message.
        message: ChatMessage,
    },
    /// A message was deleted by a moderator.
    ChatDeleted {
        /// Its id.
        message_id: String,
    },
    /// A moderation notice, for everyone in the room.
    Moderation {
        /// What was done.
        action: ModerationAction,
        /// To whom (for deletions: the author).
        username: String,
        /// By which moderator.
        by: String,
        /// For timeouts: until when, Unix ms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<i64>,
    },
    /// The room's rules changed.
    Settings(ChatSettings),
    /// Something this client sent was refused, or something else went wrong
    /// for this client only. The connection stays up.
    Error {
        /// Stable code, such as `rate_limited`.
        code: String,
        /// A message for the person.
        message: String,
    },
    /// The client missed events that are no longer in the backlog: replace
    /// the chat with `history` and carry on from `last_id`.
    Resync {
        /// The last [`HISTORY_MESSAGES`] messages, oldest first.
        history: Vec<ChatMessage>,
        /// Where to resume from.
        last_id: u64,
        /// The stream's state now.
        state: StreamState,
        /// As in the welcome.
        #[serde(default)]
        broadcaster_away: bool,
        /// Distinct viewers now.
        viewers: u32,
    },
    /// This client's own standing changed (the owner named or dropped them
    /// as a moderator). Sent to that client only.
    You {
        /// Whether they may moderate now.
        moderator: bool,
        /// Whether they may post now.
        can_chat: bool,
    },
    /// A heartbeat answer.
    Pong,
}

/// A server frame: broadcast events carry the room's event `id`; replies to
/// one client (welcome, errors, pong) carry none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The room's event id, increasing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The event.
    #[serde(flatten)]
    pub event: ServerEvent,
}

/// Checks a chat message's length: the trimmed text, or why not.
pub fn check_chat_text(text: &str) -> Result<&str, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("Write something first.".into());
    }
    let n = text.chars().count();
    if n > MAX_CHAT_CHARS {
        return Err(format!(
            "Messages are at most {MAX_CHAT_CHARS} characters; this one has {n}."
        ));
    }
    Ok(text)
}

/// Whether `id` is an acceptable viewer id.
pub fn valid_viewer_id(id: &str) -> bool {
    (8..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The room as one client sees it: the chat list, the viewer count, the
/// stream state and where to resume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Room {
    /// Messages, oldest first, at most `capacity`.
    pub messages: VecDeque<ChatMessage>,
    /// Distinct viewers.
    pub viewers: u32,
    /// The stream's state, once known.
    pub state: Option<StreamState>,
    /// Live, but the broadcaster's connection is gone for now.
    pub broadcaster_away: bool,
    /// The room's rules.
    pub settings: ChatSettings,
    /// The last event id applied.
    pub last_id: Option<u64>,
    /// From the welcome.
    pub username: Option<String>,
    /// From the welcome.
    pub moderator: bool,
    /// From the welcome (and false after this user is banned or timed out).
    pub can_chat: bool,
    /// The latest caption.
    pub caption: Option<Caption>,
    /// The latest moderation notice, as text.
    pub notice: Option<String>,
    /// The latest error for this client.
    pub error: Option<(String, String)>,
}

/// How many messages a client keeps on screen.
const CLIENT_CAPACITY: usize = 300;

impl Room {
    /// The hello to send: a fresh join, or a resume after the last event seen.
    pub fn hello(
        &self,
        role: ClientRole,
        viewer_id: Option<String>,
        token: Option<String>,
    ) -> ClientMessage {
        ClientMessage::Hello {
            version: EVENTS_PROTOCOL_VERSION,
            role,
            viewer_id,
            token,
            last_id: self.last_id,
        }
    }

    /// Applies one frame from the server. Returns false for a duplicate (an
    /// event id already applied), which changes nothing.
    pub fn apply(&mut self, envelope: Envelope) -> bool {
        if let (Some(id), Some(last)) = (envelope.id, self.last_id) {
            if id <= last {
                return false;
            }
        }
        if let Some(id) = envelope.id {
            self.last_id = Some(id);
        }
        match envelope.event {
            ServerEvent::Welcome {
                username,
                moderator,
                can_chat,
                state,
                broadcaster_away,
                viewers,
                settings,
                history,
                last_id,
                ..
            } => {
                self.username = username;
                self.moderator = moderator;
                self.can_chat = can_chat;
                self.state = Some(state);
                self.broadcaster_away = broadcaster_away && state == StreamState::Live;
                self.viewers = viewers;
                self.settings = settings;
                // A fresh join (or a resume whose backlog was complete, which
                // sends no history): keep what is there and add the rest.
                for m in history {
                    self.push(m);
                }
                // A resume keeps its own position: the replay follows.
                if self.last_id.is_none() {
                    self.last_id = Some(last_id);
                }
            }
            ServerEvent::Resync {
                history,
                last_id,
                state,
                broadcaster_away,
                viewers,
            } => {
                self.broadcaster_away = broadcaster_away && state == StreamState::Live;
                self.messages.clear();
                for m in history {
                    self.push(m);
                }
                self.last_id = Some(last_id);
                self.state = Some(state);
                self.viewers = viewers;
            }
            ServerEvent::State { state } => {
                self.state = Some(state);
                if state != StreamState::Live {
                    self.broadcaster_away = false;
                }
            }
            ServerEvent::Broadcaster { away } => {
                self.broadcaster_away = away && self.state == Some(StreamState::Live);
            }
            ServerEvent::Viewers { count } => self.viewers = count,
            ServerEvent::Caption(c) => self.caption = Some(c),
            ServerEvent::Chat { message } => self.push(message),
            ServerEvent::ChatDeleted { message_id } => {
                self.messages.retain(|m| m.id != message_id);
            }
            ServerEvent::Moderation {
                action,
                username,
                by,
                ..
            } => {
                let text = match action {
                    ModerationAction::Delete => format!("{by} deleted a message from {username}."),
                    ModerationAction::Timeout => {
                        format!("{by} timed out {username}.")
                    }
                    ModerationAction::Ban => format!("{by} banned {username}."),
                    ModerationAction::Unban => format!("{by} let {username} chat again."),
                };
                if self.username.as_deref() == Some(username.as_str()) {
                    match action {
                        ModerationAction::Timeout | ModerationAction::Ban => self.can_chat = false,
                        ModerationAction::Unban => self.can_chat = true,
                        ModerationAction::Delete => {}
                    }
                }
                self.notice = Some(text);
            }
            ServerEvent::Settings(s) => self.settings = s,
            ServerEvent::Error { code, message } => self.error = Some((code, message)),
            ServerEvent::You {
                moderator,
                can_chat,
            } => {
                self.moderator = moderator;
                self.can_chat = can_chat;
            }
            ServerEvent::Pong => {}
        }
        true
    }

    fn push(&mut self, m: ChatMessage) {
        if self.messages.iter().any(|x| x.id == m.id) {
            return;
        }
        self.messages.push_back(m);
        while self.messages.len() > CLIENT_CAPACITY {
            self.messages.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, text: &str) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            author: ChatAuthor {
                username: "ann".into(),
                moderator: false,
            },
            text: text.into(),
            at_ms: 1,
        }
    }

    fn welcome(history: Vec<ChatMessage>, last_id: u64) -> Envelope {
        Envelope {
            id: None,
            event: ServerEvent::Welcome {
                version: EVENTS_PROTOCOL_VERSION,
                username: Some("bob".into()),
                moderator: false,
                can_chat: true,
                state: StreamState::Live,
                broadcaster_away: false,
                viewers: 2,
                settings: ChatSettings::default(),
                history,
                last_id,
            },
        }
    }

    #[test]
    fn the_wire_format_is_tagged_json() {
        let e = Envelope {
            id: Some(7),
            event: ServerEvent::Viewers { count: 3 },
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"id":7,"type":"viewers","count":3}"#
        );
        let e = Envelope {
            id: Some(8),
            event: ServerEvent::Chat {
                message: msg("m1", "hi"),
            },
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), e);
        let hello: ClientMessage = serde_json::from_str(r#"{"type":"hello","version":1}"#).unwrap();
        assert_eq!(
            hello,
            ClientMessage::Hello {
                version: 1,
                role: ClientRole::Viewer,
                viewer_id: None,
                token: None,
                last_id: None
            }
        );
    }

    #[test]
    fn duplicates_after_a_resume_are_dropped() {
        let mut room = Room::default();
        assert!(room.apply(welcome(vec![msg("m1", "a")], 10)));
        assert_eq!(room.last_id, Some(10));
        let chat = |id, m| Envelope {
            id: Some(id),
            event: ServerEvent::Chat { message: m },
        };
        assert!(room.apply(chat(11, msg("m2", "b"))));
        // The replay after a reconnect overlaps what was already seen.
        assert!(!room.apply(chat(11, msg("m2", "b"))));
        assert!(room.apply(chat(12, msg("m3", "c"))));
        let texts: Vec<_> = room.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c"]);
        assert_eq!(
            room.hello(ClientRole::Viewer, None, None),
            ClientMessage::Hello {
                version: 1,
                role: ClientRole::Viewer,
                viewer_id: None,
                token: None,
                last_id: Some(12),
            }
        );
    }

    #[test]
    fn a_resync_replaces_the_chat_and_deletions_remove() {
        let mut room = Room::default();
        room.apply(welcome(vec![msg("m1", "a"), msg("m2", "b")], 5));
        room.apply(Envelope {
            id: Some(6),
            event: ServerEvent::ChatDeleted {
                message_id: "m1".into(),
            },
        });
        assert_eq!(room.messages.len(), 1);
        room.apply(Envelope {
            id: None,
            event: ServerEvent::Resync {
                history: vec![msg("m9", "z")],
                last_id: 40,
                state: StreamState::Ended,
                broadcaster_away: false,
                viewers: 0,
            },
        });
        assert_eq!(room.messages.len(), 1);
        assert_eq!(room.messages[0].id, "m9");
        assert_eq!(room.last_id, Some(40));
        assert_eq!(room.state, Some(StreamState::Ended));
    }

    #[test]
    fn a_ban_takes_away_the_chat_box() {
        let mut room = Room::default();
        room.apply(welcome(vec![], 1));
        assert!(room.can_chat);
        room.apply(Envelope {
            id: Some(2),
            event: ServerEvent::Moderation {
                action: ModerationAction::Ban,
                username: "bob".into(),
                by: "owner".into(),
                until_ms: None,
            },
        });
        assert!(!room.can_chat);
        assert_eq!(room.notice.as_deref(), Some("owner banned bob."));
    }

    #[test]
    fn chat_text_rules() {
        assert_eq!(check_chat_text("  hi 👋 "), Ok("hi 👋"));
        assert!(check_chat_text("   ").is_err());
        assert!(check_chat_text(&"é".repeat(500)).is_ok());
        assert!(check_chat_text(&"é".repeat(501)).is_err());
        assert!(valid_viewer_id("abcd1234"));
        assert!(!valid_viewer_id("short"));
        assert!(!valid_viewer_id("has space in it"));
    }

    #[test]
    fn the_broadcaster_goes_away_and_comes_back_while_live() {
        let mut room = Room::default();
        room.apply(welcome(vec![], 1));
        assert!(!room.broadcaster_away);
        room.apply(Envelope {
            id: Some(2),
            event: ServerEvent::Broadcaster { away: true },
        });
        assert!(room.broadcaster_away);
        room.apply(Envelope {
            id: Some(3),
            event: ServerEvent::Broadcaster { away: false },
        });
        assert!(!room.broadcaster_away);
        room.apply(Envelope {
            id: Some(4),
            event: ServerEvent::Broadcaster { away: true },
        });
        // An interruption ends the wait: the state says what happened.
        room.apply(Envelope {
            id: Some(5),
            event: ServerEvent::State {
                state: StreamState::Interrupted,
            },
        });
        assert!(!room.broadcaster_away);
        // Away means nothing on a stream that is not live.
        room.apply(Envelope {
            id: Some(6),
            event: ServerEvent::Broadcaster { away: true },
        });
        assert!(!room.broadcaster_away);
        // A welcome from an older server (no field) reads as present.
        let json = r#"{"type":"welcome","version":1,"moderator":false,"can_chat":false,"state":"live","viewers":0,"settings":{"slow_mode_secs":0,"followers_only":false,"subscribers_only":false,"emote_only":false},"history":[],"last_id":0}"#;
        if let Ok(ServerEvent::Welcome {
            broadcaster_away, ..
        }) = serde_json::from_str(json)
        {
            assert!(!broadcaster_away);
        }
        assert_eq!(
            serde_json::to_string(&ServerEvent::Broadcaster { away: true }).unwrap(),
            r#"{"type":"broadcaster","away":true}"#
        );
    }
}
