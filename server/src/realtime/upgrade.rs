//! The events socket's WebSocket upgrade (RFC 6455 §4.2), done here rather
//! than by axum's `WebSocketUpgrade` so that the connection's TCP stream can
//! be taken back from the HTTP layer: the room's fan-out writes frames into
//! it directly ([`super::outbox`]).
//!
//! A request that is not a WebSocket upgrade gets a JSON error: 400, or 426
//! with `Sec-WebSocket-Version: 13` for another protocol version.

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::connections::accept::Watched;

/// A WebSocket upgrade request, checked.
pub struct Upgrade {
    on_upgrade: hyper::upgrade::OnUpgrade,
    accept: String,
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The API's error shape, `{ "error": { "code", "message" } }`.
fn refuse(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": "not_websocket", "message": message } });
    (status, axum::Json(body)).into_response()
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        if parts.method != Method::GET {
            return Err(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "the events socket is opened with a GET WebSocket upgrade",
            ));
        }
        let h = &parts.headers;
        if !has_token(h, header::CONNECTION, "upgrade")
            || !has_token(h, header::UPGRADE, "websocket")
        {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "this is a WebSocket endpoint: send Connection: upgrade and Upgrade: websocket",
            ));
        }
        if h.get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            let mut r = refuse(
                StatusCode::UPGRADE_REQUIRED,
                "this server speaks WebSocket version 13",
            );
            r.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            return Err(r);
        }
        let Some(key) = h.get(header::SEC_WEBSOCKET_KEY) else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Key is missing",
            ));
        };
        let accept = derive_accept_key(key.as_bytes());
        let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "this connection cannot be upgraded (HTTP/1.1 is needed)",
            ));
        };
        Ok(Upgrade { on_upgrade, accept })
    }
}

impl Upgrade {
    /// Answers 101 and runs `serve` with the connection's TCP stream and the
    /// bytes the HTTP layer had read past the request, once upgraded.
    pub fn on_upgrade<F, Fut>(self, serve: F) -> Response
    where
        F: FnOnce(TcpStream, Bytes) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let Upgrade { on_upgrade, accept } = self;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(error = %e, "events upgrade failed");
                    return;
                }
            };
            match hyper_util::server::conn::auto::upgrade::downcast::<TokioIo<Watched>>(upgraded) {
                Ok(parts) => serve(parts.io.into_inner().into_tcp(), parts.read_buf).await,
                Err(_) => tracing::error!(
                    "an events socket that is not a plain TCP connection: closed (serve the \
                     events socket over HTTP/1.1 on TCP, behind any TLS proxy)"
                ),
            }
        });
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = r.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        r
    }
}
