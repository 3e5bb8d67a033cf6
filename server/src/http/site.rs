//! The site root: the web bundle's file names, static files, and compression.
//!
//! `make build-web` (tools/web/finish-site.sh) gives the bundle content-hashed
//! names and lists them in `<site-root>/pkg/assets.txt`:
//!
//! ```text
//! js: onair-0123456789abcdef.js
//! wasm: onair-0123456789abcdef_bg.wasm
//! css: onair-fedcba9876543210.css
//! hls: hls-00112233aabbccdd.min.js
//! ```
//!
//! and writes a `.br` and a `.gz` next to every text file and the wasm.
//! [`Site::load`] reads the list once at start-up: pages link those names, and
//! [`static_file`] serves them `immutable` (a new build has new names), every
//! other file `no-cache`. A site root without the list (built by hand or by
//! cargo-leptos) is served under the unhashed names, all `no-cache`.
//!
//! [`compress`] compresses dynamic answers (pages, JSON) for clients that
//! accept it, but never `/live` and `/vod` (the origin decides about its own
//! answers) nor WebSocket upgrades; [`revalidate_pages`] marks pages
//! `private, no-cache`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::path::{Path, PathBuf};

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::Compression;

/// The manifest `make build-web` writes, relative to the site root.
pub const MANIFEST: &str = "pkg/assets.txt";

/// The wasm-bindgen output's name when the bundle is not hashed.
pub const DEFAULT_OUTPUT_NAME: &str = "onair";

/// `Cache-Control` of a content-hashed file: its name changes with its bytes.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// `Cache-Control` of every other file: browsers keep it and revalidate.
pub const REVALIDATE: &str = "no-cache";

/// Answers smaller than this are not worth compressing.
pub const MIN_COMPRESS_BYTES: u16 = 256;

/// The site root and what its manifest says.
#[derive(Clone, Debug)]
pub struct Site {
    /// The directory served.
    pub root: PathBuf,
    /// The wasm-bindgen output name `HydrationScripts` links: `<name>.js`
    /// and `<name>_bg.wasm` under `/pkg/`.
    pub output_name: String,
    /// The stylesheet's and hls.js's URLs.
    pub assets: app::assets::Assets,
    /// The URL paths served `immutable` (`/pkg/<hashed name>`).
    immutable: HashSet<String>,
}

