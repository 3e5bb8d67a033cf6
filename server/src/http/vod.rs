//! `GET /vod/...`: recordings, served from the object store (behind the same
//! playback gate as `/live`).
//!
//! | path | answer |
//! |---|---|
//! | `/vod/{stream}/master.m3u8` | the VOD master playlist |
//! | `/vod/{stream}/{rendition}/index.m3u8` | a VOD media playlist (`EXT-X-PLAYLIST-TYPE:VOD`) |
//! | `/vod/{stream}/{rendition}/init.mp4`, `…/{msn}.m4s` | init segments and segments (immutable, `ETag`, ranges) |
//! | `/vod/{stream}/subs/index.m3u8`, `…/subs/captions.vtt` | the captions (one WebVTT file), when the stream was transcribed |
//! | `/vod/{stream}/recording.mp4` | the progressive MP4, with single-range requests and `Content-Disposition` |
//! | `/vod/{stream}/thumbnail.jpg` | a JPEG from near the start |

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::ApiError;
use super::live::{immutable_media, parse_file, MediaFile};
use super::playback::GatedStream;
use crate::packager::webvtt::SUBTITLES_RENDITION;
use crate::recording::object_key;
use crate::recording::VOD_CAPTIONS_FILE;
use crate::state::AppState;
use crate::store::{ByteRange, ObjectStore, StoreError};

/// VOD playlists change only when a stream goes live again and ends.
const VOD_PLAYLIST: &str = "public, max-age=30";
/// The MP4 is rebuilt if the stream goes live again.
const RECORDING: &str = "public, max-age=300";
/// Bytes read from the store per chunk of a streamed MP4 answer.
const CHUNK: u64 = 1024 * 1024;

const M3U8: &str = "application/vnd.apple.mpegurl";

/// The `/vod` routes.
pub fn routes() -> Router<AppState> {
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([axum::http::Method::GET, axum::http::Method::HEAD])
        .expose_headers([
            header::CONTENT_RANGE,
            header::CONTENT_LENGTH,
            header::ACCEPT_RANGES,
        ]);
    Router::new()
        .route("/vod/{stream}/{file}", get(top_file))
        .route("/vod/{stream}/{rendition}/{file}", get(rendition_file))
        .layer(cors)
}

impl StoreError {
    fn into_api(self, what: &str) -> ApiError {
        match self {
            StoreError::NotFound(_) | StoreError::InvalidKey(_) => {
                ApiError::not_found(format!("no {what}"))
            }
            StoreError::InvalidRange { .. } => ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                self.to_string(),
            ),
            other => {
                tracing::error!(error = %other, "the store failed answering a VOD request");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the recording store is not answering; retry",
                )
            }
        }
    }
}

fn playlist(text: bytes::Bytes) -> Response {
    let mut res = text.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(M3U8));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(VOD_PLAYLIST),
    );
    res
}

