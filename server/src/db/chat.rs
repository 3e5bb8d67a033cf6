//! Typed queries on the chat tables: `chat_message`, `chat_ban`,
//! `moderation_log`, and the chat settings and moderators on `stream`
//! (migration 3).
//!
//! Chat times are integers: Unix milliseconds.

use surrealdb::types::SurrealValue;

use super::users::new_record_key;
use super::{Database, DbError};

/// A stored chat message.
#[derive(Debug, Clone, PartialEq, Eq, SurrealValue)]
pub struct ChatRow {
    /// The record key (the message id clients see).
    pub id: String,
    /// The author's user id.
    pub author_id: String,
    /// The author's username when they wrote it.
    pub username: String,
    /// The text.
    pub text: String,
    /// When it was accepted, Unix ms.
    pub at: i64,
}

/// A ban (`until` is `None`) or a timeout on one user in one stream.
#[derive(Debug, Clone, PartialEq, Eq, SurrealValue)]
pub struct BanRow {
    /// The user's id.
    pub user_id: String,
    /// Until when, Unix ms; `None` for a ban.
    pub until: Option<i64>,
}

/// A stream's chat rules and named moderators, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, SurrealValue)]
pub struct ChatConfigRow {
    /// Seconds between one user's messages; 0 is off.
    pub slow_mode_secs: i64,
    /// Refuse messages with links.
    pub block_links: bool,
    /// Refused words.
    pub banned_words: Vec<String>,
    /// Named moderators' user ids.
    pub moderator_ids: Vec<String>,
    /// Named moderators' usernames (same order).
    pub moderator_names: Vec<String>,
}

/// One moderation log entry.
#[derive(Debug, Clone, PartialEq, Eq, SurrealValue)]
pub struct ModerationRow {
    /// The moderator's username.
    pub actor: Option<String>,
    /// `delete`, `timeout`, `ban`, `unban` or `settings`.
    pub action: String,
    /// The user acted on, if any.
    pub target: Option<String>,
    /// More: the message text, the timeout's length, the new settings.
    pub detail: String,
    /// RFC 3339, UTC.
    pub at: String,
}

const CHAT_FIELDS: &str =
    "<string> record::id(id) AS id, <string> record::id(author) AS author_id, \
    username, text, at";

impl Database {
    /// The newest `limit` messages of a stream that were not deleted, oldest first.
    pub async fn chat_history(&self, stream: &str, limit: i64) -> Result<Vec<ChatRow>, DbError> {
        let mut rows: Vec<ChatRow> = self
            .client()
            .query(format!(
                "SELECT {CHAT_FIELDS} FROM chat_message \
                 WHERE stream = type::record('stream', $stream) AND deleted_at = NONE \
                 ORDER BY at DESC LIMIT $limit"
            ))
            .bind(("stream", stream.to_string()))
            .bind(("limit", limit))
            .await?
            .check()?
            .take(0)?;
        rows.reverse();
        Ok(rows)
    }

    /// Stores a message and returns it with its new id.
    pub async fn insert_chat(
        &self,
        stream: &str,
        author_id: &str,
        username: &str,
        text: &str,
        at: i64,
    ) -> Result<ChatRow, DbError> {
        let id = new_record_key().map_err(|e| DbError::Random(e.to_string()))?;
        self.client()
            .query(
                "CREATE type::record('chat_message', $id) SET stream = type::record('stream', $stream), \
                 author = type::record('user', $author), username = $username, text = $text, at = $at \
                 RETURN NONE",
            )
            .bind(("id", id.clone()))
            .bind(("stream", stream.to_string()))
            .bind(("author", author_id.to_string()))
            .bind(("username", username.to_string()))
            .bind(("text", text.to_string()))
            .bind(("at", at))
            .await?
            .check()?;
        Ok(ChatRow {
            id,
            author_id: author_id.to_string(),
            username: username.to_string(),
            text: text.to_string(),
            at,
        })
    }

