//! One persistent TCP connection, opened lazily and re-opened after errors.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::{host_port, Transport};

/// First wait after a failed connect; doubles on each further failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

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
    retry_at: Option<Instant>,
    backoff: Duration,
    last_error: Option<String>,
    connects: u64,
    /// Bytes of the last failed batch written before the failure.
    handed_over: usize,
}

impl TcpTransport {
    /// A transport to `host:port`; `timeout` bounds each connect and each write.
    pub fn new(host: impl Into<String>, port: u16, timeout: Duration) -> TcpTransport {
        TcpTransport {
            host: host.into(),
            port,
            timeout,
            stream: None,
            retry_at: None,
            backoff: MIN_BACKOFF,
            last_error: None,
            connects: 0,
            handed_over: 0,
        }
    }

    /// Whether a connection is currently open.
    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    fn connect(&mut self, limit: Duration) -> io::Result<TcpStream> {
        if let Some(at) = self.retry_at {
            let now = Instant::now();
            if now < at {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!(
                        "not connected, next attempt in {} ms (last error: {})",
                        (at - now).as_millis(),
                        self.last_error.as_deref().unwrap_or("none")
                    ),
                ));
            }
        }
        match self.try_connect(limit) {
            Ok(stream) => {
                self.connects += 1;
                self.retry_at = None;
                self.backoff = MIN_BACKOFF;
                self.last_error = None;
                Ok(stream)
            }
            Err(e) => {
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                self.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn try_connect(&self, limit: Duration) -> io::Result<TcpStream> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        let mut last = io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} resolved to no address", self.host),
        );
        for addr in addrs {
            let limit = limit.min(self.timeout).max(Duration::from_millis(1));
            match TcpStream::connect_timeout(&addr, limit) {
                Ok(stream) => {
                    stream.set_write_timeout(Some(self.timeout))?;
                    stream.set_nodelay(true)?;
                    return Ok(stream);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
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
        if let Err(e) = stream.set_write_timeout(Some(limit.max(Duration::from_millis(1)))) {
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
