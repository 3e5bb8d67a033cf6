//! Stream states that must reach the database. A publisher that ends
//! cleanly while the database refuses writes (a full disk, a restarting
//! server) must not leave its stream `live`: each change is written at once
//! if the database takes it, and otherwise retried in the background with
//! backoff ([`FIRST_RETRY`] doubling up to [`MAX_RETRY`]) until it lands,
//! for as long as the process runs.
//!
//! Per stream, changes are written in order by one writer at a time, and
//! the latest one wins: a change made while an older one is still being
//! retried replaces it. Each change is written with the time it was made,
//! not the time it landed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::protocol::StreamState;

use crate::db::Database;

/// The first retry of a failed state write waits this long.
pub const FIRST_RETRY: Duration = Duration::from_millis(200);
/// Retries back off to at most this interval.
pub const MAX_RETRY: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Pending {
    state: StreamState,
    /// Unix ms of the change.
    at_ms: i64,
    /// Bumped by every change, so a writer knows whether what it wrote is
    /// still the latest.
    version: u64,
    /// A writer (the caller or a retry task) owns this stream's writes.
    writing: bool,
}

/// Writes stream states until they land.
#[derive(Debug)]
pub struct StateWriter {
    db: Database,
    pending: Mutex<HashMap<String, Pending>>,
}

impl StateWriter {
    /// A writer into `db`.
    pub fn new(db: Database) -> Arc<Self> {
        Arc::new(StateWriter {
            db,
            pending: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `stream` is now in `state` (changed at `at_ms`, Unix ms).
    /// Returns once the database has it, or, if it refused, once a retry
    /// task has taken it over (then `false`).
    pub async fn set(self: &Arc<Self>, stream: &str, state: StreamState, at_ms: i64) -> bool {
        {
            let mut pending = self.lock();
            let p = pending.entry(stream.to_string()).or_insert(Pending {
                state,
                at_ms,
                version: 0,
                writing: false,
            });
            p.state = state;
            p.at_ms = at_ms;
            p.version += 1;
            if p.writing {
                // The writer of this stream writes this one next.
                return false;
            }
            p.writing = true;
        }
        if self.write_latest(stream).await {
            return true;
        }
        self.retry_later(stream.to_string());
        false
    }

    /// Streams whose latest state is not in the database yet.
    pub fn unwritten(&self) -> usize {
        self.lock().len()
    }

    /// Writes the stream's latest state until none newer came meanwhile
    /// (true), or until the database refuses one (false; still pending).
    async fn write_latest(&self, stream: &str) -> bool {
        loop {
            let Some((state, at_ms, version)) = self
                .lock()
                .get(stream)
                .map(|p| (p.state, p.at_ms, p.version))
            else {
                return true;
            };
            if let Err(e) = self
                .db
                .set_stream_state(stream, state.as_str(), at_ms)
                .await
            {
                metrics::counter!("onair_state_write_failures_total").increment(1);
                tracing::warn!(stream, state = state.as_str(), error = %e, "could not record the stream's state; retrying until it lands");
                return false;
            }
            let mut pending = self.lock();
            if pending.get(stream).is_some_and(|p| p.version == version) {
                pending.remove(stream);
                return true;
            }
        }
    }

    /// Retries the stream's latest state in the background until it lands.
    fn retry_later(self: &Arc<Self>, stream: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(stream, "no runtime to retry a stream state write in");
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            let mut delay = FIRST_RETRY;
            loop {
                tokio::time::sleep(delay).await;
                if this.write_latest(&stream).await {
                    tracing::info!(stream, "the stream's state is recorded after all");
                    return;
                }
                delay = (delay * 2).min(MAX_RETRY);
            }
        });
    }
}
