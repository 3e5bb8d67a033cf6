//! Search: the answer of `GET /api/v1/search`, the query rules, highlighted
//! fragments (plain text with marked matches, never HTML from user text), and
//! the server function the search page uses.

#[cfg(feature = "ssr")]
use crate::serverfn::{BoxFuture, Parts};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::html::escape_html;

/// The longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// The most results one answer holds.
pub const MAX_LIMIT: u32 = 50;
/// Results when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 20;
/// Characters of context kept before the first match of a long text.
const CONTEXT_BEFORE: usize = 60;
/// The most characters of one result's text.
const EXCERPT_CHARS: usize = 240;

/// Which text of a stream matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchField {
    /// A line of its transcript.
    Transcript,
    /// Its title.
    Title,
    /// Its description.
    Description,
}

/// A piece of a result's text: matched (`mark`) or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fragment {
    /// Plain text (not HTML).
    pub text: String,
    /// Whether this piece matched the query.
    pub mark: bool,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The stream.
    pub stream_id: String,
    /// Its title.
    pub title: String,
    /// Its broadcaster's username.
    pub owner: Option<String>,
    /// Its state (`idle`, `live`, `ended`, `interrupted`).
    pub state: String,
    /// What matched.
    pub field: SearchField,
    /// For transcript lines: where the line starts, ms on the media timeline.
    pub start_ms: Option<i64>,
    /// The same as `m:ss` or `h:mm:ss`.
    pub at: Option<String>,
    /// Where to go: the watch page, at the line's moment for transcript lines.
    pub url: String,
    /// The matching text (an excerpt of long ones), split at the matches.
    pub fragments: Vec<Fragment>,
    /// The same as HTML: everything escaped, matches in `<mark>`.
    pub html: String,
    /// BM25 relevance; results are sorted by it, best first.
    pub score: f64,
}

/// The answer of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    /// The query as searched (trimmed).
    pub query: String,
    /// Best first.
    pub results: Vec<SearchHit>,
}

/// The query, trimmed, if it is usable: 1 to [`MAX_QUERY_CHARS`] characters.
pub fn validate_query(q: &str) -> Result<String, String> {
    let q = q.trim();
    if q.is_empty() {
        return Err("q is empty: give words to search for".into());
    }
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(format!(
            "q is too long: at most {MAX_QUERY_CHARS} characters"
        ));
    }
    Ok(q.to_string())
}

/// The limit, if it is usable: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when not given.
pub fn validate_limit(limit: Option<u32>) -> Result<u32, String> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(format!("limit={n}: expected 1 to {MAX_LIMIT}")),
    }
}

/// Splits text whose matches sit between `open` and `close` into fragments.
/// Stray or nested markers never produce an empty fragment or lose text.
pub fn fragments(marked: &str, open: char, close: char) -> Vec<Fragment> {
    let mut out: Vec<Fragment> = Vec::new();
    let mut cur = String::new();
    let mut mark = false;
    let flush = |cur: &mut String, mark: bool, out: &mut Vec<Fragment>| {
        if cur.is_empty() {
            return;
        }
        match out.last_mut() {
            Some(last) if last.mark == mark => last.text.push_str(cur),
            _ => out.push(Fragment {
                text: cur.clone(),
                mark,
            }),
        }
        cur.clear();
    };
    for c in marked.chars() {
        if c == open {
            flush(&mut cur, mark, &mut out);
            mark = true;
        } else if c == close {
            flush(&mut cur, mark, &mut out);
            mark = false;
        } else {
            cur.push(c);
        }
    }
    flush(&mut cur, mark, &mut out);
    out
}

