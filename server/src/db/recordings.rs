//! Typed queries on the recording tables (migration 4): `segment` and
//! `rendition` (the catalog of what a stream archived, written while it is
//! live) and `recording` (one per stream, with the state of its MP4).
//!
//! Durations are integers: segment durations in ticks of their `timescale`,
//! everything else in milliseconds.

use surrealdb::types::SurrealValue;

use super::{Database, DbError};

/// One archived segment.
#[derive(Debug, Clone, PartialEq, Eq, SurrealValue)]
pub struct SegmentRow {
    /// The stream id.
    pub stream: String,
    /// The rendition name (`720p`, `audio`).
    pub rendition: String,
    /// Media sequence number.
    pub msn: i64,
    /// Duration in ticks of `timescale`.
    pub duration: i64,
    /// Ticks per second.
    pub timescale: i64,
    /// `EXT-X-PROGRAM-DATE-TIME` of its first sample, Unix ms.
    pub pdt_ms: Option<i64>,
    /// It starts a new period.
    pub discontinuity: bool,
    /// The file name of the init segment it uses.
    pub init: String,
    /// Its size in bytes.
    pub size: i64,
}

/// One rendition of a stream, as the master playlist names it.
#[derive(Debug, Clone, PartialEq, Eq, SurrealValue)]
pub struct RenditionRow {
    /// The stream id.
    pub stream: String,
    /// Its name, also its directory (`720p`, `audio`).
    pub name: String,
    /// `video` or `audio`.
    pub kind: String,
    /// RFC 6381 codec string (`avc1.64001f`, `mp4a.40.2`).
    pub codecs: String,
    /// Picture width (video).
    pub width: Option<i64>,
    /// Picture height (video).
    pub height: Option<i64>,
    /// Frame rate numerator (video, when known).
    pub fps_num: Option<i64>,
    /// Frame rate denominator.
    pub fps_den: Option<i64>,
}

/// Per-rendition totals of a recording.
#[derive(Debug, Clone, PartialEq, Eq, SurrealValue)]
pub struct RecordingRendition {
    /// The rendition's name.
    pub name: String,
    /// Segments in its VOD playlist.
    pub segments: i64,
    /// Bytes of those segments.
    pub bytes: i64,
}

/// A stream's recording.
#[derive(Debug, Clone, PartialEq, Eq, SurrealValue)]
pub struct RecordingRow {
    /// The stream id (also the record key).
    pub stream: String,
    /// Duration of the top rendition, ms.
    pub duration_ms: i64,
    /// Each rendition's segment count and size.
    pub renditions: Vec<RecordingRendition>,
    /// Bytes in the store: segments, init segments and playlists.
    pub store_bytes: i64,
    /// `EXT-X-DISCONTINUITY` tags in the top rendition's playlist.
    pub discontinuities: i64,
    /// `pending`, `building`, `ready` or `failed`.
    pub mp4_state: String,
    /// Percent done while building.
    pub mp4_progress: i64,
    /// Why the MP4 failed.
    pub mp4_error: Option<String>,
    /// The MP4's size once ready.
    pub mp4_bytes: Option<i64>,
    /// The MP4's duration once ready, ms.
    pub mp4_duration_ms: Option<i64>,
    /// A thumbnail is in the store.
    pub thumbnail: bool,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

/// What a recording row is written with when the VOD playlists are ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecording {
    /// Duration of the top rendition, ms.
    pub duration_ms: i64,
    /// Each rendition's segment count and size.
    pub renditions: Vec<RecordingRendition>,
    /// Bytes in the store.
    pub store_bytes: i64,
    /// Discontinuities in the top rendition.
    pub discontinuities: i64,
}

const RECORDING_FIELDS: &str = "<string> record::id(stream) AS stream, duration_ms, renditions, \
    store_bytes, discontinuities, mp4_state, mp4_progress, mp4_error, mp4_bytes, mp4_duration_ms, \
    thumbnail, time::format(created_at, '%Y-%m-%dT%H:%M:%SZ') AS created_at, \
    time::format(updated_at, '%Y-%m-%dT%H:%M:%SZ') AS updated_at";

