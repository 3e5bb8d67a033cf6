//! Chapters of a stream's recording, made from its transcript: what
//! `GET`/`POST`/`PUT /api/v1/streams/{id}/chapters` answer and take, their
//! WebVTT `chapters` track, and the rules every chapter list keeps, whoever
//! made it (the AI model, the built-in segmentation, or the owner's edit).
//!
//! Times are integer milliseconds on the stream's media timeline, the same
//! as the transcript's and the recording's (`?t=`).

use serde::{Deserialize, Serialize};

use crate::transcripts::{vtt_text, vtt_timestamp};

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
}