/// An excerpt of long fragments: from a little before the first match, at
/// most `EXCERPT_CHARS` characters, with `…` where text was cut.
pub fn excerpt(frags: Vec<Fragment>) -> Vec<Fragment> {
    let total: usize = frags.iter().map(|f| f.text.chars().count()).sum();
    if total <= EXCERPT_CHARS {
        return frags;
    }
    let first_mark = frags
        .iter()
        .take_while(|f| !f.mark)
        .map(|f| f.text.chars().count())
        .sum::<usize>();
    let start = first_mark.saturating_sub(CONTEXT_BEFORE);
    let end = (start + EXCERPT_CHARS).min(total);
    let mut out = Vec::new();
    let mut pos = 0;
    for f in frags {
        let len = f.text.chars().count();
        let (a, b) = (start.max(pos), end.min(pos + len));
        if a < b {
            let text: String = f.text.chars().skip(a - pos).take(b - a).collect();
            out.push(Fragment { text, mark: f.mark });
        }
        pos += len;
    }
    if start > 0 {
        match out.first_mut() {
            Some(f) if !f.mark => f.text.insert(0, '…'),
            _ => out.insert(
                0,
                Fragment {
                    text: "…".into(),
                    mark: false,
                },
            ),
        }
    }
    if end < total {
        match out.last_mut() {
            Some(f) if !f.mark => f.text.push('…'),
            _ => out.push(Fragment {
                text: "…".into(),
                mark: false,
            }),
        }
    }
    out
}

/// Fragments as HTML: text escaped, matches in `<mark>`.
pub fn fragments_html(frags: &[Fragment]) -> String {
    frags
        .iter()
        .map(|f| {
            if f.mark {
                format!("<mark>{}</mark>", escape_html(&f.text))
            } else {
                escape_html(&f.text)
            }
        })
        .collect()
}

/// What this area's server functions need from the server (server build
/// only). The server implements it and provides an `Arc<dyn SearchBackend>` in the
/// Leptos context; the rules are the JSON API's (docs/api.md), and refusals
/// are [`AppError::Refused`] with the API's
/// status and code.
#[cfg(feature = "ssr")]
pub trait SearchBackend: Send + Sync + 'static {
    /// Searches titles, descriptions and transcripts the caller may find.
    fn search(
        &self,
        req: Parts,
        q: String,
        limit: Option<u32>,
    ) -> BoxFuture<'_, Result<SearchResults, AppError>>;
}

/// Searches titles, descriptions and transcripts of the streams the caller
/// may find (see docs/api.md).
#[server(prefix = "/api/fn")]
pub async fn search(q: String, limit: Option<u32>) -> Result<SearchResults, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn SearchBackend>()?
            .search(request()?, q, limit)
            .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: char = '\u{E000}';
    const C: char = '\u{E001}';

    fn frag(text: &str, mark: bool) -> Fragment {
        Fragment {
            text: text.into(),
            mark,
        }
    }

    #[test]
    fn marked_text_becomes_fragments_and_escaped_html() {
        let f = fragments(&format!("a <script>{O}boil{C}</script> & {O}salt{C}"), O, C);
        assert_eq!(
            f,
            vec![
                frag("a <script>", false),
                frag("boil", true),
                frag("</script> & ", false),
                frag("salt", true),
            ]
        );
        assert_eq!(
            fragments_html(&f),
            "a &lt;script&gt;<mark>boil</mark>&lt;/script&gt; &amp; <mark>salt</mark>"
        );
        // Stray markers lose no text and make no empty pieces.
        assert_eq!(
            fragments(&format!("{C}x{O}{O}y{C}{C}"), O, C),
            vec![frag("x", false), frag("y", true)]
        );
        assert_eq!(escape_html("\"'"), "&quot;&#39;");
    }

    #[test]
    fn long_texts_are_cut_around_the_first_match() {
        let short = vec![frag("short ", false), frag("hit", true)];
        assert_eq!(excerpt(short.clone()), short);
        let before = "b".repeat(300);
        let after = "a".repeat(300);
        let out = excerpt(vec![
            frag(&before, false),
            frag("hit", true),
            frag(&after, false),
        ]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].text, format!("…{}", "b".repeat(60)));
        assert_eq!(out[1], frag("hit", true));
        assert_eq!(out[2].text, format!("{}…", "a".repeat(240 - 63)));
    }

    #[test]
    fn queries_and_limits_are_bounded() {
        assert_eq!(validate_query("  pasta "), Ok("pasta".into()));
        assert!(validate_query("   ").is_err());
        assert!(validate_query(&"x".repeat(200)).is_ok());
        assert!(validate_query(&"é".repeat(201)).is_err());
        assert_eq!(validate_limit(None), Ok(20));
        assert_eq!(validate_limit(Some(50)), Ok(50));
        assert!(validate_limit(Some(0)).is_err());
        assert!(validate_limit(Some(51)).is_err());
    }
}
