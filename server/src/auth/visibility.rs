//! Recent answers to "what is this stream's visibility?", for the playback
//! gate in front of `/live` (`http::playback`): fresh for a few seconds, and
//! a stale answer (up to five minutes old) while the database does not
//! answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use app::streams::Visibility;

use crate::db::{Database, DbError};

/// How long a visibility answer may still be used while the database does not answer.
const STALE_FOR: Duration = Duration::from_secs(300);
/// Above this many cached streams, old entries are swept (and all of them if
/// that is not enough).
const MAX_ENTRIES: usize = 10_000;

/// Recent answers to "what is this stream's visibility?" (`None`: no such stream).
#[derive(Debug)]
pub struct VisibilityCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Option<Visibility>)>>,
}

impl VisibilityCache {
    /// A cache whose answers are fresh for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        VisibilityCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, id: &str, max_age: Duration) -> Option<Option<Visibility>> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id)
            .filter(|(at, _)| at.elapsed() < max_age)
            .map(|(_, v)| *v)
    }

    /// The stream's visibility, from the cache while fresh, else from the
    /// database (falling back to a stale answer if the database fails).
    pub async fn lookup(&self, db: &Database, id: &str) -> Result<Option<Visibility>, DbError> {
        if let Some(v) = self.cached(id, self.ttl) {
            return Ok(v);
        }
        match db.stream_visibility(id).await {
            Ok(raw) => {
                // Anything unexpected is treated as private.
                let v = raw.map(|s| Visibility::parse(&s).unwrap_or(Visibility::Private));
                let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
                if map.len() >= MAX_ENTRIES {
                    map.retain(|_, (at, _)| at.elapsed() < STALE_FOR);
                    if map.len() >= MAX_ENTRIES {
                        map.clear();
                    }
                }
                map.insert(id.to_string(), (Instant::now(), v));
                Ok(v)
            }
            Err(e) => match self.cached(id, STALE_FOR) {
                Some(v) => {
                    tracing::warn!(stream = %id, error = %e, "database lookup failed; using the last known visibility");
                    Ok(v)
                }
                None => Err(e),
            },
        }
    }

    /// Forgets a stream's visibility (after a change or deletion).
    pub fn invalidate(&self, id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}
