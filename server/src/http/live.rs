//! `GET /live/...`: the live window over HTTP, with LL-HLS blocking reload.
//!
//! | path | answer |
//! |---|---|
//! | `/live/{stream}/master.m3u8` | the master playlist |
//! | `/live/{stream}/{rendition}/index.m3u8` | media playlist; `_HLS_msn`, `_HLS_part`, `_HLS_skip=YES` |
//! | `/live/{stream}/{rendition}/init.mp4` | init segment |
//! | `/live/{stream}/{rendition}/{msn}.m4s` | a complete segment |
//! | `/live/{stream}/{rendition}/{msn}.{part}.m4s` | a part (the preload-hinted one waits) |

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;

use super::error::ApiError;
use crate::origin::{OriginError, PlaylistQuery};
use crate::state::AppState;

/// Media that never changes once published.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A blocking response names the exact part it waited for, so a CDN may cache it
/// keyed on the query for a few seconds.
const BLOCKING_PLAYLIST: &str = "public, max-age=6";
/// A plain reload must always revalidate.
const LIVE_PLAYLIST: &str = "no-cache";

const M3U8: &str = "application/vnd.apple.mpegurl";

/// The `/live` routes.
pub fn routes() -> Router<AppState> {
    // Open CORS on every answer, errors included, so a player on another
    // origin (or behind a CDN) can read a 503 and retry.
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([axum::http::Method::GET, axum::http::Method::HEAD]);
    Router::new()
        .route("/live/{stream}/master.m3u8", get(master))
        .route("/live/{stream}/{rendition}/index.m3u8", get(media_playlist))
        .route("/live/{stream}/{rendition}/{file}", get(media_file))
        .layer(cors)
}

impl From<OriginError> for ApiError {
    fn from(e: OriginError) -> Self {
        match e {
            OriginError::NotFound(m) => ApiError::not_found(m),
            OriginError::BadRequest(m) => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m),
            OriginError::Timeout(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_yet_available",
                format!("timed out waiting for {m}; retry"),
            ),
        }
    }
}

fn with_headers(
    body: impl IntoResponse,
    content_type: &'static str,
    cache: &'static str,
) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

fn stream(
    state: &AppState,
    id: &str,
) -> Result<std::sync::Arc<crate::origin::LiveStream>, ApiError> {
    state
        .origin
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("stream {id} is not live")))
}

async fn master(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let text = stream(&state, &id)?
        .master()
        .ok_or_else(|| ApiError::not_found(format!("stream {id} has no output yet")))?;
    Ok(with_headers(text, M3U8, LIVE_PLAYLIST))
}

/// Parses the LL-HLS query parameters; anything malformed is a 400.
pub fn parse_query(params: &HashMap<String, String>) -> Result<PlaylistQuery, ApiError> {
    let num = |key: &str| -> Result<Option<u64>, ApiError> {
        params
            .get(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        format!("{key}={v} is not a number"),
                    )
                })
            })
            .transpose()
    };
    let part = num("_HLS_part")?
        .map(|p| {
            usize::try_from(p).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "_HLS_part too large",
                )
            })
        })
        .transpose()?;
    Ok(PlaylistQuery {
        msn: num("_HLS_msn")?,
        part,
        skip: matches!(
            params.get("_HLS_skip").map(String::as_str),
            Some("YES") | Some("v2")
        ),
    })
}

async fn media_playlist(
    State(state): State<AppState>,
    Path((id, rendition)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let q = parse_query(&params)?;
    let live = stream(&state, &id)?;
    let text = live.media_playlist(&rendition, q).await?;
    let cache = if q.msn.is_some() {
        BLOCKING_PLAYLIST
    } else {
        LIVE_PLAYLIST
    };
    Ok(with_headers(text, M3U8, cache))
}

/// `init.mp4`, `{msn}.m4s` or `{msn}.{part}.m4s`.
#[derive(Debug, PartialEq, Eq)]
enum MediaFile {
    Init,
    Segment(u64),
    Part(u64, usize),
}

fn parse_file(name: &str) -> Option<MediaFile> {
    if name == "init.mp4" {
        return Some(MediaFile::Init);
    }
    let stem = name.strip_suffix(".m4s")?;
    match stem.split_once('.') {
        None => stem.parse().ok().map(MediaFile::Segment),
        Some((m, p)) => Some(MediaFile::Part(m.parse().ok()?, p.parse().ok()?)),
    }
}

async fn media_file(
    State(state): State<AppState>,
    Path((id, rendition, file)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let live = stream(&state, &id)?;
    let kind = parse_file(&file).ok_or_else(|| ApiError::not_found(format!("no file {file}")))?;
    let bytes: Bytes = match kind {
        MediaFile::Init => live
            .init(&rendition)
            .ok_or_else(|| ApiError::not_found(format!("no init segment for {rendition}")))?,
        MediaFile::Segment(msn) => live.segment(&rendition, msn).ok_or_else(|| {
            ApiError::not_found(format!("segment {msn} is not in the live window"))
        })?,
        MediaFile::Part(msn, part) => live.part(&rendition, msn, part).await?,
    };
    let content_type = if matches!(kind, MediaFile::Init) {
        "video/mp4"
    } else {
        "video/iso.segment"
    };
    Ok(with_headers(bytes, content_type, IMMUTABLE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_parse() {
        assert_eq!(parse_file("init.mp4"), Some(MediaFile::Init));
        assert_eq!(parse_file("12.m4s"), Some(MediaFile::Segment(12)));
        assert_eq!(parse_file("12.3.m4s"), Some(MediaFile::Part(12, 3)));
        for bad in ["x.m4s", "1.2.3.m4s", "12.mp4", "-1.m4s", "../etc.m4s", ""] {
            assert_eq!(parse_file(bad), None, "{bad}");
        }
    }

    #[test]
    fn ll_hls_query_parses_and_rejects_garbage() {
        let p = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let q = parse_query(&p(&[
            ("_HLS_msn", "7"),
            ("_HLS_part", "2"),
            ("_HLS_skip", "YES"),
        ]))
        .expect("valid");
        assert_eq!(
            q,
            PlaylistQuery {
                msn: Some(7),
                part: Some(2),
                skip: true
            }
        );
        assert!(parse_query(&p(&[("_HLS_msn", "x")])).is_err());
        assert!(!parse_query(&p(&[("_HLS_skip", "NO")])).expect("valid").skip);
    }
}