async fn top_file(
    State(state): State<AppState>,
    GatedStream(gated): GatedStream,
    Path((_, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = gated.to_string();
    let key = |f: &str| object_key(&id, f).map_err(|e| e.into_api("such recording"));
    match file.as_str() {
        "master.m3u8" => {
            let text = state
                .store
                .get(&key("master.m3u8")?)
                .await
                .map_err(|e| e.into_api(&format!("recording of stream {id}")))?;
            Ok(playlist(text))
        }
        "thumbnail.jpg" => {
            let bytes = state
                .store
                .get(&key("thumbnail.jpg")?)
                .await
                .map_err(|e| e.into_api(&format!("thumbnail for stream {id}")))?;
            let mut res = bytes.into_response();
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(RECORDING));
            Ok(res)
        }
        "recording.mp4" => recording(&state, &id, &headers).await,
        _ => Err(ApiError::not_found(format!("no file {file}"))),
    }
}

async fn rendition_file(
    State(state): State<AppState>,
    GatedStream(gated): GatedStream,
    Path((_, rendition, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = gated.to_string();
    let key =
        object_key(&id, &format!("{rendition}/{file}")).map_err(|e| e.into_api("such file"))?;
    if file == "index.m3u8" {
        let text =
            state.store.get(&key).await.map_err(|e| {
                e.into_api(&format!("playlist {rendition} in the recording of {id}"))
            })?;
        return Ok(playlist(text));
    }
    if rendition == SUBTITLES_RENDITION && file == VOD_CAPTIONS_FILE {
        // Rewritten when the recording is rebuilt: cached like the playlists.
        let text = state
            .store
            .get(&key)
            .await
            .map_err(|e| e.into_api(&format!("the captions of the recording of {id}")))?;
        let mut res = playlist(text);
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/vtt; charset=utf-8"),
        );
        return Ok(res);
    }
    let content_type = match parse_file(&file) {
        Some(MediaFile::Init) => "video/mp4",
        Some(MediaFile::Segment(_)) => "video/iso.segment",
        _ => return Err(ApiError::not_found(format!("no file {file}"))),
    };
    let bytes = state
        .store
        .get(&key)
        .await
        .map_err(|e| e.into_api(&format!("{rendition}/{file} in the recording of {id}")))?;
    Ok(immutable_media(
        crate::origin::Media::new(bytes),
        content_type,
        &headers,
    ))
}

/// A file name for the download: the title's letters, digits, spaces and
/// `-_.`, at most 80 characters, else the stream id.
pub fn download_name(title: &str, id: &str) -> String {
    let clean: String = title
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'))
        .take(80)
        .collect();
    let clean = clean.trim().trim_matches('.').to_string();
    if clean.is_empty() {
        format!("onair-{id}.mp4")
    } else {
        format!("{clean}.mp4")
    }
}

async fn recording(state: &AppState, id: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let key = object_key(id, "recording.mp4").map_err(|e| e.into_api("such recording"))?;
    let what = format!("MP4 for stream {id} (yet)");
    let meta = state
        .store
        .head(&key)
        .await
        .map_err(|e| e.into_api(&what))?;
    let total = meta.size;
    let title = match state.db.get_stream(id).await {
        Ok(Some(s)) => s.title,
        _ => String::new(),
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(ByteRange::parse_header);
    let (status, first, last) = match range.map(|r| r.resolve(total)) {
        None => (StatusCode::OK, 0, total.saturating_sub(1)),
        Some(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
        Some(None) => {
            let mut res = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the recording has {total} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(res);
        }
    };
    let len = if total == 0 { 0 } else { last - first + 1 };
    let body = stream_body(state.store.clone(), key, first, last, total);
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(RECORDING));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{total}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        download_name(&title, id)
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// The bytes `first..=last` of an object, read from the store a chunk at a time.
fn stream_body(
    store: std::sync::Arc<dyn ObjectStore>,
    key: crate::store::ObjectKey,
    first: u64,
    last: u64,
    total: u64,
) -> Body {
    if total == 0 {
        return Body::empty();
    }
    let chunks = futures::stream::unfold(Some(first), move |next| {
        let store = store.clone();
        let key = key.clone();
        async move {
            let start = next?;
            let end = (start + CHUNK - 1).min(last);
            match store
                .get_range(&key, ByteRange::Inclusive(start, end))
                .await
            {
                Ok(part) => {
                    let following = (end < last).then_some(end + 1);
                    Some((Ok::<_, std::io::Error>(part.bytes), following))
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "reading the recording failed mid-answer");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    Body::from_stream(chunks)
}

#[cfg(test)]
mod tests {
    use super::download_name;

    #[test]
    fn download_names_are_safe() {
        assert_eq!(
            download_name("My \"great\" show/1", "x"),
            "My great show1.mp4"
        );
        assert_eq!(download_name("ü…", "abc"), "onair-abc.mp4");
        assert_eq!(download_name("..", "abc"), "onair-abc.mp4");
    }
}
