//! The stream's lifecycle state, as the events socket, the JSON API and the
//! database name it.

use serde::{Deserialize, Serialize};

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

impl StreamState {
    /// Every state.
    pub const ALL: [StreamState; 4] = [
        StreamState::Idle,
        StreamState::Live,
        StreamState::Ended,
        StreamState::Interrupted,
    ];

    /// The name stored in the database and sent in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Idle => "idle",
            StreamState::Live => "live",
            StreamState::Ended => "ended",
            StreamState::Interrupted => "interrupted",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<StreamState> {
        StreamState::ALL.into_iter().find(|v| v.as_str() == s)
    }
}
