//! The `chapters` table (migration 8): a stream's chapters, one row per
//! stream (the record key is the stream id). Deleted with the transcript.

use app::chapters::{Chapter, Chapters, ChaptersKind};
use surrealdb::types::SurrealValue;

use super::{Database, DbError};

/// One stored chapter.
#[derive(Debug, Clone, PartialEq, Eq, SurrealValue)]
struct ItemRow {
    start_ms: i64,
    title: String,
}

/// A stored chapter list.
#[derive(Debug, Clone, PartialEq, Eq, SurrealValue)]
struct ChaptersRow {
    stream: String,
    kind: String,
    model: Option<String>,
    items: Vec<ItemRow>,
    updated_at: String,
}

impl From<ChaptersRow> for Chapters {
    fn from(r: ChaptersRow) -> Self {
        Chapters {
            stream_id: r.stream,
            kind: ChaptersKind::parse(&r.kind).unwrap_or(ChaptersKind::Builtin),
            model: r.model,
            chapters: r
                .items
                .into_iter()
                .map(|i| Chapter {
                    start_ms: i.start_ms,
                    title: i.title,
                })
                .collect(),
            updated_at: r.updated_at,
        }
    }
}

const SELECT: &str = "SELECT <string> record::id(stream) AS stream, kind, model, items, \
     time::format(updated_at, '%Y-%m-%dT%H:%M:%S%.3fZ') AS updated_at \
     FROM ONLY type::record('chapters', $stream)";

impl Database {
    /// Stores a stream's chapters, replacing the previous ones; returns them
    /// as stored.
    pub async fn put_chapters(
        &self,
        stream: &str,
        kind: ChaptersKind,
        model: Option<&str>,
        chapters: &[Chapter],
    ) -> Result<Chapters, DbError> {
        let items: Vec<ItemRow> = chapters
            .iter()
            .map(|c| ItemRow {
                start_ms: c.start_ms,
                title: c.title.clone(),
            })
            .collect();
        let row: Option<ChaptersRow> = self
            .client()
            .query(format!(
                "UPSERT type::record('chapters', $stream) CONTENT {{ \
                 stream: type::record('stream', $stream), kind: $kind, model: $model, \
                 items: $items, updated_at: time::now() }} RETURN NONE; {SELECT};"
            ))
            .bind(("stream", stream.to_string()))
            .bind(("kind", kind.as_str().to_string()))
            .bind(("model", model.map(str::to_string)))
            .bind(("items", items))
            .await?
            .check()?
            .take(1)?;
        row.map(Chapters::from)
            .ok_or_else(|| DbError::Missing(format!("chapters of stream {stream}")))
    }

    /// A stream's chapters, if any were made.
    pub async fn get_chapters(&self, stream: &str) -> Result<Option<Chapters>, DbError> {
        let row: Option<ChaptersRow> = self
            .client()
            .query(SELECT)
            .bind(("stream", stream.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(row.map(Chapters::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(start_ms: i64, title: &str) -> Chapter {
        Chapter {
            start_ms,
            title: title.into(),
        }
    }

    #[tokio::test]
    async fn chapters_are_stored_replaced_and_deleted_with_the_transcript() {
        let db = crate::db::test_database("CREATE user:u SET username = 'ann', password_hash = 'x', role = 'broadcaster'; CREATE stream:s1 SET owner = user:u, title = 'T', ingest_token_hash = 'h';").await;
        assert_eq!(db.get_chapters("s1").await.expect("get"), None);
        let first = db
            .put_chapters(
                "s1",
                ChaptersKind::Builtin,
                None,
                &[ch(0, "Bread"), ch(80_000, "Rust <b>")],
            )
            .await
            .expect("put");
        assert_eq!(first.stream_id, "s1");
        assert_eq!(first.kind, ChaptersKind::Builtin);
        assert_eq!(first.chapters, vec![ch(0, "Bread"), ch(80_000, "Rust <b>")]);
        assert!(first.updated_at.ends_with('Z'), "{}", first.updated_at);
        let edited = db
            .put_chapters("s1", ChaptersKind::Edited, None, &[ch(0, "All of it")])
            .await
            .expect("put again");
        assert_eq!(db.get_chapters("s1").await.expect("get"), Some(edited));
        db.delete_transcript("s1").await.expect("delete");
        assert_eq!(db.get_chapters("s1").await.expect("get"), None);
    }
}
