//! Where a new session's segment numbers start.

use super::{IngestHub, FOREIGN_MSN_MARGIN};

impl IngestHub {
    /// Where a new session of `stream` starts numbering segments: after the
    /// last one this node produced, and after the highest one in the store
    /// (from before a restart), so no URL or object key is ever reused.
    /// Stored segments this node did not number (another node's, before a
    /// failover, or this process's before a restart) are followed by
    /// [`FOREIGN_MSN_MARGIN`] unused numbers: their numberer may have
    /// published more (its open segment's parts, its upload queue) than
    /// reached the store, and those URLs must not name other media.
    pub(super) async fn first_msn(&self, stream: &str) -> u64 {
        let known = self
            .next_msn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(stream)
            .copied()
            .unwrap_or(0);
        let prefix = format!("streams/{stream}/");
        let stored = match self.store.list(&prefix).await {
            Ok(objects) => objects
                .iter()
                .filter_map(|o| {
                    let name = o.key.rsplit('/').next()?;
                    name.strip_suffix(".m4s")?.parse::<u64>().ok()
                })
                .max()
                .map(|m| m + 1)
                .unwrap_or(0),
            Err(e) => {
                tracing::warn!(stream, error = %e, "cannot list earlier segments; numbering from what this node knows");
                0
            }
        };
        if stored > known {
            stored.saturating_add(FOREIGN_MSN_MARGIN)
        } else {
            known
        }
    }
}
