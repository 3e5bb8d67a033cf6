//! Chat administration types for the JSON API (`/api/v1/streams/{id}/chat`):
//! a stream's chat rules and moderators, and its moderation log. What flows
//! over the events socket is in [`crate::protocol::events`].

use serde::{Deserialize, Serialize};

/// The longest slow-mode interval, in seconds (an hour).
pub const MAX_SLOW_MODE_SECS: u32 = 3600;

/// A stream's chat rules and named moderators, as the owner sees and edits
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatAdmin {
    /// Seconds each user must wait between messages; 0 is off.
    #[serde(default)]
    pub slow_mode_secs: u32,
    /// Refuse messages with links (moderators may still post them).
    #[serde(default)]
    pub block_links: bool,
    /// Refused words or phrases (whole words, case-insensitive).
    #[serde(default)]
    pub banned_words: Vec<String>,
    /// Usernames of the moderators the owner named (the owner and admins
    /// moderate anyway).
    #[serde(default)]
    pub moderators: Vec<String>,
}

/// One entry of the moderation log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModerationEntry {
    /// The moderator.
    pub by: String,
    /// `delete`, `timeout`, `ban`, `unban` or `settings`.
    pub action: String,
    /// The user acted on, if any.
    pub target: Option<String>,
    /// The deleted text, the timeout's length, or the new settings.
    pub detail: String,
    /// When, RFC 3339 UTC.
    pub at: String,
}
