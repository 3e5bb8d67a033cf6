//! The part of libsrt's C API used here (`srt/srt.h` of libsrt 1.5,
//! Debian's `libsrt1.5-gnutls`).

#![allow(non_camel_case_types, clippy::upper_case_acronyms)]

use std::ffi::{c_char, c_int, c_void};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

pub type SRTSOCKET = i32;
pub const SRT_INVALID_SOCK: SRTSOCKET = -1;
pub const SRT_ERROR: c_int = -1;
/// `SRTS_LISTENING` of `SRT_SOCKSTATUS`.
pub const SRTS_LISTENING: c_int = 3;
/// `SRTS_BROKEN`; `CLOSING`, `CLOSED` and `NONEXIST` follow it.
pub const SRTS_BROKEN: c_int = 6;

/// `SRT_ETIMEOUT` (`SRT_EMN(AGAIN, XMTIMEOUT)`).
pub const SRT_ETIMEOUT: c_int = 6003;

pub const SRTO_RCVSYN: c_int = 2;
pub const SRTO_RCVTIMEO: c_int = 14;
pub const SRTO_LATENCY: c_int = 23;
pub const SRTO_PASSPHRASE: c_int = 26;

pub const REJX_BAD_REQUEST: c_int = 1400;
pub const REJX_UNAUTHORIZED: c_int = 1401;
pub const REJX_OVERLOAD: c_int = 1402;
pub const REJX_NOTFOUND: c_int = 1404;
pub const REJX_BAD_MODE: c_int = 1405;
pub const REJX_CONFLICT: c_int = 1409;
pub const REJX_NOTSUP_MEDIA: c_int = 1415;
pub const REJX_ISE: c_int = 1500;
pub const REJX_DOWN: c_int = 1503;

pub type ListenCallback = extern "C" fn(
    opaque: *mut c_void,
    ns: SRTSOCKET,
    hs_version: c_int,
    peer: *const libc::sockaddr,
    stream_id: *const c_char,
) -> c_int;

// The libsrt that Debian's libavformat links (its SRT protocol) is the
// GnuTLS build: bind that same library, by its soname, so the process
// holds one libsrt (two builds in one process share C++ symbols and
// crash at exit). No -dev package is needed.
#[link(name = "libsrt-gnutls.so.1.5", kind = "dylib", modifiers = "+verbatim")]
extern "C" {
    pub fn srt_startup() -> c_int;
    pub fn srt_setloglevel(level: c_int);
    pub fn srt_cleanup() -> c_int;
    pub fn srt_create_socket() -> SRTSOCKET;
    pub fn srt_bind_acquire(u: SRTSOCKET, udp: c_int) -> c_int;
    pub fn srt_listen(u: SRTSOCKET, backlog: c_int) -> c_int;
    pub fn srt_accept(u: SRTSOCKET, addr: *mut libc::sockaddr, len: *mut c_int) -> SRTSOCKET;
    pub fn srt_listen_callback(u: SRTSOCKET, hook: ListenCallback, opaque: *mut c_void) -> c_int;
    pub fn srt_close(u: SRTSOCKET) -> c_int;
    pub fn srt_setsockflag(u: SRTSOCKET, opt: c_int, value: *const c_void, len: c_int) -> c_int;
    pub fn srt_recvmsg(u: SRTSOCKET, buf: *mut c_char, len: c_int) -> c_int;
    pub fn srt_getlasterror_str() -> *const c_char;
    pub fn srt_getlasterror(errno: *mut c_int) -> c_int;
    pub fn srt_getsockstate(u: SRTSOCKET) -> c_int;
    pub fn srt_setrejectreason(u: SRTSOCKET, value: c_int) -> c_int;
}

/// Starts libsrt once per process.
pub fn startup() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    // SAFETY: srt_startup is safe to call; Once calls it once.
    STARTED.call_once(|| unsafe {
        srt_startup();
        // Critical only (syslog's LOG_CRIT): its warnings and errors are
        // about callers refused and sockets closed, logged here already.
        srt_setloglevel(2);
        // libsrt's threads must stop before its globals are destroyed
        // at exit, or the process crashes on its way out.
        libc::atexit(cleanup);
    });
}

extern "C" fn cleanup() {
    // SAFETY: called once, at exit, after srt_startup.
    unsafe {
        srt_cleanup();
    }
}

/// The socket address at `addr` (null, or an IPv4 or IPv6 address).
///
/// # Safety
/// `addr` is null or points to a socket address of its family's size.
pub unsafe fn socket_addr(addr: *const libc::sockaddr) -> Option<SocketAddr> {
    if addr.is_null() {
        return None;
    }
    match c_int::from((*addr).sa_family) {
        libc::AF_INET => {
            let a = &*(addr as *const libc::sockaddr_in);
            let ip = u32::from_be(a.sin_addr.s_addr);
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip.into(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            let a = &*(addr as *const libc::sockaddr_in6);
            Some(SocketAddr::V6(SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
