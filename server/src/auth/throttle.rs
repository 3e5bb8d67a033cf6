//! Login and registration throttling, in sliding windows.
//!
//! - [`LoginThrottle`]: the client IP is limited first, so that an attacker
//!   locks out only themselves, and an account is protected by a back-off
//!   that slows guessing from many addresses without ever locking it:
//!   1. at most `per_ip` failed logins per client IP (all usernames) in the
//!      window, then that IP waits (429);
//!   2. at most `per_user` failed logins per username *from one client IP* in
//!      the window, then that IP waits for that username (429);
//!   3. per username from all IPs together, every failure beyond `per_user`
//!      makes the next attempt wait a delay after it: 1 s, then 2 s, 4 s, …,
//!      at most `max_delay` (429 for attempts during the delay).
//!
//!   So failures from one address never stop the owner from logging in from
//!   another, and many addresses together cost the owner at most
//!   `max_delay` of waiting per attempt. An attempt is counted as a failure
//!   *before* the password is checked and taken back if it succeeds, so
//!   parallel guesses cannot slip past the limits while the (slow) hash runs.
//!   A success clears the username's back-off and its count from that IP.
//! - [`RegistrationThrottle`]: at most N new accounts per client IP. A
//!   registration is counted before the hash runs and taken back if it does
//!   not create an account (name taken, database error), so only created
//!   accounts count.
//!
//! A client IP is counted by [`ip_key`]: IPv4 as is, IPv6 per /64 (what one
//! host usually gets). Both throttles are in memory, per process: with
//! several nodes behind a load balancer each node counts on its own
//! (documented in the README).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many tracked keys, idle ones are swept on the next attempt.
const SWEEP_ABOVE: usize = 10_000;

/// The first back-off delay; each further failure doubles it.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);

/// The key a client address is counted under by every per-client limit
/// (logins, registrations, connections): IPv4 as is, IPv6 by its /64 (what
/// one host usually gets), an IPv4-mapped IPv6 address as its IPv4 address.
pub fn ip_key(ip: IpAddr) -> IpAddr {
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

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A username, from every address.
    User(String),
    /// A username from one address.
    UserIp(String, IpAddr),
    /// An address, every username.
    Ip(IpAddr),
}

/// Limits for [`LoginThrottle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    /// Failed logins per username from one client IP in the window; beyond
    /// this many from all IPs together, the back-off starts.
    pub per_user: u32,
    /// Failed logins per client IP in the window.
    pub per_ip: u32,
    /// The sliding window.
    pub window: Duration,
    /// The longest back-off delay.
    pub max_delay: Duration,
}

/// The back-off after `failures` failed logins for one username: nothing
/// up to `free`, then 1 s, doubling per failure, at most `max`.
pub fn backoff(failures: usize, free: u32, max: Duration) -> Duration {
    let beyond = failures.saturating_sub(free as usize);
    if beyond == 0 {
        return Duration::ZERO;
    }
    // 2^31 s is far past any sensible cap: stop doubling there.
    let doublings = u32::try_from(beyond - 1).unwrap_or(u32::MAX).min(31);
    FIRST_DELAY.saturating_mul(1u32 << doublings).min(max)
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
    user_ip: Key,
    ip: Key,
    at: Instant,
}

/// Drops the times that left the window from the front of `q`.
fn slide(q: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while q
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        q.pop_front();
    }
}

/// How long until `q` (already slid) is below `limit` again.
fn window_wait(q: &VecDeque<Instant>, limit: u32, now: Instant, window: Duration) -> Duration {
    let limit = limit.max(1) as usize;
    if q.len() < limit {
        return Duration::ZERO;
    }
    // Enough old failures must leave the window to drop below the limit.
    q.get(q.len() - limit)
        .map(|t| window.saturating_sub(now.saturating_duration_since(*t)))
        .unwrap_or(window)
}

