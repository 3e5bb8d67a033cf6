//! `GET /live/...`: the live window over HTTP, with LL-HLS blocking reload.
//!
//! | path | answer |
//! |---|---|
//! | `/live/{stream}/master.m3u8` | the master playlist |
//! | `/live/{stream}/{rendition}/index.m3u8` | media playlist; `_HLS_msn`, `_HLS_part`, `_HLS_skip=YES` |
//! | `/live/{stream}/{rendition}/init.mp4` | init segment (`init-<n>.mp4` after codec parameters changed) |
//! | `/live/{stream}/{rendition}/{msn}.m4s` | a complete segment |
//! | `/live/{stream}/{rendition}/{msn}.{part}.m4s` | a part (the preload-hinted one waits) |
//! | `/live/{stream}/subs/index.m3u8`, `/live/{stream}/subs/{msn}.vtt` | the captions' WebVTT rendition |
//!
//! A stream this node does not have live may be owned by another node
//! (cluster mode): those requests go to [`super::forwarded`].
//!
//! Media answers carry a strong `ETag` (a hash of the bytes) and honour
//! `If-None-Match` (304) and single-range `Range` requests (206, or 416 when
//! unsatisfiable; `If-Range` with another ETag gets the whole body).
//!
//! Playlists are sent gzip-compressed to clients that accept it (with
//! `Vary: Accept-Encoding`); media is sent as it is. Error answers carry
//! `Cache-Control: no-store`: a 404 or 503 for a part that exists a moment
//! later must never be served from a cache.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;

use super::error::ApiError;
use super::playback::GatedStream;
use crate::forward::Kind;
use crate::origin::{Media, OriginError, PlaylistQuery};
use crate::packager::webvtt::SUBTITLES_RENDITION;
use crate::state::AppState;
use crate::store::ByteRange;

/// Media that never changes once published.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A blocking response names the exact part it waited for, so a CDN may cache it
/// keyed on the query for a few seconds.
pub(crate) const BLOCKING_PLAYLIST: &str = "public, max-age=6";
/// A plain reload must always revalidate.
pub(crate) const LIVE_PLAYLIST: &str = "no-cache";
/// Errors are never stored: what is missing now may exist in a moment.
const ERROR: &str = "no-store";

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

/// `Cache-Control: no-store` on every error answer (a response-mapping
/// layer: `playback::routes` puts it around the gate, so the gate's own
/// refusals carry it too).
pub(crate) async fn no_store_errors(mut res: Response) -> Response {
    if res.status().is_client_error() || res.status().is_server_error() {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(ERROR));
    }
    res
}

/// Whether `Accept-Encoding` takes gzip: `gzip` (or `x-gzip`) with a
/// non-zero quality, or else `*` with a non-zero quality.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut fields = item.split(';');
            let coding = fields.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = fields
                .filter_map(|f| {
                    let (k, v) = f.split_once('=')?;
                    (k.trim().eq_ignore_ascii_case("q")).then(|| v.trim().parse::<f32>().ok())?
                })
                .next()
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => return q > 0.0,
                "*" => star = Some(q > 0.0),
                _ => {}
            }
        }
    }
    star.unwrap_or(false)
}

/// A playlist answer: gzip when the client takes it, `Vary: Accept-Encoding`
/// either way (a cache keeps one copy per encoding).
pub(crate) fn playlist(
    text: Bytes,
    gzip: impl FnOnce() -> Bytes,
    req: &HeaderMap,
    cache: &'static str,
) -> Response {
    let mut res = if accepts_gzip(req) {
        let mut res = gzip().into_response();
        res.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        res
    } else {
        text.into_response()
    };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(M3U8));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    res
}

