//! The streams area's server functions: listings, profiles, a broadcaster's
//! streams and their settings, watch and encoder information, share links.

use app::error::AppError;
use app::serverfn::BoxFuture;
use app::streams::{
    EncoderInfo, NewStream, Profile, Stream, StreamCard, StreamPatch, WatchInfo, RECENT_STREAMS,
};
use axum::http::request::Parts;

use super::{refused, unavailable, Services};
use crate::service::listings::{self, ProfileParams};
use crate::service::streams::{self, ListParams, MAX_LIMIT};

impl app::streams::StreamsBackend for Services {
    fn live_streams(&self) -> BoxFuture<'_, Result<Vec<StreamCard>, AppError>> {
        Box::pin(async move {
            let rows = self.db.live_streams(50).await.map_err(unavailable)?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let mut card = listings::live_card(r.id, r.title, r.owner, r.started_at);
                    card.viewers = Some(self.rooms.viewer_count(&card.id));
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
            profile.streams = self.with_summaries(profile.streams).await?;
            Ok(profile)
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
            self.with_summaries(list.streams).await
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
                Some(&*self.rooms),
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
                Some(&*self.recorder),
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

    fn encoder(&self, req: Parts, id: String) -> BoxFuture<'_, Result<EncoderInfo, AppError>> {
        Box::pin(async move {
            let (info, user) = self.user(&req).await?;
            let listeners = streams::EncoderListeners::of(&self.ingest);
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

    fn get_stream(&self, req: Parts, id: String) -> BoxFuture<'_, Result<Stream, AppError>> {
        Box::pin(async move {
            let (_, user) = self.user(&req).await?;
            let stream = streams::read(&self.db, user.as_ref(), &id)
                .await
                .map_err(refused)?;
            let mut one = self.with_summaries(vec![stream]).await?;
            one.pop()
                .ok_or_else(|| AppError::Unavailable("the stream went away".into()))
        })
    }
}
