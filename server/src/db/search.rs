//! Full-text search over transcripts and stream titles and descriptions, with
//! migration 6's BM25 indexes (`transcript_text`, `stream_title_text`,
//! `stream_description_text`), limited to the streams a caller may find.
//!
//! SurrealDB's analyzers drop every character that is not a letter or a
//! digit, so emoji and other symbols never reach an index. A query's symbol
//! runs ([`split_query`]) are matched as substrings instead (`string::contains`
//! beside the word match, or alone for a query of symbols only, which scans the
//! streams or lines the caller may see), and highlighted here.
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
    /// stemming), and every run of symbols (emoji) must appear as it is; a
    /// query with neither matches nothing.
    pub async fn search(
        &self,
        field: SearchField,
        query: &str,
        scope: SearchScope<'_>,
        limit: i64,
    ) -> Result<Vec<SearchRow>, DbError> {
        let (words, symbols) = split_query(query);
        let has_words = words.chars().any(char::is_alphanumeric);
        if !has_words && symbols.is_empty() {
            return Ok(Vec::new());
        }
        let column = match field {
            SearchField::Transcript => "text",
            SearchField::Title => "title",
            SearchField::Description => "description",
        };
        let mut conditions = Vec::new();
        if has_words {
            conditions.push(format!("{column} @1@ $q"));
        }
        for i in 0..symbols.len() {
            conditions.push(format!("string::contains({column} ?? '', $s{i})"));
        }
        let matched = conditions.join(" AND ");
        let (highlight, order) = if has_words {
            (
                "search::highlight($open, $close, 1) AS highlighted, search::score(1) AS score"
                    .to_string(),
                "score DESC, ",
            )
        } else {
            (format!("{column} ?? '' AS highlighted, 0.0 AS score"), "")
        };
        let sql = match field {
            SearchField::Transcript => format!(
                "SELECT <string> record::id(stream) AS stream, stream.title AS title, \
                 stream.owner.username AS owner_username, stream.state AS state, start_ms, {highlight} \
                 FROM transcript WHERE {matched} AND {} ORDER BY {order}start_ms LIMIT $limit",
                visible("stream.")
            ),
            SearchField::Title | SearchField::Description => format!(
                "SELECT <string> record::id(id) AS stream, title, owner.username AS owner_username, \
                 state, NONE AS start_ms, {highlight} \
                 FROM stream WHERE {matched} AND {} ORDER BY {order}title LIMIT $limit",
                visible("")
            ),
        };
        let mut request = self
            .client()
            .query(sql)
            .bind(("q", words))
            .bind(("open", MARK_OPEN.to_string()))
            .bind(("close", MARK_CLOSE.to_string()))
            .bind(("admin", scope.admin))
            .bind(("user", scope.user.map(str::to_string)))
            .bind(("limit", limit));
        for (i, symbol) in symbols.iter().enumerate() {
            request = request.bind((format!("s{i}"), symbol.clone()));
        }
        let mut rows: Vec<SearchRow> = request.await?.check()?.take(0)?;
        for row in &mut rows {
            row.highlighted = mark_symbols(&row.highlighted, &symbols);
        }
        Ok(rows)
    }
}

/// The most symbol runs one query may hold (each is a condition).
pub const MAX_SYMBOL_TERMS: usize = 8;

/// A character the analyzers drop that a person would search for: not a
/// letter, digit or space, not ASCII, and not punctuation from the Latin-1,
/// General Punctuation or CJK punctuation blocks (the zero-width joiner
/// inside emoji sequences stays). Emoji, their variation selectors and skin
/// tones, and other symbols (♥, €, ™) are.
fn is_symbol(c: char) -> bool {
    if c.is_ascii() || c.is_alphanumeric() || c.is_whitespace() {
        return false;
    }
    let punctuation =
        matches!(c, '\u{A0}'..='\u{BF}' | '\u{2000}'..='\u{206F}' | '\u{3000}'..='\u{303F}');
    !punctuation || c == '\u{200D}'
}

/// Splits a query into its words (for the full-text index) and its runs of
/// symbols, each kept whole (an emoji sequence is one run), deduplicated, at
/// most [`MAX_SYMBOL_TERMS`].
pub fn split_query(query: &str) -> (String, Vec<String>) {
    let mut words = String::with_capacity(query.len());
    let mut symbols: Vec<String> = Vec::new();
    let mut run = String::new();
    let flush = |run: &mut String, symbols: &mut Vec<String>| {
        if !run.is_empty() && !symbols.contains(run) && symbols.len() < MAX_SYMBOL_TERMS {
            symbols.push(std::mem::take(run));
        }
        run.clear();
    };
    for c in query.chars() {
        if is_symbol(c) {
            run.push(c);
            words.push(' ');
        } else {
            flush(&mut run, &mut symbols);
            words.push(c);
        }
    }
    flush(&mut run, &mut symbols);
    (words, symbols)
}

