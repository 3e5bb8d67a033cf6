//! WHIP (RFC 9725) ingest's HTTP side: `POST /api/v1/streams/{id}/whip`
//! with an SDP offer, `DELETE` on the resource it answers with. The WebRTC
//! work is [`crate::webrtc`]'s; this maps it to HTTP and the API's errors.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::Router;

use super::auth::MaybeUser;
use super::error::ApiError;
use crate::state::AppState;
use crate::webrtc::{Caller, Endpoint, WhipError};

/// The routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/streams/{id}/whip", post(publish))
        .route("/streams/{id}/whip/{resource}", delete(end))
}

impl From<WhipError> for ApiError {
    fn from(e: WhipError) -> Self {
        let message = e.to_string();
        let (status, code) = match &e {
            WhipError::ContentType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            WhipError::MalformedSdp(_) => (StatusCode::BAD_REQUEST, "malformed_sdp"),
            WhipError::Codec(_) => (StatusCode::BAD_REQUEST, "unsupported_codec"),
            WhipError::UnknownStream(_) => (StatusCode::NOT_FOUND, "not_found"),
            WhipError::UnknownSession(_) => (StatusCode::NOT_FOUND, "not_found"),
            WhipError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            WhipError::WrongKey => (StatusCode::FORBIDDEN, "wrong_key"),
            WhipError::AlreadyPublishing => (StatusCode::CONFLICT, "already_publishing"),
            WhipError::TooManySessions(_) => (StatusCode::SERVICE_UNAVAILABLE, "too_many_sessions"),
            WhipError::Internal(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        ApiError::new(status, code, message)
    }
}

/// `201 Created` with an SDP answer and the session's `Location` (for its
/// `DELETE`): the answer to a WHIP publish and to a WHEP play alike.
pub(super) fn sdp_created(answer: String, location: &str) -> Response {
    let mut res = (StatusCode::CREATED, answer).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    res
}

fn endpoint(state: &AppState) -> Result<&std::sync::Arc<Endpoint>, ApiError> {
    state.webrtc.get().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "whip_off",
            "WHIP ingest is off on this server (--webrtc-udp-addr is empty)",
        )
    })
}

fn caller(headers: &HeaderMap, user: Option<crate::service::SessionUser>) -> Caller {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        })
        .filter(|t| !t.is_empty());
    Caller {
        bearer,
        user: user.map(|u| (u.user.id.clone(), u.user.role.as_str().to_string())),
    }
}

fn refusal(e: WhipError) -> Response {
    let unauthenticated = matches!(e, WhipError::Unauthenticated);
    let mut res = ApiError::from(e).into_response();
    if unauthenticated {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

async fn publish(
    State(state): State<AppState>,
    Path(id): Path<String>,
    MaybeUser(user): MaybeUser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let endpoint = match endpoint(&state) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let caller = caller(&headers, user);
    match endpoint.publish(&id, content_type, &caller, &body).await {
        Ok(accepted) => sdp_created(
            accepted.answer,
            &format!("/api/v1/streams/{id}/whip/{}", accepted.resource),
        ),
        Err(e) => refusal(e),
    }
}

async fn end(
    State(state): State<AppState>,
    Path((id, resource)): Path<(String, String)>,
    MaybeUser(user): MaybeUser,
    headers: HeaderMap,
) -> Response {
    let endpoint = match endpoint(&state) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    match endpoint.end(&id, &resource, &caller(&headers, user)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refusal(e),
    }
}
