//! The `/live` answers of a node that does not own the stream (cluster
//! mode): the gate has let the request through on this node, and
//! [`crate::forward::Forwarder`] asks the owner (collapsed, media kept).
//! The answers carry this node's own headers, as a local answer would:
//! gzip for playlists, `ETag`, ranges and `immutable` for media. A segment
//! or init segment the owner no longer holds is read from the shared store,
//! where the recording keeps it. The owner's refusals (404, 400, 503) are
//! passed on; an owner that does not answer is a 502, and no lease readable
//! now a 503, both JSON and never stored.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::error::ApiError;
use super::live::{self, parse_file, MediaFile};
use crate::auth::playback::unix_now;
use crate::forward::{Fetched, ForwardError, Kind, EDGE_HEADER};
use crate::origin::{Media, PlaylistQuery};
use crate::packager::webvtt::SUBTITLES_RENDITION;
use crate::state::AppState;

/// How long the playback token this node signs for the owner lives (the
/// same token serves every request of a minute or more).
const OWNER_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(120);

impl From<ForwardError> for ApiError {
    fn from(e: ForwardError) -> Self {
        match e {
            ForwardError::NotLive(_) => ApiError::not_found(e.to_string()),
            ForwardError::OwnerUnknown(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "owner_unknown",
                e.to_string(),
            ),
            ForwardError::OwnerUnreachable { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "owner_unreachable", e.to_string())
            }
        }
    }
}

/// Counts a request another node forwarded here (`onair_edge_served_total`).
pub(crate) fn count_served(headers: &HeaderMap, kind: Kind) {
    if headers.contains_key(EDGE_HEADER) {
        metrics::counter!("onair_edge_served_total", "kind" => kind.label()).increment(1);
    }
}

/// The canonical LL-HLS query of a playlist request (the collapse key and
/// what the owner gets; the token is not part of it).
pub(crate) fn canonical_query(q: PlaylistQuery) -> String {
    let mut parts = Vec::new();
    if let Some(m) = q.msn {
        parts.push(format!("_HLS_msn={m}"));
    }
    if let Some(p) = q.part {
        parts.push(format!("_HLS_part={p}"));
    }
    if q.skip {
        parts.push("_HLS_skip=YES".to_string());
    }
    parts.join("&")
}

/// Asks the owner; `Err` is the answer to send instead (not live, owner
/// gone, or the owner's refusal).
async fn ask(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    path: &str,
    query: &str,
    kind: Kind,
) -> Result<Fetched, Response> {
    let Some(forward) = &state.forward else {
        return Err(ApiError::not_found(format!("stream {id} is not live")).into_response());
    };
    // Forwarded once already: never again (two nodes whose views of the
    // lease differ for a moment must not bounce a request between them).
    if headers.contains_key(EDGE_HEADER) {
        return Err(ApiError::not_found(format!("stream {id} is not live here")).into_response());
    }
    let (token, _) = state
        .accounts
        .playback
        .issue(id, OWNER_TOKEN_TTL, unix_now());
    match forward.get(id, path, query, kind, Some(token)).await {
        Ok(f) => Ok(f),
        Err(e) => {
            if !matches!(e, ForwardError::NotLive(_)) {
                tracing::warn!(stream = %id, error = %e, "cannot forward to the stream's owner");
            }
            Err(ApiError::from(e).into_response())
        }
    }
}

/// The owner's refusal as this node's answer (its status and JSON body).
fn refused(status: u16, body: Bytes) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// `master.m3u8` of a stream another node owns.
pub(crate) async fn master(state: &AppState, id: &str, headers: &HeaderMap) -> Response {
    match ask(state, headers, id, "master.m3u8", "", Kind::Master).await {
        Ok(Fetched::Text(t)) => {
            let text = String::from_utf8_lossy(&t).into_owned();
            live::text_playlist(text, headers, live::LIVE_PLAYLIST)
        }
        Ok(Fetched::Refused { status, body }) => refused(status, body),
        Ok(Fetched::Media(_)) => ApiError::internal("media for a playlist").into_response(),
        Err(res) => res,
    }
}

