//! The server's side of the server functions: [`Services`], one struct of
//! the handles they need, implements each area's backend trait
//! (`app::accounts::AccountsBackend`, `app::streams::StreamsBackend`, …) and
//! [`Services::provide`] puts every one of them into the Leptos context. Each
//! method is a thin adapter over [`crate::service`], like the JSON API's
//! handlers, so both follow the same rules; refusals are the one
//! [`ApiError`] both convert from, carried with the JSON API's status and
//! code.

mod accounts;
mod areas;
mod streams;

use std::sync::Arc;

use app::error::AppError;
use app::streams::Stream;
use axum::http::request::Parts;

use crate::auth::{ceil_secs, Accounts, AuthError};
use crate::db::Database;
use crate::service::error::ApiError;
use crate::service::recordings;
use crate::service::{accounts as account_service, RequestInfo, SessionUser};

/// Every handle the server functions use. All are required: the server
/// builds them all at start-up, so no server function has a "not set up"
/// case.
#[derive(Debug, Clone)]
pub struct Services {
    /// The database.
    pub db: Database,
    /// Accounts, sessions, throttling and playback tokens.
    pub accounts: Arc<Accounts>,
    /// The realtime rooms: viewer counts for listings, state for updates.
    pub rooms: Arc<crate::realtime::Rooms>,
    /// Recordings: deleting one, and a stream with it.
    pub recorder: Arc<crate::recording::Recorder>,
    /// Viewer sessions and quality, for the dashboards.
    pub analytics: Arc<crate::analytics::Analytics>,
    /// Live streams are transcribed (watch pages offer captions).
    pub captions: bool,
    /// On-demand transcript summaries.
    pub summaries: Arc<crate::summary::Summarizer>,
    /// Live ingest: stream health and the encoder listeners' addresses.
    pub ingest: Arc<crate::ingest::IngestHub>,
}

impl Services {
    /// Puts each area's backend into the Leptos context of the request being
    /// rendered or answered (called for every page and server function).
    pub fn provide(self: &Arc<Self>) {
        use leptos::prelude::provide_context;
        provide_context::<Arc<dyn app::accounts::AccountsBackend>>(self.clone());
        provide_context::<Arc<dyn app::streams::StreamsBackend>>(self.clone());
        provide_context::<Arc<dyn app::health::HealthBackend>>(self.clone());
        provide_context::<Arc<dyn app::recordings::RecordingsBackend>>(self.clone());
        provide_context::<Arc<dyn app::transcripts::TranscriptsBackend>>(self.clone());
        provide_context::<Arc<dyn app::search::SearchBackend>>(self.clone());
        provide_context::<Arc<dyn app::summaries::SummariesBackend>>(self.clone());
        provide_context::<Arc<dyn app::chapters::ChaptersBackend>>(self.clone());
        provide_context::<Arc<dyn app::analytics::AnalyticsBackend>>(self.clone());
    }

    /// Adds recording summaries to streams for a page.
    async fn with_summaries(&self, streams: Vec<Stream>) -> Result<Vec<Stream>, AppError> {
        recordings::with_summaries(&self.db, &self.accounts, streams)
            .await
            .map_err(refused)
    }

    async fn user(&self, req: &Parts) -> Result<(RequestInfo, Option<SessionUser>), AppError> {
        let info = RequestInfo::from_parts(req, &self.accounts);
        let user = account_service::current_user(&self.db, &info)
            .await
            .map_err(refused)?;
        Ok((info, user))
    }
}

fn unavailable(err: impl std::fmt::Display) -> AppError {
    tracing::error!(error = %err, "database error in a server function");
    AppError::Unavailable("the database is not answering right now; try again shortly".into())
}

/// A throttled login or registration: the server function's answer gets the
/// same `Retry-After` header as the JSON API's.
fn auth_refused(e: AuthError) -> AppError {
    let wait = match &e {
        AuthError::TooManyAttempts(wait) | AuthError::TooManyRegistrations(wait) => {
            Some(ceil_secs(*wait))
        }
        _ => None,
    };
    if let (Some(secs), Some(res)) = (
        wait,
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
    ) {
        res.insert_header(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(secs),
        );
    }
    refused(e)
}

/// The JSON API's answer to an error, as an [`AppError`].
fn refused(e: impl Into<ApiError>) -> AppError {
    let api = e.into();
    AppError::Refused {
        status: api.status.as_u16(),
        code: api.code.to_string(),
        message: api.message,
    }
}
