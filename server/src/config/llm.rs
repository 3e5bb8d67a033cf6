//! The summaries' language model flags (`--llm-*`), resolved into the
//! summarizer's config.

use clap::Args;

use super::*;

/// The AI model that writes summaries (an OpenAI-compatible or Azure OpenAI
/// chat-completions endpoint). Without `--llm-url`, summaries are the
/// built-in extractive kind.
#[derive(Debug, Clone, Args)]
pub struct LlmArgs {
    /// Chat-completions API base, such as `https://api.openai.com/v1` or a
    /// local OpenAI-compatible server's `http://127.0.0.1:8000/v1`; for Azure,
    /// the resource URL (`https://NAME.openai.azure.com`). Empty: no model.
    #[arg(long, env = "ONAIR_LLM_URL", default_value = "")]
    pub llm_url: String,

    /// The model name sent with each request and stored with each summary
    /// (for Azure, also the deployment unless `--llm-azure-deployment`).
    #[arg(long, env = "ONAIR_LLM_MODEL", default_value = "gpt-4o-mini")]
    pub llm_model: String,

    /// The API key (a bearer token; Azure's `api-key`). Prefer the
    /// environment variable to the flag.
    #[arg(long, env = "ONAIR_LLM_KEY", hide_env_values = true)]
    pub llm_key: Option<Secret>,

    /// Which API shape the endpoint speaks.
    #[arg(long, env = "ONAIR_LLM_PROVIDER", value_enum, default_value_t = ProviderArg::Openai)]
    pub llm_provider: ProviderArg,

    /// Azure OpenAI deployment name. Empty: `--llm-model`.
    #[arg(long, env = "ONAIR_LLM_AZURE_DEPLOYMENT", default_value = "")]
    pub llm_azure_deployment: String,

    /// Azure OpenAI `api-version`.
    #[arg(
        long,
        env = "ONAIR_LLM_AZURE_API_VERSION",
        default_value = "2024-10-21"
    )]
    pub llm_azure_api_version: String,

    /// The most transcript characters sent in one request (about 4 per
    /// token). Longer transcripts are summarised in parts, then combined.
    #[arg(long, env = "ONAIR_LLM_CONTEXT_CHARS", default_value_t = 12_000)]
    pub llm_context_chars: usize,

    /// Seconds one request to the model may take.
    #[arg(long, env = "ONAIR_LLM_TIMEOUT", default_value_t = 120)]
    pub llm_timeout: u64,
}

/// The smallest `--llm-context-chars`.
pub const MIN_LLM_CONTEXT_CHARS: usize = 200;

impl LlmArgs {
    /// The summaries' settings.
    pub fn summary_config(&self) -> Result<crate::summary::SummaryConfig, ConfigError> {
        use crate::summary::llm::{LlmConfig, Provider};
        if self.llm_context_chars < MIN_LLM_CONTEXT_CHARS {
            return Err(ConfigError::Llm(format!(
                "--llm-context-chars {} is below {MIN_LLM_CONTEXT_CHARS}",
                self.llm_context_chars
            )));
        }
        let url = self.llm_url.trim();
        let llm = if url.is_empty() {
            None
        } else {
            let parsed = url::Url::parse(url).map_err(|_| {
                ConfigError::Llm(format!(
                    "--llm-url {url:?}: expected an http:// or https:// URL"
                ))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::Llm(format!(
                    "--llm-url {url:?}: expected an http:// or https:// URL"
                )));
            }
            if self.llm_model.trim().is_empty() {
                return Err(ConfigError::Llm("--llm-model is empty".into()));
            }
            let provider = match self.llm_provider {
                ProviderArg::Openai => Provider::OpenAi,
                ProviderArg::Azure => Provider::Azure {
                    deployment: if self.llm_azure_deployment.trim().is_empty() {
                        self.llm_model.trim().to_string()
                    } else {
                        self.llm_azure_deployment.trim().to_string()
                    },
                    api_version: self.llm_azure_api_version.trim().to_string(),
                },
            };
            Some(LlmConfig {
                url: url.trim_end_matches('/').to_string(),
                model: self.llm_model.trim().to_string(),
                key: self
                    .llm_key
                    .as_ref()
                    .map(|k| k.expose().to_string())
                    .filter(|k| !k.is_empty()),
                provider,
                timeout: std::time::Duration::from_secs(self.llm_timeout.max(1)),
            })
        };
        Ok(crate::summary::SummaryConfig {
            llm,
            context_chars: self.llm_context_chars,
        })
    }
}
