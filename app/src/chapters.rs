//! Chapters of a stream's recording, made from its transcript: what
//! `GET`/`POST`/`PUT /api/v1/streams/{id}/chapters` answer and take, their
//! WebVTT `chapters` track, and the rules every chapter list keeps, whoever
//! made it (the AI model, the built-in segmentation, or the owner's edit).
//!
//! Times are integer milliseconds on the stream's media timeline, the same
//! as the transcript's and the recording's (`?t=`).

#[cfg(feature = "ssr")]
use crate::serverfn::{BoxFuture, Parts};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::transcripts::{url_token, vtt_text, vtt_timestamp};

/// The most chapters a list may have.
pub const MAX_CHAPTERS: usize = 100;
/// The longest chapter title, in characters.
pub const MAX_TITLE_CHARS: usize = 100;

/// One chapter: where it starts and what it is called. It ends where the
/// next one starts (the last one at the end of the recording).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chapter {
    /// Start, ms on the media timeline.
    pub start_ms: i64,
    /// The title (plain text).
    pub title: String,
}

/// How a chapter list was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChaptersKind {
    /// By an AI model from the transcript (`model` says which).
    Llm,
    /// By the built-in topic segmentation (lexical cohesion, titles from key
    /// phrases), when no model is configured.
    Builtin,
    /// Edited by the owner.
    Edited,
}

impl ChaptersKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChaptersKind::Llm => "llm",
            ChaptersKind::Builtin => "builtin",
            ChaptersKind::Edited => "edited",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<ChaptersKind> {
        match s {
            "llm" => Some(ChaptersKind::Llm),
            "builtin" => Some(ChaptersKind::Builtin),
            "edited" => Some(ChaptersKind::Edited),
            _ => None,
        }
    }
}

/// A stream's chapters as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chapters {
    /// The stream.
    pub stream_id: String,
    /// How they were made.
    pub kind: ChaptersKind,
    /// The model that wrote them (`llm` only).
    pub model: Option<String>,
    /// In order of start, the first at 0.
    pub chapters: Vec<Chapter>,
    /// When they were made or edited, RFC 3339.
    pub updated_at: String,
}

/// Where making a stream's chapters stands (`GET …/chapters`, and the `202`
/// of the `POST`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChaptersStatus {
    /// The stream.
    pub stream_id: String,
    /// Whether a job is making them now.
    pub running: bool,
    /// Model calls done so far, of `total_calls` (0 of 0 for the built-in
    /// method and before a job).
    pub done_calls: u32,
    /// Model calls this job takes.
    pub total_calls: u32,
    /// Why the last attempt failed (the stored chapters are kept).
    pub error: Option<String>,
    /// The stored chapters, if any.
    pub chapters: Option<Chapters>,
    /// Whether an AI model is configured (else the built-in method runs).
    pub llm: bool,
}

/// The body of `PUT …/chapters`: the owner's edited list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChaptersEdit {
    /// The whole new list.
    pub chapters: Vec<Chapter>,
}

/// Why a chapter list is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChapterRuleError {
    /// No chapter at all.
    #[error("a chapter list needs at least one chapter")]
    Empty,
    /// More than [`MAX_CHAPTERS`].
    #[error("at most {MAX_CHAPTERS} chapters")]
    TooMany,
    /// A blank title, or one over [`MAX_TITLE_CHARS`].
    #[error("chapter {0}: a title of 1 to {MAX_TITLE_CHARS} characters is needed")]
    Title(usize),
    /// The first chapter does not start at 0.
    #[error("the first chapter must start at 0:00")]
    FirstNotAtZero,
    /// Starts not strictly increasing.
    #[error("chapter {0} must start after the one before it")]
    Order(usize),
    /// A start at or past the end of the recording.
    #[error("chapter {0} starts after the end of the recording")]
    PastEnd(usize),
}

/// Checks a chapter list against the rules: 1 to [`MAX_CHAPTERS`]
/// chapters, titled (1 to [`MAX_TITLE_CHARS`] characters, trimmed), the
/// first at 0, starts strictly increasing and, when the recording's length
/// is known (`end_ms`), before its end. Chapter numbers in errors count from 1.
pub fn check(chapters: &[Chapter], end_ms: Option<i64>) -> Result<(), ChapterRuleError> {
    if chapters.is_empty() {
        return Err(ChapterRuleError::Empty);
    }
    if chapters.len() > MAX_CHAPTERS {
        return Err(ChapterRuleError::TooMany);
    }
    for (i, c) in chapters.iter().enumerate() {
        let n = i + 1;
        let title = c.title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
            return Err(ChapterRuleError::Title(n));
        }
        if i == 0 && c.start_ms != 0 {
            return Err(ChapterRuleError::FirstNotAtZero);
        }
        if i > 0 && c.start_ms <= chapters[i - 1].start_ms {
            return Err(ChapterRuleError::Order(n));
        }
        if end_ms.is_some_and(|end| i > 0 && c.start_ms >= end) {
            return Err(ChapterRuleError::PastEnd(n));
        }
    }
    Ok(())
}

