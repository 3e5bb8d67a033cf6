//! Analytics types shared by the watch page (its quality meter and beacon
//! loop), the server (the `GET /api/v1/streams/{id}/analytics` answer) and
//! the dashboard, and the dashboard's CSV export. The beacons' wire types
//! are in [`crate::protocol::beacon`]; numbers for people in [`crate::format`].

#[cfg(feature = "ssr")]
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::serverfn::{BoxFuture, Parts};
use serde::{Deserialize, Serialize};

use crate::protocol::beacon::Quality;

#[cfg(feature = "hydrate")]
pub mod beacons;

/// Starts the watch page's beacons (browser only) and gives the player the
/// meter it reports into. Call before the player is created.
pub fn use_beacons(stream: String, room: crate::realtime::RoomHandle) -> Meter {
    let meter = Meter::new();
    leptos::prelude::provide_context(meter);
    #[cfg(feature = "hydrate")]
    beacons::start(stream, room, meter);
    #[cfg(not(feature = "hydrate"))]
    let _ = (stream, room);
    meter
}

/// A count per place or per name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// ISO 3166-1 country code (`??` when unknown), or a name.
    pub key: String,
    /// For cities: the region (state, province), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// For cities: the city name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Viewers (or samples, for renditions).
    pub n: u64,
}

/// Percentiles of a measurement, from a histogram (ms).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Measurements behind them.
    pub samples: u64,
    /// Median.
    pub p50: Option<u32>,
    /// 90th percentile.
    pub p90: Option<u32>,
    /// 99th percentile.
    pub p99: Option<u32>,
}

/// Playback quality over a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QualitySummary {
    /// Time to first frame, ms.
    pub ttff_ms: Percentiles,
    /// Distance from the live edge, ms.
    pub latency_ms: Percentiles,
    /// Stalls.
    pub stalls: u64,
    /// Time stalled, ms.
    pub stall_ms: u64,
    /// Stalled time over watched time (0 to 1).
    pub stall_ratio: f64,
    /// Rendition switches.
    pub switches: u64,
    /// Fatal player errors.
    pub errors: u64,
    /// Average bitrate of what played, bit/s.
    pub avg_bitrate: Option<u64>,
    /// Beacons per rendition (the rendition mix), largest first.
    pub renditions: Vec<Count>,
}

/// One minute of a stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Minute {
    /// The minute's start, Unix ms.
    pub at_ms: i64,
    /// Most concurrent viewers.
    pub peak: u32,
    /// Average concurrent viewers.
    pub avg: f64,
    /// Viewers seen for the first time in the stream.
    pub new_viewers: u32,
    /// Seconds watched.
    pub watch_seconds: u64,
    /// Median time to first frame, ms.
    pub ttff_p50: Option<u32>,
    /// Median latency, ms.
    pub latency_p50: Option<u32>,
    /// 90th percentile latency, ms.
    pub latency_p90: Option<u32>,
    /// Stalls.
    pub stalls: u32,
    /// Time stalled, ms.
    pub stall_ms: u64,
}

/// A point of the live concurrent-viewers chart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// When, Unix ms.
    pub at_ms: i64,
    /// Concurrent viewers.
    pub viewers: u32,
}

/// What is happening now, from the open sessions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Now {
    /// Concurrent viewers.
    pub viewers: u32,
    /// Concurrent viewers every few seconds, oldest first (the last 30 minutes).
    pub recent: Vec<Sample>,
    /// Viewers by country, most first.
    pub countries: Vec<Count>,
    /// Viewers by city, most first.
    pub cities: Vec<Count>,
    /// Median of the viewers' latest latency, ms.
    pub latency_p50: Option<u32>,
    /// Stalled time over watched time of the open sessions (0 to 1).
    pub stall_ratio: f64,
    /// Viewers per rendition playing now.
    pub renditions: Vec<Count>,
}

