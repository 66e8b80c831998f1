//! One persistent TCP connection, opened lazily and re-opened after errors.

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::{first_address, host_port, Transport};

/// First wait after a failed connect; doubles on each further failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Shortest timeout: the socket rejects a zero write timeout.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// Sends lines over one persistent TCP connection.
///
/// The connection is opened on the first send, reused for every later one,
/// and dropped after any error; the next send reconnects, resolving the host
/// again (so DNS changes are followed). Before each write it checks, without
/// blocking, that the server has not closed the connection, so lines are not
/// written into a connection that is already dead. After a failed connect, further
/// attempts wait 100 ms, then 200 ms, ... up to 10 s; a send during that wait
/// fails at once instead of blocking the caller. One send never takes longer
/// than the timeout, however slowly the server reads.
#[derive(Debug)]
pub struct TcpTransport {
    host: String,
    port: u16,
    timeout: Duration,
    stream: Option<TcpStream>,
    /// Set after a failed connect, cleared by a successful one.
    backoff: Option<Backoff>,
    connects: u64,
    /// Bytes of the last failed batch written before the failure.
    handed_over: usize,
}

/// The wait after a failed connect.
#[derive(Debug)]
struct Backoff {
    /// No connect is attempted before this.
    retry_at: Instant,
    /// How long this wait is; the next one is twice as long, up to `MAX_BACKOFF`.
    delay: Duration,
    /// Why the last connect failed.
    last_error: String,
}

impl TcpTransport {
    /// A transport to `host:port`; `timeout` bounds each connect and each
    /// write (at least 1 ms: a zero timeout is taken as 1 ms).
    pub fn new(host: impl Into<String>, port: u16, timeout: Duration) -> TcpTransport {
        TcpTransport {
            host: host.into(),
            port,
            timeout: timeout.max(MIN_TIMEOUT),
            stream: None,
            backoff: None,
            connects: 0,
            handed_over: 0,
        }
    }

    /// Whether a connection is currently open.
    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    /// Connects within `limit` (at most the timeout), unless a failed
    /// connect's backoff is still running.
    fn connect(&mut self, limit: Duration) -> io::Result<TcpStream> {
        if let Some(backoff) = &self.backoff {
            let now = Instant::now();
            if now < backoff.retry_at {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!(
                        "not connected, next attempt in {} ms (last error: {})",
                        (backoff.retry_at - now).as_millis(),
                        backoff.last_error
                    ),
                ));
            }
        }
        match self.try_connect(limit) {
            Ok(stream) => {
                self.connects += 1;
                self.backoff = None;
                Ok(stream)
            }
            Err(e) => {
                let delay = self
                    .backoff
                    .as_ref()
                    .map_or(MIN_BACKOFF, |b| (b.delay * 2).min(MAX_BACKOFF));
                self.backoff = Some(Backoff {
                    retry_at: Instant::now() + delay,
                    delay,
                    last_error: e.to_string(),
                });
                Err(e)
            }
        }
    }

    fn try_connect(&self, limit: Duration) -> io::Result<TcpStream> {
        let stream = connect_within(&self.host, (self.host.as_str(), self.port), limit)?;
        stream.set_write_timeout(Some(self.timeout))?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// Connects to the first of `addrs` (what `host` resolves to) that accepts,
/// resolving included, within `limit` in all: each address gets the time
/// the ones before it left, so unreachable addresses cannot stretch one
/// connect to several timeouts. Once no time is left, the remaining
/// addresses fail with `TimedOut` without being tried.
fn connect_within(host: &str, addrs: impl ToSocketAddrs, limit: Duration) -> io::Result<TcpStream> {
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
        TcpStream::connect_timeout(&addr, left)
    })
}

