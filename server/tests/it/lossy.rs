//! A lossy, slow network link between two network namespaces that the test
//! makes (and removes on drop, also when the test fails): the server's
//! sockets are bound in one, the encoder runs in the other, and every IP
//! packet between them (UDP and TCP alike) crosses a link that loses
//! [`LOSS_PERCENT`] of them and delays each by [`ONE_WAY`], both ways.
//!
//! With `tc netem` the link is a veth pair with netem on both ends. Where
//! the kernel has no netem (this machine's does not), each namespace gets a
//! TUN device instead, and a relay in this process carries the raw IP
//! packets between the two: it drops a fixed pseudo-random sequence and
//! holds each packet for [`ONE_WAY`] — netem in user space, for any
//! protocol. Needs root (CAP_NET_ADMIN); [`LossyLink::new`] says why not.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The server's address on the link.
pub const SERVER_IP: &str = "10.77.0.1";
/// The encoder's address on the link.
pub const CALLER_IP: &str = "10.77.0.2";
/// One way of the link: 40 ms, so the round trip is 80 ms.
pub const ONE_WAY: Duration = Duration::from_millis(40);
/// Packets lost in each direction, in percent.
pub const LOSS_PERCENT: u64 = 5;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two namespaces and the lossy link between them.
pub struct LossyLink {
    /// Where the server's sockets go ([`bind_udp_in`], [`bind_tcp_in`]).
    pub server_ns: String,
    /// Where the encoder runs (`ip netns exec`).
    pub caller_ns: String,
    /// What carries the packets, for the test's log.
    pub how: String,
    stop: Arc<AtomicBool>,
    relay: Vec<std::thread::JoinHandle<()>>,
}

impl LossyLink {
    /// Makes the namespaces and the link; `Err` if this process may not
    /// (no CAP_NET_ADMIN).
    pub fn new(tag: &str) -> Result<LossyLink, String> {
        let n = std::process::id() % 100_000;
        let mut link = LossyLink {
            server_ns: format!("onair-{tag}-s{n}"),
            caller_ns: format!("onair-{tag}-c{n}"),
            how: String::new(),
            stop: Arc::new(AtomicBool::new(false)),
            relay: Vec::new(),
        };
        ip(&["netns", "add", &link.server_ns])?;
        // From here on, Drop removes what exists.
        ip(&["netns", "add", &link.caller_ns])?;
        for ns in [&link.server_ns, &link.caller_ns] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let (s_if, c_if) = (format!("oas{n}"), format!("oac{n}"));
        ip(&["link", "add", &s_if, "type", "veth", "peer", "name", &c_if])?;
        link.address(&s_if, &c_if)?;
        if link.netem(&s_if, &c_if) {
            link.how = format!("tc netem, {LOSS_PERCENT}% loss and {ONE_WAY:?} each way");
            return Ok(link);
        }
        // No netem: the veth goes, TUN devices and the relay come.
        ip(&["-n", &link.server_ns, "link", "del", &s_if])?;
        let (s_tun, c_tun) = (format!("ots{n}"), format!("otc{n}"));
        for dev in [&s_tun, &c_tun] {
            ip(&["tuntap", "add", "dev", dev, "mode", "tun"])?;
        }
        link.address(&s_tun, &c_tun)?;
        let s_fd = open_tun(&link.server_ns, &s_tun)?;
        let c_fd = open_tun(&link.caller_ns, &c_tun)?;
        let s_fd = Arc::new(s_fd);
        let c_fd = Arc::new(c_fd);
        link.relay.extend(relay(
            s_fd.clone(),
            c_fd.clone(),
            0x9e37_79b9_7f4a_7c15,
            link.stop.clone(),
        ));
        link.relay
            .extend(relay(c_fd, s_fd, 0xd1b5_4a32_d192_ed03, link.stop.clone()));
        link.how = format!(
            "this kernel has no netem: TUN devices and a relay in user space, \
             {LOSS_PERCENT}% loss and {ONE_WAY:?} each way"
        );
        Ok(link)
    }

