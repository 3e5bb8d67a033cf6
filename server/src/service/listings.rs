//! What anyone may list, signed in or not: a broadcaster's profile (their
//! public streams) and the home page's recently live streams.
//!
//! Only `public` streams are ever listed here. Unlisted and private streams
//! stay off profiles even when the owner looks at their own (their full list
//! is `GET /api/v1/streams?mine=true` and the My streams page), so a profile
//! answer never depends on who asks.

use app::accounts::validate_username;
use app::protocol::StreamState;
use app::streams::{Profile, StreamCard, StreamOwner};
use serde::Deserialize;

use super::streams::{stream_from_row, StreamError, MAX_LIMIT};
use crate::db::streams::StreamRow;
use crate::db::Database;

/// Streams on a profile when `limit` is not given.
pub const DEFAULT_PROFILE_LIMIT: i64 = 50;

/// The query of `GET /api/v1/users/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileParams {
    /// 1 to [`MAX_LIMIT`] streams; [`DEFAULT_PROFILE_LIMIT`] by default.
    pub limit: Option<i64>,
}

/// A broadcaster's profile: the user and their public streams, live first.
/// The name is compared in lower case, like at login. An unknown user, or a
/// name that cannot be a username, is [`StreamError::UserNotFound`].
pub async fn profile(
    db: &Database,
    name: &str,
    params: ProfileParams,
) -> Result<Profile, StreamError> {
    let limit = params.limit.unwrap_or(DEFAULT_PROFILE_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(StreamError::BadQuery(format!(
            "limit={limit}: expected 1 to {MAX_LIMIT}"
        )));
    }
    let name = name.trim().to_lowercase();
    if validate_username(&name).is_err() {
        return Err(StreamError::UserNotFound(name));
    }
    let user = db
        .user_named(&name)
        .await?
        .ok_or_else(|| StreamError::UserNotFound(name.clone()))?;
    let rows = db.public_streams_of(&user.id, limit).await?;
    Ok(Profile {
        user: StreamOwner {
            id: user.id,
            username: user.username,
        },
        streams: rows.into_iter().map(|r| stream_from_row(r, None)).collect(),
    })
}

/// Public streams that ended or were interrupted, the most recently ended
/// first: at most `limit`.
pub async fn recent(db: &Database, limit: usize) -> Result<Vec<StreamCard>, StreamError> {
    let limit = i64::try_from(limit).unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
    let rows = db.recent_public_streams(limit).await?;
    Ok(rows.into_iter().map(card_from_row).collect())
}

/// The home page's form of a stream row.
fn card_from_row(row: StreamRow) -> StreamCard {
    let stream = stream_from_row(row, None);
    StreamCard {
        id: stream.id,
        title: stream.title,
        owner: stream.owner.username,
        state: stream.state,
        started_at: stream.started_at,
        ended_at: stream.ended_at,
        viewers: None,
    }
}

/// A live stream as the home page lists it.
pub fn live_card(
    id: String,
    title: String,
    owner: String,
    started_at: Option<String>,
) -> StreamCard {
    StreamCard {
        id,
        title,
        owner,
        state: StreamState::Live,
        started_at,
        ended_at: None,
        // The caller adds the room's viewer count.
        viewers: None,
    }
}
