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

use axum::http::HeaderMap;

use crate::connections::{Permit, Socket};
use crate::state::AppState;

/// The outcome for one upgrade request.
#[derive(Debug)]
pub struct Admission {
    /// The session cookie, if it may be used.
    pub session: Option<String>,
    /// The session is the stream owner's or an admin's.
    pub staff: bool,
    /// The socket's place, held while it is open; `None`: over the cap
    /// (close it with 4429).
    pub permit: Option<Permit>,
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
