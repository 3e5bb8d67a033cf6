//! Viewer sessions and per-minute rollups, sans-IO: the caller passes the
//! time in (Unix ms) and writes out what comes back (ended sessions, closed
//! minutes). [`super::Analytics`] holds one behind a mutex.
//!
//! - A session is a (stream, viewer id) pair. It starts with its first
//!   heartbeat, each heartbeat adds the time since the last one (at most the
//!   timeout) to its watch time and to the open minute, and it ends on a
//!   `leave` or when no heartbeat came for the timeout; then it ends at its
//!   last heartbeat.
//! - Each stream has one open minute accumulating concurrency samples (one
//!   per [`Tracker::tick`]), new viewers, watch time, places and quality.
//!   When the clock passes the minute, it closes and waits in `unflushed`
//!   until the caller has written it.
//! - Numbers from clients are untrusted: [`Tracker::beat`] clamps each
//!   beacon to [`app::protocol::beacon::bounds`] (both the HTTP and the events
//!   socket path come through it), and every sum here and in
//!   [`super::report`] saturates ([`add`]), so neither an absurd beacon nor
//!   an absurd stored row can overflow.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use app::analytics::{Count, Now, Sample, WATCH_BUCKETS};
use app::protocol::beacon::Quality;
use serde::{Deserialize, Serialize};

use super::geo::Place;
use super::hist::Hist;

/// One minute in milliseconds.
pub const MINUTE_MS: i64 = 60_000;
/// A point on the live chart every this many ms.
pub const RECENT_EVERY_MS: i64 = 5_000;
/// Points kept for the live chart (30 minutes).
pub const RECENT_POINTS: usize = 360;
/// A stream nobody watched for this long is forgotten (its viewers would
/// count as new again).
pub const IDLE_STREAM_MS: i64 = 6 * 3600 * 1000;

/// Who a new session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    /// The signed-in user's id.
    pub user: Option<String>,
    /// Where they are.
    pub place: Place,
    /// User-agent family.
    pub ua: &'static str,
}

/// An ended session, to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Stream id.
    pub stream: String,
    /// The anonymous viewer id.
    pub viewer: String,
    /// The signed-in user's id.
    pub user: Option<String>,
    /// Where.
    pub place: Place,
    /// User-agent family.
    pub ua: &'static str,
    /// First heartbeat, Unix ms.
    pub joined_ms: i64,
    /// Last heartbeat (or the leave), Unix ms.
    pub left_ms: i64,
    /// Time watched, ms.
    pub watch_ms: u64,
}

/// What a minute row keeps beyond its plain numbers (stored as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteDetail {
    /// New viewers per country code.
    pub countries: BTreeMap<String, u64>,
    /// New viewers per `country\tregion\tcity`.
    pub cities: BTreeMap<String, u64>,
    /// Time to first frame.
    pub ttff: Hist,
    /// Latency samples (one per beacon).
    pub latency: Hist,
    /// Beacons per rendition.
    pub renditions: BTreeMap<String, u64>,
    /// Sessions that ended, per [`WATCH_BUCKETS`] bucket.
    pub watch: Vec<u64>,
    /// Sum of reported bitrates, kbit/s, and how many.
    pub bitrate_kbps_sum: u64,
    /// Beacons with a bitrate.
    pub bitrate_samples: u64,
    /// Rendition switches.
    pub switches: u64,
    /// Fatal errors.
    pub errors: u64,
}

/// One stream-minute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MinuteRow {
    /// A unique id (the record key), so a row read back from the database is
    /// not counted again from memory.
    pub id: String,
    /// Stream id.
    pub stream: String,
    /// The minute's start, Unix ms.
    pub minute_ms: i64,
    /// Most concurrent viewers.
    pub peak: u32,
    /// Sum of the concurrency samples.
    pub viewer_sum: u64,
    /// Concurrency samples taken.
    pub samples: u64,
    /// Viewers new to the stream.
    pub new_viewers: u32,
    /// Time watched, ms.
    pub watch_ms: u64,
    /// Stalls.
    pub stalls: u64,
    /// Time stalled, ms.
    pub stall_ms: u64,
    /// The rest.
    pub detail: MinuteDetail,
}

impl MinuteRow {
    fn new(stream: &str, minute_ms: i64, seq: u64) -> Self {
        MinuteRow {
            id: format!("{stream}m{minute_ms}s{seq}"),
            stream: stream.to_string(),
            minute_ms,
            ..Default::default()
        }
    }

    fn is_empty(&self) -> bool {
        self.samples == 0 && self.new_viewers == 0 && self.watch_ms == 0 && self.peak == 0
    }
}

