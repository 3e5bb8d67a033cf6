//! The plumbing every server function shares (server build only).
//!
//! Each area states what its server functions need from the server as a trait
//! of its own (`accounts::AccountsBackend`, `streams::StreamsBackend`, …). The
//! server implements them and puts an `Arc<dyn …Backend>` of each into the
//! Leptos context, so this crate stays free of database code and no area
//! depends on another's contract. This leaf holds what those traits and the
//! server functions share: the boxed future that keeps a trait object-safe,
//! [`Reply`] (an answer that may set the session cookie), [`provided`] (an
//! area's backend from the context), [`request`] (the request's head:
//! session cookie, client address) and the answers' status and cookie
//! ([`status`], [`respond`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use http::request::Parts;

use crate::error::AppError;

/// A boxed future, so the areas' backend traits stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An answer that may set the session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<T> {
    /// The answer.
    pub value: T,
    /// A `Set-Cookie` header value for the session cookie.
    pub set_cookie: Option<String>,
}

/// An area's backend (`Arc<dyn …Backend>`) from the Leptos context, inside a
/// server function.
pub fn provided<T: ?Sized + Send + Sync + 'static>() -> Result<Arc<T>, AppError> {
    leptos::prelude::use_context::<Arc<T>>()
        .ok_or_else(|| AppError::Unavailable("the server is not ready yet".into()))
}

/// The head of the request a server function is answering.
pub fn request() -> Result<Parts, AppError> {
    leptos::prelude::use_context::<Parts>()
        .ok_or_else(|| AppError::Unavailable("no request to answer".into()))
}

/// Sends the reply's cookie (if any) and the status of an error, and returns
/// the value.
pub fn respond<T>(result: Result<Reply<T>, AppError>) -> Result<T, AppError> {
    let reply = status(result)?;
    if let Some(cookie) = reply.set_cookie {
        if let (Some(res), Ok(v)) = (
            leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
            http::HeaderValue::from_str(&cookie),
        ) {
            res.append_header(http::header::SET_COOKIE, v);
        }
    }
    Ok(reply.value)
}

/// Sets the HTTP status of an error answer to the error's own.
pub fn status<T>(result: Result<T, AppError>) -> Result<T, AppError> {
    if let Err(e) = &result {
        if let (Some(res), Ok(code)) = (
            leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
            http::StatusCode::from_u16(e.status_code()),
        ) {
            res.set_status(code);
        }
    }
    result
}
