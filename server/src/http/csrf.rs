//! Cross-site request forgery protection for `/api/`.
//!
//! The session cookie is `SameSite=Lax`, so browsers do not send it on
//! cross-site `POST`, `PUT`, `PATCH` or `DELETE` requests. On top of that,
//! every such request under `/api/` (the JSON API and the server functions)
//! must pass this rule:
//!
//! 1. If it has an `Origin` header, that origin must be this server: its
//!    host and port equal the request's `Host` (the port defaulting to the
//!    origin scheme's), or it equals the origin of `--public-url`. `Origin: null`
//!    is refused. With `--public-url`, its host is only this server under its
//!    own scheme and port: `http://live.example.com` is not
//!    `https://live.example.com` (a page on the plain-HTTP side may be
//!    anyone's). Without it the server cannot tell the scheme (a TLS proxy
//!    may be in front), so set it in production.
//! 2. Else, if it has a `Referer`, the same test applies to the referrer's origin.
//! 3. Else (no `Origin` and no `Referer`: not a browser, since browsers send
//!    `Origin` on these methods) it passes only without a session cookie. So
//!    `curl` can register and log in, and a script that sends the cookie back
//!    must also send `Origin` (for example `-H "Origin: https://live.example.com"`).
//!
//! Refusals are 403 with code `csrf`.
//!
//! The same rule decides whether a WebSocket upgrade (ingest, events) may use
//! its session cookie ([`allows`]): browsers send `Origin` on every upgrade,
//! and a cross-site page must not act with a visitor's session.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::service::session_cookie;
use crate::state::AppState;

/// Middleware applying the rule above.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = path == "/api" || path.starts_with("/api/");
    let unsafe_method = !matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if !api || !unsafe_method {
        return next.run(req).await;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    match check(
        req.headers(),
        host.as_deref(),
        state.accounts.public_url.as_ref(),
    ) {
        Ok(()) => next.run(req).await,
        Err(reason) => {
            tracing::warn!(method = %req.method(), path = %crate::telemetry::redact_uri(req.uri()), reason, "cross-site request refused");
            ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                format!("cross-site request refused: {reason}"),
            )
            .into_response()
        }
    }
}

/// Whether a request with these headers (its `Host` among them) passes the
/// rule: what the WebSocket handlers ask before they use a session cookie.
pub fn allows(headers: &HeaderMap, public_url: Option<&url::Url>) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    check(headers, host, public_url).is_ok()
}

/// Applies the rule to a request's headers; `Err` says why it is refused.
pub fn check(
    headers: &HeaderMap,
    host: Option<&str>,
    public_url: Option<&url::Url>,
) -> Result<(), &'static str> {
    let (name, value) = match (headers.get(header::ORIGIN), headers.get(header::REFERER)) {
        (Some(o), _) => ("Origin", o),
        (None, Some(r)) => ("Referer", r),
        (None, None) => {
            return if session_cookie(headers).is_some() {
                Err("a signed-in request must carry an Origin header")
            } else {
                Ok(())
            };
        }
    };
    let parsed = value
        .to_str()
        .ok()
        .filter(|v| *v != "null")
        .and_then(|v| url::Url::parse(v).ok());
    let Some(source) = parsed else {
        return Err(if name == "Origin" {
            "the Origin header is not this server"
        } else {
            "the Referer header is not this server"
        });
    };
    if same_origin(&source, host, public_url) {
        Ok(())
    } else if name == "Origin" {
        Err("the Origin header is not this server")
    } else {
        Err("the Referer header is not this server")
    }
}

