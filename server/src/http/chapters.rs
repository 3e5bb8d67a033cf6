//! Chapters in the JSON API (see docs/api.md):
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v1/streams/{id}/chapters[?token=]` | the chapters and where making them stands (who may watch) |
//! | `GET /api/v1/streams/{id}/chapters.vtt[?token=]` | the WebVTT `chapters` track (404 `no_chapters` before any) |
//! | `POST /api/v1/streams/{id}/chapters` | starts making them (owner, admins): `202` |
//! | `PUT /api/v1/streams/{id}/chapters` | replaces them with the owner's list: `200`, `422 invalid_chapters` |

use app::chapters::{render_vtt, ChaptersEdit, ChaptersStatus};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::MaybeUser;
use super::error::ApiError;
use super::json::{ApiJson, ApiQuery};
use crate::service::chapters::{self, ChaptersError};
use crate::state::AppState;
use crate::summary::chapter_jobs::ChaptersEditError;

/// The routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/streams/{id}/chapters", get(status).post(start).put(edit))
        .route("/streams/{id}/chapters.vtt", get(vtt))
}

/// `?token=`: a private stream's playback token.
#[derive(Debug, Default, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

impl From<ChaptersError> for ApiError {
    fn from(e: ChaptersError) -> Self {
        match e {
            ChaptersError::Stream(s) => s.into(),
            ChaptersError::Job(s) => s.into(),
            ChaptersError::Edit(ChaptersEditError::Rule(r)) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_chapters",
                r.to_string(),
            ),
            ChaptersError::Edit(e @ ChaptersEditError::Running) => {
                ApiError::new(StatusCode::CONFLICT, "chapters_running", e.to_string())
            }
            ChaptersError::Edit(ChaptersEditError::Db(db)) => db.into(),
        }
    }
}

/// The chapters' status for whoever may watch the stream.
async fn read(
    state: &AppState,
    user: Option<&crate::service::SessionUser>,
    id: &str,
    token: Option<&str>,
) -> Result<ChaptersStatus, ApiError> {
    Ok(chapters::status(
        &state.db,
        &state.accounts,
        &state.summaries,
        user,
        id,
        token,
    )
    .await?)
}

async fn status(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> Result<Json<ChaptersStatus>, ApiError> {
    Ok(Json(
        read(&state, user.as_ref(), &id, q.token.as_deref()).await?,
    ))
}

async fn vtt(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> Result<Response, ApiError> {
    let status = read(&state, user.as_ref(), &id, q.token.as_deref()).await?;
    let Some(list) = status.chapters else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_chapters",
            "this stream has no chapters yet",
        ));
    };
    let end = state
        .db
        .get_recording(&id)
        .await
        .map_err(ApiError::from)?
        .map(|r| r.duration_ms);
    let mut res = render_vtt(&list.chapters, end).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/vtt; charset=utf-8"),
    );
    Ok(res)
}

async fn start(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let status = chapters::start(&state.db, &state.summaries, user.as_ref(), &id).await?;
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}

async fn edit(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChaptersEdit>,
) -> Result<Json<ChaptersStatus>, ApiError> {
    Ok(Json(
        chapters::edit(
            &state.db,
            &state.summaries,
            user.as_ref(),
            &id,
            body.chapters,
        )
        .await?,
    ))
}
