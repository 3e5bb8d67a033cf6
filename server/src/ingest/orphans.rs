//! Cluster mode: live streams whose owner died and whose publisher did not
//! come back. The database still says `live` (the dead node cannot say
//! otherwise, and no other node ran its resume grace); every node sweeps
//! now and then, and a stream that no node holds a lease for, and that this
//! node does not run, for longer than the resume grace is marked
//! interrupted and its recording built, as a restarted node does with its
//! own streams. The sweeping node holds the stream's lease meanwhile, so
//! two nodes never do it twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use app::protocol::StreamState;
use tokio::time::Instant;

use super::{Claim, IngestHub};

impl IngestHub {
    /// Sweeps every `every` (see the module's documentation) until the hub
    /// is dropped. Does nothing on a node alone (no ownership).
    pub fn sweep_orphans(self: &Arc<Self>, every: Duration) {
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut seen: HashMap<String, Instant> = HashMap::new();
            loop {
                tokio::time::sleep(every).await;
                let Some(hub) = hub.upgrade() else { return };
                hub.sweep_once(&mut seen).await;
            }
        });
    }

    /// One sweep; `seen` holds when each orphan was first seen.
    async fn sweep_once(self: &Arc<Self>, seen: &mut HashMap<String, Instant>) {
        let Some(ownership) = self.ownership.get().cloned() else {
            return;
        };
        let live = match self.db.live_stream_ids().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::debug!(error = %e, "orphan sweep: cannot list live streams");
                return;
            }
        };
        let now = Instant::now();
        seen.retain(|id, _| live.contains(id));
        for id in live {
            if self.session(&id).is_some() {
                seen.remove(&id);
                continue;
            }
            match ownership.holder(&id).await {
                // Owned by another node, which renews it.
                Ok(Some(_)) => {
                    seen.remove(&id);
                    continue;
                }
                Ok(None) => {}
                // Nobody can say: no verdict this time.
                Err(_) => continue,
            }
            let since = *seen.entry(id.clone()).or_insert(now);
            if now.saturating_duration_since(since) < self.limits.resume_grace {
                continue;
            }
            let Claim::Held(lease) = ownership.claim(&id).await else {
                continue;
            };
            // A publisher may have come back on this node meanwhile.
            if self.session(&id).is_none() {
                tracing::warn!(stream = %id, "the stream's node is gone and no publisher came back: marked interrupted");
                self.set_state(&id, StreamState::Interrupted).await;
                self.recorder.stream_over(&id);
            }
            seen.remove(&id);
            lease.release();
        }
    }
}
