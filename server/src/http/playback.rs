//! Playback access for `/live/{stream}/...` and `/vod/{stream}/...`: private
//! streams need a valid,
//! unexpired playback token on every playlist and media request.
//!
//! The token (see [`crate::auth::playback`]) is accepted in two places:
//!
//! - a path prefix: `/live/{stream}/t/{token}/master.m3u8`. Playlists use
//!   relative URIs (`720p/index.m3u8`, `init.mp4`, `12.3.m4s`,
//!   `../480p/index.m3u8`), so every request a player derives from this URL
//!   carries the token with no rewriting, and a CDN caches keyed on the path.
//!   This is the URL `GET /api/v1/streams/{id}/watch` hands out.
//! - a query parameter: `/live/{stream}/master.m3u8?token=...`, for players
//!   that add a query to every request themselves.
//!
//! The gate wraps the `/live` routes of [`super::live`] without changing them.
//! It asks the database for a stream's visibility at most once per
//! [`VisibilityCache`](crate::auth::visibility::VisibilityCache) lifetime (5 s), only for streams this node serves, and
//! keeps using the last answer for a while if the database stops answering.
//! Refusals are JSON errors with the same open CORS headers as the rest of
//! `/live`, so a player on another origin can read them.

use app::ids::StreamId;
use app::streams::Visibility;
use axum::extract::FromRequestParts;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower::ServiceExt;

use super::error::ApiError;
use crate::auth::playback::{unix_now, TokenError};
use crate::state::AppState;

/// A token taken from the path prefix `/live/{stream}/t/{token}/`.
#[derive(Debug, Clone)]
struct PathToken(String);

/// The same open CORS as `live::routes`, around the gate, so its refusals
/// carry it too.
fn cors() -> tower_http::cors::CorsLayer {
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::HEAD])
}

/// The `/live` and `/vod` routes behind the playback gate, plus the token
/// path prefixes.
pub fn routes(state: &AppState) -> Router<AppState> {
    let gated = super::live::routes()
        .merge(super::vod::routes())
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .layer(middleware::map_response(super::live::no_store_errors))
        .layer(cors());
    let inner: Router = gated.clone().with_state(state.clone());
    let vod_inner = inner.clone();
    gated
        .route(
            "/live/{stream}/t/{token}/{*rest}",
            get(move |req: Request| forward(inner.clone(), "live", req)),
        )
        .route(
            "/vod/{stream}/t/{token}/{*rest}",
            get(move |req: Request| forward(vod_inner.clone(), "vod", req)),
        )
}

/// `/{prefix}/{stream}/t/{token}/{rest}` → `/{prefix}/{stream}/{rest}` with
/// the token attached, through the gated routes.
async fn forward(inner: Router, prefix: &'static str, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let mut seg = path.splitn(6, '/');
    let (Some(""), Some(p), Some(stream), Some("t"), Some(token), Some(rest)) = (
        seg.next(),
        seg.next(),
        seg.next(),
        seg.next(),
        seg.next(),
        seg.next(),
    ) else {
        return ApiError::not_found(format!("no {prefix} path {path}")).into_response();
    };
    if p != prefix {
        return ApiError::not_found(format!("no {prefix} path {path}")).into_response();
    }
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let Ok(uri) = format!("/{prefix}/{stream}/{rest}{query}").parse::<Uri>() else {
        return ApiError::not_found(format!("no {prefix} path {path}")).into_response();
    };
    // A fresh request: the outer route's path parameters must not leak into
    // the inner routing (axum would append the inner ones to them).
    let (parts, body) = req.into_parts();
    let mut fresh = Request::new(body);
    *fresh.method_mut() = parts.method;
    *fresh.uri_mut() = uri;
    *fresh.version_mut() = parts.version;
    *fresh.headers_mut() = parts.headers;
    if let Some(info) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        fresh.extensions_mut().insert(*info);
    }
    fresh.extensions_mut().insert(PathToken(token.to_string()));
    match inner.oneshot(fresh).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

/// The raw (still percent-encoded) stream segment of a `/live/...` or
/// `/vod/...` path.
fn stream_segment(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/live/")
        .or_else(|| path.strip_prefix("/vod/"))?;
    rest.split('/').next()
}

/// The stream a `/live` or `/vod` request is for, as the gate decoded and
/// checked it. Handlers take the id from here, never from the path again,
/// so the stream whose access was checked is the stream that is served.
#[derive(Debug, Clone)]
pub struct GatedStream(pub StreamId);

impl<S: Send + Sync> FromRequestParts<S> for GatedStream {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<GatedStream>().cloned().ok_or_else(|| {
            // A route outside the gate: a wiring bug, never served unchecked.
            tracing::error!(path = %parts.uri.path(), "media route reached without the playback gate");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        })
    }
}

