//! Typed queries on the `transcript` table (migration 6): what live
//! transcription heard, one row per window. Times are integer milliseconds on
//! the stream's media timeline (the VOD position); `program_ms` is Unix time.

use surrealdb::types::SurrealValue;

use super::{Database, DbError};

/// One transcribed line.
#[derive(Debug, Clone, PartialEq, Eq, SurrealValue)]
pub struct TranscriptRow {
    /// The stream id.
    pub stream: String,
    /// Start on the media timeline, ms.
    pub start_ms: i64,
    /// End on the media timeline, ms.
    pub end_ms: i64,
    /// When it was spoken, Unix ms (from the program date), if known.
    pub program_ms: Option<i64>,
    /// The text.
    pub text: String,
}

/// The row key: a line is stored once however often it is written.
fn key(stream: &str, start_ms: i64) -> String {
    format!("{stream}/{start_ms:012}")
}

impl Database {
    /// Stores transcript lines (idempotent per stream and start).
    pub async fn insert_transcript(&self, rows: &[TranscriptRow]) -> Result<(), DbError> {
        if rows.is_empty() {
            return Ok(());
        }
        let keyed: Vec<(String, String, i64, i64, Option<i64>, String)> = rows
            .iter()
            .map(|r| {
                (
                    key(&r.stream, r.start_ms),
                    r.stream.clone(),
                    r.start_ms,
                    r.end_ms,
                    r.program_ms,
                    r.text.clone(),
                )
            })
            .collect();
        self.client()
            .query(
                "FOR $r IN $rows { UPSERT type::record('transcript', $r[0]) SET \
                 stream = type::record('stream', $r[1]), start_ms = $r[2], end_ms = $r[3], \
                 program_ms = $r[4], text = $r[5] RETURN NONE; }",
            )
            .bind(("rows", keyed))
            .await?
            .check()?;
        Ok(())
    }

    /// A stream's transcript in media order.
    pub async fn stream_transcript(&self, stream: &str) -> Result<Vec<TranscriptRow>, DbError> {
        let rows: Vec<TranscriptRow> = self
            .client()
            .query(
                "SELECT <string> record::id(stream) AS stream, start_ms, end_ms, program_ms, text \
                 FROM transcript WHERE stream = type::record('stream', $stream) ORDER BY start_ms",
            )
            .bind(("stream", stream.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(rows)
    }

    /// Whether a stream has any transcript line.
    pub async fn has_transcript(&self, stream: &str) -> Result<bool, DbError> {
        let rows: Vec<TranscriptRow> = self
            .client()
            .query(
                "SELECT <string> record::id(stream) AS stream, start_ms, end_ms, program_ms, text \
                 FROM transcript WHERE stream = type::record('stream', $stream) LIMIT 1",
            )
            .bind(("stream", stream.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(!rows.is_empty())
    }

    /// Deletes a stream's transcript (and its summary and chapters).
    pub async fn delete_transcript(&self, stream: &str) -> Result<(), DbError> {
        self.client()
            .query(
                "DELETE transcript WHERE stream = type::record('stream', $stream); \
                 DELETE type::record('summary', $stream); \
                 DELETE type::record('chapters', $stream);",
            )
            .bind(("stream", stream.to_string()))
            .await?
            .check()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, SurrealValue)]
    struct Hit {
        hl: String,
        score: f64,
    }

    #[tokio::test]
    async fn transcript_lines_are_stored_once_in_media_order_and_searchable() {
        let db = crate::db::test_database("CREATE user:u SET username = 'alice', password_hash = 'x', role = 'broadcaster'; CREATE stream:s1 SET owner = user:u, title = 'Cooking pasta', ingest_token_hash = 'h';").await;
        let line = |start: i64, text: &str| TranscriptRow {
            stream: "s1".into(),
            start_ms: start,
            end_ms: start + 4000,
            program_ms: Some(1_700_000_000_000 + start),
            text: text.into(),
        };
        db.insert_transcript(&[
            line(4000, "Boil the water first."),
            line(0, "Hello and welcome."),
            line(8000, "Then add salt."),
        ])
        .await
        .expect("insert");
        // Written again (a retry): still one row per line.
        db.insert_transcript(&[line(4000, "Boil the water first.")])
            .await
            .expect("insert again");
        let rows = db.stream_transcript("s1").await.expect("list");
        assert_eq!(
            rows.iter().map(|r| r.start_ms).collect::<Vec<_>>(),
            vec![0, 4000, 8000]
        );
        assert_eq!(rows[1].text, "Boil the water first.");
        assert_eq!(rows[0].program_ms, Some(1_700_000_000_000));
        assert!(db.has_transcript("s1").await.expect("has"));
        assert!(!db.has_transcript("s2").await.expect("has"));

        // The full-text index finds a stemmed word and highlights it.
        let mut res = db
            .client()
            .query("SELECT search::highlight('<b>', '</b>', 1) AS hl, search::score(1) AS score FROM transcript WHERE text @1@ 'boiling'")
            .await
            .expect("search");
        let hits: Vec<Hit> = res.take(0).expect("hits");
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert!(hits[0].hl.contains("<b>Boil</b>"), "{hits:?}");
        assert!(hits[0].score > 0.0, "{hits:?}");

        db.delete_transcript("s1").await.expect("delete");
        assert!(db.stream_transcript("s1").await.expect("list").is_empty());
    }
}
