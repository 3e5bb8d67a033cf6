//! On-demand summaries of a stream's transcript.
//!
//! With an AI model configured (`--llm-url`), a job sends the transcript to a
//! chat-completions API ([`llm`]): a transcript longer than
//! `--llm-context-chars` is cut into parts ([`split`]), each part is
//! summarised, and the part summaries are combined (again in parts, if they
//! are long). Without one, the built-in [`extractive`] summary picks the
//! transcript's most central sentences.
//!
//! [`Summarizer::start`] checks there is a transcript and no job running,
//! then runs the job in the background; [`Summarizer::status`] reports its
//! progress (model calls done of the calls it takes; after a job, what it
//! took), the stored summary, or why the last attempt failed. A failure keeps the previous summary. Jobs
//! live in this node's memory; summaries live in the database.
//!
//! Chapters of a recording are made the same way ([`chapter_jobs`]): by the
//! model, or by the built-in topic segmentation ([`chapters`]).

pub mod chapter_jobs;
pub mod chapters;
pub mod extractive;
pub mod llm;
pub mod split;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use app::summaries::{summary_label, Summary, SummaryKind, SummaryState, SummaryStatus};
use tokio::sync::Semaphore;

use crate::db::summaries::SummaryRow;
use crate::db::{Database, DbError};
use llm::{LlmClient, LlmConfig, LlmError};

/// Summary jobs that call the model at the same time (others wait their turn).
const CONCURRENT_JOBS: usize = 2;
/// Characters per token, roughly, in English.
const CHARS_PER_TOKEN: usize = 4;
/// Rounds of combining part summaries that are too long for one call.
const MAX_ROUNDS: u32 = 3;

/// Why a summary cannot be started or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SummaryError {
    /// A summary of this stream is being made.
    #[error("a summary of this stream is already being made")]
    Running,
    /// There is nothing to summarise.
    #[error(
        "this stream has no transcript yet: turn captions on while live and let someone speak"
    )]
    NoTranscript,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Settings of the summaries.
#[derive(Debug, Clone)]
pub struct SummaryConfig {
    /// The model, if one is configured.
    pub llm: Option<LlmConfig>,
    /// The most transcript characters sent in one call.
    pub context_chars: usize,
}

/// A job's progress, or how it failed.
#[derive(Debug, Clone, Default)]
struct Job {
    running: bool,
    done: u32,
    total: u32,
    error: Option<String>,
}

/// Makes and reports summaries.
#[derive(Debug)]
pub struct Summarizer {
    db: Database,
    llm: Option<LlmClient>,
    context_chars: usize,
    jobs: Mutex<HashMap<String, Job>>,
    /// Chapter jobs ([`chapter_jobs`]), by stream.
    chapter_jobs: Mutex<HashMap<String, Job>>,
    permits: Semaphore,
}

/// The API form of a stored summary.
pub fn summary_from_row(row: SummaryRow) -> Summary {
    let kind = SummaryKind::parse(&row.kind).unwrap_or(SummaryKind::Extractive);
    Summary {
        label: summary_label(kind, row.model.as_deref()),
        kind,
        model: row.model,
        text: row.text,
        created_at: row.created_at,
    }
}

impl Summarizer {
    /// A summarizer over this database, with the model if configured.
    pub fn new(db: Database, config: SummaryConfig) -> Arc<Self> {
        Arc::new(Summarizer {
            db,
            llm: config.llm.map(LlmClient::new),
            context_chars: config.context_chars.max(1),
            jobs: Mutex::new(HashMap::new()),
            chapter_jobs: Mutex::new(HashMap::new()),
            permits: Semaphore::new(CONCURRENT_JOBS),
        })
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, stream: &str, f: impl FnOnce(&mut Job)) {
        f(self.jobs().entry(stream.to_string()).or_default());
    }

    /// Where a stream's summary stands (no permission check: the caller,
    /// `service::summaries`, makes it).
    pub async fn status(&self, stream: &str) -> Result<SummaryStatus, SummaryError> {
        let job = self.jobs().get(stream).cloned();
        let summary = self.db.get_summary(stream).await?.map(summary_from_row);
        let lines = self.db.transcript_lines(stream).await?;
        let state = match (&job, &summary) {
            (Some(j), _) if j.running => SummaryState::Running,
            (Some(j), _) if j.error.is_some() => SummaryState::Failed,
            (_, Some(_)) => SummaryState::Done,
            _ => SummaryState::Idle,
        };
        let job = job.unwrap_or_default();
        Ok(SummaryStatus {
            stream_id: stream.to_string(),
            state,
            done_parts: job.done,
            total_parts: job.total,
            error: job.error,
            summary,
            llm: self.llm.is_some(),
            model: self.llm.as_ref().map(|l| l.model().to_string()),
            transcript_lines: lines,
        })
    }