fn same_origin(source: &url::Url, host: Option<&str>, public_url: Option<&url::Url>) -> bool {
    if !matches!(source.scheme(), "http" | "https") {
        return false;
    }
    if let Some(public) = public_url {
        if public.origin() == source.origin() {
            return true;
        }
        // The public host under another scheme or port is not this server.
        let same_host = matches!(
            (public.host_str(), source.host_str()),
            (Some(p), Some(s)) if p.eq_ignore_ascii_case(s)
        );
        if same_host {
            return false;
        }
    }
    let Some(authority) = host.and_then(|h| h.parse::<axum::http::uri::Authority>().ok()) else {
        return false;
    };
    let Some(source_host) = source.host_str() else {
        return false;
    };
    let default_port = match source.scheme() {
        "https" => 443,
        _ => 80,
    };
    let host_port = authority.port_u16().unwrap_or(default_port);
    source_host.eq_ignore_ascii_case(authority.host())
        && source.port_or_known_default() == Some(host_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_origin_passes_and_foreign_origins_do_not() {
        let host = Some("127.0.0.1:3000");
        assert_eq!(
            check(&headers(&[("origin", "http://127.0.0.1:3000")]), host, None),
            Ok(())
        );
        assert!(check(&headers(&[("origin", "http://evil.example")]), host, None).is_err());
        assert!(check(&headers(&[("origin", "http://127.0.0.1:3001")]), host, None).is_err());
        assert!(check(&headers(&[("origin", "null")]), host, None).is_err());
        // Default ports: https://a.example is a.example:443.
        assert_eq!(
            check(
                &headers(&[("origin", "https://A.example")]),
                Some("a.example"),
                None
            ),
            Ok(())
        );
        assert!(check(
            &headers(&[("origin", "http://a.example:8080")]),
            Some("a.example"),
            None
        )
        .is_err());
        // The Referer stands in for a missing Origin.
        assert_eq!(
            check(
                &headers(&[("referer", "http://127.0.0.1:3000/studio?x=1")]),
                host,
                None
            ),
            Ok(())
        );
        assert!(check(&headers(&[("referer", "http://evil.example/")]), host, None).is_err());
        // Origin wins over Referer.
        assert!(check(
            &headers(&[
                ("origin", "http://evil.example"),
                ("referer", "http://127.0.0.1:3000/")
            ]),
            host,
            None
        )
        .is_err());
    }

    #[test]
    fn the_public_url_is_an_accepted_origin() {
        let public = url::Url::parse("https://live.example.com").expect("url");
        let h = headers(&[("origin", "https://live.example.com")]);
        assert_eq!(check(&h, Some("10.0.0.5:3000"), Some(&public)), Ok(()));
        assert!(check(&h, Some("10.0.0.5:3000"), None).is_err());
    }

    #[test]
    fn with_a_public_url_the_scheme_counts() {
        let public = url::Url::parse("https://live.example.com").expect("url");
        let host = Some("live.example.com");
        let https = headers(&[("origin", "https://live.example.com")]);
        let http = headers(&[("origin", "http://live.example.com")]);
        assert_eq!(check(&https, host, Some(&public)), Ok(()));
        assert!(check(&http, host, Some(&public)).is_err(), "plain http");
        let port = headers(&[("origin", "https://live.example.com:8443")]);
        assert!(check(&port, Some("live.example.com:8443"), Some(&public)).is_err());
        // Other names of the server (a LAN address) still pass by Host.
        let lan = headers(&[("origin", "http://10.0.0.5:3000")]);
        assert_eq!(check(&lan, Some("10.0.0.5:3000"), Some(&public)), Ok(()));
    }

    #[test]
    fn sockets_ask_the_same_rule_with_the_request_host() {
        let public = url::Url::parse("https://live.example.com").expect("url");
        let mut h = headers(&[
            ("origin", "http://live.example.com"),
            ("cookie", "onair_session=abc"),
        ]);
        h.insert(header::HOST, "live.example.com".parse().expect("host"));
        assert!(!allows(&h, Some(&public)));
        h.insert(
            header::ORIGIN,
            "https://live.example.com".parse().expect("origin"),
        );
        assert!(allows(&h, Some(&public)));
        // Behind a proxy that sends its own Host: the public origin passes.
        h.insert(header::HOST, "127.0.0.1:3000".parse().expect("host"));
        assert!(allows(&h, Some(&public)));
        assert!(!allows(&h, None));
        // No Origin with a session: refused, as for the API.
        h.remove(header::ORIGIN);
        assert!(!allows(&h, Some(&public)));
    }

    #[test]
    fn no_origin_is_fine_only_without_a_session() {
        assert_eq!(check(&headers(&[]), Some("h"), None), Ok(()));
        assert_eq!(
            check(&headers(&[("cookie", "theme=dark")]), Some("h"), None),
            Ok(())
        );
        assert!(check(
            &headers(&[("cookie", "onair_session=abc")]),
            Some("h"),
            None
        )
        .is_err());
    }
}
