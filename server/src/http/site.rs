//! The site root on the wire: static files, and compression of dynamic answers.
//!
//! [`static_file`] serves the files of the site root; those the manifest
//! ([`crate::bundle::Site`]) names are content-hashed and go out `immutable`,
//! every other file `no-cache`. A `.br` or `.gz` the build wrote next to a
//! file is sent to clients that accept it.
//!
//! [`compress`] compresses dynamic answers (pages, JSON) for clients that
//! accept it, but never `/live` and `/vod` (the origin decides about its own
//! answers) nor WebSocket upgrades; [`revalidate_pages`] marks pages
//! `private, no-cache`.

use std::convert::Infallible;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::Compression;

use crate::bundle::Site;

/// `Cache-Control` of a content-hashed file: its name changes with its bytes.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// `Cache-Control` of every other file: browsers keep it and revalidate.
pub const REVALIDATE: &str = "no-cache";

/// Answers smaller than this are not worth compressing.
pub const MIN_COMPRESS_BYTES: u16 = 256;

/// Serves a GET or HEAD request from the site root (the wasm bundle, CSS, `public/`), or
/// `None` when no such file exists.
///
/// Every answer a file gives is passed on as it is: 200, but also 304 to a
/// browser revalidating its copy and 206/416 to a range request. (Leptos's own
/// file handler turns anything but 200 into its 404 page, so a revalidated
/// `onair_bg.wasm` came back as an HTML 404 and the page never hydrated.)
///
/// A file with a `.br` or `.gz` next to it is sent in the encoding the client
/// prefers (`Content-Encoding`, `Vary: Accept-Encoding`). Content-hashed files
/// are `immutable`; every other file is `no-cache` (browsers keep it but ask
/// each time).
pub async fn static_file(
    site: &Site,
    method: &Method,
    uri: &Uri,
    headers: HeaderMap,
) -> Option<Response> {
    use tower::ServiceExt;
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let mut probe = Request::new(axum::body::Body::empty());
    *probe.method_mut() = method.clone();
    *probe.uri_mut() = uri.clone();
    *probe.headers_mut() = headers;
    let res = tower_http::services::ServeDir::new(&site.root)
        .append_index_html_on_directories(false)
        .precompressed_br()
        .precompressed_gzip()
        .oneshot(probe)
        .await;
    let mut res = match res {
        Ok(res) => res,
        Err(never) => match never {},
    };
    if res.status() == StatusCode::NOT_FOUND {
        return None;
    }
    let cache = if site.is_immutable(uri.path()) {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if headers.contains_key(header::CONTENT_ENCODING) {
        // A precompressed variant: caches must key on the client's encodings.
        // (An identity answer of a compressible file gets it from [`compress`].)
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    Some(res.map(axum::body::Body::new))
}

/// Whether [`compress`] leaves a request's answer alone: the origin's media
/// and playlists (`/live`, `/vod`) and WebSocket upgrades.
pub fn never_compressed(req: &Request) -> bool {
    let path = req.uri().path();
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    under("/live") || under("/vod") || req.headers().contains_key(header::UPGRADE)
}

/// Whether an answer of this content type is worth compressing: text, JSON,
/// JavaScript, SVG and wasm; never media, images or event streams.
pub fn compressible_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("text", "event-stream")) => false,
        Some(("text", _)) => true,
        Some(("application", sub)) => {
            matches!(
                sub,
                "json" | "javascript" | "wasm" | "xml" | "manifest+json"
            )
        }
        Some(("image", "svg+xml")) => true,
        _ => false,
    }
}

/// Compresses an answer (brotli or gzip, as the client prefers) when it is
/// compressible (see [`compressible_type`]), at least [`MIN_COMPRESS_BYTES`]
/// long, not already encoded and not a range; the rest passes through
/// untouched, as do the requests [`never_compressed`] names. Streamed pages
/// still stream: the encoder flushes whenever the page waits for data.
pub async fn compress(req: Request, next: Next) -> Response {
    use tower::ServiceExt;
    if never_compressed(&req) {
        return next.run(req).await;
    }
    let mut next = Some(next);
    let inner = tower::service_fn(move |req: Request| {
        let next = next.take();
        async move {
            Ok::<_, Infallible>(match next {
                Some(next) => next.run(req).await,
                // `oneshot` calls the service once.
                None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            })
        }
    });
    let predicate = SizeAbove::new(MIN_COMPRESS_BYTES).and(
        |_: StatusCode, _: axum::http::Version, headers: &HeaderMap, _: &axum::http::Extensions| {
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(compressible_type)
        },
    );
    let res = Compression::new(inner)
        .no_deflate()
        .no_zstd()
        .compress_when(predicate)
        .oneshot(req)
        .await;
    match res {
        Ok(res) => res.map(axum::body::Body::new),
        Err(never) => match never {},
    }
}

/// `Cache-Control` of pages: they differ per user (the header shows who is
/// signed in) and per moment, so browsers and shared caches must not reuse one
/// without asking.
pub const PAGE_CACHE: &str = "private, no-cache";

/// Gives HTML answers that say nothing about caching [`PAGE_CACHE`], so only
/// the content-hashed bundle is kept without asking. `/live` and `/vod` are
/// left alone.
pub async fn revalidate_pages(req: Request, next: Next) -> Response {
    if never_compressed(&req) {
        return next.run(req).await;
    }
    let mut res = next.run(req).await;
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
    if html && !res.headers().contains_key(header::CACHE_CONTROL) {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(PAGE_CACHE));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_json_js_svg_and_wasm_are_compressible() {
        for t in [
            "text/html; charset=utf-8",
            "application/json",
            "text/javascript",
            "application/javascript",
            "application/wasm",
            "text/css",
            "image/svg+xml",
            "text/vtt",
            "TEXT/PLAIN",
        ] {
            assert!(compressible_type(t), "{t}");
        }
        for t in [
            "video/mp4",
            "image/jpeg",
            "audio/mp4",
            "application/vnd.apple.mpegurl",
            "text/event-stream",
            "application/octet-stream",
            "",
        ] {
            assert!(!compressible_type(t), "{t}");
        }
    }

    #[test]
    fn live_vod_and_upgrades_are_never_compressed() {
        let req = |path: &str| {
            Request::builder()
                .uri(path)
                .body(axum::body::Body::empty())
                .expect("request")
        };
        for p in [
            "/live/abc/index.m3u8",
            "/live",
            "/vod/abc/master.m3u8",
            "/vod",
        ] {
            assert!(never_compressed(&req(p)), "{p}");
        }
        for p in [
            "/",
            "/livestream",
            "/vodka",
            "/api/v1/streams",
            "/watch/abc",
        ] {
            assert!(!never_compressed(&req(p)), "{p}");
        }
        let mut ws = req("/api/v1/streams/abc/events");
        ws.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(never_compressed(&ws));
    }
}