/// `GET /api/v1/streams/{id}/analytics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamAnalytics {
    /// The stream.
    pub stream_id: String,
    /// Its title.
    pub title: String,
    /// `idle`, `live`, `ended` or `interrupted`.
    pub state: String,
    /// When it first went live, RFC 3339.
    pub started_at: Option<String>,
    /// When it last ended, RFC 3339.
    pub ended_at: Option<String>,
    /// Concurrent viewers now.
    pub current_viewers: u32,
    /// Most concurrent viewers ever.
    pub peak_viewers: u32,
    /// Distinct viewers.
    pub unique_viewers: u64,
    /// Seconds watched, all viewers together.
    pub watch_seconds: u64,
    /// Viewers by country (ISO codes), most first.
    pub countries: Vec<Count>,
    /// Viewers by city, most first.
    pub cities: Vec<Count>,
    /// Playback quality over the whole stream.
    pub quality: QualitySummary,
    /// The stream minute by minute.
    pub minutes: Vec<Minute>,
    /// Finished sessions by length ([`WATCH_BUCKETS`]).
    pub watch_time: Vec<Count>,
    /// Now (empty when nobody watches).
    pub now: Now,
}

/// A past stream in the dashboard's history table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    /// The stream.
    pub stream_id: String,
    /// Its title.
    pub title: String,
    /// Its owner's username.
    pub owner: String,
    /// `idle`, `live`, `ended` or `interrupted`.
    pub state: String,
    /// When it went live, RFC 3339.
    pub started_at: Option<String>,
    /// How long it was live, seconds (until now for a live stream).
    pub duration_secs: Option<u64>,
    /// Most concurrent viewers.
    pub peak_viewers: u32,
    /// Distinct viewers.
    pub unique_viewers: u64,
    /// Seconds watched.
    pub watch_seconds: u64,
}

/// What `/dashboard` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    /// Streams live now, with their analytics.
    pub live: Vec<StreamAnalytics>,
    /// Streams that have been live, newest first.
    pub history: Vec<HistoryRow>,
}

/// What this area's server functions need from the server (server build
/// only). The server implements it and provides an `Arc<dyn AnalyticsBackend>` in the
/// Leptos context; the rules are the JSON API's (docs/api.md), and refusals
/// are [`AppError::Refused`] with the API's
/// status and code.
#[cfg(feature = "ssr")]
pub trait AnalyticsBackend: Send + Sync + 'static {
    /// The dashboard of the signed-in broadcaster (an admin's: all streams).
    fn dashboard(&self, req: Parts) -> BoxFuture<'_, Result<Dashboard, AppError>>;
    /// One stream's analytics (owner and admins).
    fn stream_analytics(
        &self,
        req: Parts,
        id: String,
    ) -> BoxFuture<'_, Result<StreamAnalytics, AppError>>;
}

/// The dashboard of the signed-in broadcaster (an admin's: every stream).
#[leptos::server(prefix = "/api/fn")]
pub async fn get_dashboard() -> Result<Dashboard, crate::error::AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn AnalyticsBackend>()?
            .dashboard(request()?)
            .await,
    )
}

/// One stream's analytics (its owner and admins).
#[leptos::server(prefix = "/api/fn")]
pub async fn get_stream_analytics(id: String) -> Result<StreamAnalytics, crate::error::AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn AnalyticsBackend>()?
            .stream_analytics(request()?, id)
            .await,
    )
}

/// A watch page's playback measurements, sans-IO: the player glue reports
/// events with the time (ms, any clock that does not jump back), and the
/// beacon loop takes [`QualityMeter::snapshot`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QualityMeter {
    load_started: Option<i64>,
    ttff_ms: Option<u32>,
    stall_started: Option<i64>,
    stalls: u32,
    stall_ms: u64,
    rendition: Option<String>,
    bitrate: Option<u32>,
    switches: u32,
    latency_ms: Option<u32>,
    errors: u32,
    fresh: bool,
}

fn ms_u32(ms: i64) -> u32 {
    u32::try_from(ms.max(0)).unwrap_or(u32::MAX)
}