/// The key of a city in [`MinuteDetail::cities`].
pub fn city_key(p: &Place) -> String {
    format!(
        "{}\t{}\t{}",
        p.country,
        p.region.as_deref().unwrap_or(""),
        p.city.as_deref().unwrap_or("")
    )
}

/// Back from a [`city_key`] to a [`Count`].
pub fn city_count(key: &str, n: u64) -> Count {
    let mut parts = key.splitn(3, '\t');
    let country = parts.next().unwrap_or("??").to_string();
    let opt = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
    Count {
        key: country,
        region: opt(parts.next()),
        city: opt(parts.next()),
        n,
    }
}

#[derive(Debug)]
struct Session {
    visitor: Visitor,
    joined_ms: i64,
    last_ms: i64,
    watch_ms: u64,
    last: Quality,
    ttff_seen: bool,
}

#[derive(Debug)]
struct StreamAcc {
    open: MinuteRow,
    seen: HashSet<String>,
    active: u32,
    peak_ever: u32,
    recent: VecDeque<Sample>,
    unflushed: Vec<MinuteRow>,
    last_activity_ms: i64,
}

/// Sessions and rollups of every stream on this node.
#[derive(Debug)]
pub struct Tracker {
    timeout_ms: i64,
    sessions: HashMap<(String, String), Session>,
    streams: HashMap<String, StreamAcc>,
    /// Unwritten minutes of streams that were forgotten.
    orphans: Vec<MinuteRow>,
    seq: u64,
}

fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

/// `total += n`, stopping at `u64::MAX`: the one way counts are summed.
pub fn add(total: &mut u64, n: u64) {
    *total = total.saturating_add(n);
}

/// [`add`] for a count in a map.
pub fn add_count(map: &mut BTreeMap<String, u64>, key: String, n: u64) {
    add(map.entry(key).or_insert(0), n);
}

impl Tracker {
    /// A tracker whose sessions end `timeout_ms` after their last heartbeat.
    pub fn new(timeout_ms: i64) -> Self {
        Tracker {
            timeout_ms: timeout_ms.max(1),
            sessions: HashMap::new(),
            streams: HashMap::new(),
            orphans: Vec::new(),
            seq: 0,
        }
    }

    fn acc(&mut self, stream: &str, now: i64) -> &mut StreamAcc {
        open_acc(&mut self.streams, &mut self.seq, stream, now)
    }

    /// A heartbeat (or a leave) from `viewer` watching `stream`. `visitor` is
    /// asked only when the session is new. Returns the session if it ended.
    pub fn beat(
        &mut self,
        stream: &str,
        viewer: &str,
        visitor: impl FnOnce() -> Visitor,
        quality: Option<&Quality>,
        leave: bool,
        now: i64,
    ) -> Option<SessionRecord> {
        let timeout = self.timeout_ms;
        // The one place beacons from both paths pass: clamp them here.
        let quality = quality.map(Quality::bounded);
        let key = (stream.to_string(), viewer.to_string());
        let is_new = !self.sessions.contains_key(&key);
        if is_new && leave {
            // A leave for a session that already timed out: nothing to do.
            return None;
        }
        let acc = open_acc(&mut self.streams, &mut self.seq, stream, now);
        let minute = &mut acc.open;
        if is_new {
            let v = visitor();
            acc.active = acc.active.saturating_add(1);
            minute.peak = minute.peak.max(acc.active);
            acc.peak_ever = acc.peak_ever.max(acc.active);
            if acc.seen.insert(viewer.to_string()) {
                minute.new_viewers = minute.new_viewers.saturating_add(1);
                add_count(&mut minute.detail.countries, v.place.country.clone(), 1);
                add_count(&mut minute.detail.cities, city_key(&v.place), 1);
            }
            self.sessions.insert(
                key.clone(),
                Session {
                    visitor: v,
                    joined_ms: now,
                    last_ms: now,
                    watch_ms: 0,
                    last: Quality::default(),
                    ttff_seen: false,
                },
            );
        }
        let s = self.sessions.get_mut(&key)?;
        let delta = u64::try_from(now.saturating_sub(s.last_ms).clamp(0, timeout)).unwrap_or(0);
        add(&mut s.watch_ms, delta);
        s.last_ms = now.max(s.last_ms);
        add(&mut minute.watch_ms, delta);
        if let Some(q) = quality {
            let d = &mut minute.detail;
            add(
                &mut minute.stalls,
                u64::from(q.stalls.saturating_sub(s.last.stalls)),
            );
            add(
                &mut minute.stall_ms,
                q.stall_ms.saturating_sub(s.last.stall_ms),
            );
            add(
                &mut d.switches,
                u64::from(q.switches.saturating_sub(s.last.switches)),
            );
            add(
                &mut d.errors,
                u64::from(q.errors.saturating_sub(s.last.errors)),
            );
            if let (Some(t), false) = (q.ttff_ms, s.ttff_seen) {
                d.ttff.add(t);
                s.ttff_seen = true;
            }
            if let Some(l) = q.latency_ms {
                d.latency.add(l);
            }
            if let Some(r) = &q.rendition {
                add_count(&mut d.renditions, r.clone(), 1);
            }
            if let Some(b) = q.bitrate {
                add(&mut d.bitrate_kbps_sum, u64::from(b / 1000));
                add(&mut d.bitrate_samples, 1);
            }
            s.last = q;
        }
        leave.then(|| self.end(&key)).flatten()
    }

