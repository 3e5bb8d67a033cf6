//! Analytics: viewer sessions, heartbeats, playback-quality beacons, GeoIP and
//! per-minute rollups.
//!
//! - Watch pages join over the events socket (`hello` with a `viewer_id`)
//!   and send a `beacon` every 10 s with their playback quality; when the
//!   socket is down they `POST /api/v1/beacons`, and on leaving they send a
//!   `leave` beacon. A session without a heartbeat for
//!   [`AnalyticsConfig::heartbeat_timeout`] ends at its last heartbeat.
//! - [`tracker::Tracker`] (sans-IO) keeps the open sessions and each
//!   stream's open minute in memory. A ticker task (once a second) samples
//!   concurrency, ends silent sessions, and writes ended sessions and closed
//!   minutes to SurrealDB; so the dashboard reads rollup rows, never raw
//!   sessions. On shutdown everything open is closed and written.
//! - Geography: [`geo::GeoIp`] over `.mmdb` files; the client IP is the peer,
//!   or the `X-Forwarded-For` of a trusted proxy ([`client_ip`]). The IP is
//!   looked up and dropped, never stored.
//! - Raw sessions older than the retention period are deleted hourly.

pub mod client_ip;
pub mod geo;
pub mod hist;
pub mod report;
pub mod store;
pub mod tracker;

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use app::analytics::{HistoryRow, StreamAnalytics};
use app::protocol::beacon::Quality;
use axum::http::HeaderMap;

use crate::clock::now_ms;
use crate::db::streams::StreamRow;
use crate::db::{Database, DbError};
use client_ip::TrustedProxies;
use geo::GeoIp;
use tracker::{SessionRecord, Tracker, Visitor};

/// Analytics settings; each is a flag (see the README).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsConfig {
    /// Proxies whose `X-Forwarded-For` counts.
    pub trusted: TrustedProxies,
    /// GeoIP `.mmdb` files, tried in order.
    pub geoip: Vec<PathBuf>,
    /// A session ends this long after its last heartbeat.
    pub heartbeat_timeout: Duration,
    /// Raw sessions are deleted after this long (`None`: kept).
    pub retention: Option<Duration>,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            trusted: TrustedProxies::default(),
            geoip: Vec::new(),
            heartbeat_timeout: Duration::from_secs(30),
            retention: Some(Duration::from_secs(30 * 86_400)),
        }
    }
}

/// Where a request came from, for a new session: the IP only lives here,
/// long enough for the GeoIP lookup.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    ip: IpAddr,
    ua: &'static str,
}

#[derive(Debug)]
struct State {
    tracker: Tracker,
    /// Ended sessions not written yet.
    ended: Vec<SessionRecord>,
}

/// Ended sessions kept in memory while the database is down, at most.
const MAX_PENDING_SESSIONS: usize = 100_000;
/// How often the retention sweep runs.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The analytics of this node.
#[derive(Debug)]
pub struct Analytics {
    config: AnalyticsConfig,
    geo: GeoIp,
    db: Database,
    state: Mutex<State>,
}

impl Analytics {
    /// Opens the GeoIP files (missing ones are logged and skipped).
    pub fn new(db: Database, config: AnalyticsConfig) -> Arc<Self> {
        let geo = GeoIp::open(&config.geoip);
        let timeout_ms = i64::try_from(config.heartbeat_timeout.as_millis()).unwrap_or(i64::MAX);
        Arc::new(Analytics {
            config,
            geo,
            db,
            state: Mutex::new(State {
                tracker: Tracker::new(timeout_ms),
                ended: Vec::new(),
            }),
        })
    }

