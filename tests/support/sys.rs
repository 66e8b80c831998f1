//! Socket calls std does not offer, for the loopback servers of the tests
//! (Linux): a TCP port bound but not listening (connects to it are refused,
//! and no other socket can take it), listening on it later without ever
//! releasing it, and a capped receive buffer. The root package has no `libc`
//! dependency, so the few C functions are declared here; std links the C
//! library that defines them.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::raw::{c_int, c_void};

extern "C" {
    fn socket(domain: c_int, kind: c_int, protocol: c_int) -> c_int;
    fn bind(fd: c_int, addr: *const c_void, len: u32) -> c_int;
    fn listen(fd: c_int, backlog: c_int) -> c_int;
    fn setsockopt(fd: c_int, level: c_int, name: c_int, value: *const c_void, len: u32) -> c_int;
    fn getsockopt(fd: c_int, level: c_int, name: c_int, value: *mut c_void, len: *mut u32)
        -> c_int;
    fn getsockname(fd: c_int, addr: *mut c_void, len: *mut u32) -> c_int;
}

// Linux values (x86, ARM, RISC-V; the generic socket ABI).
const AF_INET: c_int = 2;
const SOCK_STREAM: c_int = 1;
const SOCK_CLOEXEC: c_int = 0o2_000_000;
const SOL_SOCKET: c_int = 1;
const SO_REUSEADDR: c_int = 2;
const SO_RCVBUF: c_int = 8;

/// `struct sockaddr_in`.
#[repr(C)]
struct SockaddrIn {
    family: u16,
    /// Network byte order.
    port: u16,
    /// Network byte order.
    addr: u32,
    zero: [u8; 8],
}

fn check(what: &str, result: c_int) -> io::Result<c_int> {
    if result < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(result)
    }
}

fn set_int(fd: &OwnedFd, name: c_int, value: c_int, what: &str) -> io::Result<()> {
    // SAFETY: a valid socket and a pointer to a c_int of the given size.
    let result = unsafe {
        setsockopt(
            fd.as_raw_fd(),
            SOL_SOCKET,
            name,
            (&value as *const c_int).cast(),
            std::mem::size_of::<c_int>() as u32,
        )
    };
    check(what, result).map(drop)
}

/// A loopback TCP port held by a socket that is bound but does not listen:
/// connecting to it is refused at once (a closed port, a server that is
/// down), yet no other socket can bind it, so a test can later
/// [`listen`](ReservedPort::listen) on exactly this port without a window in
/// which a parallel test could take it.
#[derive(Debug)]
pub struct ReservedPort {
    fd: OwnedFd,
    port: u16,
}

impl ReservedPort {
    /// A free port of 127.0.0.1, chosen by the kernel. Bound without
    /// `SO_REUSEADDR`: no other socket can share it.
    pub fn new() -> io::Result<ReservedPort> {
        Self::bind(0, false)
    }

    /// 127.0.0.1:`port` again, e.g. the port of a server that was just
    /// stopped. Bound with `SO_REUSEADDR`, which the connections the old
    /// server closed (in TIME_WAIT) require; a socket without it, and any
    /// ephemeral `bind(0)`, still cannot take the port.
    pub fn on(port: u16) -> io::Result<ReservedPort> {
        Self::bind(port, true)
    }

    fn bind(port: u16, reuse: bool) -> io::Result<ReservedPort> {
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let raw = check("socket", unsafe {
            socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)
        })?;
        // SAFETY: `raw` is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if reuse {
            set_int(&fd, SO_REUSEADDR, 1, "SO_REUSEADDR")?;
        }
        let addr = SockaddrIn {
            family: AF_INET as u16,
            port: port.to_be(),
            addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
            zero: [0; 8],
        };
        // SAFETY: a valid socket and a sockaddr_in of the given size.
        check(&format!("bind 127.0.0.1:{port}"), unsafe {
            bind(
                fd.as_raw_fd(),
                (&addr as *const SockaddrIn).cast(),
                std::mem::size_of::<SockaddrIn>() as u32,
            )
        })?;
        let mut bound = SockaddrIn {
            family: 0,
            port: 0,
            addr: 0,
            zero: [0; 8],
        };
        let mut len = std::mem::size_of::<SockaddrIn>() as u32;
        // SAFETY: a valid socket, a sockaddr_in buffer and its length.
        check("getsockname", unsafe {
            getsockname(
                fd.as_raw_fd(),
                (&mut bound as *mut SockaddrIn).cast(),
                &mut len,
            )
        })?;
        Ok(ReservedPort {
            fd,
            port: u16::from_be(bound.port),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Caps the receive buffer of the connections the listener will accept
    /// (they inherit it), so that a server that stops reading blocks its
    /// client after about this many bytes (plus the client's send buffer)
    /// whatever the host's `net.ipv4.tcp_rmem`. Returns the size the kernel
    /// granted (Linux doubles the request for its bookkeeping).
    pub fn cap_receive_buffer(&self, bytes: usize) -> io::Result<usize> {
        let request = c_int::try_from(bytes).unwrap_or(c_int::MAX);
        set_int(&self.fd, SO_RCVBUF, request, "SO_RCVBUF")?;
        let mut granted: c_int = 0;
        let mut len = std::mem::size_of::<c_int>() as u32;
        // SAFETY: a valid socket and a c_int buffer with its length.
        check("getsockopt SO_RCVBUF", unsafe {
            getsockopt(
                self.fd.as_raw_fd(),
                SOL_SOCKET,
                SO_RCVBUF,
                (&mut granted as *mut c_int).cast(),
                &mut len,
            )
        })?;
        Ok(granted as usize)
    }

    /// Starts listening on the reserved port (it is never released).
    /// `backlog` 0 leaves room for a single pending connection.
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        let backlog = c_int::try_from(backlog).unwrap_or(c_int::MAX);
        // SAFETY: a valid, bound socket.
        check("listen", unsafe { listen(self.fd.as_raw_fd(), backlog) })?;
        Ok(TcpListener::from(self.fd))
    }
}
