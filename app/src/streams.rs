//! Streams as the pages see them, and the server functions that list them.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// The lifecycle state of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    /// Created, never live or not live now.
    Idle,
    /// A broadcaster is publishing.
    Live,
    /// The broadcaster ended it.
    Ended,
    /// The broadcaster vanished and did not come back in the grace period.
    Interrupted,
}

/// A stream as listed on the home page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCard {
    /// The stream id used in URLs.
    pub id: String,
    /// The title the owner gave it.
    pub title: String,
    /// The owner's username.
    pub owner: String,
    /// When it went live, RFC 3339.
    pub started_at: Option<String>,
}

/// Lists the streams that are live now.
#[server(prefix = "/api/fn")]
pub async fn live_streams() -> Result<Vec<StreamCard>, AppError> {
    crate::backend::backend()?.live_streams().await
}