    /// Starts the ticker task: sampling, timeouts, writes, retention.
    pub fn start(self: &Arc<Self>) {
        let weak: Weak<Analytics> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_sweep: Option<tokio::time::Instant> = None;
            loop {
                every.tick().await;
                let Some(this) = weak.upgrade() else { return };
                this.flush(false).await;
                if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
                    last_sweep = Some(tokio::time::Instant::now());
                    this.sweep().await;
                }
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The GeoIP databases.
    pub fn geo(&self) -> &GeoIp {
        &self.geo
    }

    /// Where a request comes from (client IP via trusted proxies, browser family).
    pub fn source(&self, peer: IpAddr, headers: &HeaderMap) -> Source {
        let ua = headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Source {
            ip: self.config.trusted.client_ip(peer, headers),
            ua: app::analytics::ua_family(ua),
        }
    }

    /// A heartbeat (or a leave) of `viewer` on `stream`; the first one starts
    /// a session.
    pub fn beat(
        &self,
        stream: &str,
        viewer: &str,
        user: Option<&str>,
        source: Source,
        quality: Option<&Quality>,
        leave: bool,
    ) {
        let visitor = || Visitor {
            user: user.map(str::to_string),
            place: self.geo.lookup(source.ip),
            ua: source.ua,
        };
        metrics::counter!("onair_analytics_beats_total").increment(1);
        let mut st = self.lock();
        if let Some(ended) = st
            .tracker
            .beat(stream, viewer, visitor, quality, leave, now_ms())
        {
            st.ended.push(ended);
        }
    }

    /// Whether `viewer` has an open session on `stream`.
    pub fn has_session(&self, stream: &str, viewer: &str) -> bool {
        self.lock().tracker.has_session(stream, viewer)
    }

    /// One ticker round: timeouts and samples, then the writes. With `all`,
    /// every session and open minute is closed first (shutdown).
    pub async fn flush(&self, all: bool) {
        let (sessions, minutes) = {
            let mut st = self.lock();
            let now = now_ms();
            let mut ended = if all {
                st.tracker.close_all(now)
            } else {
                st.tracker.tick(now)
            };
            ended.append(&mut st.ended);
            metrics::gauge!("onair_analytics_sessions_open").set(st.tracker.open_sessions() as f64);
            (ended, st.tracker.unflushed())
        };
        if !sessions.is_empty() {
            if let Err(e) = self.db.insert_sessions(&sessions).await {
                tracing::warn!(error = %e, count = sessions.len(), "could not store viewer sessions; will retry");
                metrics::counter!("onair_analytics_write_errors_total").increment(1);
                let mut st = self.lock();
                let room = MAX_PENDING_SESSIONS.saturating_sub(st.ended.len());
                st.ended.extend(sessions.into_iter().take(room));
            } else {
                metrics::counter!("onair_analytics_sessions_total")
                    .increment(sessions.len() as u64);
            }
        }
        if !minutes.is_empty() {
            match self.db.insert_minutes(&minutes).await {
                Ok(()) => {
                    let ids: HashSet<String> = minutes.into_iter().map(|m| m.id).collect();
                    self.lock().tracker.flushed(&ids);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not store analytics minutes; will retry");
                    metrics::counter!("onair_analytics_write_errors_total").increment(1);
                }
            }
        }
    }

    /// Closes and writes everything (call on shutdown).
    pub async fn shutdown(&self) {
        self.flush(true).await;
    }

    async fn sweep(&self) {
        let Some(retention) = self.config.retention else {
            return;
        };
        let cutoff = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        match self.db.delete_sessions_before(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deleted = n,
                "analytics retention: old viewer sessions deleted"
            ),
            Err(e) => tracing::warn!(error = %e, "analytics retention sweep failed"),
        }
    }

    /// A stream's analytics: stored minutes plus what is still in memory.
    pub async fn stream(&self, row: &StreamRow) -> Result<StreamAnalytics, DbError> {
        let mut rows = self.db.stream_minutes(&row.id).await?;
        let (pending, now, peak) = {
            let st = self.lock();
            (
                st.tracker.pending_minutes(&row.id),
                st.tracker.now(&row.id),
                st.tracker.peak(&row.id),
            )
        };
        let stored: HashSet<String> = rows.iter().map(|r| r.id.clone()).collect();
        rows.extend(pending.into_iter().filter(|r| !stored.contains(&r.id)));
        let mut out = StreamAnalytics {
            stream_id: row.id.clone(),
            title: row.title.clone(),
            state: row.state.clone(),
            started_at: row.started_at.clone(),
            ended_at: row.ended_at.clone(),
            ..Default::default()
        };
        report::fold(&rows, &mut out);
        out.current_viewers = now.viewers;
        out.peak_viewers = out.peak_viewers.max(peak).max(now.viewers);
        out.now = now;
        Ok(out)
    }

    /// History rows for streams (totals from stored minutes plus memory).
    pub async fn history(&self, streams: &[StreamRow]) -> Result<Vec<HistoryRow>, DbError> {
        let ids: Vec<String> = streams.iter().map(|s| s.id.clone()).collect();
        let totals = self.db.stream_totals(&ids).await?;
        let st = self.lock();
        let now = now_ms();
        Ok(streams
            .iter()
            .zip(totals)
            .map(|(s, t)| {
                let mut rows = st.tracker.pending_minutes(&s.id);
                rows.retain(|r| r.peak > 0 || r.watch_ms > 0 || r.new_viewers > 0);
                let mut mem = StreamAnalytics::default();
                report::fold(&rows, &mut mem);
                let started = s.started_at.as_deref().and_then(parse_rfc3339_ms);
                let ended = if s.state == "live" {
                    Some(now)
                } else {
                    s.ended_at.as_deref().and_then(parse_rfc3339_ms)
                };
                let duration_secs = match (started, ended) {
                    (Some(a), Some(b)) if b >= a => u64::try_from((b - a) / 1000).ok(),
                    _ => None,
                };
                HistoryRow {
                    stream_id: s.id.clone(),
                    title: s.title.clone(),
                    owner: s.owner_username.clone().unwrap_or_default(),
                    state: s.state.clone(),
                    started_at: s.started_at.clone(),
                    duration_secs,
                    peak_viewers: u32::try_from(t.peak)
                        .unwrap_or(0)
                        .max(mem.peak_viewers)
                        .max(st.tracker.peak(&s.id)),
                    unique_viewers: u64::try_from(t.unique_viewers)
                        .unwrap_or(0)
                        .saturating_add(mem.unique_viewers),
                    watch_seconds: (u64::try_from(t.watch_ms).unwrap_or(0) / 1000)
                        .saturating_add(mem.watch_seconds),
                }
            })
            .collect())
    }
}

/// Unix ms of an RFC 3339 time.
fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}
