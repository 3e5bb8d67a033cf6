//! Recordings: the VOD and MP4 every live stream leaves behind (JSON API
//! types and the server functions the pages use).

#[cfg(feature = "ssr")]
use crate::serverfn::{BoxFuture, Parts};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Where a recording's progressive MP4 stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mp4State {
    /// Queued behind another recording.
    Pending,
    /// Being made: see the progress.
    Building,
    /// Ready to download.
    Ready,
    /// It failed; the error says why.
    Failed,
}

impl Mp4State {
    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Mp4State> {
        Some(match s {
            "pending" => Mp4State::Pending,
            "building" => Mp4State::Building,
            "ready" => Mp4State::Ready,
            "failed" => Mp4State::Failed,
            _ => return None,
        })
    }
}

/// One rendition of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingRendition {
    /// Its name (`720p`, `audio`).
    pub name: String,
    /// Segments in its playlist.
    pub segments: u64,
    /// Bytes of those segments.
    pub bytes: u64,
}

/// The progressive MP4 of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mp4Status {
    /// Pending, building, ready or failed.
    pub state: Mp4State,
    /// Percent done (100 when ready).
    pub progress: u8,
    /// Why it failed.
    pub error: Option<String>,
    /// Its size once ready.
    pub bytes: Option<u64>,
    /// Its duration once ready, ms.
    pub duration_ms: Option<u64>,
    /// Where to download it once ready (with a playback token for private streams).
    pub url: Option<String>,
}

/// A stream's recording as `GET /api/v1/streams/{id}/recording` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// The stream.
    pub stream_id: String,
    /// Duration of the top rendition, ms.
    pub duration_ms: u64,
    /// Its renditions.
    pub renditions: Vec<RecordingRendition>,
    /// Bytes it takes in the store (segments, playlists; not the MP4).
    pub store_bytes: u64,
    /// Places where the recording jumps (broadcaster reconnects, lost segments).
    pub discontinuities: u64,
    /// The VOD master playlist's path (with a playback token for private streams).
    pub master: String,
    /// The thumbnail's path, once made.
    pub thumbnail: Option<String>,
    /// The progressive MP4.
    pub mp4: Mp4Status,
    /// When it was first made, RFC 3339.
    pub created_at: String,
    /// When it last changed, RFC 3339.
    pub updated_at: String,
}

/// What listings show of a stream's recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingSummary {
    /// Duration, ms.
    pub duration_ms: u64,
    /// The thumbnail's path, once made.
    pub thumbnail: Option<String>,
    /// The MP4's state.
    pub mp4: Mp4State,
    /// Percent done while the MP4 is made.
    pub progress: u8,
    /// Where to download the MP4 once ready.
    #[serde(default)]
    pub download: Option<String>,
}

/// What this area's server functions need from the server (server build
/// only). The server implements it and provides an `Arc<dyn RecordingsBackend>` in the
/// Leptos context; the rules are the JSON API's (docs/api.md), and refusals
/// are [`AppError::Refused`] with the API's
/// status and code.
#[cfg(feature = "ssr")]
pub trait RecordingsBackend: Send + Sync + 'static {
    /// A stream's recording, if the caller may see the stream.
    fn recording(&self, req: Parts, id: String) -> BoxFuture<'_, Result<Recording, AppError>>;
    /// Deletes a stream's recording (owner or admin; not while live).
    fn delete_recording(&self, req: Parts, id: String) -> BoxFuture<'_, Result<(), AppError>>;
}

/// A stream's recording, if the caller may see the stream.
#[server(prefix = "/api/fn")]
pub async fn get_recording(id: String) -> Result<Recording, AppError> {
    let b = crate::serverfn::provided::<dyn RecordingsBackend>()?;
    crate::serverfn::status(b.recording(crate::serverfn::request()?, id).await)
}

/// Deletes a stream's recording (owner or admin; not while live).
#[server(prefix = "/api/fn")]
pub async fn delete_recording(id: String) -> Result<(), AppError> {
    let b = crate::serverfn::provided::<dyn RecordingsBackend>()?;
    crate::serverfn::status(b.delete_recording(crate::serverfn::request()?, id).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mp4_states_have_stable_names() {
        assert_eq!(Mp4State::parse("building"), Some(Mp4State::Building));
        assert_eq!(Mp4State::parse("x"), None);
        assert_eq!(
            serde_json::to_string(&Mp4State::Ready).expect("json"),
            "\"ready\""
        );
    }
}
