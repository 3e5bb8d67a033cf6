//! The state every handler shares.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::db::Database;
use crate::ingest::IngestHub;
use crate::origin::Origin;
use crate::store::ObjectStore;

/// Shared, cheaply cloned application state.
#[derive(Clone)]
pub struct AppState {
    /// Leptos rendering options (site root, output name).
    pub leptos_options: LeptosOptions,
    /// The site root and its content-hashed file names.
    pub site: Arc<crate::bundle::Site>,
    /// The database.
    pub db: Database,
    /// The object store.
    pub store: Arc<dyn ObjectStore>,
    /// The Prometheus recorder's handle, rendered at `/metrics`.
    pub metrics: PrometheusHandle,
    /// The live streams this node serves.
    pub origin: Arc<Origin>,
    /// The queue that archives segments to the store.
    pub uploader: crate::store::uploader::Uploader,
    /// Live ingest sessions.
    pub ingest: Arc<IngestHub>,
    /// What server functions use to reach the server (each area's backend).
    pub services: Arc<crate::backend::Services>,
    /// Accounts, sessions, login throttling and playback tokens.
    pub accounts: Arc<crate::auth::Accounts>,
    /// Recordings: VOD playlists, MP4s, crash recovery.
    pub recorder: Arc<crate::recording::Recorder>,
    /// The realtime rooms (events socket).
    pub rooms: Arc<crate::realtime::Rooms>,
    /// Viewer sessions, quality beacons and rollups.
    pub analytics: Arc<crate::analytics::Analytics>,
    /// On-demand transcript summaries.
    pub summaries: Arc<crate::summary::Summarizer>,
    /// Largest request body under `/api/`, in bytes.
    pub api_max_body_bytes: usize,
    /// The bearer token `/metrics` requires, if any.
    pub metrics_token: Option<Arc<str>>,
    /// Connection timeouts and per-client caps, with their counters.
    pub connections: Arc<crate::connections::Connections>,
    /// Cluster mode: forwards requests for streams another node owns
    /// (none on a node alone).
    pub forward: Option<Arc<crate::forward::Forwarder>>,
    /// The WHIP endpoint, once its UDP socket is bound (`onair serve` binds
    /// `--webrtc-udp-addr`; tests bind their own). Unset: WHIP answers 503.
    pub webrtc: Arc<std::sync::OnceLock<Arc<crate::webrtc::Endpoint>>>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