fn segment_key(s: &SegmentRow) -> String {
    format!("{}/{}/{:012}", s.stream, s.rendition, s.msn)
}

impl Database {
    /// Records archived segments (idempotent: a segment recorded twice stays one row).
    pub async fn insert_segments(&self, rows: &[SegmentRow]) -> Result<(), DbError> {
        if rows.is_empty() {
            return Ok(());
        }
        let keyed: Vec<(String, SegmentRow)> =
            rows.iter().map(|r| (segment_key(r), r.clone())).collect();
        self.client()
            .query(
                "FOR $r IN $rows { UPSERT type::record('segment', $r[0]) CONTENT $r[1] RETURN NONE; }",
            )
            .bind(("rows", keyed))
            .await?
            .check()?;
        Ok(())
    }

    /// Records (or updates) a rendition of a stream.
    pub async fn upsert_rendition(&self, row: &RenditionRow) -> Result<(), DbError> {
        self.client()
            .query("UPSERT type::record('rendition', $key) CONTENT $row RETURN NONE")
            .bind(("key", format!("{}/{}", row.stream, row.name)))
            .bind(("row", row.clone()))
            .await?
            .check()?;
        Ok(())
    }

    /// A stream's archived segments, by rendition and sequence number.
    pub async fn stream_segments(&self, stream: &str) -> Result<Vec<SegmentRow>, DbError> {
        let rows: Vec<SegmentRow> = self
            .client()
            .query(
                "SELECT stream, rendition, msn, duration, timescale, pdt_ms, discontinuity, init, size \
                 FROM segment WHERE stream = $stream ORDER BY rendition, msn",
            )
            .bind(("stream", stream.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(rows)
    }

    /// A stream's renditions.
    pub async fn stream_renditions(&self, stream: &str) -> Result<Vec<RenditionRow>, DbError> {
        let rows: Vec<RenditionRow> = self
            .client()
            .query(
                "SELECT stream, name, kind, codecs, width, height, fps_num, fps_den \
                 FROM rendition WHERE stream = $stream ORDER BY name",
            )
            .bind(("stream", stream.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(rows)
    }

    /// Writes a stream's recording with its MP4 pending (replacing an older one).
    pub async fn put_recording(&self, stream: &str, rec: &NewRecording) -> Result<(), DbError> {
        self.client()
            .query(
                "UPSERT type::record('recording', $stream) SET stream = type::record('stream', $stream), \
                 duration_ms = $duration_ms, renditions = $renditions, store_bytes = $store_bytes, \
                 discontinuities = $discontinuities, mp4_state = 'pending', mp4_progress = 0, \
                 mp4_error = NONE, mp4_bytes = NONE, mp4_duration_ms = NONE, \
                 created_at = created_at ?? time::now(), updated_at = time::now() RETURN NONE",
            )
            .bind(("stream", stream.to_string()))
            .bind(("duration_ms", rec.duration_ms))
            .bind(("renditions", rec.renditions.clone()))
            .bind(("store_bytes", rec.store_bytes))
            .bind(("discontinuities", rec.discontinuities))
            .await?
            .check()?;
        Ok(())
    }

    /// A stream's recording, if it has one.
    pub async fn get_recording(&self, stream: &str) -> Result<Option<RecordingRow>, DbError> {
        if !super::streams::valid_id(stream) {
            return Ok(None);
        }
        let row: Option<RecordingRow> = self
            .client()
            .query(format!(
                "SELECT {RECORDING_FIELDS} FROM type::record('recording', $stream)"
            ))
            .bind(("stream", stream.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(row)
    }

    /// Recordings of these streams (for listings).
    pub async fn recordings_of(&self, streams: &[String]) -> Result<Vec<RecordingRow>, DbError> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<RecordingRow> = self
            .client()
            .query(format!(
                "SELECT {RECORDING_FIELDS} FROM recording WHERE record::id(id) IN $streams"
            ))
            .bind(("streams", streams.to_vec()))
            .await?
            .check()?
            .take(0)?;
        Ok(rows)
    }

    /// Records the MP4's progress (`building`, percent).
    pub async fn set_mp4_progress(&self, stream: &str, percent: i64) -> Result<(), DbError> {
        self.client()
            .query(
                "UPDATE type::record('recording', $stream) SET mp4_state = 'building', \
                 mp4_progress = $p, updated_at = time::now() RETURN NONE",
            )
            .bind(("stream", stream.to_string()))
            .bind(("p", percent.clamp(0, 100)))
            .await?
            .check()?;
        Ok(())
    }

    /// Records a finished MP4.
    pub async fn set_mp4_ready(
        &self,
        stream: &str,
        bytes: i64,
        duration_ms: i64,
    ) -> Result<(), DbError> {
        self.client()
            .query(
                "UPDATE type::record('recording', $stream) SET mp4_state = 'ready', mp4_progress = 100, \
                 mp4_error = NONE, mp4_bytes = $bytes, mp4_duration_ms = $duration, updated_at = time::now() RETURN NONE",
            )
            .bind(("stream", stream.to_string()))
            .bind(("bytes", bytes))
            .bind(("duration", duration_ms))
            .await?
            .check()?;
        Ok(())
    }

    /// Records why the MP4 failed.
    pub async fn set_mp4_failed(&self, stream: &str, reason: &str) -> Result<(), DbError> {
        self.client()
            .query(
                "UPDATE type::record('recording', $stream) SET mp4_state = 'failed', \
                 mp4_error = $reason, updated_at = time::now() RETURN NONE",
            )
            .bind(("stream", stream.to_string()))
            .bind(("reason", reason.to_string()))
            .await?
            .check()?;
        Ok(())
    }

    /// Records that the thumbnail is in the store.
    pub async fn set_recording_thumbnail(&self, stream: &str) -> Result<(), DbError> {
        self.client()
            .query("UPDATE type::record('recording', $stream) SET thumbnail = true RETURN NONE")
            .bind(("stream", stream.to_string()))
            .await?
            .check()?;
        Ok(())
    }

    /// Deletes a stream's recording row and its catalog; `false` if it had no recording.
    pub async fn delete_recording(&self, stream: &str) -> Result<bool, DbError> {
        if !super::streams::valid_id(stream) {
            return Ok(false);
        }
        let gone: Vec<surrealdb::types::Value> = self
            .client()
            .query("DELETE type::record('recording', $stream) RETURN BEFORE")
            .query("DELETE segment WHERE stream = $stream RETURN NONE")
            .query("DELETE rendition WHERE stream = $stream RETURN NONE")
            .bind(("stream", stream.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(!gone.is_empty())
    }

    /// Streams the database says are live.
    pub async fn live_stream_ids(&self) -> Result<Vec<String>, DbError> {
        let ids: Vec<String> = self
            .client()
            .query("SELECT VALUE <string> record::id(id) FROM stream WHERE state = 'live'")
            .await?
            .check()?
            .take(0)?;
        Ok(ids)
    }

    /// Streams that are over but whose recording is missing or whose MP4 is
    /// not finished (a restart interrupted the work).
    pub async fn unfinished_recordings(&self) -> Result<Vec<String>, DbError> {
        let ids: Vec<String> = self
            .client()
            .query(
                "LET $done = SELECT VALUE <string> record::id(id) FROM recording WHERE mp4_state IN ['ready', 'failed'];
                 SELECT VALUE <string> record::id(id) FROM stream WHERE state IN ['ended', 'interrupted'] \
                 AND <string> record::id(id) NOT IN $done",
            )
            .await?
            .check()?
            .take(1)?;
        Ok(ids)
    }
}
