//! Connection limits: no one client can hold the server's connections.
//!
//! The rules, each a flag (see the README):
//!
//! - **HTTP** ([`accept`]): a connection has `--http-header-timeout` to send
//!   a whole request head, counted from when it opens and from the first byte
//!   of each later request; a keep-alive connection waiting for its next
//!   request is closed after `--http-idle-timeout`. Neither applies while a
//!   request is in flight (a blocking playlist reload or a download takes as
//!   long as it takes). At most `--http-max-connections-per-ip` connections
//!   are open per peer address; the next one gets a 503 and is closed.
//!   Proxies are not limited (peers in `--trusted-proxy`, or every peer with
//!   `--trust-forwarded-for`): they carry many clients, and limiting is then
//!   the proxy's job.
//! - **WebSockets** ([`Connections::admit_socket`]): at most
//!   `--ingest-max-connections-per-ip` ingest and
//!   `--events-max-connections-per-ip` events sockets per client IP, counted
//!   from the upgrade until the socket closes (close 4429 beyond). The client
//!   IP follows the proxy rules ([`Connections::client_ip`]). A socket whose
//!   session cookie is the stream owner's or an admin's is counted apart,
//!   under the same cap, so sockets from anyone else (on a shared address,
//!   say) can never use up the owner's. Every socket must send `hello`
//!   within `--ws-hello-timeout` (close 4408), which frees its place.
//!
//! - **API writes** ([`writes`]): at most `--api-write-burst` writes at once
//!   and `--api-write-rate` a minute, sustained, per client IP; beyond, a 429
//!   with `Retry-After` ([`Connections::admit_write`]).
//!
//! A client is an IPv4 address or an IPv6 /64
//! ([`crate::auth::throttle::ip_key`]). A cap of 0 turns it off.

pub mod accept;
pub mod writes;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;

use crate::analytics::client_ip::TrustedProxies;
use crate::auth::throttle::ip_key;

/// Timeouts and per-client caps; a cap of 0 (or a `None` timeout) is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to send a whole request head.
    pub header_timeout: Option<Duration>,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Option<Duration>,
    /// Open HTTP connections per peer address.
    pub http_per_ip: u32,
    /// Ingest sockets per client IP.
    pub ingest_per_ip: u32,
    /// Events sockets per client IP.
    pub events_per_ip: u32,
    /// Time a new socket has to send `hello`.
    pub hello_timeout: Duration,
    /// API writes per client.
    pub writes: writes::WriteLimits,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Some(Duration::from_secs(10)),
            idle_timeout: Some(Duration::from_secs(60)),
            http_per_ip: 64,
            ingest_per_ip: 8,
            events_per_ip: 64,
            hello_timeout: Duration::from_secs(10),
            writes: writes::WriteLimits::default(),
        }
    }
}

/// The two WebSocket kinds, each capped on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Socket {
    /// `WS /api/v1/streams/{id}/ingest`.
    Ingest,
    /// `WS /api/v1/streams/{id}/events`.
    Events,
}

impl Socket {
    fn label(self) -> &'static str {
        match self {
            Socket::Ingest => "ingest",
            Socket::Events => "events",
        }
    }
}

type Counts = Arc<Mutex<HashMap<IpAddr, u32>>>;

/// Open connections per client, under one cap.
#[derive(Debug)]
struct PerIp {
    cap: u32,
    counts: Counts,
}

impl PerIp {
    fn new(cap: u32) -> Self {
        PerIp {
            cap,
            counts: Arc::default(),
        }
    }

    fn acquire(&self, ip: IpAddr) -> Option<Permit> {
        if self.cap == 0 {
            return Some(Permit(None));
        }
        let key = ip_key(ip);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(key).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Permit(Some((self.counts.clone(), key))))
    }

    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> u32 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(&ip_key(ip)).copied().unwrap_or(0)
    }
}

/// One client's place under a cap; given back when dropped.
#[derive(Debug)]
#[must_use = "the place is given back when the permit is dropped"]
pub struct Permit(Option<(Counts, IpAddr)>);

