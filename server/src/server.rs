//! Start-up and serving: open the database and store, build the state, and serve
//! HTTP until the shutdown signal.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use leptos::config::LeptosOptions;
use tokio::net::TcpListener;

use crate::backend::DbBackend;
use crate::config::ServeArgs;
use crate::db::{Database, DbError};
use crate::state::AppState;
use crate::store::{self, StoreError};
use crate::{http, media, telemetry};

/// Start-up failed; the message says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A configuration value is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// FFmpeg could not be initialised.
    #[error(transparent)]
    Media(#[from] media::MediaInitError),
    /// The playback secret could not be read or created.
    #[error(transparent)]
    PlaybackSecret(#[from] crate::auth::playback::SecretError),
    /// The data directory could not be created or made private.
    #[error("cannot use the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The upload spill directory could not be used.
    #[error("cannot use the upload spill directory {path}: {source}")]
    Spill {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
}

/// Leptos options for a site: its root and its wasm-bindgen output name
/// (content-hashed when the build wrote a manifest, see [`crate::bundle`]).
pub fn leptos_options(site: &crate::bundle::Site, addr: std::net::SocketAddr) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name(site.output_name.as_str())
        .site_root(site.root.display().to_string())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .build()
}

/// Opens everything `onair serve` needs and returns the shared state.
pub async fn build_state(args: &ServeArgs) -> Result<AppState, StartError> {
    let ffmpeg = media::init()?;
    tracing::info!(
        avcodec = %ffmpeg.avcodec,
        avformat = %ffmpeg.avformat,
        libx264 = ffmpeg.libx264,
        aac = ffmpeg.aac,
        "FFmpeg ready"
    );
    if !ffmpeg.libx264 || !ffmpeg.aac {
        tracing::warn!("the linked FFmpeg lacks libx264 or AAC: live transcoding will not work");
    }

    // Accounts settings first: a bad flag fails before anything is opened.
    let accounts_config = args.accounts_config()?;
    private_data_dir(args.data_dir()).map_err(|(path, source)| StartError::DataDir {
        path: path.display().to_string(),
        source,
    })?;
    let playback_key = match args.playback_key()? {
        Some(key) => key,
        None => crate::auth::playback::load_or_create_secret(args.data_dir())?,
    };
    let accounts = Arc::new(crate::auth::Accounts::new(accounts_config, &playback_key));
    let analytics_config = args.analytics_config()?;
    let connections = Arc::new(crate::connections::Connections::new(
        args.connection_limits(),
        analytics_config.trusted.clone(),
        args.trust_forwarded_for,
    ));
    let summary_config = args.llm.summary_config()?;

    let db = Database::connect(&args.db_settings()?).await?;
    let report = db.migrate().await?;
    tracing::info!(version = report.current, applied = ?report.applied, "database schema up to date");

    let store = store::open(&args.store_config()?).await?;
    if let Err(e) = store.check().await {
        // Keep running: /readyz reports it, and the store may come back.
        tracing::warn!(store = %store.describe(), error = %e, "the object store is not reachable yet");
    }

    let site = Arc::new(crate::bundle::Site::load(&args.site_root));
    let pkg_js = site.js_path();
    if !pkg_js.exists() {
        tracing::warn!(
            missing = %pkg_js.display(),
            "web assets are not built, pages will render but not become interactive: run `make build`"
        );
    }

    let spill_dir = args.data_dir().join("spill");
    let uploader = crate::store::uploader::Uploader::start(
        store.clone(),
        args.uploader_config(spill_dir.clone()),
    )
    .await
    .map_err(|source| StartError::Spill {
        path: spill_dir.display().to_string(),
        source,
    })?;
    let origin = crate::origin::Origin::new();
    let recorder = crate::recording::Recorder::new(
        db.clone(),
        store.clone(),
        uploader.clone(),
        args.recording_config(),
    );
    match recorder.recover().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(recordings = n, "finishing recordings a restart cut short"),
        Err(e) => {
            tracing::error!(error = %e, "could not recover streams that were live before the restart")
        }
    }
    let rooms = crate::realtime::Rooms::new(db.clone(), args.realtime_config());
    let transcriber = args.asr_config().map(|cfg| {
        tracing::info!(url = %cfg.endpoint.url, model = %cfg.endpoint.model, provider = ?cfg.endpoint.provider, "live captions on");
        crate::transcribe::Transcriber::new(cfg, db.clone(), rooms.clone(), args.live_config().window_segments)
    });
    if transcriber.is_none() {
        tracing::info!("live captions off (no --asr-url)");
    }
    let ingest = crate::ingest::IngestHub::new(
        args.ingest_limits(),
        args.live_config(),
        origin.clone(),
        db.clone(),
        uploader.clone(),
        store.clone(),
        recorder.clone(),
    );
    if let Some(t) = transcriber {
        ingest.set_transcriber(t);
    }
    rooms.follow(ingest.subscribe_states());
    let captions_on = ingest.captions_on();
    let analytics = crate::analytics::Analytics::new(db.clone(), analytics_config);
    analytics.start();
    match summary_config.llm.as_ref() {
        Some(llm) => {
            tracing::info!(url = %llm.url, model = %llm.model, "summaries use an AI model")
        }
        None => tracing::info!("no AI model configured (--llm-url): summaries are extractive"),
    }
    let summaries = crate::summary::Summarizer::new(db.clone(), summary_config);
    Ok(AppState {
        summaries: summaries.clone(),
        analytics: analytics.clone(),
        rooms: rooms.clone(),
        recorder: recorder.clone(),
        leptos_options: leptos_options(&site, args.addr),
        site,
        ingest: ingest.clone(),
        uploader,
        backend: Arc::new(
            DbBackend::new(db.clone(), accounts.clone())
                .with_ingest(ingest)
                .with_rooms(rooms.clone())
                .with_recorder(recorder.clone())
                .with_captions(captions_on)
                .with_analytics(analytics)
                .with_summaries(summaries),
        ),
        db,
        store,
        metrics: telemetry::metrics_handle(),
        origin,
        accounts,
        api_max_body_bytes: args.api_max_body_bytes.max(1024),
        metrics_token: args
            .metrics_token
            .as_ref()
            .map(|t| t.expose().trim().to_string())
            .filter(|t| !t.is_empty())
            .map(Arc::from),
        connections,
        webrtc: Arc::default(),
    })
}

