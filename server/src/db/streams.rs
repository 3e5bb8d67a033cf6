//! Typed queries on the `stream` table.

use surrealdb::types::SurrealValue;

use super::users::new_record_key;
use super::{Database, DbError};

/// A live stream as the home page lists it.
#[derive(Debug, Clone, PartialEq, SurrealValue)]
pub struct LiveStreamRow {
    /// The record key (the id used in URLs).
    pub id: String,
    /// Title.
    pub title: String,
    /// The owner's username.
    pub owner: String,
    /// When it went live, RFC 3339.
    pub started_at: Option<String>,
}

impl Database {
    /// Public streams in the `live` state, most recently started first (at most `limit`).
    pub async fn live_streams(&self, limit: i64) -> Result<Vec<LiveStreamRow>, DbError> {
        let rows: Vec<LiveStreamRow> = self
            .client()
            .query(
                "SELECT <string> record::id(id) AS id, title, owner.username AS owner, \
                 (IF started_at != NONE THEN time::format(started_at, '%Y-%m-%dT%H:%M:%SZ') ELSE NONE END) AS started_at \
                 FROM stream WHERE state = 'live' AND visibility = 'public' ORDER BY started_at DESC LIMIT $limit",
            )
            .bind(("limit", limit))
            .await?
            .check()?
            .take(0)?;
        Ok(rows)
    }
}

/// A new stream and its ingest token (shown to the owner once; only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStream {
    /// The stream id used in URLs.
    pub id: String,
    /// The secret the publisher presents.
    pub ingest_token: String,
}

/// A fresh random ingest token: 32 bytes from the OS, hex-encoded.
pub fn new_ingest_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// The stored form of a token: SHA-256, hex. Tokens are 256 random bits, so a
/// fast hash is enough; the point is that the database never holds the secret.
pub fn hash_token(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

#[derive(Debug, Clone, PartialEq, SurrealValue)]
struct TokenRow {
    ingest_token_hash: String,
    state: String,
}

/// Ids are lower-case letters and digits: safe in URLs, keys and SurrealQL
/// (the one rule is [`app::ids::valid_stream_id`]).
pub fn valid_id(id: &str) -> bool {
    app::ids::valid_stream_id(id)
}

/// A stream as the API shows it, with its owner's id and username.
#[derive(Debug, Clone, PartialEq, Eq, SurrealValue)]
pub struct StreamRow {
    /// The record key (the id used in URLs).
    pub id: String,
    /// The owner's user id.
    pub owner_id: String,
    /// The owner's username (empty if the user no longer exists).
    pub owner_username: Option<String>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// `public`, `unlisted` or `private`.
    pub visibility: String,
    /// `idle`, `live`, `ended` or `interrupted`.
    pub state: String,
    /// RFC 3339, UTC, seconds.
    pub created_at: String,
    /// When it first went live.
    pub started_at: Option<String>,
    /// When it last ended or was interrupted.
    pub ended_at: Option<String>,
}

/// Every column of [`StreamRow`], times formatted as RFC 3339.
const STREAM_FIELDS: &str = "<string> record::id(id) AS id, \
    <string> record::id(owner) AS owner_id, owner.username AS owner_username, \
    title, description, visibility, state, \
    time::format(created_at, '%Y-%m-%dT%H:%M:%SZ') AS created_at, \
    (IF started_at != NONE THEN time::format(started_at, '%Y-%m-%dT%H:%M:%SZ') ELSE NONE END) AS started_at, \
    (IF ended_at != NONE THEN time::format(ended_at, '%Y-%m-%dT%H:%M:%SZ') ELSE NONE END) AS ended_at";

/// Which streams [`Database::list_streams`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamFilter<'a> {
    /// Only this owner's streams (a user id).
    pub owner: Option<&'a str>,
    /// Only this visibility.
    pub visibility: Option<&'a str>,
    /// Only this state.
    pub state: Option<&'a str>,
    /// At most this many.
    pub limit: i64,
    /// Skip this many first.
    pub offset: i64,
}

/// What [`Database::update_stream`] changes; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamChanges {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New visibility.
    pub visibility: Option<String>,
}

impl Database {
    /// Creates a public stream owned by `owner` (a user record key) and returns
    /// its id and token.
    pub async fn create_stream(&self, owner: &str, title: &str) -> Result<NewStream, DbError> {
        let (row, ingest_token) = self.create_stream_with(owner, title, "", "public").await?;
        Ok(NewStream {
            id: row.id,
            ingest_token,
        })
    }

