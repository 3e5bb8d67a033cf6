//! WHEP playback's HTTP side: `POST /api/v1/streams/{id}/whep` with a
//! viewer's SDP offer, `DELETE` on the resource it answers with. Access is
//! the LL-HLS gate's rule ([`super::playback::check_access`]): a private
//! stream needs its playback token, as `Authorization: Bearer <token>` or
//! `?token=`. The WebRTC work is [`crate::webrtc`]'s.

use app::ids::StreamId;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::Router;

use super::error::ApiError;
use super::playback::{check_access, AccessError};
use crate::auth::playback::unix_now;
use crate::state::AppState;
use crate::webrtc::WhepError;

/// The routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/streams/{id}/whep", post(play))
        .route("/streams/{id}/whep/{resource}", delete(stop))
}

impl From<WhepError> for ApiError {
    fn from(e: WhepError) -> Self {
        let message = e.to_string();
        let (status, code) = match &e {
            WhepError::ContentType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            WhepError::MalformedSdp(_) => (StatusCode::BAD_REQUEST, "malformed_sdp"),
            WhepError::Codec(_) => (StatusCode::BAD_REQUEST, "unsupported_codec"),
            WhepError::UnknownStream(_) | WhepError::UnknownSession(_) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            WhepError::NotLive(_) => (StatusCode::CONFLICT, "not_live"),
            WhepError::TokenRequired => (StatusCode::UNAUTHORIZED, "playback_token_required"),
            WhepError::TokenRejected(_) => (StatusCode::FORBIDDEN, "playback_token_invalid"),
            WhepError::TooManyViewers(_) => (StatusCode::SERVICE_UNAVAILABLE, "too_many_viewers"),
            WhepError::Internal(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        ApiError::new(status, code, message)
    }
}

impl From<AccessError> for WhepError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::UnknownStream(id) => WhepError::UnknownStream(id),
            AccessError::TokenRequired => WhepError::TokenRequired,
            AccessError::TokenExpired | AccessError::TokenInvalid(_) => {
                WhepError::TokenRejected(e.to_string())
            }
            AccessError::Unavailable => WhepError::Internal(e.to_string()),
        }
    }
}

fn refusal(e: WhepError) -> Response {
    let unauthenticated = matches!(e, WhepError::TokenRequired);
    let mut res = ApiError::from(e).into_response();
    if unauthenticated {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

/// `Authorization: Bearer <token>`, else `?token=`.
fn token(headers: &HeaderMap, query: &TokenQuery) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        })
        .or_else(|| query.token.clone())
        .filter(|t| !t.is_empty())
}

#[derive(Debug, serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn play(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(endpoint) = state.webrtc.get() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "webrtc_off",
            "WebRTC is off on this server (--webrtc-udp-addr is empty): play over LL-HLS",
        )
        .into_response();
    };
    let checked = match StreamId::from_path_segment(&raw) {
        Ok(id) => {
            let id = id.as_str().to_string();
            let token = token(&headers, &query);
            check_access(&state, &id, token.as_deref(), unix_now())
                .await
                .map(|_| id)
                .map_err(WhepError::from)
        }
        Err(_) => Err(WhepError::UnknownStream(raw.clone())),
    };
    let id = match checked {
        Ok(id) => id,
        Err(e) => {
            e.count();
            tracing::info!(stream = %raw, error = %e, "WHEP play refused");
            return refusal(e);
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match endpoint.play(&id, content_type, &body) {
        Ok(accepted) => super::whip::sdp_created(
            accepted.answer,
            &format!("/api/v1/streams/{id}/whep/{}", accepted.resource),
        ),
        Err(e) => refusal(e),
    }
}

/// The resource id (128 random bits) is the viewer's capability to end it.
async fn stop(
    State(state): State<AppState>,
    Path((id, resource)): Path<(String, String)>,
) -> Response {
    let Some(endpoint) = state.webrtc.get() else {
        return refusal(WhepError::UnknownSession(resource));
    };
    match endpoint.stop(&id, &resource) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refusal(e),
    }
}
