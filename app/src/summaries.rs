//! Summaries of a stream's transcript: what `GET`/`POST
//! /api/v1/streams/{id}/summary` answer, and the server functions the
//! dashboard uses.
//!
//! A summary is made on demand by the owner (or an admin): by an AI model
//! over a chat-completions API when one is configured, else by the built-in
//! extractive summariser (the transcript's most central sentences).

#[cfg(feature = "ssr")]
use crate::serverfn::{BoxFuture, Parts};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// How a summary was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SummaryKind {
    /// Written by an AI model (`model` says which).
    Llm,
    /// The built-in extractive summary: sentences picked from the transcript.
    Extractive,
}

impl SummaryKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SummaryKind::Llm => "llm",
            SummaryKind::Extractive => "extractive",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<SummaryKind> {
        match s {
            "llm" => Some(SummaryKind::Llm),
            "extractive" => Some(SummaryKind::Extractive),
            _ => None,
        }
    }
}

/// What people read above a summary: how it was made.
pub fn summary_label(kind: SummaryKind, model: Option<&str>) -> String {
    match (kind, model) {
        (SummaryKind::Llm, Some(m)) => format!("AI summary ({m})"),
        (SummaryKind::Llm, None) => "AI summary".into(),
        (SummaryKind::Extractive, _) => "Extractive summary (no AI model configured)".into(),
    }
}

/// A stored summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// How it was made.
    pub kind: SummaryKind,
    /// The model that wrote it (`llm` only).
    pub model: Option<String>,
    /// [`summary_label`] of the two.
    pub label: String,
    /// The summary (plain text).
    pub text: String,
    /// When it was made, RFC 3339.
    pub created_at: String,
}

/// Where making a stream's summary stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SummaryState {
    /// Never made.
    Idle,
    /// Being made: see `done_parts` of `total_parts`.
    Running,
    /// Made: see `summary`.
    Done,
    /// The last attempt failed (see `error`); an earlier summary is kept.
    Failed,
}

/// `GET /api/v1/streams/{id}/summary` (and the `202` of the `POST`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryStatus {
    /// The stream.
    pub stream_id: String,
    /// Where it stands.
    pub state: SummaryState,
    /// Model calls done so far (one per transcript part, then one to combine them).
    pub done_parts: u32,
    /// Model calls this summary takes (0 before one is started).
    pub total_parts: u32,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The latest summary, if any (also while a new one is made or after a
    /// failed attempt).
    pub summary: Option<Summary>,
    /// Whether an AI model is configured (else summaries are extractive).
    pub llm: bool,
    /// The configured model's name.
    pub model: Option<String>,
    /// Lines in the stream's transcript.
    pub transcript_lines: u64,
}

/// What this area's server functions need from the server (server build
/// only). The server implements it and provides an `Arc<dyn SummariesBackend>` in the
/// Leptos context; the rules are the JSON API's (docs/api.md), and refusals
/// are [`AppError::Refused`] with the API's
/// status and code.
#[cfg(feature = "ssr")]
pub trait SummariesBackend: Send + Sync + 'static {
    /// A stream's summary and where making one stands (owner and admins).
    fn summary(&self, req: Parts, id: String) -> BoxFuture<'_, Result<SummaryStatus, AppError>>;
    /// Starts making a stream's summary (owner and admins).
    fn start_summary(
        &self,
        req: Parts,
        id: String,
    ) -> BoxFuture<'_, Result<SummaryStatus, AppError>>;
}

/// A stream's summary and where making one stands (owner and admins).
#[server(prefix = "/api/fn")]
pub async fn get_summary(id: String) -> Result<SummaryStatus, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn SummariesBackend>()?
            .summary(request()?, id)
            .await,
    )
}

/// Starts making a stream's summary (again) (owner and admins).
#[server(prefix = "/api/fn")]
pub async fn generate_summary(id: String) -> Result<SummaryStatus, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn SummariesBackend>()?
            .start_summary(request()?, id)
            .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_say_how_a_summary_was_made() {
        assert_eq!(
            summary_label(SummaryKind::Extractive, None),
            "Extractive summary (no AI model configured)"
        );
        assert_eq!(
            summary_label(SummaryKind::Llm, Some("gpt-4o-mini")),
            "AI summary (gpt-4o-mini)"
        );
        assert_eq!(SummaryKind::parse("llm"), Some(SummaryKind::Llm));
        assert_eq!(SummaryKind::parse("x"), None);
        assert_eq!(
            serde_json::to_string(&SummaryState::Running).expect("json"),
            "\"running\""
        );
    }
}