    fn end(&mut self, key: &(String, String)) -> Option<SessionRecord> {
        let s = self.sessions.remove(key)?;
        if let Some(acc) = self.streams.get_mut(&key.0) {
            acc.active = acc.active.saturating_sub(1);
            let bucket = app::analytics::watch_bucket(s.watch_ms / 1000);
            let watch = &mut acc.open.detail.watch;
            if watch.len() != WATCH_BUCKETS.len() {
                watch.resize(WATCH_BUCKETS.len(), 0);
            }
            if let Some(n) = watch.get_mut(bucket) {
                add(n, 1);
            }
        }
        Some(SessionRecord {
            stream: key.0.clone(),
            viewer: key.1.clone(),
            user: s.visitor.user,
            place: s.visitor.place,
            ua: s.visitor.ua,
            joined_ms: s.joined_ms,
            left_ms: s.last_ms,
            watch_ms: s.watch_ms,
        })
    }

    /// Ends sessions that missed their heartbeats, takes a concurrency sample
    /// of every stream and closes finished minutes. Call about once a second.
    pub fn tick(&mut self, now: i64) -> Vec<SessionRecord> {
        let timeout = self.timeout_ms;
        let expired: Vec<(String, String)> = self
            .sessions
            .iter()
            .filter(|(_, s)| now.saturating_sub(s.last_ms) > timeout)
            .map(|(k, _)| k.clone())
            .collect();
        let ended: Vec<SessionRecord> = expired.iter().filter_map(|k| self.end(k)).collect();
        let ids: Vec<String> = self.streams.keys().cloned().collect();
        for id in ids {
            let idle = {
                let Some(acc) = self.streams.get(&id) else {
                    continue;
                };
                acc.active == 0 && now.saturating_sub(acc.last_activity_ms) > IDLE_STREAM_MS
            };
            if idle {
                if let Some(acc) = self.streams.remove(&id) {
                    // Keep what was not written yet.
                    let mut rest = acc.unflushed;
                    if !acc.open.is_empty() {
                        rest.push(acc.open);
                    }
                    if !rest.is_empty() {
                        self.orphans.extend(rest);
                    }
                }
                continue;
            }
            let last = self
                .streams
                .get(&id)
                .map(|a| a.last_activity_ms)
                .unwrap_or(now);
            let acc = self.acc(&id, now);
            let active = acc.active;
            if active == 0 {
                // Nobody here: do not keep the stream alive by sampling it.
                acc.last_activity_ms = last;
            } else {
                add(&mut acc.open.samples, 1);
                add(&mut acc.open.viewer_sum, u64::from(active));
                acc.open.peak = acc.open.peak.max(active);
            }
            // A point every few seconds while anyone watches, and the drop
            // to zero when the last one leaves.
            let due = acc
                .recent
                .back()
                .is_none_or(|s| now - s.at_ms >= RECENT_EVERY_MS);
            let worth = active > 0 || acc.recent.back().is_some_and(|s| s.viewers > 0);
            if due && worth {
                acc.recent.push_back(Sample {
                    at_ms: now,
                    viewers: active,
                });
                if acc.recent.len() > RECENT_POINTS {
                    acc.recent.pop_front();
                }
            }
        }
        ended
    }

    /// Ends every session now and closes every open minute (shutdown).
    pub fn close_all(&mut self, now: i64) -> Vec<SessionRecord> {
        let keys: Vec<(String, String)> = self.sessions.keys().cloned().collect();
        let ended: Vec<SessionRecord> = keys.iter().filter_map(|k| self.end(k)).collect();
        self.seq += 1;
        let seq = self.seq;
        for (id, acc) in &mut self.streams {
            let next = MinuteRow::new(id, minute_of(now), seq);
            let closed = std::mem::replace(&mut acc.open, next);
            if !closed.is_empty() {
                acc.unflushed.push(closed);
            }
        }
        ended
    }

