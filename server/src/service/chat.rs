//! Chat administration for a stream's owner (and admins): the rules, the
//! named moderators and the moderation log. Used by `http::chat`.

use app::accounts::FieldError;
use app::chat::{ChatAdmin, ModerationEntry, MAX_SLOW_MODE_SECS};

use super::streams::{load_managed, StreamError};
use super::SessionUser;
use crate::db::chat::ChatConfigRow;
use crate::db::Database;
use crate::realtime::rules::clean_banned_words;
use crate::realtime::Rooms;

/// The most moderators one stream may name.
pub const MAX_MODERATORS: usize = 100;

fn admin_view(row: ChatConfigRow) -> ChatAdmin {
    ChatAdmin {
        slow_mode_secs: u32::try_from(row.slow_mode_secs.max(0)).unwrap_or(0),
        block_links: row.block_links,
        banned_words: row.banned_words,
        moderators: row.moderator_names,
    }
}

/// The stream's chat rules and moderators.
pub async fn settings(
    db: &Database,
    user: Option<&SessionUser>,
    id: &str,
) -> Result<ChatAdmin, StreamError> {
    load_managed(db, id, user).await?;
    let row = db
        .chat_config(id)
        .await?
        .ok_or_else(|| StreamError::NotFound(id.into()))?;
    Ok(admin_view(row))
}

/// Replaces the rules and moderators; open rooms apply them at once.
pub async fn set_settings(
    db: &Database,
    rooms: &Rooms,
    user: Option<&SessionUser>,
    id: &str,
    body: ChatAdmin,
) -> Result<ChatAdmin, StreamError> {
    let (row, user) = load_managed(db, id, user).await?;
    if body.slow_mode_secs > MAX_SLOW_MODE_SECS {
        return Err(StreamError::Invalid(FieldError::new(
            "slow_mode_secs",
            format!("slow mode is at most {MAX_SLOW_MODE_SECS} seconds"),
        )));
    }
    let words = clean_banned_words(&body.banned_words)
        .map_err(|m| StreamError::Invalid(FieldError::new("banned_words", m)))?;
    if body.moderators.len() > MAX_MODERATORS {
        return Err(StreamError::Invalid(FieldError::new(
            "moderators",
            format!("at most {MAX_MODERATORS} moderators"),
        )));
    }
    let mut ids = Vec::new();
    for name in &body.moderators {
        let found = db.user_by_username(name.trim()).await?.ok_or_else(|| {
            StreamError::Invalid(FieldError::new(
                "moderators",
                format!("there is no user {name}"),
            ))
        })?;
        if found.id != row.owner_id && !ids.contains(&found.id) {
            ids.push(found.id);
        }
    }
    db.set_chat_config(
        id,
        i64::from(body.slow_mode_secs),
        body.block_links,
        &words,
        &ids,
    )
    .await?;
    let stored = db
        .chat_config(id)
        .await?
        .ok_or_else(|| StreamError::NotFound(id.into()))?;
    let detail = format!(
        "slow mode {} s, links {}, {} banned words, moderators: {}",
        stored.slow_mode_secs,
        if stored.block_links {
            "blocked"
        } else {
            "allowed"
        },
        stored.banned_words.len(),
        stored.moderator_names.join(", ")
    );
    if let Err(e) = db
        .log_moderation(id, &user.user.id, "settings", None, &detail)
        .await
    {
        tracing::error!(stream = %id, error = %e, "could not log a settings change");
    }
    // Through the rooms: on every node where the room is open.
    rooms.set_rules(id, stored.clone());
    Ok(admin_view(stored))
}

/// The newest 200 moderation log entries, newest first.
pub async fn log(
    db: &Database,
    user: Option<&SessionUser>,
    id: &str,
) -> Result<Vec<ModerationEntry>, StreamError> {
    load_managed(db, id, user).await?;
    Ok(db
        .moderation_log(id, 200)
        .await?
        .into_iter()
        .map(|r| ModerationEntry {
            by: r.actor.unwrap_or_default(),
            action: r.action,
            target: r.target,
            detail: r.detail,
            at: r.at,
        })
        .collect())
}