/// The chapters as a WebVTT `chapters` track: one cue per chapter, from its
/// start to the next one's (the last to `end_ms`, or a second past its
/// start when the end is unknown or earlier).
pub fn render_vtt(chapters: &[Chapter], end_ms: Option<i64>) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for (i, c) in chapters.iter().enumerate() {
        let end = match chapters.get(i + 1) {
            Some(next) => next.start_ms,
            None => end_ms.unwrap_or(0),
        }
        .max(c.start_ms.saturating_add(1000));
        out.push_str(&format!("chapter-{}\n", i + 1));
        out.push_str(&vtt_timestamp(c.start_ms));
        out.push_str(" --> ");
        out.push_str(&vtt_timestamp(end));
        out.push('\n');
        out.push_str(&vtt_text(&c.title));
        out.push_str("\n\n");
    }
    out
}

/// Where a stream's WebVTT chapters track is, with a private stream's
/// playback token (as the transcript's downloads carry it).
pub fn vtt_url(stream: &str, token: Option<&str>) -> String {
    match url_token(token) {
        Some(t) => format!("/api/v1/streams/{stream}/chapters.vtt?token={t}"),
        None => format!("/api/v1/streams/{stream}/chapters.vtt"),
    }
}

/// The chapter playing at `position_ms`: the last one started at or before
/// it (none before the first start).
pub fn current(chapters: &[Chapter], position_ms: i64) -> Option<usize> {
    chapters.iter().rposition(|c| c.start_ms <= position_ms)
}

/// A start as the editor shows it: `m:ss`, or `h:mm:ss` past an hour.
pub fn format_start(ms: i64) -> String {
    crate::format::clock(ms)
}

/// Reads a start typed in the editor: `m:ss`, `h:mm:ss` or whole seconds
/// (`90`), surrounding spaces ignored; seconds and minutes after the first
/// field below 60. The answer is ms; `None` for anything else (also a
/// number too big to be a time).
pub fn parse_start(input: &str) -> Option<i64> {
    let fields: Vec<&str> = input.trim().split(':').collect();
    if fields.len() > 3 {
        return None;
    }
    let mut secs: i64 = 0;
    for (i, f) in fields.iter().enumerate() {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: i64 = f.parse().ok()?;
        if i > 0 && n >= 60 {
            return None;
        }
        secs = secs.checked_mul(60)?.checked_add(n)?;
    }
    secs.checked_mul(1000)
}

/// What this area's server functions need from the server (server build
/// only). The server implements it and provides an `Arc<dyn
/// ChaptersBackend>` in the Leptos context; the rules are the JSON API's
/// (docs/api.md, "Chapters"), and refusals are [`AppError::Refused`] with
/// the API's status and code.
#[cfg(feature = "ssr")]
pub trait ChaptersBackend: Send + Sync + 'static {
    /// A stream's chapters and where making them stands (whoever may watch
    /// it; `token`: a private stream's playback token).
    fn chapters(
        &self,
        req: Parts,
        id: String,
        token: Option<String>,
    ) -> BoxFuture<'_, Result<ChaptersStatus, AppError>>;
    /// Starts making a stream's chapters (owner and admins).
    fn start_chapters(
        &self,
        req: Parts,
        id: String,
    ) -> BoxFuture<'_, Result<ChaptersStatus, AppError>>;
    /// Replaces a stream's chapters with the owner's list (owner and admins).
    fn edit_chapters(
        &self,
        req: Parts,
        id: String,
        chapters: Vec<Chapter>,
    ) -> BoxFuture<'_, Result<ChaptersStatus, AppError>>;
}

/// A stream's chapters and where making them stands, for whoever may watch
/// it (a private stream's playback token counts, as on the watch page).
#[server(prefix = "/api/fn")]
pub async fn get_chapters(id: String, token: Option<String>) -> Result<ChaptersStatus, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn ChaptersBackend>()?
            .chapters(request()?, id, token)
            .await,
    )
}

/// Starts making a stream's chapters (again) (owner and admins).
#[server(prefix = "/api/fn")]
pub async fn generate_chapters(id: String) -> Result<ChaptersStatus, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn ChaptersBackend>()?
            .start_chapters(request()?, id)
            .await,
    )
}

