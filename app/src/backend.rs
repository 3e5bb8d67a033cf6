//! What the server provides to server functions (server build only).
//!
//! The server crate implements [`Backend`] over its database and passes an
//! `Arc<dyn Backend>` into the Leptos context, so this crate stays free of
//! database code. Operations that depend on who is asking take the request's
//! head ([`Parts`]: the session cookie, the client address); those that sign
//! someone in or out return a [`Reply`] with the `Set-Cookie` value to send.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::request::Parts;

use crate::accounts::{Credentials, User};
use crate::error::AppError;
use crate::health::StreamHealth;
use crate::recordings::Recording;
use crate::streams::{
    EncoderInfo, NewStream, Profile, ShareLink, ShareRequest, Stream, StreamCard, StreamPatch,
    WatchInfo,
};

/// A boxed future, so [`Backend`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An answer that may set the session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<T> {
    /// The answer.
    pub value: T,
    /// A `Set-Cookie` header value for the session cookie.
    pub set_cookie: Option<String>,
}

/// Data access for server functions. The rules are the JSON API's
/// (docs/api.md); refusals are [`AppError::Refused`] with the API's codes.
pub trait Backend: Send + Sync + 'static {
    /// Public streams that are live now, most recently started first.
    fn live_streams(&self) -> BoxFuture<'_, Result<Vec<StreamCard>, AppError>>;

    /// Public streams that ended most recently, most recent first (at most
    /// [`crate::streams::RECENT_STREAMS`]).
    fn recent_streams(&self) -> BoxFuture<'_, Result<Vec<StreamCard>, AppError>>;

    /// A broadcaster's public streams; 404 `not_found` for an unknown user.
    fn profile(&self, name: String) -> BoxFuture<'_, Result<Profile, AppError>>;

    /// The signed-in user, if any.
    fn current_user(&self, req: Parts) -> BoxFuture<'_, Result<Option<User>, AppError>>;

    /// Registers a broadcaster and signs them in.
    fn register(
        &self,
        req: Parts,
        creds: Credentials,
    ) -> BoxFuture<'_, Result<Reply<User>, AppError>>;

    /// Signs in (throttled like the API).
    fn login(&self, req: Parts, creds: Credentials)
        -> BoxFuture<'_, Result<Reply<User>, AppError>>;

    /// Signs out.
    fn logout(&self, req: Parts) -> BoxFuture<'_, Result<Reply<()>, AppError>>;

    /// The signed-in user's streams, newest first.
    fn my_streams(&self, req: Parts) -> BoxFuture<'_, Result<Vec<Stream>, AppError>>;

    /// Creates a stream; the answer holds its ingest token.
    fn create_stream(&self, req: Parts, body: NewStream)
        -> BoxFuture<'_, Result<Stream, AppError>>;

    /// Changes a stream.
    fn update_stream(
        &self,
        req: Parts,
        id: String,
        patch: StreamPatch,
    ) -> BoxFuture<'_, Result<Stream, AppError>>;

    /// Deletes a stream.
    fn delete_stream(&self, req: Parts, id: String) -> BoxFuture<'_, Result<(), AppError>>;

    /// A new ingest token for a stream.
    fn regenerate_ingest_token(
        &self,
        req: Parts,
        id: String,
    ) -> BoxFuture<'_, Result<Stream, AppError>>;

    /// What a player should load for a stream.
    fn watch(&self, req: Parts, id: String) -> BoxFuture<'_, Result<WatchInfo, AppError>>;

    /// How an encoder publishes to a stream (owner or admin).
    fn encoder(&self, req: Parts, id: String) -> BoxFuture<'_, Result<EncoderInfo, AppError>>;
    /// A share link for a private stream (owner or admin).
    fn share(
        &self,
        req: Parts,
        id: String,
        body: ShareRequest,
    ) -> BoxFuture<'_, Result<ShareLink, AppError>>;

    /// A live stream's measured input (owner or admin).
    fn health(&self, req: Parts, id: String) -> BoxFuture<'_, Result<StreamHealth, AppError>>;

    /// One stream, if the caller may see it.
    fn get_stream(&self, req: Parts, id: String) -> BoxFuture<'_, Result<Stream, AppError>>;

    /// A stream's recording, if the caller may see the stream.
    fn recording(&self, req: Parts, id: String) -> BoxFuture<'_, Result<Recording, AppError>>;

    /// Deletes a stream's recording (owner or admin; not while live).
    fn delete_recording(&self, req: Parts, id: String) -> BoxFuture<'_, Result<(), AppError>>;

    /// A stream's transcript, if the caller may watch the stream (with a
    /// private stream's playback token, anyone may).
    fn transcript(
        &self,
        req: Parts,
        id: String,
        token: Option<String>,
    ) -> BoxFuture<'_, Result<crate::transcripts::Transcript, AppError>>;

    /// Searches titles, descriptions and transcripts the caller may find.
    fn search(
        &self,
        req: Parts,
        q: String,
        limit: Option<u32>,
    ) -> BoxFuture<'_, Result<crate::search::SearchResults, AppError>>;

    /// A stream's summary and where making one stands (owner and admins).
    fn summary(
        &self,
        req: Parts,
        id: String,
    ) -> BoxFuture<'_, Result<crate::summaries::SummaryStatus, AppError>>;

    /// Starts making a stream's summary (owner and admins).
    fn start_summary(
        &self,
        req: Parts,
        id: String,
    ) -> BoxFuture<'_, Result<crate::summaries::SummaryStatus, AppError>>;
    /// The dashboard of the signed-in broadcaster (an admin's: all streams).
    fn dashboard(&self, req: Parts)
        -> BoxFuture<'_, Result<crate::analytics::Dashboard, AppError>>;

    /// One stream's analytics (owner and admins).
    fn stream_analytics(
        &self,
        req: Parts,
        id: String,
    ) -> BoxFuture<'_, Result<crate::analytics::StreamAnalytics, AppError>>;
}

/// Fetches the backend from the Leptos context inside a server function.
pub fn backend() -> Result<Arc<dyn Backend>, AppError> {
    leptos::prelude::use_context::<Arc<dyn Backend>>()
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
