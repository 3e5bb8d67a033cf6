//! Where the web bundle's files are: the stylesheet and hls.js, whose names
//! the build content-hashes (`make build-web` writes `pkg/assets.txt`, the
//! server reads it at start-up and provides an [`Assets`] to every render).
//!
//! The wasm and its JS glue are named through `LeptosOptions::output_name`
//! instead, which Leptos's `HydrationScripts` uses.

/// The `<meta name>` through which the shell tells the browser where hls.js is.
pub const HLS_META: &str = "onair:hls";

/// The stylesheet's and hls.js's URLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assets {
    /// The stylesheet, e.g. `/pkg/onair-0123456789abcdef.css`.
    pub css: String,
    /// hls.js, e.g. `/pkg/hls-0123456789abcdef.min.js`.
    pub hls: String,
}

impl Default for Assets {
    /// The unhashed names, for a site root built without a manifest.
    fn default() -> Self {
        Self {
            css: "/pkg/onair.css".into(),
            hls: "/pkg/hls.min.js".into(),
        }
    }
}

/// Whether a page at `path` plays video, so the shell preloads hls.js next to
/// the wasm rather than after hydration: `/watch/{id}`, not its transcript.
pub fn plays_video(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/watch/") else {
        return false;
    };
    let id = rest.trim_end_matches('/');
    !id.is_empty() && !id.contains('/')
}

/// The hls.js URL the shell put in the page, or the unhashed default.
#[cfg(feature = "hydrate")]
pub fn hls_url() -> String {
    web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| {
            d.query_selector(&format!("meta[name='{HLS_META}']"))
                .ok()
                .flatten()
        })
        .and_then(|m| m.get_attribute("content"))
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| Assets::default().hls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_watch_pages_play_video() {
        assert!(plays_video("/watch/abc"));
        assert!(plays_video("/watch/abc/"));
        assert!(!plays_video("/watch/abc/transcript"));
        assert!(!plays_video("/watch/"));
        assert!(!plays_video("/"));
        assert!(!plays_video("/studio/abc"));
    }
}
