//! Login and registration throttling, in sliding windows.
//!
//! - [`LoginThrottle`]: at most N failed logins per username and M per client
//!   IP. An attempt is counted as a failure *before* the password is checked
//!   and taken back if it succeeds, so parallel guesses cannot slip past the
//!   limit while the (slow) hash runs.
//! - [`RegistrationThrottle`]: at most N new accounts per client IP (IPv6
//!   addresses count per /64, what one host usually gets). A registration is
//!   counted before the hash runs and taken back if it does not create an
//!   account (name taken, database error), so only created accounts count.
//!
//! Both are in memory, per process: with several nodes behind a load balancer
//! each node counts on its own (documented in the README).

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

/// Limits for [`RegistrationThrottle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationLimits {
    /// New accounts per client IP in the window; 0 turns the limit off.
    pub per_ip: u32,
    /// The sliding window.
    pub window: Duration,
}

/// Sliding-window counters of new accounts per client IP.
#[derive(Debug)]
pub struct RegistrationThrottle {
    limits: RegistrationLimits,
    created: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

/// A registration counted against its IP. Dropped without
/// [`Reservation::keep`], it is taken back (the account was not created).
#[derive(Debug)]
#[must_use = "call keep() once the account exists; dropping it takes the registration back"]
pub struct Reservation<'a> {
    throttle: &'a RegistrationThrottle,
    ip: IpAddr,
    at: Instant,
    kept: bool,
}

impl Reservation<'_> {
    /// The account was created: the registration stays counted.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let mut map = self
            .throttle
            .created
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(q) = map.get_mut(&self.ip) {
            if let Some(pos) = q.iter().rposition(|t| *t == self.at) {
                q.remove(pos);
            }
            if q.is_empty() {
                map.remove(&self.ip);
            }
        }
    }
}

/// The key an address is counted under: IPv4 as is, IPv6 by its /64 (an
/// IPv4-mapped IPv6 address as its IPv4 address).
fn registration_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

impl RegistrationThrottle {
    /// A throttle with these limits.
    pub fn new(limits: RegistrationLimits) -> Self {
        RegistrationThrottle {
            limits,
            created: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a registration from `ip`, or refuses it with how long to wait
    /// until the oldest one leaves the window.
    pub fn begin(&self, ip: IpAddr) -> Result<Reservation<'_>, Duration> {
        let now = Instant::now();
        let ip = registration_key(ip);
        if self.limits.per_ip == 0 {
            // No limit: nothing to count (and the reservation finds nothing to take back).
            return Ok(Reservation {
                throttle: self,
                ip,
                at: now,
                kept: true,
            });
        }
        let window = self.limits.window;
        let mut map = self.created.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let q = map.entry(ip).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        let limit = self.limits.per_ip as usize;
        if q.len() >= limit {
            let wait = q
                .get(q.len() - limit)
                .map(|t| window.saturating_sub(now.duration_since(*t)))
                .unwrap_or(window);
            return Err(wait.max(Duration::from_secs(1)));
        }
        q.push_back(now);
        Ok(Reservation {
            throttle: self,
            ip,
            at: now,
            kept: false,
        })
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

    #[test]
    fn registrations_are_limited_per_ip_and_only_kept_ones_count() {
        let t = RegistrationThrottle::new(RegistrationLimits {
            per_ip: 2,
            window: Duration::from_secs(3600),
        });
        // Refused registrations (dropped reservations) do not count.
        for _ in 0..5 {
            drop(t.begin(ip(1)).expect("taken back each time"));
        }
        t.begin(ip(1)).expect("1").keep();
        t.begin(ip(1)).expect("2").keep();
        let wait = t.begin(ip(1)).expect_err("3rd account");
        assert!(wait > Duration::from_secs(3590) && wait <= Duration::from_secs(3600));
        t.begin(ip(2)).expect("another address").keep();
        // A reservation in flight counts: two at once cannot both pass the last slot.
        let held = t.begin(ip(3)).expect("1 of 2");
        let second = t.begin(ip(3)).expect("2 of 2");
        assert!(t.begin(ip(3)).is_err(), "both slots are held");
        drop(second);
        t.begin(ip(3)).expect("a slot came back").keep();
        held.keep();
    }

    #[test]
    fn ipv6_registrations_count_per_64_and_mapped_ipv4_as_ipv4() {
        let t = RegistrationThrottle::new(RegistrationLimits {
            per_ip: 1,
            window: Duration::from_secs(60),
        });
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("v6");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        t.begin(a).expect("first").keep();
        assert!(t.begin(b).is_err(), "same /64");
        t.begin(other).expect("another /64").keep();
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().expect("mapped");
        t.begin(ip(9)).expect("v4").keep();
        assert!(t.begin(mapped).is_err(), "the same IPv4 host");
    }

    #[test]
    fn a_zero_registration_limit_is_no_limit() {
        let t = RegistrationThrottle::new(RegistrationLimits {
            per_ip: 0,
            window: Duration::from_secs(60),
        });
        for _ in 0..100 {
            t.begin(ip(1)).expect("unlimited").keep();
        }
    }

    #[test]
    fn registrations_leave_the_window() {
        let t = RegistrationThrottle::new(RegistrationLimits {
            per_ip: 1,
            window: Duration::from_millis(50),
        });
        t.begin(ip(1)).expect("1").keep();
        assert!(t.begin(ip(1)).is_err());
        std::thread::sleep(Duration::from_millis(60));
        t.begin(ip(1)).expect("the window slid past").keep();
    }
}
