//! `GET /api/v1/streams/{id}/analytics` (owner and admins) and
//! `POST /api/v1/beacons` (watch pages whose events socket is down, and the
//! `leave` a closing page sends with `navigator.sendBeacon`).

use std::net::SocketAddr;

use app::analytics::StreamAnalytics;
use app::protocol::beacon::Beacon;
use app::protocol::events::valid_viewer_id;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use super::auth::MaybeUser;
use super::error::ApiError;
use super::json::ApiJson;
use crate::db::streams::valid_id;
use crate::state::AppState;

/// The routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/streams/{id}/analytics", get(stream_analytics))
        .route("/beacons", post(beacon))
}

async fn stream_analytics(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> Result<Json<StreamAnalytics>, ApiError> {
    let out =
        crate::service::analytics::stream(&state.db, &state.analytics, user.as_ref(), &id).await?;
    Ok(Json(out))
}

async fn beacon(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<Beacon>,
) -> Result<StatusCode, ApiError> {
    let invalid = |m: &str| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            m.to_string(),
        )
    };
    if !valid_id(&b.stream_id) {
        return Err(invalid("stream_id is not a stream id"));
    }
    if !valid_viewer_id(&b.viewer_id) {
        return Err(invalid(
            "viewer_id must be 8–64 characters of A–Z, a–z, 0–9, _ and -",
        ));
    }
    // A new session only for a stream that exists.
    if !state.analytics.has_session(&b.stream_id, &b.viewer_id) {
        if b.leave {
            return Ok(StatusCode::NO_CONTENT);
        }
        if state.db.get_stream(&b.stream_id).await?.is_none() {
            return Err(ApiError::not_found(format!("no stream {}", b.stream_id)));
        }
    }
    let peer = peer
        .map(|Extension(ConnectInfo(a))| a.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let source = state.analytics.source(peer, &headers);
    state.analytics.beat(
        &b.stream_id,
        &b.viewer_id,
        user.as_ref().map(|u| u.user.id.as_str()),
        source,
        b.quality.as_ref(),
        b.leave,
    );
    Ok(StatusCode::NO_CONTENT)
}
