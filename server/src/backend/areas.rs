//! The server functions of the smaller areas: a live stream's health, its
//! recording, transcript and summary, search, and analytics.

use app::error::AppError;
use app::health::StreamHealth;
use app::recordings::Recording;
use app::serverfn::BoxFuture;
use axum::http::request::Parts;

use super::{refused, Services};
use crate::service::{recordings, streams};

impl app::health::HealthBackend for Services {
    fn health(&self, req: Parts, id: String) -> BoxFuture<'_, Result<StreamHealth, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            streams::health(&self.db, user.as_ref(), &id, Some(&*self.ingest))
                .await
                .map_err(refused)
        })
    }
}

impl app::recordings::RecordingsBackend for Services {
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
            recordings::delete(&self.db, &self.recorder, user.as_ref(), &id)
                .await
                .map_err(refused)
        })
    }
}

impl app::transcripts::TranscriptsBackend for Services {
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
}

impl app::search::SearchBackend for Services {
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
}

impl app::summaries::SummariesBackend for Services {
    fn summary(
        &self,
        req: Parts,
        id: String,
    ) -> BoxFuture<'_, Result<app::summaries::SummaryStatus, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            crate::service::summaries::status(&self.db, &self.summaries, user.as_ref(), &id)
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
            crate::service::summaries::start(&self.db, &self.summaries, user.as_ref(), &id)
                .await
                .map_err(refused)
        })
    }
}

impl app::chapters::ChaptersBackend for Services {
    fn chapters(
        &self,
        req: Parts,
        id: String,
        token: Option<String>,
    ) -> BoxFuture<'_, Result<app::chapters::ChaptersStatus, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            crate::service::chapters::status(
                &self.db,
                &self.accounts,
                &self.summaries,
                user.as_ref(),
                &id,
                token.as_deref(),
            )
            .await
            .map_err(refused)
        })
    }

    fn start_chapters(
        &self,
        req: Parts,
        id: String,
    ) -> BoxFuture<'_, Result<app::chapters::ChaptersStatus, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            crate::service::chapters::start(&self.db, &self.summaries, user.as_ref(), &id)
                .await
                .map_err(refused)
        })
    }

    fn edit_chapters(
        &self,
        req: Parts,
        id: String,
        chapters: Vec<app::chapters::Chapter>,
    ) -> BoxFuture<'_, Result<app::chapters::ChaptersStatus, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            crate::service::chapters::edit(&self.db, &self.summaries, user.as_ref(), &id, chapters)
                .await
                .map_err(refused)
        })
    }
}

impl app::analytics::AnalyticsBackend for Services {
    fn dashboard(&self, req: Parts) -> BoxFuture<'_, Result<app::analytics::Dashboard, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            crate::service::analytics::dashboard(&self.db, &self.analytics, user.as_ref())
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
            crate::service::analytics::stream(&self.db, &self.analytics, user.as_ref(), &id)
                .await
                .map_err(refused)
        })
    }
}