impl QualityMeter {
    /// The player starts loading the stream (again, after a retry: the time
    /// to first frame counts from the last attempt).
    pub fn loading(&mut self, now: i64) {
        if self.ttff_ms.is_none() {
            self.load_started = Some(now);
        }
    }

    /// Frames are playing (the first time: the time to first frame; after a
    /// stall: its end).
    pub fn playing(&mut self, now: i64) {
        if self.ttff_ms.is_none() {
            if let Some(start) = self.load_started {
                self.ttff_ms = Some(ms_u32(now - start));
                self.fresh = true;
            }
        }
        if let Some(start) = self.stall_started.take() {
            self.stall_ms += u64::from(ms_u32(now - start));
        }
    }

    /// Playback stopped to wait for data (only after the first frame is a
    /// stall).
    pub fn waiting(&mut self, now: i64) {
        if self.ttff_ms.is_some() && self.stall_started.is_none() {
            self.stalls += 1;
            self.stall_started = Some(now);
        }
    }

    /// The rendition playing now; a change is a switch.
    pub fn rendition(&mut self, name: String, bitrate: u32) {
        if self.rendition.as_ref().is_some_and(|r| *r != name) {
            self.switches += 1;
        }
        self.rendition = Some(name);
        self.bitrate = (bitrate > 0).then_some(bitrate);
    }

    /// Distance from the live edge now, ms.
    pub fn latency(&mut self, ms: i64) {
        // Negative (clock skew) or absurd values say nothing.
        self.latency_ms = (0..3_600_000).contains(&ms).then(|| ms_u32(ms));
    }

    /// A fatal player error.
    pub fn error(&mut self) {
        self.errors += 1;
    }

    /// Something worth sending at once (the first frame) happened since the
    /// last call.
    pub fn take_fresh(&mut self) -> bool {
        std::mem::take(&mut self.fresh)
    }

    /// What to send now (a stall in progress counts up to `now`).
    pub fn snapshot(&self, now: i64) -> Quality {
        let open_stall = self.stall_started.map_or(0, |s| u64::from(ms_u32(now - s)));
        Quality {
            ttff_ms: self.ttff_ms,
            stalls: self.stalls,
            stall_ms: self.stall_ms + open_stall,
            rendition: self.rendition.clone(),
            bitrate: self.bitrate,
            switches: self.switches,
            latency_ms: self.latency_ms,
            errors: self.errors,
        }
    }
}

/// The watch page's [`QualityMeter`], shared with the player through the
/// Leptos context. (Thread-safe storage: server rendering may finish a page
/// on another thread, and dropping thread-local values there panics.)
#[derive(Clone, Copy)]
pub struct Meter(pub leptos::prelude::StoredValue<QualityMeter>);

impl Meter {
    /// A fresh meter.
    pub fn new() -> Self {
        Meter(leptos::prelude::StoredValue::new(QualityMeter::default()))
    }

    /// Changes the measurements (nothing once the page is gone).
    pub fn update(&self, f: impl FnOnce(&mut QualityMeter)) {
        use leptos::prelude::UpdateValue;
        let _ = self.0.try_update_value(f);
    }
}

impl Default for Meter {
    fn default() -> Self {
        Self::new()
    }
}

/// Watch-time distribution buckets: lower bounds in seconds and labels.
pub const WATCH_BUCKETS: [(u64, &str); 7] = [
    (0, "under 1 min"),
    (60, "1–5 min"),
    (300, "5–15 min"),
    (900, "15–30 min"),
    (1800, "30–60 min"),
    (3600, "1–2 h"),
    (7200, "2 h or more"),
];

/// The [`WATCH_BUCKETS`] index of a session of `secs` seconds.
pub fn watch_bucket(secs: u64) -> usize {
    WATCH_BUCKETS
        .iter()
        .rposition(|(lower, _)| secs >= *lower)
        .unwrap_or(0)
}

