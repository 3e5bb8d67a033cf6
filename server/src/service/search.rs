//! Search over titles, descriptions and transcripts.
//!
//! Who finds what: everyone finds public streams; a signed-in user also
//! finds their own streams of any visibility; admins find every stream.
//! Unlisted streams are left out for everyone else: they are meant to be
//! reached by link only. Results are sorted by BM25 score, best first.

use app::format::clock;
use app::search::{
    excerpt, fragments, fragments_html, validate_limit, validate_query, SearchField, SearchHit,
    SearchResults,
};
use app::transcripts::moment_url;

use super::streams::StreamError;
use super::SessionUser;
use crate::db::search::{self, SearchRow, SearchScope, MARK_CLOSE, MARK_OPEN};
use crate::db::Database;

fn hit(row: SearchRow, field: SearchField) -> SearchHit {
    let frags = excerpt(fragments(&row.highlighted, MARK_OPEN, MARK_CLOSE));
    let url = match row.start_ms {
        Some(ms) if field == SearchField::Transcript => moment_url(&row.stream, ms, None),
        _ => format!("/watch/{}", row.stream),
    };
    SearchHit {
        html: fragments_html(&frags),
        fragments: frags,
        at: row.start_ms.map(clock),
        url,
        stream_id: row.stream,
        title: row.title,
        owner: row.owner_username,
        state: row.state,
        field,
        start_ms: row.start_ms,
        score: row.score,
    }
}

/// Searches what `user` may find; `q` is 1 to 200 characters, `limit` 1 to 50.
pub async fn search(
    db: &Database,
    user: Option<&SessionUser>,
    q: &str,
    limit: Option<u32>,
) -> Result<SearchResults, StreamError> {
    let query = validate_query(q).map_err(StreamError::BadQuery)?;
    let limit = validate_limit(limit).map_err(StreamError::BadQuery)?;
    let scope = SearchScope {
        user: user.map(|u| u.user.id.as_str()),
        admin: user.is_some_and(SessionUser::is_admin),
    };
    let mut results = Vec::new();
    for (db_field, field) in [
        (search::SearchField::Title, SearchField::Title),
        (search::SearchField::Description, SearchField::Description),
        (search::SearchField::Transcript, SearchField::Transcript),
    ] {
        let rows = db.search(db_field, &query, scope, i64::from(limit)).await?;
        results.extend(rows.into_iter().map(|r| hit(r, field)));
    }
    // Stable: equal scores keep titles before descriptions before lines.
    results.sort_by(|a, b| b.score.total_cmp(&a.score));
    results.truncate(limit as usize);
    Ok(SearchResults { query, results })
}