/// Puts [`MARK_OPEN`]/[`MARK_CLOSE`] around every occurrence of each symbol
/// run in `text`, outside marks already there.
fn mark_symbols(text: &str, symbols: &[String]) -> String {
    if symbols.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    let mut inside = false;
    'outer: while let Some(c) = rest.chars().next() {
        if !inside {
            for symbol in symbols {
                if rest.starts_with(symbol.as_str()) {
                    out.push(MARK_OPEN);
                    out.push_str(symbol);
                    out.push(MARK_CLOSE);
                    rest = &rest[symbol.len()..];
                    continue 'outer;
                }
            }
        }
        match c {
            MARK_OPEN => inside = true,
            MARK_CLOSE => inside = false,
            _ => {}
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
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

    #[test]
    fn queries_split_into_words_and_symbol_runs() {
        let (words, symbols) = split_query("cafe🍝night 👩‍🍳 ♥ — «x» 🍝");
        assert_eq!(symbols, vec!["🍝", "👩\u{200D}🍳", "♥"]);
        assert_eq!(
            words.split_whitespace().collect::<Vec<_>>(),
            ["cafe", "night", "—", "«x»"]
        );
        let (words, symbols) = split_query("plain words");
        assert_eq!((words.as_str(), symbols.len()), ("plain words", 0));
        let many: String = ('\u{1F600}'..='\u{1F640}').flat_map(|c| [c, ' ']).collect();
        assert_eq!(split_query(&many).1.len(), MAX_SYMBOL_TERMS);
    }

    #[test]
    fn symbols_are_marked_outside_existing_marks() {
        let marked = mark_symbols("a 🎸 \u{E000}jam\u{E001} 🎸🎸", &["🎸".to_string()]);
        assert_eq!(
            marked,
            "a \u{E000}🎸\u{E001} \u{E000}jam\u{E001} \u{E000}🎸\u{E001}\u{E000}🎸\u{E001}"
        );
        assert_eq!(mark_symbols("no marks", &[]), "no marks");
    }

    #[tokio::test]
    async fn emoji_in_titles_and_lines_are_searchable() {
        let db = fixture().await;
        db.client()
            .query(
                "CREATE stream:jam SET owner = user:ann, title = 'Friday 🎸 jam', ingest_token_hash = 'h', visibility = 'public', state = 'ended';
                 CREATE stream:cafe SET owner = user:ann, title = 'Café 🍝 night', ingest_token_hash = 'h', visibility = 'public', state = 'ended';",
            )
            .await
            .expect("streams")
            .check()
            .expect("streams");
        db.insert_transcript(&[TranscriptRow {
            stream: "jam".into(),
            start_ms: 2000,
            end_ms: 5000,
            program_ms: None,
            text: "Thanks for the 🎸🎸 everyone".into(),
        }])
        .await
        .expect("line");
        let anon = SearchScope::default();
        let streams = |hits: Vec<SearchRow>| hits.into_iter().map(|h| h.stream).collect::<Vec<_>>();
        let guitar = db
            .search(SearchField::Title, "🎸", anon, 10)
            .await
            .expect("search");
        assert_eq!(streams(guitar.clone()), vec!["jam"], "{guitar:?}");
        assert_eq!(guitar[0].highlighted, "Friday \u{E000}🎸\u{E001} jam");
        // An emoji next to a word, and with a word.
        assert_eq!(
            streams(
                db.search(SearchField::Title, "🍝night", anon, 10)
                    .await
                    .expect("search")
            ),
            vec!["cafe"]
        );
        assert_eq!(
            streams(
                db.search(SearchField::Title, "cafe 🍝", anon, 10)
                    .await
                    .expect("search")
            ),
            vec!["cafe"]
        );
        assert_eq!(
            streams(
                db.search(SearchField::Transcript, "🎸", anon, 10)
                    .await
                    .expect("search")
            ),
            vec!["jam"]
        );
        // Another emoji matches nothing (not every symbol folded to one token).
        assert!(db
            .search(SearchField::Title, "🎹", anon, 10)
            .await
            .expect("search")
            .is_empty());
    }
}