/// A CSV document from a header and rows; fields with commas, quotes or
/// line breaks are quoted.
pub fn csv(header: &[&str], rows: &[Vec<String>]) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    let mut out = header
        .iter()
        .map(|h| field(h))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for row in rows {
        out.push_str(&row.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// A country name for an ISO code the dashboard shows (the code itself when
/// not in this short list).
pub fn country_label(code: &str) -> String {
    if code == "??" || code.is_empty() {
        "Unknown".into()
    } else {
        code.to_string()
    }
}

/// Short user-agent family: `Chrome`, `Firefox`, `Safari`, `Edge`, `Opera`,
/// `Bot` or `Other`.
pub fn ua_family(ua: &str) -> &'static str {
    let l = ua.to_ascii_lowercase();
    if l.contains("bot") || l.contains("spider") || l.contains("crawl") {
        "Bot"
    } else if l.contains("edg/") {
        "Edge"
    } else if l.contains("opr/") || l.contains("opera") {
        "Opera"
    } else if l.contains("firefox/") {
        "Firefox"
    } else if l.contains("chrome/") || l.contains("chromium/") {
        "Chrome"
    } else if l.contains("safari/") {
        "Safari"
    } else {
        "Other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it() {
        let out = csv(
            &["city", "viewers"],
            &[
                vec!["London".into(), "3".into()],
                vec!["Washington, D.C.".into(), "1".into()],
                vec!["a \"b\"".into(), "0".into()],
            ],
        );
        assert_eq!(
            out,
            "city,viewers\nLondon,3\n\"Washington, D.C.\",1\n\"a \"\"b\"\"\",0\n"
        );
    }

    #[test]
    fn watch_buckets_and_user_agents() {
        assert_eq!(watch_bucket(0), 0);
        assert_eq!(watch_bucket(59), 0);
        assert_eq!(watch_bucket(60), 1);
        assert_eq!(watch_bucket(7199), 5);
        assert_eq!(watch_bucket(100_000), 6);
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36";
        assert_eq!(ua_family(chrome), "Chrome");
        assert_eq!(
            ua_family("Mozilla/5.0 (X11; rv:140.0) Gecko/20100101 Firefox/140.0"),
            "Firefox"
        );
        assert_eq!(ua_family("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15"), "Safari");
        assert_eq!(
            ua_family("Mozilla/5.0 Chrome/130 Safari/537.36 Edg/130"),
            "Edge"
        );
        assert_eq!(ua_family("Googlebot/2.1"), "Bot");
        assert_eq!(ua_family(""), "Other");
    }

    #[test]
    fn the_meter_measures_first_frame_stalls_switches_and_latency() {
        let mut m = QualityMeter::default();
        m.waiting(50); // before the first frame: loading, not a stall
        m.loading(100);
        m.loading(1_000); // a retry: counts from here
        m.playing(1_800);
        assert!(m.take_fresh());
        assert!(!m.take_fresh());
        m.playing(1_900); // not a second first frame
        m.rendition("360p".into(), 800_000);
        m.rendition("360p".into(), 800_000);
        m.rendition("720p".into(), 2_500_000);
        m.waiting(5_000);
        m.waiting(5_100); // the same stall
        let q = m.snapshot(5_400);
        assert_eq!(q.ttff_ms, Some(800));
        assert_eq!(
            (q.stalls, q.stall_ms),
            (1, 400),
            "a stall in progress counts so far"
        );
        m.playing(6_000);
        m.latency(2_345);
        m.error();
        let q = m.snapshot(9_000);
        assert_eq!((q.stalls, q.stall_ms), (1, 1_000));
        assert_eq!(q.switches, 1);
        assert_eq!(q.rendition.as_deref(), Some("720p"));
        assert_eq!(q.bitrate, Some(2_500_000));
        assert_eq!(q.latency_ms, Some(2_345));
        assert_eq!(q.errors, 1);
        m.latency(-50);
        assert_eq!(m.snapshot(9_000).latency_ms, None);
    }
}