    /// Starts making a stream's summary in the background.
    pub async fn start(self: &Arc<Self>, stream: &str) -> Result<SummaryStatus, SummaryError> {
        let lines = self.db.stream_transcript(stream).await?;
        let text = lines
            .iter()
            .map(|l| l.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        if text.is_empty() {
            return Err(SummaryError::NoTranscript);
        }
        let total = match &self.llm {
            Some(_) => calls_for(&text, self.context_chars),
            None => 1,
        };
        if !claim(&mut self.jobs(), stream, total) {
            return Err(SummaryError::Running);
        }
        tracing::info!(stream = %stream, calls = total, llm = self.llm.is_some(), "summary started");
        let this = self.clone();
        let id = stream.to_string();
        tokio::spawn(async move { this.run(id, text).await });
        self.status(stream).await
    }

    async fn run(self: Arc<Self>, stream: String, text: String) {
        let made = match &self.llm {
            Some(llm) => match self.permits.acquire().await {
                Ok(_permit) => self
                    .with_model(llm, &stream, &text)
                    .await
                    .map(|t| (SummaryKind::Llm, Some(llm.model().to_string()), t)),
                Err(_) => Err(LlmError("the summarizer is shutting down".into())),
            },
            None => {
                let n = extractive::sentences(&text).len();
                let picked = extractive::summarize(&text, extractive::length_for(n)).join(" ");
                if picked.is_empty() {
                    Err(LlmError(
                        "the transcript has no sentence long enough to make an extractive summary"
                            .into(),
                    ))
                } else {
                    Ok((SummaryKind::Extractive, None, picked))
                }
            }
        };
        let stored = match made {
            Ok((kind, model, summary)) => self
                .db
                .put_summary(&stream, kind.as_str(), model.as_deref(), &summary)
                .await
                .map(|_| kind)
                .map_err(|e| {
                    tracing::error!(stream = %stream, error = %e, "could not store the summary");
                    LlmError("the summary was made but could not be stored; try again".into())
                }),
            Err(e) => Err(e),
        };
        match stored {
            Ok(kind) => {
                tracing::info!(stream = %stream, kind = kind.as_str(), "summary made");
                metrics::counter!("onair_summaries_total", "kind" => kind.as_str(), "result" => "ok")
                    .increment(1);
                // The job's counts stay for the status; the summary is stored.
                self.update(&stream, |j| j.running = false);
            }
            Err(e) => {
                tracing::warn!(stream = %stream, error = %e, "summary failed");
                metrics::counter!("onair_summaries_total", "kind" => if self.llm.is_some() { "llm" } else { "extractive" }, "result" => "failed")
                    .increment(1);
                self.update(&stream, |j| {
                    j.running = false;
                    j.error = Some(e.0);
                });
            }
        }
    }

    /// The most characters of part summaries combined in one call: the
    /// context budget, but never less than two of the longest answers, so
    /// each round of combining at least halves them.
    fn combine_chars(&self) -> usize {
        self.context_chars
            .max(2 * llm::MAX_ANSWER_TOKENS as usize * CHARS_PER_TOKEN)
    }

    /// Map-reduce: each part summarised, then the summaries combined (in
    /// parts again while they do not fit).
    async fn with_model(
        &self,
        llm: &LlmClient,
        stream: &str,
        text: &str,
    ) -> Result<String, LlmError> {
        let parts = split::split(text, self.context_chars);
        if parts.len() == 1 {
            let out = llm.summarize_part(text).await?;
            self.update(stream, |j| j.done += 1);
            return Ok(out);
        }
        let mut partials = Vec::with_capacity(parts.len());
        for part in parts {
            partials.push(llm.summarize_part(part).await?);
            self.update(stream, |j| j.done += 1);
        }
        for round in 1.. {
            let joined = partials.join("\n\n");
            let groups = split::split(&joined, self.combine_chars());
            if groups.len() == 1 || round > MAX_ROUNDS {
                // After MAX_ROUNDS (a model whose summaries do not shrink),
                // the start of the summaries is combined.
                let out = llm.combine(groups.first().copied().unwrap_or("")).await?;
                self.update(stream, |j| j.done += 1);
                return Ok(out);
            }
            // The partial summaries themselves are too long for one call.
            self.update(stream, |j| j.total += groups.len() as u32);
            let mut next = Vec::with_capacity(groups.len());
            for g in groups {
                next.push(llm.combine(g).await?);
                self.update(stream, |j| j.done += 1);
            }
            partials = next;
        }
        Err(LlmError("the part summaries could not be combined".into()))
    }
}

/// Records a new running job of `total` calls for `stream` in `jobs`;
/// false if one runs already.
fn claim(jobs: &mut HashMap<String, Job>, stream: &str, total: u32) -> bool {
    let job = jobs.entry(stream.to_string()).or_default();
    if job.running {
        return false;
    }
    *job = Job {
        running: true,
        done: 0,
        total,
        error: None,
    };
    true
}

/// Model calls a transcript takes at first sight: one per part, plus one to
/// combine them when there is more than one.
pub fn calls_for(text: &str, context_chars: usize) -> u32 {
    let parts = split::split(text, context_chars).len() as u32;
    if parts > 1 {
        parts + 1
    } else {
        parts
    }
}
