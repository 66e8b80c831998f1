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
/// fails at once instead of blocking the caller.
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
        }
    }

    /// Whether a connection is currently open.
    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    fn connect(&mut self) -> io::Result<TcpStream> {
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
        match self.try_connect() {
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

    fn try_connect(&self) -> io::Result<TcpStream> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        let mut last = io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} resolved to no address", self.host),
        );
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.timeout) {
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

/// Whether the server has closed (or reset) the connection. Carbon never
/// writes on its line port, so end-of-stream or an error on a non-blocking
/// peek means the peer is gone: writing now would only fill the kernel
/// buffer of a dead connection and lose those lines silently.
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
    fn send(&mut self, lines: &[u8]) -> io::Result<()> {
        if self.stream.as_ref().is_some_and(peer_closed) {
            log::debug!(target: "graphyte", "{} closed the connection; reconnecting", self.address());
            self.stream = None;
        }
        if self.stream.is_none() {
            self.stream = Some(self.connect()?);
        }
        let stream = self.stream.as_mut().expect("connected above");
        if let Err(e) = stream.write_all(lines) {
            // The connection is in an unknown state: drop it and reconnect next time.
            self.stream = None;
            return Err(e);
        }
        Ok(())
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
