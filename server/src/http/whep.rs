//! WHEP playback's HTTP side: `POST /api/v1/streams/{id}/whep` with a
//! viewer's SDP offer, `DELETE` on the resource it answers with. Access is
//! the LL-HLS gate's rule ([`super::playback::check_access`]): a private
//! stream needs its playback token, as `Authorization: Bearer <token>` or
//! `?token=`. The WebRTC work is [`crate::webrtc`]'s.
//!
//! Cluster mode: a stream not live on this node is played through the
//! node's relay of it from the owner (`Endpoint::play_relayed`); the owner
//! is found and asked through [`crate::forward::Forwarder`] (the lease's
//! URL, a playback token this node signs, the `x-onair-edge` header: an
//! offer carrying it is never relayed again).

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
use crate::forward::whep::WhepPosted;
use crate::forward::{ForwardError, Forwarder, Owner, EDGE_HEADER};
use crate::state::AppState;
use crate::webrtc::{OwnerAnswer, OwnerLink, WhepError};
use std::sync::Arc;

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
            WhepError::OwnerUnknown(_) => (StatusCode::SERVICE_UNAVAILABLE, "owner_unknown"),
            WhepError::OwnerUnreachable(_) => (StatusCode::BAD_GATEWAY, "owner_unreachable"),
            WhepError::OwnerRefused { status, .. } => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
                "owner_refused",
            ),
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
    // Not live here, another node may own it (cluster mode): a relay from
    // the owner, unless this request was relayed here already.
    let relayed = match &state.forward {
        Some(forward) if !state.ingest.is_publishing(&id) && !headers.contains_key(EDGE_HEADER) => {
            let (token, _) = state
                .accounts
                .playback
                .issue(&id, OWNER_TOKEN_TTL, unix_now());
            let link = Arc::new(ForwardLink {
                forward: forward.clone(),
                token,
                owner: tokio::sync::OnceCell::new(),
            });
            Some(endpoint.play_relayed(&id, content_type, &body, link).await)
        }
        _ => None,
    };
    let played = match relayed {
        Some(r) => r,
        None => endpoint.play(&id, content_type, &body),
    };
    match played {
        Ok(accepted) => super::whip::sdp_created(
            accepted.answer,
            &format!("/api/v1/streams/{id}/whep/{}", accepted.resource),
        ),
        Err(e) => refusal(e),
    }
}

/// How long the playback token a relay's offer carries to the owner lives
/// (it is checked once, when the owner answers the offer).
const OWNER_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(120);

/// The way to a stream's owner for a relay: the forwarder's client and
/// lease lookup, with a playback token this node signed.
#[derive(Debug)]
struct ForwardLink {
    forward: Arc<Forwarder>,
    token: String,
    /// Looked up once: the offer and the `DELETE` go to the same node.
    owner: tokio::sync::OnceCell<Owner>,
}

impl ForwardLink {
    async fn owner(&self, stream: &str) -> Result<&Owner, WhepError> {
        self.owner
            .get_or_try_init(|| async {
                self.forward.owner_of(stream).await.map_err(|e| match e {
                    ForwardError::NotLive(id) => WhepError::NotLive(id),
                    ForwardError::OwnerUnknown(m) => WhepError::OwnerUnknown(m),
                    other => WhepError::OwnerUnreachable(other.to_string()),
                })
            })
            .await
    }
}

#[async_trait::async_trait]
impl OwnerLink for ForwardLink {
    async fn url(&self, stream: &str) -> Result<String, WhepError> {
        Ok(self.owner(stream).await?.url.clone())
    }

    async fn offer(&self, stream: &str, offer: String) -> Result<OwnerAnswer, WhepError> {
        let owner = self.owner(stream).await?;
        let posted = self
            .forward
            .whep_offer(owner, stream, offer, &self.token)
            .await
            .map_err(|e| WhepError::OwnerUnreachable(e.to_string()))?;
        match posted {
            WhepPosted::Answer { answer, location } => Ok(OwnerAnswer { answer, location }),
            WhepPosted::Refused { status, body } => {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let message = v["error"]["message"]
                    .as_str()
                    .unwrap_or("no reason given")
                    .to_string();
                Err(match status {
                    404 | 409 => WhepError::NotLive(stream.to_string()),
                    _ => WhepError::OwnerRefused { status, message },
                })
            }
        }
    }

    async fn delete(&self, location: &str) {
        if let Some(owner) = self.owner.get() {
            self.forward.whep_delete(owner, location).await;
        }
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