impl Drop for Permit {
    fn drop(&mut self) {
        let Some((counts, key)) = self.0.take() else {
            return;
        };
        let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&key);
            }
        }
    }
}

/// What a WebSocket route decided before the upgrade (`http::sockets`).
#[derive(Debug)]
pub struct Admission {
    /// The session cookie, if it may be used (it passed the origin rule).
    pub session: Option<String>,
    /// The session is the stream owner's or an admin's.
    pub staff: bool,
    /// The socket's place, held while it is open; `None`: over the cap
    /// (the handler closes the socket with 4429).
    pub permit: Option<Permit>,
}

/// The connection limits and their counters, shared by the listener and the
/// socket handlers.
#[derive(Debug)]
pub struct Connections {
    /// The limits.
    pub limits: ConnectionLimits,
    proxies: TrustedProxies,
    trust_forwarded_for: bool,
    http: PerIp,
    ingest: PerIp,
    ingest_staff: PerIp,
    events: PerIp,
    events_staff: PerIp,
    writes: writes::WriteLimiter,
}

impl Connections {
    /// Counters for these limits. `proxies` and `trust_forwarded_for` are
    /// `--trusted-proxy` and `--trust-forwarded-for`.
    pub fn new(
        limits: ConnectionLimits,
        proxies: TrustedProxies,
        trust_forwarded_for: bool,
    ) -> Self {
        Connections {
            limits,
            proxies,
            trust_forwarded_for,
            http: PerIp::new(limits.http_per_ip),
            ingest: PerIp::new(limits.ingest_per_ip),
            ingest_staff: PerIp::new(limits.ingest_per_ip),
            events: PerIp::new(limits.events_per_ip),
            events_staff: PerIp::new(limits.events_per_ip),
            writes: writes::WriteLimiter::new(limits.writes),
        }
    }

    /// A place for a new HTTP connection from `peer`, or `None` at the cap.
    /// A proxy's connections are not limited.
    pub fn admit_http(&self, peer: IpAddr) -> Option<Permit> {
        if self.trust_forwarded_for || self.proxies.trusts(peer) {
            return Some(Permit(None));
        }
        let permit = self.http.acquire(peer);
        if permit.is_none() {
            metrics::counter!("onair_connections_refused_total", "kind" => "http").increment(1);
        }
        permit
    }

    /// One API write for client `ip`; `Err` holds the wait until the next
    /// (counted in `onair_api_writes_limited_total`).
    pub fn admit_write(&self, ip: IpAddr) -> Result<(), Duration> {
        let taken = self.writes.take(ip);
        if taken.is_err() {
            metrics::counter!("onair_api_writes_limited_total").increment(1);
        }
        taken
    }

