//! The rate limit on API writes, per client (sans IO: the time is passed in).
//!
//! Each client (an IPv4 address or an IPv6 /64, [`ip_key`]) has a token
//! bucket: `burst` writes at once, refilled at `per_minute` writes a minute.
//! A write beyond it is refused with the time until the next token. The
//! arithmetic is in integers: a write costs [`COST`] units and the bucket
//! gains `per_minute` units a millisecond, so no rate rounds to zero.
//!
//! Buckets are in memory, per process; with several nodes behind a load
//! balancer each node counts on its own (as the login throttle does).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::throttle::ip_key;

/// What one write costs, in bucket units: a minute in milliseconds, so that
/// a bucket refilled at `per_minute` units a millisecond gains `per_minute`
/// writes a minute.
pub const COST: u64 = 60_000;

/// Above this many clients, full buckets are swept on the next write.
const SWEEP_ABOVE: usize = 10_000;

/// The limit; `per_minute == 0` turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLimits {
    /// Writes a minute per client, sustained.
    pub per_minute: u32,
    /// Writes a client may make at once.
    pub burst: u32,
}

impl Default for WriteLimits {
    fn default() -> Self {
        WriteLimits {
            per_minute: 120,
            burst: 60,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    units: u64,
    at: Instant,
}

/// Every client's bucket.
#[derive(Debug)]
pub struct WriteLimiter {
    limits: WriteLimits,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl WriteLimiter {
    /// Buckets under `limits`.
    pub fn new(limits: WriteLimits) -> Self {
        WriteLimiter {
            limits,
            buckets: Mutex::default(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> WriteLimits {
        self.limits
    }

    fn capacity(&self) -> u64 {
        u64::from(self.limits.burst.max(1)).saturating_mul(COST)
    }

    /// A bucket's units at `now`, refilled since its last write.
    fn refilled(&self, bucket: Bucket, now: Instant) -> u64 {
        let rate = u64::from(self.limits.per_minute);
        let capacity = self.capacity();
        // A clock that went back refills nothing; a long pause fills the
        // bucket, and no product of a huge pause overflows.
        let ms = now.saturating_duration_since(bucket.at).as_millis();
        let ms = u64::try_from(ms).unwrap_or(u64::MAX);
        bucket
            .units
            .saturating_add(ms.saturating_mul(rate))
            .min(capacity)
    }

    /// Takes one write for client `ip` at `now`; `Err` holds the wait until
    /// the next write is allowed.
    pub fn take_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let rate = u64::from(self.limits.per_minute);
        if rate == 0 {
            return Ok(());
        }
        let capacity = self.capacity();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > SWEEP_ABOVE {
            buckets.retain(|_, b| self.refilled(*b, now) < capacity);
        }
        let bucket = buckets.entry(ip_key(ip)).or_insert(Bucket {
            units: capacity,
            at: now,
        });
        let units = self.refilled(*bucket, now);
        // The bucket's time moves only forward.
        let at = bucket.at.max(now);
        if units >= COST {
            *bucket = Bucket {
                units: units - COST,
                at,
            };
            return Ok(());
        }
        *bucket = Bucket { units, at };
        let missing = COST - units;
        Err(Duration::from_millis(missing.div_ceil(rate)))
    }

    /// [`WriteLimiter::take_at`] now.
    pub fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        self.take_at(ip, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn a_burst_then_the_sustained_rate_with_the_wait_stated() {
        let limiter = WriteLimiter::new(WriteLimits {
            per_minute: 60,
            burst: 3,
        });
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(limiter.take_at(a, t0), Ok(()));
        }
        // One a second: the next one is a second away.
        assert_eq!(limiter.take_at(a, t0), Err(Duration::from_secs(1)));
        assert_eq!(
            limiter.take_at(a, t0 + Duration::from_millis(400)),
            Err(Duration::from_millis(600))
        );
        assert_eq!(limiter.take_at(a, t0 + Duration::from_secs(1)), Ok(()));
        assert!(limiter.take_at(a, t0 + Duration::from_secs(1)).is_err());
        // Another client is not touched.
        assert_eq!(limiter.take_at(ip("192.0.2.2"), t0), Ok(()));
        // A long pause refills to the burst, no more.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limiter.take_at(a, later), Ok(()));
        }
        assert!(limiter.take_at(a, later).is_err());
    }

    #[test]
    fn one_ipv6_host_is_one_client_and_zero_turns_it_off() {
        let limiter = WriteLimiter::new(WriteLimits {
            per_minute: 1,
            burst: 1,
        });
        let t0 = Instant::now();
        assert_eq!(limiter.take_at(ip("2001:db8::1"), t0), Ok(()));
        // The same /64: the same bucket. A minute for one write.
        assert_eq!(
            limiter.take_at(ip("2001:db8::ffff"), t0),
            Err(Duration::from_secs(60))
        );
        let off = WriteLimiter::new(WriteLimits {
            per_minute: 0,
            burst: 1,
        });
        for _ in 0..1000 {
            assert_eq!(off.take_at(ip("192.0.2.9"), t0), Ok(()));
        }
    }

    #[test]
    fn a_clock_that_goes_back_or_a_huge_rate_breaks_nothing() {
        let limiter = WriteLimiter::new(WriteLimits {
            per_minute: u32::MAX,
            burst: u32::MAX,
        });
        let t0 = Instant::now() + Duration::from_secs(10);
        let a = ip("192.0.2.3");
        assert_eq!(limiter.take_at(a, t0), Ok(()));
        assert_eq!(limiter.take_at(a, t0 - Duration::from_secs(5)), Ok(()));
        let tight = WriteLimiter::new(WriteLimits {
            per_minute: 60,
            burst: 1,
        });
        assert_eq!(tight.take_at(a, t0), Ok(()));
        // Earlier than the last write: nothing refilled, the wait is whole.
        assert_eq!(
            tight.take_at(a, t0 - Duration::from_secs(5)),
            Err(Duration::from_secs(1))
        );
        assert_eq!(tight.take_at(a, t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn idle_clients_are_swept_when_there_are_many() {
        let limiter = WriteLimiter::new(WriteLimits {
            per_minute: 60,
            burst: 2,
        });
        let t0 = Instant::now();
        for i in 0..=SWEEP_ABOVE as u32 {
            let a = IpAddr::from(i.to_be_bytes());
            assert_eq!(limiter.take_at(a, t0), Ok(()));
        }
        // A minute later every bucket is full again: the next write sweeps.
        assert_eq!(
            limiter.take_at(ip("198.51.100.1"), t0 + Duration::from_secs(60)),
            Ok(())
        );
        let kept = limiter.buckets.lock().expect("lock").len();
        assert_eq!(kept, 1, "only the new client is kept");
    }
}
