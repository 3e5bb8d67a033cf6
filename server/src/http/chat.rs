//! `/api/v1/streams/{id}/chat`: a stream's chat rules and moderators
//! (owner or admin), and `/chat/log`, its moderation log. The live chat
//! itself is on the events socket ([`crate::realtime`]).

use app::chat::{ChatAdmin, ModerationEntry};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

use super::auth::MaybeUser;
use super::error::ApiError;
use super::json::ApiJson;
use crate::service::chat;
use crate::state::AppState;

/// The routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/streams/{id}/chat", get(read).put(write))
        .route("/streams/{id}/chat/log", get(log))
}

/// `GET /api/v1/streams/{id}/chat`.
async fn read(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<Json<ChatAdmin>, ApiError> {
    Ok(Json(chat::settings(&state.db, user.as_ref(), &id).await?))
}

/// `PUT /api/v1/streams/{id}/chat`.
async fn write(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChatAdmin>,
) -> Result<Json<ChatAdmin>, ApiError> {
    Ok(Json(
        chat::set_settings(&state.db, &state.rooms, user.as_ref(), &id, body).await?,
    ))
}

/// `GET /api/v1/streams/{id}/chat/log`.
async fn log(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<ModerationEntry>>, ApiError> {
    Ok(Json(chat::log(&state.db, user.as_ref(), &id).await?))
}
