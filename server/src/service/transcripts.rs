//! Transcripts as the API and the pages see them. The rules are the watch
//! page's: public and unlisted streams are open to anyone; a private one to
//! its owner and admins, or to anyone with a valid playback token for it
//! (the token its watch link carries).

use app::protocol::StreamState;
use app::transcripts::{render_srt, render_txt, render_vtt, Transcript, TranscriptLine};

use super::streams::{load_visible, StreamError};
use super::SessionUser;
use crate::auth::playback::unix_now;
use crate::auth::Accounts;
use crate::db::streams::StreamRow;
use crate::db::Database;

/// The stream if the caller may watch it: as [`load_visible`], or with a
/// valid playback token for a private one. A bad token is the same 404.
pub(crate) async fn load_watchable(
    db: &Database,
    accounts: &Accounts,
    user: Option<&SessionUser>,
    id: &str,
    token: Option<&str>,
) -> Result<StreamRow, StreamError> {
    match load_visible(db, id, user).await {
        Err(StreamError::NotFound(_)) if token.is_some_and(|t| !t.is_empty()) => {
            let token = token.unwrap_or_default();
            match accounts.playback.verify(id, token, unix_now()) {
                Ok(_) => db
                    .get_stream(id)
                    .await?
                    .ok_or_else(|| StreamError::NotFound(id.into())),
                Err(e) => {
                    tracing::debug!(stream = %id, error = %e, "transcript token refused");
                    Err(StreamError::NotFound(id.into()))
                }
            }
        }
        other => other,
    }
}

/// A stream's transcript, if the caller may watch the stream.
pub async fn get(
    db: &Database,
    accounts: &Accounts,
    user: Option<&SessionUser>,
    id: &str,
    token: Option<&str>,
) -> Result<Transcript, StreamError> {
    let row = load_watchable(db, accounts, user, id, token).await?;
    let lines = db
        .stream_transcript(id)
        .await?
        .into_iter()
        .map(|r| TranscriptLine {
            start_ms: r.start_ms,
            end_ms: r.end_ms,
            text: r.text,
        })
        .collect();
    Ok(Transcript {
        stream_id: row.id,
        state: StreamState::parse(&row.state).unwrap_or(StreamState::Idle),
        title: row.title,
        lines,
    })
}

/// A transcript download format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// WebVTT.
    Vtt,
    /// SubRip.
    Srt,
    /// Plain text, one `[m:ss] text` line per line.
    Txt,
}

impl Format {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Vtt => "vtt",
            Format::Srt => "srt",
            Format::Txt => "txt",
        }
    }

    /// The `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Vtt => "text/vtt; charset=utf-8",
            Format::Srt => "application/x-subrip; charset=utf-8",
            Format::Txt => "text/plain; charset=utf-8",
        }
    }

    /// The transcript in this format.
    pub fn render(self, lines: &[TranscriptLine]) -> String {
        match self {
            Format::Vtt => render_vtt(lines),
            Format::Srt => render_srt(lines),
            Format::Txt => render_txt(lines),
        }
    }
}

/// A file name from the stream's title: its letters, digits, spaces and
/// `-_.`, at most 80 characters, else `onair-{id}`; then `-transcript.{ext}`.
pub fn download_name(title: &str, id: &str, format: Format) -> String {
    let clean: String = title
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'))
        .take(80)
        .collect();
    let clean = clean.trim().trim_matches('.').trim();
    let base = if clean.is_empty() {
        format!("onair-{id}")
    } else {
        clean.to_string()
    };
    format!("{base}-transcript.{}", format.extension())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_come_from_the_title() {
        assert_eq!(
            download_name("Cooking \"pasta\"/live", "abc", Format::Srt),
            "Cooking pastalive-transcript.srt"
        );
        assert_eq!(
            download_name("ü…", "abc", Format::Vtt),
            "onair-abc-transcript.vtt"
        );
        assert_eq!(Format::Txt.content_type(), "text/plain; charset=utf-8");
    }
}
