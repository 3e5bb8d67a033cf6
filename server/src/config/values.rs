//! Flag value types: secrets that never print, and the clap enums mapped
//! into each module's own type.

use clap::ValueEnum;

use crate::auth::SecureCookies;
use crate::openai::Provider;
use crate::telemetry::LogFormat;

/// A secret from the command line or environment: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself; keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `--secure-cookies`: when the session cookie gets the `Secure` attribute
/// ([`SecureCookies`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SecureCookiesArg {
    /// When the request came over HTTPS: `X-Forwarded-Proto: https` from a
    /// proxy, or `--public-url` is `https://`.
    Auto,
    /// Always (the server is only reached over HTTPS).
    Always,
    /// Never (plain HTTP, for example on a LAN).
    Never,
}

impl From<SecureCookiesArg> for SecureCookies {
    fn from(a: SecureCookiesArg) -> Self {
        match a {
            SecureCookiesArg::Auto => SecureCookies::Auto,
            SecureCookiesArg::Always => SecureCookies::Always,
            SecureCookiesArg::Never => SecureCookies::Never,
        }
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(a: LogFormatArg) -> Self {
        match a {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// `--llm-provider`, `--asr-provider`: the API shape of an AI endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderArg {
    /// OpenAI and compatible servers.
    Openai,
    /// Azure OpenAI.
    Azure,
}

impl From<ProviderArg> for Provider {
    fn from(a: ProviderArg) -> Self {
        match a {
            ProviderArg::Openai => Provider::Openai,
            ProviderArg::Azure => Provider::Azure,
        }
    }
}
