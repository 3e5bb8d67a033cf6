//! The analytics tables' typed queries (migration 5), as `impl Database`: `analytics_session`
//! (raw viewer sessions, kept for the retention period) and
//! `analytics_minute` (per-stream, per-minute rollups the dashboard reads).

use surrealdb::types::SurrealValue;

use super::tracker::{MinuteDetail, MinuteRow, SessionRecord};
use crate::db::{Database, DbError};

/// Rows written per query.
const BATCH: usize = 200;

#[derive(Debug, Clone, SurrealValue)]
struct StoredMinute {
    id: String,
    minute_ms: i64,
    peak: i64,
    viewer_sum: i64,
    samples: i64,
    new_viewers: i64,
    watch_ms: i64,
    stalls: i64,
    stall_ms: i64,
    detail: String,
}

/// A stream's totals from its minute rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, SurrealValue)]
pub struct StreamTotals {
    /// Most concurrent viewers in any minute.
    pub peak: i64,
    /// Viewers new to the stream, summed.
    pub unique_viewers: i64,
    /// Time watched, ms.
    pub watch_ms: i64,
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Database {
    /// Stores ended sessions.
    pub async fn insert_sessions(&self, rows: &[SessionRecord]) -> Result<(), DbError> {
        for chunk in rows.chunks(BATCH) {
            let mut sql = String::new();
            for i in 0..chunk.len() {
                sql.push_str(&format!(
                    "CREATE analytics_session SET stream = type::record('stream', $s{i}), viewer = $v{i}, \
                     user = IF $u{i} != '' THEN type::record('user', $u{i}) ELSE NONE END, \
                     country = $c{i}, region = IF $r{i} != '' THEN $r{i} ELSE NONE END, \
                     city = IF $t{i} != '' THEN $t{i} ELSE NONE END, ua = $a{i}, \
                     joined_ms = $j{i}, left_ms = $l{i}, watch_ms = $w{i} RETURN NONE;\n"
                ));
            }
            let mut q = self.client().query(sql);
            for (i, r) in chunk.iter().enumerate() {
                q = q
                    .bind((format!("s{i}"), r.stream.clone()))
                    .bind((format!("v{i}"), r.viewer.clone()))
                    .bind((format!("u{i}"), r.user.clone().unwrap_or_default()))
                    .bind((format!("c{i}"), r.place.country.clone()))
                    .bind((format!("r{i}"), r.place.region.clone().unwrap_or_default()))
                    .bind((format!("t{i}"), r.place.city.clone().unwrap_or_default()))
                    .bind((format!("a{i}"), r.ua.to_string()))
                    .bind((format!("j{i}"), r.joined_ms))
                    .bind((format!("l{i}"), r.left_ms))
                    .bind((format!("w{i}"), int(r.watch_ms)));
            }
            q.await?.check()?;
        }
        Ok(())
    }

    /// Stores closed minutes (each under its own id, so a retry cannot
    /// count one twice).
    pub async fn insert_minutes(&self, rows: &[MinuteRow]) -> Result<(), DbError> {
        for chunk in rows.chunks(BATCH) {
            let mut sql = String::new();
            for i in 0..chunk.len() {
                sql.push_str(&format!(
                    "UPSERT type::record('analytics_minute', $id{i}) SET stream = type::record('stream', $s{i}), \
                     minute = $m{i}, peak = $p{i}, viewer_sum = $vs{i}, samples = $n{i}, \
                     new_viewers = $nv{i}, watch_ms = $w{i}, stalls = $st{i}, stall_ms = $sm{i}, \
                     detail = $d{i} RETURN NONE;\n"
                ));
            }
            let mut q = self.client().query(sql);
            for (i, r) in chunk.iter().enumerate() {
                let detail = serde_json::to_string(&r.detail).unwrap_or_else(|_| "{}".into());
                q = q
                    .bind((format!("id{i}"), r.id.clone()))
                    .bind((format!("s{i}"), r.stream.clone()))
                    .bind((format!("m{i}"), r.minute_ms))
                    .bind((format!("p{i}"), i64::from(r.peak)))
                    .bind((format!("vs{i}"), int(r.viewer_sum)))
                    .bind((format!("n{i}"), int(r.samples)))
                    .bind((format!("nv{i}"), i64::from(r.new_viewers)))
                    .bind((format!("w{i}"), int(r.watch_ms)))
                    .bind((format!("st{i}"), int(r.stalls)))
                    .bind((format!("sm{i}"), int(r.stall_ms)))
                    .bind((format!("d{i}"), detail));
            }
            q.await?.check()?;
        }
        Ok(())
    }

    /// A stream's stored minutes, oldest first.
    pub async fn stream_minutes(&self, stream: &str) -> Result<Vec<MinuteRow>, DbError> {
        let rows: Vec<StoredMinute> = self
            .client()
            .query(
                "SELECT <string> record::id(id) AS id, minute AS minute_ms, peak, viewer_sum, samples, \
                 new_viewers, watch_ms, stalls, stall_ms, detail FROM analytics_minute \
                 WHERE stream = type::record('stream', $stream) ORDER BY minute_ms",
            )
            .bind(("stream", stream.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(rows
            .into_iter()
            .map(|r| MinuteRow {
                id: r.id,
                stream: stream.to_string(),
                minute_ms: r.minute_ms,
                peak: u32::try_from(r.peak).unwrap_or(0),
                viewer_sum: uint(r.viewer_sum),
                samples: uint(r.samples),
                new_viewers: u32::try_from(r.new_viewers).unwrap_or(0),
                watch_ms: uint(r.watch_ms),
                stalls: uint(r.stalls),
                stall_ms: uint(r.stall_ms),
                detail: serde_json::from_str::<MinuteDetail>(&r.detail).unwrap_or_default(),
            })
            .collect())
    }

    /// Totals of several streams from their stored minutes, in `ids` order.
    pub async fn stream_totals(&self, ids: &[String]) -> Result<Vec<StreamTotals>, DbError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Added up here: SurrealDB's aggregates over no rows give -Infinity.
        let mut sql = String::new();
        for i in 0..ids.len() {
            sql.push_str(&format!(
                "SELECT peak, new_viewers AS unique_viewers, watch_ms FROM analytics_minute \
                 WHERE stream = type::record('stream', $id{i});\n"
            ));
        }
        let mut q = self.client().query(sql);
        for (i, id) in ids.iter().enumerate() {
            q = q.bind((format!("id{i}"), id.clone()));
        }
        let mut res = q.await?.check()?;
        let mut out = Vec::with_capacity(ids.len());
        for i in 0..ids.len() {
            let rows: Vec<StreamTotals> = res.take(i)?;
            out.push(StreamTotals {
                peak: rows.iter().map(|r| r.peak).max().unwrap_or(0),
                // Stored rows may hold anything: the sums saturate.
                unique_viewers: rows
                    .iter()
                    .fold(0i64, |t, r| t.saturating_add(r.unique_viewers.max(0))),
                watch_ms: rows
                    .iter()
                    .fold(0i64, |t, r| t.saturating_add(r.watch_ms.max(0))),
            });
        }
        Ok(out)
    }

    /// Deletes sessions that ended before `cutoff_ms`; returns how many.
    pub async fn delete_sessions_before(&self, cutoff_ms: i64) -> Result<u64, DbError> {
        let n: Option<i64> = self
            .client()
            .query(
                "LET $old = (SELECT VALUE id FROM analytics_session WHERE left_ms < $cutoff); \
                 DELETE $old; RETURN array::len($old);",
            )
            .bind(("cutoff", cutoff_ms))
            .await?
            .check()?
            .take(2)?;
        Ok(uint(n.unwrap_or(0)))
    }

    /// A stream's stored sessions (tests and operators).
    pub async fn stream_sessions(&self, stream: &str) -> Result<Vec<StoredSession>, DbError> {
        let rows: Vec<StoredSession> = self
            .client()
            .query(
                "SELECT viewer, country, region, city, ua, joined_ms, left_ms, watch_ms \
                 FROM analytics_session WHERE stream = type::record('stream', $stream) ORDER BY joined_ms",
            )
            .bind(("stream", stream.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(rows)
    }
}

/// A stored viewer session.
#[derive(Debug, Clone, PartialEq, Eq, SurrealValue)]
pub struct StoredSession {
    /// The anonymous viewer id.
    pub viewer: String,
    /// Country code.
    pub country: String,
    /// Region.
    pub region: Option<String>,
    /// City.
    pub city: Option<String>,
    /// User-agent family.
    pub ua: String,
    /// Joined, Unix ms.
    pub joined_ms: i64,
    /// Left, Unix ms.
    pub left_ms: i64,
    /// Watched, ms.
    pub watch_ms: i64,
}
