//! The client IP for analytics: the peer address, or, when the peer is a
//! trusted proxy (`--trusted-proxy`), the nearest `X-Forwarded-For` entry
//! that is not itself a trusted proxy. A header from anyone else is ignored,
//! so a viewer cannot claim to be somewhere else.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;

/// An address or a network (`10.0.0.0/8`, `::1`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

/// Why a `--trusted-proxy` value is not an address or network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or network (like 10.0.0.1 or 10.0.0.0/8): {0}")]
pub struct BadNet(pub String);

impl FromStr for Net {
    type Err = BadNet;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadNet(s.to_string());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Net { addr, prefix })
    }
}

impl Net {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let shift = 32 - u32::from(self.prefix);
                let mask = if shift == 32 { 0 } else { u32::MAX << shift };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let shift = 128 - u32::from(self.prefix);
                let mask = if shift == 128 { 0 } else { u128::MAX << shift };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The last `X-Forwarded-For` entry: the address our proxy saw.
pub fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|s| s.trim().parse::<IpAddr>().ok())
}

/// The proxies whose `X-Forwarded-For` counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<Net>);

impl TrustedProxies {
    /// Whether `ip` is one of these proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        // Right to left: each hop appended the address it saw.
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .map(canonical)
            .collect();
        for hop in hops.iter().rev() {
            if !self.trusts(*hop) {
                return *hop;
            }
        }
        hops.first().copied().unwrap_or(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn networks_parse_and_match() {
        let n: Net = "10.0.0.0/8".parse().expect("net");
        assert!(n.contains(ip("10.200.1.2")));
        assert!(!n.contains(ip("11.0.0.1")));
        assert!(n.contains(ip("::ffff:10.0.0.1")));
        let one: Net = "127.0.0.1".parse().expect("addr");
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        let all: Net = "0.0.0.0/0".parse().expect("all");
        assert!(all.contains(ip("8.8.8.8")));
        let v6: Net = "fd00::/8".parse().expect("v6");
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!("10.0.0.0/33".parse::<Net>().is_err());
        assert!("proxy.local".parse::<Net>().is_err());
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_peers() {
        let trusted = TrustedProxies(vec![
            "127.0.0.1".parse().expect("net"),
            "10.0.0.0/8".parse().expect("net"),
        ]);
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 81.2.69.142, 10.1.1.1"),
        );
        // From a trusted proxy: the nearest untrusted hop (the spoofed 6.6.6.6
        // that the client put first is not it).
        assert_eq!(trusted.client_ip(ip("127.0.0.1"), &h), ip("81.2.69.142"));
        // From anyone else: the header is ignored.
        assert_eq!(trusted.client_ip(ip("203.0.113.9"), &h), ip("203.0.113.9"));
        assert_eq!(
            TrustedProxies::default().client_ip(ip("127.0.0.1"), &h),
            ip("127.0.0.1")
        );
        // No header, or garbage: the peer.
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
        let mut junk = HeaderMap::new();
        junk.append("x-forwarded-for", HeaderValue::from_static("not an ip"));
        assert_eq!(trusted.client_ip(ip("127.0.0.1"), &junk), ip("127.0.0.1"));
    }
}
