//! Security headers: the Content-Security-Policy of every server-rendered
//! page, and the headers every answer carries.
//!
//! The policy allows scripts from this origin and the inline scripts the
//! server itself wrote, each marked with the per-response nonce Leptos
//! generates (its hydration script, the serialized resources, the theme
//! bootstrap). Any other inline script, such as one injected through user
//! text, does not run. `'wasm-unsafe-eval'` lets the page compile its
//! WebAssembly; hls.js needs `blob:` for its worker and its media source.

use axum::http::{header, HeaderName, HeaderValue};
use leptos::prelude::use_context;

/// Who may frame a page: this site only, or anyone for the embeddable
/// player (`/embed/{id}`, meant for other sites' iframes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `frame-ancestors 'self'`.
    SameOrigin,
    /// `frame-ancestors *`.
    Anyone,
}

impl Framing {
    /// The framing a page at `path` allows.
    pub fn for_path(path: &str) -> Self {
        if path.starts_with("/embed/") {
            Framing::Anyone
        } else {
            Framing::SameOrigin
        }
    }
}

/// The page policy for `nonce`, framed by this site only.
pub fn content_security_policy(nonce: &str) -> String {
    page_policy(nonce, Framing::SameOrigin)
}

/// The page policy for `nonce` with `framing`.
pub fn page_policy(nonce: &str, framing: Framing) -> String {
    let ancestors = match framing {
        Framing::SameOrigin => "'self'",
        Framing::Anyone => "*",
    };
    format!(
        "default-src 'self'; \
         script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; \
         media-src 'self' blob:; \
         worker-src 'self' blob:; \
         connect-src 'self'; \
         font-src 'self'; \
         object-src 'none'; \
         base-uri 'none'; \
         form-action 'self'; \
         frame-ancestors {ancestors}"
    )
}

/// Called in the Leptos context of every page response: sets the page's
/// Content-Security-Policy with the nonce of this response.
pub fn page_headers() {
    let Some(res) = use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    // leptos_axum provides a fresh nonce for every rendered response.
    let Some(nonce) = leptos::nonce::use_nonce() else {
        return;
    };
    let framing = use_context::<axum::http::request::Parts>()
        .map_or(Framing::SameOrigin, |p| Framing::for_path(p.uri.path()));
    if let Ok(v) = HeaderValue::from_str(&page_policy(&nonce.to_string(), framing)) {
        res.insert_header(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// Headers every answer carries unless it set its own.
pub fn common() -> [(HeaderName, HeaderValue); 2] {
    [
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::content_security_policy;

    #[test]
    fn the_policy_allows_only_nonced_inline_script() {
        let csp = content_security_policy("abc123");
        let script = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src"))
            .expect("script-src");
        assert_eq!(
            script,
            "script-src 'self' 'nonce-abc123' 'wasm-unsafe-eval'"
        );
        assert!(!csp.contains("unsafe-inline'; script") && !script.contains("unsafe-inline"));
        assert!(csp.contains("object-src 'none'") && csp.contains("base-uri 'none'"));
    }
}
