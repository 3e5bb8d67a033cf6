//! The Onair server: one binary that serves the web app, takes live ingest,
//! packages low-latency HLS, and keeps state in SurrealDB and media in an object
//! store.
//!
//! # Layout
//! - [`config`]: the command line and `ONAIR_*` environment, as typed structs.
//! - [`server`]: start-up ([`server::build_state`]) and [`server::serve`], which
//!   takes its listener and shutdown signal from outside so tests can bind
//!   `127.0.0.1:0`.
//! - [`http`]: routes, middleware, error mapping, health and metrics.
//! - [`connections`]: the HTTP listener, its timeouts, and per-client caps
//!   on HTTP connections and WebSockets.
//! - [`ingest`]: the ingest WebSocket and per-stream sessions.
//! - [`db`]: SurrealDB connection, migrations and typed queries.
//! - [`store`]: the object store trait with disk and S3 implementations.
//! - [`private_fs`]: directories 0700 and files 0600 for everything stored.
//! - [`media`]: the FFmpeg libraries and what they can do.
//! - [`packager`]: sans-IO CMAF/fMP4 and LL-HLS playlists.
//! - [`origin`]: the live window in memory and blocking playlist reload.
//! - [`forward`]: cluster mode's edge: a stream another node owns is served
//!   by forwarding to it, requests collapsed, media kept for a while.
//! - [`publish`]: `onair publish`, the command-line publisher.
//! - [`telemetry`]: logging and the Prometheus recorder.
//! - [`backend`]: what the web app's server functions may ask of the database.
//! - [`auth`]: password hashing, sessions, login throttling, playback tokens.
//! - [`admin`]: `onair admin`, such as creating the first admin.
//! - [`analytics`]: viewer sessions, quality beacons, GeoIP and per-minute
//!   rollups behind the dashboard and `GET /api/v1/streams/{id}/analytics`.
//! - [`service`]: account and stream operations shared by the JSON API and
//!   the server functions.
//! - [`clock`]: wall-clock time in Unix milliseconds, stated once.
//! - [`webrtc`]: WHIP ingest over one UDP socket (str0m), into the same live
//!   sessions as every other source.
//! - [`summary`]: on-demand summaries of transcripts (chat completions with
//!   map-reduce for long ones, or the built-in extractive summary).

pub mod admin;
pub mod analytics;
pub mod auth;
pub mod backend;
pub mod bundle;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod db;
pub mod forward;
pub mod http;
pub mod ingest;
pub mod media;
pub mod openai;
pub mod origin;
pub mod outstanding;
pub mod packager;
pub mod private_fs;
pub mod publish;
pub mod realtime;
pub mod recording;
pub mod server;
pub mod service;
pub mod state;
pub mod store;
pub mod summary;
pub mod telemetry;
pub mod transcribe;
pub mod webrtc;