    /// Creates a stream and returns it with its ingest token (only the token's
    /// hash is stored).
    pub async fn create_stream_with(
        &self,
        owner: &str,
        title: &str,
        description: &str,
        visibility: &str,
    ) -> Result<(StreamRow, String), DbError> {
        let token = new_ingest_token().map_err(|e| DbError::Random(e.to_string()))?;
        let id = new_record_key().map_err(|e| DbError::Random(e.to_string()))?;
        let row: Option<StreamRow> = self
            .client()
            .query(
                "CREATE type::record('stream', $id) SET owner = type::record('user', $owner), \
                 title = $title, description = $description, visibility = $visibility, \
                 ingest_token_hash = $hash RETURN NONE",
            )
            .query(format!(
                "SELECT {STREAM_FIELDS} FROM type::record('stream', $id)"
            ))
            .bind(("id", id.clone()))
            .bind(("owner", owner.to_string()))
            .bind(("title", title.to_string()))
            .bind(("description", description.to_string()))
            .bind(("visibility", visibility.to_string()))
            .bind(("hash", hash_token(&token)))
            .await?
            .check()?
            .take(1)?;
        let row = row.ok_or_else(|| DbError::Missing(format!("stream {id}")))?;
        Ok((row, token))
    }

    /// One stream, or `None`.
    pub async fn get_stream(&self, id: &str) -> Result<Option<StreamRow>, DbError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let row: Option<StreamRow> = self
            .client()
            .query(format!(
                "SELECT {STREAM_FIELDS} FROM type::record('stream', $id)"
            ))
            .bind(("id", id.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(row)
    }

    /// A stream's visibility, or `None` if there is no such stream (what the
    /// playback check needs, and nothing more).
    pub async fn stream_visibility(&self, id: &str) -> Result<Option<String>, DbError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let v: Option<String> = self
            .client()
            .query("SELECT VALUE visibility FROM type::record('stream', $id)")
            .bind(("id", id.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(v)
    }

    /// Streams matching `filter`. With a `live` state filter the most recently
    /// started come first, otherwise the most recently created.
    pub async fn list_streams(&self, filter: StreamFilter<'_>) -> Result<Vec<StreamRow>, DbError> {
        let mut conditions = Vec::new();
        if filter.owner.is_some() {
            conditions.push("owner = type::record('user', $owner)");
        }
        if filter.visibility.is_some() {
            conditions.push("visibility = $visibility");
        }
        if filter.state.is_some() {
            conditions.push("state = $state");
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let order = if filter.state == Some("live") {
            "started_at DESC, created_at DESC, id"
        } else {
            "created_at DESC, id"
        };
        let rows: Vec<StreamRow> = self
            .client()
            .query(format!(
                "SELECT {STREAM_FIELDS} FROM stream {where_clause} ORDER BY {order} \
                 LIMIT $limit START $offset"
            ))
            .bind(("owner", filter.owner.unwrap_or_default().to_string()))
            .bind((
                "visibility",
                filter.visibility.unwrap_or_default().to_string(),
            ))
            .bind(("state", filter.state.unwrap_or_default().to_string()))
            .bind(("limit", filter.limit.max(0)))
            .bind(("offset", filter.offset.max(0)))
            .await?
            .check()?
            .take(0)?;
        Ok(rows)
    }

    /// Public streams that ended or were interrupted, the most recently ended
    /// first (at most `limit`): the home page's "Recently live".
    pub async fn recent_public_streams(&self, limit: i64) -> Result<Vec<StreamRow>, DbError> {
        let rows: Vec<StreamRow> = self
            .client()
            .query(format!(
                "SELECT {STREAM_FIELDS} FROM stream WHERE visibility = 'public' \
                 AND state IN ['ended', 'interrupted'] ORDER BY ended_at DESC, id LIMIT $limit"
            ))
            .bind(("limit", limit.max(0)))
            .await?
            .check()?
            .take(0)?;
        Ok(rows)
    }

    /// One user's public streams, for their profile (at most `limit` in all):
    /// live ones first (most recently started first), then the others, those
    /// that ended most recently first and those that never went live last
    /// (newest first). Unlisted and private streams are never returned.
    pub async fn public_streams_of(
        &self,
        owner: &str,
        limit: i64,
    ) -> Result<Vec<StreamRow>, DbError> {
        let limit = limit.max(0);
        let mut response = self
            .client()
            .query(format!(
                "SELECT {STREAM_FIELDS} FROM stream WHERE owner = type::record('user', $owner) \
                 AND visibility = 'public' AND state = 'live' \
                 ORDER BY started_at DESC, id LIMIT $limit"
            ))
            .query(format!(
                "SELECT {STREAM_FIELDS} FROM stream WHERE owner = type::record('user', $owner) \
                 AND visibility = 'public' AND state != 'live' \
                 ORDER BY ended_at DESC, created_at DESC, id LIMIT $limit"
            ))
            .bind(("owner", owner.to_string()))
            .bind(("limit", limit))
            .await?
            .check()?;
        let mut rows: Vec<StreamRow> = response.take(0)?;
        let rest: Vec<StreamRow> = response.take(1)?;
        rows.extend(rest);
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(rows)
    }

    /// Changes a stream's title, description or visibility; returns it as it
    /// is now, or `None` if there is no such stream.
    pub async fn update_stream(
        &self,
        id: &str,
        changes: StreamChanges,
    ) -> Result<Option<StreamRow>, DbError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let mut sets = Vec::new();
        if changes.title.is_some() {
            sets.push("title = $title");
        }
        if changes.description.is_some() {
            sets.push("description = $description");
        }
        if changes.visibility.is_some() {
            sets.push("visibility = $visibility");
        }
        let mut query = self.client().query(if sets.is_empty() {
            "RETURN NONE".to_string()
        } else {
            format!(
                "UPDATE type::record('stream', $id) SET {} RETURN NONE",
                sets.join(", ")
            )
        });
        query = query
            .query(format!(
                "SELECT {STREAM_FIELDS} FROM type::record('stream', $id)"
            ))
            .bind(("id", id.to_string()))
            .bind(("title", changes.title.unwrap_or_default()))
            .bind(("description", changes.description.unwrap_or_default()))
            .bind(("visibility", changes.visibility.unwrap_or_default()));
        let row: Option<StreamRow> = query.await?.check()?.take(1)?;
        Ok(row)
    }

    /// Deletes a stream; `false` if there was none.
    pub async fn delete_stream(&self, id: &str) -> Result<bool, DbError> {
        if !valid_id(id) {
            return Ok(false);
        }
        let gone: Vec<surrealdb::types::Value> = self
            .client()
            .query("DELETE type::record('stream', $id) RETURN BEFORE")
            .bind(("id", id.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(!gone.is_empty())
    }

    /// Gives a stream a new ingest token and returns it; the old one stops
    /// working for new connections. `None` if there is no such stream.
    pub async fn regenerate_ingest_token(&self, id: &str) -> Result<Option<String>, DbError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let token = new_ingest_token().map_err(|e| DbError::Random(e.to_string()))?;
        let updated: Vec<surrealdb::types::Value> = self
            .client()
            .query("UPDATE type::record('stream', $id) SET ingest_token_hash = $hash RETURN NONE")
            .query("SELECT VALUE id FROM type::record('stream', $id)")
            .bind(("id", id.to_string()))
            .bind(("hash", hash_token(&token)))
            .await?
            .check()?
            .take(1)?;
        Ok((!updated.is_empty()).then_some(token))
    }

    /// Whether `token` is the stream's ingest token. `None` if there is no such stream.
    pub async fn check_ingest_token(&self, id: &str, token: &str) -> Result<Option<bool>, DbError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let hash = self.ingest_token_hash(id).await?;
        Ok(hash.map(|h| subtle_eq::ct_eq(h.as_bytes(), hash_token(token).as_bytes())))
    }

    /// The SHA-256 (hex) of a stream's current ingest token, if the stream exists.
    pub async fn ingest_token_hash(&self, id: &str) -> Result<Option<String>, DbError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let row: Option<TokenRow> = self
            .client()
            .query("SELECT ingest_token_hash, state FROM type::record('stream', $id)")
            .bind(("id", id.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(row.map(|r| r.ingest_token_hash))
    }

    /// Sets a stream's state, changed at `at_ms` (Unix ms); `live` also
    /// stamps `started_at` (first time), and `ended`/`interrupted` stamp
    /// `ended_at`.
    pub async fn set_stream_state(&self, id: &str, state: &str, at_ms: i64) -> Result<(), DbError> {
        let sql = match state {
            "live" => "UPDATE type::record('stream', $id) SET state = 'live', started_at = started_at ?? <datetime> $at, ended_at = NONE",
            "ended" | "interrupted" => "UPDATE type::record('stream', $id) SET state = $state, ended_at = <datetime> $at",
            _ => "UPDATE type::record('stream', $id) SET state = $state",
        };
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .ok_or(DbError::Time(at_ms))?;
        self.client()
            .query(sql)
            .bind(("id", id.to_string()))
            .bind(("state", state.to_string()))
            .bind(("at", at))
            .await?
            .check()?;
        Ok(())
    }
}

/// Constant-time comparison of secrets.
pub mod subtle_eq {
    /// Compares two byte strings in time independent of where they differ.
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}