fn remove_at(map: &mut HashMap<Key, VecDeque<Instant>>, key: &Key, at: Instant) {
    if let Some(q) = map.get_mut(key) {
        if let Some(pos) = q.iter().rposition(|t| *t == at) {
            q.remove(pos);
        }
        if q.is_empty() {
            map.remove(key);
        }
    }
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
    /// to wait.
    pub fn begin(&self, username: &str, ip: IpAddr) -> Result<Attempt, Duration> {
        self.begin_at(username, ip, Instant::now())
    }

    /// [`LoginThrottle::begin`] at `now`.
    pub fn begin_at(&self, username: &str, ip: IpAddr, now: Instant) -> Result<Attempt, Duration> {
        let ThrottleLimits {
            per_user,
            per_ip,
            window,
            max_delay,
        } = self.limits;
        let ip = ip_key(ip);
        let user = Key::User(username.to_string());
        let user_ip = Key::UserIp(username.to_string(), ip);
        let ip = Key::Ip(ip);
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
        }
        let mut wait = Duration::ZERO;
        for (key, limit) in [(&ip, per_ip), (&user_ip, per_user)] {
            if let Some(q) = map.get_mut(key) {
                slide(q, now, window);
                wait = wait.max(window_wait(q, limit, now, window));
            }
        }
        if let Some(q) = map.get_mut(&user) {
            slide(q, now, window);
            if let Some(last) = q.back() {
                let delay = backoff(q.len(), per_user, max_delay);
                wait = wait.max(delay.saturating_sub(now.saturating_duration_since(*last)));
            }
        }
        if wait > Duration::ZERO {
            // Whole seconds for Retry-After, never 0.
            return Err(wait.max(Duration::from_secs(1)));
        }
        for key in [&user, &user_ip, &ip] {
            map.entry(key.clone()).or_default().push_back(now);
        }
        Ok(Attempt {
            user,
            user_ip,
            ip,
            at: now,
        })
    }

    /// The attempt logged in: the username's back-off and its failures from
    /// this IP are forgotten, and this attempt no longer counts against the
    /// IP. (Its failures from other IPs stay: they are someone else's.)
    pub fn succeeded(&self, attempt: Attempt) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&attempt.user);
        map.remove(&attempt.user_ip);
        remove_at(&mut map, &attempt.ip, attempt.at);
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
        let ip = ip_key(ip);
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

    fn limits(per_user: u32, per_ip: u32) -> ThrottleLimits {
        ThrottleLimits {
            per_user,
            per_ip,
            window: Duration::from_secs(900),
            max_delay: Duration::from_secs(60),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn an_ip_is_limited_over_all_usernames_and_other_ips_are_not() {
        let t = LoginThrottle::new(limits(100, 3));
        let now = Instant::now();
        for name in ["alice", "bob", "carol"] {
            let _failed = t.begin_at(name, ip(1), now).expect("under the ip limit");
        }
        let wait = t
            .begin_at("dave", ip(1), now)
            .expect_err("4th failure from the ip");
        assert_eq!(
            wait,
            secs(900),
            "until the oldest failure leaves the window"
        );
        assert!(
            t.begin_at("dave", ip(2), now).is_ok(),
            "other ips are not affected"
        );
    }

    #[test]
    fn failures_from_one_ip_do_not_stop_the_owner_on_another() {
        let t = LoginThrottle::new(limits(5, 20));
        let now = Instant::now();
        // An attacker at ip 1 uses up their guesses on the admin account...
        for _ in 0..5 {
            let _failed = t.begin_at("admin", ip(1), now).expect("attacker guess");
        }
        // ...and is refused for it (even with the right password)...
        let wait = t.begin_at("admin", ip(1), now).expect_err("6th from ip 1");
        assert_eq!(wait, secs(900));
        // ...but the owner at ip 2 is not: no lock, no delay.
        let owner = t.begin_at("admin", ip(2), now).expect("the owner gets in");
        t.succeeded(owner);
        // The attacker's own refusal stands after the owner's success.
        assert!(t.begin_at("admin", ip(1), now).is_err());
        // Other usernames from ip 1 are still allowed (up to the ip limit).
        assert!(t.begin_at("bob", ip(1), now).is_ok());
    }

    #[test]
    fn many_ips_meet_a_doubling_capped_delay_not_a_lock() {
        let t = LoginThrottle::new(limits(2, 20));
        let mut now = Instant::now();
        let mut next_ip = 0u8;
        let mut attacker = |t: &LoginThrottle, now: Instant| {
            next_ip += 1;
            t.begin_at("admin", ip(next_ip), now)
        };
        // Two failures (from anywhere) are free.
        let _f = attacker(&t, now).expect("1");
        let _f = attacker(&t, now).expect("2");
        assert!(
            t.begin_at("admin", ip(200), now).is_ok(),
            "3rd: no delay yet"
        );
        // Beyond: 1 s after the 3rd failure, then 2, 4, 8, … capped at 60.
        let mut expected = Vec::new();
        let mut seen = Vec::new();
        for n in 0..9u32 {
            let delay = secs(1u64 << n).min(secs(60));
            expected.push(delay);
            let wait = attacker(&t, now).expect_err("within the delay");
            seen.push(wait);
            // Just before the delay ends: still refused, for what is left.
            let almost = now + delay - Duration::from_millis(1);
            assert!(attacker(&t, almost).is_err());
            now += delay;
            let _f = attacker(&t, now).expect("the delay is over");
        }
        assert_eq!(seen, expected);
        assert_eq!(*seen.last().expect("waits"), secs(60), "capped");
        // The owner, at an address with no failures, waits the same capped
        // delay, never longer, and a success clears the back-off.
        let wait = t.begin_at("admin", ip(250), now).expect_err("in the delay");
        assert_eq!(wait, secs(60));
        let owner = t.begin_at("admin", ip(250), now + wait).expect("after it");
        t.succeeded(owner);
        assert!(t.begin_at("admin", ip(251), now + wait).is_ok(), "cleared");
    }

    #[test]
    fn clients_are_keyed_by_ipv4_address_or_ipv6_64() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("test address");
        assert_eq!(ip_key(ip("10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(ip_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(ip_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_ne!(ip_key(ip("2001:db8:1:3::1")), ip_key(ip("2001:db8:1:2::1")));
    }

    #[test]
    fn the_backoff_doubles_from_one_second_and_saturates() {
        let max = secs(60);
        assert_eq!(backoff(0, 5, max), Duration::ZERO);
        assert_eq!(backoff(5, 5, max), Duration::ZERO);
        assert_eq!(backoff(6, 5, max), secs(1));
        assert_eq!(backoff(7, 5, max), secs(2));
        assert_eq!(backoff(11, 5, max), secs(32));
        assert_eq!(backoff(12, 5, max), secs(60));
        assert_eq!(backoff(usize::MAX, 0, max), secs(60));
        assert_eq!(backoff(usize::MAX, 0, Duration::MAX), secs(1u64 << 31));
    }

    #[test]
    fn success_forgets_the_username_failures_from_that_ip() {
        let t = LoginThrottle::new(limits(2, 100));
        let now = Instant::now();
        let _f = t.begin_at("alice", ip(1), now).expect("1");
        let ok = t.begin_at("alice", ip(1), now).expect("2");
        t.succeeded(ok);
        let _f = t.begin_at("alice", ip(1), now).expect("counter was reset");
    }

    #[test]
    fn ipv6_logins_count_per_64() {
        let t = LoginThrottle::new(limits(1, 100));
        let now = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("v6");
        let _f = t.begin_at("alice", a, now).expect("1");
        assert!(
            t.begin_at("alice", b, now).is_err(),
            "same /64, same client"
        );
    }

    #[test]
    fn failures_expire_after_the_window() {
        let t = LoginThrottle::new(ThrottleLimits {
            per_user: 1,
            per_ip: 10,
            window: Duration::from_secs(60),
            max_delay: Duration::from_secs(60),
        });
        let now = Instant::now();
        let _f = t.begin_at("alice", ip(1), now).expect("1");
        assert!(t.begin_at("alice", ip(1), now).is_err());
        assert!(
            t.begin_at("alice", ip(1), now + secs(60)).is_ok(),
            "the window slid past"
        );
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
