//! Summaries as the API and the dashboard see them: only the stream's owner
//! and admins may read or make them (401 signed out, 403 another user's
//! public or unlisted stream, 404 another user's private one). The work is
//! in [`crate::summary`].

use app::summaries::SummaryStatus;

use super::streams::{load_managed, StreamError};
use super::SessionUser;
use crate::db::Database;
use crate::summary::{Summarizer, SummaryError};

/// Why a summary request was refused: the stream's permission rules, or
/// the summarizer's own answer.
#[derive(Debug, thiserror::Error)]
pub enum SummariesError {
    /// The caller may not see or change the stream.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The summarizer refused or failed.
    #[error(transparent)]
    Summary(#[from] SummaryError),
}

/// A stream's summary and where making one stands.
pub async fn status(
    db: &Database,
    summarizer: &Summarizer,
    user: Option<&SessionUser>,
    id: &str,
) -> Result<SummaryStatus, SummariesError> {
    load_managed(db, id, user).await?;
    Ok(summarizer.status(id).await?)
}

/// Starts making a stream's summary (again).
pub async fn start(
    db: &Database,
    summarizer: &std::sync::Arc<Summarizer>,
    user: Option<&SessionUser>,
    id: &str,
) -> Result<SummaryStatus, SummariesError> {
    let (_, user) = load_managed(db, id, user).await?;
    let status = summarizer.start(id).await?;
    tracing::info!(stream = %id, by = %user.user.id, "summary requested");
    Ok(status)
}
