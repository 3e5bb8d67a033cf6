//! Account and stream operations, shared by the JSON API (`http::auth`,
//! `http::streams`) and the web app's server functions
//! ([`crate::backend::Services`]). Both are thin adapters: they turn a request
//! into a [`RequestInfo`] and a result into their own answer.
//!
//! - [`accounts`]: who is signed in, register, log in, log out.
//! - [`streams`]: stream CRUD, ingest tokens and watch URLs, with the
//!   permission rules.
//! - [`chat`]: chat rules, moderators and the moderation log.
//! - [`recordings`]: read and delete recordings, and listing summaries.
//! - [`listings`]: what anyone may list: profiles (a user's public streams)
//!   and the recently live public streams.
//! - [`transcripts`], [`search`], [`summaries`]: read and download
//!   transcripts, search, and make summaries, with their permission rules.

pub mod accounts;
pub mod analytics;
pub mod chapters;
pub mod chat;
pub mod error;
pub mod listings;
pub mod recordings;
pub mod search;
pub mod streams;
pub mod summaries;
pub mod transcripts;

use std::net::{IpAddr, SocketAddr};

use app::accounts::{Role, User};
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::auth::SecureCookies;
use crate::auth::{Accounts, SESSION_COOKIE};
use crate::db::users::UserRow;

/// What the operations need to know about a request.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// The session cookie's value, if any.
    pub session: Option<String>,
    /// The client IP (for login throttling).
    pub ip: IpAddr,
    /// A proxy said the request came over HTTPS (`X-Forwarded-Proto`).
    pub forwarded_https: bool,
    /// The `Host` header, if it is a valid authority.
    pub host: Option<String>,
}

impl std::fmt::Debug for RequestInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestInfo")
            .field("session", &self.session.as_ref().map(|_| "<redacted>"))
            .field("ip", &self.ip)
            .field("forwarded_https", &self.forwarded_https)
            .field("host", &self.host)
            .finish()
    }
}

impl RequestInfo {
    /// Reads a request's head: cookie, client IP (the peer address, or the last
    /// `X-Forwarded-For` entry with `--trust-forwarded-for`), proto and host.
    pub fn from_parts(parts: &Parts, accounts: &Accounts) -> Self {
        let headers = &parts.headers;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let ip = if accounts.trust_forwarded_for {
            crate::analytics::client_ip::forwarded_for(headers).unwrap_or(peer)
        } else {
            peer
        };
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .filter(|h| h.parse::<axum::http::uri::Authority>().is_ok())
            .map(str::to_string);
        RequestInfo {
            session: session_cookie(headers).map(str::to_string),
            ip,
            forwarded_https: forwarded_https(headers),
            host,
        }
    }

    /// Whether the session cookie gets `Secure` for this request.
    pub fn secure_cookie(&self, accounts: &Accounts) -> bool {
        match accounts.secure_cookies {
            SecureCookies::Always => true,
            SecureCookies::Never => false,
            SecureCookies::Auto => {
                self.forwarded_https
                    || accounts
                        .public_url
                        .as_ref()
                        .is_some_and(|u| u.scheme() == "https")
            }
        }
    }

    /// `https://host[:port]` without a trailing slash: the public URL if
    /// configured, else the request's host (https if a proxy said so). Empty
    /// when neither is known, which leaves URLs relative.
    pub fn base_url(&self, accounts: &Accounts) -> String {
        if let Some(u) = &accounts.public_url {
            return u.as_str().trim_end_matches('/').to_string();
        }
        match &self.host {
            Some(h) => {
                let scheme = if self.forwarded_https {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{h}")
            }
            None => String::new(),
        }
    }
}

/// The session cookie's value, from any `Cookie` header.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value)
}

/// Whether a proxy said the request came over HTTPS (`X-Forwarded-Proto`,
/// first hop).
pub fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The signed-in user of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// The user.
    pub user: User,
    /// The stored hash of the session id.
    pub session_hash: String,
}

impl SessionUser {
    /// Whether this user is an admin.
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }
}

/// The user of a database row; an unknown role gets the least rights.
pub fn user_from_row(row: UserRow) -> User {
    let role = Role::parse(&row.role).unwrap_or_else(|| {
        tracing::warn!(user = %row.id, role = %row.role, "unknown role in the database; treating as viewer");
        Role::Viewer
    });
    User {
        id: row.id,
        username: row.username,
        role,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        assert_eq!(session_cookie(&h), None);
        h.append(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; onair_session=abc123 ; x=y"),
        );
        assert_eq!(session_cookie(&h), Some("abc123"));
        let mut empty = HeaderMap::new();
        empty.insert(header::COOKIE, HeaderValue::from_static("onair_session="));
        assert_eq!(session_cookie(&empty), None);
    }

    #[test]
    fn forwarded_headers_are_read_from_the_right_hop() {
        let mut h = HeaderMap::new();
        assert!(!forwarded_https(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS, http"));
        assert!(forwarded_https(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        assert!(!forwarded_https(&h));
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 10.0.0.7"),
        );
        assert_eq!(
            crate::analytics::client_ip::forwarded_for(&h),
            Some(IpAddr::from([10, 0, 0, 7]))
        );
    }
}
