//! The server's implementation of [`app::backend::Backend`]: what server
//! functions may ask of the server. Each method is a thin adapter over
//! [`crate::service`], like the JSON API handlers, so both follow the same
//! rules; refusals carry the JSON API's status and code.

use std::sync::Arc;

use app::accounts::{Credentials, User};
use app::backend::{Backend, BoxFuture, Reply};
use app::error::AppError;
use app::health::StreamHealth;
use app::recordings::Recording;
use app::streams::{
    EncoderInfo, NewStream, Profile, Stream, StreamCard, StreamPatch, WatchInfo, RECENT_STREAMS,
};
use axum::http::request::Parts;

use crate::auth::{ceil_secs, Accounts, AuthError};
use crate::db::Database;
use crate::service::error::ApiError;
use crate::service::listings::{self, ProfileParams};
use crate::service::recordings;
use crate::service::streams::{self, ListParams, MAX_LIMIT};
use crate::service::{accounts, RequestInfo, SessionUser};

/// Server functions' view of the server.
#[derive(Debug, Clone)]
pub struct DbBackend {
    db: Database,
    accounts: Arc<Accounts>,
    rooms: Option<Arc<crate::realtime::Rooms>>,
    recorder: Option<Arc<crate::recording::Recorder>>,
    analytics: Option<Arc<crate::analytics::Analytics>>,
    captions: bool,
    summaries: Option<Arc<crate::summary::Summarizer>>,
    ingest: Option<Arc<crate::ingest::IngestHub>>,
}

impl DbBackend {
    /// Wraps the database and the accounts state.
    pub fn new(db: Database, accounts: Arc<Accounts>) -> Self {
        DbBackend {
            db,
            accounts,
            rooms: None,
            recorder: None,
            analytics: None,
            captions: false,
            summaries: None,
            ingest: None,
        }
    }

    /// Live streams are transcribed (watch pages offer captions).
    pub fn with_captions(mut self, on: bool) -> Self {
        self.captions = on;
        self
    }

    /// Encoder settings name this hub's RTMP listener.
    pub fn with_ingest(mut self, ingest: Arc<crate::ingest::IngestHub>) -> Self {
        self.ingest = Some(ingest);
        self
    }

