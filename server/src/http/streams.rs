//! `/api/v1/streams...`: create, read, list, change and delete streams,
//! regenerate the ingest token, and get the URL to watch.
//!
//! Who may do what:
//!
//! | | anonymous | other user | owner | admin |
//! |---|---|---|---|---|
//! | read, watch a public or unlisted stream | yes | yes | yes | yes |
//! | read, watch a private stream | 404 | 404 | yes | yes |
//! | change, delete, new token | 401 | 403 (404 if private) | yes | yes |
//! | create | 401 | broadcasters and admins; viewers 403 | | |
//!
//! Private streams answer 404 to everyone but the owner and admins, so their
//! existence does not leak.

use app::accounts::FieldError;
use app::streams::{
    validate_description, validate_title, NewStream, Stream, StreamList, StreamOwner, StreamPatch,
    StreamState, Visibility, WatchInfo,
};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::{forwarded_https, CurrentUser, MaybeUser, SessionUser};
use super::error::ApiError;
use super::json::{ApiJson, ApiQuery};
use crate::auth::playback::unix_now;
use crate::db::streams::{StreamChanges, StreamFilter, StreamRow};
use crate::state::AppState;

/// Most streams one list answer holds.
pub const MAX_LIMIT: i64 = 100;
/// Streams in a list answer when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 50;

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
}

/// Why a streams request fails. Mapped to HTTP statuses at the edge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// No such stream, or a private one the caller may not see.
    #[error("no stream {0}")]
    NotFound(String),
    /// The caller may see the stream but not change it.
    #[error("only the owner or an admin may change this stream")]
    NotOwner,
    /// The caller's role may not create streams.
    #[error("viewers cannot create streams; ask an admin for the broadcaster role")]
    CannotBroadcast,
    /// A live stream cannot be deleted.
    #[error("the stream is live; end the broadcast before deleting it")]
    Live,
    /// A field breaks a rule.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// A query parameter is malformed.
    #[error("{0}")]
    BadQuery(String),
}

impl From<StreamError> for ApiError {
    fn from(e: StreamError) -> Self {
        let message = e.to_string();
        match e {
            StreamError::NotFound(_) => ApiError::not_found(message),
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
        }
    }
}

/// The API form of a database row.
pub fn stream_from_row(row: StreamRow, ingest_token: Option<String>) -> Stream {
    Stream {
        visibility: Visibility::parse(&row.visibility).unwrap_or(Visibility::Private),
        state: StreamState::parse(&row.state).unwrap_or(StreamState::Idle),
        id: row.id,
        owner: StreamOwner {
            id: row.owner_id,
            username: row.owner_username.unwrap_or_default(),
        },
        title: row.title,
        description: row.description,
        created_at: row.created_at,
        started_at: row.started_at,
        ended_at: row.ended_at,
        ingest_token,
    }
}

fn can_manage(user: &SessionUser, row: &StreamRow) -> bool {
    user.is_admin() || user.user.id == row.owner_id
}

fn is_private(row: &StreamRow) -> bool {
    // Anything not known to be public or unlisted is treated as private.
    !matches!(
        Visibility::parse(&row.visibility),
        Some(Visibility::Public | Visibility::Unlisted)
    )
}

/// The stream if `user` may see it; 404 otherwise.
async fn load_visible(
    state: &AppState,
    id: &str,
    user: Option<&SessionUser>,
) -> Result<StreamRow, ApiError> {
    let row = state
        .db
        .get_stream(id)
        .await?
        .ok_or_else(|| StreamError::NotFound(id.into()))?;
    if is_private(&row) && !user.is_some_and(|u| can_manage(u, &row)) {
        return Err(StreamError::NotFound(id.into()).into());
    }
    Ok(row)
}

/// The stream if `user` may change it; 404 or 403 otherwise.
async fn load_managed(
    state: &AppState,
    id: &str,
    user: &SessionUser,
) -> Result<StreamRow, ApiError> {
    let row = load_visible(state, id, Some(user)).await?;
    if !can_manage(user, &row) {
        return Err(StreamError::NotOwner.into());
    }
    Ok(row)
}

/// `POST /api/v1/streams`.
async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<NewStream>,
) -> Result<Response, ApiError> {
    if !user.user.role.can_broadcast() {
        return Err(StreamError::CannotBroadcast.into());
    }
    let title = validate_title(&body.title).map_err(StreamError::from)?;
    let description = body.description.unwrap_or_default();
    validate_description(&description).map_err(StreamError::from)?;
    let (row, token) = state
        .db
        .create_stream_with(
            &user.user.id,
            &title,
            &description,
            body.visibility.as_str(),
        )
        .await?;
    tracing::info!(stream = %row.id, owner = %user.user.id, visibility = %row.visibility, "stream created");
    let location = format!("/api/v1/streams/{}", row.id);
    let mut res = (StatusCode::CREATED, Json(stream_from_row(row, Some(token)))).into_response();
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
    let row = load_visible(&state, &id, user.as_ref()).await?;
    Ok(Json(stream_from_row(row, None)))
}

