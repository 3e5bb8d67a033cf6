//! Recordings: while a stream is live, the session hands its init segments
//! and completed segments to an [`Archive`] (upload queue and catalog rows).
//! When a stream's pipeline stops (it ended, or the broadcaster
//! stayed away past the grace period), its archived segments become a VOD.
//!
//! 1. Wait until the catalog rows are written and the upload queue is empty
//!    (bounded by [`RecordingConfig::store_wait`]).
//! 2. Plan the VOD playlists from the catalog and the store's listing
//!    ([`vod::plan`]): only what reached the store is listed.
//! 3. Write every rendition's `index.m3u8` and `master.m3u8` to the store, and
//!    the `recording` row (MP4 `pending`).
//! 4. In the background, one at a time: download the top rendition and the
//!    audio, take a thumbnail, remux a progressive MP4 ([`mp4`]), upload it,
//!    and record its size and duration (or why it failed). Progress is
//!    written to the row as it goes.
//!
//! On start, [`Recorder::recover`] marks streams the database still calls
//! live as interrupted (no pipeline owns them after a restart) and finishes
//! every recording a restart cut short.
//!
//! Store layout: `streams/<id>/<rendition>/{init*.mp4,<msn>.m4s,index.m3u8}`,
//! `streams/<id>/master.m3u8`, `streams/<id>/recording.mp4`,
//! `streams/<id>/thumbnail.jpg`.

mod archive;
pub mod catalog;
pub mod mp4;
pub mod vod;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::db::recordings::{NewRecording, RecordingRendition};
use crate::db::{Database, DbError};
use crate::packager::webvtt::SUBTITLES_RENDITION;
use crate::store::uploader::Uploader;
use crate::store::{ObjectKey, ObjectStore, StoreError};
use app::transcripts::TranscriptLine;
pub use archive::Archive;
use catalog::Catalog;
use vod::{Kind, VodPlan, VodRendition};

/// The recording's captions file, under `subs/`.
pub const VOD_CAPTIONS_FILE: &str = "captions.vtt";

/// Recording settings; each is a flag (see the README).
#[derive(Debug, Clone)]
pub struct RecordingConfig {
    /// Where MP4s are assembled before upload.
    pub work_dir: PathBuf,
    /// How long to wait for queued uploads before building a VOD anyway.
    pub store_wait: Duration,
    /// Make the progressive MP4.
    pub mp4: bool,
}

/// A recording could not be built or deleted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Local files for the MP4 could not be written.
    #[error("recording work files: {0}")]
    Io(#[from] std::io::Error),
    /// FFmpeg could not make the MP4 or the thumbnail.
    #[error(transparent)]
    Mp4(#[from] mp4::Mp4Error),
}

/// Builds, recovers and deletes recordings.
#[derive(Debug)]
pub struct Recorder {
    db: Database,
    store: Arc<dyn ObjectStore>,
    uploader: Uploader,
    catalog: Catalog,
    cfg: RecordingConfig,
    /// One MP4 at a time: it is disk- and CPU-heavy.
    mp4_jobs: Semaphore,
    /// Streams whose recording is being built now (a second request waits its turn).
    building: Mutex<HashSet<String>>,
    /// Told each time a stream's recording has been built.
    on_built: OnBuilt,
}

/// A hook called with a stream's id.
type StreamHook = Box<dyn Fn(&str) + Send + Sync>;

/// What [`Recorder::on_built`] set.
#[derive(Default)]
struct OnBuilt(std::sync::OnceLock<StreamHook>);

impl std::fmt::Debug for OnBuilt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "OnBuilt(set)"
        } else {
            "OnBuilt(none)"
        })
    }
}

/// The object key of a file of a stream's recording.
pub fn object_key(stream: &str, file: &str) -> Result<ObjectKey, StoreError> {
    Ok(ObjectKey::new(format!("streams/{stream}/{file}"))?)
}

