//! Chapters as the API sees them: whoever may watch a stream reads its
//! chapters (the transcript's rules: `load_watchable`); only its owner and
//! admins make or edit them (the summaries' rules: `load_managed`). The
//! work is in [`crate::summary::chapter_jobs`].

use std::sync::Arc;

use app::chapters::{Chapter, ChaptersStatus};

use super::streams::{load_managed, StreamError};
use super::transcripts::load_watchable;
use super::SessionUser;
use crate::auth::Accounts;
use crate::db::Database;
use crate::summary::chapter_jobs::ChaptersEditError;
use crate::summary::{Summarizer, SummaryError};

/// Why a chapters request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChaptersError {
    /// The caller may not see or change the stream.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// A job could not start.
    #[error(transparent)]
    Job(#[from] SummaryError),
    /// The edited list was refused.
    #[error(transparent)]
    Edit(#[from] ChaptersEditError),
}

/// A stream's chapters and where making them stands, for whoever may
/// watch it (`token`: a private stream's playback token).
pub async fn status(
    db: &Database,
    accounts: &Accounts,
    summarizer: &Summarizer,
    user: Option<&SessionUser>,
    id: &str,
    token: Option<&str>,
) -> Result<ChaptersStatus, ChaptersError> {
    load_watchable(db, accounts, user, id, token).await?;
    Ok(summarizer.chapters_status(id).await?)
}

/// Starts making a stream's chapters (again): owner and admins.
pub async fn start(
    db: &Database,
    summarizer: &Arc<Summarizer>,
    user: Option<&SessionUser>,
    id: &str,
) -> Result<ChaptersStatus, ChaptersError> {
    let (_, user) = load_managed(db, id, user).await?;
    let status = summarizer.start_chapters(id).await?;
    tracing::info!(stream = %id, by = %user.user.id, "chapters requested");
    Ok(status)
}

/// Replaces a stream's chapters with the owner's list: owner and admins.
pub async fn edit(
    db: &Database,
    summarizer: &Summarizer,
    user: Option<&SessionUser>,
    id: &str,
    list: Vec<Chapter>,
) -> Result<ChaptersStatus, ChaptersError> {
    let (_, user) = load_managed(db, id, user).await?;
    summarizer.edit_chapters(id, list).await?;
    tracing::info!(stream = %id, by = %user.user.id, "chapters edited");
    Ok(summarizer.chapters_status(id).await?)
}