/// A playlist held as text: compressed per answer (the master and caption
/// playlists, each fetched about once per viewer).
pub(crate) fn text_playlist(text: String, req: &HeaderMap, cache: &'static str) -> Response {
    let text = Bytes::from(text);
    let zipped = text.clone();
    playlist(text, move || crate::origin::gzip(&zipped), req, cache)
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

async fn master(
    State(state): State<AppState>,
    GatedStream(gated): GatedStream,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = gated.to_string();
    let Some(live) = state.origin.get(&id) else {
        // Not live here: another node may own it (cluster mode).
        return Ok(super::forwarded::master(&state, &id, &headers).await);
    };
    super::forwarded::count_served(&headers, Kind::Master);
    let text = live
        .master()
        .ok_or_else(|| ApiError::not_found(format!("stream {id} has no output yet")))?;
    Ok(text_playlist(text, &headers, LIVE_PLAYLIST))
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
    GatedStream(gated): GatedStream,
    Path((_, rendition)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = gated.to_string();
    let q = parse_query(&params)?;
    let Some(live) = state.origin.get(&id) else {
        return Ok(super::forwarded::media_playlist(&state, &id, &rendition, q, &headers).await);
    };
    super::forwarded::count_served(&headers, Kind::Playlist);
    if rendition == SUBTITLES_RENDITION {
        // A plain live playlist (no parts, no blocking reload).
        let text = live
            .subtitle_playlist()
            .ok_or_else(|| ApiError::not_found(format!("stream {id} has no captions")))?;
        return Ok(text_playlist(text, &headers, LIVE_PLAYLIST));
    }
    let shared = live.media_playlist_shared(&rendition, q).await?;
    let cache = if q.msn.is_some() {
        BLOCKING_PLAYLIST
    } else {
        LIVE_PLAYLIST
    };
    Ok(playlist(shared.bytes(), || shared.gzip(), &headers, cache))
}

/// `init.mp4` (or `init-<n>.mp4`), `{msn}.m4s` or `{msn}.{part}.m4s`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MediaFile {
    Init,
    Segment(u64),
    Part(u64, usize),
}

pub(crate) fn parse_file(name: &str) -> Option<MediaFile> {
    if name == "init.mp4" {
        return Some(MediaFile::Init);
    }
    if let Some(n) = name
        .strip_prefix("init-")
        .and_then(|r| r.strip_suffix(".mp4"))
    {
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
        // `init-<n>.mp4`, or `init-<msn>-<n>.mp4` in a later session.
        let ok = match n.split_once('-') {
            None => digits(n),
            Some((a, b)) => digits(a) && digits(b),
        };
        return ok.then_some(MediaFile::Init);
    }
    let stem = name.strip_suffix(".m4s")?;
    match stem.split_once('.') {
        None => stem.parse().ok().map(MediaFile::Segment),
        Some((m, p)) => Some(MediaFile::Part(m.parse().ok()?, p.parse().ok()?)),
    }
}

async fn media_file(
    State(state): State<AppState>,
    GatedStream(gated): GatedStream,
    Path((_, rendition, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = gated.to_string();
    let Some(live) = state.origin.get(&id) else {
        return Ok(super::forwarded::media_file(&state, &id, &rendition, &file, &headers).await);
    };
    if rendition == SUBTITLES_RENDITION {
        let bytes = file
            .strip_suffix(".vtt")
            .and_then(|m| m.parse::<u64>().ok())
            .and_then(|msn| live.subtitle_segment(msn))
            .ok_or_else(|| ApiError::not_found(format!("no caption segment {file}")))?;
        return Ok(immutable_media(bytes, "text/vtt; charset=utf-8", &headers));
    }
    let kind = parse_file(&file).ok_or_else(|| ApiError::not_found(format!("no file {file}")))?;
    let media: Media = match kind {
        MediaFile::Init => live.init(&rendition, &file).ok_or_else(|| {
            ApiError::not_found(format!("no init segment {file} for {rendition}"))
        })?,
        MediaFile::Segment(msn) => live.segment(&rendition, msn).ok_or_else(|| {
            ApiError::not_found(format!("segment {msn} is not in the live window"))
        })?,
        MediaFile::Part(msn, part) => live.part(&rendition, msn, part).await?,
    };
    let counted = match kind {
        MediaFile::Init => Kind::Init,
        MediaFile::Segment(_) => Kind::Segment,
        MediaFile::Part(..) => Kind::Part,
    };
    super::forwarded::count_served(&headers, counted);
    let content_type = if matches!(kind, MediaFile::Init) {
        "video/mp4"
    } else {
        "video/iso.segment"
    };
    Ok(immutable_media(media, content_type, &headers))
}

fn etag_matches(list: &str, tag: &str) -> bool {
    list.split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == tag)
}

/// Answers a media request: 200, 304 for a matching `If-None-Match`, 206 for
/// one satisfiable range, 416 for an unsatisfiable one.
pub(crate) fn immutable_media(
    media: Media,
    content_type: &'static str,
    req: &HeaderMap,
) -> Response {
    let Media { bytes, etag } = media;
    let tag: &str = &etag;
    let header_str = |name| req.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let mut res = if header_str(header::IF_NONE_MATCH).is_some_and(|l| etag_matches(l, tag)) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let if_range_ok = header_str(header::IF_RANGE).is_none_or(|t| t.trim() == tag);
        let range = header_str(header::RANGE)
            .filter(|_| if_range_ok)
            .and_then(ByteRange::parse_header);
        let total = bytes.len() as u64;
        match range.map(|r| r.resolve(total)) {
            None => bytes.into_response(),
            Some(Some((first, last))) => {
                let body = bytes.slice(first as usize..=last as usize);
                let mut res = (StatusCode::PARTIAL_CONTENT, body).into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{total}")) {
                    res.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                res
            }
            Some(None) => {
                let mut res = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                    res.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                res
            }
        }
    };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::etag;
    use bytes::Bytes;

    #[test]
    fn file_names_parse() {
        assert_eq!(parse_file("init.mp4"), Some(MediaFile::Init));
        assert_eq!(parse_file("init-2.mp4"), Some(MediaFile::Init));
        assert_eq!(parse_file("init-.mp4"), None);
        assert_eq!(parse_file("init-x.mp4"), None);
        assert_eq!(parse_file("init-12-0.mp4"), Some(MediaFile::Init));
        assert_eq!(parse_file("init-12-.mp4"), None);
        assert_eq!(parse_file("init-1-2-3.mp4"), None);
        assert_eq!(parse_file("12.m4s"), Some(MediaFile::Segment(12)));
        assert_eq!(parse_file("12.3.m4s"), Some(MediaFile::Part(12, 3)));
        for bad in ["x.m4s", "1.2.3.m4s", "12.mp4", "-1.m4s", "../etc.m4s", ""] {
            assert_eq!(parse_file(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn media_answers_validators_and_ranges() {
        let bytes = Bytes::from_static(b"0123456789");
        let get = |pairs: &[(header::HeaderName, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(k.clone(), HeaderValue::from_str(v).expect("value"));
            }
            immutable_media(Media::new(bytes.clone()), "video/iso.segment", &h)
        };
        let body = |res: Response| async move {
            axum::body::to_bytes(res.into_body(), 1024)
                .await
                .expect("body")
        };
        let full = get(&[]);
        assert_eq!(full.status(), StatusCode::OK);
        let tag = full.headers()[header::ETAG]
            .to_str()
            .expect("etag")
            .to_string();
        assert_eq!(full.headers()[header::ACCEPT_RANGES], "bytes");
        assert_eq!(body(full).await, "0123456789");

        let cached = get(&[(header::IF_NONE_MATCH, &format!("\"x\", {tag}"))]);
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
        assert!(body(cached).await.is_empty());
        assert_eq!(
            get(&[(header::IF_NONE_MATCH, "\"other\"")]).status(),
            StatusCode::OK
        );

        let part = get(&[(header::RANGE, "bytes=2-4")]);
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(part.headers()[header::CONTENT_RANGE], "bytes 2-4/10");
        assert_eq!(body(part).await, "234");
        assert_eq!(body(get(&[(header::RANGE, "bytes=-3")])).await, "789");

        let bad = get(&[(header::RANGE, "bytes=10-")]);
        assert_eq!(bad.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(bad.headers()[header::CONTENT_RANGE], "bytes */10");
        // A stale If-Range gets the whole, current body.
        let stale = get(&[(header::RANGE, "bytes=0-1"), (header::IF_RANGE, "\"old\"")]);
        assert_eq!(stale.status(), StatusCode::OK);
        let fresh = get(&[(header::RANGE, "bytes=0-1"), (header::IF_RANGE, &tag)]);
        assert_eq!(fresh.status(), StatusCode::PARTIAL_CONTENT);
        assert_ne!(etag(b"0123456788"), tag, "different bytes, different tag");
    }

    #[test]
    fn accept_encoding_is_read_with_its_qualities() {
        let h = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(v).expect("value"),
            );
            h
        };
        for yes in [
            "gzip",
            "gzip, deflate, br",
            "br;q=1.0, GZIP;q=0.5",
            "*",
            "identity, *;q=0.1",
            "x-gzip",
        ] {
            assert!(accepts_gzip(&h(yes)), "{yes}");
        }
        for no in [
            "",
            "identity",
            "br",
            "gzip;q=0",
            "gzip;q=0.000, *",
            "*;q=0",
            "deflate;q=1",
        ] {
            assert!(!accepts_gzip(&h(no)), "{no}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn playlists_are_gzipped_for_clients_that_take_it() {
        let text = "#EXTM3U\n".repeat(50);
        let mut req = HeaderMap::new();
        let plain = text_playlist(text.clone(), &req, LIVE_PLAYLIST);
        assert_eq!(plain.headers()[header::VARY], "accept-encoding");
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        req.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, br"),
        );
        let zipped = text_playlist(text.clone(), &req, LIVE_PLAYLIST);
        assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(zipped.headers()[header::VARY], "accept-encoding");
        assert_eq!(zipped.headers()[header::CONTENT_TYPE], M3U8);
        let body = axum::body::to_bytes(zipped.into_body(), 1 << 20)
            .await
            .expect("body");
        assert!(body.len() < text.len() / 4, "{} bytes", body.len());
        let mut unzipped = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut unzipped)
            .expect("gzip");
        assert_eq!(unzipped, text);
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
