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

/// The path under which every server function answers: each one is declared
/// with `#[server(prefix = "/api/fn")]`.
pub const PREFIX: &str = "/api/fn/";

/// Sets the HTTP status of an error answer to the error's own, when the
/// request is a server function's own call (a path under [`PREFIX`]).
///
/// During a page's server-side render the page keeps its status: a resource
/// on the page that reads, say, a recording that does not exist yet answers
/// its component with the error, not the whole page. A streamed page's
/// headers go out with its first chunk, so a status set by a resource would
/// change the page's status only when that resource happened to finish
/// first (the dashboard's stream page answered 404 about once in 300 loads).
/// Pages whose status depends on their data (the watch page, a profile, the
/// 404 page) set it themselves.
pub fn status<T>(result: Result<T, AppError>) -> Result<T, AppError> {
    if let Err(e) = &result {
        let own_call = leptos::prelude::use_context::<Parts>()
            .is_some_and(|p| p.uri.path().starts_with(PREFIX));
        if let (true, Some(res), Ok(code)) = (
            own_call,
            leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
            http::StatusCode::from_u16(e.status_code()),
        ) {
            res.set_status(code);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use leptos::prelude::{provide_context, Owner};

    /// The status `status()` leaves for a refusal made while answering a
    /// request for `path`.
    fn status_after_refusal(path: &str) -> Option<http::StatusCode> {
        let owner = Owner::new();
        owner.with(|| {
            let res = leptos_axum::ResponseOptions::default();
            provide_context(res.clone());
            let (parts, ()) = http::Request::get(path)
                .body(())
                .expect("request")
                .into_parts();
            provide_context(parts);
            let refused: Result<(), AppError> = Err(AppError::Refused {
                status: 404,
                code: "not_found".into(),
                message: "no stream recording of stream abc".into(),
            });
            assert!(status(refused).is_err(), "the error is passed on");
            res.0.read().map(|parts| parts.status).expect("lock")
        })
    }

    #[test]
    fn only_a_server_functions_own_call_takes_the_errors_status() {
        assert_eq!(
            status_after_refusal("/api/fn/get_recording"),
            Some(http::StatusCode::NOT_FOUND)
        );
        assert_eq!(
            status_after_refusal("/dashboard/abc"),
            None,
            "a page keeps its own"
        );
        assert_eq!(status_after_refusal("/api/function"), None);
    }

    #[test]
    fn every_server_function_answers_under_the_prefix() {
        // The prefix the status rule relies on is the one the server
        // functions are declared with.
        for path in [
            <crate::recordings::GetRecording as leptos::server_fn::ServerFn>::PATH,
            <crate::analytics::GetStreamAnalytics as leptos::server_fn::ServerFn>::PATH,
            <crate::accounts::CurrentUser as leptos::server_fn::ServerFn>::PATH,
        ] {
            assert!(path.starts_with(PREFIX), "{path}");
        }
    }
}