    /// Moves the two ends into their namespaces, addresses them, brings
    /// them up.
    fn address(&self, server_dev: &str, caller_dev: &str) -> Result<(), String> {
        for (ns, dev, addr) in [
            (&self.server_ns, server_dev, SERVER_IP),
            (&self.caller_ns, caller_dev, CALLER_IP),
        ] {
            ip(&["link", "set", dev, "netns", ns])?;
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(())
    }

    /// Adds loss and delay to both ends of the veth with `tc netem`; false
    /// if this kernel has no netem.
    fn netem(&self, server_dev: &str, caller_dev: &str) -> bool {
        [(&self.server_ns, server_dev), (&self.caller_ns, caller_dev)]
            .iter()
            .all(|(ns, dev)| {
                std::process::Command::new("ip")
                    .args(["netns", "exec", ns, "tc", "qdisc", "add", "dev", dev])
                    .args(["root", "netem", "loss", &format!("{LOSS_PERCENT}%")])
                    .args(["delay", &format!("{}ms", ONE_WAY.as_millis())])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
    }
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.relay.drain(..) {
            let _ = t.join();
        }
        // Removing a namespace removes the devices in it.
        for ns in [&self.server_ns, &self.caller_ns] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Runs `f` on a thread that entered network namespace `ns` (sockets and
/// devices it opens stay in that namespace).
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("the namespace");
        // SAFETY: setns on this thread only, with a namespace descriptor.
        let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("namespace thread")
}

/// A UDP socket bound to `addr` inside namespace `ns`.
pub fn bind_udp_in(ns: &str, addr: &str) -> std::net::UdpSocket {
    let addr = addr.to_string();
    in_ns(ns, move || {
        std::net::UdpSocket::bind(addr).expect("bind in the namespace")
    })
}

/// A TCP listener bound to `addr` inside namespace `ns`, for tokio.
pub fn bind_tcp_in(ns: &str, addr: &str) -> tokio::net::TcpListener {
    let addr = addr.to_string();
    let std = in_ns(ns, move || {
        std::net::TcpListener::bind(addr).expect("bind in the namespace")
    });
    std.set_nonblocking(true).expect("nonblocking");
    tokio::net::TcpListener::from_std(std).expect("tokio")
}

/// Attaches to TUN device `dev` in namespace `ns` (raw IP packets, no
/// packet-information header).
fn open_tun(ns: &str, dev: &str) -> Result<OwnedFd, String> {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const IFF_TUN: libc::c_short = 0x0001;
    const IFF_NO_PI: libc::c_short = 0x1000;
    let dev = dev.to_string();
    in_ns(ns, move || {
        // SAFETY: open(2) of a path; the descriptor is owned below.
        let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR) };
        if fd < 0 {
            return Err(format!("/dev/net/tun: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a descriptor just opened and owned by no one else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // struct ifreq: the name (16 bytes), then the flags (a short).
        let mut req = [0u8; 40];
        req[..dev.len()].copy_from_slice(dev.as_bytes());
        req[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
        // SAFETY: TUNSETIFF reads and writes a struct ifreq, 40 bytes here.
        if unsafe { libc::ioctl(fd, TUNSETIFF, req.as_mut_ptr()) } < 0 {
            return Err(format!(
                "TUNSETIFF {dev}: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(owned)
    })
}

/// One direction of the user-space link: packets read from `from` are
/// dropped ([`LOSS_PERCENT`], xorshift64 from `seed`) or written to `to`
/// [`ONE_WAY`] later, in order (every packet waits as long, so a channel
/// keeps them in order). Two threads, until `stop`.
fn relay(
    from: Arc<OwnedFd>,
    to: Arc<OwnedFd>,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> [std::thread::JoinHandle<()>; 2] {
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut x = seed;
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::SeqCst) {
                let mut poll = libc::pollfd {
                    fd: from.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one pollfd; a read into a buffer of its length.
                if unsafe { libc::poll(&mut poll, 1, 50) } <= 0 {
                    continue;
                }
                let n = unsafe { libc::read(from.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                let Ok(n) = usize::try_from(n) else {
                    return;
                };
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x % 100 >= LOSS_PERCENT {
                    let _ = tx.send((Instant::now() + ONE_WAY, buf[..n].to_vec()));
                }
            }
        })
    };
    let writer = std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let Ok((at, p)) = rx.recv_timeout(Duration::from_millis(50)) else {
                continue;
            };
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            // SAFETY: a write of a whole packet from its buffer.
            unsafe { libc::write(to.as_raw_fd(), p.as_ptr().cast(), p.len()) };
        }
    });
    [reader, writer]
}
