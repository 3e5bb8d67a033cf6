//! The upload queue: completed segments go to the object store in the
//! background. Enqueueing never blocks the pipeline. A failed upload is retried
//! with backoff; if the store stays down, the object spills to a local
//! directory and is uploaded when the store answers again (also after a
//! restart). Spilled objects are private files (0600, [`crate::private_fs`]).
//! Metrics: `onair_uploads_total{result}`, `onair_upload_spill_objects`,
//! `onair_upload_spill_bytes`, `onair_upload_dropped_total`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{ObjectKey, ObjectStore};
use crate::outstanding::Outstanding;

/// Upload queue settings.
#[derive(Debug, Clone)]
pub struct UploaderConfig {
    /// Where objects wait while the store is unreachable.
    pub spill_dir: PathBuf,
    /// Most bytes kept in the spill directory; beyond it new objects are dropped (and counted).
    pub max_spill_bytes: u64,
    /// Attempts before an object spills.
    pub attempts: u32,
    /// First retry delay (doubles per attempt).
    pub backoff: Duration,
    /// How often spilled objects are retried.
    pub drain_every: Duration,
}

impl UploaderConfig {
    /// Defaults with spill under `dir`.
    pub fn new(dir: PathBuf) -> Self {
        UploaderConfig {
            spill_dir: dir,
            max_spill_bytes: 2 * 1024 * 1024 * 1024,
            attempts: 3,
            backoff: Duration::from_millis(200),
            drain_every: Duration::from_secs(2),
        }
    }
}

/// A handle to enqueue uploads; cheap to clone.
#[derive(Debug, Clone)]
pub struct Uploader {
    tx: mpsc::UnboundedSender<(ObjectKey, Bytes)>,
    pending: Outstanding,
}

struct Spilled {
    path: PathBuf,
    key: ObjectKey,
    size: u64,
}

fn spill_name(seq: u64, key: &ObjectKey) -> String {
    // '%' never occurs in a key, so this encoding is reversible.
    format!("{seq:016}-{}", key.as_str().replace('/', "%2F"))
}

fn key_from_spill_name(name: &str) -> Option<(u64, ObjectKey)> {
    let (seq, rest) = name.split_once('-')?;
    Some((
        seq.parse().ok()?,
        ObjectKey::new(rest.replace("%2F", "/")).ok()?,
    ))
}

impl Uploader {
    /// Starts the queue's task. Objects spilled by an earlier run are queued again.
    pub async fn start(
        store: Arc<dyn ObjectStore>,
        cfg: UploaderConfig,
    ) -> std::io::Result<Uploader> {
        crate::private_fs::own_dir(&cfg.spill_dir)?;
        let mut spilled = Vec::new();
        let mut entries = tokio::fs::read_dir(&cfg.spill_dir).await?;
        while let Some(e) = entries.next_entry().await? {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some((seq, key)) = key_from_spill_name(&name) {
                let size = e.metadata().await.map(|m| m.len()).unwrap_or(0);
                spilled.push((
                    seq,
                    Spilled {
                        path: e.path(),
                        key,
                        size,
                    },
                ));
            }
        }
        spilled.sort_by_key(|(seq, _)| *seq);
        let next_seq = spilled.last().map(|(s, _)| s + 1).unwrap_or(0);
        let spill: VecDeque<Spilled> = spilled.into_iter().map(|(_, s)| s).collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Outstanding::new(spill.len() as u64);
        let worker = Worker {
            store,
            cfg,
            spill,
            spill_bytes: 0,
            next_seq,
            pending: pending.clone(),
        };
        tokio::spawn(worker.run(rx));
        Ok(Uploader { tx, pending })
    }

    /// Queues an object for upload. Never blocks.
    pub fn enqueue(&self, key: ObjectKey, bytes: Bytes) {
        self.pending.add();
        if self.tx.send((key, bytes)).is_err() {
            self.pending.done(1);
            metrics::counter!("onair_upload_dropped_total").increment(1);
            tracing::error!("the upload queue has stopped; an object was dropped");
        }
    }

    /// Objects queued or spilled and not yet in the store.
    pub fn pending(&self) -> u64 {
        self.pending.get()
    }

