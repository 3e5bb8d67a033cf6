//! Chapter jobs of the [`Summarizer`]: chapters of a stream's recording from
//! its transcript, by the configured model (map-reduce, as the summaries:
//! one call per transcript part whose lines carry their times, then one
//! call to merge when the parts gave too many) or, without a model, by the
//! built-in topic segmentation ([`chapters::segment`]); and the owner's
//! edits. Jobs live in this node's memory; chapters in the database.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use app::chapters::{Chapter, ChapterRuleError, Chapters, ChaptersKind, ChaptersStatus};
use app::transcripts::TranscriptLine;

use super::chapters::{self, Segmenter};
use super::llm::{LlmClient, LlmError};
use super::{claim, split, Job, Summarizer, SummaryError};
use crate::db::DbError;

/// Chapters a model is asked for per transcript part.
const PER_PART: usize = 8;
/// The most chapters kept from a model.
const MAX_FROM_MODEL: usize = 20;
/// The shortest chapter kept from a model, ms.
const MIN_GAP_MS: i64 = 30_000;

/// Why the owner's chapter list was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChaptersEditError {
    /// The list breaks a rule ([`app::chapters::check`]).
    #[error(transparent)]
    Rule(#[from] ChapterRuleError),
    /// A job is making chapters; it would overwrite the edit.
    #[error("chapters of this stream are being made; edit them when that is done")]
    Running,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// `mm:ss` (or `h:mm:ss` past an hour) of a media time.
fn clock(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// The transcript as the model reads it: `[mm:ss] text` lines.
fn timed_text(lines: &[TranscriptLine]) -> String {
    lines
        .iter()
        .map(|l| format!("[{}] {}", clock(l.start_ms), l.text.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Summarizer {
    fn chapter_jobs(&self) -> MutexGuard<'_, HashMap<String, Job>> {
        self.chapter_jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update_chapters(&self, stream: &str, f: impl FnOnce(&mut Job)) {
        f(self.chapter_jobs().entry(stream.to_string()).or_default());
    }

    /// A stream's chapters and where making them stands (no permission
    /// check: the caller, `service::chapters`, makes it).
    pub async fn chapters_status(&self, stream: &str) -> Result<ChaptersStatus, SummaryError> {
        let job = self.chapter_jobs().get(stream).cloned().unwrap_or_default();
        let chapters = self.db.get_chapters(stream).await?;
        Ok(ChaptersStatus {
            stream_id: stream.to_string(),
            running: job.running,
            done_calls: job.done,
            total_calls: job.total,
            error: job.error,
            chapters,
            llm: self.llm.is_some(),
        })
    }

    /// The recording's length, if there is one.
    async fn recording_end(&self, stream: &str) -> Result<Option<i64>, DbError> {
        Ok(self
            .db
            .get_recording(stream)
            .await?
            .map(|r| r.duration_ms)
            .filter(|d| *d > 0))
    }

    /// Starts making a stream's chapters in the background.
    pub async fn start_chapters(
        self: &Arc<Self>,
        stream: &str,
    ) -> Result<ChaptersStatus, SummaryError> {
        let lines: Vec<TranscriptLine> = self
            .db
            .stream_transcript(stream)
            .await?
            .into_iter()
            .filter(|r| !r.text.trim().is_empty())
            .map(|r| TranscriptLine {
                start_ms: r.start_ms,
                end_ms: r.end_ms,
                text: r.text,
            })
            .collect();
        if lines.is_empty() {
            return Err(SummaryError::NoTranscript);
        }
        let end_ms = self.recording_end(stream).await?;
        let total = match &self.llm {
            Some(_) => split::split(&timed_text(&lines), self.context_chars).len() as u32,
            None => 0,
        };
        if !claim(&mut self.chapter_jobs(), stream, total) {
            return Err(SummaryError::Running);
        }
        tracing::info!(stream = %stream, calls = total, llm = self.llm.is_some(), "chapters started");
        let this = self.clone();
        let id = stream.to_string();
        tokio::spawn(async move { this.run_chapters(id, lines, end_ms).await });
        self.chapters_status(stream).await
    }

    async fn run_chapters(
        self: Arc<Self>,
        stream: String,
        lines: Vec<TranscriptLine>,
        end_ms: Option<i64>,
    ) {
        let made = match &self.llm {
            Some(llm) => match self.permits.acquire().await {
                Ok(_permit) => self
                    .chapters_with_model(llm, &stream, &lines, end_ms)
                    .await
                    .map(|c| (ChaptersKind::Llm, Some(llm.model().to_string()), c)),
                Err(_) => Err(LlmError("the summarizer is shutting down".into())),
            },
            None => {
                let c = chapters::segment(&lines, end_ms, Segmenter::default());
                if c.is_empty() {
                    Err(LlmError(
                        "the transcript has no words to make chapters from".into(),
                    ))
                } else {
                    Ok((ChaptersKind::Builtin, None, c))
                }
            }
        };
        let kind_label = if self.llm.is_some() { "llm" } else { "builtin" };
        let stored = match made {
            Ok((kind, model, list)) => self
                .db
                .put_chapters(&stream, kind, model.as_deref(), &list)
                .await
                .map(|c| c.chapters.len())
                .map_err(|e| {
                    tracing::error!(stream = %stream, error = %e, "could not store the chapters");
                    LlmError("the chapters were made but could not be stored; try again".into())
                }),
            Err(e) => Err(e),
        };
        match stored {
            Ok(n) => {
                tracing::info!(stream = %stream, kind = kind_label, chapters = n, "chapters made");
                metrics::counter!("onair_chapters_total", "kind" => kind_label, "result" => "ok")
                    .increment(1);
                self.update_chapters(&stream, |j| j.running = false);
            }
            Err(e) => {
                tracing::warn!(stream = %stream, error = %e, "chapters failed");
                metrics::counter!("onair_chapters_total", "kind" => kind_label, "result" => "failed")
                    .increment(1);
                self.update_chapters(&stream, |j| {
                    j.running = false;
                    j.error = Some(e.0);
                });
            }
        }
    }

    /// Map-reduce: chapters of each part, tidied; merged by the model when
    /// there are more than [`MAX_FROM_MODEL`].
    async fn chapters_with_model(
        &self,
        llm: &LlmClient,
        stream: &str,
        lines: &[TranscriptLine],
        end_ms: Option<i64>,
    ) -> Result<Vec<Chapter>, LlmError> {
        let end = end_ms.or_else(|| lines.iter().map(|l| l.end_ms).max());
        let timed = timed_text(lines);
        let mut found = Vec::new();
        for part in split::split(&timed, self.context_chars) {
            let answer = llm.chapters_part(part, PER_PART).await?;
            found.extend(chapters::parse_model_lines(&answer));
            self.update_chapters(stream, |j| j.done += 1);
        }
        let mut list = chapters::tidy(found, end, MIN_GAP_MS);
        if list.len() > MAX_FROM_MODEL {
            self.update_chapters(stream, |j| j.total += 1);
            let listed = list
                .iter()
                .map(|c| format!("{} {}", clock(c.start_ms), c.title))
                .collect::<Vec<_>>()
                .join("\n");
            let answer = llm.combine_chapters(&listed, MAX_FROM_MODEL).await?;
            self.update_chapters(stream, |j| j.done += 1);
            let merged = chapters::tidy(chapters::parse_model_lines(&answer), end, MIN_GAP_MS);
            if !merged.is_empty() {
                list = merged;
            }
            list.truncate(MAX_FROM_MODEL);
        }
        if list.is_empty() {
            return Err(LlmError(
                "the model answered no chapter lines (`mm:ss Title`); try again, or write the chapters by hand".into(),
            ));
        }
        Ok(list)
    }

    /// After a stream's recording is built: makes its chapters if it has a
    /// transcript and none yet (an owner's edit, or a rebuilt recording's
    /// earlier chapters, are kept). Failures are logged, never raised.
    pub async fn chapters_after_stream(self: &Arc<Self>, stream: &str) {
        match self.db.get_chapters(stream).await {
            Ok(None) => {}
            Ok(Some(_)) => return,
            Err(e) => {
                tracing::warn!(stream = %stream, error = %e, "cannot read the chapters; none made");
                return;
            }
        }
        match self.start_chapters(stream).await {
            Ok(_) | Err(SummaryError::NoTranscript) | Err(SummaryError::Running) => {}
            Err(e) => tracing::warn!(stream = %stream, error = %e, "chapters not started"),
        }
    }

    /// Stores the owner's chapter list, if it keeps the rules.
    pub async fn edit_chapters(
        &self,
        stream: &str,
        list: Vec<Chapter>,
    ) -> Result<Chapters, ChaptersEditError> {
        let list: Vec<Chapter> = list
            .into_iter()
            .map(|c| Chapter {
                start_ms: c.start_ms,
                title: c.title.trim().to_string(),
            })
            .collect();
        app::chapters::check(&list, self.recording_end(stream).await?)?;
        if self.chapter_jobs().get(stream).is_some_and(|j| j.running) {
            return Err(ChaptersEditError::Running);
        }
        let stored = self
            .db
            .put_chapters(stream, ChaptersKind::Edited, None, &list)
            .await?;
        // An edit supersedes a failed attempt's message.
        self.update_chapters(stream, |j| j.error = None);
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_reads_times_it_can_write_back() {
        assert_eq!(clock(0), "00:00");
        assert_eq!(clock(83_999), "01:23");
        assert_eq!(clock(3_723_000), "1:02:03");
        assert_eq!(clock(-5), "00:00");
        let text = timed_text(&[TranscriptLine {
            start_ms: 3_723_000,
            end_ms: 3_724_000,
            text: " Late part ".into(),
        }]);
        assert_eq!(text, "[1:02:03] Late part");
        assert_eq!(
            chapters::parse_model_lines(&format!("{} Late part", clock(3_723_000))),
            vec![Chapter {
                start_ms: 3_723_000,
                title: "Late part".into()
            }]
        );
    }
}