    /// Closed minutes not yet written (copies; see [`Tracker::flushed`]).
    pub fn unflushed(&self) -> Vec<MinuteRow> {
        let mut out: Vec<MinuteRow> = self.orphans.clone();
        for acc in self.streams.values() {
            out.extend(acc.unflushed.iter().cloned());
        }
        out
    }

    /// These rows are in the database now.
    pub fn flushed(&mut self, ids: &HashSet<String>) {
        self.orphans.retain(|r| !ids.contains(&r.id));
        for acc in self.streams.values_mut() {
            acc.unflushed.retain(|r| !ids.contains(&r.id));
        }
    }

    /// A stream's minutes still in memory (closed but unwritten, and the open one).
    pub fn pending_minutes(&self, stream: &str) -> Vec<MinuteRow> {
        let Some(acc) = self.streams.get(stream) else {
            return Vec::new();
        };
        let mut out = acc.unflushed.clone();
        out.push(acc.open.clone());
        out
    }

    /// Most concurrent viewers of a stream since this node started tracking it.
    pub fn peak(&self, stream: &str) -> u32 {
        self.streams.get(stream).map_or(0, |a| a.peak_ever)
    }

    /// Whether `viewer` has an open session on `stream`.
    pub fn has_session(&self, stream: &str, viewer: &str) -> bool {
        self.sessions
            .contains_key(&(stream.to_string(), viewer.to_string()))
    }

    /// Open sessions across all streams.
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// What a stream looks like now.
    pub fn now(&self, stream: &str) -> Now {
        let Some(acc) = self.streams.get(stream) else {
            return Now::default();
        };
        let mut countries = BTreeMap::new();
        let mut cities = BTreeMap::new();
        let mut renditions = BTreeMap::new();
        let mut latency = Vec::new();
        let (mut stall_ms, mut watch_ms) = (0u64, 0u64);
        for ((s, _), sess) in &self.sessions {
            if s != stream {
                continue;
            }
            add_count(&mut countries, sess.visitor.place.country.clone(), 1);
            add_count(&mut cities, city_key(&sess.visitor.place), 1);
            if let Some(r) = &sess.last.rendition {
                add_count(&mut renditions, r.clone(), 1);
            }
            if let Some(l) = sess.last.latency_ms {
                latency.push(l);
            }
            add(&mut stall_ms, sess.last.stall_ms);
            add(&mut watch_ms, sess.watch_ms);
        }
        latency.sort_unstable();
        Now {
            viewers: acc.active,
            recent: acc.recent.iter().copied().collect(),
            countries: sorted(countries.into_iter().map(|(k, n)| Count {
                key: k,
                region: None,
                city: None,
                n,
            })),
            cities: sorted(cities.into_iter().map(|(k, n)| city_count(&k, n))),
            latency_p50: latency.get(latency.len().saturating_sub(1) / 2).copied(),
            stall_ratio: ratio(stall_ms, watch_ms.max(stall_ms)),
            renditions: sorted(renditions.into_iter().map(|(k, n)| Count {
                key: k,
                region: None,
                city: None,
                n,
            })),
        }
    }
}

fn open_acc<'a>(
    streams: &'a mut HashMap<String, StreamAcc>,
    seq: &mut u64,
    stream: &str,
    now: i64,
) -> &'a mut StreamAcc {
    *seq += 1;
    let seq = *seq;
    let acc = streams
        .entry(stream.to_string())
        .or_insert_with(|| StreamAcc {
            open: MinuteRow::new(stream, minute_of(now), seq),
            seen: HashSet::new(),
            active: 0,
            peak_ever: 0,
            recent: VecDeque::new(),
            unflushed: Vec::new(),
            last_activity_ms: now,
        });
    if minute_of(now) > acc.open.minute_ms {
        let next = MinuteRow::new(stream, minute_of(now), seq);
        let closed = std::mem::replace(&mut acc.open, next);
        if !closed.is_empty() {
            acc.unflushed.push(closed);
        }
    }
    acc.last_activity_ms = now;
    acc
}

/// `part / whole`, 0 when `whole` is 0.
pub fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Most first, then by key.
pub fn sorted(it: impl Iterator<Item = Count>) -> Vec<Count> {
    let mut v: Vec<Count> = it.collect();
    v.sort_by(|a, b| {
        b.n.cmp(&a.n)
            .then_with(|| a.key.cmp(&b.key))
            .then_with(|| a.city.cmp(&b.city))
    });
    v
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