    /// Waits until nothing is pending (or `timeout` passes); true if drained.
    pub async fn drained(&self, timeout: Duration) -> bool {
        self.pending.drained(timeout).await
    }
}

struct Worker {
    store: Arc<dyn ObjectStore>,
    cfg: UploaderConfig,
    spill: VecDeque<Spilled>,
    spill_bytes: u64,
    next_seq: u64,
    pending: Outstanding,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<(ObjectKey, Bytes)>) {
        self.spill_bytes = self.spill.iter().map(|s| s.size).sum();
        self.report();
        let mut tick = tokio::time::interval(self.cfg.drain_every);
        loop {
            tokio::select! {
                item = rx.recv() => match item {
                    Some((key, bytes)) => self.upload_or_spill(key, bytes).await,
                    None => return,
                },
                _ = tick.tick(), if !self.spill.is_empty() => self.drain_spill().await,
            }
        }
    }

    fn done_one(&self) {
        self.pending.done(1);
    }

    fn report(&self) {
        metrics::gauge!("onair_upload_spill_objects").set(self.spill.len() as f64);
        metrics::gauge!("onair_upload_spill_bytes").set(self.spill_bytes as f64);
    }

    async fn upload_or_spill(&mut self, key: ObjectKey, bytes: Bytes) {
        // While objects are spilled, keep order: new ones wait behind them.
        if self.spill.is_empty() {
            let mut delay = self.cfg.backoff;
            for attempt in 1..=self.cfg.attempts {
                match self.store.put(&key, bytes.clone()).await {
                    Ok(()) => {
                        metrics::counter!("onair_uploads_total", "result" => "ok").increment(1);
                        self.done_one();
                        return;
                    }
                    Err(e) => {
                        metrics::counter!("onair_uploads_total", "result" => "retry").increment(1);
                        tracing::warn!(key = %key, attempt, error = %e, "upload failed");
                        if attempt < self.cfg.attempts {
                            tokio::time::sleep(delay).await;
                            delay *= 2;
                        }
                    }
                }
            }
        }
        self.spill_one(key, bytes).await;
    }

    async fn spill_one(&mut self, key: ObjectKey, bytes: Bytes) {
        let size = bytes.len() as u64;
        if self.spill_bytes + size > self.cfg.max_spill_bytes {
            metrics::counter!("onair_upload_dropped_total").increment(1);
            tracing::error!(key = %key, "the upload spill is full; object dropped");
            self.done_one();
            return;
        }
        let path = self.cfg.spill_dir.join(spill_name(self.next_seq, &key));
        self.next_seq += 1;
        if let Err(e) = crate::private_fs::write(&path, &bytes).await {
            metrics::counter!("onair_upload_dropped_total").increment(1);
            tracing::error!(key = %key, error = %e, "could not spill an object to disk; dropped");
            self.done_one();
            return;
        }
        metrics::counter!("onair_uploads_total", "result" => "spilled").increment(1);
        self.spill_bytes += size;
        self.spill.push_back(Spilled { path, key, size });
        self.report();
    }

    async fn drain_spill(&mut self) {
        while let Some(front) = self.spill.front() {
            let uploaded = self.store.put_file(&front.key, &front.path).await;
            match uploaded {
                Ok(_) => {
                    let _ = tokio::fs::remove_file(&front.path).await;
                    self.spill_bytes = self.spill_bytes.saturating_sub(front.size);
                    self.spill.pop_front();
                    metrics::counter!("onair_uploads_total", "result" => "ok").increment(1);
                    self.done_one();
                    self.report();
                }
                Err(_) => return, // still down: try again on the next tick
            }
        }
    }
}

/// The key of a live segment or init segment in the store.
pub fn segment_key(stream: &str, rendition: &str, file: &str) -> Option<ObjectKey> {
    ObjectKey::new(format!("streams/{stream}/{rendition}/{file}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spill_names_round_trip() {
        let key = ObjectKey::new("streams/abc/720p/12.m4s").expect("key");
        let name = spill_name(7, &key);
        assert_eq!(name, "0000000000000007-streams%2Fabc%2F720p%2F12.m4s");
        assert_eq!(key_from_spill_name(&name), Some((7, key)));
        assert_eq!(key_from_spill_name("junk"), None);
    }
}
