//! Recordings as the API and the pages see them: read (anyone who may see the
//! stream), delete (owner or admin, not while live), and the summaries that
//! listings carry. The work itself is in [`crate::recording`].

use app::protocol::StreamState;
use app::recordings::{Mp4State, Mp4Status, Recording, RecordingRendition, RecordingSummary};
use app::streams::{Stream, Visibility};

use super::streams::{load_managed, load_visible, StreamError};
use super::SessionUser;
use crate::auth::playback::unix_now;
use crate::auth::Accounts;
use crate::db::recordings::RecordingRow;
use crate::db::Database;
use crate::recording::Recorder;

/// `/vod/{id}`, or `/vod/{id}/t/{token}` for a private stream, so every
/// path under it carries a playback token.
pub fn vod_prefix(accounts: &Accounts, id: &str, visibility: Visibility) -> String {
    if visibility == Visibility::Private {
        let (token, _) = accounts
            .playback
            .issue(id, accounts.playback_ttl, unix_now());
        format!("/vod/{id}/t/{token}")
    } else {
        format!("/vod/{id}")
    }
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn mp4_state(row: &RecordingRow) -> Mp4State {
    Mp4State::parse(&row.mp4_state).unwrap_or(Mp4State::Failed)
}

/// The API form of a recording row; `prefix` from [`vod_prefix`].
pub fn recording_from_row(row: RecordingRow, prefix: &str) -> Recording {
    let state = mp4_state(&row);
    Recording {
        duration_ms: unsigned(row.duration_ms),
        renditions: row
            .renditions
            .into_iter()
            .map(|r| RecordingRendition {
                name: r.name,
                segments: unsigned(r.segments),
                bytes: unsigned(r.bytes),
            })
            .collect(),
        store_bytes: unsigned(row.store_bytes),
        discontinuities: unsigned(row.discontinuities),
        master: format!("{prefix}/master.m3u8"),
        thumbnail: row.thumbnail.then(|| format!("{prefix}/thumbnail.jpg")),
        mp4: Mp4Status {
            state,
            progress: u8::try_from(row.mp4_progress.clamp(0, 100)).unwrap_or(0),
            error: row.mp4_error,
            bytes: row.mp4_bytes.map(unsigned),
            duration_ms: row.mp4_duration_ms.map(unsigned),
            url: (state == Mp4State::Ready).then(|| format!("{prefix}/recording.mp4")),
        },
        stream_id: row.stream,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// A stream's recording, if the user may see the stream.
pub async fn get(
    db: &Database,
    accounts: &Accounts,
    user: Option<&SessionUser>,
    id: &str,
) -> Result<Recording, StreamError> {
    let stream = load_visible(db, id, user).await?;
    let row = db
        .get_recording(id)
        .await?
        .ok_or_else(|| StreamError::NotFound(format!("recording of stream {id}")))?;
    let visibility = Visibility::parse(&stream.visibility).unwrap_or(Visibility::Private);
    Ok(recording_from_row(
        row,
        &vod_prefix(accounts, id, visibility),
    ))
}

/// Deletes a stream's recording: its objects in the store and its rows.
pub async fn delete(
    db: &Database,
    recorder: &Recorder,
    user: Option<&SessionUser>,
    id: &str,
) -> Result<(), StreamError> {
    let (row, user) = load_managed(db, id, user).await?;
    if row.state == StreamState::Live.as_str() {
        return Err(StreamError::Live);
    }
    match recorder.delete(id).await {
        Ok(true) => {
            tracing::info!(stream = %id, by = %user.user.id, "recording deleted");
            Ok(())
        }
        Ok(false) => Err(StreamError::NotFound(format!("recording of stream {id}"))),
        Err(e) => Err(StreamError::Unavailable(e.to_string())),
    }
}

/// Adds each stream's recording summary (duration, thumbnail, MP4 state).
pub async fn with_summaries(
    db: &Database,
    accounts: &Accounts,
    mut streams: Vec<Stream>,
) -> Result<Vec<Stream>, StreamError> {
    let ids: Vec<String> = streams.iter().map(|s| s.id.clone()).collect();
    let rows = db.recordings_of(&ids).await?;
    for row in rows {
        let Some(s) = streams.iter_mut().find(|s| s.id == row.stream) else {
            continue;
        };
        let prefix = vod_prefix(accounts, &s.id, s.visibility);
        let state = mp4_state(&row);
        s.recording = Some(RecordingSummary {
            duration_ms: unsigned(row.duration_ms),
            thumbnail: row.thumbnail.then(|| format!("{prefix}/thumbnail.jpg")),
            mp4: state,
            progress: u8::try_from(row.mp4_progress.clamp(0, 100)).unwrap_or(0),
            download: (state == Mp4State::Ready).then(|| format!("{prefix}/recording.mp4")),
        });
    }
    Ok(streams)
}