/// A media playlist of a stream another node owns (blocking reloads
/// included: the owner waits, this node waits on the owner).
pub(crate) async fn media_playlist(
    state: &AppState,
    id: &str,
    rendition: &str,
    q: PlaylistQuery,
    headers: &HeaderMap,
) -> Response {
    let path = format!("{rendition}/index.m3u8");
    let captions = rendition == SUBTITLES_RENDITION;
    let (query, kind) = if captions {
        (String::new(), Kind::Captions)
    } else {
        (canonical_query(q), Kind::Playlist)
    };
    let cache = if q.msn.is_some() && !captions {
        live::BLOCKING_PLAYLIST
    } else {
        live::LIVE_PLAYLIST
    };
    match ask(state, headers, id, &path, &query, kind).await {
        Ok(Fetched::Text(t)) => {
            let zipped = t.clone();
            live::playlist(t, move || crate::origin::gzip(&zipped), headers, cache)
        }
        Ok(Fetched::Refused { status, body }) => refused(status, body),
        Ok(Fetched::Media(_)) => ApiError::internal("media for a playlist").into_response(),
        Err(res) => res,
    }
}

/// A part, segment, init segment or caption segment of a stream another
/// node owns.
pub(crate) async fn media_file(
    state: &AppState,
    id: &str,
    rendition: &str,
    file: &str,
    headers: &HeaderMap,
) -> Response {
    let path = format!("{rendition}/{file}");
    if rendition == SUBTITLES_RENDITION {
        return match ask(state, headers, id, &path, "", Kind::Captions).await {
            Ok(Fetched::Text(t)) => {
                live::immutable_media(Media::new(t), "text/vtt; charset=utf-8", headers)
            }
            Ok(Fetched::Refused { status, body }) => refused(status, body),
            Ok(Fetched::Media(m)) => live::immutable_media(m, "text/vtt; charset=utf-8", headers),
            Err(res) => res,
        };
    }
    let Some(kind) = parse_file(file) else {
        return ApiError::not_found(format!("no file {file}")).into_response();
    };
    let (kind, content_type) = match kind {
        MediaFile::Init => (Kind::Init, "video/mp4"),
        MediaFile::Segment(_) => (Kind::Segment, "video/iso.segment"),
        MediaFile::Part(..) => (Kind::Part, "video/iso.segment"),
    };
    match ask(state, headers, id, &path, "", kind).await {
        Ok(Fetched::Media(m)) => live::immutable_media(m, content_type, headers),
        Ok(Fetched::Refused { status: 404, body }) if kind != Kind::Part => {
            // Older than the owner's window: the recording's copy.
            match from_store(state, id, rendition, file).await {
                Some(m) => live::immutable_media(m, content_type, headers),
                None => refused(404, body),
            }
        }
        Ok(Fetched::Refused { status, body }) => refused(status, body),
        Ok(Fetched::Text(t)) => live::immutable_media(Media::new(t), content_type, headers),
        Err(res) => res,
    }
}

/// A segment or init segment as the recording stored it.
async fn from_store(state: &AppState, id: &str, rendition: &str, file: &str) -> Option<Media> {
    let key = crate::store::uploader::segment_key(id, rendition, file)?;
    match state.store.get(&key).await {
        Ok(bytes) => {
            metrics::counter!("onair_edge_store_reads_total").increment(1);
            Some(Media::new(bytes))
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collapse_key_is_the_canonical_ll_hls_query() {
        let q = |msn, part, skip| canonical_query(PlaylistQuery { msn, part, skip });
        assert_eq!(q(None, None, false), "");
        assert_eq!(q(Some(12), None, false), "_HLS_msn=12");
        assert_eq!(
            q(Some(12), Some(3), true),
            "_HLS_msn=12&_HLS_part=3&_HLS_skip=YES"
        );
        assert_eq!(q(None, None, true), "_HLS_skip=YES");
    }
}
