//! Connections: the [`Transport`] trait and its implementations. A transport
//! moves bytes to a server and knows nothing of metrics; the sender decides
//! what the bytes are (the [encoding](crate::encoding)), when to connect,
//! how long to back off after a failed connect, what to resend after a
//! failed send, and counts all of it.
//!
//! [`TcpTransport`] (the default) keeps one persistent connection;
//! `TlsTransport` (feature `tls`) the same over TLS;
//! [`UdpTransport`] packs lines into datagrams; [`CaptureTransport`] keeps
//! everything in memory for tests. Implement [`Transport`] to send lines any
//! other way (the equivalent of overriding `send_socket` in Python graphyte).

mod capture;
mod resolve;
mod tcp;
#[cfg(feature = "tls")]
mod tls;
mod udp;

pub use capture::CaptureTransport;
pub(crate) use resolve::{ResolveTimedOut, DEFAULT_DNS_REFRESH};
pub use tcp::TcpTransport;
#[cfg(feature = "tls")]
pub use tls::TlsTransport;
pub use udp::{UdpTransport, DEFAULT_MAX_DATAGRAM};

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Instant;

/// Delivers bytes to a server: one connection, opened and closed when the
/// sender says so.
///
/// The sender calls [`connect`](Transport::connect) before the first send
/// and again after any failed send (it closes the connection first), waiting
/// between failed connects (100 ms, doubling up to 10 s; a send during that
/// wait fails at once); then [`send`](Transport::send) with one or more
/// complete Carbon lines, each ending in `\n` (in interval mode at most
/// [`Config::batch_size`](crate::Config::batch_size) of them). Calls are never
/// concurrent. Every call gets the deadline by which it must return.
///
/// A send that fails says, in its [`SendError`], how many leading bytes went
/// out: the lines among them that went out whole are counted as sent and
/// never sent again; the rest stay queued (interval mode) and are sent again
/// after a reconnect. A send that finds the connection gone before writing
/// anything returns an error of kind [`NotConnected`](io::ErrorKind::NotConnected):
/// the sender then reconnects and retries at once.
///
/// A transport of your own is a few lines:
///
/// ```
/// use std::time::Instant;
/// use graphyte::{SendError, Transport};
///
/// /// Prints every batch instead of sending it.
/// struct Print;
///
/// impl Transport for Print {
///     fn send(&mut self, bytes: &[u8], _deadline: Instant) -> Result<(), SendError> {
///         print!("{}", String::from_utf8_lossy(bytes));
///         Ok(())
///     }
///     fn address(&self) -> String {
///         "stdout".into()
///     }
/// }
///
/// let sender = graphyte::Sender::new(graphyte::Config::new("unused").transport(Print))?;
/// sender.send_at("foo.bar", 42, 1_700_000_000)?; // prints "foo.bar 42 1700000000"
/// # Ok::<(), graphyte::Error>(())
/// ```
pub trait Transport: Send + 'static {
    /// Writes all of `bytes` by `deadline`. On failure, says how many
    /// leading bytes were handed over before it (`SendError::new(0, e)`, or
    /// `?` on an [`io::Error`], when none were).
    fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), SendError>;

    /// Where the bytes go, for logs and [`Error::Io`](crate::Error::Io) (`host:port`).
    fn address(&self) -> String;

    /// Opens the connection by `deadline`: called before the first send, and
    /// after a failed one. Default: there is nothing to open.
    fn connect(&mut self, deadline: Instant) -> io::Result<()> {
        let _ = deadline;
        Ok(())
    }

    /// Drops the connection: after a failed send, and once when the sender
    /// stops (which may still send afterwards: sends after a stop are
    /// synchronous, and reconnect).
    fn close(&mut self) {}
}

impl Transport for Box<dyn Transport> {
    fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), SendError> {
        (**self).send(bytes, deadline)
    }
    fn address(&self) -> String {
        (**self).address()
    }
    fn connect(&mut self, deadline: Instant) -> io::Result<()> {
        (**self).connect(deadline)
    }
    fn close(&mut self) {
        (**self).close()
    }
}

/// Why a [`Transport::send`] failed, and how far it got.
#[derive(Debug)]
pub struct SendError {
    /// Leading bytes of the batch handed over before the failure.
    pub written: usize,
    /// What went wrong.
    pub source: io::Error,
}

impl SendError {
    /// A failure after `written` bytes.
    pub fn new(written: usize, source: io::Error) -> SendError {
        SendError { written, source }
    }

    /// The connection was found closed before anything was written: the
    /// sender reconnects and retries at once.
    pub fn not_connected(why: impl Into<Box<dyn StdError + Send + Sync>>) -> SendError {
        SendError::new(0, io::Error::new(io::ErrorKind::NotConnected, why))
    }
}

impl From<io::Error> for SendError {
    /// A failure before anything was written.
    fn from(source: io::Error) -> SendError {
        SendError::new(0, source)
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (after {} bytes)", self.source, self.written)
    }
}

impl StdError for SendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// After a failed send of `batch` that handed over its first `handed_over`
/// bytes: the bytes and the number of the lines among them that went out
/// whole. Those need no resending; the rest of the batch, starting with any
/// line cut short, does (Carbon drops the fragment left on the dead
/// connection, which lacks its newline), so no line arrives twice.
///
/// ```
/// let batch = b"a 1 1\nb 2 2\nc 3 3\n";
/// assert_eq!(graphyte::whole_lines(batch, 8), (6, 1)); // "a" whole, "b" cut
/// assert_eq!(graphyte::whole_lines(batch, 12), (12, 2));
/// assert_eq!(graphyte::whole_lines(batch, 0), (0, 0));
/// ```
pub fn whole_lines(batch: &[u8], handed_over: usize) -> (usize, usize) {
    let bytes = batch[..handed_over.min(batch.len())]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let lines = batch[..bytes].iter().filter(|&&b| b == b'\n').count();
    (bytes, lines)
}

/// The network protocol of the built-in transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// Plaintext over one persistent TCP connection (Carbon's `LINE_RECEIVER_PORT`).
    #[default]
    Tcp,
    /// Plaintext over UDP (Carbon's `UDP_RECEIVER_PORT`, usually the same
    /// number as TCP; needs `ENABLE_UDP_LISTENER = True`). Lines are packed into
    /// datagrams that never split a line.
    Udp,
}

/// Formats `host:port`, bracketing IPv6 literals.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// An error for a deadline that has passed before an operation began.
pub(crate) fn deadline_passed() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the deadline passed")
}

/// Resolves `addrs` and calls `attempt` on each address in turn until one
/// succeeds, returning that success. Otherwise returns the last attempt's
/// error, or `NotFound` ("`host` resolved to no address") when there was no
/// address to try. `host` only names the addresses in that error.
pub(crate) fn first_address<T>(
    host: &str,
    addrs: impl ToSocketAddrs,
    mut attempt: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{host} resolved to no address"),
    );
    for addr in addrs.to_socket_addrs()? {
        match attempt(addr) {
            Ok(found) => return Ok(found),
            Err(e) => last = e,
        }
    }
    Err(last)
}