/// Writes all of `buf` within `limit` in total. The socket's write timeout
/// (`timeout`, set at connect) bounds each `write` call; a server that reads
/// a little at a time must not stretch one send to many timeouts. On
/// failure, returns how many bytes were written.
fn write_all_within(
    stream: &mut TcpStream,
    mut buf: &[u8],
    timeout: Duration,
    limit: Duration,
) -> Result<(), (usize, io::Error)> {
    let total = buf.len();
    let started = Instant::now();
    let mut shortened = false;
    if limit < timeout {
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

impl TcpTransport {
    /// Sends `lines`, taking at most `limit` (connect, then write).
    fn send_within(&mut self, lines: &[u8], limit: Duration) -> io::Result<()> {
        self.handed_over = 0;
        if self.stream.as_ref().is_some_and(peer_closed) {
            log::debug!(target: "graphyte", "{} closed the connection; reconnecting", self.address());
            self.stream = None;
        }
        let mut left = limit;
        if self.stream.is_none() {
            let started = Instant::now();
            self.stream = Some(self.connect(limit)?);
            left = limit.saturating_sub(started.elapsed());
        }
        let stream = self.stream.as_mut().expect("connected above");
        if let Err((written, e)) = write_all_within(stream, lines, self.timeout, left) {
            // The connection is in an unknown state: drop it and reconnect next time.
            self.handed_over = written;
            self.stream = None;
            return Err(e);
        }
        Ok(())
    }
}

impl Transport for TcpTransport {
    fn send(&mut self, lines: &[u8]) -> io::Result<()> {
        self.send_within(lines, self.timeout)
    }

    fn send_before(&mut self, lines: &[u8], deadline: Instant) -> io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the sender's stop timeout passed",
            ));
        }
        self.send_within(lines, left.min(self.timeout))
    }

    fn handed_over(&self) -> usize {
        self.handed_over
    }

    fn address(&self) -> String {
        host_port(&self.host, self.port)
    }

    fn reconnects(&self) -> u64 {
        self.connects.saturating_sub(1)
    }

    fn close(&mut self) {
        if let Some(stream) = self.stream.take() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::net::{SocketAddr, TcpListener};
    use std::time::{Duration, Instant};

    use super::{connect_within, TcpTransport, MAX_BACKOFF, MIN_BACKOFF};
    use crate::transport::Transport;

    /// A port nothing listens on: connects to it are refused at once.
    fn refused_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[test]
    fn zero_timeout_is_floored_at_one_millisecond() {
        let transport = TcpTransport::new("127.0.0.1", 1, Duration::ZERO);
        assert_eq!(transport.timeout, Duration::from_millis(1));
        // A zero write timeout made every connect fail with InvalidInput.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut transport = TcpTransport::new("127.0.0.1", port, Duration::ZERO);
        if let Err(e) = transport.send(b"a 1 1\n") {
            assert_ne!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
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

    #[test]
    fn failed_connects_back_off_from_100_ms_to_10_s() {
        let mut transport = TcpTransport::new("127.0.0.1", refused_port(), Duration::from_secs(1));
        let mut delays = Vec::new();
        for _ in 0..10 {
            let e = transport.send(b"a 1 1\n").unwrap_err();
            assert_ne!(e.kind(), io::ErrorKind::NotConnected, "{e}");
            let backoff = transport.backoff.as_mut().expect("backing off");
            delays.push(backoff.delay);
            // During the wait a send fails at once, naming the last error.
            let last_error = backoff.last_error.clone();
            let e = transport.send(b"a 1 1\n").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotConnected);
            let message = e.to_string();
            assert!(
                message.starts_with("not connected, next attempt in "),
                "{message}"
            );
            assert!(
                message.ends_with(&format!(" ms (last error: {last_error})")),
                "{message}"
            );
            // Skip the wait.
            transport.backoff.as_mut().unwrap().retry_at = Instant::now();
        }
        let ms = |ms| Duration::from_millis(ms);
        assert_eq!(delays[0], MIN_BACKOFF);
        assert_eq!(
            delays,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(3200),
                ms(6400),
                MAX_BACKOFF,
                MAX_BACKOFF,
                MAX_BACKOFF
            ]
        );
        // A successful connect ends the backoff.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        transport.port = listener.local_addr().unwrap().port();
        transport.send(b"a 1 1\n").expect("connects");
        assert!(transport.backoff.is_none());
        assert!(transport.is_connected());
    }
}
