//! Middleware: the rate limit on API writes (`--api-write-rate`,
//! `--api-write-burst`; the buckets are `connections::writes`).
//!
//! A write is a POST, PUT, PATCH or DELETE under `/api/v1/`, or a call of a
//! server function that changes something (every one under `/api/fn/` but
//! the reads listed in `READS`, which the pages call as POSTs to load and
//! refresh). Beacons (`POST /api/v1/beacons`) are not counted: a page sends
//! them on its own, many viewers may share an address, and their own bounds
//! apply (docs/api.md). Over the limit: 429 `rate_limited` with
//! `Retry-After`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use leptos::server_fn::ServerFn;

use super::error::ApiError;
use crate::state::AppState;

/// The server functions that only read. A server function missing here is
/// counted as a write: the safe side.
const READS: [&str; 16] = [
    <app::chapters::GetChapters as ServerFn>::PATH,
    <app::accounts::CurrentUser as ServerFn>::PATH,
    <app::analytics::GetDashboard as ServerFn>::PATH,
    <app::analytics::GetStreamAnalytics as ServerFn>::PATH,
    <app::streams::EncoderSettings as ServerFn>::PATH,
    <app::recordings::GetRecording as ServerFn>::PATH,
    <app::streams::GetStream as ServerFn>::PATH,
    <app::summaries::GetSummary as ServerFn>::PATH,
    <app::transcripts::GetTranscript as ServerFn>::PATH,
    <app::streams::LiveStreams as ServerFn>::PATH,
    <app::streams::MyStreams as ServerFn>::PATH,
    <app::health::ReadHealth as ServerFn>::PATH,
    <app::streams::RecentStreams as ServerFn>::PATH,
    <app::search::Search as ServerFn>::PATH,
    <app::streams::UserProfile as ServerFn>::PATH,
    <app::streams::WatchStream as ServerFn>::PATH,
];

/// Whether a request counts as an API write.
pub fn is_write(method: &Method, path: &str) -> bool {
    if path.starts_with(app::serverfn::PREFIX) {
        return !READS.contains(&path);
    }
    let changes = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    changes && path.starts_with("/api/v1/") && path != "/api/v1/beacons"
}

/// Refuses a client's write beyond its budget.
pub async fn limit_api_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !is_write(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(a)| a.ip());
    let ip = state.connections.client_ip(peer, req.headers());
    match state.connections.admit_write(ip) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let secs = crate::auth::ceil_secs(wait);
            tracing::debug!(%ip, path = %req.uri().path(), secs, "API write over the rate limit");
            let mut res = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many changes from this address; try again in {secs} s"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_changes_under_the_api_and_server_functions_but_reads() {
        assert!(is_write(&Method::POST, "/api/v1/streams"));
        assert!(is_write(&Method::PATCH, "/api/v1/streams/abc"));
        assert!(is_write(&Method::DELETE, "/api/v1/streams/abc/recording"));
        assert!(!is_write(&Method::GET, "/api/v1/streams"));
        assert!(!is_write(&Method::POST, "/api/v1/beacons"));
        assert!(!is_write(&Method::POST, "/live/abc/master.m3u8"));
        let read = <app::recordings::GetRecording as ServerFn>::PATH;
        let write = <app::streams::CreateStream as ServerFn>::PATH;
        assert!(!is_write(&Method::POST, read), "{read}");
        assert!(is_write(&Method::POST, write), "{write}");
        // Reading chapters is a read; making and editing them are writes.
        let read = <app::chapters::GetChapters as ServerFn>::PATH;
        assert!(!is_write(&Method::POST, read), "{read}");
        for write in [
            <app::chapters::GenerateChapters as ServerFn>::PATH,
            <app::chapters::EditChapters as ServerFn>::PATH,
        ] {
            assert!(is_write(&Method::POST, write), "{write}");
        }
    }
}
