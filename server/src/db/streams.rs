//! Typed queries on the `stream` table.

use surrealdb::types::SurrealValue;

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
    /// Streams in the `live` state, most recently started first (at most `limit`).
    pub async fn live_streams(&self, limit: i64) -> Result<Vec<LiveStreamRow>, DbError> {
        let rows: Vec<LiveStreamRow> = self
            .client()
            .query(
                "SELECT <string> record::id(id) AS id, title, owner.username AS owner, \
                 (IF started_at != NONE THEN time::format(started_at, '%Y-%m-%dT%H:%M:%SZ') ELSE NONE END) AS started_at \
                 FROM stream WHERE state = 'live' ORDER BY started_at DESC LIMIT $limit",
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

/// Ids are lower-case letters and digits: safe in URLs, keys and SurrealQL.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl Database {
    /// Creates a stream owned by `owner` (a user record key) and returns its id and token.
    pub async fn create_stream(&self, owner: &str, title: &str) -> Result<NewStream, DbError> {
        let token = new_ingest_token().map_err(|e| DbError::Random(e.to_string()))?;
        let mut raw = [0u8; 10];
        getrandom::fill(&mut raw).map_err(|e| DbError::Random(e.to_string()))?;
        let id = hex::encode(raw);
        self.client()
            .query("CREATE type::record('stream', $id) SET owner = type::record('user', $owner), title = $title, ingest_token_hash = $hash")
            .bind(("id", id.clone()))
            .bind(("owner", owner.to_string()))
            .bind(("title", title.to_string()))
            .bind(("hash", hash_token(&token)))
            .await?
            .check()?;
        Ok(NewStream {
            id,
            ingest_token: token,
        })
    }

    /// Whether `token` is the stream's ingest token. `None` if there is no such stream.
    pub async fn check_ingest_token(&self, id: &str, token: &str) -> Result<Option<bool>, DbError> {
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
        Ok(row.map(|r| {
            use subtle_eq::ct_eq;
            ct_eq(r.ingest_token_hash.as_bytes(), hash_token(token).as_bytes())
        }))
    }

    /// Sets a stream's state; `live` also stamps `started_at` (first time), and
    /// `ended`/`interrupted` stamp `ended_at`.
    pub async fn set_stream_state(&self, id: &str, state: &str) -> Result<(), DbError> {
        let sql = match state {
            "live" => "UPDATE type::record('stream', $id) SET state = 'live', started_at = started_at ?? time::now(), ended_at = NONE",
            "ended" | "interrupted" => "UPDATE type::record('stream', $id) SET state = $state, ended_at = time::now()",
            _ => "UPDATE type::record('stream', $id) SET state = $state",
        };
        self.client()
            .query(sql)
            .bind(("id", id.to_string()))
            .bind(("state", state.to_string()))
            .await?
            .check()?;
        Ok(())
    }
}

mod subtle_eq {
    /// Compares two byte strings in time independent of where they differ.
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}