    /// Recordings are deleted through this recorder.
    pub fn with_recorder(mut self, recorder: Arc<crate::recording::Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Adds recording summaries to streams for a page.
    async fn summaries(&self, streams: Vec<Stream>) -> Result<Vec<Stream>, AppError> {
        recordings::with_summaries(&self.db, &self.accounts, streams)
            .await
            .map_err(refused)
    }

    /// Live listings carry the viewer counts of these rooms.
    pub fn with_rooms(mut self, rooms: Arc<crate::realtime::Rooms>) -> Self {
        self.rooms = Some(rooms);
        self
    }

    /// Analytics come from this tracker.
    pub fn with_analytics(mut self, analytics: Arc<crate::analytics::Analytics>) -> Self {
        self.analytics = Some(analytics);
        self
    }

    /// Summaries are made by this summarizer.
    pub fn with_summaries(mut self, summaries: Arc<crate::summary::Summarizer>) -> Self {
        self.summaries = Some(summaries);
        self
    }

    fn summarizer(&self) -> Result<&Arc<crate::summary::Summarizer>, AppError> {
        self.summaries
            .as_ref()
            .ok_or_else(|| AppError::Unavailable("summaries are not set up".into()))
    }

    fn analytics(&self) -> Result<&Arc<crate::analytics::Analytics>, AppError> {
        self.analytics
            .as_ref()
            .ok_or_else(|| AppError::Unavailable("analytics are not running".into()))
    }

    async fn user(&self, req: &Parts) -> Result<(RequestInfo, Option<SessionUser>), AppError> {
        let info = RequestInfo::from_parts(req, &self.accounts);
        let user = accounts::current_user(&self.db, &info)
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

impl Backend for DbBackend {
    fn live_streams(&self) -> BoxFuture<'_, Result<Vec<StreamCard>, AppError>> {
        Box::pin(async move {
            let rows = self.db.live_streams(50).await.map_err(unavailable)?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let mut card = listings::live_card(r.id, r.title, r.owner, r.started_at);
                    card.viewers = self
                        .rooms
                        .as_ref()
                        .map(|rooms| rooms.viewer_count(&card.id));
                    card
                })
                .collect())
        })
    }

    fn recent_streams(&self) -> BoxFuture<'_, Result<Vec<StreamCard>, AppError>> {
        Box::pin(async move {
            listings::recent(&self.db, RECENT_STREAMS)
                .await
                .map_err(unavailable)
        })
    }

    fn profile(&self, name: String) -> BoxFuture<'_, Result<Profile, AppError>> {
        Box::pin(async move {
            let mut profile = listings::profile(&self.db, &name, ProfileParams::default())
                .await
                .map_err(refused)?;
            profile.streams = self.summaries(profile.streams).await?;
            Ok(profile)
        })
    }

    fn current_user(&self, req: Parts) -> BoxFuture<'_, Result<Option<User>, AppError>> {
        Box::pin(async move { Ok(self.user(&req).await?.1.map(|s| s.user)) })
    }

    fn register(
        &self,
        req: Parts,
        creds: Credentials,
    ) -> BoxFuture<'_, Result<Reply<User>, AppError>> {
        Box::pin(async move {
            let info = RequestInfo::from_parts(&req, &self.accounts);
            let (user, cookie) = accounts::register(&self.db, &self.accounts, &info, creds)
                .await
                .map_err(auth_refused)?;
            Ok(Reply {
                value: user,
                set_cookie: Some(cookie.0),
            })
        })
    }

    fn login(
        &self,
        req: Parts,
        creds: Credentials,
    ) -> BoxFuture<'_, Result<Reply<User>, AppError>> {
        Box::pin(async move {
            let info = RequestInfo::from_parts(&req, &self.accounts);
            let (user, cookie) = accounts::login(&self.db, &self.accounts, &info, creds)
                .await
                .map_err(auth_refused)?;
            Ok(Reply {
                value: user,
                set_cookie: Some(cookie.0),
            })
        })
    }

    fn logout(&self, req: Parts) -> BoxFuture<'_, Result<Reply<()>, AppError>> {
        Box::pin(async move {
            let info = RequestInfo::from_parts(&req, &self.accounts);
            let cookie = accounts::logout(&self.db, &self.accounts, &info)
                .await
                .map_err(refused)?;
            Ok(Reply {
                value: (),
                set_cookie: Some(cookie.0),
            })
        })
    }

    fn my_streams(&self, req: Parts) -> BoxFuture<'_, Result<Vec<Stream>, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            let query = ListParams {
                mine: Some(true),
                limit: Some(MAX_LIMIT),
                ..Default::default()
            };
            let list = streams::list(&self.db, user.as_ref(), query)
                .await
                .map_err(refused)?;
            self.summaries(list.streams).await
        })
    }

    fn create_stream(
        &self,
        req: Parts,
        body: NewStream,
    ) -> BoxFuture<'_, Result<Stream, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            streams::create(&self.db, user.as_ref(), body)
                .await
                .map_err(refused)
        })
    }

    fn update_stream(
        &self,
        req: Parts,
        id: String,
        patch: StreamPatch,
    ) -> BoxFuture<'_, Result<Stream, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            streams::update(
                &self.db,
                &self.accounts,
                self.rooms.as_deref(),
                user.as_ref(),
                &id,
                patch,
            )
            .await
            .map_err(refused)
        })
    }

    fn delete_stream(&self, req: Parts, id: String) -> BoxFuture<'_, Result<(), AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            streams::delete(
                &self.db,
                &self.accounts,
                self.recorder.as_deref(),
                user.as_ref(),
                &id,
            )
            .await
            .map_err(refused)
        })
    }

    fn regenerate_ingest_token(
        &self,
        req: Parts,
        id: String,
    ) -> BoxFuture<'_, Result<Stream, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            streams::regenerate_token(&self.db, user.as_ref(), &id)
                .await
                .map_err(refused)
        })
    }

    fn encoder(&self, req: Parts, id: String) -> BoxFuture<'_, Result<EncoderInfo, AppError>> {
        Box::pin(async move {
            let (info, user) = self.user(&req).await?;
            let listeners = self
                .ingest
                .as_ref()
                .map(|h| streams::EncoderListeners::of(h))
                .unwrap_or_default();
            streams::encoder(
                &self.db,
                &self.accounts,
                user.as_ref(),
                &id,
                &info,
                &listeners,
            )
            .await
            .map_err(refused)
        })
    }

    fn share(
        &self,
        req: Parts,
        id: String,
        body: app::streams::ShareRequest,
    ) -> BoxFuture<'_, Result<app::streams::ShareLink, AppError>> {
        Box::pin(async move {
            let (info, user) = self.user(&req).await?;
            streams::share(&self.db, &self.accounts, user.as_ref(), &id, &info, &body)
                .await
                .map_err(refused)
        })
    }

    fn health(&self, req: Parts, id: String) -> BoxFuture<'_, Result<StreamHealth, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            streams::health(&self.db, user.as_ref(), &id, self.ingest.as_deref())
                .await
                .map_err(refused)
        })
    }

    fn watch(&self, req: Parts, id: String) -> BoxFuture<'_, Result<WatchInfo, AppError>> {
        Box::pin(async move {
            let (info, user) = self.user(&req).await?;
            streams::watch(
                &self.db,
                &self.accounts,
                user.as_ref(),
                &id,
                &info,
                self.captions,
            )
            .await
            .map_err(refused)
        })
    }

    fn get_stream(&self, req: Parts, id: String) -> BoxFuture<'_, Result<Stream, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            let stream = streams::read(&self.db, user.as_ref(), &id)
                .await
                .map_err(refused)?;
            let mut one = self.summaries(vec![stream]).await?;
            one.pop()
                .ok_or_else(|| AppError::Unavailable("the stream went away".into()))
        })
    }

    fn recording(&self, req: Parts, id: String) -> BoxFuture<'_, Result<Recording, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            recordings::get(&self.db, &self.accounts, user.as_ref(), &id)
                .await
                .map_err(refused)
        })
    }

    fn delete_recording(&self, req: Parts, id: String) -> BoxFuture<'_, Result<(), AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            let Some(recorder) = self.recorder.as_deref() else {
                return Err(AppError::Unavailable("recordings are not set up".into()));
            };
            recordings::delete(&self.db, recorder, user.as_ref(), &id)
                .await
                .map_err(refused)
        })
    }

    fn transcript(
        &self,
        req: Parts,
        id: String,
        token: Option<String>,
    ) -> BoxFuture<'_, Result<app::transcripts::Transcript, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            crate::service::transcripts::get(
                &self.db,
                &self.accounts,
                user.as_ref(),
                &id,
                token.as_deref(),
            )
            .await
            .map_err(refused)
        })
    }

    fn search(
        &self,
        req: Parts,
        q: String,
        limit: Option<u32>,
    ) -> BoxFuture<'_, Result<app::search::SearchResults, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            metrics::counter!("onair_search_requests_total").increment(1);
            crate::service::search::search(&self.db, user.as_ref(), &q, limit)
                .await
                .map_err(refused)
        })
    }

    fn summary(
        &self,
        req: Parts,
        id: String,
    ) -> BoxFuture<'_, Result<app::summaries::SummaryStatus, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            crate::service::summaries::status(&self.db, self.summarizer()?, user.as_ref(), &id)
                .await
                .map_err(refused)
        })
    }

    fn start_summary(
        &self,
        req: Parts,
        id: String,
    ) -> BoxFuture<'_, Result<app::summaries::SummaryStatus, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            crate::service::summaries::start(&self.db, self.summarizer()?, user.as_ref(), &id)
                .await
                .map_err(refused)
        })
    }

    fn dashboard(&self, req: Parts) -> BoxFuture<'_, Result<app::analytics::Dashboard, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            crate::service::analytics::dashboard(&self.db, self.analytics()?, user.as_ref())
                .await
                .map_err(refused)
        })
    }

    fn stream_analytics(
        &self,
        req: Parts,
        id: String,
    ) -> BoxFuture<'_, Result<app::analytics::StreamAnalytics, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            crate::service::analytics::stream(&self.db, self.analytics()?, user.as_ref(), &id)
                .await
                .map_err(refused)
        })
    }
}