/// Replaces a stream's chapters with the owner's edited list (owner and
/// admins); a list against the rules is refused with the API's `422
/// invalid_chapters` and its message.
#[server(prefix = "/api/fn", input = Json)]
pub async fn edit_chapters(id: String, chapters: Vec<Chapter>) -> Result<ChaptersStatus, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn ChaptersBackend>()?
            .edit_chapters(request()?, id, chapters)
            .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(start_ms: i64, title: &str) -> Chapter {
        Chapter {
            start_ms,
            title: title.into(),
        }
    }

    #[test]
    fn the_rules_refuse_what_a_player_could_not_show() {
        assert_eq!(check(&[], None), Err(ChapterRuleError::Empty));
        assert_eq!(
            check(&[ch(5, "Late")], None),
            Err(ChapterRuleError::FirstNotAtZero)
        );
        assert_eq!(
            check(&[ch(0, "A"), ch(0, "B")], None),
            Err(ChapterRuleError::Order(2))
        );
        assert_eq!(
            check(&[ch(0, "A"), ch(9_000, "B"), ch(8_000, "C")], None),
            Err(ChapterRuleError::Order(3))
        );
        assert_eq!(
            check(&[ch(0, "A"), ch(60_000, "  ")], None),
            Err(ChapterRuleError::Title(2))
        );
        assert_eq!(
            check(&[ch(0, &"x".repeat(MAX_TITLE_CHARS + 1))], None),
            Err(ChapterRuleError::Title(1))
        );
        assert_eq!(
            check(&[ch(0, "A"), ch(60_000, "B")], Some(60_000)),
            Err(ChapterRuleError::PastEnd(2))
        );
        let many: Vec<Chapter> = (0..=MAX_CHAPTERS as i64)
            .map(|i| ch(i * 1000, "c"))
            .collect();
        assert_eq!(check(&many, None), Err(ChapterRuleError::TooMany));
        assert_eq!(
            check(&[ch(0, "A"), ch(i64::MAX, "B")], None),
            Ok(()),
            "no overflow on huge numbers"
        );
        assert_eq!(
            check(&[ch(0, "Intro"), ch(60_000, "Main")], Some(120_000)),
            Ok(())
        );
    }

    #[test]
    fn the_webvtt_track_has_one_escaped_cue_per_chapter_up_to_the_next() {
        let vtt = render_vtt(
            &[ch(0, "Intro <b>&</b>"), ch(65_500, "Q & A")],
            Some(3_600_000),
        );
        assert_eq!(
            vtt,
            "WEBVTT\n\n\
             chapter-1\n00:00:00.000 --> 00:01:05.500\nIntro &lt;b&gt;&amp;&lt;/b&gt;\n\n\
             chapter-2\n00:01:05.500 --> 01:00:00.000\nQ &amp; A\n\n"
        );
        // Unknown end: the last cue still has a length.
        assert!(render_vtt(&[ch(0, "Only")], None).contains("00:00:00.000 --> 00:00:01.000"));
        // A huge start does not overflow.
        assert!(render_vtt(&[ch(i64::MAX, "Far")], None).contains("Far"));
    }

    #[test]
    fn typed_starts_read_as_m_ss_h_mm_ss_or_seconds() {
        assert_eq!(parse_start("0:00"), Some(0));
        assert_eq!(parse_start(" 1:05 "), Some(65_000));
        assert_eq!(parse_start("12:30"), Some(750_000));
        assert_eq!(
            parse_start("75:00"),
            Some(4_500_000),
            "minutes past 59 as typed"
        );
        assert_eq!(parse_start("1:02:03"), Some(3_723_000));
        assert_eq!(parse_start("90"), Some(90_000));
        for bad in [
            "",
            " ",
            "1:60",
            "1:5x",
            "-1:00",
            "1:-5",
            "1::00",
            ":30",
            "1:",
            "1.5",
            "1:00:00:00",
            "1:02:60",
            "١:٠٠",
            "+5",
            "999999999999:00",
        ] {
            assert_eq!(parse_start(bad), None, "{bad:?}");
        }
        // What is shown reads back.
        for ms in [0, 65_000, 3_723_000] {
            assert_eq!(parse_start(&format_start(ms)), Some(ms));
        }
    }

    #[test]
    fn the_current_chapter_is_the_last_started() {
        let list = [ch(0, "A"), ch(10_000, "B"), ch(20_000, "C")];
        assert_eq!(current(&list, 0), Some(0));
        assert_eq!(current(&list, 9_999), Some(0));
        assert_eq!(current(&list, 10_000), Some(1));
        assert_eq!(current(&list, 99_000), Some(2));
        assert_eq!(current(&list, -1), None);
        assert_eq!(current(&[], 5), None);
    }

    #[test]
    fn the_track_url_carries_only_a_well_formed_token() {
        assert_eq!(vtt_url("abc", None), "/api/v1/streams/abc/chapters.vtt");
        assert_eq!(vtt_url("abc", Some("")), "/api/v1/streams/abc/chapters.vtt");
        assert_eq!(
            vtt_url("abc", Some("9.sig_-")),
            "/api/v1/streams/abc/chapters.vtt?token=9.sig_-"
        );
        assert_eq!(
            vtt_url("abc", Some("x&y=<b>")),
            "/api/v1/streams/abc/chapters.vtt"
        );
    }
}
