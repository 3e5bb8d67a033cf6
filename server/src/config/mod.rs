//! Command line and configuration: one typed struct per subcommand, read from flags
//! and `ONAIR_*` environment variables, with defaults that run out of the box.

use clap::{Parser, Subcommand};

mod admin;
mod built;
mod cluster;
mod db;
mod llm;
mod resolve;
mod serve;
mod values;

pub use admin::{AdminArgs, AdminCommand, CreateUserArgs, RoleArg};
pub use built::{Config, RtmpsListen};
pub use cluster::ClusterArgs;
pub use db::DbArgs;
pub use llm::{LlmArgs, MIN_LLM_CONTEXT_CHARS};
pub use serve::ServeArgs;
pub use values::{LogFormatArg, ProviderArg, Secret, SecureCookiesArg};

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
    /// A cluster flag (`--node-id`, `--nats-*`) is unusable.
    #[error("{flag}: {message}")]
    Cluster {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
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
    /// `--webrtc-udp-addr` is not an address.
    #[error("--webrtc-udp-addr {0:?}: expected empty or an address such as 0.0.0.0:8189")]
    WebrtcUdpAddr(String),
    /// `--webrtc-udp-addr` binds every interface without `--webrtc-public-ip`.
    #[error("--webrtc-udp-addr {0} binds every interface: set --webrtc-public-ip to the address publishers reach")]
    WebrtcPublicIp(String),
    /// An `--llm-*` value is unusable.
    #[error("{0}")]
    Llm(String),
}

#[cfg(test)]
mod tests;
