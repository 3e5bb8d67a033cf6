//! The archive a live session keeps: every init segment and completed segment
//! goes to the upload queue (object keys under `streams/<id>/`), and the
//! catalog records each rendition and segment as a database row, built here
//! from the packager's types.

use bytes::Bytes;

use crate::db::recordings::{RenditionRow, SegmentRow};
use crate::packager::fmp4::{Codec, Track};
use crate::packager::segmenter::Segmenter;
use crate::store::uploader::{segment_key, Uploader};

use super::catalog::{Catalog, CatalogEntry};

/// Where completed segments are archived: the upload queue, the stream id,
/// and the catalog that records each segment for the recording.
#[derive(Debug, Clone)]
pub struct Archive {
    /// The upload queue.
    pub uploader: Uploader,
    /// The stream id (first part of the object keys).
    pub stream: String,
    /// Where archived segments and renditions are recorded.
    pub catalog: Option<Catalog>,
}

impl Archive {
    /// Queues `file` of `rendition` for upload.
    pub fn put(&self, rendition: &str, file: &str, bytes: Bytes) {
        match segment_key(&self.stream, rendition, file) {
            Some(key) => self.uploader.enqueue(key, bytes),
            None => {
                tracing::error!(stream = %self.stream, rendition, file, "invalid object key; not archived")
            }
        }
    }

    /// Records segment `msn` of `rendition` (just archived) in the catalog.
    pub fn record_segment(&self, rendition: &str, seg: &Segmenter, msn: u64) {
        let (Some(catalog), Some((entry, init, size))) = (&self.catalog, seg.completed(msn)) else {
            return;
        };
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        catalog.record(CatalogEntry::Segment(SegmentRow {
            stream: self.stream.clone(),
            rendition: rendition.to_string(),
            msn: int(msn),
            duration: int(entry.duration.ticks),
            timescale: i64::from(entry.duration.scale.get()),
            pdt_ms: entry.program_date_time_ms,
            discontinuity: entry.discontinuity,
            init: init.to_string(),
            size: int(size),
        }));
    }

    /// Records a rendition (its codecs and picture) in the catalog.
    pub fn record_rendition(&self, rendition: &str, track: &Track, fps: Option<(u32, u32)>) {
        let Some(catalog) = &self.catalog else {
            return;
        };
        let row = match &track.codec {
            Codec::Avc { info, .. } => RenditionRow {
                stream: self.stream.clone(),
                name: rendition.to_string(),
                kind: "video".into(),
                codecs: info.codec_string(),
                width: Some(i64::from(info.width)),
                height: Some(i64::from(info.height)),
                fps_num: fps.map(|f| i64::from(f.0)),
                fps_den: fps.map(|f| i64::from(f.1)),
            },
            Codec::Aac { .. } => RenditionRow {
                stream: self.stream.clone(),
                name: rendition.to_string(),
                kind: "audio".into(),
                codecs: track.codec.codec_string(),
                width: None,
                height: None,
                fps_num: None,
                fps_den: None,
            },
        };
        catalog.record(CatalogEntry::Rendition(row));
    }
}
