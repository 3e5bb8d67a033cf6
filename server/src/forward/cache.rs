//! The edge's memory of forwarded media: parts, segments and init segments
//! (immutable once published), kept for a fixed time and within a byte
//! bound, oldest out first. No IO and no clock here: the caller passes the
//! time, so tests move it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::origin::Media;

/// Forwarded media by key (see the module's documentation).
#[derive(Debug)]
pub struct MediaCache {
    max_bytes: usize,
    ttl: Duration,
    bytes: usize,
    entries: HashMap<String, (Instant, Media)>,
    /// Keys in insertion order (so in expiry order), with their insertion
    /// time: a key stored again leaves a stale pair behind, skipped.
    order: VecDeque<(Instant, String)>,
}

impl MediaCache {
    /// Keeps each entry `ttl`, and at most `max_bytes` of them.
    pub fn new(max_bytes: usize, ttl: Duration) -> Self {
        MediaCache {
            max_bytes,
            ttl,
            bytes: 0,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The entries held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The media under `key` if it is still fresh at `now`.
    pub fn get(&mut self, key: &str, now: Instant) -> Option<Media> {
        self.expire(now);
        self.entries.get(key).map(|(_, m)| m.clone())
    }

    /// Keeps `media` under `key` from `now`; media larger than the whole
    /// bound is not kept. Older entries leave to make room.
    pub fn insert(&mut self, key: &str, media: Media, now: Instant) {
        self.expire(now);
        let size = media.bytes.len();
        if size > self.max_bytes {
            return;
        }
        if let Some((_, old)) = self.entries.remove(key) {
            self.bytes = self.bytes.saturating_sub(old.bytes.len());
        }
        while self.bytes.saturating_add(size) > self.max_bytes {
            if !self.pop_oldest() {
                break;
            }
        }
        self.bytes = self.bytes.saturating_add(size);
        self.entries.insert(key.to_string(), (now, media));
        self.order.push_back((now, key.to_string()));
    }

    /// Drops the entries older than the time to live.
    fn expire(&mut self, now: Instant) {
        while let Some((at, key)) = self.order.front() {
            let current = self.entries.get(key).is_some_and(|(t, _)| t == at);
            if current && now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            // Expired, or a stale pair (the key was stored again since).
            if let Some((_, key)) = self.order.pop_front() {
                if current {
                    if let Some((_, m)) = self.entries.remove(&key) {
                        self.bytes = self.bytes.saturating_sub(m.bytes.len());
                    }
                }
            }
        }
    }

    /// Drops the oldest entry; false if there was none.
    fn pop_oldest(&mut self) -> bool {
        while let Some((at, key)) = self.order.pop_front() {
            // Only if the entry is the one this pair recorded (not stored again since).
            if self.entries.get(&key).is_some_and(|(t, _)| *t == at) {
                if let Some((_, m)) = self.entries.remove(&key) {
                    self.bytes = self.bytes.saturating_sub(m.bytes.len());
                }
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn media(n: usize) -> Media {
        Media::new(Bytes::from(vec![7u8; n]))
    }

    #[test]
    fn entries_expire_after_their_time_and_the_bound_evicts_the_oldest() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut c = MediaCache::new(1000, Duration::from_secs(60));
        c.insert("a", media(400), s(0));
        c.insert("b", media(400), s(1));
        assert_eq!(c.bytes(), 800);
        assert!(c.get("a", s(59)).is_some());
        // Over the bound: the oldest leaves.
        c.insert("c", media(400), s(2));
        assert!(c.get("a", s(2)).is_none());
        assert_eq!((c.len(), c.bytes()), (2, 800));
        // Past its time: gone.
        assert!(c.get("b", s(61)).is_none());
        assert!(c.get("c", s(61)).is_some());
        assert!(c.get("c", s(62)).is_none());
        assert!(c.is_empty());
        assert_eq!(c.bytes(), 0);
        // Larger than the whole bound: not kept, nothing evicted for it.
        c.insert("d", media(10), s(70));
        c.insert("huge", media(1001), s(70));
        assert!(c.get("huge", s(70)).is_none());
        assert!(c.get("d", s(70)).is_some());
    }

    #[test]
    fn a_key_stored_again_counts_once_and_lives_from_its_new_time() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut c = MediaCache::new(1000, Duration::from_secs(10));
        c.insert("a", media(300), s(0));
        c.insert("a", media(500), s(5));
        assert_eq!((c.len(), c.bytes()), (1, 500));
        assert!(
            c.get("a", s(12)).is_some(),
            "the stale pair does not expire it"
        );
        assert!(c.get("a", s(15)).is_none());
        assert_eq!(c.bytes(), 0);
    }
}
