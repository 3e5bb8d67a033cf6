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
