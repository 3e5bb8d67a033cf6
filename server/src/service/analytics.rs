//! Who may see analytics, and what the dashboard shows: a stream's owner and
//! admins see its analytics; the dashboard lists the caller's streams (an
//! admin's: everyone's).

use app::accounts::Role;
use app::analytics::{Dashboard, StreamAnalytics};

use super::streams::{load_managed, StreamError};
use super::SessionUser;
use crate::analytics::Analytics;
use crate::db::streams::StreamFilter;
use crate::db::Database;

/// Streams the dashboard looks at, at most.
pub const DASHBOARD_STREAMS: i64 = 100;

/// `GET /api/v1/streams/{id}/analytics`: owner and admins.
pub async fn stream(
    db: &Database,
    analytics: &Analytics,
    user: Option<&SessionUser>,
    id: &str,
) -> Result<StreamAnalytics, StreamError> {
    let (row, _) = load_managed(db, id, user).await?;
    Ok(analytics.stream(&row).await?)
}

/// The dashboard: live streams with their analytics, and the streams that
/// have been live, newest first.
pub async fn dashboard(
    db: &Database,
    analytics: &Analytics,
    user: Option<&SessionUser>,
) -> Result<Dashboard, StreamError> {
    let user = user.ok_or(StreamError::Unauthenticated)?;
    if user.user.role == Role::Viewer {
        return Err(StreamError::CannotBroadcast);
    }
    let owner = (!user.is_admin()).then_some(user.user.id.as_str());
    let rows = db
        .list_streams(StreamFilter {
            owner,
            limit: DASHBOARD_STREAMS,
            ..Default::default()
        })
        .await?;
    let mut live = Vec::new();
    for row in rows.iter().filter(|r| r.state == "live") {
        live.push(analytics.stream(row).await?);
    }
    let mut past: Vec<_> = rows
        .into_iter()
        .filter(|r| r.started_at.is_some())
        .collect();
    past.sort_by(|a, b| b.started_at.cmp(&a.started_at));
    let history = analytics.history(&past).await?;
    Ok(Dashboard { live, history })
}
