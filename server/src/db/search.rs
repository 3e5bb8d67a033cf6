//! Full-text search over transcripts and stream titles and descriptions, with
//! migration 6's BM25 indexes (`transcript_text`, `stream_title_text`,
//! `stream_description_text`), limited to the streams a caller may find.
//!
//! Matches come back highlighted with [`MARK_OPEN`] and [`MARK_CLOSE`]
//! (private-use characters), which the service turns into safe fragments; the
//! text itself is never trusted as HTML.

use surrealdb::types::SurrealValue;

use super::{Database, DbError};

/// Starts a highlighted match in [`SearchRow::highlighted`].
pub const MARK_OPEN: char = '\u{E000}';
/// Ends a highlighted match in [`SearchRow::highlighted`].
pub const MARK_CLOSE: char = '\u{E001}';

/// Who is searching: public streams for everyone, a user's own streams of any
/// visibility, and every stream for admins.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchScope<'a> {
    /// The signed-in user's id.
    pub user: Option<&'a str>,
    /// Admins find every stream.
    pub admin: bool,
}

/// Which text matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchField {
    /// A transcript line.
    Transcript,
    /// The stream's title.
    Title,
    /// The stream's description.
    Description,
}

/// One match.
#[derive(Debug, Clone, PartialEq, SurrealValue)]
pub struct SearchRow {
    /// The stream id.
    pub stream: String,
    /// The stream's title.
    pub title: String,
    /// The owner's username.
    pub owner_username: Option<String>,
    /// The stream's state.
    pub state: String,
    /// For transcript lines: the start, ms on the media timeline.
    pub start_ms: Option<i64>,
    /// The matching text with its matches between [`MARK_OPEN`] and [`MARK_CLOSE`].
    pub highlighted: String,
    /// BM25 score (higher is better).
    pub score: f64,
}

/// Who may find a stream, as a condition on `prefix` (`stream.` for a
/// transcript line, empty for a stream).
fn visible(prefix: &str) -> String {
    format!(
        "({prefix}title != NONE AND ({prefix}visibility = 'public' OR $admin = true \
         OR ($user != NONE AND <string> record::id({prefix}owner) = $user)))"
    )
}

