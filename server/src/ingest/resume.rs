//! A graceful shutdown, and resuming its streams after the restart.
//!
//! On SIGTERM (or Ctrl-C) the server calls [`IngestHub::shutdown`] before
//! it stops serving: every live session's input is closed, so its pipeline
//! finishes the segment it is in and archives it, as at the end of a
//! stream; but the stream stays `live` in the database and its recording is
//! not built: it is *resumable*. The publishers' sockets are closed with
//! 1012 (service restart), which the studio retries. The server then waits
//! for the uploads and the catalog rows, and lists the streams in
//! `<data-dir>/resumable.json` ([`write_resumable`]).
//!
//! After the restart ([`take_resumable`], [`IngestHub::await_resume`]), each
//! listed stream still `live` gets the resume grace: a publisher that comes
//! back continues it as a new period (numbered after what was stored, so no
//! URL is reused), and one that does not has it interrupted and its
//! recording built, as after a crash. Streams that were live but are not
//! listed (a crash, SIGKILL) are interrupted at once, as before.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use app::protocol::StreamState;

use super::{IngestHub, Session};

/// The list of resumable streams in the data directory.
pub const RESUMABLE_FILE: &str = "resumable.json";
/// The most stream ids read back from the list.
const MAX_LISTED: usize = 10_000;

impl IngestHub {
    /// Whether [`IngestHub::shutdown`] has begun.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Closes every live session's input and waits, at most `limit` in all,
    /// for their pipelines to finish their segments; returns the streams
    /// (left `live`, resumable). New publishers are refused from now on.
    pub async fn shutdown(&self, limit: Duration) -> Vec<String> {
        self.stopping.store(true, Ordering::SeqCst);
        let sessions: Vec<Arc<Session>> = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for s in &sessions {
            s.close_input();
        }
        let deadline = tokio::time::Instant::now() + limit;
        let mut ids = Vec::with_capacity(sessions.len());
        for s in sessions {
            let mut outcome = s.outcome.clone();
            let finished =
                tokio::time::timeout_at(deadline, outcome.wait_for(Option::is_some)).await;
            if finished.is_err() {
                tracing::warn!(stream = %s.stream_id, "shutdown: the pipeline did not finish in time; its open segment is lost");
            }
            ids.push(s.stream_id.clone());
        }
        if !ids.is_empty() {
            tracing::info!(streams = ids.len(), "shutdown: live streams left resumable");
        }
        ids
    }

    /// After a restart: gives each of `ids` (streams left resumable by the
    /// last shutdown) the resume grace, then interrupts those still `live`
    /// that no publisher came back to, and builds their recordings.
    pub fn await_resume(self: &Arc<Self>, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        tracing::info!(
            streams = ids.len(),
            grace_s = self.limits.resume_grace.as_secs(),
            "waiting for the publishers of streams live before the restart"
        );
        let hub = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(hub.limits.resume_grace).await;
            let live = match hub.db.live_stream_ids().await {
                Ok(live) => live,
                Err(e) => {
                    tracing::error!(error = %e, "cannot list live streams: the resumable ones stay live");
                    return;
                }
            };
            for id in ids.iter().filter(|id| live.contains(id)) {
                if hub.session(id).is_none() {
                    tracing::warn!(stream = %id, "no publisher came back after the restart: stream interrupted");
                    hub.set_state(id, StreamState::Interrupted).await;
                    hub.recorder.stream_over(id);
                }
            }
        });
    }
}

/// Writes the list of resumable streams into `data_dir` (replacing it).
pub fn write_resumable(data_dir: &Path, ids: &[String]) -> std::io::Result<()> {
    let path = data_dir.join(RESUMABLE_FILE);
    let tmp = data_dir.join(format!("{RESUMABLE_FILE}.tmp"));
    let body = serde_json::to_vec(ids).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, body)?;
    std::fs::rename(tmp, path)
}

/// Reads and removes the list of resumable streams in `data_dir`: none if
/// there is no list; what is not a list of stream ids is ignored (and
/// logged), so a damaged file only costs the grace.
pub fn take_resumable(data_dir: &Path) -> Vec<String> {
    let path = data_dir.join(RESUMABLE_FILE);
    let Ok(bytes) = std::fs::read(&path) else {
        return Vec::new();
    };
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove the list of resumable streams");
    }
    match serde_json::from_slice::<Vec<String>>(&bytes) {
        Ok(ids) => ids
            .into_iter()
            .filter(|id| app::ids::valid_stream_id(id))
            .take(MAX_LISTED)
            .collect(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the list of resumable streams is unreadable: ignored");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_read_once_and_only_stream_ids_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(take_resumable(dir.path()).is_empty(), "no list");
        let good = "3f9a0c1d2e4b5a697887".to_string();
        write_resumable(dir.path(), &[good.clone(), "../etc/passwd".into()]).expect("write");
        assert_eq!(take_resumable(dir.path()), vec![good]);
        assert!(take_resumable(dir.path()).is_empty(), "taken once");
        std::fs::write(dir.path().join(RESUMABLE_FILE), b"{not json").expect("write");
        assert!(take_resumable(dir.path()).is_empty());
        assert!(!dir.path().join(RESUMABLE_FILE).exists());
    }
}
