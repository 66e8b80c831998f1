//! One persistent TCP connection.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::resolve::Resolver;
use super::{deadline_passed, first_address, host_port, SendError, Transport};

/// How much earlier than the socket's timeout a write's limit must end for
/// the socket's timeout to be shortened for it.
const SHORTENING_SLACK: Duration = Duration::from_millis(10);

/// Shortest timeout: the socket rejects a zero write timeout.
pub(super) const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// Sends lines over one persistent TCP connection.
///
/// The sender opens the connection before the first send, reuses it for
/// every later one, and re-opens it after any error, resolving the host
/// again. Before each write the transport checks, without blocking, that
/// the server has not closed the connection, so lines are not written into
/// a connection that is already dead. No connect or write takes longer than
/// the timeout or goes past the deadline of its call, however slowly the
/// server reads.
///
/// **Addresses.** The host is resolved by the system's resolver, within the
/// timeout (a name server that does not answer fails the connect with a
/// "resolution timed out" error after at most the timeout), and every
/// address of the answer is tried in the resolver's order until one
/// accepts. While connected, a host name is resolved again once per
/// [`dns_refresh`](TcpTransport::dns_refresh) period (default 60 s), by
/// the first send after the period: when the connected address is no
/// longer in the answer, that send opens a connection to the new address,
/// closes the old one (everything written to it was written whole) and
/// writes there; when no new address accepts, it stays on the old one
/// until the next period. A numeric host is never resolved again. The
/// address in use is logged at INFO when it changes
/// (`graphite.example.com: now 10.0.0.7:2003, was 10.0.0.5:2003`).
///
/// Used on its own, [`send`](Transport::send) connects when there is no
/// connection.
#[derive(Debug)]
pub struct TcpTransport {
    host: String,
    port: u16,
    timeout: Duration,
    stream: Option<TcpStream>,
    resolver: Resolver,
}

impl TcpTransport {
    /// A transport to `host:port`; `timeout` bounds each connect and each
    /// write (at least 1 ms: a zero timeout is taken as 1 ms).
    pub fn new(host: impl Into<String>, port: u16, timeout: Duration) -> TcpTransport {
        let host = host.into();
        let timeout = timeout.max(MIN_TIMEOUT);
        TcpTransport {
            resolver: Resolver::new(&host, port, timeout),
            host,
            port,
            timeout,
            stream: None,
        }
    }

    /// Resolves the host again every `period` while connected, and moves
    /// to a new address (default 60 s). `Duration::ZERO`: only when
    /// connecting; under 1 s: 1 s. Has no effect for a numeric host.
    pub fn dns_refresh(mut self, period: Duration) -> TcpTransport {
        self.resolver.set_refresh(period);
        self
    }

    /// Whether a connection is currently open.
    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    /// The time a call may take: the timeout, cut short by `deadline`.
    fn limit(&self, deadline: Instant) -> io::Result<Duration> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(deadline_passed());
        }
        Ok(left.min(self.timeout))
    }

    /// A connection to the first of `addrs` that accepts, within `limit`,
    /// set up for writing.
    fn open(&self, addrs: &[SocketAddr], limit: Duration) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = connect_within(&self.host, addrs, limit)?;
        stream.set_write_timeout(Some(self.timeout))?;
        stream.set_nodelay(true)?;
        Ok((stream, addr))
    }

    /// Moves to the new address when a refresh found the host elsewhere
    /// (see the type's docs). The connect gets at most half the time left,
    /// so that the write still has the other half when the new address
    /// does not answer and the old connection stays.
    fn follow(&mut self, deadline: Instant) {
        let Some(addrs) = self.resolver.moved(deadline) else {
            return;
        };
        let opened = self
            .limit(deadline)
            .and_then(|limit| self.open(&addrs, limit / 2));
        match opened {
            Ok((stream, addr)) => {
                self.close();
                self.stream = Some(stream);
                self.resolver.connected(addr);
            }
            Err(e) => self.resolver.stay(&addrs, &e),
        }
    }
}

/// Connects to the first of `addrs` (what `host` resolves to) that accepts,
/// within `limit` in all: each address gets the time the ones before it
/// left, so unreachable addresses cannot stretch one connect to several
/// timeouts. Once no time is left, the remaining addresses fail with
/// `TimedOut` without being tried. Returns the connection and its address.
pub(super) fn connect_within(
    host: &str,
    addrs: impl ToSocketAddrs,
    limit: Duration,
) -> io::Result<(TcpStream, SocketAddr)> {
    let deadline = Instant::now() + limit;
    first_address(host, addrs, |addr| {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // Time is up: the remaining addresses fail at once, untried.
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {host} timed out after {limit:?}"),
            ));
        }
        TcpStream::connect_timeout(&addr, left).map(|stream| (stream, addr))
    })
}

