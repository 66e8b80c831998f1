//! Where formatted lines go: the [`Transport`] trait and its implementations.
//!
//! [`TcpTransport`] (the default) keeps one persistent connection;
//! [`UdpTransport`] packs lines into datagrams; [`CaptureTransport`] keeps
//! everything in memory for tests. Implement [`Transport`] to send lines any
//! other way (the equivalent of overriding `send_socket` in Python graphyte).

mod capture;
mod tcp;
mod udp;

pub use capture::CaptureTransport;
pub use tcp::TcpTransport;
pub use udp::{UdpTransport, DEFAULT_MAX_DATAGRAM};

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Instant;

/// Delivers batches of complete Carbon lines.
///
/// A sender calls [`send`](Transport::send) with one or more complete lines,
/// each ending in `\n`, never a partial line; in interval mode a batch holds at
/// most [`Config::batch_size`](crate::Config::batch_size) lines. Calls are
/// never concurrent (the sender serialises them).
///
/// Return `Ok` only once the whole batch has been handed over. After an
/// `Err` the sender keeps the batch queued (interval mode) and calls `send`
/// again later with the same lines, so a transport should reconnect on its
/// own the next time it is called.
///
/// ```
/// use std::io;
/// /// Prints every batch instead of sending it.
/// struct Print;
/// impl graphyte::Transport for Print {
///     fn send(&mut self, lines: &[u8]) -> io::Result<()> {
///         print!("{}", String::from_utf8_lossy(lines));
///         Ok(())
///     }
///     fn address(&self) -> String {
///         "stdout".into()
///     }
/// }
/// let sender = graphyte::Sender::new(graphyte::Config::new("unused").transport(Print))?;
/// sender.send_at("foo.bar", 42, 1_700_000_000)?; // prints "foo.bar 42 1700000000"
/// # Ok::<(), graphyte::Error>(())
/// ```
pub trait Transport: Send + 'static {
    /// Delivers `lines`: one or more complete `\n`-terminated lines.
    fn send(&mut self, lines: &[u8]) -> io::Result<()>;

    /// Where the lines go, for logs and [`Error::Io`](crate::Error::Io) (`host:port`).
    fn address(&self) -> String;

    /// Releases connections; called once when the sender stops. The sender
    /// may still call `send` afterwards (sends after a stop are synchronous).
    fn close(&mut self) {}

    /// Like [`send`](Transport::send), but returns by `deadline` (the sender
    /// is stopping and its timeout runs out then). The default ignores the
    /// deadline and calls `send`.
    #[doc(hidden)]
    fn send_before(&mut self, lines: &[u8], deadline: Instant) -> io::Result<()> {
        let _ = deadline;
        self.send(lines)
    }

    /// After `send` returned an error: how many leading bytes of that batch
    /// were handed over before the failure. The sender then resends only the
    /// lines that were not handed over whole (a line cut by the failure is
    /// resent whole; Carbon drops the fragment left on the dead connection,
    /// which lacks its newline), so no line arrives twice; [`whole_lines`]
    /// says which those are. Default: 0, the whole batch is resent.
    fn handed_over(&self) -> usize {
        0
    }

    /// How many times the transport re-opened a connection after losing one
    /// (reported in [`Stats::reconnects`](crate::Stats::reconnects)). Default: 0.
    fn reconnects(&self) -> u64 {
        0
    }
}

impl Transport for Box<dyn Transport> {
    fn send(&mut self, lines: &[u8]) -> io::Result<()> {
        (**self).send(lines)
    }
    fn address(&self) -> String {
        (**self).address()
    }
    fn close(&mut self) {
        (**self).close()
    }
    fn reconnects(&self) -> u64 {
        (**self).reconnects()
    }
    fn handed_over(&self) -> usize {
        (**self).handed_over()
    }
    fn send_before(&mut self, lines: &[u8], deadline: Instant) -> io::Result<()> {
        (**self).send_before(lines, deadline)
    }
}

/// After a failed [`Transport::send`] of `batch` that handed over its first
/// `handed_over` bytes: the bytes and the number of the lines among them
/// that went out whole. Those need no resending; the rest of the batch,
/// starting with any line cut short, does.
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