    /// The client IP behind a request from `peer`: with `--trusted-proxy`,
    /// the nearest `X-Forwarded-For` hop that is not a trusted proxy (from a
    /// trusted peer only); with `--trust-forwarded-for`, the last entry;
    /// else the peer.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.proxies.0.is_empty() {
            self.proxies.client_ip(peer, headers)
        } else if self.trust_forwarded_for {
            crate::analytics::client_ip::forwarded_for(headers).unwrap_or(peer)
        } else {
            peer
        }
    }

    /// A place for a new socket of `kind` from client `ip`, or `None` at the
    /// cap. `staff` (the stream's owner or an admin, by session) counts apart.
    pub fn admit_socket(&self, kind: Socket, ip: IpAddr, staff: bool) -> Option<Permit> {
        let pool = match (kind, staff) {
            (Socket::Ingest, false) => &self.ingest,
            (Socket::Ingest, true) => &self.ingest_staff,
            (Socket::Events, false) => &self.events,
            (Socket::Events, true) => &self.events_staff,
        };
        let permit = pool.acquire(ip);
        if permit.is_none() {
            metrics::counter!("onair_connections_refused_total", "kind" => kind.label())
                .increment(1);
        }
        permit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn limits(cap: u32) -> ConnectionLimits {
        ConnectionLimits {
            http_per_ip: cap,
            ingest_per_ip: cap,
            events_per_ip: cap,
            ..ConnectionLimits::default()
        }
    }

    #[test]
    fn a_cap_counts_per_client_and_permits_give_places_back() {
        let c = Connections::new(limits(2), TrustedProxies::default(), false);
        let a = c.admit_http(ip("10.0.0.1")).expect("1");
        let b = c.admit_http(ip("10.0.0.1")).expect("2");
        assert!(
            c.admit_http(ip("10.0.0.1")).is_none(),
            "3rd from one address"
        );
        let other = c.admit_http(ip("10.0.0.2")).expect("another address");
        drop(a);
        let again = c.admit_http(ip("10.0.0.1")).expect("a place came back");
        drop((b, again, other));
        assert_eq!(c.http.open(ip("10.0.0.1")), 0);
        assert!(
            c.http.counts.lock().expect("lock").is_empty(),
            "no leftovers"
        );
        // An IPv6 /64 is one client.
        let _x = c.admit_http(ip("2001:db8::1")).expect("1");
        let _y = c.admit_http(ip("2001:db8::ffff:2")).expect("2");
        assert!(c.admit_http(ip("2001:db8::3")).is_none());
    }

    #[test]
    fn zero_is_no_cap() {
        let c = Connections::new(limits(0), TrustedProxies::default(), false);
        let held: Vec<Permit> = (0..1000)
            .map(|_| c.admit_http(ip("10.0.0.1")).expect("unlimited"))
            .collect();
        assert_eq!(held.len(), 1000);
        assert_eq!(c.http.open(ip("10.0.0.1")), 0, "nothing is counted");
    }

    #[test]
    fn proxies_are_not_capped_and_their_clients_are_for_sockets() {
        let proxies = TrustedProxies(vec!["10.0.0.0/8".parse().expect("net")]);
        let c = Connections::new(limits(1), proxies, false);
        let _held: Vec<Permit> = (0..10)
            .map(|_| c.admit_http(ip("10.1.1.1")).expect("a proxy"))
            .collect();
        let _one = c.admit_http(ip("203.0.113.5")).expect("a client");
        assert!(c.admit_http(ip("203.0.113.5")).is_none());

        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
        assert_eq!(c.client_ip(ip("10.1.1.1"), &h), ip("198.51.100.7"));
        // Not from a trusted proxy: the header is ignored.
        assert_eq!(c.client_ip(ip("203.0.113.5"), &h), ip("203.0.113.5"));
        let via_proxy = c.client_ip(ip("10.1.1.1"), &h);
        let _s = c
            .admit_socket(Socket::Events, via_proxy, false)
            .expect("1st");
        assert!(c.admit_socket(Socket::Events, via_proxy, false).is_none());

        let all = Connections::new(limits(1), TrustedProxies::default(), true);
        assert_eq!(all.client_ip(ip("127.0.0.1"), &h), ip("198.51.100.7"));
        let _a = all.admit_http(ip("127.0.0.1")).expect("1");
        let _b = all
            .admit_http(ip("127.0.0.1"))
            .expect("behind a proxy: no cap");
    }

    #[test]
    fn each_socket_kind_and_the_staff_count_apart() {
        let c = Connections::new(limits(1), TrustedProxies::default(), false);
        let me = ip("192.0.2.1");
        let _viewer = c.admit_socket(Socket::Events, me, false).expect("viewer");
        assert!(c.admit_socket(Socket::Events, me, false).is_none());
        let _owner = c
            .admit_socket(Socket::Events, me, true)
            .expect("the owner's place is their own");
        let _ingest = c.admit_socket(Socket::Ingest, me, false).expect("ingest");
        let _studio = c.admit_socket(Socket::Ingest, me, true).expect("studio");
        assert!(c.admit_socket(Socket::Ingest, me, true).is_none());
    }
}
