//! The chat-completions client (async-openai) for OpenAI-compatible servers
//! and Azure OpenAI, and the prompts. Failures become messages a broadcaster
//! can act on (unreachable, key refused, timed out, an error from the model's
//! server), never raw client errors.

use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, CreateChatCompletionRequest,
};

use crate::openai::{Endpoint, OpenAiClient};

/// The longest answer asked of the model per call, in tokens.
pub const MAX_ANSWER_TOKENS: u32 = 300;

/// What the model is told it is doing, for summaries.
const SYSTEM: &str =
    "You summarise transcripts of live video streams. Answer with the summary only.";

/// What the model is told it is doing, for chapters.
const CHAPTERS_SYSTEM: &str = "You divide transcripts of live video streams into chapters. \
     Answer only with lines of the form `mm:ss Title`, one per chapter.";

/// Which API shape the endpoint speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI and compatible servers: `{url}/chat/completions`, bearer key.
    OpenAi,
    /// Azure OpenAI: `{url}/openai/deployments/{deployment}/chat/completions?api-version=`,
    /// `api-key` header.
    Azure {
        /// The deployment name.
        deployment: String,
        /// The `api-version` query value.
        api_version: String,
    },
}

/// Where and how to reach the model.
#[derive(Clone)]
pub struct LlmConfig {
    /// The API base (`https://api.openai.com/v1`; for Azure the resource URL).
    pub url: String,
    /// The model name sent (and stored with each summary).
    pub model: String,
    /// The API key, if the endpoint needs one.
    pub key: Option<String>,
    /// OpenAI or Azure.
    pub provider: Provider,
    /// How long one call may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("provider", &self.provider)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A call to the model failed; the message says what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LlmError(pub String);

/// A chat-completions client for one configured model.
pub struct LlmClient {
    client: OpenAiClient,
    config: LlmConfig,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("config", &self.config)
            .finish()
    }
}

impl LlmClient {
    /// A client for this endpoint (nothing is sent yet).
    pub fn new(config: LlmConfig) -> Self {
        let (provider, azure_deployment, azure_api_version) = match &config.provider {
            Provider::OpenAi => (
                crate::openai::Provider::Openai,
                String::new(),
                String::new(),
            ),
            Provider::Azure {
                deployment,
                api_version,
            } => (
                crate::openai::Provider::Azure,
                deployment.clone(),
                api_version.clone(),
            ),
        };
        let client = OpenAiClient::new(&Endpoint {
            url: config.url.clone(),
            model: config.model.clone(),
            key: config.key.clone(),
            provider,
            azure_deployment,
            azure_api_version,
        });
        LlmClient { client, config }
    }

    /// The model name.
    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// A summary of one part of a transcript.
    pub async fn summarize_part(&self, text: &str) -> Result<String, LlmError> {
        self.chat(&format!(
            "Summarise this part of a live stream transcript in two or three sentences.\n\nTranscript:\n{}",
            text.trim()
        ))
        .await
    }

    /// One summary from the summaries of consecutive parts.
    pub async fn combine(&self, partials: &str) -> Result<String, LlmError> {
        self.chat(&format!(
            "These are summaries of consecutive parts of one live stream. Combine them into one short summary of the whole stream.\n\nSummaries:\n{}",
            partials.trim()
        ))
        .await
    }

    /// Chapters of one part of a transcript whose lines start with their
    /// time (`[mm:ss] text`): the model's `mm:ss Title` lines.
    pub async fn chapters_part(&self, timed: &str, max: usize) -> Result<String, LlmError> {
        self.chat_as(
            CHAPTERS_SYSTEM,
            &format!(
                "Divide this part of a live stream transcript into at most {max} chapters, \
                 starting where the topic changes. Each transcript line starts with its time \
                 [mm:ss]. Answer with one line per chapter: its start time as mm:ss (a time from \
                 the transcript), a space, and a title of two to six words.\n\nTranscript:\n{}",
                timed.trim()
            ),
        )
        .await
    }

    /// Fewer chapters from the chapters of consecutive parts (`mm:ss Title`
    /// lines).
    pub async fn combine_chapters(&self, lines: &str, max: usize) -> Result<String, LlmError> {
        self.chat_as(
            CHAPTERS_SYSTEM,
            &format!(
                "These are the chapters of one live stream, in order. Merge neighbouring chapters \
                 on the same topic so that at most {max} remain. Keep each kept chapter's start \
                 time. Answer with one line per chapter: mm:ss, a space, and its title.\n\n\
                 Chapters:\n{}",
                lines.trim()
            ),
        )
        .await
    }

    async fn chat(&self, prompt: &str) -> Result<String, LlmError> {
        self.chat_as(SYSTEM, prompt).await
    }

    async fn chat_as(&self, system: &str, prompt: &str) -> Result<String, LlmError> {
        let messages: Vec<ChatCompletionRequestMessage> = vec![
            ChatCompletionRequestSystemMessage::from(
                ChatCompletionRequestSystemMessageContent::from(system),
            )
            .into(),
            ChatCompletionRequestUserMessage::from(ChatCompletionRequestUserMessageContent::from(
                prompt,
            ))
            .into(),
        ];
        let request = CreateChatCompletionRequest {
            model: self.config.model.clone(),
            messages,
            max_completion_tokens: Some(MAX_ANSWER_TOKENS),
            temperature: Some(0.2),
            ..Default::default()
        };
        let call = self.client.chat(request);
        let result = tokio::time::timeout(self.config.timeout, call).await;
        let outcome = match result {
            Err(_) => Err(LlmError(format!(
                "the AI endpoint did not answer within {} s",
                self.config.timeout.as_secs()
            ))),
            Ok(Err(e)) => Err(LlmError(describe(&e, &self.config.url))),
            Ok(Ok(res)) => res
                .choices
                .into_iter()
                .find_map(|c| c.message.content)
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| LlmError("the model returned an empty answer".into())),
        };
        let label = if outcome.is_ok() { "ok" } else { "error" };
        metrics::counter!("onair_llm_requests_total", "result" => label).increment(1);
        outcome
    }
}

/// What went wrong, in words that say what to check.
fn describe(e: &OpenAIError, url: &str) -> String {
    match e {
        OpenAIError::ApiError(r) if matches!(r.status_code.as_u16(), 401 | 403) => format!(
            "the AI endpoint refused the API key ({}): check --llm-key",
            r.status_code
        ),
        OpenAIError::ApiError(r) => format!(
            "the AI endpoint answered {}: {}",
            r.status_code, r.api_error.message
        ),
        OpenAIError::Reqwest(r) if r.is_connect() => {
            format!("could not connect to the AI endpoint at {url}: is it running?")
        }
        OpenAIError::Reqwest(r) if r.is_timeout() => {
            format!("the AI endpoint at {url} timed out")
        }
        OpenAIError::Reqwest(r) => format!("the request to the AI endpoint at {url} failed: {r}"),
        OpenAIError::JSONDeserialize(..) => {
            format!("the AI endpoint at {url} did not answer with a chat completion")
        }
        other => format!("the AI request failed: {other}"),
    }
}
