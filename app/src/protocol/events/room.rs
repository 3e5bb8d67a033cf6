//! The events socket as one client sees it: a sans-IO reducer over the
//! server's [`Envelope`]s.

use std::collections::VecDeque;

use super::{
    Caption, ChatMessage, ChatSettings, ClientMessage, ClientRole, Envelope, ModerationAction,
    ServerEvent, StreamState, EVENTS_PROTOCOL_VERSION,
};

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
    use super::super::tests::msg;
    use super::*;

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