/// The server's own directories under the data directory.
pub const OWN_DIRS: [&str; 4] = ["db", "store", "spill", "recording-work"];

/// Creates the data directory private (0700) if missing, and makes the
/// server's own directories in it ([`OWN_DIRS`]) private if they exist
/// (each is created private when first used).
/// The error names the directory that failed.
fn private_data_dir(data_dir: &Path) -> Result<(), (std::path::PathBuf, std::io::Error)> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |e| (path, e)
    };
    crate::private_fs::create_dir(data_dir).map_err(failed(data_dir))?;
    crate::private_fs::warn_if_open(data_dir);
    for name in OWN_DIRS {
        let dir = data_dir.join(name);
        if dir.is_dir() {
            crate::private_fs::own_dir(&dir).map_err(failed(&dir))?;
        }
    }
    Ok(())
}

/// Serves the app on `listener` until `shutdown` completes, then finishes the
/// requests in flight. Connections are timed and capped per client
/// ([`crate::connections`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let connections = state.connections.clone();
    let app = http::router(state);
    crate::connections::accept::serve(listener, app, connections, shutdown)
        .await
        .map_err(StartError::Serve)
}

/// `onair serve`: builds the state, binds, logs where things are, and serves
/// until Ctrl-C or SIGTERM.
pub async fn run(args: ServeArgs) -> Result<(), StartError> {
    let state = build_state(&args).await?;
    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: args.addr,
            source,
        })?;
    let local = listener.local_addr().map_err(StartError::Serve)?;
    // RTMP ingest (OBS and other encoders), into the same live sessions.
    let rtmp = match args.rtmp_addr()? {
        Some(addr) => {
            let rtmp = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            let bound = rtmp.local_addr().map_err(StartError::Serve)?;
            tracing::info!(
                "RTMP ingest: rtmp://{bound}/live (stream key: <stream id>_<ingest token>)"
            );
            let cfg = crate::ingest::rtmp::RtmpConfig {
                keys: Some(state.accounts.playback.clone()),
                ..args.rtmp_config()
            };
            Some(tokio::spawn(crate::ingest::rtmp::serve(
                rtmp,
                state.ingest.clone(),
                cfg,
            )))
        }
        None => None,
    };
    // RTMPS: the same listener behind TLS, on its own port.
    let rtmps = match args.rtmps_addr()? {
        Some(addr) => {
            let tls = args.rtmps_tls()?;
            let rtmps = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            let bound = rtmps.local_addr().map_err(StartError::Serve)?;
            tracing::info!("RTMPS ingest: rtmps://{bound}/live");
            let cfg = crate::ingest::rtmp::RtmpConfig {
                keys: Some(state.accounts.playback.clone()),
                ..args.rtmp_config()
            };
            Some(tokio::spawn(crate::ingest::rtmp::serve_tls(
                rtmps,
                state.ingest.clone(),
                cfg,
                tls,
            )))
        }
        None => None,
    };
    // SRT ingest (UDP, libsrt), into the same live sessions.
    let _srt = match args.srt_addr()? {
        Some(addr) => {
            let socket = std::net::UdpSocket::bind(addr)
                .map_err(|source| StartError::Bind { addr, source })?;
            let cfg = crate::ingest::srt::SrtConfig {
                keys: Some(state.accounts.playback.clone()),
                ..args.srt_config()
            };
            let srt = crate::ingest::srt::serve(socket, state.ingest.clone(), cfg)
                .map_err(|e| StartError::Serve(std::io::Error::other(e)))?;
            tracing::info!(
                "SRT ingest: srt://{}?streamid=#!::r=<stream key>,m=publish",
                srt.local_addr()
            );
            Some(srt)
        }
        None => None,
    };
    // WHIP ingest (WebRTC over one UDP socket), into the same live sessions.
    if let Some(addr) = args.webrtc_udp_addr()? {
        let socket =
            std::net::UdpSocket::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
        let endpoint = crate::webrtc::serve(
            socket,
            state.ingest.clone(),
            state.db.clone(),
            Some(state.accounts.playback.clone()),
            args.webrtc_config(),
        )
        .map_err(StartError::Serve)?;
        tracing::info!(
            "WHIP ingest: http://{local}/api/v1/streams/<stream id>/whip (Bearer <stream key>), media on UDP {} (candidate {})",
            endpoint.local_addr(),
            endpoint.candidate_addr()
        );
        let _ = state.webrtc.set(endpoint);
    }
    tracing::info!(
        data_dir = %args.data_dir().display(),
        database = %state.db.describe(),
        store = %state.store.describe(),
        "Onair is serving: open http://{local}/",
    );
    let analytics = state.analytics.clone();
    let served = serve(listener, state, shutdown_signal()).await;
    for task in [rtmp, rtmps].into_iter().flatten() {
        task.abort();
    }
    // Open viewer sessions and the current minute are written before exit.
    analytics.shutdown().await;
    served
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