/// The query of `GET /api/v1/streams`.
#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    state: Option<String>,
    mine: Option<bool>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// `GET /api/v1/streams`: public streams, or with `mine=true` the caller's own.
async fn list(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<StreamList>, ApiError> {
    let wanted_state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(StreamState::parse(s).ok_or_else(|| {
            StreamError::BadQuery(format!(
                "state={s}: expected idle, live, ended or interrupted"
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(
            StreamError::BadQuery(format!("limit={limit}: expected 1 to {MAX_LIMIT}")).into(),
        );
    }
    let offset = q.offset.unwrap_or(0);
    if !(0..=100_000).contains(&offset) {
        return Err(StreamError::BadQuery(format!("offset={offset}: expected 0 to 100000")).into());
    }
    let mut filter = StreamFilter {
        state: wanted_state.map(StreamState::as_str),
        limit,
        offset,
        ..Default::default()
    };
    let owner;
    if q.mine == Some(true) {
        let user = user.ok_or(crate::auth::AuthError::Unauthenticated)?;
        owner = user.user.id;
        filter.owner = Some(&owner);
    } else {
        filter.visibility = Some(Visibility::Public.as_str());
    }
    let rows = state.db.list_streams(filter).await?;
    Ok(Json(StreamList {
        streams: rows.into_iter().map(|r| stream_from_row(r, None)).collect(),
    }))
}

/// `PATCH /api/v1/streams/{id}`.
async fn update(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<StreamPatch>,
) -> Result<Json<Stream>, ApiError> {
    load_managed(&state, &id, &user).await?;
    let title = patch
        .title
        .as_deref()
        .map(validate_title)
        .transpose()
        .map_err(StreamError::from)?;
    if let Some(d) = &patch.description {
        validate_description(d).map_err(StreamError::from)?;
    }
    let changes = StreamChanges {
        title,
        description: patch.description,
        visibility: patch.visibility.map(|v| v.as_str().to_string()),
    };
    let visibility_changed = changes.visibility.is_some();
    let row = state
        .db
        .update_stream(&id, changes)
        .await?
        .ok_or_else(|| StreamError::NotFound(id.clone()))?;
    if visibility_changed {
        // This node stops serving the old visibility at once; others within
        // the cache lifetime (5 s).
        state.accounts.visibility.invalidate(&id);
    }
    tracing::info!(stream = %id, by = %user.user.id, "stream updated");
    Ok(Json(stream_from_row(row, None)))
}

/// `DELETE /api/v1/streams/{id}`.
async fn delete_stream(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = load_managed(&state, &id, &user).await?;
    if row.state == StreamState::Live.as_str() {
        return Err(StreamError::Live.into());
    }
    state.db.delete_stream(&id).await?;
    state.accounts.visibility.invalidate(&id);
    tracing::info!(stream = %id, by = %user.user.id, "stream deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/streams/{id}/token`: a new ingest token; the old one stops
/// working for new ingest connections.
async fn regenerate_token(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Stream>, ApiError> {
    load_managed(&state, &id, &user).await?;
    let token = state
        .db
        .regenerate_ingest_token(&id)
        .await?
        .ok_or_else(|| StreamError::NotFound(id.clone()))?;
    let row = state
        .db
        .get_stream(&id)
        .await?
        .ok_or_else(|| StreamError::NotFound(id.clone()))?;
    tracing::info!(stream = %id, by = %user.user.id, "ingest token regenerated");
    Ok(Json(stream_from_row(row, Some(token))))
}

/// `GET /api/v1/streams/{id}/watch`: the master playlist to load, with a
/// playback token for private streams.
async fn watch(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<WatchInfo>, ApiError> {
    let row = load_visible(&state, &id, user.as_ref()).await?;
    let visibility = Visibility::parse(&row.visibility).unwrap_or(Visibility::Private);
    let (path, token, expires_at) = if is_private(&row) {
        let (token, exp) =
            state
                .accounts
                .playback
                .issue(&row.id, state.accounts.playback_ttl, unix_now());
        let expires_at = time::OffsetDateTime::from_unix_timestamp(exp as i64)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        (
            format!("/live/{}/t/{token}/master.m3u8", row.id),
            Some(token),
            expires_at,
        )
    } else {
        (format!("/live/{}/master.m3u8", row.id), None, None)
    };
    let url = format!("{}{path}", base_url(&state, &headers));
    Ok(Json(WatchInfo {
        stream_id: row.id,
        visibility,
        state: StreamState::parse(&row.state).unwrap_or(StreamState::Idle),
        path,
        url,
        token,
        expires_at,
    }))
}

/// `https://host[:port]` without a trailing slash: the public URL if
/// configured, else the request's `Host` (https if a proxy said so). Empty
/// when neither is usable, which leaves the URL relative.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.accounts.public_url {
        return u.as_str().trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| h.parse::<axum::http::uri::Authority>().is_ok());
    match host {
        Some(h) => {
            let scheme = if forwarded_https(headers) {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{h}")
        }
        None => String::new(),
    }
}
