//! The OpenAI-compatible client both AI features use: live transcription
//! (`POST /audio/transcriptions`) and summaries (`POST /chat/completions`),
//! with `async-openai`, against OpenAI and compatible servers or Azure OpenAI.

use async_openai::config::{AzureConfig, OpenAIConfig};
use async_openai::error::OpenAIError;
use async_openai::types::audio::{AudioInput, CreateTranscriptionRequestArgs};
use async_openai::types::chat::{CreateChatCompletionRequest, CreateChatCompletionResponse};

/// Which API flavour the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI and compatible servers: `<url>/audio/transcriptions`, bearer key.
    Openai,
    /// Azure OpenAI: `<url>/openai/deployments/<deployment>/audio/transcriptions?api-version=`, `api-key` header.
    Azure,
}

/// An OpenAI-compatible endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The API base: `https://api.openai.com/v1`, `http://127.0.0.1:8000/v1`,
    /// or for Azure the resource URL (`https://<name>.openai.azure.com`).
    pub url: String,
    /// The model (for Azure, informational: the deployment decides).
    pub model: String,
    /// The API key, if the endpoint needs one.
    pub key: Option<String>,
    /// The API flavour.
    pub provider: Provider,
    /// Azure: the deployment name.
    pub azure_deployment: String,
    /// Azure: the `api-version` query parameter.
    pub azure_api_version: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("key", &self.key.as_ref().map(|_| "<secret>"))
            .field("provider", &self.provider)
            .field("azure_deployment", &self.azure_deployment)
            .field("azure_api_version", &self.azure_api_version)
            .finish()
    }
}

/// An `async-openai` client for an [`Endpoint`], either flavour.
#[derive(Debug, Clone)]
pub enum OpenAiClient {
    /// OpenAI or compatible.
    Openai(async_openai::Client<OpenAIConfig>),
    /// Azure OpenAI.
    Azure(async_openai::Client<AzureConfig>),
}

impl OpenAiClient {
    /// A client for `endpoint`. The key comes from the endpoint only (never
    /// from `OPENAI_API_KEY`).
    pub fn new(endpoint: &Endpoint) -> Self {
        let key = endpoint.key.clone().unwrap_or_default();
        let base = endpoint.url.trim_end_matches('/').to_string();
        match endpoint.provider {
            Provider::Openai => OpenAiClient::Openai(async_openai::Client::with_config(
                OpenAIConfig::new().with_api_base(base).with_api_key(key),
            )),
            Provider::Azure => OpenAiClient::Azure(async_openai::Client::with_config(
                AzureConfig::new()
                    .with_api_base(base)
                    .with_api_key(key)
                    .with_deployment_id(endpoint.azure_deployment.clone())
                    .with_api_version(endpoint.azure_api_version.clone()),
            )),
        }
    }

    /// A chat completion.
    pub async fn chat(
        &self,
        request: CreateChatCompletionRequest,
    ) -> Result<CreateChatCompletionResponse, OpenAIError> {
        match self {
            OpenAiClient::Openai(c) => c.chat().create(request).await,
            OpenAiClient::Azure(c) => c.chat().create(request).await,
        }
    }

    /// Transcribes a WAV file.
    pub async fn transcribe(
        &self,
        wav: Vec<u8>,
        model: &str,
        language: Option<&str>,
    ) -> Result<String, OpenAIError> {
        let mut args = CreateTranscriptionRequestArgs::default();
        args.file(AudioInput::from_vec_u8("window.wav".into(), wav))
            .model(model);
        if let Some(l) = language {
            args.language(l);
        }
        let request = args.build()?;
        let response = match self {
            OpenAiClient::Openai(c) => c.audio().transcription().create(request).await?,
            OpenAiClient::Azure(c) => c.audio().transcription().create(request).await?,
        };
        Ok(response.text)
    }
}

/// Whether a failed request is worth retrying: network errors, timeouts,
/// 408, 429 and 5xx are; other refusals (a bad key, a bad request) are not.
pub fn retryable(e: &OpenAIError) -> bool {
    match e {
        OpenAIError::ApiError(r) => {
            let s = r.status_code.as_u16();
            s == 408 || s == 429 || s >= 500
        }
        OpenAIError::InvalidArgument(_) => false,
        _ => true,
    }
}
