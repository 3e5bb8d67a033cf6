//! A count of queued work that a caller can wait on: the upload queue and
//! the recording catalog both hand work to a background task and need "wait
//! until everything queued so far is done".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Work queued and not yet done; cheap to clone (clones share the count).
#[derive(Debug, Clone)]
pub struct Outstanding {
    count: Arc<AtomicU64>,
    changed: Arc<watch::Sender<u64>>,
}

impl Outstanding {
    /// Starts at `initial` items.
    pub fn new(initial: u64) -> Self {
        Outstanding {
            count: Arc::new(AtomicU64::new(initial)),
            changed: Arc::new(watch::channel(0).0),
        }
    }

    /// One more item queued.
    pub fn add(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    /// `n` items done (or dropped); wakes the waiters.
    pub fn done(&self, n: u64) {
        self.count.fetch_sub(n, Ordering::SeqCst);
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Items queued and not yet done.
    pub fn get(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until nothing is outstanding (or `timeout` passes); true if so.
    pub async fn drained(&self, timeout: Duration) -> bool {
        let mut rx = self.changed.subscribe();
        let wait = async {
            while self.get() > 0 {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok() && self.get() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::Outstanding;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_wake_when_the_count_reaches_zero() {
        let o = Outstanding::new(1);
        o.add();
        assert!(!o.drained(Duration::from_millis(20)).await);
        let worker = o.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            worker.done(2);
        });
        assert!(o.drained(Duration::from_secs(5)).await);
        assert_eq!(o.get(), 0);
    }
}
