//! Start-up and serving: open the database and store, build the state, and serve
//! HTTP until the shutdown signal.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use leptos::config::LeptosOptions;
use tokio::net::TcpListener;

use crate::backend::Services;
use crate::config::Config;
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
    /// The NATS URL is unusable.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::BusError),
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
pub async fn build_state(config: &Config) -> Result<AppState, StartError> {
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
    let accounts_config = config.accounts.clone();
    private_data_dir(&config.data_dir).map_err(|(path, source)| StartError::DataDir {
        path: path.display().to_string(),
        source,
    })?;
    let playback_key = match config.playback_key.clone() {
        Some(key) => key,
        None => crate::auth::playback::load_or_create_secret(&config.data_dir)?,
    };
    let accounts = Arc::new(crate::auth::Accounts::new(accounts_config, &playback_key));
    let analytics_config = config.analytics.clone();
    let connections = Arc::new(crate::connections::Connections::new(
        config.connections,
        analytics_config.trusted.clone(),
        config.accounts.trust_forwarded_for,
    ));
    let summary_config = config.summary.clone();

    let db = Database::connect(&config.db).await?;
    let report = db.migrate_as(&config.cluster.node_id).await?;
    tracing::info!(version = report.current, applied = ?report.applied, "database schema up to date");

    let store = store::open(&config.store).await?;
    if let Err(e) = store.check().await {
        // Keep running: /readyz reports it, and the store may come back.
        tracing::warn!(store = %store.describe(), error = %e, "the object store is not reachable yet");
    }

    let site = Arc::new(crate::bundle::Site::load(&config.site_root));
    let pkg_js = site.js_path();
    if !pkg_js.exists() {
        tracing::warn!(
            missing = %pkg_js.display(),
            "web assets are not built, pages will render but not become interactive: run `make build`"
        );
    }

    let spill_dir = config.uploader.spill_dir.clone();
    let uploader = crate::store::uploader::Uploader::start(store.clone(), config.uploader.clone())
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
        config.recording.clone(),
    );
    // Cluster mode: streams still marked live may be another node's; the
    // orphan sweep (below) interrupts those whose node is gone.
    // Streams a graceful shutdown left resumable get the resume grace (on a
    // node alone: in cluster mode the orphan sweep gives every stream one).
    let resumable = crate::ingest::resume::take_resumable(&config.data_dir);
    let resumable = if config.cluster.nats_url.is_some() {
        Vec::new()
    } else {
        resumable
    };
    let recovered = if config.cluster.nats_url.is_some() {
        recorder.recover_recordings().await
    } else {
        recorder.recover(&resumable).await
    };
    match recovered {
        Ok(0) => {}
        Ok(n) => tracing::info!(recordings = n, "finishing recordings a restart cut short"),
        Err(e) => {
            tracing::error!(error = %e, "could not recover streams that were live before the restart")
        }
    }
    let cluster = config.cluster.clone();
    let nats = match &cluster.nats_url {
        Some(url) => {
            tracing::info!(node = %cluster.node_id, nats = %url, "cluster mode: rooms and stream leases on NATS");
            Some(crate::cluster::nats::NatsBus::connect(cluster.clone()).await?)
        }
        None => None,
    };
    let rooms = match &nats {
        Some(bus) => {
            crate::realtime::Rooms::with_bus(db.clone(), config.realtime, Arc::new(bus.clone()))
        }
        None => crate::realtime::Rooms::new(db.clone(), config.realtime),
    };
    let transcriber = config.asr.clone().map(|cfg| {
        tracing::info!(url = %cfg.endpoint.url, model = %cfg.endpoint.model, provider = ?cfg.endpoint.provider, "live captions on");
        crate::transcribe::Transcriber::new(cfg, db.clone(), rooms.clone(), config.live.window_segments)
    });
    if transcriber.is_none() {
        tracing::info!("live captions off (no --asr-url)");
    }
    let ingest = crate::ingest::IngestHub::new(
        config.ingest,
        config.live,
        origin.clone(),
        db.clone(),
        uploader.clone(),
        store.clone(),
        recorder.clone(),
    );
    if let Some(t) = transcriber {
        ingest.set_transcriber(t);
    }
    if let Some(bus) = &nats {
        ingest.set_ownership(Arc::new(NatsOwnership(bus.leases())));
        ingest.sweep_orphans(cluster.lease_ttl);
    }
    ingest.await_resume(resumable);
    let forward = nats.as_ref().map(|bus| {
        crate::forward::Forwarder::new(
            crate::forward::ForwardConfig {
                node_id: cluster.node_id.clone(),
                cache_bytes: cluster.edge_cache_bytes,
                cache_ttl: cluster.edge_cache_ttl,
                // Longer than the owner's longest blocking wait (three segments).
                timeout: std::time::Duration::from_millis(config.live.segment_ms.saturating_mul(3))
                    + std::time::Duration::from_secs(5),
            },
            Arc::new(NatsOwners(bus.leases())),
            bus.node_url(),
        )
    });
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
    {
        // A built recording gets its chapters, unless it has some.
        let summaries = summaries.clone();
        recorder.on_built(move |id| {
            let (summaries, id) = (summaries.clone(), id.to_string());
            tokio::spawn(async move { summaries.chapters_after_stream(&id).await });
        });
    }
    Ok(AppState {
        summaries: summaries.clone(),
        analytics: analytics.clone(),
        rooms: rooms.clone(),
        recorder: recorder.clone(),
        leptos_options: leptos_options(&site, config.addr),
        site,
        ingest: ingest.clone(),
        uploader,
        services: Arc::new(Services {
            db: db.clone(),
            accounts: accounts.clone(),
            rooms: rooms.clone(),
            recorder: recorder.clone(),
            analytics,
            captions: captions_on,
            summaries,
            ingest,
        }),
        db,
        store,
        metrics: telemetry::metrics_handle(),
        origin,
        accounts,
        api_max_body_bytes: config.api_max_body_bytes,
        metrics_token: config.metrics_token.clone(),
        connections,
        forward,
        webrtc: Arc::default(),
    })
}

