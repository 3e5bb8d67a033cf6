//! The `summary` table (migration 6): the latest summary of a stream's
//! transcript, one row per stream (the record key is the stream id).

use surrealdb::types::SurrealValue;

use super::{Database, DbError};

/// A stored summary.
#[derive(Debug, Clone, PartialEq, Eq, SurrealValue)]
pub struct SummaryRow {
    /// The stream id.
    pub stream: String,
    /// `llm` or `extractive`.
    pub kind: String,
    /// The model that wrote it (`llm` only).
    pub model: Option<String>,
    /// The summary.
    pub text: String,
    /// When it was made, RFC 3339 (UTC, milliseconds).
    pub created_at: String,
}

impl Database {
    /// Stores a stream's summary, replacing the previous one; returns it as stored.
    pub async fn put_summary(
        &self,
        stream: &str,
        kind: &str,
        model: Option<&str>,
        text: &str,
    ) -> Result<SummaryRow, DbError> {
        let row: Option<SummaryRow> = self
            .client()
            .query(
                "UPSERT type::record('summary', $stream) CONTENT { \
                 stream: type::record('stream', $stream), kind: $kind, model: $model, \
                 text: $text, created_at: time::now() } RETURN NONE; \
                 SELECT <string> record::id(stream) AS stream, kind, model, text, \
                 time::format(created_at, '%Y-%m-%dT%H:%M:%S%.3fZ') AS created_at \
                 FROM ONLY type::record('summary', $stream);",
            )
            .bind(("stream", stream.to_string()))
            .bind(("kind", kind.to_string()))
            .bind(("model", model.map(str::to_string)))
            .bind(("text", text.to_string()))
            .await?
            .check()?
            .take(1)?;
        row.ok_or_else(|| DbError::Missing(format!("summary of stream {stream}")))
    }

    /// How many lines a stream's transcript has.
    pub async fn transcript_lines(&self, stream: &str) -> Result<u64, DbError> {
        let n: Option<i64> = self
            .client()
            .query(
                "SELECT VALUE count() FROM transcript \
                 WHERE stream = type::record('stream', $stream) GROUP ALL",
            )
            .bind(("stream", stream.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    /// A stream's summary, if one was made.
    pub async fn get_summary(&self, stream: &str) -> Result<Option<SummaryRow>, DbError> {
        let row: Option<SummaryRow> = self
            .client()
            .query(
                "SELECT <string> record::id(stream) AS stream, kind, model, text, \
                 time::format(created_at, '%Y-%m-%dT%H:%M:%S%.3fZ') AS created_at \
                 FROM ONLY type::record('summary', $stream)",
            )
            .bind(("stream", stream.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(row)
    }
}

#[cfg(test)]
mod tests {

    #[tokio::test]
    async fn a_summary_is_stored_replaced_and_deleted_with_the_transcript() {
        let db = crate::db::test_database("CREATE user:u SET username = 'ann', password_hash = 'x', role = 'broadcaster'; CREATE stream:s1 SET owner = user:u, title = 'T', ingest_token_hash = 'h';").await;
        assert_eq!(db.get_summary("s1").await.expect("get"), None);
        assert_eq!(db.transcript_lines("s1").await.expect("count"), 0);
        let first = db
            .put_summary("s1", "extractive", None, "One. Two.")
            .await
            .expect("put");
        assert_eq!(first.kind, "extractive");
        assert_eq!(first.model, None);
        assert!(first.created_at.ends_with('Z'), "{}", first.created_at);
        let second = db
            .put_summary("s1", "llm", Some("smollm2"), "A stream.")
            .await
            .expect("put again");
        assert_eq!(
            db.get_summary("s1").await.expect("get"),
            Some(second.clone())
        );
        assert_eq!(second.model.as_deref(), Some("smollm2"));
        assert!(second.created_at >= first.created_at);
        // A bad kind is refused by the schema.
        assert!(db.put_summary("s1", "magic", None, "x").await.is_err());
        db.insert_transcript(&[crate::db::transcripts::TranscriptRow {
            stream: "s1".into(),
            start_ms: 0,
            end_ms: 1000,
            program_ms: None,
            text: "Hi.".into(),
        }])
        .await
        .expect("line");
        assert_eq!(db.transcript_lines("s1").await.expect("count"), 1);
        db.delete_transcript("s1").await.expect("delete");
        assert_eq!(db.get_summary("s1").await.expect("get"), None);
    }
}