/// Writes all of `buf` within `limit` in total. The socket's write timeout
/// (`timeout`, set at connect) bounds each `write` call; a server that reads
/// a little at a time must not stretch one send to many timeouts. On
/// failure, returns how many bytes were written.
pub(super) fn write_all_within(
    stream: &mut TcpStream,
    mut buf: &[u8],
    timeout: Duration,
    limit: Duration,
) -> Result<(), (usize, io::Error)> {
    let total = buf.len();
    let started = Instant::now();
    let mut shortened = false;
    // The socket's timeout is `timeout`; a limit only slightly shorter (a
    // deadline of "now + timeout" set a moment ago, the usual case) is not
    // worth two setsockopt calls per write: it overruns by at most
    // `SHORTENING_SLACK`.
    if limit + SHORTENING_SLACK < timeout {
        shortened = true;
        // `limit` may be zero: the connect can use up all of the send's time.
        if let Err(e) = stream.set_write_timeout(Some(limit.max(MIN_TIMEOUT))) {
            return Err((0, e));
        }
    }
    let result = loop {
        match stream.write(buf) {
            Ok(0) => {
                break Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the connection accepts no more data",
                ))
            }
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("write timed out after {limit:?}: the server is not reading"),
                ))
            }
            Err(e) => break Err(e),
        }
        if buf.is_empty() {
            break Ok(());
        }
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            break Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("write timed out after {limit:?}: the server reads too slowly"),
            ));
        }
        shortened = true;
        if let Err(e) = stream.set_write_timeout(Some(left)) {
            break Err(e);
        }
    };
    if shortened {
        let _ = stream.set_write_timeout(Some(timeout));
    }
    result.map_err(|e| (total - buf.len(), e))
}

/// Whether the server has closed (or reset) the connection. Carbon never
/// writes on its line port, so end-of-stream or an error on a non-blocking
/// peek means the peer is gone: writing now would only fill the kernel
/// buffer of a dead connection and lose those lines silently.
#[cfg(target_os = "linux")]
fn peer_closed(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut byte = 0u8;
    // One syscall: a non-blocking peek, without switching the socket's mode.
    // SAFETY: a valid socket and a one-byte buffer owned by this frame.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => true,
        n if n > 0 => false,
        _ => io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock,
    }
}

#[cfg(not(target_os = "linux"))]
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let closed = match stream.peek(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).is_err() || closed
}

impl Transport for TcpTransport {
    fn connect(&mut self, deadline: Instant) -> io::Result<()> {
        self.close();
        let end = Instant::now() + self.limit(deadline)?;
        let addrs = self.resolver.resolve(end)?;
        let limit = end.saturating_duration_since(Instant::now());
        let (stream, addr) = self.open(&addrs, limit)?;
        self.stream = Some(stream);
        self.resolver.connected(addr);
        Ok(())
    }

    fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), SendError> {
        match &self.stream {
            None => self.connect(deadline)?,
            Some(stream) if peer_closed(stream) => {
                self.stream = None;
                return Err(SendError::not_connected(format!(
                    "{} closed the connection",
                    self.address()
                )));
            }
            Some(_) => self.follow(deadline),
        }
        let limit = self.limit(deadline)?;
        let stream = self.stream.as_mut().expect("connected above");
        write_all_within(stream, bytes, self.timeout, limit).map_err(|(written, e)| {
            // The connection is in an unknown state: the next send reconnects.
            self.stream = None;
            SendError::new(written, e)
        })
    }

    fn address(&self) -> String {
        host_port(&self.host, self.port)
    }

    fn close(&mut self) {
        if let Some(stream) = self.stream.take() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        self.resolver.disconnected();
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::net::{SocketAddr, TcpListener};
    use std::time::{Duration, Instant};

    use super::{connect_within, TcpTransport};
    use crate::transport::Transport;

    #[test]
    fn zero_timeout_is_floored_at_one_millisecond() {
        let transport = TcpTransport::new("127.0.0.1", 1, Duration::ZERO);
        assert_eq!(transport.timeout, Duration::from_millis(1));
        // A zero write timeout made every connect fail with InvalidInput.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut transport = TcpTransport::new("127.0.0.1", port, Duration::ZERO);
        let deadline = Instant::now() + Duration::from_secs(5);
        if let Err(e) = transport.send(b"a 1 1\n", deadline) {
            assert_ne!(e.source.kind(), io::ErrorKind::InvalidInput, "{e}");
        }
    }

    /// Several addresses that never answer share one time limit.
    #[cfg(target_os = "linux")]
    #[test]
    fn connect_tries_all_addresses_within_one_limit() {
        use std::os::fd::AsRawFd;
        // A listener whose accept queue is full drops further SYNs, so a
        // connect to it hangs until its timeout, like an unreachable host.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // SAFETY: re-listening on a valid listening socket, to shrink its queue.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
        let mut filler = Vec::new();
        while let Ok(stream) =
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        {
            filler.push(stream);
            assert!(filler.len() < 64, "the accept queue never fills");
        }
        let limit = Duration::from_millis(500);
        let addrs: &[SocketAddr] = &[addr, addr, addr];
        let started = Instant::now();
        let e = connect_within("blackhole", addrs, limit).unwrap_err();
        let took = started.elapsed();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(took >= limit, "gave up after {took:?}");
        // Each address with the full limit would take 3 x 500 ms.
        assert!(took < limit * 2, "took {took:?} for a {limit:?} limit");
    }
}

#[cfg(test)]
mod peer_tests {
    use std::io::Read;
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    use super::TcpTransport;
    use crate::transport::Transport;

    #[test]
    fn a_connection_the_server_closed_is_reported_before_writing() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut transport = TcpTransport::new("127.0.0.1", port, Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(5);
        transport.connect(deadline).unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        transport.send(b"a 1 1\n", deadline).unwrap();
        let mut got = [0u8; 6];
        accepted.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"a 1 1\n");
        drop(accepted);
        // The FIN arrives at once on loopback; give it a moment anyway.
        let started = Instant::now();
        let e = loop {
            match transport.send(b"b 2 2\n", deadline) {
                Err(e) => break e,
                Ok(()) => assert!(started.elapsed() < Duration::from_secs(5), "never noticed"),
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(e.written, 0);
        assert_eq!(e.source.kind(), std::io::ErrorKind::NotConnected, "{e}");
        assert!(!transport.is_connected());
    }
}