/// Stream ownership on NATS leases, as ingest sees it
/// ([`crate::ingest::Ownership`]): ingest does not know NATS.
#[derive(Debug)]
struct NatsOwnership(crate::cluster::leases::NatsLeases);

#[async_trait::async_trait]
impl crate::ingest::Ownership for NatsOwnership {
    async fn claim(&self, stream_id: &str) -> crate::ingest::Claim {
        use crate::cluster::leases::LeaseError;
        match self.0.claim(stream_id).await {
            Ok(lease) => crate::ingest::Claim::Held(Box::new(lease)),
            Err(LeaseError::Taken(owner)) => crate::ingest::Claim::Taken { owner },
            Err(e) => crate::ingest::Claim::Unknown(e.to_string()),
        }
    }

    async fn holder(&self, stream_id: &str) -> Result<Option<String>, String> {
        match self.0.owner(stream_id).await {
            Ok(Some(h)) if h.node != self.0.node() => Ok(Some(h.node)),
            Ok(_) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Stream owners from the NATS leases, as forwarding reads them.
#[derive(Debug)]
struct NatsOwners(crate::cluster::leases::NatsLeases);

#[async_trait::async_trait]
impl crate::forward::Owners for NatsOwners {
    async fn owner(&self, stream: &str) -> Result<Option<crate::forward::Owner>, String> {
        match self.0.owner(stream).await {
            Ok(h) => Ok(h.map(|h| crate::forward::Owner {
                node: h.node,
                url: h.url,
            })),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl crate::ingest::Lease for crate::cluster::leases::NatsLease {
    fn release(self: Box<Self>) {
        crate::cluster::leases::NatsLease::release(*self);
    }
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
    // Cluster mode: the other nodes reach this one where it listens, unless
    // --node-url said otherwise.
    if let (Some(forward), Ok(addr)) = (&state.forward, listener.local_addr()) {
        forward.set_node_url(crate::forward::default_node_url(addr));
    }
    let app = http::router(state);
    crate::connections::accept::serve(listener, app, connections, shutdown)
        .await
        .map_err(StartError::Serve)
}

/// `onair serve`: builds the state, binds, logs where things are, and serves
/// until Ctrl-C or SIGTERM.
pub async fn run(config: Config) -> Result<(), StartError> {
    let state = build_state(&config).await?;
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
    let local = listener.local_addr().map_err(StartError::Serve)?;
    // RTMP ingest (OBS and other encoders), into the same live sessions.
    let rtmp = match config.rtmp_addr {
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
                ..config.rtmp.clone()
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
    let rtmps = match config.rtmps.clone() {
        Some(crate::config::RtmpsListen { addr, tls }) => {
            let rtmps = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            let bound = rtmps.local_addr().map_err(StartError::Serve)?;
            tracing::info!("RTMPS ingest: rtmps://{bound}/live");
            let cfg = crate::ingest::rtmp::RtmpConfig {
                keys: Some(state.accounts.playback.clone()),
                ..config.rtmp.clone()
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
    let _srt = match config.srt_addr {
        Some(addr) => {
            let socket = std::net::UdpSocket::bind(addr)
                .map_err(|source| StartError::Bind { addr, source })?;
            let cfg = crate::ingest::srt::SrtConfig {
                keys: Some(state.accounts.playback.clone()),
                ..config.srt.clone()
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
    if let Some(addr) = config.webrtc_addr {
        let socket =
            std::net::UdpSocket::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
        let endpoint = crate::webrtc::serve(
            socket,
            state.ingest.clone(),
            state.db.clone(),
            Some(state.accounts.playback.clone()),
            config.webrtc.clone(),
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
        data_dir = %config.data_dir.display(),
        database = %state.db.describe(),
        store = %state.store.describe(),
        "Onair is serving: open http://{local}/",
    );
    let analytics = state.analytics.clone();
    let stop = graceful_stop(&state, config.data_dir.clone());
    let served = serve(listener, state, stop).await;
    for task in [rtmp, rtmps].into_iter().flatten() {
        task.abort();
    }
    // Open viewer sessions and the current minute are written before exit.
    analytics.shutdown().await;
    served
}

/// How long a graceful shutdown waits for the live pipelines to finish
/// their segments.
pub const SHUTDOWN_PIPELINES: Duration = Duration::from_secs(10);
/// How long it then waits for the upload queue and the catalog rows.
pub const SHUTDOWN_WRITES: Duration = Duration::from_secs(20);

/// Completes on Ctrl-C or SIGTERM once the live streams are left
/// resumable (`ingest::resume`): their pipelines finished their segments
/// (at most [`SHUTDOWN_PIPELINES`]), the uploads and catalog rows are
/// written (at most [`SHUTDOWN_WRITES`] each; what is not uploaded stays in
/// the spill directory), and the streams are listed for the restart.
fn graceful_stop(state: &AppState, data_dir: std::path::PathBuf) -> impl Future<Output = ()> {
    let (ingest, uploader, catalog) = (
        state.ingest.clone(),
        state.uploader.clone(),
        state.recorder.catalog(),
    );
    async move {
        shutdown_signal().await;
        let resumable = ingest.shutdown(SHUTDOWN_PIPELINES).await;
        if !uploader.drained(SHUTDOWN_WRITES).await {
            tracing::warn!("shutdown: uploads still queued; they stay in the spill directory");
        }
        if !catalog.flushed(SHUTDOWN_WRITES).await {
            tracing::warn!(
                "shutdown: catalog rows still queued; the restart's recovery reads the store"
            );
        }
        if !resumable.is_empty() {
            match crate::ingest::resume::write_resumable(&data_dir, &resumable) {
                Ok(()) => tracing::info!(
                    streams = resumable.len(),
                    "live streams listed for the restart"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "cannot list the live streams for the restart: they will be interrupted")
                }
            }
        }
    }
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
