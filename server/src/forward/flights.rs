//! Request collapsing: at most one fetch per key in flight, its answer
//! shared by every caller that asked meanwhile. Nothing is kept after the
//! answer: the next caller starts a new fetch (what is worth keeping, the
//! caller puts in a [`super::cache::MediaCache`]).
//!
//! No IO here: the fetch is any future, so tests count fake fetches.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use futures::future::{BoxFuture, FutureExt, Shared};

/// One flight: its number, the shared fetch and how many callers wait on it.
struct Flight<V> {
    id: u64,
    fetch: Shared<BoxFuture<'static, V>>,
    waiters: usize,
}

/// The flights in progress, by key (see the module's documentation).
pub struct Flights<V: Clone> {
    inner: Mutex<(u64, HashMap<String, Flight<V>>)>,
}

impl<V: Clone> std::fmt::Debug for Flights<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field(
                "in_flight",
                &self.inner.lock().unwrap_or_else(|e| e.into_inner()).1.len(),
            )
            .finish()
    }
}

impl<V: Clone> Default for Flights<V> {
    fn default() -> Self {
        Flights {
            inner: Mutex::new((0, HashMap::new())),
        }
    }
}

/// Leaves a flight when its caller is done or gone: the last caller to
/// leave an unfinished flight drops it (and so cancels its fetch).
struct Leave<'a, V: Clone> {
    flights: &'a Flights<V>,
    key: &'a str,
    id: u64,
    done: bool,
}

impl<V: Clone> Drop for Leave<'_, V> {
    fn drop(&mut self) {
        let mut g = self.flights.inner.lock().unwrap_or_else(|e| e.into_inner());
        let map = &mut g.1;
        let Some(f) = map.get_mut(self.key).filter(|f| f.id == self.id) else {
            return;
        };
        f.waiters = f.waiters.saturating_sub(1);
        // A finished flight is not reused: the next caller fetches anew.
        if self.done || f.waiters == 0 {
            map.remove(self.key);
        }
    }
}

impl<V: Clone + Send + Sync + 'static> Flights<V> {
    /// A table with no flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys have a fetch in flight.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1.len()
    }

    /// Whether no fetch is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The answer for `key`: joins the fetch in flight for it, or starts
    /// `fetch` if there is none. The flag says whether this call started
    /// the fetch (`true`) or shared another's (`false`).
    pub async fn run<F, Fut>(&self, key: &str, fetch: F) -> (V, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let (id, shared, led) = {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let (next, map) = &mut *g;
            match map.get_mut(key) {
                Some(f) => {
                    f.waiters += 1;
                    (f.id, f.fetch.clone(), false)
                }
                None => {
                    *next += 1;
                    let shared = fetch().boxed().shared();
                    map.insert(
                        key.to_string(),
                        Flight {
                            id: *next,
                            fetch: shared.clone(),
                            waiters: 1,
                        },
                    );
                    (*next, shared, true)
                }
            }
        };
        let mut leave = Leave {
            flights: self,
            key,
            id,
            done: false,
        };
        let v = shared.await;
        leave.done = true;
        drop(leave);
        (v, led)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A fake fetch: counts its calls and answers when the gate opens.
    fn fake(
        calls: &Arc<AtomicUsize>,
        gate: &tokio::sync::watch::Receiver<bool>,
        answer: &str,
    ) -> impl FnOnce() -> BoxFuture<'static, String> {
        let calls = calls.clone();
        let mut gate = gate.clone();
        let answer = answer.to_string();
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let _ = gate.wait_for(|open| *open).await;
                answer
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn many_callers_of_one_key_cost_one_fetch_and_get_its_answer() {
        let flights = Arc::new(Flights::<String>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let (open, gate) = tokio::sync::watch::channel(false);
        let mut waiting = Vec::new();
        for _ in 0..100 {
            let (flights, f) = (flights.clone(), fake(&calls, &gate, "part 7.2"));
            waiting.push(tokio::spawn(async move {
                flights.run("/live/s/720p/7.2.m4s", f).await
            }));
        }
        // Another key is another fetch.
        let other = {
            let (flights, f) = (flights.clone(), fake(&calls, &gate, "part 7.3"));
            tokio::spawn(async move { flights.run("/live/s/720p/7.3.m4s", f).await })
        };
        while flights.len() < 2 {
            tokio::task::yield_now().await;
        }
        open.send(true).expect("gate");
        let mut led = 0;
        for w in waiting {
            let (v, l) = w.await.expect("task");
            assert_eq!(v, "part 7.2");
            led += usize::from(l);
        }
        assert_eq!(led, 1, "one caller started the fetch");
        assert_eq!(other.await.expect("task").0, "part 7.3");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one fetch per key");
        assert!(flights.is_empty(), "nothing kept after the answer");

        // Asked again after the answer: a new fetch (playlists are not kept).
        let (v, l) = flights
            .run("/live/s/720p/7.2.m4s", fake(&calls, &gate, "again"))
            .await;
        assert_eq!((v.as_str(), l), ("again", true));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_flight_whose_callers_all_left_is_dropped_and_the_next_caller_fetches_anew() {
        let flights = Arc::new(Flights::<String>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let (open, gate) = tokio::sync::watch::channel(false);
        let first = {
            let (flights, f) = (flights.clone(), fake(&calls, &gate, "never"));
            tokio::spawn(async move { flights.run("k", f).await })
        };
        while flights.is_empty() {
            tokio::task::yield_now().await;
        }
        first.abort();
        let _ = first.await;
        assert!(flights.is_empty(), "the abandoned flight is gone");
        open.send(true).expect("gate");
        let (v, l) = flights.run("k", fake(&calls, &gate, "fresh")).await;
        assert_eq!((v.as_str(), l), ("fresh", true));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