    /// Marks a message of `stream` deleted by `by`. Returns the message if
    /// there was one to delete (not already deleted, and in this stream).
    pub async fn delete_chat(
        &self,
        stream: &str,
        message_id: &str,
        by: &str,
    ) -> Result<Option<ChatRow>, DbError> {
        if !super::streams::valid_id(message_id) {
            return Ok(None);
        }
        let row: Option<ChatRow> = self
            .client()
            .query(format!(
                "UPDATE type::record('chat_message', $id) SET deleted_by = type::record('user', $by), \
                 deleted_at = time::now() \
                 WHERE stream = type::record('stream', $stream) AND deleted_at = NONE \
                 RETURN {CHAT_FIELDS}"
            ))
            .bind(("id", message_id.to_string()))
            .bind(("stream", stream.to_string()))
            .bind(("by", by.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(row)
    }

    /// The bans and timeouts in a stream (expired timeouts included; the
    /// caller compares `until` with the clock).
    pub async fn chat_bans(&self, stream: &str) -> Result<Vec<BanRow>, DbError> {
        let rows: Vec<BanRow> = self
            .client()
            .query(
                "SELECT <string> record::id(user) AS user_id, until FROM chat_ban \
                 WHERE stream = type::record('stream', $stream)",
            )
            .bind(("stream", stream.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(rows)
    }

    /// Bans (`until` = `None`) or times out a user in a stream, replacing any
    /// earlier ban or timeout.
    pub async fn set_chat_ban(
        &self,
        stream: &str,
        user_id: &str,
        until: Option<i64>,
        by: &str,
    ) -> Result<(), DbError> {
        self.client()
            .query(
                "UPSERT type::record('chat_ban', [$stream, $user]) SET stream = type::record('stream', $stream), \
                 user = type::record('user', $user), until = $until, by = type::record('user', $by), \
                 at = time::now() RETURN NONE",
            )
            .bind(("stream", stream.to_string()))
            .bind(("user", user_id.to_string()))
            .bind(("until", until))
            .bind(("by", by.to_string()))
            .await?
            .check()?;
        Ok(())
    }

    /// Lifts a ban or timeout. Returns whether there was one.
    pub async fn remove_chat_ban(&self, stream: &str, user_id: &str) -> Result<bool, DbError> {
        let had: Option<bool> = self
            .client()
            .query(
                "LET $had = (SELECT VALUE id FROM type::record('chat_ban', [$stream, $user])); \
                 DELETE type::record('chat_ban', [$stream, $user]); \
                 RETURN array::len($had) > 0;",
            )
            .bind(("stream", stream.to_string()))
            .bind(("user", user_id.to_string()))
            .await?
            .check()?
            .take(2)?;
        Ok(had.unwrap_or(false))
    }

    /// Records a moderation action.
    pub async fn log_moderation(
        &self,
        stream: &str,
        actor: &str,
        action: &str,
        target: Option<&str>,
        detail: &str,
    ) -> Result<(), DbError> {
        self.client()
            .query(
                "CREATE moderation_log SET stream = type::record('stream', $stream), \
                 actor = type::record('user', $actor), action = $action, \
                 target = IF $target != NONE THEN type::record('user', $target) ELSE NONE END, \
                 detail = $detail RETURN NONE",
            )
            .bind(("stream", stream.to_string()))
            .bind(("actor", actor.to_string()))
            .bind(("action", action.to_string()))
            .bind(("target", target.map(str::to_string)))
            .bind(("detail", detail.to_string()))
            .await?
            .check()?;
        Ok(())
    }

    /// The newest `limit` moderation log entries of a stream, newest first.
    pub async fn moderation_log(
        &self,
        stream: &str,
        limit: i64,
    ) -> Result<Vec<ModerationRow>, DbError> {
        let rows: Vec<ModerationRow> = self
            .client()
            .query(
                "SELECT actor.username AS actor, action, target.username AS target, detail, \
                 time::format(at, '%Y-%m-%dT%H:%M:%SZ') AS at, at AS t FROM moderation_log \
                 WHERE stream = type::record('stream', $stream) ORDER BY t DESC LIMIT $limit",
            )
            .bind(("stream", stream.to_string()))
            .bind(("limit", limit))
            .await?
            .check()?
            .take(0)?;
        Ok(rows)
    }

    /// A stream's chat rules and named moderators; `None` if there is no
    /// such stream.
    pub async fn chat_config(&self, stream: &str) -> Result<Option<ChatConfigRow>, DbError> {
        if !super::streams::valid_id(stream) {
            return Ok(None);
        }
        let row: Option<ChatConfigRow> = self
            .client()
            .query(
                "SELECT chat_slow_mode_secs ?? 0 AS slow_mode_secs, chat_block_links ?? false AS block_links, \
                 chat_banned_words ?? [] AS banned_words, \
                 (moderators ?? []).map(|$m| <string> record::id($m)) AS moderator_ids, \
                 (moderators ?? []).map(|$m| $m.username ?? '') AS moderator_names \
                 FROM type::record('stream', $stream)",
            )
            .bind(("stream", stream.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(row)
    }

    /// Replaces a stream's chat rules and named moderators (user ids).
    pub async fn set_chat_config(
        &self,
        stream: &str,
        slow_mode_secs: i64,
        block_links: bool,
        banned_words: &[String],
        moderator_ids: &[String],
    ) -> Result<(), DbError> {
        self.client()
            .query(
                "UPDATE type::record('stream', $stream) SET chat_slow_mode_secs = $slow, \
                 chat_block_links = $links, chat_banned_words = $words, \
                 moderators = $mods.map(|$m| type::record('user', $m)) RETURN NONE",
            )
            .bind(("stream", stream.to_string()))
            .bind(("slow", slow_mode_secs))
            .bind(("links", block_links))
            .bind(("words", banned_words.to_vec()))
            .bind(("mods", moderator_ids.to_vec()))
            .await?
            .check()?;
        Ok(())
    }
}
