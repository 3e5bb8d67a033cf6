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
//! [`Room`] (in `room.rs`) is the client's side as a sans-IO reducer: it
//! applies events, drops duplicates, and remembers where to resume.

use serde::{Deserialize, Serialize};

use super::beacon::Quality;
use super::StreamState;

mod room;
pub use room::Room;

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
    /// [`super::beacon::HEARTBEAT_SECS`] with playback quality so far, or
    /// the end of the viewing session (`leave`). No answer.
    Beacon {
        /// The viewer is leaving: end the session now.
        #[serde(default)]
        leave: bool,
        /// Playback quality so far.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quality: Option<Quality>,
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

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn msg(id: &str, text: &str) -> ChatMessage {
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
    fn chat_text_rules() {
        assert_eq!(check_chat_text("  hi 👋 "), Ok("hi 👋"));
        assert!(check_chat_text("   ").is_err());
        assert!(check_chat_text(&"é".repeat(500)).is_ok());
        assert!(check_chat_text(&"é".repeat(501)).is_err());
        assert!(valid_viewer_id("abcd1234"));
        assert!(!valid_viewer_id("short"));
        assert!(!valid_viewer_id("has space in it"));
    }
}
