//! What both WebSocket routes (ingest and events) decide before they
//! upgrade: whether the request's session cookie counts, and a place under
//! the per-client socket cap ([`crate::connections`]).
//!
//! - The session counts only if the request passes the CSRF origin rule
//!   ([`super::csrf::allows`]), so another site cannot open a socket with a
//!   visitor's cookie (cross-site WebSocket hijacking).
//! - A session of the stream's owner or an admin takes its place from a pool
//!   of its own, so nobody else's sockets can use it up.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;

use crate::connections::{Admission, Socket};
use crate::state::AppState;

/// The peer address, as the listener gives it.
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn peer_addr(peer: Peer) -> Option<SocketAddr> {
    peer.map(|Extension(ConnectInfo(a))| a)
}

/// `GET /api/v1/streams/{id}/ingest`: admission, then the ingest socket
/// ([`crate::ingest::ingest_route`]).
pub async fn ingest(
    ws: WebSocketUpgrade,
    Path(id): Path<String>,
    headers: HeaderMap,
    peer: Peer,
    State(state): State<AppState>,
) -> Response {
    let admission = admit(&state, Socket::Ingest, &id, peer_addr(peer), &headers).await;
    crate::ingest::ingest_route(
        ws,
        id,
        &headers,
        state.ingest.clone(),
        state.connections.limits.hello_timeout,
        admission,
    )
}

/// `GET /api/v1/streams/{id}/events`: admission, then the events socket
/// ([`crate::realtime::events_route`]).
pub async fn events(
    upgrade: crate::realtime::upgrade::Upgrade,
    Path(id): Path<String>,
    headers: HeaderMap,
    peer: Peer,
    State(state): State<AppState>,
) -> Response {
    let peer = peer_addr(peer);
    let admission = admit(&state, Socket::Events, &id, peer, &headers).await;
    let deps = crate::realtime::EventsDeps {
        db: state.db.clone(),
        rooms: state.rooms.clone(),
        analytics: state.analytics.clone(),
        accounts: state.accounts.clone(),
        hello_timeout: state.connections.limits.hello_timeout,
    };
    crate::realtime::events_route(upgrade, id, &headers, peer, deps, admission)
}

/// Decides for a `kind` socket to `stream_id` from `peer`.
pub async fn admit(
    state: &AppState,
    kind: Socket,
    stream_id: &str,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Admission {
    let session = crate::service::session_cookie(headers)
        .filter(|_| super::csrf::allows(headers, state.accounts.public_url.as_ref()))
        .map(str::to_string);
    let staff = match &session {
        Some(s) => crate::service::streams::session_manages(&state.db, stream_id, s)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "socket admission: cannot look up the session");
                false
            }),
        None => false,
    };
    let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip());
    let ip = state.connections.client_ip(peer, headers);
    let permit = state.connections.admit_socket(kind, ip, staff);
    if permit.is_none() {
        tracing::debug!(stream = %stream_id, %ip, ?kind, "too many sockets from this client");
    }
    Admission {
        session,
        staff,
        permit,
    }
}
