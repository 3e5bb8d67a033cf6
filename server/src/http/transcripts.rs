//! Transcripts, search and summaries in the JSON API (see docs/api.md):
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v1/streams/{id}/transcript[?token=]` | the lines as JSON (who may watch) |
//! | `GET /api/v1/streams/{id}/transcript.vtt` / `.srt` / `.txt` | downloads, `Content-Disposition: attachment` |
//! | `GET /api/v1/search?q=&limit=` | titles, descriptions and transcript lines, highlighted |
//! | `GET /api/v1/streams/{id}/summary` | the summary and where making one stands (owner, admins) |
//! | `POST /api/v1/streams/{id}/summary` | starts making it: `202` |

use app::search::SearchResults;
use app::summaries::SummaryStatus;
use app::transcripts::{Transcript, TranscriptLine};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::MaybeUser;
use super::error::ApiError;
use super::json::ApiQuery;
use crate::service::summaries::SummariesError;
use crate::service::transcripts::{self, download_name, Format};
use crate::service::{search, summaries};
use crate::state::AppState;
use crate::summary::SummaryError;

/// The routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/streams/{id}/transcript", get(transcript))
        .route(
            "/streams/{id}/transcript.vtt",
            get(|s, u, p, q| download(s, u, p, q, Format::Vtt)),
        )
        .route(
            "/streams/{id}/transcript.srt",
            get(|s, u, p, q| download(s, u, p, q, Format::Srt)),
        )
        .route(
            "/streams/{id}/transcript.txt",
            get(|s, u, p, q| download(s, u, p, q, Format::Txt)),
        )
        .route("/streams/{id}/summary", get(summary).post(start_summary))
        .route("/search", get(search_route))
}

/// `?token=`: a private stream's playback token.
#[derive(Debug, Default, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// `?q=&limit=`.
#[derive(Debug, Default, Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
    limit: Option<u32>,
}

impl From<SummaryError> for ApiError {
    fn from(e: SummaryError) -> Self {
        let message = e.to_string();
        match e {
            SummaryError::Running => {
                ApiError::new(StatusCode::CONFLICT, "summary_running", message)
            }
            SummaryError::NoTranscript => {
                ApiError::new(StatusCode::CONFLICT, "no_transcript", message)
            }
            SummaryError::Db(db) => db.into(),
        }
    }
}

impl From<SummariesError> for ApiError {
    fn from(e: SummariesError) -> Self {
        match e {
            SummariesError::Stream(s) => s.into(),
            SummariesError::Summary(s) => s.into(),
        }
    }
}

async fn transcript(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> Result<Json<Transcript>, ApiError> {
    let t = transcripts::get(
        &state.db,
        &state.accounts,
        user.as_ref(),
        &id,
        q.token.as_deref(),
    )
    .await?;
    Ok(Json(t))
}

async fn download(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TokenQuery>,
    format: Format,
) -> Result<Response, ApiError> {
    let t = transcripts::get(
        &state.db,
        &state.accounts,
        user.as_ref(),
        &id,
        q.token.as_deref(),
    )
    .await?;
    let lines: &[TranscriptLine] = &t.lines;
    let mut res = format.render(lines).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        download_name(&t.title, &id, format)
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

async fn search_route(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    metrics::counter!("onair_search_requests_total").increment(1);
    Ok(Json(
        search::search(&state.db, user.as_ref(), &q.q, q.limit).await?,
    ))
}

async fn summary(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<Json<SummaryStatus>, ApiError> {
    Ok(Json(
        summaries::status(&state.db, &state.summaries, user.as_ref(), &id).await?,
    ))
}

async fn start_summary(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let status = summaries::start(&state.db, &state.summaries, user.as_ref(), &id).await?;
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}