/// Why the manifest was not used (the site is then served unhashed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// It could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The manifest's path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not `key: file name`, or names a file that is not there.
    #[error("{path}, line {line}: {reason}")]
    Invalid {
        /// The manifest's path.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// `js` and `wasm` do not name one wasm-bindgen output (`<n>.js`, `<n>_bg.wasm`),
    /// or one of the four entries is missing.
    #[error("{path}: {reason}")]
    Incomplete {
        /// The manifest's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl Site {
    /// The site root served under the unhashed names.
    pub fn unhashed(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            output_name: DEFAULT_OUTPUT_NAME.into(),
            assets: app::assets::Assets::default(),
            immutable: HashSet::new(),
        }
    }

    /// Reads the manifest of `root`: `Ok(None)` when there is none.
    pub fn from_manifest(root: &Path) -> Result<Option<Self>, ManifestError> {
        let path = root.join(MANIFEST);
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ManifestError::Read {
                    path: shown,
                    source,
                })
            }
        };
        let (mut js, mut wasm, mut css, mut hls) = (None, None, None, None);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let invalid = |reason: String| ManifestError::Invalid {
                path: shown.clone(),
                line: i + 1,
                reason,
            };
            let Some((key, name)) = line.split_once(':') else {
                return Err(invalid("expected `key: file name`".into()));
            };
            let name = name.trim();
            let plain = !name.is_empty()
                && !name.starts_with('.')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !plain {
                return Err(invalid(format!("{name:?} is not a plain file name")));
            }
            if !root.join("pkg").join(name).is_file() {
                return Err(invalid(format!("pkg/{name} does not exist")));
            }
            let slot = match key.trim() {
                "js" => &mut js,
                "wasm" => &mut wasm,
                "css" => &mut css,
                "hls" => &mut hls,
                other => return Err(invalid(format!("unknown key {other:?}"))),
            };
            *slot = Some(name.to_string());
        }
        let incomplete = |reason: String| ManifestError::Incomplete {
            path: shown.clone(),
            reason,
        };
        let (Some(js), Some(wasm), Some(css), Some(hls)) = (js, wasm, css, hls) else {
            return Err(incomplete("js, wasm, css and hls are all required".into()));
        };
        let output_name = match js.strip_suffix(".js") {
            Some(stem) if wasm == format!("{stem}_bg.wasm") => stem.to_string(),
            _ => {
                return Err(incomplete(format!(
                    "js {js:?} and wasm {wasm:?} are not `<name>.js` and `<name>_bg.wasm`"
                )))
            }
        };
        let immutable = [&js, &wasm, &css, &hls]
            .into_iter()
            .map(|name| format!("/pkg/{name}"))
            .collect();
        Ok(Some(Self {
            root: root.to_path_buf(),
            output_name,
            assets: app::assets::Assets {
                css: format!("/pkg/{css}"),
                hls: format!("/pkg/{hls}"),
            },
            immutable,
        }))
    }

    /// The site as its manifest describes it, or unhashed (with a warning
    /// when the manifest is there but unusable).
    pub fn load(root: &Path) -> Self {
        match Self::from_manifest(root) {
            Ok(Some(site)) => site,
            Ok(None) => Self::unhashed(root),
            Err(e) => {
                tracing::warn!(error = %e, "serving the web bundle under its unhashed names");
                Self::unhashed(root)
            }
        }
    }

    /// The wasm-bindgen JS file pages load, under the site root.
    pub fn js_path(&self) -> PathBuf {
        self.root
            .join("pkg")
            .join(format!("{}.js", self.output_name))
    }

    /// Whether the file at URL `path` is content-hashed.
    pub fn is_immutable(&self, path: &str) -> bool {
        self.immutable.contains(path)
    }
}

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

    fn site_with(files: &[&str], manifest: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("pkg")).expect("pkg");
        for f in files {
            std::fs::write(dir.path().join("pkg").join(f), b"x").expect("file");
        }
        std::fs::write(dir.path().join(MANIFEST), manifest).expect("manifest");
        dir
    }

    const FILES: [&str; 4] = [
        "onair-0123456789abcdef.js",
        "onair-0123456789abcdef_bg.wasm",
        "onair-fedcba9876543210.css",
        "hls-00112233aabbccdd.min.js",
    ];
    const MANIFEST_TEXT: &str =
        "js: onair-0123456789abcdef.js\nwasm: onair-0123456789abcdef_bg.wasm\n\
        css: onair-fedcba9876543210.css\nhls: hls-00112233aabbccdd.min.js\n";

    #[test]
    fn a_manifest_names_the_hashed_files() {
        let dir = site_with(&FILES, MANIFEST_TEXT);
        let site = Site::from_manifest(dir.path())
            .expect("valid")
            .expect("present");
        assert_eq!(site.output_name, "onair-0123456789abcdef");
        assert_eq!(site.assets.css, "/pkg/onair-fedcba9876543210.css");
        assert_eq!(site.assets.hls, "/pkg/hls-00112233aabbccdd.min.js");
        assert!(site.is_immutable("/pkg/onair-0123456789abcdef_bg.wasm"));
        assert!(!site.is_immutable("/pkg/onair_bg.wasm"));
        assert!(!site.is_immutable("/favicon.svg"));
        assert!(site.js_path().ends_with("pkg/onair-0123456789abcdef.js"));
    }

    #[test]
    fn no_manifest_means_unhashed_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Site::from_manifest(dir.path()).expect("no error").is_none());
        let site = Site::load(dir.path());
        assert_eq!(site.output_name, "onair");
        assert_eq!(site.assets, app::assets::Assets::default());
    }

    #[test]
    fn a_bad_manifest_is_refused_and_the_site_served_unhashed() {
        for (files, text) in [
            // A path, not a name.
            (
                &FILES[..],
                MANIFEST_TEXT.replace("hls: hls-", "hls: ../hls-"),
            ),
            // A file that is not there.
            (&FILES[..3], MANIFEST_TEXT.to_string()),
            // js and wasm of two builds.
            (
                &FILES[..],
                MANIFEST_TEXT.replace(
                    "wasm: onair-0123456789abcdef_bg.wasm",
                    "wasm: onair-fedcba9876543210.css",
                ),
            ),
            // An entry missing.
            (
                &FILES[..],
                MANIFEST_TEXT.replace("css: onair-fedcba9876543210.css\n", ""),
            ),
            (&FILES[..], format!("{MANIFEST_TEXT}no colon here\n")),
            (
                &FILES[..],
                format!("{MANIFEST_TEXT}font: onair-fedcba9876543210.css\n"),
            ),
        ] {
            let dir = site_with(files, &text);
            assert!(
                Site::from_manifest(dir.path()).is_err(),
                "accepted:\n{text}"
            );
            assert_eq!(Site::load(dir.path()).output_name, "onair");
        }
    }

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
