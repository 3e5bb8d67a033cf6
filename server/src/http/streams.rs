//! `/api/v1/streams...`: create, read, list, change and delete streams,
//! regenerate the ingest token, and get the URL to watch. The work and the
//! permission rules are in [`crate::service::streams`].

use app::health::StreamHealth;
use app::recordings::Recording;
use app::streams::{EncoderInfo, NewStream, Stream, StreamList, StreamPatch, WatchInfo};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::auth::{Info, MaybeUser};
use super::error::ApiError;
use super::json::{ApiJson, ApiQuery};
use crate::service::recordings;
use crate::service::streams::{self, ListParams, StreamError};
use crate::state::AppState;

/// The routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/streams", get(list).post(create))
        .route(
            "/streams/{id}",
            get(read).patch(update).delete(delete_stream),
        )
        .route("/streams/{id}/token", post(regenerate_token))
        .route("/streams/{id}/watch", get(watch))
        .route("/streams/{id}/encoder", get(encoder))
        .route("/streams/{id}/share", post(share))
        .route("/streams/{id}/health", get(health))
        .route(
            "/streams/{id}/recording",
            get(read_recording).delete(delete_recording),
        )
}

/// `GET /api/v1/streams/{id}/encoder`: the RTMP, RTMPS and SRT URLs and the
/// stream key for OBS and other encoders (owner or admin).
async fn encoder(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Info(info): Info,
    Path(id): Path<String>,
) -> Result<Json<EncoderInfo>, ApiError> {
    let listeners = streams::EncoderListeners::of(&state.ingest);
    Ok(Json(
        streams::encoder(
            &state.db,
            &state.accounts,
            user.as_ref(),
            &id,
            &info,
            &listeners,
        )
        .await?,
    ))
}

/// `POST /api/v1/streams/{id}/share`: a watch link with a playback token
/// that lasts the asked time (owner or admin).
async fn share(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Info(info): Info,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<app::streams::ShareRequest>,
) -> Result<Json<app::streams::ShareLink>, ApiError> {
    Ok(Json(
        streams::share(&state.db, &state.accounts, user.as_ref(), &id, &info, &body).await?,
    ))
}

/// `GET /api/v1/streams/{id}/health`: the live input as measured (owner or admin).
async fn health(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<Json<StreamHealth>, ApiError> {
    Ok(Json(
        streams::health(&state.db, user.as_ref(), &id, Some(&state.ingest)).await?,
    ))
}

/// `GET /api/v1/streams/{id}/recording`.
async fn read_recording(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<Json<Recording>, ApiError> {
    Ok(Json(
        recordings::get(&state.db, &state.accounts, user.as_ref(), &id).await?,
    ))
}

/// `DELETE /api/v1/streams/{id}/recording`.
async fn delete_recording(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    recordings::delete(&state.db, &state.recorder, user.as_ref(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl From<StreamError> for ApiError {
    fn from(e: StreamError) -> Self {
        let message = e.to_string();
        match e {
            StreamError::Unauthenticated => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
            }
            StreamError::NotFound(_) | StreamError::UserNotFound(_) => ApiError::not_found(message),
            StreamError::NotOwner | StreamError::CannotBroadcast => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            StreamError::Live => ApiError::new(StatusCode::CONFLICT, "stream_live", message),
            StreamError::Invalid(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                message,
            ),
            StreamError::BadQuery(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
            }
            StreamError::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            StreamError::Db(db) => (*db).into(),
        }
    }
}

/// `POST /api/v1/streams`.
async fn create(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    ApiJson(body): ApiJson<NewStream>,
) -> Result<Response, ApiError> {
    let stream = streams::create(&state.db, user.as_ref(), body).await?;
    let location = format!("/api/v1/streams/{}", stream.id);
    let mut res = (StatusCode::CREATED, Json(stream)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// `GET /api/v1/streams/{id}`.
async fn read(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<Json<Stream>, ApiError> {
    Ok(Json(streams::read(&state.db, user.as_ref(), &id).await?))
}

/// `GET /api/v1/streams`: public streams, or with `mine=true` the caller's own.
async fn list(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<StreamList>, ApiError> {
    Ok(Json(streams::list(&state.db, user.as_ref(), q).await?))
}

/// `PATCH /api/v1/streams/{id}`.
async fn update(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<StreamPatch>,
) -> Result<Json<Stream>, ApiError> {
    let stream = streams::update(
        &state.db,
        &state.accounts,
        Some(&state.rooms),
        user.as_ref(),
        &id,
        patch,
    )
    .await?;
    Ok(Json(stream))
}

/// `DELETE /api/v1/streams/{id}`.
async fn delete_stream(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    streams::delete(
        &state.db,
        &state.accounts,
        Some(&state.recorder),
        user.as_ref(),
        &id,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/streams/{id}/token`.
async fn regenerate_token(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<Json<Stream>, ApiError> {
    Ok(Json(
        streams::regenerate_token(&state.db, user.as_ref(), &id).await?,
    ))
}

/// `GET /api/v1/streams/{id}/watch`.
async fn watch(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Info(info): Info,
    Path(id): Path<String>,
) -> Result<Json<WatchInfo>, ApiError> {
    let watch = streams::watch(
        &state.db,
        &state.accounts,
        user.as_ref(),
        &id,
        &info,
        state.ingest.captions_on(),
    )
    .await?;
    Ok(Json(watch))
}
