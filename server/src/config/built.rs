//! [`Config`]: everything `onair serve` runs with, resolved from
//! [`ServeArgs`] and validated once ([`ServeArgs::resolve`]), as each module's
//! own config type. Start-up ([`crate::server::build_state`],
//! [`crate::server::run`]) reads only this; tests build one directly from
//! [`Config::defaults`] and change the fields they need, never parsing argv
//! against the process environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, FromArgMatches};

use super::{ConfigError, ServeArgs};
use crate::db::DbSettings;
use crate::store::StoreConfig;

/// The RTMPS listener: where, and its TLS settings.
#[derive(Clone)]
pub struct RtmpsListen {
    /// Address and port.
    pub addr: SocketAddr,
    /// The certificate chain and key, loaded.
    pub tls: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for RtmpsListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtmpsListen")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// `onair serve`'s configuration, resolved: one field per module, each of
/// that module's own type with its bounds already applied.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address (`--addr`).
    pub addr: SocketAddr,
    /// The data directory (`--data-dir`).
    pub data_dir: PathBuf,
    /// The built web assets (`--site-root`).
    pub site_root: PathBuf,
    /// The database (`--db` and its companions).
    pub db: DbSettings,
    /// The object store (`--store`, `--s3-*`).
    pub store: StoreConfig,
    /// Accounts, sessions, login throttling, playback token lifetimes.
    pub accounts: crate::auth::AccountsConfig,
    /// `--playback-secret` as key bytes; `None`: the one kept under the data
    /// directory (made on first start).
    pub playback_key: Option<Vec<u8>>,
    /// Analytics: trusted proxies, GeoIP files, heartbeat timeout, retention.
    pub analytics: crate::analytics::AnalyticsConfig,
    /// Connection timeouts and per-client caps.
    pub connections: crate::connections::ConnectionLimits,
    /// Transcript summaries (`--llm-*`).
    pub summary: crate::summary::SummaryConfig,
    /// The upload queue (spills under `<data-dir>/spill`).
    pub uploader: crate::store::uploader::UploaderConfig,
    /// Recordings.
    pub recording: crate::recording::RecordingConfig,
    /// The events socket and chat.
    pub realtime: crate::realtime::RealtimeConfig,
    /// Live captions; `None` when `--asr-url` is empty.
    pub asr: Option<crate::transcribe::AsrConfig>,
    /// The ingest socket's limits.
    pub ingest: crate::ingest::IngestLimits,
    /// Live output timing and the ladder switch.
    pub live: crate::media::live::LiveConfig,
    /// The RTMP listener's address; `None`: no RTMP.
    pub rtmp_addr: Option<SocketAddr>,
    /// The RTMPS listener; `None`: no RTMPS.
    pub rtmps: Option<RtmpsListen>,
    /// RTMP and RTMPS listener settings.
    pub rtmp: crate::ingest::rtmp::RtmpConfig,
    /// The SRT listener's address; `None`: no SRT.
    pub srt_addr: Option<SocketAddr>,
    /// SRT listener settings.
    pub srt: crate::ingest::srt::SrtConfig,
    /// The WHIP endpoint's UDP socket; `None`: no WHIP ingest.
    pub webrtc_addr: Option<SocketAddr>,
    /// WHIP ingest settings (public IP, session cap, connect timeout).
    pub webrtc: crate::webrtc::WebrtcConfig,
    /// Cluster mode (`--nats-url`, `--node-id`, `--nats-*`); without a NATS
    /// URL the node is alone.
    pub cluster: crate::cluster::ClusterConfig,
    /// Largest request body under `/api/`, in bytes.
    pub api_max_body_bytes: usize,
    /// The bearer token `/metrics` requires, if any.
    pub metrics_token: Option<Arc<str>>,
}

impl ServeArgs {
    /// Resolves every flag into [`Config`], checking every bound once; the
    /// error names the flag.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let rtmps = match self.rtmps_addr()? {
            Some(addr) => Some(RtmpsListen {
                addr,
                tls: self.rtmps_tls()?,
            }),
            None => None,
        };
        Ok(Config {
            addr: self.addr,
            data_dir: self.data_dir().to_path_buf(),
            site_root: self.site_root.clone(),
            db: self.db_settings()?,
            store: self.store_config()?,
            accounts: self.accounts_config()?,
            playback_key: self.playback_key()?,
            analytics: self.analytics_config()?,
            connections: self.connection_limits(),
            summary: self.llm.summary_config()?,
            uploader: self.uploader_config(self.data_dir().join("spill")),
            recording: self.recording_config(),
            realtime: self.realtime_config(),
            asr: self.asr_config(),
            ingest: self.ingest_limits(),
            live: self.live_config(),
            rtmp_addr: self.rtmp_addr()?,
            rtmps,
            rtmp: self.rtmp_config(),
            srt_addr: self.srt_addr()?,
            srt: self.srt_config(),
            webrtc_addr: self.webrtc_udp_addr()?,
            webrtc: self.webrtc_config(),
            cluster: self.cluster.cluster_config()?,
            api_max_body_bytes: self.api_max_body_bytes.max(1024),
            metrics_token: self
                .metrics_token
                .as_ref()
                .map(|t| t.expose().trim().to_string())
                .filter(|t| !t.is_empty())
                .map(Arc::from),
        })
    }
}

impl Config {
    /// What `onair serve --data-dir <data_dir> --addr 127.0.0.1:0` runs with
    /// when nothing else is set: the flags' own defaults, with every
    /// `ONAIR_*` variable of the process ignored.
    pub fn defaults(data_dir: impl Into<PathBuf>) -> Config {
        let data_dir: PathBuf = data_dir.into();
        let command =
            ServeArgs::augment_args(clap::Command::new("serve")).mut_args(|arg| arg.env(None));
        let argv = [
            "serve".into(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            data_dir.into_os_string(),
        ];
        // The flags' defaults are valid: these steps cannot fail (a unit test
        // runs them).
        let matches = command
            .try_get_matches_from(argv)
            .expect("the defaults parse");
        ServeArgs::from_arg_matches(&matches)
            .expect("the defaults are serve's")
            .resolve()
            .expect("the defaults resolve")
    }
}
