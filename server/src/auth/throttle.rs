//! Login throttling: at most N failed logins per username and M per client IP
//! in a sliding window. In memory, per process: with several nodes behind a
//! load balancer each node counts on its own (documented in the README).
//!
//! An attempt is counted as a failure *before* the password is checked and
//! taken back if it succeeds, so parallel guesses cannot slip past the limit
//! while the (slow) hash runs.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many tracked keys, idle ones are swept on the next attempt.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Ip(IpAddr),
}

/// Limits for [`LoginThrottle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    /// Failed logins per username in the window.
    pub per_user: u32,
    /// Failed logins per client IP in the window.
    pub per_ip: u32,
    /// The sliding window.
    pub window: Duration,
}

/// Sliding-window counters of failed logins.
#[derive(Debug)]
pub struct LoginThrottle {
    limits: ThrottleLimits,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

/// A login attempt that has been counted; report how it went.
#[derive(Debug)]
#[must_use = "report the outcome with succeeded() or leave it counted as a failure"]
pub struct Attempt {
    user: Key,
    ip: Key,
    at: Instant,
}

impl LoginThrottle {
    /// A throttle with these limits.
    pub fn new(limits: ThrottleLimits) -> Self {
        LoginThrottle {
            limits,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt for `username` from `ip`, or refuses it with how long
    /// to wait before the oldest failure leaves the window.
    pub fn begin(&self, username: &str, ip: IpAddr) -> Result<Attempt, Duration> {
        let now = Instant::now();
        let window = self.limits.window;
        let user = Key::User(username.to_string());
        let ip = Key::Ip(ip);
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let mut wait = Duration::ZERO;
        for (key, limit) in [(&user, self.limits.per_user), (&ip, self.limits.per_ip)] {
            if let Some(q) = map.get_mut(key) {
                while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
                    q.pop_front();
                }
                let limit = limit.max(1) as usize;
                if q.len() >= limit {
                    // Blocked until enough old failures expire to drop below the limit.
                    let idx = q.len() - limit;
                    if let Some(t) = q.get(idx) {
                        wait = wait.max(window.saturating_sub(now.duration_since(*t)));
                    }
                }
            }
        }
        if wait > Duration::ZERO {
            return Err(wait.max(Duration::from_secs(1)));
        }
        for key in [&user, &ip] {
            map.entry(key.clone()).or_default().push_back(now);
        }
        Ok(Attempt { user, ip, at: now })
    }

    /// The attempt logged in: the username's failures are forgotten, and this
    /// attempt no longer counts against the IP.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&attempt.user);
        if let Some(q) = map.get_mut(&attempt.ip) {
            if let Some(pos) = q.iter().rposition(|t| *t == attempt.at) {
                q.remove(pos);
            }
            if q.is_empty() {
                map.remove(&attempt.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn per_user_and_per_ip_limits_and_success_resets_the_user() {
        let t = LoginThrottle::new(ThrottleLimits {
            per_user: 3,
            per_ip: 5,
            window: Duration::from_secs(60),
        });
        for _ in 0..3 {
            let _failed = t.begin("alice", ip(1)).expect("under the limit");
        }
        let wait = t.begin("alice", ip(2)).expect_err("4th failure for alice");
        assert!(wait > Duration::from_secs(58) && wait <= Duration::from_secs(60));
        // Another user from the same IP still gets in, until the IP limit.
        let ok = t.begin("bob", ip(1)).expect("bob");
        t.succeeded(ok);
        let _f = t.begin("carol", ip(1)).expect("4th for the ip");
        let _f = t.begin("dave", ip(1)).expect("5th for the ip");
        assert!(t.begin("erin", ip(1)).is_err(), "6th failure from the ip");
        assert!(t.begin("erin", ip(3)).is_ok(), "other ips are not affected");
    }

    #[test]
    fn success_forgets_the_username_failures() {
        let t = LoginThrottle::new(ThrottleLimits {
            per_user: 2,
            per_ip: 100,
            window: Duration::from_secs(60),
        });
        let _f = t.begin("alice", ip(1)).expect("1");
        let ok = t.begin("alice", ip(1)).expect("2");
        t.succeeded(ok);
        let _f = t.begin("alice", ip(1)).expect("counter was reset");
    }

    #[test]
    fn failures_expire_after_the_window() {
        let t = LoginThrottle::new(ThrottleLimits {
            per_user: 1,
            per_ip: 10,
            window: Duration::from_millis(50),
        });
        let _f = t.begin("alice", ip(1)).expect("1");
        assert!(t.begin("alice", ip(1)).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(t.begin("alice", ip(1)).is_ok(), "the window slid past");
    }
}