fn query_token(uri: &Uri) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// Why playback of a stream is refused (the LL-HLS gate's and WHEP's rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// No such stream.
    #[error("no stream {0}")]
    UnknownStream(String),
    /// The database cannot say.
    #[error("cannot check access to this stream right now; retry")]
    Unavailable,
    /// A private stream and no token.
    #[error("this stream is private: play it through the URL from /api/v1/streams/{{id}}/watch")]
    TokenRequired,
    /// A token past its expiry.
    #[error("the playback token has expired: get a new URL from /api/v1/streams/{{id}}/watch")]
    TokenExpired,
    /// A token that is not this stream's.
    #[error("{0}")]
    TokenInvalid(String),
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        let message = e.to_string();
        match e {
            AccessError::UnknownStream(_) => ApiError::not_found(message),
            AccessError::Unavailable => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            AccessError::TokenRequired => {
                ApiError::new(StatusCode::FORBIDDEN, "playback_token_required", message)
            }
            AccessError::TokenExpired => {
                ApiError::new(StatusCode::FORBIDDEN, "playback_token_expired", message)
            }
            AccessError::TokenInvalid(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "playback_token_invalid", message)
            }
        }
    }
}

/// Whether stream `id` may be played with `token` at `now` (Unix seconds):
/// public and unlisted streams by anyone (`None`), private ones with a
/// valid token (`Some(its expiry)`).
pub async fn check_access(
    state: &AppState,
    id: &str,
    token: Option<&str>,
    now: u64,
) -> Result<Option<u64>, AccessError> {
    let visibility = match state.accounts.visibility.lookup(&state.db, id).await {
        Ok(Some(v)) => v,
        Ok(None) => return Err(AccessError::UnknownStream(id.to_string())),
        Err(e) => {
            tracing::error!(stream = %id, error = %e, "cannot check the stream's visibility");
            return Err(AccessError::Unavailable);
        }
    };
    if visibility != Visibility::Private {
        return Ok(None);
    }
    let token = token.ok_or(AccessError::TokenRequired)?;
    match state.accounts.playback.verify(id, token, now) {
        Ok(exp) => Ok(Some(exp)),
        Err(TokenError::Expired) => Err(AccessError::TokenExpired),
        Err(e) => Err(AccessError::TokenInvalid(e.to_string())),
    }
}

/// Middleware: lets requests for public and unlisted streams through, and for
/// private streams only with a valid token.
async fn gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if req.method() == Method::OPTIONS {
        return next.run(req).await;
    }
    let Some(raw) = stream_segment(req.uri().path()) else {
        return next.run(req).await;
    };
    // One id rule: decoded once, then valid or refused. Whether the stream
    // is live on this node does not matter: access is checked either way.
    let Ok(stream) = StreamId::from_path_segment(raw) else {
        return ApiError::not_found(format!("no stream {raw}")).into_response();
    };
    let id = stream.as_str().to_string();
    req.extensions_mut().insert(GatedStream(stream));
    let token = req
        .extensions()
        .get::<PathToken>()
        .map(|t| t.0.clone())
        .or_else(|| query_token(req.uri()));
    let now = unix_now();
    let expires = match check_access(&state, &id, token.as_deref(), now).await {
        Ok(None) => return next.run(req).await,
        Ok(Some(expires)) => expires,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut res = next.run(req).await;
    cap_max_age(&mut res, expires.saturating_sub(now));
    res
}

/// Shared caches must not keep a private stream's answers past the token's
/// expiry: a longer `max-age` is cut to the time left.
fn cap_max_age(res: &mut Response, remaining: u64) {
    let current = res
        .headers()
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .filter_map(|d| d.trim().strip_prefix("max-age="))
                .find_map(|n| n.parse::<u64>().ok())
        });
    if current.is_some_and(|age| age > remaining) {
        if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={remaining}")) {
            res.headers_mut().insert(header::CACHE_CONTROL, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_and_query_tokens_are_read_from_the_uri() {
        assert_eq!(stream_segment("/live/abc/master.m3u8"), Some("abc"));
        assert_eq!(stream_segment("/live/%38bc/720p/1.m4s"), Some("%38bc"));
        assert_eq!(stream_segment("/vod/abc/recording.mp4"), Some("abc"));
        assert_eq!(stream_segment("/live//x"), Some(""));
        assert_eq!(stream_segment("/other/abc"), None);
        let uri: Uri = "/live/a/720p/index.m3u8?_HLS_msn=3&token=123.abc-_"
            .parse()
            .expect("uri");
        assert_eq!(query_token(&uri).as_deref(), Some("123.abc-_"));
        let none: Uri = "/live/a/master.m3u8".parse().expect("uri");
        assert_eq!(query_token(&none), None);
    }

    #[test]
    fn max_age_is_capped_to_the_token_lifetime() {
        let mut res = Response::new(axum::body::Body::empty());
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
        cap_max_age(&mut res, 600);
        assert_eq!(res.headers()[header::CACHE_CONTROL], "public, max-age=600");
        let mut short = Response::new(axum::body::Body::empty());
        short
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        cap_max_age(&mut short, 600);
        assert_eq!(short.headers()[header::CACHE_CONTROL], "no-cache");
    }
}