impl Database {
    /// Matches of `query` in one field, best first (ties: by time or
    /// title), at most `limit`. Every word of the query must match (after
    /// stemming); a query with no words matches nothing.
    pub async fn search(
        &self,
        field: SearchField,
        query: &str,
        scope: SearchScope<'_>,
        limit: i64,
    ) -> Result<Vec<SearchRow>, DbError> {
        let highlight =
            "search::highlight($open, $close, 1) AS highlighted, search::score(1) AS score";
        let sql = match field {
            SearchField::Transcript => format!(
                "SELECT <string> record::id(stream) AS stream, stream.title AS title, \
                 stream.owner.username AS owner_username, stream.state AS state, start_ms, {highlight} \
                 FROM transcript WHERE text @1@ $q AND {} ORDER BY score DESC, start_ms LIMIT $limit",
                visible("stream.")
            ),
            SearchField::Title | SearchField::Description => {
                let column = if field == SearchField::Title {
                    "title"
                } else {
                    "description"
                };
                format!(
                    "SELECT <string> record::id(id) AS stream, title, owner.username AS owner_username, \
                     state, NONE AS start_ms, {highlight} \
                     FROM stream WHERE {column} @1@ $q AND {} ORDER BY score DESC, title LIMIT $limit",
                    visible("")
                )
            }
        };
        let rows: Vec<SearchRow> = self
            .client()
            .query(sql)
            .bind(("q", query.to_string()))
            .bind(("open", MARK_OPEN.to_string()))
            .bind(("close", MARK_CLOSE.to_string()))
            .bind(("admin", scope.admin))
            .bind(("user", scope.user.map(str::to_string)))
            .bind(("limit", limit))
            .await?
            .check()?
            .take(0)?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::transcripts::TranscriptRow;

    async fn fixture() -> Database {
        let db = crate::db::test_database("CREATE user:ann SET username = 'ann', password_hash = 'x', role = 'broadcaster';
                 CREATE user:bob SET username = 'bob', password_hash = 'x', role = 'broadcaster';
                 CREATE stream:pub SET owner = user:ann, title = 'Cooking pasta at home', description = 'Boiling water and <b>salt</b>', ingest_token_hash = 'h', visibility = 'public', state = 'ended';
                 CREATE stream:priv SET owner = user:ann, title = 'Secret pasta recipe', ingest_token_hash = 'h', visibility = 'private', state = 'ended';
                 CREATE stream:unl SET owner = user:bob, title = 'Unlisted pasta', ingest_token_hash = 'h', visibility = 'unlisted', state = 'ended';
                 FOR $t IN ['Garden tour', 'Morning news', 'Chess night', 'Guitar lesson', 'Yoga class', 'Bird watching'] {
                     CREATE stream SET owner = user:bob, title = $t, ingest_token_hash = 'h', visibility = 'public', state = 'ended';
                 };",).await;
        let line = |stream: &str, start: i64, text: &str| TranscriptRow {
            stream: stream.into(),
            start_ms: start,
            end_ms: start + 3000,
            program_ms: None,
            text: text.into(),
        };
        db.insert_transcript(&[
            line("pub", 0, "Welcome to the show."),
            line("pub", 61_000, "Now the water is boiling, add the pasta."),
            line("priv", 5000, "The secret is boiling the pasta in broth."),
            line("unl", 5000, "Boiling pasta for the unlisted crowd."),
        ])
        .await
        .expect("lines");
        // BM25 gives a word found in most lines no weight: some lines without them.
        let filler = [
            "Let us talk about the weather.",
            "The garden looks lovely in spring.",
            "Thanks for joining us tonight.",
            "Chess openings are fun.",
            "See you next week.",
        ];
        db.insert_transcript(
            &filler
                .iter()
                .enumerate()
                .map(|(i, t)| line("pub", 100_000 + i as i64 * 5000, t))
                .collect::<Vec<_>>(),
        )
        .await
        .expect("lines");
        db
    }

    #[tokio::test]
    async fn finds_stemmed_words_only_where_the_caller_may_look() {
        let db = fixture().await;
        let anon = SearchScope::default();
        let hits = db
            .search(SearchField::Transcript, "boil", anon, 10)
            .await
            .expect("search");
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].stream, "pub");
        assert_eq!(hits[0].start_ms, Some(61_000));
        assert_eq!(hits[0].title, "Cooking pasta at home");
        assert_eq!(hits[0].owner_username.as_deref(), Some("ann"));
        assert_eq!(
            hits[0].highlighted,
            "Now the water is \u{E000}boiling\u{E001}, add the pasta."
        );
        assert!(hits[0].score > 0.0);

        // The owner also finds her private stream; bob's unlisted one stays out.
        let ann = SearchScope {
            user: Some("ann"),
            admin: false,
        };
        let mut streams: Vec<String> = db
            .search(SearchField::Transcript, "boiling pasta", ann, 10)
            .await
            .expect("search")
            .into_iter()
            .map(|h| h.stream)
            .collect();
        streams.sort();
        assert_eq!(streams, vec!["priv", "pub"]);

        // Admins find everything.
        let admin = SearchScope {
            user: Some("root"),
            admin: true,
        };
        let titles = db
            .search(SearchField::Title, "pasta", admin, 10)
            .await
            .expect("titles");
        assert_eq!(titles.len(), 3, "{titles:?}");
        let public_titles = db
            .search(SearchField::Title, "pasta", anon, 10)
            .await
            .expect("titles");
        assert_eq!(public_titles.len(), 1);
        assert_eq!(public_titles[0].start_ms, None);
        assert_eq!(
            public_titles[0].highlighted,
            "Cooking \u{E000}pasta\u{E001} at home"
        );

        let desc = db
            .search(SearchField::Description, "salt", anon, 10)
            .await
            .expect("descriptions");
        assert_eq!(desc.len(), 1);
        assert_eq!(
            desc[0].highlighted,
            "Boiling water and <b>\u{E000}salt\u{E001}</b>"
        );

        // Nothing to match, and a query of punctuation only: no rows, no error.
        assert!(db
            .search(SearchField::Transcript, "zebra", anon, 10)
            .await
            .expect("search")
            .is_empty());
        assert!(db
            .search(SearchField::Transcript, "!!! ...", anon, 10)
            .await
            .expect("search")
            .is_empty());
        // The limit holds.
        assert_eq!(
            db.search(SearchField::Title, "pasta", admin, 2)
                .await
                .expect("titles")
                .len(),
            2
        );
    }
}