async fn put_retrying(
    store: &dyn ObjectStore,
    key: &ObjectKey,
    body: Bytes,
) -> Result<(), StoreError> {
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match store.put(key, body.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= 4 => return Err(e),
            Err(e) => {
                tracing::warn!(key = %key, attempt, error = %e, "store write failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
        }
    }
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Recorder {
    /// A recorder over the database, the store and the upload queue.
    pub fn new(
        db: Database,
        store: Arc<dyn ObjectStore>,
        uploader: Uploader,
        cfg: RecordingConfig,
    ) -> Arc<Self> {
        let catalog = Catalog::start(db.clone());
        Arc::new(Recorder {
            db,
            store,
            uploader,
            catalog,
            cfg,
            mp4_jobs: Semaphore::new(1),
            building: Mutex::new(HashSet::new()),
            on_built: OnBuilt::default(),
        })
    }

    /// Sets what is told, with the stream's id, each time a recording has
    /// been built (its playlists written and its row stored): the wiring
    /// starts the chapters there. Set once; later calls are ignored.
    pub fn on_built(&self, f: impl Fn(&str) + Send + Sync + 'static) {
        let _ = self.on_built.0.set(Box::new(f));
    }

    /// The catalog live pipelines record into.
    pub fn catalog(&self) -> Catalog {
        self.catalog.clone()
    }

    /// A stream's pipeline stopped: build its recording in the background.
    pub fn stream_over(self: &Arc<Self>, stream: &str) {
        let me = self.clone();
        let stream = stream.to_string();
        tokio::spawn(async move {
            if let Err(e) = me.finalize(&stream).await {
                tracing::error!(stream = %stream, error = %e, "could not build the recording");
            }
        });
    }

    /// Builds a stream's VOD playlists and recording row now, and queues its
    /// MP4. `None` if nothing of the stream reached the store.
    pub async fn finalize(
        self: &Arc<Self>,
        stream: &str,
    ) -> Result<Option<VodPlan>, RecordingError> {
        // One build per stream at a time.
        while !self
            .building
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stream.to_string())
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let result = self.finalize_inner(stream).await;
        self.building
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(stream);
        result
    }

    async fn finalize_inner(
        self: &Arc<Self>,
        stream: &str,
    ) -> Result<Option<VodPlan>, RecordingError> {
        if !self.catalog.flushed(Duration::from_secs(30)).await {
            tracing::warn!(
                stream,
                "catalog rows still queued; building the recording with what is written"
            );
        }
        let uploads_done = self.uploader.drained(self.cfg.store_wait).await;
        if !uploads_done {
            tracing::warn!(
                stream,
                pending = self.uploader.pending(),
                "uploads still queued; building the recording with what reached the store"
            );
        }
        let prefix = format!("streams/{stream}/");
        let objects = self.store.list(&prefix).await?;
        let stored: HashSet<String> = objects
            .iter()
            .filter_map(|o| o.key.strip_prefix(&prefix).map(str::to_string))
            .collect();
        let renditions = self.db.stream_renditions(stream).await?;
        let segments = self.db.stream_segments(stream).await?;
        let plan = vod::plan(&renditions, &segments, &stored);
        if plan.renditions.is_empty() {
            tracing::info!(
                stream,
                "nothing of this stream reached the store: no recording"
            );
            return Ok(None);
        }
        let mut written = 0u64;
        for r in &plan.renditions {
            let text = vod::render_media(r);
            written += text.len() as u64;
            let key = object_key(stream, &format!("{}/index.m3u8", r.name))?;
            put_retrying(self.store.as_ref(), &key, Bytes::from(text)).await?;
        }
        // The captions, if the stream was transcribed.
        let lines: Vec<TranscriptLine> = match self.db.stream_transcript(stream).await {
            Ok(rows) => rows
                .into_iter()
                .map(|r| TranscriptLine {
                    start_ms: r.start_ms,
                    end_ms: r.end_ms,
                    text: r.text,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(stream, error = %e, "cannot read the transcript: the recording has no captions");
                Vec::new()
            }
        };
        let captions = !lines.is_empty();
        if captions {
            let (index, vtt) = vod::render_captions(&lines, plan.duration_ms());
            written += (index.len() + vtt.len()) as u64;
            put_retrying(
                self.store.as_ref(),
                &object_key(
                    stream,
                    &format!("{SUBTITLES_RENDITION}/{VOD_CAPTIONS_FILE}"),
                )?,
                Bytes::from(vtt),
            )
            .await?;
            put_retrying(
                self.store.as_ref(),
                &object_key(stream, &format!("{SUBTITLES_RENDITION}/index.m3u8"))?,
                Bytes::from(index),
            )
            .await?;
        }
        let master = vod::render_master(&plan, captions);
        written += master.len() as u64;
        put_retrying(
            self.store.as_ref(),
            &object_key(stream, "master.m3u8")?,
            Bytes::from(master),
        )
        .await?;
        // Playlists, the MP4 and the thumbnail from an earlier build are
        // replaced, so they are not counted twice.
        let media_bytes: u64 = objects
            .iter()
            .filter(|o| !o.key.ends_with(".m3u8") && !o.key.ends_with("recording.mp4"))
            .filter(|o| !o.key.ends_with("thumbnail.jpg") && !o.key.ends_with(".vtt"))
            .map(|o| o.size)
            .sum();
        let top = plan.top();
        let row = NewRecording {
            duration_ms: int(plan.duration_ms()),
            renditions: plan
                .renditions
                .iter()
                .map(|r| RecordingRendition {
                    name: r.name.clone(),
                    segments: int(r.segments.len() as u64),
                    bytes: int(r.bytes()),
                })
                .collect(),
            store_bytes: int(media_bytes + written),
            discontinuities: int(top.map(|t| t.discontinuities() as u64).unwrap_or(0)),
        };
        self.db.put_recording(stream, &row).await?;
        metrics::counter!("onair_recordings_total").increment(1);
        if let Some(told) = self.on_built.0.get() {
            told(stream);
        }
        tracing::info!(
            stream,
            duration_ms = plan.duration_ms(),
            renditions = plan.renditions.len(),
            missing = plan.missing,
            "VOD playlists written"
        );
        if plan.missing > 0 && !uploads_done {
            // Segments still waiting for the store: build again once they are in.
            let me = self.clone();
            let id = stream.to_string();
            tokio::spawn(async move {
                if me.uploader.drained(Duration::from_secs(3600)).await {
                    tracing::info!(stream = %id, "late uploads arrived: rebuilding the recording");
                    me.stream_over(&id);
                }
            });
        }
        if self.cfg.mp4 {
            let me = self.clone();
            let id = stream.to_string();
            let job = plan.clone();
            tokio::spawn(async move {
                let _permit = me.mp4_jobs.acquire().await;
                if let Err(e) = me.build_mp4(&id, &job).await {
                    tracing::warn!(stream = %id, error = %e, "the recording's MP4 failed");
                    metrics::counter!("onair_recording_mp4_total", "result" => "failed")
                        .increment(1);
                    if let Err(db) = me.db.set_mp4_failed(&id, &e.to_string()).await {
                        tracing::error!(stream = %id, error = %db, "could not record the MP4 failure");
                    }
                }
            });
        }
        Ok(Some(plan))
    }

    /// Downloads one rendition's segments into one file per init segment run.
    async fn download(
        &self,
        stream: &str,
        r: &VodRendition,
        dir: &Path,
        tag: &str,
        done: &mut usize,
        total: usize,
    ) -> Result<Vec<PathBuf>, RecordingError> {
        use tokio::io::AsyncWriteExt;
        let mut files = Vec::new();
        let mut current: Option<(String, tokio::fs::File)> = None;
        for seg in &r.segments {
            if current.as_ref().is_none_or(|(init, _)| *init != seg.init) {
                if let Some((_, mut f)) = current.take() {
                    f.flush().await?;
                }
                let path = dir.join(format!("{tag}-{}.mp4", files.len()));
                let mut f = tokio::fs::File::create(&path).await?;
                let init = self
                    .store
                    .get(&object_key(stream, &format!("{}/{}", r.name, seg.init))?)
                    .await?;
                f.write_all(&init).await?;
                files.push(path);
                current = Some((seg.init.clone(), f));
            }
            let bytes = self
                .store
                .get(&object_key(stream, &format!("{}/{}.m4s", r.name, seg.msn))?)
                .await?;
            if let Some((_, f)) = current.as_mut() {
                f.write_all(&bytes).await?;
            }
            *done += 1;
            if done.is_multiple_of(10) {
                let percent = (*done * 50 / total.max(1)) as i64;
                let _ = self.db.set_mp4_progress(stream, percent).await;
            }
        }
        if let Some((_, mut f)) = current.take() {
            f.flush().await?;
        }
        Ok(files)
    }

    async fn build_mp4(&self, stream: &str, plan: &VodPlan) -> Result<(), RecordingError> {
        let Some(top) = plan.top() else {
            return Ok(());
        };
        let audio = plan
            .audio()
            .filter(|a| top.kind == Kind::Video || a.name != top.name);
        self.db.set_mp4_progress(stream, 0).await?;
        crate::private_fs::create_dir_async(&self.cfg.work_dir).await?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("recording-{stream}-"))
            .tempdir_in(&self.cfg.work_dir)?;
        let total = top.segments.len() + audio.map(|a| a.segments.len()).unwrap_or(0);
        let mut done = 0;
        let (video_files, audio_files) = if top.kind == Kind::Video {
            let v = self
                .download(stream, top, dir.path(), "video", &mut done, total)
                .await?;
            let a = match audio {
                Some(a) => {
                    self.download(stream, a, dir.path(), "audio", &mut done, total)
                        .await?
                }
                None => Vec::new(),
            };
            (v, a)
        } else {
            (
                Vec::new(),
                self.download(stream, top, dir.path(), "audio", &mut done, total)
                    .await?,
            )
        };
        if let Some(first) = video_files.first().cloned() {
            match tokio::task::spawn_blocking(move || mp4::thumbnail(&first, 2000)).await {
                Ok(Ok(jpeg)) => {
                    put_retrying(
                        self.store.as_ref(),
                        &object_key(stream, "thumbnail.jpg")?,
                        Bytes::from(jpeg),
                    )
                    .await?;
                    self.db.set_recording_thumbnail(stream).await?;
                }
                Ok(Err(e)) => tracing::warn!(stream, error = %e, "no thumbnail"),
                Err(e) => tracing::warn!(stream, error = %e, "the thumbnail task failed"),
            }
        }
        let out = dir.path().join("recording.mp4");
        let (tx, mut rx) = tokio::sync::watch::channel(50u8);
        let total_ms = plan.duration_ms();
        let out_path = out.clone();
        let job = tokio::task::spawn_blocking(move || {
            mp4::remux(&video_files, &audio_files, &out_path, total_ms, &mut |p| {
                let _ = tx.send(50 + p / 2);
            })
        });
        let db = self.db.clone();
        let id = stream.to_string();
        let reporter = tokio::spawn(async move {
            let mut last = 50u8;
            while rx.changed().await.is_ok() {
                let p = *rx.borrow_and_update();
                if p >= last + 5 && p < 100 {
                    last = p;
                    let _ = db.set_mp4_progress(&id, i64::from(p)).await;
                }
            }
        });
        let report = job
            .await
            .map_err(|e| std::io::Error::other(format!("the MP4 task failed: {e}")))??;
        let _ = reporter.await;
        if self.db.get_recording(stream).await?.is_none() {
            tracing::info!(
                stream,
                "the recording was deleted while its MP4 was made; discarded"
            );
            return Ok(());
        }
        let size = self
            .store
            .put_file(&object_key(stream, "recording.mp4")?, &out)
            .await?;
        self.db
            .set_mp4_ready(stream, int(size), int(report.duration_ms))
            .await?;
        metrics::counter!("onair_recording_mp4_total", "result" => "ready").increment(1);
        tracing::info!(
            stream,
            bytes = size,
            duration_ms = report.duration_ms,
            "recording MP4 ready"
        );
        Ok(())
    }

    /// After a restart: streams still marked live are interrupted (no pipeline
    /// owns them now), but for `resumable` ones (left so by a graceful
    /// shutdown: `ingest::resume`), and every recording a restart cut short
    /// is built. Returns how many recordings were queued.
    pub async fn recover(self: &Arc<Self>, resumable: &[String]) -> Result<usize, RecordingError> {
        let live = self.db.live_stream_ids().await?;
        for id in live.iter().filter(|id| !resumable.contains(id)) {
            tracing::warn!(stream = %id, "stream was live when the server stopped: marked interrupted");
            self.db
                .set_stream_state(id, "interrupted", crate::clock::now_ms())
                .await?;
        }
        self.recover_recordings().await
    }

    /// The part of [`Recorder::recover`] that cluster mode runs at start-up:
    /// finishes the recordings of streams that are over. Streams still
    /// marked live may be another node's; `ingest`'s orphan sweep
    /// interrupts those whose owner is gone.
    pub async fn recover_recordings(self: &Arc<Self>) -> Result<usize, RecordingError> {
        let unfinished = self.db.unfinished_recordings().await?;
        for id in &unfinished {
            self.stream_over(id);
        }
        Ok(unfinished.len())
    }

    /// Deletes a stream's recording: every object under `streams/<id>/` and
    /// the recording and catalog rows. `false` if there was nothing to delete.
    pub async fn delete(&self, stream: &str) -> Result<bool, RecordingError> {
        let prefix = format!("streams/{stream}/");
        let objects = self.store.list(&prefix).await?;
        for o in &objects {
            self.store
                .delete(&ObjectKey::new(o.key.clone()).map_err(StoreError::from)?)
                .await?;
        }
        let had_row = self.db.delete_recording(stream).await?;
        Ok(had_row || !objects.is_empty())
    }
}
